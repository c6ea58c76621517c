"""C2SP signed notes and checkpoints: interop with Go's golang.org/x/mod/sumdb/note, and strict parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tiergate.core.keys import PrivateKey
from tiergate.core.log.checkpoint import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteFormatError,
    NoteSigner,
    NoteVerificationError,
    NoteVerifier,
    SignedNote,
    ed25519_key_id,
    open_note,
    parse_checkpoint,
    sign_note,
    verify_checkpoint,
)
from tiergate.core.log.merkle import MerkleTree, leaf_hash, verify_inclusion
from tiergate.errors import ConfigError, InputError, VerificationError

GO = json.loads((Path(__file__).parent / "data" / "note" / "golang_mod_sumdb_note.json").read_text())
ORIGIN = "gate.example/log/decisions"
ROOT = hashlib.sha256(b"some root").digest()

# The example checkpoint of the C2SP tlog-checkpoint specification (no public key is published for it).
SPEC_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


def go_signer() -> NoteSigner:
    """The PeterNeumann signer from Go's tests: skey is PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)."""
    _, _, name, key_id, encoded = GO["peter_skey"].split("+", 4)
    raw = base64.b64decode(encoded)
    assert raw[0] == 1
    signer = NoteSigner(name, PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(raw[1:])))
    assert signer.key_id.hex() == key_id
    return signer


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate("ed25519")


@pytest.fixture(scope="module")
def signed(log_key: PrivateKey) -> bytes:
    return Checkpoint(ORIGIN, 42, ROOT).sign(log_key)


# --- interop with golang.org/x/mod/sumdb/note --------------------------------------------------------------------


def test_go_note_signature_is_reproduced_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.verifier.vkey() == GO["peter_vkey"]
    assert sign_note(GO["text"], signer).decode() == GO["text"] + "\n" + GO["peter_sig_line"]


def test_go_note_opens_with_one_or_both_keys() -> None:
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    enoch = NoteVerifier.from_vkey(GO["enoch_vkey"])
    message = GO["text"] + "\n" + GO["peter_sig_line"] + GO["enoch_sig_line"]
    opened = open_note(message, [peter])
    assert opened.text == GO["text"]
    assert [s.key for s in opened.verified] == ["PeterNeumann+c74f20a3"]
    assert [s.key for s in opened.unverified] == ["EnochRoot+af0cfe78"]
    opened = open_note(message.encode(), [peter, enoch])
    assert [s.name for s in opened.verified] == ["PeterNeumann", "EnochRoot"] and not opened.unverified
    with pytest.raises(NoteVerificationError, match="no signature by a trusted key"):
        open_note(message, [])


def test_go_note_bad_signature_and_bad_messages() -> None:
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    text, sig = GO["text"], GO["peter_sig_line"]
    with pytest.raises(NoteVerificationError, match="PeterNeumann\\+c74f20a3 does not verify"):
        open_note(text + "\n" + sig[:60] + "ABCD" + sig[60:], [peter])
    bad_messages = [
        text,
        text + "\n",
        text + "\n" + sig[:-1],
        "\x01" + text + "\n" + sig,
        text + "\n" + "\u2014 Bad Name " + sig.split(" ")[2].rstrip("\n"),
        text + "\n" + sig + "Unexpected line.\n",
        text + "\n" + sig * 101,
    ]
    for message in bad_messages:
        with pytest.raises(NoteFormatError):
            open_note(message, [peter])
    with pytest.raises(NoteFormatError, match="UTF-8"):
        open_note(b"\xff" + (text + "\n" + sig).encode(), [peter])


def test_go_vkey_manglings_are_refused() -> None:
    vkey = GO["peter_vkey"]
    for start in range(len(vkey) + 1):
        for end in range(start + 1, len(vkey) + 1):
            if (start, end) != (0, len(vkey)):
                with pytest.raises(ConfigError):
                    NoteVerifier.from_vkey(vkey[start:end])
    for i in range(len(vkey)):
        with pytest.raises(ConfigError):
            NoteVerifier.from_vkey(vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :])
    for bad in GO["bad_vkeys"]:
        with pytest.raises(ConfigError):
            NoteVerifier.from_vkey(bad)


# --- checkpoints -------------------------------------------------------------------------------------------------


def test_body_format_and_key_id(log_key: PrivateKey, signed: bytes) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT, ("ext one",))
    assert checkpoint.body() == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\next one\n"
    pub = log_key.public.key.public_bytes_raw()
    key_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    assert ed25519_key_id(ORIGIN, pub) == key_id == NoteVerifier(ORIGIN, log_key.public).key_id
    lines = signed.decode().split("\n")
    assert lines[3] == "" and lines[4].startswith(f"\u2014 {ORIGIN} ") and lines[5] == ""
    raw = base64.b64decode(lines[4].split(" ")[2])
    assert raw[:4] == key_id and len(raw) == 4 + 64
    assert log_key.public.verify(raw[4:], Checkpoint(ORIGIN, 42, ROOT).body().encode())


def test_sign_and_verify_round_trip(log_key: PrivateKey, signed: bytes) -> None:
    verifier = NoteVerifier(ORIGIN, log_key.public)
    assert verify_checkpoint(signed, verifier, origin=ORIGIN) == Checkpoint(ORIGIN, 42, ROOT)
    assert verify_checkpoint(signed.decode(), [verifier]).size == 42
    restored = NoteVerifier.from_vkey(verifier.vkey())
    assert restored.vkey() == verifier.vkey() and verify_checkpoint(signed, restored).root_hash == ROOT
    named = Checkpoint(ORIGIN, 0, ROOT).sign(log_key, name="gate.example/key-2025")
    assert verify_checkpoint(named, NoteVerifier("gate.example/key-2025", log_key.public)).size == 0


def test_checkpoint_ties_to_merkle_proofs(log_key: PrivateKey) -> None:
    tree = MerkleTree(leaf_hash(f"decision {i}".encode()) for i in range(37))
    note = Checkpoint(ORIGIN, tree.size, tree.root()).sign(log_key)
    checkpoint = verify_checkpoint(note, NoteVerifier(ORIGIN, log_key.public), origin=ORIGIN)
    verify_inclusion(leaf_hash(b"decision 11"), 11, checkpoint.size, tree.inclusion_proof(11), checkpoint.root_hash)


def test_refusals(log_key: PrivateKey, signed: bytes) -> None:
    verifier = NoteVerifier(ORIGIN, log_key.public)
    other = NoteVerifier(ORIGIN, PrivateKey.generate("ed25519").public)
    with pytest.raises(NoteVerificationError, match="expected 'other.example/log'"):
        verify_checkpoint(signed, verifier, origin="other.example/log")
    with pytest.raises(NoteVerificationError, match="no signature by a trusted key") as info:
        verify_checkpoint(signed, other)
    assert isinstance(info.value, VerificationError)
    tampered = signed.replace(b"\n42\n", b"\n43\n")
    with pytest.raises(NoteVerificationError, match="does not verify"):
        verify_checkpoint(tampered, verifier)
    with pytest.raises(NoteVerificationError, match="no signature by a trusted key"):
        verify_checkpoint(SPEC_EXAMPLE, verifier)


def test_witness_cosignatures_are_kept_and_unknown_ones_ignored(log_key: PrivateKey, signed: bytes) -> None:
    witness = NoteSigner("witness.example/w1", PrivateKey.generate("ed25519"))
    note = SignedNote.parse(signed)
    cosigned = sign_note(note.text, witness, keep=note.signatures)
    log_verifier = NoteVerifier(ORIGIN, log_key.public)
    opened = open_note(cosigned, [log_verifier, witness.verifier])
    assert [s.name for s in opened.verified] == [ORIGIN, "witness.example/w1"]
    assert verify_checkpoint(cosigned, log_verifier).size == 42  # the witness line is ignored
    resigned = sign_note(note.text, witness, keep=SignedNote.parse(cosigned).signatures)
    assert resigned.count(b"witness.example/w1") == 1
    same_name_other_id = SignedNote(note.text, (note.signatures[0].__class__(ORIGIN, b"\0\0\0\0", b"x" * 64),))
    with pytest.raises(NoteVerificationError, match="no signature by a trusted key"):
        open_note(same_name_other_id.encode(), [log_verifier])


def test_spec_example_parses() -> None:
    checkpoint, note = parse_checkpoint(SPEC_EXAMPLE)
    assert checkpoint.origin == "example.com/behind-the-sofa" and checkpoint.size == 20852163
    assert base64.b64encode(checkpoint.root_hash).decode() == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert note.signatures[0].name == "example.com/behind-the-sofa" and note.encode().decode() == SPEC_EXAMPLE


def _note(body: str, signed: bytes) -> str:
    """Replace the text of a signed checkpoint, keeping its signature line (syntax tests only)."""
    return body + "\n" + signed.decode().split("\n\n", 1)[1]


B64_ROOT = base64.b64encode(ROOT).decode()
URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()
BAD_BODIES = {
    "leading zero": (f"{ORIGIN}\n042\n{B64_ROOT}\n", "leading zeros"),
    "negative size": (f"{ORIGIN}\n-1\n{B64_ROOT}\n", "tree size"),
    "plus size": (f"{ORIGIN}\n+5\n{B64_ROOT}\n", "tree size"),
    "spaced size": (f"{ORIGIN}\n 5\n{B64_ROOT}\n", "tree size"),
    "huge size": (f"{ORIGIN}\n{2**64}\n{B64_ROOT}\n", "below 2\\^64"),
    "short root": (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "32 bytes"),
    "unpadded root": (f"{ORIGIN}\n5\n{B64_ROOT.rstrip('=')}\n", "base64"),
    "urlsafe root": (f"{ORIGIN}\n5\n{URLSAFE_ROOT}\n", "base64"),
    "noncanonical root": (f"{ORIGIN}\n5\n{B64_ROOT[:-2]}9=\n", "canonical"),
    "two lines": (f"{ORIGIN}\n5\n", "2 line"),
    "empty origin": (f"\n5\n{B64_ROOT}\n", "line 1 is empty"),
    "empty extension": (f"{ORIGIN}\n5\n{B64_ROOT}\nx\n\ny\n", None),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_checkpoint_bodies_are_refused(case: str, signed: bytes, log_key: PrivateKey) -> None:
    body, message = BAD_BODIES[case]
    with pytest.raises(NoteFormatError, match=message) as info:
        verify_checkpoint(_note(body, signed), NoteVerifier(ORIGIN, log_key.public))
    assert "\n" not in str(info.value)
    with pytest.raises(NoteFormatError):
        Checkpoint.from_body(body)


def test_malformed_notes_are_refused(signed: bytes, log_key: PrivateKey) -> None:
    text = signed.decode()
    body, sig_line = text.split("\n\n")
    sig = sig_line.split(" ", 2)[2]
    cases = {
        "no final newline": (text[:-1], "does not end with a newline"),
        "crlf": (text.replace("\n", "\r\n"), "U\\+000D on line 1"),
        "tab": (text.replace(ORIGIN, ORIGIN + "\t", 1), "U\\+0009"),
        "no blank line": (body + "\n" + sig_line, "no blank line"),
        "nothing after blank line": (body + "\n\n", "no signature lines"),
        "ascii dash": (body + "\n\n-- " + sig_line[2:], "em dash"),
        "plus in name": (body + "\n\n\u2014 a+b " + sig, "contains '\\+'"),
        "no signature": (body + "\n\n\u2014 " + ORIGIN + "\n", "no space"),
        "bad base64": (body + "\n\n\u2014 " + ORIGIN + " " + sig[:-2] + "!\n", "base64"),
        "short signature": (body + "\n\n\u2014 " + ORIGIN + " AAAAAA==\n", "too short"),
        "too many signatures": (body + "\n\n" + sig_line * 101, "limit is 100"),
        "too large": (body + "\n" + "x" * MAX_NOTE_SIZE + "\n\n" + sig_line, "limit is 1048576"),
        "trailing text": (text + "note\n", "em dash"),
    }
    verifier = NoteVerifier(ORIGIN, log_key.public)
    for name, (message, reason) in cases.items():
        with pytest.raises(NoteFormatError, match=reason) as info:
            verify_checkpoint(message, verifier)
        assert isinstance(info.value, InputError), name
        assert "\n" not in str(info.value), name


def test_checkpoint_fields_are_validated(log_key: PrivateKey) -> None:
    for args in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, True, ROOT),
        (ORIGIN, 1, ROOT[:31]),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, "ext"),
        (ORIGIN, 1, ROOT, ("a\nb",)),
    ]:
        with pytest.raises(NoteFormatError):
            Checkpoint(*args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="contains a space"):
        Checkpoint("my log", 1, ROOT).sign(log_key)
    note = Checkpoint("my log", 1, ROOT).sign(log_key, "mylog")
    assert verify_checkpoint(note, NoteVerifier("mylog", log_key.public)).origin == "my log"


def test_key_rules() -> None:
    ecdsa = PrivateKey.generate("ecdsa-p256")
    with pytest.raises(ConfigError, match="Ed25519"):
        NoteSigner(ORIGIN, ecdsa)
    with pytest.raises(ConfigError, match="Ed25519"):
        NoteVerifier(ORIGIN, ecdsa.public)
    key = PrivateKey.generate("ed25519").public
    for name in ("", "a b", "a+b", "a\u00a0b"):
        with pytest.raises(ConfigError):
            NoteVerifier(name, key)
    vkey = NoteVerifier(ORIGIN, key).vkey()
    name, key_id, encoded = vkey.split("+", 2)
    with pytest.raises(ConfigError, match="lowercase hex"):
        NoteVerifier.from_vkey(f"{name}+DEADBEEF+{encoded}")  # key_id.upper() may be all digits
    wrong_type = base64.b64encode(b"\x02" + base64.b64decode(encoded)[1:]).decode()
    with pytest.raises(ConfigError, match="0x02 is not supported"):
        NoteVerifier.from_vkey(f"{name}+{key_id}+{wrong_type}")
    with pytest.raises(ConfigError, match="does not match"):
        NoteVerifier.from_vkey(f"other+{key_id}+{encoded}")
