"""C2SP signed notes and tlog-checkpoints: the signed tree heads auditors and witnesses exchange.

Formats (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint), chosen because Go's sumdb, Sigstore,
Trillian-tessera and the public witness network already read them:

- a signed note is UTF-8 text ending in a newline, a blank line, then one or more lines
  ``— <key name> base64(key ID (4 bytes, big-endian) || signature)``;
- for Ed25519 the key ID is ``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]`` and the signature is over
  the note text (which includes its final newline but not the blank line);
- a checkpoint's text is ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` then optional non-empty extension lines;
- a verifier key is written ``<name>+<8 hex digits of the key ID>+base64(0x01 || public key)`` (a "vkey").

Parsing is strict: anything the specifications do not allow (a control character, a size with a leading zero,
non-canonical base64, a missing final newline, more than 1 MiB) is refused with a one-line reason, because a
verifier that accepts two spellings of one checkpoint invites split views. Verification follows the note rules:
signatures from unknown keys are ignored, a known key whose signature fails rejects the whole note, and a note
without any verified signature is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tiergate.core.files import read_limited
from tiergate.core.keys import PrivateKey, PublicKey
from tiergate.errors import ConfigError, InputError, VerificationError

from .merkle import HASH_SIZE

MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16; Go's sumdb/note stops at 100
SIGNATURE_TYPE_ED25519 = 0x01
KEY_ID_SIZE = 4
ED25519_SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_TREE_SIZE = (1 << 64) - 1

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


class NoteFormatError(InputError):
    """A signed note, checkpoint or its text breaks the format rules. The message is the one-line reason."""


class NoteVerificationError(VerificationError):
    """A signed note or checkpoint is well formed but not signed by a trusted key (or for the wrong log)."""


# --- small helpers -----------------------------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_strict(text: str) -> bytes | None:
    """Standard, padded, canonical base64 or ``None``: two spellings of one value must not both verify."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return raw if _b64encode(raw) == text else None


def _control_character(text: str, allow_newline: bool) -> str | None:
    """Name (and line) of the first ASCII control character in ``text``; notes allow only the newline."""
    for offset, ch in enumerate(text):
        if ord(ch) < 0x20 and not (allow_newline and ch == "\n"):
            line = text.count("\n", 0, offset) + 1
            return f"U+{ord(ch):04X}" + (f" on line {line}" if allow_newline else "")
    return None


def key_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a note key name (non-empty, no Unicode space, no '+'), or ``None`` if it can."""
    if not isinstance(name, str):
        return f"must be text, not {type(name).__name__}"
    if not name:
        return "is empty"
    for ch in name:
        if ch.isspace():
            return f"contains a space character (U+{ord(ch):04X})"
        if ch == "+":
            return "contains '+'"
        if ord(ch) < 0x20:
            return f"contains control character U+{ord(ch):04X}"
    return None


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """Key ID of an Ed25519 note key: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key).digest()[
        :KEY_ID_SIZE
    ]


def raw_ed25519(key: PublicKey, what: str, requirement: str = "note signatures need an Ed25519 key") -> bytes:
    """The 32 raw bytes of an Ed25519 ``key``; raises ConfigError ``"<what>: <requirement>, not <algorithm>"``."""
    if not isinstance(key.key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{what}: {requirement}, not {key.algorithm}")
    return key.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- keys --------------------------------------------------------------------------------------------------------


def vkey_text(text: str, source: str) -> str:
    """A vkey given as text (it has a '+'), or read from the file ``text`` names. Raises ConfigError."""
    if "+" in text and not Path(text).is_file():
        return text
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"{source}: {text[:200]!r} is neither a verifier key nor a file")
    return read_limited(path, "verifier key file", 64 * 1024).decode("utf-8", "replace").strip()


def parse_vkey(text: str, source: str, key_ids: Mapping[int, Callable[[str, bytes], bytes]],
               supported: str) -> tuple[str, PublicKey]:
    """Name and Ed25519 key of a vkey ``<name>+<8 hex digits>+base64(type || key)`` whose type is one of ``key_ids``
    (each with how its key ID is derived); the key ID must match. Raises ConfigError naming ``source``."""
    if not isinstance(text, str):
        raise ConfigError(f"{source}: a verifier key is text, not {type(text).__name__}")
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise ConfigError(f"{source}: expected <name>+<8 hex digits>+<base64 key>, got {text!r}")
    name, key_id_hex, encoded = parts
    problem = key_name_problem(name)
    if problem:
        raise ConfigError(f"{source}: key name {name!r} {problem}")
    if not _KEY_ID_HEX.fullmatch(key_id_hex):
        raise ConfigError(f"{source}: key ID {key_id_hex!r} is not 8 lowercase hex digits")
    raw = _b64decode_strict(encoded)
    if raw is None:
        raise ConfigError(f"{source}: the key is not canonical standard base64")
    if not raw or raw[0] not in key_ids:
        kind = f"0x{raw[0]:02x}" if raw else "missing"
        raise ConfigError(f"{source}: signature type {kind} is not supported (only {supported})")
    if len(raw) != 1 + 32:
        raise ConfigError(f"{source}: an Ed25519 key is 32 bytes, this one is {len(raw) - 1}")
    if key_ids[raw[0]](name, raw[1:]).hex() != key_id_hex:
        raise ConfigError(f"{source}: key ID {key_id_hex} does not match the name and key (corrupted key?)")
    try:
        public = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise ConfigError(f"{source}: not a valid Ed25519 public key") from None
    return name, PublicKey(public)


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted note key: a name and an Ed25519 public key (the pair the key ID is derived from)."""

    name: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        problem = key_name_problem(self.name)
        if problem:
            raise ConfigError(f"note key name {self.name!r} {problem}")
        raw_ed25519(self.public_key, f"note key {self.name}")

    @property
    def raw_public_key(self) -> bytes:
        return raw_ed25519(self.public_key, f"note key {self.name}")

    @property
    def key_id(self) -> bytes:
        return ed25519_key_id(self.name, self.raw_public_key)

    def vkey(self) -> str:
        """The standard text form ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
        encoded = _b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.raw_public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, text: str, source: str = "verifier key") -> NoteVerifier:
        """Parse a vkey, checking the key ID against the name and key so a typo cannot name another key."""
        name, public = parse_vkey(text, source, {SIGNATURE_TYPE_ED25519: ed25519_key_id}, "0x01, Ed25519")
        return cls(name, public)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True if ``signature`` (without the key ID) is this key's Ed25519 signature over ``text``."""
        return len(signature) == ED25519_SIGNATURE_SIZE and self.public_key.verify(signature, text)


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 private key with the note key name it signs under (for a log, usually its origin)."""

    name: str
    private_key: PrivateKey

    def __post_init__(self) -> None:
        problem = key_name_problem(self.name)
        if problem:
            raise ConfigError(f"note key name {self.name!r} {problem}")
        raw_ed25519(self.private_key.public, f"note key {self.name}")

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.private_key.public)

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def sign(self, text: str) -> NoteSignature:
        return NoteSignature(self.name, self.key_id, self.private_key.sign(text.encode("utf-8")))


# --- notes -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the raw signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"

    @property
    def key(self) -> str:
        """``name+hexid``, how the key is named in messages."""
        return f"{self.name}+{self.key_id.hex()}"


@dataclass(frozen=True)
class SignedNote:
    """A note's text and its signature lines, parsed but not verified."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(sig.line() for sig in self.signatures)).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes | str) -> SignedNote:
        """Split a signed note into text and signature lines, enforcing every syntax rule of the spec."""
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError:
                raise NoteFormatError("signed note is not valid UTF-8") from None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise NoteFormatError(f"a signed note is bytes or text, not {type(data).__name__}")
        data = bytes(data)
        if len(data) > MAX_NOTE_SIZE:
            raise NoteFormatError(f"signed note is {len(data)} bytes; the limit is {MAX_NOTE_SIZE} (1 MiB)")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteFormatError(f"signed note is not valid UTF-8 (byte {exc.start})") from None
        bad = _control_character(message, allow_newline=True)
        if bad:
            raise NoteFormatError(f"signed note contains control character {bad}")
        split = message.rfind("\n\n")
        if split < 0:
            raise NoteFormatError("signed note has no blank line between the text and the signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block:
            raise NoteFormatError("signed note has no signature lines after the blank line")
        if not block.endswith("\n"):
            raise NoteFormatError("the last signature line of the note does not end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteFormatError(f"signed note has {len(lines)} signature lines; the limit is {MAX_SIGNATURES}")
        return cls(text, tuple(_parse_signature_line(line, number) for number, line in enumerate(lines, 1)))


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    where = f"signature line {number}"
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteFormatError(f"{where} does not start with an em dash and a space: {line[:40]!r}")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise NoteFormatError(f"{where} has no space between the key name and the signature")
    problem = key_name_problem(name)
    if problem:
        raise NoteFormatError(f"{where}: key name {name!r} {problem}")
    raw = _b64decode_strict(encoded)
    if raw is None:
        raise NoteFormatError(f"{where}: the signature is not canonical standard base64")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteFormatError(f"{where}: the signature is {len(raw)} bytes, too short for a key ID and a signature")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def _check_note_text(text: str) -> None:
    if not isinstance(text, str):
        raise NoteFormatError(f"note text must be str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteFormatError("note text must end with a newline")
    bad = _control_character(text, allow_newline=True)
    if bad:
        raise NoteFormatError(f"note text contains control character {bad}")


def sign_note(text: str, signers: NoteSigner | Sequence[NoteSigner], keep: Sequence[NoteSignature] = ()) -> bytes:
    """Sign ``text`` with each signer; ``keep`` are existing signatures (e.g. witnesses') written before the new ones.

    A kept signature by a key that signs anew is dropped, so re-signing never duplicates a key.
    """
    _check_note_text(text)
    signer_list = [signers] if isinstance(signers, NoteSigner) else list(signers)
    if not signer_list:
        raise NoteFormatError("a signed note needs at least one signer")
    fresh = [signer.sign(text) for signer in signer_list]
    renewed = {(sig.name, sig.key_id) for sig in fresh}
    kept = [sig for sig in keep if (sig.name, sig.key_id) not in renewed]
    note = SignedNote(text, tuple(kept + fresh))
    encoded = note.encode()
    SignedNote.parse(encoded)  # never emit what our own parser would refuse (too large, too many signatures)
    return encoded


@dataclass(frozen=True)
class OpenedNote:
    """A note whose signatures were checked: ``verified`` by trusted keys, ``unverified`` by unknown ones."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def open_note(data: bytes | str, verifiers: NoteVerifier | Sequence[NoteVerifier]) -> OpenedNote:
    """Parse and verify a signed note against trusted keys (signed-note rules, as Go's ``note.Open``)."""
    note = SignedNote.parse(data)
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for trusted in [verifiers] if isinstance(verifiers, NoteVerifier) else verifiers:
        slot = (trusted.name, trusted.key_id)
        if slot in known and known[slot].raw_public_key != trusted.raw_public_key:
            raise ConfigError(f"two different trusted keys share the name and key ID {trusted.name}+{slot[1].hex()}")
        known[slot] = trusted
    text = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in note.signatures:
        slot = (sig.name, sig.key_id)
        verifier = known.get(slot)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if slot in seen:
            continue  # a repeated signature by one key adds nothing; the first one decides
        seen.add(slot)
        if not verifier.verify(text, sig.signature):
            raise NoteVerificationError(f"the signature by trusted key {sig.key} does not verify over the note text")
        verified.append(sig)
    if not verified:
        signed_by = ", ".join(sig.key for sig in note.signatures)
        raise NoteVerificationError(f"the note has no signature by a trusted key (signed by: {signed_by})")
    return OpenedNote(note.text, tuple(verified), tuple(unverified))


# --- checkpoints -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: who (origin), how many leaves (size), and the RFC 6962 root at that size."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise NoteFormatError("checkpoint origin must be non-empty text")
        bad = _control_character(self.origin, allow_newline=False)
        if bad:
            raise NoteFormatError(f"checkpoint origin contains control character {bad}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteFormatError(f"checkpoint tree size {self.size!r} is not an integer from 0 to 2^64-1")
        if not isinstance(self.root_hash, (bytes, bytearray)) or len(self.root_hash) != HASH_SIZE:
            raise NoteFormatError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        object.__setattr__(self, "root_hash", bytes(self.root_hash))
        if isinstance(self.extensions, str):
            raise NoteFormatError("checkpoint extensions are a sequence of lines, not one string")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for number, line in enumerate(self.extensions, 1):
            if not isinstance(line, str) or not line:
                raise NoteFormatError(f"checkpoint extension line {number} must be non-empty text")
            bad = _control_character(line, allow_newline=False)
            if bad:
                raise NoteFormatError(f"checkpoint extension line {number} contains control character {bad}")

    def body(self) -> str:
        """The note text that gets signed: origin, size, base64 root, extensions; each line ends in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly (tlog-checkpoint section "Note text")."""
        if not isinstance(text, str):
            raise NoteFormatError(f"checkpoint text must be str, not {type(text).__name__}")
        if not text.endswith("\n"):
            raise NoteFormatError("checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteFormatError(f"checkpoint has {len(lines)} line(s); it needs origin, tree size and root hash")
        for number, line in enumerate(lines, 1):
            if not line:
                raise NoteFormatError(f"checkpoint line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise NoteFormatError(
                f"checkpoint tree size {size_text[:30]!r} is not a decimal number below 2^64 without leading zeros"
            )
        root = _b64decode_strict(root_text)
        if root is None or len(root) != HASH_SIZE:
            raise NoteFormatError(f"checkpoint root hash {root_text[:60]!r} is not canonical base64 of 32 bytes")
        return cls(origin, int(size_text), root, tuple(extensions))

    def sign(self, key: PrivateKey, name: str | None = None) -> bytes:
        """The signed note for this checkpoint; the key name defaults to the origin, as the spec recommends."""
        return sign_note(self.body(), NoteSigner(self.origin if name is None else name, key))


def parse_checkpoint(data: bytes | str) -> tuple[Checkpoint, SignedNote]:
    """Parse a signed checkpoint without verifying it, e.g. to show it or to pick the key that should verify it."""
    note = SignedNote.parse(data)
    return Checkpoint.from_body(note.text), note


def verify_checkpoint(
    data: bytes | str,
    verifiers: NoteVerifier | Sequence[NoteVerifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint against trusted log keys and, if given, the log's expected origin.

    The text is checked to be a well-formed checkpoint before the signature, so a malformed note is reported as
    such (:class:`NoteFormatError`) rather than as a bad signature.
    """
    checkpoint, _ = parse_checkpoint(data)
    if origin is not None and checkpoint.origin != origin:
        raise NoteVerificationError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    open_note(data, verifiers)
    return checkpoint
