"""Model identity (tiergate.core.manifest): digests, ordering, interop with model-signing, ignores and refusals.

That memory stays constant whatever the model size is a property of the fixed per-worker buffer and is not
unit-tested here; bench/bench_hash.py exercises 1 GiB.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from tiergate.core import manifest as manifest_mod
from tiergate.core.manifest import (
    DEFAULT_IGNORES,
    FileDigest,
    Manifest,
    check_relative_path,
    hash_model,
    model_signing_order,
    parse_digest,
    root_digest,
    scan_size,
)
from tiergate.errors import InputError, ModelError
from content_samples import envelope_bytes
from helpers_models import make_model, ms_root_digest, sha256_hex

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def concat_root(digests: list[str]) -> str:
    """The OMS root digest computed independently of the module under test."""
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


# --- digests and order -----------------------------------------------------------------------------------------


def test_known_digests_and_sizes(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"empty.bin": b"", "abc.txt": b"abc", "sub/big.bin": b"x" * 100_000})
    files = hash_model(model).by_path()
    assert files["empty.bin"] == FileDigest("empty.bin", 0, EMPTY_SHA256)
    assert files["abc.txt"] == FileDigest("abc.txt", 3, ABC_SHA256)
    assert files["sub/big.bin"] == FileDigest("sub/big.bin", 100_000, sha256_hex(b"x" * 100_000))


def test_files_are_in_code_point_order_and_root_digest_follows_it(tmp_path: Path) -> None:
    names = ["a/b", "a-b/c", "B", "a.b", "é/x", "a0", "vae.safetensors", "vae/x"]
    model = make_model(tmp_path / "m", {n: n.encode() for n in names})
    result = hash_model(model)
    expected_order = sorted(names)  # Python compares str by code point
    assert [f.path for f in result.files] == expected_order
    assert expected_order[:5] == ["B", "a-b/c", "a.b", "a/b", "a0"]
    assert result.root_digest == concat_root([sha256_hex(n.encode()) for n in expected_order])
    assert result.digest == f"sha256:{result.root_digest}"


def test_manifest_sorts_files_given_in_any_order() -> None:
    a, b = FileDigest("b", 1, ABC_SHA256), FileDigest("a", 1, EMPTY_SHA256)
    assert [f.path for f in Manifest(files=(a, b)).files] == ["a", "b"]
    with pytest.raises(ValueError, match="lists a path twice"):
        Manifest(files=(a, FileDigest("b", 2, EMPTY_SHA256)))


ORDINARY_LAYOUTS = {
    "flat": {"model.safetensors": b"w" * 5000, "config.json": b"{}", "tokenizer.json": b'{"v": 1}'},
    "diffusers": {
        "model_index.json": b"{}",
        "unet/diffusion_pytorch_model.safetensors": b"u" * 3000,
        "unet/config.json": b"{}",
        "text_encoder/model.safetensors": b"t",
        "text_encoder_2/model.safetensors": b"t2",
        "vae/diffusion_pytorch_model.safetensors": b"v",
    },
    "sharded": {f"model-{i:05d}-of-00003.safetensors": bytes([i]) * 100 for i in range(1, 4)}
    | {"model.safetensors.index.json": b"{}"},
    "with_git": {"weights.bin": b"1", ".gitattributes": b"*.bin lfs", ".github/x.yml": b"on"},
    "empty": {},
}


@pytest.mark.parametrize("layout", sorted(ORDINARY_LAYOUTS))
def test_root_digest_equals_model_signing_on_ordinary_layouts(tmp_path: Path, layout: str) -> None:
    model = make_model(tmp_path / layout, ORDINARY_LAYOUTS[layout])
    assert hash_model(model).root_digest == ms_root_digest(model)


DIFFERING_LAYOUTS = {
    "a/b beside a-b/c": {"a/b": b"1", "a-b/c": b"2"},
    "vae/ beside vae.safetensors": {"vae/diffusion_pytorch_model.safetensors": b"1", "vae.safetensors": b"2"},
    "checkpoint/ beside checkpoint-500/": {"checkpoint/model.bin": b"1", "checkpoint-500/model.bin": b"2"},
    "a/b/c beside a/b.c": {"a/b/c": b"1", "a/b.c": b"2"},
}


@pytest.mark.parametrize("layout", sorted(DIFFERING_LAYOUTS))
def test_model_signing_order_reproduces_its_root_where_it_differs(tmp_path: Path, layout: str) -> None:
    """model-signing 1.1.1 defect 3: component order instead of the spec's code-point order."""
    model = make_model(tmp_path / "m", DIFFERING_LAYOUTS[layout])
    ours = hash_model(model)
    theirs = ms_root_digest(model)
    assert ours.root_digest != theirs
    assert root_digest(model_signing_order(ours.files)) == theirs


def test_orders_agree_when_the_sibling_sorts_after_slash(tmp_path: Path) -> None:
    # '_' (0x5F) sorts after '/' (0x2F): text_encoder/ and text_encoder_2/ do not trigger defect 3.
    model = make_model(tmp_path / "m", {"text_encoder/w": b"1", "text_encoder_2/w": b"2"})
    ours = hash_model(model)
    assert list(ours.files) == model_signing_order(ours.files)


# --- ignores ---------------------------------------------------------------------------------------------------


def test_default_ignores(tmp_path: Path) -> None:
    model = make_model(
        tmp_path / "m",
        {
            "weights.bin": b"w",
            ".github/workflows/ci.yml": b"on",
            ".gitignore": b"*.tmp",
            ".gitattributes": b"*.bin lfs",
            ".attestations/eval.json": envelope_bytes(),
            ".attestations/model.sig": envelope_bytes(),
            # Only exact names (and what is below them) are ignored, and only at the root:
            ".gitignore.bak": b"1",
            ".github2/x": b"2",
            "sub/.git/HEAD": b"3",
        },
    )
    paths = [f.path for f in hash_model(model).files]
    assert paths == [".github2/x", ".gitignore.bak", "sub/.git/HEAD", "weights.bin"]
    assert set(DEFAULT_IGNORES) == {".git", ".gitattributes", ".gitignore", ".github", ".attestations"}


def test_no_ignores_hashes_everything(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w": b"w", ".git/HEAD": b"ref", ".attestations/notes.txt": b"n"})
    result = hash_model(model, ignore_paths=())
    assert [f.path for f in result.files] == [".attestations/notes.txt", ".git/HEAD", "w"]
    assert result.ignore_paths == ()


def test_custom_ignore_path(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w": b"w", "extras/a": b"a", "extras2/b": b"b"})
    assert [f.path for f in hash_model(model, ignore_paths=("extras",)).files] == ["extras2/b", "w"]
    with pytest.raises(ValueError, match="'..' component"):
        hash_model(model, ignore_paths=("../x",))


def test_a_git_folder_in_a_model_folder_is_refused(tmp_path: Path) -> None:
    """Fail closed: MLflow serves an artifact folder as it is, .git and its history included, and none of it is in
    the identity. A .git link (a checkout whose .git lives elsewhere) is refused too; so is a .git *file*."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    model = make_model(tmp_path / "m", {"w": b"w"})
    (model / ".git").symlink_to(outside)
    with pytest.raises(ModelError, match=r"^\.git: a \.git folder inside the model folder .*rsync -a --exclude \.git"):
        hash_model(model)
    (model / ".git").unlink()
    (model / ".git").write_text("gitdir: ../elsewhere\n")
    with pytest.raises(ModelError, match=r"^\.git: a \.git folder"):
        hash_model(model)
    (model / ".git").unlink()
    make_model(model, {".git/HEAD": b"ref: refs/heads/main\n"})
    with pytest.raises(ModelError, match=r"^\.git"):
        hash_model(model)
    # With no exclusions .git is simply part of the identity: every byte is in the digest.
    assert [f.path for f in hash_model(model, ignore_paths=()).files] == [".git/HEAD", "w"]


# --- refusals --------------------------------------------------------------------------------------------------


def test_symlink_leaving_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.bin").write_bytes(b"secret")
    model = make_model(tmp_path / "m", {"w": b"w"})
    (model / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(ModelError, match=r"link\.bin: symlink points outside the model directory"):
        hash_model(model)


def test_symlink_to_directory_is_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"sub/w": b"w"})
    (model / "alias").symlink_to(model / "sub", target_is_directory=True)
    with pytest.raises(ModelError, match=r"alias: symlink points to a directory"):
        hash_model(model)


def test_broken_and_looping_symlinks_are_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w": b"w"})
    (model / "dangling").symlink_to(model / "nothing")
    with pytest.raises(ModelError, match="dangling: broken symlink"):
        hash_model(model)
    (model / "dangling").unlink()
    (model / "loop").symlink_to(model / "loop")
    with pytest.raises(ModelError, match="loop: cannot follow symlink"):
        hash_model(model)


def test_special_file_is_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w": b"w"})
    os.mkfifo(model / "pipe")
    with pytest.raises(ModelError, match="pipe: is a special file"):
        hash_model(model)


def test_non_utf8_file_name_is_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w": b"w"})
    raw = os.fsencode(model) + b"/bad-\xff.bin"
    try:
        fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 file names")
    os.close(fd)
    with pytest.raises(ModelError, match=r"file name b'bad-\\xff.bin' is not valid UTF-8"):
        hash_model(model)


def test_non_attestation_file_in_attestation_folder_is_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m",
                       {"w": b"w", ".attestations/ok.json": envelope_bytes(), ".attestations/evil.pkl": b"x"})
    with pytest.raises(ModelError, match=r"\.attestations/evil\.pkl: only attestation files .* may sit in"):
        hash_model(model)


def test_attestation_folder_symlinks_are_policed(tmp_path: Path) -> None:
    (tmp_path / "outside.json").write_bytes(b"{}")
    model = make_model(tmp_path / "m", {"w": b"w"})
    (model / ".attestations").mkdir()
    (model / ".attestations/weights.bin").symlink_to(model / "w")
    with pytest.raises(ModelError, match="only attestation files"):
        hash_model(model)
    (model / ".attestations/weights.bin").unlink()
    (model / ".attestations/x.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(ModelError, match="symlink points outside"):
        hash_model(model)


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ModelError, match="not a directory"):
        hash_model(tmp_path / "file")
    with pytest.raises(ModelError, match="not a directory"):
        hash_model(tmp_path / "missing")


def test_file_replaced_by_symlink_after_the_walk_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "outside.bin").write_bytes(b"secret")
    model = make_model(tmp_path / "m", {"w": b"w"})
    entries = manifest_mod.list_files(model, DEFAULT_IGNORES)
    (model / "w").unlink()
    (model / "w").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(ModelError, match="w: became a symlink"):
        manifest_mod._hash_file(entries[0], threading.local(), None)


# --- symlinks that are fine ------------------------------------------------------------------------------------


def test_symlink_to_a_file_inside_is_hashed_as_that_file(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"blobs/abc123": b"weights"})
    (model / "model.safetensors").symlink_to("blobs/abc123")  # the Hugging Face cache layout
    files = hash_model(model).by_path()
    assert files["model.safetensors"] == FileDigest("model.safetensors", 7, sha256_hex(b"weights"))
    assert files["blobs/abc123"].sha256 == files["model.safetensors"].sha256


# --- serialisation ---------------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"a": b"1", "d/b": b"2"})
    original = hash_model(model)
    data = json.loads(json.dumps(original.to_dict()))
    assert data["digest"] == {"sha256": original.root_digest}
    assert data["serialization"]["method"] == "files"
    loaded = Manifest.from_dict(data)
    assert loaded == original
    assert loaded.root_digest == original.root_digest


def test_from_dict_detects_tampering(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"a": b"1", "d/b": b"2"})
    data = hash_model(model).to_dict()
    data["files"][0]["digest"]["sha256"] = ABC_SHA256
    with pytest.raises(ValueError, match="root digest does not match"):
        Manifest.from_dict(data)
    data = hash_model(model).to_dict()
    data["digest"]["sha256"] = EMPTY_SHA256
    with pytest.raises(ValueError, match="root digest does not match"):
        Manifest.from_dict(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["files"][0].update(name="../etc/passwd"), "'..' component"),
        (lambda d: d["files"][0].update(name="/abs"), "not a relative POSIX path"),
        (lambda d: d["files"][0]["digest"].update(sha256="XYZ"), "not a lowercase hex SHA-256"),
        (lambda d: d["files"][0]["digest"].update(sha256=5), "not a lowercase hex SHA-256"),
        (lambda d: d["files"][0].pop("digest"), "has no digest.sha256"),
        (lambda d: d["files"][0].update(size="3"), "integer 'size'"),
        (lambda d: d["files"].append(dict(d["files"][0])), "lists a path twice"),
        (lambda d: d["serialization"].update(hash_type="blake2"), "hash_type 'sha256'"),
        (lambda d: d.update(serialization="files"), "must be objects"),
        (lambda d: d.update(files={}), "'files' list"),
    ],
)
def test_from_dict_rejects_malformed(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = hash_model(make_model(tmp_path / "m", {"a": b"1"})).to_dict()
    data.pop("digest")
    mutate(data)
    with pytest.raises(ValueError, match=message):
        Manifest.from_dict(data)


def test_parse_digest_and_relative_paths() -> None:
    assert parse_digest(f"sha256:{ABC_SHA256.upper()}") == ABC_SHA256
    assert parse_digest(f"  {ABC_SHA256} ") == ABC_SHA256
    with pytest.raises(InputError, match="is not a model digest"):
        parse_digest("sha1:abc")
    assert check_relative_path("a/b.c") == "a/b.c"
    for bad in ("", "/a", "a//b", "a/./b", "a/../b", "a\x00b", "a/"):
        with pytest.raises(ValueError):
            check_relative_path(bad)


# --- parallelism and progress ----------------------------------------------------------------------------------


def test_serial_and_parallel_hashing_agree(tmp_path: Path) -> None:
    files = {f"d{i % 3}/f{i}.bin": os.urandom(1000 * i) for i in range(20)}
    model = make_model(tmp_path / "m", files)
    assert hash_model(model, workers=1) == hash_model(model, workers=4) == hash_model(model)
    with pytest.raises(ValueError, match="workers"):
        hash_model(model, workers=-1)


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    result = hash_model(tmp_path / "m")
    assert result.files == ()
    assert result.root_digest == EMPTY_SHA256
    assert result.total_size == 0


def test_progress_sums_to_total_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_mod, "CHUNK_SIZE", 4096)  # several chunks per file without big files
    model = make_model(tmp_path / "m", {"a": os.urandom(50_000), "b/c": os.urandom(12_345), "e": b""})
    calls: list[int] = []
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:
            calls.append(n)

    result = hash_model(model, progress=progress, workers=2)
    assert sum(calls) == result.total_size == 62_345 == scan_size(model)
    assert len(calls) > 3 and max(calls) <= 4096
    assert result.by_path()["a"].sha256 == sha256_hex((model / "a").read_bytes())


def test_weights_under_an_ignored_path_are_refused(tmp_path: Path) -> None:
    """model-signing's defect 4, in the gate's own default ignores: .github/evil.pkl must not ride along unhashed;
    judged by content, so a pickle named like text is refused as well."""
    from tiergate.core.manifest import hash_model

    model = make_model(tmp_path / "m", {"model.safetensors": b"w", ".github/workflows/ci.yml": b"on: push"})
    assert [f.path for f in hash_model(model).files] == ["model.safetensors"]
    (model / ".github" / "evil.pkl").write_bytes(b"\x80\x04N.")  # returns None: a loadable pickle
    with pytest.raises(ModelError, match=r"\.github/evil\.pkl: only text may sit under an excluded path, found pickle"):
        hash_model(model)
    (model / ".github" / "evil.pkl").unlink()
    (model / ".github" / "notes.txt").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(ModelError, match=r"\.github/notes\.txt: only text .* found pickle"):
        hash_model(model)
