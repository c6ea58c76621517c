"""Reading what the gate is given, strictly and within bounds: files from disk (size-limited, errors that name the
file), YAML for the gate's own files (policy, trust store, config, tokens) and JSON for what others sign or send.

One rule for both parsers: a document two readers could read differently is refused, not interpreted. So a
duplicated key is an error (YAML and JSON readers disagree on which value wins), as are JSON's non-standard
``NaN``/``Infinity`` and numbers other readers cannot represent; and anything that costs more than its size suggests
(YAML alias bombs, deep nesting) is refused before it is expanded.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, cast

from tiergate.errors import ConfigError, GateError

MAX_CONFIG_BYTES = 4 * 1024 * 1024

#: YAML bounds. Nodes count every alias at the size of what it stands for, so a ~1 KB "billion laughs" is refused
#: after a few thousand nodes instead of being expanded; a large trust store (a thousand evaluators) stays far below.
MAX_YAML_NODES = 200_000
MAX_YAML_DEPTH = 64

#: JSON bounds. A statement nests about six levels (predicate.manifest.files[i].digest); harness logs nest deeper.
MAX_JSON_DEPTH = 64
MAX_LOG_JSON_DEPTH = 256
#: Integers must fit in 64 bits: beyond that readers in other languages round or refuse them.
MAX_JSON_INT = 2**64 - 1
#: A double needs 17 significant digits; a much longer literal is not a number any writer of scores produces.
MAX_JSON_NUMBER_CHARS = 64


def read_limited(
    path: str | os.PathLike[str], what: str, limit: int = MAX_CONFIG_BYTES, error: type[GateError] = ConfigError
) -> bytes:
    """Read a file of at most ``limit`` bytes, or raise ``error`` naming it (a ConfigError for the gate's own
    files, exit 2; an InputError for what arrives from outside, exit 1)."""
    p = Path(path)
    try:
        with open(p, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{p}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, expected a {what} file") from None
    except OSError as exc:
        raise error(f"{p}: cannot read the {what}: {exc.strerror}") from None
    if len(data) > limit:
        raise error(f"{p}: {what} is larger than {limit} bytes")
    return data


# --- YAML ------------------------------------------------------------------------------------------------------


class YamlMapping(dict):  # type: ignore[type-arg]
    """A mapping read from YAML that remembers the line it starts on, so later checks can name it."""

    __slots__ = ("line",)

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line


def line_of(value: Any) -> int | None:
    """The 1-based line a YAML mapping started on (None for anything not read by :func:`parse_yaml`)."""
    return value.line if isinstance(value, YamlMapping) else None


def load_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """Read and parse one of the gate's YAML files. Raises ConfigError naming the file (and line)."""
    return parse_yaml(read_limited(path, what), path)


def parse_yaml(data: bytes | str, path: str | os.PathLike[str], limit: int = MAX_CONFIG_BYTES) -> Any:
    """Parse YAML read from ``path`` with :func:`_strict_loader`; errors name the file and the line.

    Raises ConfigError: not YAML, a duplicate key, more than :data:`MAX_YAML_NODES` nodes (aliases expanded) or
    :data:`MAX_YAML_DEPTH` levels, a value YAML cannot construct (``2026-02-30``), or more than ``limit`` bytes.
    """
    import yaml  # deferred: keeps `gate --help` fast

    if len(data) > limit:
        raise ConfigError(f"{path}: larger than {limit} bytes")
    loader = None
    try:
        loader = _strict_loader()(data, str(path))  # reading starts here: a bad byte or BOM is refused already
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, OverflowError, TypeError) as exc:  # a timestamp or number YAML matched but cannot build
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


_LOADER: Any = None


def _strict_loader() -> Any:
    """PyYAML's SafeLoader, with bounds on nodes (aliases counted expanded) and depth, and no duplicate keys."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def __init__(self, stream: Any, source: str) -> None:
            super().__init__(stream)
            self.source = source
            self.depth = 0
            self.nodes = 0
            self.sizes: dict[int, int] = {}  # id(node) -> nodes it stands for, aliases expanded

        def _count(self, nodes: int, line: int) -> None:
            self.nodes += nodes
            if self.nodes > MAX_YAML_NODES:
                raise ConfigError(f"{self.source}: line {line}: more than {MAX_YAML_NODES} YAML nodes with "
                                  "aliases expanded (an alias bomb?); write the document out")

        def _too_deep(self) -> ConfigError:
            return ConfigError(f"{self.source}: line {self.line + 1}: nested more than {MAX_YAML_DEPTH} levels deep")

        # The scanner looks ahead over nested flow collections with a cost that grows with their depth, so depth is
        # bounded where it scans (`[[[[...`, and indentation), not only where it composes.
        def fetch_flow_collection_start(self, token_class: Any) -> None:
            if self.flow_level >= MAX_YAML_DEPTH:
                raise self._too_deep()
            super().fetch_flow_collection_start(token_class)

        def add_indent(self, column: int) -> bool:
            if len(self.indents) >= MAX_YAML_DEPTH:
                raise self._too_deep()
            return super().add_indent(column)

        def _peek(self) -> yaml.Event:
            # types-PyYAML leaves Parser.peek_event unannotated; it returns the next event without consuming it.
            return self.peek_event()  # type: ignore[no-untyped-call, no-any-return]

        @staticmethod
        def _line(event: yaml.Event) -> int:
            """The 1-based line ``event`` starts on (the parser marks every event it makes)."""
            assert event.start_mark is not None
            return event.start_mark.line + 1

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = cast(yaml.AliasEvent, self._peek())
                target = self.anchors.get(event.anchor)
                if target is not None:
                    if id(target) not in self.sizes:  # still being composed: `&a [*a]` would be a cycle
                        raise ConfigError(f"{self.source}: line {self._line(event)}: alias *{event.anchor} "
                                          "refers to a node that contains it")
                    self._count(self.sizes[id(target)], self._line(event))
                return super().compose_node(parent, index)
            line = self._line(self._peek())
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise ConfigError(f"{self.source}: line {line}: nested more than {MAX_YAML_DEPTH} levels deep")
            before = self.nodes
            self._count(1, line)
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            self.sizes[id(node)] = self.nodes - before
            return node

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # '<<' merges; what it merges is checked where it is written
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    if not isinstance(key, str):  # `1` and "1", `yes` and "True" would be one key to the gate
                        raise ConfigError(f"{self.source}: line {line}: the key {_short(key)!r} is a "
                                          f"{type(key).__name__}, not text; write it in quotes")
                    first = seen.get(key)
                    if first is not None:
                        raise ConfigError(f"{self.source}: line {line}: duplicate key {_short(key)!r} (first at line "
                                          f"{first}); a key may appear once in a mapping")
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_str(self, node: Any) -> Any:
            value = super().construct_yaml_str(node)
            if _SURROGATE.search(value):  # only a \uD800-\uDFFF escape makes one; no encoder would take it
                raise ConfigError(f"{self.source}: line {node.start_mark.line + 1}: text with an unpaired surrogate "
                                  "escape (\\uD800-\\uDFFF) is not valid Unicode; write the character itself")
            return value

        def construct_yaml_map(self, node: Any) -> Any:
            data = YamlMapping(node.start_mark.line + 1)
            yield data
            data.update(self.construct_mapping(node))

    StrictLoader.add_constructor("tag:yaml.org,2002:map", StrictLoader.construct_yaml_map)
    StrictLoader.add_constructor("tag:yaml.org,2002:str", StrictLoader.construct_yaml_str)
    _LOADER = StrictLoader
    return _LOADER


_SURROGATE = re.compile("[\ud800-\udfff]")


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- JSON ------------------------------------------------------------------------------------------------------


class StrictJSONError(ValueError):
    """JSON that is malformed or ambiguous (duplicate keys, non-finite or oversized numbers, nesting past the
    bound). The message is one line without a subject ("has the key 'acc' twice ..."); callers prefix what the
    document was."""


#: Only a ``\uD800``-``\uDFFF`` escape can put a surrogate into decoded text (UTF-8 cannot encode one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _check_tree(value: Any, max_depth: int, strings: bool) -> None:
    """Refuse nesting deeper than ``max_depth`` (found without recursion) and, with ``strings``, text holding an
    unpaired surrogate. Raises StrictJSONError."""
    stack: list[tuple[list[Any] | dict[str, Any], int]] = [([value], 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise StrictJSONError(f"nests more than {max_depth} levels deep")
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif strings and isinstance(child, str):
                try:
                    child.encode("utf-8")
                except UnicodeEncodeError:
                    raise StrictJSONError("has text with an unpaired surrogate escape (readers decode it "
                                          "differently)") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f"has the key {_short(key)!r} twice in one object (a duplicate key is ambiguous: "
                                  "readers disagree on which value counts)")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            shown = key.encode("utf-8", "backslashreplace").decode("ascii")
            raise StrictJSONError(f"has the key {_short(shown)!r} with an unpaired surrogate escape (readers decode it "
                                  "differently)") from None
        out[key] = value
    return out


def _json_int(literal: str) -> int:
    if len(literal) > MAX_JSON_NUMBER_CHARS:
        raise StrictJSONError(f"has an integer of {len(literal.lstrip('-'))} digits, beyond 64 bits")
    value = int(literal)
    if abs(value) > MAX_JSON_INT:
        raise StrictJSONError(f"has the integer {literal}, beyond 64 bits")
    return value


def _json_float(literal: str) -> float:
    if len(literal) > MAX_JSON_NUMBER_CHARS:
        raise StrictJSONError(f"has a number written with {len(literal)} characters, more than {MAX_JSON_NUMBER_CHARS} "
                              "(a 64-bit float needs at most 17 significant digits)")
    value = float(literal)
    if not math.isfinite(value):
        raise StrictJSONError(f"has the number {literal}, too large for a 64-bit float")
    return value


def _refuse_constant(name: str) -> float:
    raise StrictJSONError(f"has {name}, which is not a JSON number")


def _keep_constant(name: str) -> float:
    return float(name)


def parse_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH, allow_constants: bool = False) -> Any:
    """Parse one JSON document strictly: UTF-8, no duplicate keys, integers within 64 bits, finite floats of at
    most :data:`MAX_JSON_NUMBER_CHARS` characters, no ``NaN``/``Infinity`` (unless ``allow_constants``: harness
    logs carry them in samples, and the gate checks finiteness where it reads a score), nesting at most
    ``max_depth`` levels. Raises StrictJSONError with a one-line reason.
    """
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_json_object, parse_int=_json_int, parse_float=_json_float,
            parse_constant=_keep_constant if allow_constants else _refuse_constant,
        )
    except StrictJSONError:
        raise
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise StrictJSONError(f"nests more than {max_depth} levels deep") from None
    except ValueError as exc:
        raise StrictJSONError(f"is not valid JSON: {exc}") from None
    # The parser itself stops at Python's recursion limit (RecursionError above); the bound is checked on the result.
    _check_tree(value, max_depth, strings=_SURROGATE_ESCAPE.search(text) is not None)
    return value
