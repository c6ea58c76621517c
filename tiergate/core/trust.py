"""The trust store: which evaluators the gate believes, with which keys, when, and for which risk domains.

File format (YAML; schema in ``tiergate/data/schemas/trust-store.schema.json``)::

    version: 1
    evaluators:
      - id: uk-aisi
        organization: UK AI Security Institute
        kind: government            # developer | third_party | government
        scope: [cbrn, cyber, tamper] # optional: risk domains this evaluator may attest
        keys:
          - path: keys/uk-aisi.pub   # or pem: |  -----BEGIN PUBLIC KEY----- ...
            valid_from: 2026-01-01T00:00:00Z
            valid_until: 2027-01-01T00:00:00Z
            revoked_at: 2026-09-01T00:00:00Z   # optional
            compromised: false                  # true: nothing this key signed is trusted, whenever

Revocation: a key revoked with ``compromised: false`` (retired, rotated) keeps the signatures it made before
``revoked_at``; a compromised key invalidates everything, because a thief can backdate a claimed signing time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from tiergate.core.attestation import RISK_DOMAINS
from tiergate.core.keys import PublicKey
from tiergate.core.timeutil import format_time, parse_time
from tiergate.core.files import line_of, parse_yaml, read_limited
from tiergate.errors import ConfigError, config_error

EVALUATOR_KINDS: tuple[str, ...] = ("developer", "third_party", "government")
TRUST_STORE_VERSION = 1


@dataclass(frozen=True)
class TrustedKey:
    key: PublicKey
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    compromised: bool = False
    line: int | None = field(default=None, compare=False)  # where the trust store lists it, for messages

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def problem_at(self, signed_at: datetime | None, now: datetime) -> str | None:
        """Why a signature by this key, claimed to be made at ``signed_at``, is not acceptable (None if it is).

        Without a claimed time the signature is judged as made ``now``.
        """
        when = signed_at or now
        if self.revoked_at is not None:
            if self.compromised:
                return f"key {self.key_id[:16]} was revoked as compromised at {format_time(self.revoked_at)}"
            if when >= self.revoked_at:
                return (
                    f"key {self.key_id[:16]} was revoked at {format_time(self.revoked_at)}, "
                    f"before the signing time {format_time(when)}"
                )
        if self.valid_from is not None and when < self.valid_from:
            return (f"key {self.key_id[:16]} is not yet valid at {format_time(when)} "
                    f"(valid from {format_time(self.valid_from)})")
        if self.valid_until is not None and when > self.valid_until:
            return (f"key {self.key_id[:16]} is no longer valid at {format_time(when)} "
                    f"(expired {format_time(self.valid_until)})")
        return None


@dataclass(frozen=True)
class Evaluator:
    id: str
    organization: str
    kind: str
    keys: tuple[TrustedKey, ...]
    scope: frozenset[str] | None = None

    def may_attest(self, risk_domain: str | None) -> bool:
        if self.scope is None:
            return True
        return risk_domain is not None and risk_domain in self.scope


@dataclass(frozen=True)
class TrustStore:
    evaluators: tuple[Evaluator, ...]
    source: str = "<memory>"
    digest: str | None = None  # sha256:<hex> of what it was loaded from (see load), so decisions can name it
    #: The files it was loaded from: the trust store, then every key file it names by path (for reloaders).
    files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        # One key, one entry: with two, which validity window, revocation or owner applies would depend on the order
        # they are looked up in (a compromised entry listed second was once ignored).
        seen: dict[str, tuple[Evaluator, TrustedKey]] = {}
        for evaluator in self.evaluators:
            for trusted in evaluator.keys:
                first = seen.get(trusted.key_id)
                if first is None:
                    seen[trusted.key_id] = (evaluator, trusted)
                else:
                    at = f"{self.source}: line {trusted.line}" if trusted.line else self.source
                    was = f" at line {first[1].line}" if first[1].line else ""
                    raise config_error(
                        at, f"evaluators[{evaluator.id}].keys",
                        f"key {trusted.key_id} is already listed{was} (evaluator {first[0].id}); list each key "
                        "once, with its revocation on that one entry",
                    )

    def keys(self) -> list[PublicKey]:
        return [k.key for e in self.evaluators for k in e.keys]

    def owner(self, key_id: str) -> tuple[Evaluator, TrustedKey] | None:
        for evaluator in self.evaluators:
            for trusted in evaluator.keys:
                if trusted.key_id == key_id:
                    return evaluator, trusted
        return None

    def evaluator(self, evaluator_id: str) -> Evaluator | None:
        return next((e for e in self.evaluators if e.id == evaluator_id), None)

    @property
    def developer_organizations(self) -> frozenset[str]:
        return frozenset(e.organization for e in self.evaluators if e.kind == "developer")

    def is_independent(self, evaluator: Evaluator) -> bool:
        """Independent of the model developer: not a developer, and not of a developer's organization."""
        return evaluator.kind != "developer" and evaluator.organization not in self.developer_organizations

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Load a trust store file and the key files it names. Its ``digest`` covers all of them: the sha256 of the
        file when it names no key file, else :func:`trust_digest` (a key file swapped under an unchanged trust
        store changes the digest). Raises :class:`ConfigError` naming the file and field."""
        raw = read_limited(path, "trust store")
        data = parse_yaml(raw, path)
        store = cls.from_dict(data, source=str(path), base_dir=Path(path).parent)
        key_files = _key_files(data, Path(path).parent)
        keys = [(written, read_limited(full, "public key")) for written, full in key_files]
        return replace(store, digest=trust_digest(raw, keys), files=(Path(path), *(full for _, full in key_files)))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>", base_dir: Path | None = None) -> TrustStore:
        if not isinstance(data, Mapping):
            raise config_error(source, None, "a trust store is a mapping with 'version' and 'evaluators'")
        if data.get("version") != TRUST_STORE_VERSION:
            raise config_error(source, "version", f"expected {TRUST_STORE_VERSION}, found {data.get('version')!r}")
        unknown = set(data) - {"version", "evaluators"}
        if unknown:
            raise config_error(source, min(unknown), "unknown field (expected version, evaluators)")
        raw = data.get("evaluators")
        if not isinstance(raw, list):  # an empty list is a valid start: nothing above the lowest tier is allowed
            raise config_error(source, "evaluators", "must be a list (write [] for none yet)")
        evaluators = [_evaluator(item, source, f"evaluators[{i}]", base_dir) for i, item in enumerate(raw)]
        ids = [e.id for e in evaluators]
        for i, evaluator_id in enumerate(ids):
            if evaluator_id in ids[:i]:
                raise config_error(source, f"evaluators[{i}].id", f"duplicate evaluator id {evaluator_id!r}")
        return cls(tuple(evaluators), source)


def trust_digest(trust_file: bytes, key_files: list[tuple[str, bytes]]) -> str:
    """``sha256:<hex>`` naming a trust store with the key files it names by path (``(path as written, bytes)``, in
    order): the sha256 of the trust store file alone when there are none; otherwise the sha256 of
    ``tiergate-trust-v1\n``, the trust store file's sha256, and for each key file the sha256 of its path as
    written and of its bytes (raw 32-byte digests)."""
    if not key_files:
        return "sha256:" + hashlib.sha256(trust_file).hexdigest()
    hasher = hashlib.sha256(b"tiergate-trust-v1\n" + hashlib.sha256(trust_file).digest())
    for written, data in key_files:
        hasher.update(hashlib.sha256(written.encode("utf-8")).digest() + hashlib.sha256(data).digest())
    return "sha256:" + hasher.hexdigest()


def _key_files(data: Mapping[str, Any], base_dir: Path) -> list[tuple[str, Path]]:
    """The key files a parsed (already validated) trust store names: ``(path as written, path to read)``."""
    found = []
    for evaluator in data["evaluators"]:
        for item in evaluator["keys"]:
            if "path" in item:
                written = str(item["path"])
                full = Path(written)
                found.append((written, full if full.is_absolute() else base_dir / full))
    return found


_EVALUATOR_FIELDS = {"id", "organization", "kind", "keys", "scope"}
_KEY_FIELDS = {"pem", "path", "valid_from", "valid_until", "revoked_at", "compromised"}


def _require_text(item: Mapping[str, Any], key: str, source: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise config_error(source, f"{where}.{key}", "required, a non-empty string")
    return value.strip()


def _no_nulls(item: Mapping[str, Any], source: str, where: str) -> None:
    """Refuse a field written without a value: `scope:` with its list commented out is YAML null, which would read
    as "trusted for every risk domain", and `revoked_at:` as "not revoked". Raises ConfigError."""
    empty = sorted(str(k) for k, v in item.items() if v is None)
    if empty:
        raise config_error(source, f"{where}.{empty[0]}", "has no value (YAML null); give it one, or remove the line")


def _evaluator(item: Any, source: str, where: str, base_dir: Path | None) -> Evaluator:
    if not isinstance(item, Mapping):
        raise config_error(source, where, "must be a mapping")
    unknown = set(item) - _EVALUATOR_FIELDS
    if unknown:
        raise config_error(source, f"{where}.{min(unknown)}",
                           f"unknown field (expected {', '.join(sorted(_EVALUATOR_FIELDS))})")
    _no_nulls(item, source, where)
    kind = _require_text(item, "kind", source, where)
    if kind not in EVALUATOR_KINDS:
        raise config_error(source, f"{where}.kind", f"{kind!r} is not one of {', '.join(EVALUATOR_KINDS)}")
    scope = item.get("scope")
    if scope is not None:
        if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
            raise config_error(source, f"{where}.scope", "must be a list of risk domains")
        bad = [s for s in scope if s not in RISK_DOMAINS]
        if bad:
            raise config_error(source, f"{where}.scope", f"{bad[0]!r} is not a risk domain ({', '.join(RISK_DOMAINS)})")
    raw_keys = item.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        raise config_error(source, f"{where}.keys", "must list at least one public key")
    keys = tuple(_trusted_key(k, source, f"{where}.keys[{i}]", base_dir) for i, k in enumerate(raw_keys))
    return Evaluator(
        id=_require_text(item, "id", source, where),
        organization=_require_text(item, "organization", source, where),
        kind=kind,
        keys=keys,
        scope=frozenset(scope) if scope is not None else None,
    )


def _time_field(item: Mapping[str, Any], key: str, source: str, where: str) -> datetime | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML parses unquoted timestamps itself
        if value.tzinfo is None:
            raise config_error(source, f"{where}.{key}", "needs a UTC offset (write 2026-01-01T00:00:00Z)")
        value = value.isoformat()
    try:
        return parse_time(str(value))
    except ValueError as exc:
        raise config_error(source, f"{where}.{key}", str(exc)) from None


def _trusted_key(item: Any, source: str, where: str, base_dir: Path | None) -> TrustedKey:
    if not isinstance(item, Mapping):
        raise config_error(source, where, "must be a mapping with 'pem' or 'path'")
    unknown = set(item) - _KEY_FIELDS
    if unknown:
        raise config_error(source, f"{where}.{min(unknown)}",
                           f"unknown field (expected {', '.join(sorted(_KEY_FIELDS))})")
    _no_nulls(item, source, where)
    if ("pem" in item) == ("path" in item):
        raise config_error(source, where, "give exactly one of 'pem' (inline) or 'path' (a .pub file)")
    if "pem" in item:
        key = PublicKey.from_pem(str(item["pem"]).encode("utf-8"), f"{source}: {where}.pem")
    else:
        path = Path(str(item["path"]))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path  # relative key paths are relative to the trust store, not the cwd
        try:
            key = PublicKey.load(path)
        except ConfigError as exc:
            raise config_error(source, f"{where}.path", str(exc)) from None
    compromised = item.get("compromised", False)
    if not isinstance(compromised, bool):
        raise config_error(source, f"{where}.compromised", "must be true or false")
    trusted = TrustedKey(
        key=key,
        valid_from=_time_field(item, "valid_from", source, where),
        valid_until=_time_field(item, "valid_until", source, where),
        revoked_at=_time_field(item, "revoked_at", source, where),
        compromised=compromised,
        line=line_of(item),
    )
    if compromised and trusted.revoked_at is None:
        raise config_error(source, f"{where}.revoked_at", "a compromised key needs the time it was revoked")
    if trusted.valid_from and trusted.valid_until and trusted.valid_until <= trusted.valid_from:
        raise config_error(source, f"{where}.valid_until", "must be after valid_from")
    return trusted
