"""C2SP tlog-cosignature and the tlog-witness rules, against vectors from transparency-dev (tests/vectors/README.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tiergate.core.keys import PrivateKey
from tiergate.core.log import merkle
from tiergate.core.log.checkpoint import (
    Checkpoint,
    NoteFormatError,
    NoteSignature,
    NoteSigner,
    NoteVerificationError,
    NoteVerifier,
    SignedNote,
    parse_checkpoint,
)
from tiergate.core.log.cosignature import (
    Cosignature,
    WitnessSigner,
    WitnessVerifier,
    cosignatures_of,
    require_cosignatures,
    signed_message,
)
from tiergate.core.log.witness import (
    AddCheckpoint,
    WatchedLog,
    Witness,
    WitnessRefusal,
    WitnessState,
)
from tiergate.errors import ConfigError

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "tlog-witness"
WITNESS = json.loads((VECTORS / "transparency-dev-witness.json").read_text())
FORMATS = json.loads((VECTORS / "transparency-dev-formats.json").read_text())
ORIGIN = "example.com/log"


def _go_skey(skey: str) -> PrivateKey:
    """A Go ``PRIVATE+KEY+name+id+base64(0x01 || seed)`` note key, as transparency-dev's tests write them."""
    raw = base64.b64decode(skey.split("+")[4])
    assert raw[0] == 0x01
    return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(raw[1:]))


def _cosigned(text: str, *lines: str) -> SignedNote:
    return SignedNote.parse(text + "\n" + "".join(lines))


# --- cosignature/v1 ---------------------------------------------------------------------------------------------


def test_the_signed_message_is_header_time_and_checkpoint_text() -> None:
    body = Checkpoint(ORIGIN, 20852163, bytes(32)).body()
    assert signed_message(body, 1679315147) == f"cosignature/v1\ntime 1679315147\n{body}".encode()
    with pytest.raises(NoteFormatError):
        signed_message(body, 1 << 63)


def test_a_cosignature_verifies_and_its_line_round_trips() -> None:
    signer = WitnessSigner("witness.example/w1", PrivateKey.generate())
    checkpoint = Checkpoint(ORIGIN, 3, bytes(range(32)))
    cosignature = signer.cosign(checkpoint, 1700000000)
    note = _cosigned(checkpoint.body(), cosignature.line())
    assert cosignatures_of(note, [signer.verifier]) == [cosignature]
    parsed = Cosignature.from_note_signature(note.signatures[0])
    assert parsed.timestamp == 1700000000 and parsed.key_id == signer.verifier.key_id
    assert WitnessVerifier.from_vkey(signer.verifier.vkey()) == signer.verifier
    # Over another checkpoint it does not verify, and a trusted witness's bad line rejects the note.
    other = Checkpoint(ORIGIN, 4, bytes(range(32))).body()
    with pytest.raises(NoteVerificationError, match="does not verify"):
        cosignatures_of(_cosigned(other, cosignature.line()), [signer.verifier])


def test_a_witness_key_id_is_not_a_note_key_id() -> None:
    """Type 0x04 vs 0x01: a log signature by the same key is not a cosignature, nor the reverse."""
    key = PrivateKey.generate()
    witness, log = WitnessSigner("same-name", key), NoteSigner("same-name", key)
    assert witness.verifier.key_id != log.key_id
    checkpoint = Checkpoint("same-name", 1, bytes(32))
    log_signed = SignedNote.parse(checkpoint.sign(key))
    assert cosignatures_of(log_signed, [witness.verifier]) == []


def test_k_of_n_counts_distinct_trusted_witnesses_only() -> None:
    witnesses = [WitnessSigner(f"w{i}.example", PrivateKey.generate()) for i in range(3)]
    stranger = WitnessSigner("stranger.example", PrivateKey.generate())
    checkpoint = Checkpoint(ORIGIN, 9, bytes(32))
    trusted = [w.verifier for w in witnesses]
    one = witnesses[0].cosign(checkpoint, 1)
    again = witnesses[0].cosign(checkpoint, 2)  # the same witness twice counts once
    note = _cosigned(checkpoint.body(), one.line(), again.line(), stranger.cosign(checkpoint, 1).line())
    with pytest.raises(NoteVerificationError, match="1 valid cosignature.*2 are required"):
        require_cosignatures(note, trusted, 2)
    two = _cosigned(checkpoint.body(), one.line(), witnesses[2].cosign(checkpoint, 5).line())
    assert len(require_cosignatures(two, trusted, 2)) == 2


# --- interoperability: transparency-dev/formats ------------------------------------------------------------------


def test_vkeys_and_key_ids_match_transparency_dev_formats() -> None:
    native = WitnessVerifier.from_vkey(FORMATS["native_cosignature_vkey"])
    assert native.vkey() == FORMATS["native_cosignature_vkey"]  # name+da77ade7+base64(0x04 || key)
    converted = WitnessVerifier.from_vkey(FORMATS["ed25519_vkey_for_cosigning"])
    assert converted.name == "TEST" and converted.vkey().startswith("TEST+")
    with pytest.raises(ConfigError, match="does not match"):
        WitnessVerifier.from_vkey(FORMATS["bad_key_id_vkey"])


def test_the_timestamp_layout_matches_transparency_dev_formats() -> None:
    good = NoteSignature("w", *_split(FORMATS["cosignature_with_timestamp"]))
    assert Cosignature.from_note_signature(good).timestamp == FORMATS["cosignature_timestamp"]
    plain = NoteSignature("w", *_split(FORMATS["not_a_cosignature"]))
    with pytest.raises(NoteFormatError, match="not a cosignature"):
        Cosignature.from_note_signature(plain)


def _split(encoded: str) -> tuple[bytes, bytes]:
    raw = base64.b64decode(encoded)
    return raw[:4], raw[4:]


# --- the witness, on transparency-dev/witness's checkpoints and proof ---------------------------------------------


def _witness(tmp_path: Path, clock: float = 1727964367.0) -> Witness:
    log = WatchedLog(WITNESS["origin"], (NoteVerifier.from_vkey(WITNESS["log_vkey"]),))
    signer = WitnessSigner("witness", _go_skey(WITNESS["witness_skey"]))
    return Witness(signer, {log.origin: log}, WitnessState(tmp_path / "state.json"), lambda: clock)


PROOF = tuple(bytes.fromhex(h) for h in WITNESS["consistency_proof_5_8"])


def test_the_witness_follows_a_log_with_consistency_proofs(tmp_path: Path) -> None:
    witness = _witness(tmp_path)
    first = witness.add_checkpoint(AddCheckpoint(0, (), WITNESS["init"].encode()))
    second = witness.add_checkpoint(AddCheckpoint(5, PROOF, WITNESS["next"].encode()))
    checkpoint, _ = parse_checkpoint(WITNESS["next"])
    assert witness.signer.verifier.verify(checkpoint.body(), second) and first.timestamp == 1727964367
    # The Go witness's own key, in its 0x01 vkey form, verifies what ours signed with the matching private key.
    assert WitnessVerifier.from_vkey(WITNESS["witness_vkey"]).verify(checkpoint.body(), second)
    # The state survives a restart.
    assert WitnessState(tmp_path / "state.json").latest(WITNESS["origin"]) == (8, checkpoint.root_hash)


@pytest.mark.parametrize(("old", "proof", "note", "status"), [
    (5, tuple(bytes([i]) * 32 for i in range(4)), "next", 422),  # a garbage proof
    (0, (), "next", 409),  # not the latest cosigned size
    (8, (), "init", 400),  # old size above the checkpoint's
    (5, PROOF, "other_origin", 404),  # a log the witness does not watch
])
def test_the_witness_refuses_with_the_specified_status(tmp_path: Path, old: int, proof: tuple[bytes, ...], note: str,
                                                       status: int) -> None:
    witness = _witness(tmp_path)
    witness.add_checkpoint(AddCheckpoint(0, (), WITNESS["init"].encode()))
    with pytest.raises(WitnessRefusal) as refused:
        witness.add_checkpoint(AddCheckpoint(old, proof, WITNESS[note].encode()))
    assert refused.value.status == status
    if status == 409:
        assert refused.value.size == 5
    assert witness.state.latest(WITNESS["origin"])[0] == 5  # nothing changed


def test_a_fork_of_the_same_size_is_refused(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    log = WatchedLog(ORIGIN, (NoteSigner(ORIGIN, key).verifier,))
    witness = Witness(WitnessSigner("w", PrivateKey.generate()), {ORIGIN: log}, WitnessState(tmp_path / "s"),
                      lambda: 1.0)
    a = merkle.MerkleTree([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    b = merkle.MerkleTree([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"forged")])
    witness.add_checkpoint(AddCheckpoint(0, (), Checkpoint(ORIGIN, 2, a.root()).sign(key)))
    with pytest.raises(WitnessRefusal, match="forked") as refused:
        witness.add_checkpoint(AddCheckpoint(2, (), Checkpoint(ORIGIN, 2, b.root()).sign(key)))
    assert refused.value.status == 409
    # A checkpoint signed by another key is a 403, whatever it says.
    with pytest.raises(WitnessRefusal) as forbidden:
        witness.add_checkpoint(AddCheckpoint(2, (), Checkpoint(ORIGIN, 2, a.root()).sign(PrivateKey.generate())))
    assert forbidden.value.status == 403


def test_requests_are_parsed_strictly() -> None:
    request = AddCheckpoint(5, PROOF, WITNESS["next"].encode())
    assert AddCheckpoint.parse(request.encode()) == request
    for bad in (b"old 05\n\nx", b"old 5\nnot-base64\n\nx", b"old 5\nx", b"old -1\n\nx",
                b"old 1\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64)) + b"\nx"):
        with pytest.raises(WitnessRefusal) as refused:
            AddCheckpoint.parse(bad)
        assert refused.value.status == 400


def test_an_unreadable_state_stops_the_witness(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"logs": {"x": {"size": 1, "root": "short"}}}')
    with pytest.raises(ConfigError, match="restore it"):
        WitnessState(state)


def test_nothing_is_cosigned_when_the_state_cannot_be_written(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    witness = _witness(folder)
    witness.add_checkpoint(AddCheckpoint(0, (), WITNESS["init"].encode()))
    (folder / "state.json").unlink()
    folder.rmdir()  # the state cannot be replaced any more
    with pytest.raises(OSError):
        witness.add_checkpoint(AddCheckpoint(5, PROOF, WITNESS["next"].encode()))
    assert witness.state.latest(WITNESS["origin"])[0] == 5  # not advanced: the next request is judged from 5
