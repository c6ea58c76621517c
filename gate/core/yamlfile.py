"""Reading the gate's own YAML files (policy, trust store, config): safe, size-limited, errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gate.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_limited(path: str | os.PathLike[str], what: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """Read a file of at most ``limit`` bytes, or raise ConfigError naming it."""
    p = Path(path)
    try:
        with open(p, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"{p}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a {what} file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the {what}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{p}: {what} is larger than {limit} bytes")
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
