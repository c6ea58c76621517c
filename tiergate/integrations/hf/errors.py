"""The ways the Hub integration refuses a publish, as exceptions a caller can catch and a CLI can print."""

from __future__ import annotations

from tiergate.core.decision import Decision
from tiergate.errors import GateError


class GateDenied(GateError):
    """The gate denied a publish; nothing was sent. ``decision`` holds the rows (what is missing) for the caller."""

    exit_code = 1

    def __init__(self, target: str, decision: Decision, hint: str = "") -> None:
        self.target = target
        self.decision = decision
        message = f"{target}: {decision.summary()}"
        super().__init__(message + (f" {hint}" if hint else ""))


class BackstopRefused(GateError):
    """A request would have published content the gate did not check (a file changed after the check, or a commit
    made outside a gated call). It was stopped before it left the process."""

    exit_code = 1


class Unverifiable(GateError):
    """The gate could not check what a change would expose, so it refused the change; nothing was sent.

    Raised when the repository's current state cannot be read (a gated repository the token may not read, the Hub
    failing), or when more history is reachable than the gate checks (:class:`TooManyCommits`)."""

    exit_code = 1


class TooManyCommits(Unverifiable):
    """More commits are reachable from a repository's refs than the gate checks before widening access to them."""
