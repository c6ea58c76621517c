"""Reading files from disk: size-limited, with errors that name the file; YAML for the gate's own files (policy, trust store, config)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gate.errors import ConfigError, GateError

MAX_CONFIG_BYTES = 4 * 1024 * 1024


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


def load_yaml(path: str | os.PathLike[str], what: str) -> Any:
    return parse_yaml(read_limited(path, what), path)


def parse_yaml(data: bytes, path: str | os.PathLike[str]) -> Any:
    """Parse YAML read from ``path``; errors name the file and the line."""
    import yaml  # deferred: keeps `gate --help` fast

    try:
        return yaml.safe_load(data)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
