"""The gate service's API as Python calls: attestations, the log, its policy, and posting a decision request.

Every call goes through :class:`~tiergate.runtime.transport.Transport`, so it fails closed with
:class:`~tiergate.runtime.transport.GateServiceError`. The log methods (checkpoint, entries, proofs) return raw
material only; auditors verify it themselves (:mod:`tiergate.audit`), never trusting the service. Asking for a
decision, and checking that the answer is one about what was asked, is :class:`tiergate.runtime.remote.RemoteDecider`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import requests

from tiergate.core.answer import DEFAULT_MAX_AGE
from tiergate.core.keys import PublicKey
from tiergate.core.manifest import parse_digest
from tiergate.runtime.transport import DENIED, MAX_ANSWER_BYTES, Answer, GateServiceError, Transport

__all__ = ["DENIED", "MAX_ANSWER_BYTES", "EntryPage", "GateClient", "GateServiceError", "StoredAttestation"]


@dataclass(frozen=True)
class StoredAttestation:
    """An attestation the service holds for a model: its digest, log index and exact bytes."""

    digest: str
    index: int
    data: bytes


@dataclass(frozen=True)
class EntryPage:
    """A page of log entries ``[start, end)``, each ``(index, bytes)``."""

    start: int
    end: int
    entries: tuple[tuple[int, bytes], ...]


class GateClient:
    """The API of one gate service. One ``requests.Session`` each: use one client per thread."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0,
                 session: requests.Session | None = None, *, answer_key: PublicKey | None = None,
                 max_age: float = DEFAULT_MAX_AGE) -> None:
        self.transport = Transport(server, token, timeout, session)
        #: The service's log key, which signs its answers to decision requests; without it no decision is accepted.
        self.answer_key = answer_key
        #: Seconds a signed answer's time may differ from this clock.
        self.max_age = max_age

    @property
    def server(self) -> str:
        return self.transport.server

    # --- attestations and decisions ----------------------------------------------------------------------------

    def submit_attestation(self, data: bytes, model: str | None = None) -> dict[str, Any]:
        """Submit one attestation (its exact bytes); the service verifies and logs it. Returns the service's receipt."""
        t = self.transport
        body: dict[str, Any] = {"attestation": base64.b64encode(data).decode("ascii")}
        if model is not None:
            body["model"] = f"sha256:{parse_digest(model)}"
        answer = t.json(t.request("POST", "/v1/attestations", body=body, auth=True))
        t.field(answer, "digest", str)
        t.field(answer, "index", int)
        return answer  # type: ignore[no-any-return]

    def attestations(self, model: str) -> list[StoredAttestation]:
        """The attestations the service holds for ``model`` (not verified here; verify before relying on them)."""
        t = self.transport
        digest = f"sha256:{parse_digest(model)}"
        answer = t.json(t.request("GET", "/v1/attestations", params={"model": digest}))
        return [StoredAttestation(t.field(raw, "digest", str), t.field(raw, "index", int),
                                  t.b64(t.field(raw, "data", str), "attestation data"))
                for raw in t.field(answer, "attestations", list)]

    def post_decision(self, body: dict[str, Any]) -> Answer:
        """``POST /v1/decisions`` with ``body``; the answer unchecked (:func:`tiergate.runtime.remote.ask` checks
        it)."""
        return self.transport.request("POST", "/v1/decisions", body=body, auth=True, publish=True)

    def policy(self, publish: bool = False) -> dict[str, Any]:
        """The service's ``GET /v1/policy``: its policy's uri, digest, tiers and publish targets (unverified)."""
        t = self.transport
        answer = t.json(t.request("GET", "/v1/policy", publish=publish), publish=publish)
        t.field(answer, "digest", str, publish=publish)
        tiers = t.field(answer, "tiers", list, publish=publish)
        if not tiers or not all(isinstance(tier, str) for tier in tiers):
            raise t.fail("sent a malformed policy (no valid 'tiers')", publish)
        t.field(answer, "targets", dict, publish=publish)
        return answer  # type: ignore[no-any-return]

    # --- the log -----------------------------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The service's current signed checkpoint (a C2SP signed note), unverified."""
        return self.transport.request("GET", "/v1/log/checkpoint").content

    def entries(self, start: int, end: int) -> EntryPage:
        """Entries ``[start, end)``; the service may return fewer (a page is bounded), never other indices."""
        t = self.transport
        answer = t.json(t.request("GET", "/v1/log/entries", params={"start": start, "end": end}))
        rows = [(t.field(raw, "index", int), t.b64(t.field(raw, "data", str), "entry data"))
                for raw in t.field(answer, "entries", list)]
        page = EntryPage(t.field(answer, "start", int), t.field(answer, "end", int), tuple(rows))
        if page.start != start or not start <= page.end <= end or any(not start <= i < page.end for i, _ in rows):
            raise t.fail(f"sent entries outside the range [{start}, {end}) that was asked for", False)
        return page

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        t = self.transport
        return self._hashes(t.json(t.request("GET", "/v1/log/proof/inclusion", params={"index": index, "size": size})))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        t = self.transport
        return self._hashes(t.json(t.request("GET", "/v1/log/proof/consistency", params={"old": old, "new": new})))

    def find(self, model: str, start: int = 0, limit: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Log entries about ``model``: ``([{index, kind}, ...], next start or None)``."""
        t = self.transport
        params: dict[str, Any] = {"model": f"sha256:{parse_digest(model)}", "start": start}
        if limit is not None:
            params["limit"] = limit
        answer = t.json(t.request("GET", "/v1/log/find", params=params))
        found = t.field(answer, "entries", list)
        for raw in found:
            t.field(raw, "index", int)
            t.field(raw, "kind", str)
        following = answer.get("next")
        if following is not None and (not isinstance(following, int) or isinstance(following, bool)):
            raise t.fail("sent a malformed answer (no valid 'next')", False)
        return found, following

    def health(self) -> dict[str, Any]:
        t = self.transport
        answer = t.json(t.request("GET", "/v1/healthz"))
        if not isinstance(answer, dict):
            raise t.fail("sent a malformed health answer", False)
        return answer

    def _hashes(self, answer: Any) -> list[bytes]:
        return [self.transport.b64(h, "proof hash") for h in self.transport.field(answer, "hashes", list)]
