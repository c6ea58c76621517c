"""The trust store: which evaluators the gate believes, by which signing identities, when, for which risk domains.

File format (YAML; schema in ``tiergate/data/schemas/trust-store.schema.json``)::

    version: 1
    evaluators:
      - id: uk-aisi
        organization: UK AI Security Institute
        kind: government            # developer | third_party | government
        scope: [cbrn, cyber, tamper] # optional: risk domains this evaluator may attest
        keys:                        # its signing identities, each one of:
          - path: keys/uk-aisi.pub   # a key: path, or pem: |  -----BEGIN PUBLIC KEY----- ...
            valid_from: 2026-01-01T00:00:00Z
            valid_until: 2027-01-01T00:00:00Z
            revoked_at: 2026-09-01T00:00:00Z   # optional
            compromised: false                  # true: nothing this identity signed is trusted, whenever
            self_reported_time: false           # the default: attestedAt alone never dates a signature
          - sigstore:                # Sigstore keyless: an OIDC issuer and identity in a Fulcio certificate
              issuer: https://token.actions.githubusercontent.com
              identity: https://github.com/aisi/evals/.github/workflows/eval.yml@refs/heads/main
              # identity_pattern: ^https://github[.]com/aisi/.*$  (instead of identity; matched whole)
              # trusted_root: sigstore/trusted_root.json           (default: the public-good root sigstore ships)
          - x509:                    # certificates of the organisation's own CA
              roots: [pki/root.pem]
              intermediates: [pki/intermediate.pem]   # optional
              san: model-signer@aisi.gov.uk            # and/or subject: "CN=...", or san_pattern
              extended_key_usage: [codeSigning]       # the default

Every identity kind carries the same validity window, revocation, and (through its evaluator) scope and
organisation, judged by :meth:`TrustedKey.problem_at` at one signing time (:meth:`TrustedKey.signing_time`): a time
the signer could not choose when there is one (Rekor, an RFC 3161 timestamp, the gate's own log), else the
self-reported ``attestedAt`` where the entry allows it (``self_reported_time``), else the gate's clock.

Revocation: an identity revoked with ``compromised: false`` (retired, rotated) keeps the signatures something
trusted dates before ``revoked_at`` (or whose ``attestedAt`` counts, where the entry sets ``self_reported_time:
true``); a compromised one invalidates everything, because a thief can backdate a claimed signing time.
"""


from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from cryptography import x509

from tiergate.core.attestation import RISK_DOMAINS
from tiergate.core.identity import (
    Identity, SigstoreIdentity, SigningTime, X509Identity, check_trusted_root, compile_pattern, eku_oid,
    identity_label, public_good_root,
)
from tiergate.core.keys import PublicKey
from tiergate.core.timeutil import format_time, parse_time
from tiergate.core.files import line_of, parse_yaml, read_limited
from tiergate.errors import ConfigError, config_error

EVALUATOR_KINDS: tuple[str, ...] = ("developer", "third_party", "government")
TRUST_STORE_VERSION = 1


@dataclass(frozen=True)
class TrustedKey:
    """One signing identity of an evaluator (a key, a Sigstore identity or an X.509 CA's certificates) with what
    the trust store says of it; the same fields and rules for every kind."""

    identity: Identity
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    compromised: bool = False
    #: Whether the signer's own ``attestedAt`` may stand for the signing time when nothing trusted says it. None:
    #: the default of the kind (True for keys, so stores written before trusted times keep working; False for
    #: certificate identities, whose signatures come with a trusted time or are judged at the gate's clock).
    self_reported_time: bool | None = None
    line: int | None = field(default=None, compare=False)  # where the trust store lists it, for messages

    @property
    def key_id(self) -> str:
        return self.identity.key_id

    @property
    def key(self) -> PublicKey | None:
        return self.identity if isinstance(self.identity, PublicKey) else None

    @property
    def label(self) -> str:
        return identity_label(self.identity)

    @property
    def allows_self_reported_time(self) -> bool:
        return bool(self.self_reported_time)  # only where the entry says so: a signer's word is not a time

    def signing_time(self, trusted: SigningTime | None, claimed: datetime | None, now: datetime) -> SigningTime:
        """When a signature by this identity counts as made: ``trusted`` (vouched for by a log or timestamp
        authority) when there is one, else ``claimed`` where this entry accepts self-reported times, else ``now``."""
        if trusted is not None:
            return trusted
        if claimed is not None and self.allows_self_reported_time:
            return SigningTime(claimed, "attestedAt, self-reported", vouched=False)
        return SigningTime(now, "the gate's clock", vouched=False)

    def problem_at(self, signed_at: datetime | SigningTime | None, now: datetime) -> str | None:
        """Why a signature by this identity, made at ``signed_at``, is not acceptable (None if it is).

        Without a time the signature is judged as made ``now``.
        """
        when: datetime = now
        said = ""
        if isinstance(signed_at, SigningTime):
            when, said = signed_at.time, f" ({signed_at.source})"
        elif signed_at is not None:
            when = signed_at
        label = self.label
        if self.revoked_at is not None:
            if self.compromised:
                return f"{label} was revoked as compromised at {format_time(self.revoked_at)}"
            if when >= self.revoked_at:
                return (
                    f"{label} was revoked at {format_time(self.revoked_at)}, "
                    f"before the signing time {format_time(when)}{said}"
                )
        if self.valid_from is not None and when < self.valid_from:
            return f"{label} is not yet valid at {format_time(when)}{said} (valid from {format_time(self.valid_from)})"
        if self.valid_until is not None and when > self.valid_until:
            return f"{label} is no longer valid at {format_time(when)}{said} (expired {format_time(self.valid_until)})"
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
    #: What ``digest`` covers, exactly: the trust store file's bytes and each file it names by path (as written,
    #: bytes), so the log can record it and an auditor rebuild it (:meth:`from_bytes`). None when built in memory.
    raw: bytes | None = field(default=None, compare=False, repr=False)
    key_files: tuple[tuple[str, bytes], ...] = field(default=(), compare=False, repr=False)
    #: Which keys of this store made the signatures of an envelope (see tiergate.core.verify): a memo, because the
    #: same stored attestation is judged again by every decision about its model and by every audit.
    signature_memo: dict[bytes, tuple[PublicKey, ...]] = field(default_factory=dict, init=False, compare=False,
                                                               repr=False)

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
                        f"{'key ' + trusted.key_id if trusted.key else trusted.label} is already listed{was} "
                        f"(evaluator {first[0].id}); list each key once, with its revocation on that one entry",
                    )

    def keys(self) -> list[PublicKey]:
        """The raw public keys the store trusts (its key entries)."""
        return [k.key for e in self.evaluators for k in e.keys if k.key is not None]

    def certificate_identities(self) -> list[tuple[Evaluator, TrustedKey]]:
        """The Sigstore and X.509 entries, in the order the store lists them."""
        return [(e, k) for e in self.evaluators for k in e.keys if k.key is None]

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
        return replace(store, digest=trust_digest(raw, keys), files=(Path(path), *(full for _, full in key_files)),
                       raw=raw, key_files=tuple(keys))

    @classmethod
    def from_bytes(cls, raw: bytes, key_files: tuple[tuple[str, bytes], ...], source: str) -> TrustStore:
        """Rebuild a trust store from what :meth:`load` read: the file's bytes and the files it names by path
        (``(path as written, bytes)``, in the order it names them), with the same digest. Nothing is read from
        disk. Raises :class:`ConfigError` naming ``source`` when they do not make a trust store, or the files are
        not exactly those the trust store names."""
        data = parse_yaml(raw, source)
        store = cls.from_dict(data, source=source, base_dir=dict(key_files))
        named = [written for written, _ in _key_files(data, Path("."))]
        given = [written for written, _ in key_files]
        if named != given:
            raise config_error(source, None, f"names key files {named}, but {given} were given")
        return replace(store, digest=trust_digest(raw, list(key_files)), raw=bytes(raw), key_files=tuple(key_files))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>", base_dir: KeyFiles = None) -> TrustStore:
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


#: Where files named by path come from: a directory (relative paths are relative to it), the recorded bytes by path
#: as written (:meth:`TrustStore.from_bytes`: nothing is read from disk), or nowhere (absolute paths only).
KeyFiles = Path | Mapping[str, bytes] | None


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
            written_paths = [item["path"]] if "path" in item else []
            written_paths += [*item.get("x509", {}).get("roots", []), *item.get("x509", {}).get("intermediates", [])]
            if "trusted_root" in item.get("sigstore", {}):
                written_paths.append(item["sigstore"]["trusted_root"])
            for written in map(str, written_paths):
                full = Path(written)
                found.append((written, full if full.is_absolute() else base_dir / full))
    return found


_EVALUATOR_FIELDS = {"id", "organization", "kind", "keys", "scope"}
_KINDS = ("pem", "path", "sigstore", "x509")
_KEY_FIELDS = {*_KINDS, "valid_from", "valid_until", "revoked_at", "compromised", "self_reported_time"}
_SIGSTORE_FIELDS = {"issuer", "identity", "identity_pattern", "trusted_root"}
_X509_FIELDS = {"roots", "intermediates", "subject", "san", "san_pattern", "extended_key_usage"}


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


def _evaluator(item: Any, source: str, where: str, base_dir: KeyFiles) -> Evaluator:
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
        raise config_error(source, f"{where}.keys", "must list at least one signing identity (a key, sigstore or x509)")
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


def _resolve(written: str, base_dir: Path | None) -> Path:
    path = Path(written)
    # relative paths are relative to the trust store, not the cwd
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def _read(written: str, base_dir: KeyFiles, what: str) -> tuple[bytes, str]:
    """The bytes of the file a trust store names as ``written``, and its name for messages: from the recorded bytes
    when rebuilding (:meth:`TrustStore.from_bytes`), else from disk. Raises ConfigError."""
    if isinstance(base_dir, Mapping):
        if written not in base_dir:
            raise ConfigError(f"{what} {written!r} is not among the recorded files")
        return base_dir[written], written
    path = _resolve(written, base_dir)
    return read_limited(path, what), str(path)


def _mapping(item: Any, known: set[str], source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise config_error(source, where, f"must be a mapping ({', '.join(sorted(known))})")
    unknown = set(item) - known
    if unknown:
        raise config_error(source, f"{where}.{min(unknown)}", f"unknown field (expected {', '.join(sorted(known))})")
    _no_nulls(item, source, where)
    return item


def _pattern(item: Mapping[str, Any], key: str, source: str, where: str) -> str | None:
    if key not in item:
        return None
    value = _require_text(item, key, source, where)
    try:
        compile_pattern(value)
    except ValueError as exc:
        raise config_error(source, f"{where}.{key}", str(exc)) from None
    return value


def _sigstore(item: Any, source: str, where: str, base_dir: KeyFiles) -> SigstoreIdentity:
    item = _mapping(item, _SIGSTORE_FIELDS, source, where)
    issuer = _require_text(item, "issuer", source, where)
    if ("identity" in item) == ("identity_pattern" in item):
        raise config_error(source, where, "give exactly one of 'identity' (exact) or 'identity_pattern' (a regular "
                                          "expression the whole identity must match)")
    identity = _require_text(item, "identity", source, where) if "identity" in item else None
    if "trusted_root" in item:
        written = _require_text(item, "trusted_root", source, where)
        try:
            root, name = _read(written, base_dir, "Sigstore trusted root")
            check_trusted_root(root, name)
        except ConfigError as exc:
            raise config_error(source, f"{where}.trusted_root", str(exc)) from None
    else:
        root, name = public_good_root()
    return SigstoreIdentity(issuer, identity, _pattern(item, "identity_pattern", source, where), root, name)


def _certificates(item: Mapping[str, Any], key: str, source: str, where: str, base_dir: KeyFiles,
                  required: bool) -> tuple[x509.Certificate, ...]:
    paths = item.get(key, [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths) or (required and not paths):
        raise config_error(source, f"{where}.{key}",
                           "must list PEM certificate files" + (" (one at least)" if required else ""))
    found: list[x509.Certificate] = []
    for index, written in enumerate(paths):
        try:
            data, path = _read(written, base_dir, "certificate")
            found.extend(x509.load_pem_x509_certificates(data))
        except ConfigError as exc:
            raise config_error(source, f"{where}.{key}[{index}]", str(exc)) from None
        except ValueError:
            raise config_error(source, f"{where}.{key}[{index}]",
                               f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    return tuple(found)


def _x509(item: Any, source: str, where: str, base_dir: KeyFiles) -> X509Identity:
    item = _mapping(item, _X509_FIELDS, source, where)
    if not {"subject", "san", "san_pattern"} & set(item):
        raise config_error(source, where, "name whose certificates count: 'subject', 'san' or 'san_pattern' (else "
                                          "every certificate the CA ever issued would)")
    if "san" in item and "san_pattern" in item:
        raise config_error(source, where, "give 'san' (exact) or 'san_pattern', not both")
    usages = item.get("extended_key_usage", ["codeSigning"])
    if not isinstance(usages, list) or not usages or not all(isinstance(u, str) for u in usages):
        raise config_error(source, f"{where}.extended_key_usage", "must list extended key usages (e.g. [codeSigning])")
    for usage in usages:
        try:
            eku_oid(usage)
        except ValueError as exc:
            raise config_error(source, f"{where}.extended_key_usage", str(exc)) from None
    subject = _require_text(item, "subject", source, where) if "subject" in item else None
    if subject is not None:
        try:
            subject = x509.Name.from_rfc4514_string(subject).rfc4514_string()  # one spelling of the name
        except ValueError as exc:
            raise config_error(source, f"{where}.subject", f"not an RFC 4514 name: {exc}") from None
    return X509Identity(
        roots=_certificates(item, "roots", source, where, base_dir, required=True),
        intermediates=_certificates(item, "intermediates", source, where, base_dir, required=False),
        subject=subject,
        san=_require_text(item, "san", source, where) if "san" in item else None,
        san_pattern=_pattern(item, "san_pattern", source, where),
        extended_key_usages=tuple(usages),
    )


def _identity(item: Mapping[str, Any], source: str, where: str, base_dir: KeyFiles) -> Identity:
    given = [kind for kind in _KINDS if kind in item]
    if len(given) != 1:
        raise config_error(source, where, "give exactly one of 'pem' or 'path' (a key), 'sigstore' (a keyless "
                                          "identity) or 'x509' (a CA's certificates)")
    if "pem" in item:
        return PublicKey.from_pem(str(item["pem"]).encode("utf-8"), f"{source}: {where}.pem")
    if "sigstore" in item:
        return _sigstore(item["sigstore"], source, f"{where}.sigstore", base_dir)
    if "x509" in item:
        return _x509(item["x509"], source, f"{where}.x509", base_dir)
    try:
        if isinstance(base_dir, Mapping):  # rebuilt from recorded bytes: nothing is read from disk
            data, name = _read(str(item["path"]), base_dir, "public key")
            return PublicKey.from_pem(data, name)
        return PublicKey.load(_resolve(str(item["path"]), base_dir))
    except ConfigError as exc:
        raise config_error(source, f"{where}.path", str(exc)) from None


def _trusted_key(item: Any, source: str, where: str, base_dir: KeyFiles) -> TrustedKey:
    item = _mapping(item, _KEY_FIELDS, source, where)
    identity = _identity(item, source, where, base_dir)
    flags = {}
    for name in ("compromised", "self_reported_time"):
        if name in item and not isinstance(item[name], bool):
            raise config_error(source, f"{where}.{name}", "must be true or false")
        flags[name] = item.get(name)
    trusted = TrustedKey(
        identity=identity,
        valid_from=_time_field(item, "valid_from", source, where),
        valid_until=_time_field(item, "valid_until", source, where),
        revoked_at=_time_field(item, "revoked_at", source, where),
        compromised=bool(flags["compromised"]),
        self_reported_time=flags["self_reported_time"],
        line=line_of(item),
    )
    if trusted.compromised and trusted.revoked_at is None:
        raise config_error(source, f"{where}.revoked_at", "a compromised key needs the time it was revoked")
    if trusted.valid_from and trusted.valid_until and trusted.valid_until <= trusted.valid_from:
        raise config_error(source, f"{where}.valid_until", "must be after valid_from")
    return trusted
