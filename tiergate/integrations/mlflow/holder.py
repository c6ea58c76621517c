"""The gate a server worker decides with: the runtime's :class:`~tiergate.runtime.Gate`, following its files.

Trust stores and policies change while the server runs (an evaluator key is added, a key is revoked or its file
replaced, a symlink re-pointed). The gate notices before each gated call (:mod:`tiergate.runtime.reload`); if the new
configuration does not load, every gated call is refused with the reason until it is fixed: a broken trust store
must not keep allowing with the old one, nor fall back to allowing everything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tiergate.errors import GateError
from tiergate.runtime import ConfigurationBroken, Gate, Rules
from tiergate.runtime.gate import describe_change

log = logging.getLogger("tiergate.integrations.mlflow")


def _log_change(rules: Rules | None, error: ConfigurationBroken | None) -> None:
    (log.error if error is not None else log.info)("%s", describe_change(rules, error))


class GateHolder:
    """Holds the current :class:`Gate`, or the reason there is none. Never raises when built."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._gate = Gate.follow(environ=environ, on_change=_log_change)

    @property
    def error(self) -> GateError | None:
        """Why the configuration does not load (None when it does)."""
        return self._gate.error

    def current(self) -> Gate:
        """The gate to decide with, as the files are now (one version for the whole call); raises the
        configuration error while the configuration is broken."""
        return self._gate.current()
