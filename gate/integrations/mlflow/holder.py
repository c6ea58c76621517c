"""The gate a server worker decides with: loaded at start, reloaded when its files change, never half-loaded.

Trust stores and policies change while the server runs (an evaluator key is added, a key is revoked). A revocation
has to take effect without a restart, so before each gated call the holder stats the configuration files and
reloads if one changed. If the new configuration does not load, every gated call is refused with the reason until
it is fixed: a broken trust store must not keep allowing with the old one, nor fall back to allowing everything.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from gate.errors import ConfigError, GateError
from gate.runtime import Gate, GateConfig

FileState = tuple[tuple[str, int, int, int] | None, ...]


def _state(paths: tuple[Path, ...]) -> FileState:
    def one(path: Path) -> tuple[str, int, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)

    return tuple(one(p) for p in paths)


class GateHolder:
    """Holds the current :class:`Gate`, or the reason there is none."""

    def __init__(self, environ: Mapping[str, str] | None = None,
                 loader: Callable[[GateConfig], Gate] = Gate.load) -> None:
        self._environ = environ
        self._loader = loader
        self._lock = threading.Lock()
        self._gate: Gate | None = None
        self._error: GateError | None = None
        self._watched: tuple[Path, ...] = ()
        self._state: FileState = ()
        self._load()

    @property
    def error(self) -> GateError | None:
        """Why the configuration does not load (None when it does)."""
        return self._error

    def _config_file(self) -> tuple[Path, ...]:
        env = os.environ if self._environ is None else self._environ
        return (Path(env["GATE_CONFIG"]),) if env.get("GATE_CONFIG") else ()

    def _load(self) -> None:
        watched = self._config_file()
        state = _state(watched)  # taken before reading, so a change made during the load triggers another
        try:
            config = GateConfig.from_env(self._environ)
            watched += tuple(p for p in (config.policy, config.trust, config.key) if p is not None)
            state = _state(watched)
            self._gate, self._error = self._loader(config), None
        except GateError as exc:
            self._gate, self._error = None, exc
        except Exception as exc:  # an unexpected failure is still a configuration that does not load
            self._gate, self._error = None, ConfigError(
                f"the gate configuration does not load: {type(exc).__name__}: {exc}")
        self._watched, self._state = watched, state

    def current(self) -> Gate:
        """The gate to decide with; raises the configuration error while the configuration is broken."""
        with self._lock:
            if _state(self._watched) != self._state:
                self._load()
            if self._gate is None:
                assert self._error is not None
                raise self._error
            return self._gate
