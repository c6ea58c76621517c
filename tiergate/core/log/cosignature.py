"""C2SP tlog-cosignature (``cosignature/v1``, Ed25519): a witness's timestamped statement about a checkpoint.

Format (https://c2sp.org/tlog-cosignature), chosen because the public witness network and its clients
(transparency-dev/witness, sigsum, litewitness) speak it:

- a cosignature is a signed-note signature line ``— <witness name> base64(key ID || timestamp || signature)``;
- the key ID is ``SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]`` (type 0x04, not the 0x01 of an
  ordinary note key, so a witness key can never pass for a log key nor the reverse);
- the timestamp is 8 bytes, big-endian POSIX seconds, at most 2^63 - 1;
- the Ed25519 signature is over ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint's note text.

A cosignature says: as of that time, this is the largest checkpoint of that log the witness has seen, and it is
consistent with every earlier one it cosigned. Requiring k of them from independent witnesses is what turns a
split view (two logs shown to two audiences) into something k witnesses would have to sign twice.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from tiergate.core.keys import PrivateKey, PublicKey
from tiergate.errors import ConfigError

from .checkpoint import (
    ED25519_SIGNATURE_SIZE,
    KEY_ID_SIZE,
    Checkpoint,
    NoteFormatError,
    NoteSignature,
    NoteVerificationError,
    SignedNote,
    _b64encode,
    ed25519_key_id,
    key_name_problem,
    parse_vkey,
    raw_ed25519,
    vkey_text,
)

SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04
COSIGNATURE_SIZE = KEY_ID_SIZE + 8 + ED25519_SIGNATURE_SIZE
MAX_TIMESTAMP = (1 << 63) - 1
_HEADER = "cosignature/v1\n"


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """Key ID of a cosignature/v1 key: ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_COSIGNATURE_V1]) + public_key).digest()[
        :KEY_ID_SIZE
    ]


def signed_message(body: str, timestamp: int) -> bytes:
    """What a witness signs: the header line, the time line, then the checkpoint's note text (its final newline
    included). Raises :class:`NoteFormatError` for a timestamp out of range."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteFormatError(f"cosignature timestamp {timestamp!r} is not an integer from 0 to 2^63-1")
    return f"{_HEADER}time {timestamp}\n{body}".encode()


def _raw(key: PublicKey, what: str) -> bytes:
    return raw_ed25519(key, what, "a cosignature/v1 key is Ed25519")


@dataclass(frozen=True)
class Cosignature:
    """One witness's cosignature, parsed from its note signature line (not yet verified)."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def line(self) -> str:
        return NoteSignature(self.name, self.key_id, struct.pack(">Q", self.timestamp) + self.signature).line()

    @classmethod
    def from_note_signature(cls, sig: NoteSignature) -> Cosignature:
        """Raises :class:`NoteFormatError` unless the signature has the cosignature/v1 layout."""
        if len(sig.signature) != COSIGNATURE_SIZE - KEY_ID_SIZE:
            raise NoteFormatError(f"the signature by {sig.key} is {len(sig.signature)} bytes, not a cosignature/v1 "
                                  f"(8-byte time and 64-byte Ed25519 signature)")
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise NoteFormatError(f"the cosignature by {sig.key} has a timestamp over 2^63-1")
        return cls(sig.name, sig.key_id, timestamp, sig.signature[8:])


@dataclass(frozen=True)
class WitnessVerifier:
    """A trusted witness: its name and Ed25519 key (the pair its key ID is derived from)."""

    name: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        problem = key_name_problem(self.name)
        if problem:
            raise ConfigError(f"witness name {self.name!r} {problem}")
        _raw(self.public_key, f"witness key {self.name}")

    @property
    def raw_public_key(self) -> bytes:
        return _raw(self.public_key, f"witness key {self.name}")

    @property
    def key_id(self) -> bytes:
        return cosignature_key_id(self.name, self.raw_public_key)

    def vkey(self) -> str:
        """``<name>+<hex key ID>+base64(0x04 || public key)``, the vkey form the spec allows for witness keys."""
        encoded = _b64encode(bytes([SIGNATURE_TYPE_COSIGNATURE_V1]) + self.raw_public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, text: str, source: str = "witness key") -> WitnessVerifier:
        """Parse a witness vkey (type 0x04; a type 0x01 Ed25519 vkey is taken as the same key used for cosigning, as
        transparency-dev's tools do), checking the key ID so a typo cannot name another key. Raises ConfigError."""
        types = {SIGNATURE_TYPE_COSIGNATURE_V1: cosignature_key_id, 0x01: ed25519_key_id}
        name, public = parse_vkey(text.strip() if isinstance(text, str) else text, source, types,
                                  "0x04, cosignature/v1, or 0x01, Ed25519")
        return cls(name, public)

    @classmethod
    def load(cls, text: str, source: str = "witness key") -> WitnessVerifier:
        """A witness vkey given as text, or the path of a file holding one. Raises ConfigError."""
        return cls.from_vkey(vkey_text(text, source), source)

    def verify(self, body: str, cosignature: Cosignature) -> bool:
        """True if ``cosignature`` is this witness's over the checkpoint text ``body``."""
        if (cosignature.name, cosignature.key_id) != (self.name, self.key_id):
            return False
        return self.public_key.verify(cosignature.signature, signed_message(body, cosignature.timestamp))


@dataclass(frozen=True)
class WitnessSigner:
    """A witness's Ed25519 private key and the name it cosigns under."""

    name: str
    private_key: PrivateKey

    def __post_init__(self) -> None:
        problem = key_name_problem(self.name)
        if problem:
            raise ConfigError(f"witness name {self.name!r} {problem}")
        _raw(self.private_key.public, f"witness key {self.name}")

    @property
    def verifier(self) -> WitnessVerifier:
        return WitnessVerifier(self.name, self.private_key.public)

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> Cosignature:
        signature = self.private_key.sign(signed_message(checkpoint.body(), timestamp))
        return Cosignature(self.name, self.verifier.key_id, timestamp, signature)


def cosignatures_of(note: SignedNote, witnesses: Sequence[WitnessVerifier]) -> list[Cosignature]:
    """The valid cosignatures in ``note`` by distinct ``witnesses`` (one per witness; lines by unknown keys ignored).

    Raises :class:`NoteVerificationError` if a line by a trusted witness is malformed or does not verify: a note
    carrying a forged cosignature is refused as a whole, as the signed-note rules ask of any trusted key.
    """
    trusted = {(w.name, w.key_id): w for w in witnesses}
    valid: dict[tuple[str, bytes], Cosignature] = {}
    for sig in note.signatures:
        slot = (sig.name, sig.key_id)
        witness = trusted.get(slot)
        if witness is None or slot in valid:
            continue
        try:
            cosignature = Cosignature.from_note_signature(sig)
        except NoteFormatError as exc:
            raise NoteVerificationError(f"witness {sig.key}: {exc}") from None
        if not witness.verify(note.text, cosignature):
            raise NoteVerificationError(f"the cosignature by trusted witness {sig.key} does not verify over the "
                                        "checkpoint")
        valid[slot] = cosignature
    return list(valid.values())


def require_cosignatures(note: SignedNote, witnesses: Sequence[WitnessVerifier], required: int) -> list[Cosignature]:
    """At least ``required`` valid cosignatures by distinct trusted witnesses, or :class:`NoteVerificationError`
    naming what was required, what was found and what to do."""
    found = cosignatures_of(note, witnesses)
    if len(found) < required:
        names = ", ".join(sorted(c.name for c in found)) or "none"
        raise NoteVerificationError(
            f"the checkpoint carries {len(found)} valid cosignature(s) of the {len(witnesses)} trusted witnesses "
            f"({names}); {required} are required: wait for the witnesses to cosign, or check that the service "
            "reaches them")
    return found


def parse_cosignature_lines(data: bytes) -> list[NoteSignature]:
    """The note signature lines of a witness's ``add-checkpoint`` answer. Raises :class:`NoteFormatError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteFormatError("the witness's answer is not UTF-8") from None
    if not text.endswith("\n") or len(data) > 64 * 1024:
        raise NoteFormatError("the witness's answer is not newline-terminated signature lines")
    # Reuse the note parser: a dummy text and a blank line in front make the lines a signature block.
    return list(SignedNote.parse("x\n\n" + text).signatures)
