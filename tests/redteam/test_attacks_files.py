"""Red-team cases against the model's files: bytes hidden under excluded paths, formats by suffix, false denies.

Every byte that will be published is inside the digest or checked by content; a tier's formats rule applies to what
a file *is*, never to its name; and honest models (odd but legal names, LFS attributes, GGUF) are not refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from content_samples import tar_of
from open_findings import params
from redteam_kit import (
    COMPRESS,
    Case,
    Expect,
    Lab,
    Outcome,
    check_outcome,
    evil_pickle,
    gguf_bytes,
    key_file,
    npy_object_array,
    safetensors_bytes,
    torch_zip,
    words,
)
from redteam_kit import SIGNED
from tiergate.core.timeutil import format_time

# --- hidden bytes: what sits under an excluded path is checked by content ----------------------------------------


def _hidden(rel: str, data: bytes, tier: str = "internal", attested: bool = True):
    """An attested model plus ``rel`` (excluded from the digest) holding ``data``; checked at ``tier``."""
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        if attested:
            lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2}, name="valid.json")
        target = model / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return lab.check(model, tier, lab.trust())
    return run


def _hidden_symlink(lab: Lab) -> Outcome:
    model = lab.model()
    outside = lab.path("outside")
    outside.mkdir()
    (outside / "weights.json").write_bytes(evil_pickle())
    (model / ".attestations").symlink_to(outside, target_is_directory=True)
    return lab.check(model, "internal", lab.trust())


def _hidden_weights_beside_envelope(lab: Lab) -> Outcome:
    """The valid envelope stays; a second .json in .attestations is a safetensors file."""
    model = lab.model()
    lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2}, name="valid.json")
    lab.put(model, "adapter.json", safetensors_bytes(1024))
    return lab.check(model, "bio", lab.trust())


HIDDEN = ("attestation", "excluded", "ignored", "not part", "identity", "refused", "not allowed", "only")


def _named(path: str) -> tuple[str, ...]:
    return (path,)


HIDDEN_CASES = [
    Case("hidden-github-payload-tar", "hidden-bytes",
         _hidden(".github/payload.tar", tar_of({"data.pkl": evil_pickle()})),
         Expect(1, words(_named(".github/payload.tar")))),
    Case("hidden-github-workflow-pickle", "hidden-bytes", _hidden(".github/workflows/ci.yml", evil_pickle()),
         Expect(1, words(_named(".github/workflows/ci.yml")))),
    Case("hidden-attestations-adapter-json-safetensors", "hidden-bytes",
         _hidden(".attestations/adapter.json", safetensors_bytes(1024)),
         Expect(1, words(_named(".attestations/adapter.json")))),
    Case("hidden-attestations-adapter-json-pickle", "hidden-bytes",
         _hidden(".attestations/adapter.json", evil_pickle()), Expect(1, words(_named(".attestations/adapter.json")))),
    Case("hidden-attestations-plain-json-object", "hidden-bytes",
         _hidden(".attestations/notes.json", json.dumps({"weights": [0.1] * 1000}).encode()),
         Expect(1, words(_named(".attestations/notes.json")))),
    Case("hidden-attestations-nested-sig", "hidden-bytes", _hidden(".attestations/a/b/c.sig", torch_zip()),
         Expect(1, words(_named(".attestations/a/b/c.sig")))),
    Case("hidden-attestations-over-size", "hidden-bytes",
         _hidden(".attestations/big.json", b'{"payload": "' + b"A" * (17 * 1024 * 1024) + b'"}'),
         Expect(1, words(_named(".attestations/big.json")))),
    Case("hidden-attestations-gz-suffix", "hidden-bytes", _hidden(".attestations/x.json.gz", evil_pickle()),
         Expect(1, words(_named(".attestations/x.json.gz")))),
    Case("hidden-root-file-attestations", "hidden-bytes", _hidden(".attestations", evil_pickle(), attested=False),
         Expect(1, words(_named(".attestations")))),
    Case("hidden-root-file-github", "hidden-bytes", _hidden(".github", torch_zip()),
         Expect(1, words(_named(".github")))),
    Case("hidden-root-file-gitattributes-pickle", "hidden-bytes", _hidden(".gitattributes", evil_pickle()),
         Expect(1, words(_named(".gitattributes")))),
    Case("hidden-gitattributes-mark-pop-pickle", "hidden-bytes", _hidden(".gitattributes", b"(0" + evil_pickle(0)),
         Expect(1, words(_named(".gitattributes")))),
    Case("hidden-root-file-gitignore-binary", "hidden-bytes", _hidden(".gitignore", safetensors_bytes(256)),
         Expect(1, words(_named(".gitignore")))),
    Case("hidden-gitattributes-oversized-text", "hidden-bytes",
         _hidden(".gitattributes", b"*.bin filter=lfs diff=lfs merge=lfs -text\n" * 400_000),
         Expect(1, words(_named(".gitattributes")))),
    Case("hidden-github-safetensors", "hidden-bytes", _hidden(".github/model.safetensors", safetensors_bytes()),
         Expect(1, words(_named(".github/model.safetensors")))),
    Case("hidden-attestations-symlink-outside", "hidden-bytes", _hidden_symlink,
         Expect(1, words(_named(".attestations")))),
    Case("hidden-weights-beside-valid-envelope", "hidden-bytes", _hidden_weights_beside_envelope,
         Expect(1, words(_named(".attestations/adapter.json")))),
]


# --- formats by content: a suffix can never make a file acceptable -----------------------------------------------

FORMATS = Expect(1, words(("format", "pickle", "refused", "unrecognised", "unrecognized")), rows={"formats": "not_met"})


def _with_file(rel: str, data: bytes, tier: str = "safe-formats", keep_base: bool = True):
    def run(lab: Lab) -> Outcome:
        files = {rel: data}
        model = lab.model(files) if keep_base else _bare_model(lab, files)
        return lab.check(model, tier, lab.trust())
    return run


def _bare_model(lab: Lab, files: dict[str, bytes]) -> Path:
    model = lab.path(f"bare{len(files)}-{abs(hash(tuple(files)))}")
    for rel, data in files.items():
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_bytes(data)
    return model


def _formats_outcome(lab: Lab, rel: str, data: bytes) -> Outcome:
    return _with_file(rel, data)(lab)


PICKLE = evil_pickle()
FORMAT_FILES: list[tuple[str, str, bytes]] = [
    ("formats-pth-tar", "checkpoint.pth.tar", tar_of({"archive/data.pkl": PICKLE})),
    ("formats-pkl-gz", "model.pkl.gz", COMPRESS["gzip"](PICKLE)),
    ("formats-dill", "weights.dill", PICKLE),
    ("formats-sav", "model.sav", PICKLE),
    ("formats-bin-txt", "pytorch_model.bin.txt", PICKLE),
    ("formats-data", "model.data", PICKLE),
    ("formats-no-suffix", "weights", PICKLE),
    ("formats-pickle-named-safetensors", "extra.safetensors", PICKLE),
    ("formats-pickle-named-config-json", "config.json", PICKLE),
    ("formats-pickle-named-readme", "README.md", PICKLE),
    ("formats-pickle-protocol0-named-txt", "notes.txt", evil_pickle(0)),
    ("formats-pickle-protocol0-mark-pop-named-txt", "notes.txt", b"(0" + evil_pickle(0)),
    ("formats-pickle-bz2", "model.bz2", COMPRESS["bz2"](PICKLE)),
    ("formats-pickle-xz", "model.xz", COMPRESS["xz"](PICKLE)),
    ("formats-torch-zip-named-safetensors", "model-00002.safetensors", torch_zip()),
    ("formats-torch-zip-named-zip", "model.zip", torch_zip()),
    ("formats-numpy-object-array", "arr.dat", npy_object_array()),
    ("formats-gzip-tar-pickle", "bundle.tgz", COMPRESS["gzip"](tar_of({"x/data.pkl": PICKLE}))),
    ("formats-safetensors-offsets-past-end", "bad.safetensors", safetensors_bytes(offsets=(0, 1 << 20))),
    ("formats-safetensors-bad-dtype", "bad.safetensors", safetensors_bytes(dtype="PYOBJ")),
    ("formats-safetensors-header-not-json", "bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"),
    ("formats-safetensors-header-length-lies", "bad.safetensors", b"\xff\xff\xff\xff\x00\x00\x00\x00{}"),
    ("formats-random-binary-named-safetensors", "rand.safetensors", bytes(range(256)) * 64),
    ("formats-unknown-binary", "blob.weights", bytes(range(255, -1, -1)) * 64),
    ("formats-onnx-not-allowed", "model.onnx", b"\x08\x07\x12\x07pytorch\x1a\x052.1.0:\x00"),
]

FORMAT_CASES = [Case(cid, "formats", _with_file(rel, data), FORMATS) for cid, rel, data in FORMAT_FILES]
FORMAT_CASES += [
    Case("formats-gguf-named-safetensors-under-safetensors-only", "formats",
         lambda lab: lab.check(_bare_model(lab, {"model.safetensors": gguf_bytes(), "config.json": b"{}"}),
                               "st-only", lab.trust(), _st_only(lab)),
         FORMATS),
    # Controls: honest models in allowed formats pass the same rule.
    Case("formats-control-safetensors-model", "false-deny",
         _with_file("model-00001.safetensors", safetensors_bytes(64)),
         Expect(0, rows={"formats": "met"})),
    Case("formats-control-gguf-model", "false-deny", _with_file("model.gguf", gguf_bytes()),
         Expect(0, rows={"formats": "met"})),
    Case("formats-control-hf-layout", "false-deny",
         lambda lab: lab.check(lab.model({"generation_config.json": b'{"max_length": 20}', "README.md": b"# Tiny\n",
                                          "special_tokens_map.json": b"{}", "tokenizer_config.json": b"{}",
                                          "model.safetensors.index.json": b'{"weight_map": {}}'}),
                               "safe-formats", lab.trust()),
         Expect(0, rows={"formats": "met"})),
]


def _st_only(lab: Lab) -> Path:
    from redteam_kit import RT_POLICY

    return lab.write("st-only.yaml", RT_POLICY + "  - name: st-only\n    extends: internal\n    requires:\n"
                                                  "      formats: {allow: [safetensors]}\n")


# --- false denies: honest, odd-but-legal models are signed and verified alike ------------------------------------


def _attest_then_verify(files: dict[str, bytes]):
    """`gate attest` then `gate verify` of what it wrote: an honest signature must verify."""
    def run(lab: Lab) -> Outcome:
        model = lab.model(files)
        out = lab.path("att.json")
        signed = lab.gate("attest", model, "--key", key_file(lab, "biolab"), "--evaluator", "biolab", "--eval",
                          "wmdp_bio", "--metric", "acc=0.2", "--sample-size", "2000", "-o", out, "-q",
                          "--now", format_time(SIGNED))
        if signed.code != 0:
            return signed
        return lab.verify(model, lab.trust(), out)
    return run


def _attest_agrees_with_verify(files: dict[str, bytes], name: str):
    """For a name the gate may refuse: attest and verify must agree. Either attest refuses it up front (exit 1 or 2,
    naming the file) or what attest signed verifies; a signature that can only fail is the false deny of issue 9."""
    inner = _attest_then_verify(files)

    def run(lab: Lab) -> Outcome:
        outcome = inner(lab)
        if "attestations" not in outcome.out and outcome.code in (1, 2) and name in outcome.err:
            return Outcome(0, '{"attestations": [{"valid": true}]}', f"attest refused {name} up front")
        return outcome
    return run


def _cosigned_valid(lab: Lab) -> Outcome:
    model = lab.model()
    lab.put(model, "co.json", lab.envelope(lab.statement(model, "biolab", "wmdp_bio", {"acc": 0.2}),
                                           ["biolab", "evalco"]))
    return lab.verify(model, lab.trust())


def _near_future(lab: Lab) -> Outcome:
    from datetime import timedelta

    from redteam_kit import NOW

    model = lab.model()
    lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2}, when=NOW + timedelta(minutes=4))
    return lab.verify(model, lab.trust())


def _jsonl_bundle(lab: Lab) -> Outcome:
    model = lab.model()
    one = lab.envelope(lab.statement(model, "biolab", "wmdp_bio", {"acc": 0.2}), ["biolab"])
    two = lab.envelope(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.25}), ["evalco"])
    lab.put(model, "bundle.jsonl", one + b"\n" + two + b"\n")
    return lab.check(model, "two-orgs", lab.trust())


VALID = Expect(0, accepted=1, rejected=0)

FALSE_DENY_CASES = [
    Case("false-deny-backslash-name", "false-deny",
         _attest_agrees_with_verify({"weird\\name.json": b"{}"}, "weird\\name.json"), VALID),
    Case("false-deny-unicode-nfc-nfd-names", "false-deny",
         _attest_then_verify({"caf\u00e9.json": b"{}", "cafe\u0301.json": b"[]"}), VALID),
    Case("false-deny-spaces-and-hash", "false-deny", _attest_then_verify({"my notes #1.txt": b"hello"}), VALID),
    Case("false-deny-newline-in-name", "false-deny", _attest_then_verify({"two\nlines.txt": b"x"}), VALID),
    Case("false-deny-empty-file", "false-deny", _attest_then_verify({"empty.txt": b""}), VALID),
    Case("false-deny-deep-folders", "false-deny", _attest_then_verify({"/".join(["d"] * 40) + "/f.json": b"{}"}),
         VALID),
    Case("false-deny-prefix-order-paths", "false-deny",
         _attest_then_verify({"a/b.json": b"1", "a-b/c.json": b"2", "a.b": b"3"}), VALID),
    Case("false-deny-cosigned", "false-deny", _cosigned_valid, VALID),
    Case("false-deny-signed-within-clock-skew", "false-deny", _near_future, VALID),
    Case("false-deny-gitattributes-lfs", "false-deny",
         _hidden(".gitattributes", b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n", tier="bio"),
         Expect(0, rows={"wmdp-bio": "met"})),
    Case("false-deny-gitignore", "false-deny", _hidden(".gitignore", b"__pycache__/\n*.tmp\n", tier="bio"),
         Expect(0, rows={"wmdp-bio": "met"})),
    Case("false-deny-jsonl-bundle", "false-deny", _jsonl_bundle,
         Expect(0, rows={"wmdp-bio-2": "met", "signers.organizations": "met"}, rejected=0)),
]

CASES = HIDDEN_CASES + FORMAT_CASES + FALSE_DENY_CASES


@pytest.mark.parametrize("case", params(CASES))
def test_attack(lab: Lab, case: Case) -> None:
    check_outcome(case, case.run(lab))
