"""Choosing a log backend: :func:`open_store` opens the log a path or URL names (SQLite or PostgreSQL).

psycopg is imported only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tiergate.errors import ConfigError

from .postgres import PostgresLogStore
from .redact import redact_url
from .sqlite import SQLiteLogStore
from .store import LogStore


def open_store(target: str | os.PathLike[str], *, namespace: str | None = None, **options: Any) -> LogStore:
    """Open (creating if needed) the log at ``target``.

    ``postgresql://...`` or ``postgres://...`` selects PostgreSQL (``namespace`` is the schema); ``sqlite:///path``,
    ``sqlite:path`` or a plain file path selects SQLite (``namespace`` prefixes the table names). ``options`` go to
    the backend: ``timeout`` (seconds a writer waits for another, both backends), ``connect_timeout`` (PostgreSQL).
    """
    if isinstance(target, os.PathLike):
        return SQLiteLogStore(target, namespace=namespace, **options)
    if not isinstance(target, str) or not target:
        raise ConfigError(f"log store must be a file path or a postgresql:// URL, not {target!r}")
    scheme = target.split(":", 1)[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresLogStore(target, namespace=namespace, **options)
    if scheme == "sqlite":
        path = target[len("sqlite:") :]
        if path.startswith("///"):
            path = path[2:]
        elif path.startswith("//"):
            raise ConfigError(f"{target}: write sqlite:///absolute/path or sqlite:relative/path")
        if not path:
            raise ConfigError(f"{target}: the SQLite URL names no file")
        return SQLiteLogStore(path, namespace=namespace, **options)
    if "://" in target:
        raise ConfigError(f"{redact_url(target)}: unsupported log store; use a file path or a postgresql:// URL")
    if target != ":memory:" and Path(target).is_dir():
        raise ConfigError(f"{target}: is a directory; give the log database file path")
    return SQLiteLogStore(target, namespace=namespace, **options)
