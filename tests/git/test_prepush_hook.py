"""The pre-push hook with real git (and git-lfs where installed) against a local bare remote.

No conftest here on purpose: a package named ``git`` under tests/ would shadow GitPython, which mlflow imports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


import pytest

from support import World, write_model
from gate.core.manifest import ATTESTATION_DIR, hash_model

HAS_LFS = shutil.which("git-lfs") is not None
needs_lfs = pytest.mark.skipif(not HAS_LFS, reason="git-lfs is not installed (apt-get install git-lfs); "
                                                   "the LFS path of the pre-push hook is NOT tested")

POLICY = """\
version: 1
name: hook-test
tiers:
  - name: internal
  - name: gated
    requires:
      evaluations:
        - {id: strongreject-gated, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.2}
  - name: open
    requires:
      signers: {min_organizations: 2, kinds: [third_party, government]}
      formats: {allow: [safetensors]}
      evaluations:
        - {id: strongreject-open, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.05}
"""


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture
def env(tmp_path: Path, world: World) -> dict[str, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return {"GATE_POLICY": str(policy), "GATE_TRUST": str(world.trust_path()), "GATE_NOW": "2026-11-01T12:00:00Z",
            "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path / "home"),
            "GATE_CONFIG": "", "GATE_SERVER": "", "GATE_LOG": ""}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(path)], check=True)
    return path


def make_repo(tmp_path: Path, remote: Path, env: dict[str, str], lfs: bool) -> Path:
    (tmp_path / "home").mkdir(exist_ok=True)
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    git(work, "config", "user.email", "dev@example.com")
    git(work, "config", "user.name", "Dev")
    git(work, "remote", "add", "origin", str(remote))
    if lfs:
        git(work, "lfs", "install", "--local", env=env)
        git(work, "lfs", "track", "*.safetensors", env=env)
        git(work, "add", ".gitattributes")
    result = subprocess.run([sys.executable, "-m", "gate", "hooks", "install", str(work), "--tier", "open"],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return work


def attest(world: World, model: Path, evidence: str) -> None:
    manifest = hash_model(model)
    folder = model / ATTESTATION_DIR
    folder.mkdir(exist_ok=True)
    items = [world.attest(manifest, "evalco", "strongreject", {"score": 0.03})]
    if evidence == "open":
        items.append(world.attest(manifest, "aisi", "strongreject", {"score": 0.04}))
    for n, item in enumerate(items):
        (folder / f"eval-{n}.json").write_bytes(item.data)


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD").stdout.strip()


def push(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return git(work, "push", *(args or ("origin", "main")), env=env, check=False)


def remote_head(remote: Path, ref: str = "refs/heads/main") -> str | None:
    result = subprocess.run(["git", "--git-dir", str(remote), "rev-parse", "--verify", "-q", ref],
                            capture_output=True, text=True)
    return result.stdout.strip() or None


def lfs_objects(remote: Path) -> set[str]:
    return {p.name for p in (remote / "lfs" / "objects").rglob("*") if p.is_file()}


@needs_lfs
def test_attested_push_goes_through_and_git_lfs_uploads_after_the_check(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=True)
    write_model(work)
    attest(world, work, "open")
    head = commit_all(work, "model v1")
    pointer = git(work, "cat-file", "-p", "HEAD:model.safetensors").stdout
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1")  # the weights really are in LFS

    result = push(work, env)

    assert result.returncode == 0, result.stderr
    assert "pushed tree) at tier 'open': allowed" in result.stderr
    assert remote_head(remote) == head
    import hashlib
    assert hashlib.sha256((work / "model.safetensors").read_bytes()).hexdigest() in lfs_objects(remote)


@needs_lfs
def test_denied_push_sends_no_ref_and_no_lfs_object(tmp_path: Path, remote: Path, env: dict[str, str],
                                                     world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=True)
    write_model(work)
    attest(world, work, "gated")  # not enough for 'open'
    commit_all(work, "model v1")

    result = push(work, env)

    assert result.returncode != 0
    assert "DENIED" in result.stderr and "push to origin blocked" in result.stderr
    assert "strongreject-open" in result.stderr
    assert remote_head(remote) is None
    assert lfs_objects(remote) == set() if (remote / "lfs").exists() else True


@needs_lfs
def test_weights_in_pushed_history_are_checked_too(tmp_path: Path, remote: Path, env: dict[str, str],
                                                    world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=True)
    write_model(work, {"draft.safetensors": b"\x00unreviewed" * 512})
    commit_all(work, "draft weights")
    (work / "draft.safetensors").unlink()
    write_model(work)
    attest(world, work, "open")
    commit_all(work, "release")  # the tip is attested; its parent carries weights nobody checked

    result = push(work, env)

    assert result.returncode != 0
    assert "history: adds draft.safetensors" in result.stderr
    assert remote_head(remote) is None


def test_regular_blobs_are_hashed_and_match_the_folder_identity(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work)
    attest(world, work, "open")
    (work / "link.json").symlink_to("config.json")  # followed as hash_model follows it
    commit_all(work, "model without lfs")
    attest(world, work, "open")  # re-attest: the symlink is part of the identity
    head = commit_all(work, "evidence")

    result = push(work, env)

    assert result.returncode == 0, result.stderr
    assert remote_head(remote) == head


def test_tier_is_configured_per_remote(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(mirror)], check=True)
    git(work, "remote", "add", "mirror", str(mirror))
    git(work, "config", "remote.mirror.releaseGateTier", "internal")
    write_model(work)
    commit_all(work, "unattested")

    assert push(work, env, "origin", "main").returncode != 0  # release-gate.tier = open
    to_mirror = push(work, env, "mirror", "main")
    assert to_mirror.returncode == 0, to_mirror.stderr
    assert "at tier 'internal': allowed" in to_mirror.stderr


def test_no_configured_tier_refuses_with_the_command_to_fix_it(tmp_path: Path, remote: Path,
                                                                env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "--unset", "release-gate.tier")
    write_model(work)
    commit_all(work, "model")
    result = push(work, env)
    assert result.returncode != 0
    assert "git config remote.origin.releaseGateTier <tier>" in result.stderr
    assert remote_head(remote) is None


def test_deleting_a_remote_branch_needs_no_check(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "release-gate.tier", "internal")
    write_model(work)
    commit_all(work, "model")
    assert push(work, env, "origin", "main:old").returncode == 0
    git(work, "config", "--unset", "release-gate.tier")  # nothing configured: only deletions may pass
    result = push(work, env, "origin", ":old")
    assert result.returncode == 0, result.stderr
    assert remote_head(remote, "refs/heads/old") is None


def test_install_keeps_foreign_hooks_and_replaces_git_lfs_hook(tmp_path: Path, env: dict[str, str]) -> None:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    hook = repo / ".git" / "hooks" / "pre-push"

    def install(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gate", "hooks", "install", str(repo), *args],
                              capture_output=True, text=True, env={**os.environ, **env})

    hook.write_text("#!/bin/sh\nexit 0\n")
    refused = install()
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert install("--force").returncode == 0
    assert (hook.parent / "pre-push.before-release-gate").read_text() == "#!/bin/sh\nexit 0\n"
    lfs_hook = ('#!/bin/sh\ncommand -v git-lfs >/dev/null 2>&1 || { echo >&2 "This repository is configured for '
                'Git LFS but \'git-lfs\' was not found"; exit 2; }\ngit lfs pre-push "$@"\n')
    hook.write_text(lfs_hook)
    assert install("--tier", "gated", "--remote", "hub").returncode == 0
    assert "release-gate pre-push hook" in hook.read_text() and sys.executable in hook.read_text()
    assert git(repo, "config", "remote.hub.releaseGateTier").stdout.strip() == "gated"
    bad = install("--tier", "everyone")
    assert bad.returncode == 2 and "unknown tier" in bad.stderr


def test_repository_hook_script_matches_the_installed_one() -> None:
    from gate.integrations.git.install import hook_script

    from support import REPO
    script = REPO / "hooks" / "pre-push"
    assert script.read_text() == hook_script(None)
    assert os.access(script, os.X_OK)


def test_pointer_parsing() -> None:
    from gate.integrations.git.objects import parse_pointer

    oid = "a" * 64
    assert parse_pointer(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 12\n".encode()).oid == oid  # type: ignore[union-attr]
    assert parse_pointer(b"version https://git-lfs.github.com/spec/v1\nsize 12\n") is None
    assert parse_pointer(b"just a file") is None


