"""The key a checkpoint must be signed with: a C2SP vkey (``name+keyid+base64``) or the gate's PEM public key.

A PEM key has no name, and the note key name is part of what is signed; the gate signs under its origin, so the
name is ``--origin`` when given, else the origin the checkpoint itself states (then any origin signed by this key
is accepted: pass ``--origin`` to pin it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tiergate.core.keys import PublicKey
from tiergate.core.log.checkpoint import Checkpoint, NoteVerifier, parse_checkpoint, verify_checkpoint
from tiergate.core.log.cosignature import WitnessVerifier, require_cosignatures
from tiergate.core.files import read_limited
from tiergate.errors import ConfigError, UsageError, VerificationError


@dataclass(frozen=True)
class CheckpointKey:
    verifier: NoteVerifier | None  # from a vkey file
    public_key: PublicKey | None  # from a PEM file: the name comes from the origin
    origin: str | None
    #: Witnesses whose cosignatures count, and how many of them a checkpoint must carry (0: none required).
    witnesses: tuple[WitnessVerifier, ...] = ()
    required: int = 0

    @classmethod
    def load(cls, key_file: Path | None, pub: Path | None, origin: str | None, witness_keys: Sequence[str] = (),
             required: int = 0) -> CheckpointKey:
        """Raises UsageError/ConfigError for a missing key, an unreadable witness key, or K over the witnesses."""
        if (key_file is None) == (pub is None):
            raise UsageError("give the gate's log key: --key-file VKEY (as `gate serve` prints it) or --pub GATE.pub")
        witnesses = tuple(WitnessVerifier.load(k, "--witness") for k in witness_keys)
        if required > len({(w.name, w.key_id) for w in witnesses}):
            raise UsageError(f"--witnesses-required {required} is more than the {len(witnesses)} distinct --witness "
                             "keys given")
        if key_file is not None:
            text = read_limited(key_file, "verifier key file", 64 * 1024).decode("utf-8", "replace").strip()
            return cls(NoteVerifier.from_vkey(text, str(key_file)), None, origin, witnesses, required)
        assert pub is not None
        return cls(None, PublicKey.load(pub), origin, witnesses, required)

    def verify(self, note: bytes, what: str = "checkpoint") -> Checkpoint:
        """The checkpoint in ``note`` if it is signed by this key (and for the pinned origin) and carries the required
        witness cosignatures; raises otherwise."""
        try:
            if self.verifier is not None:
                checkpoint = verify_checkpoint(note, self.verifier, origin=self.origin)
            else:
                assert self.public_key is not None
                stated, _ = parse_checkpoint(note)
                name = self.origin or stated.origin
                checkpoint = verify_checkpoint(note, NoteVerifier(name, self.public_key), origin=self.origin)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None
        if self.required or self.witnesses:
            _, signed = parse_checkpoint(note)
            try:
                require_cosignatures(signed, self.witnesses, self.required)
            except VerificationError as exc:
                raise VerificationError(f"{what}: {exc}") from None
        return checkpoint


def read_checkpoint_file(path: Path) -> bytes:
    return read_limited(path, "checkpoint file", 1 << 20)
