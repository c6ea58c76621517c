"""The pre-push hook with real git (and git-lfs where installed) against a local bare remote.

No conftest here on purpose: a package named ``git`` under tests/ would shadow GitPython, which mlflow imports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


import pytest

from support import World, write_model
from content_samples import safetensors_bytes
from tiergate.core.manifest import ATTESTATION_DIR, hash_model

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


def git(cwd: Path, *args: str, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
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
    result = subprocess.run([sys.executable, "-m", "tiergate", "hooks", "install", str(work), "--tier", "open"],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return work


def attest(world: World, model: Path, evidence: str) -> None:
    manifest = hash_model(model, skip_git=True)  # a work tree: git pushes its tree, never its .git
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
    git(work, "config", "remote.mirror.tiergateTier", "internal")
    write_model(work)
    commit_all(work, "unattested")

    assert push(work, env, "origin", "main").returncode != 0  # tiergate.tier = open
    to_mirror = push(work, env, "mirror", "main")
    assert to_mirror.returncode == 0, to_mirror.stderr
    assert "at tier 'internal': allowed" in to_mirror.stderr


def test_a_configured_tier_is_read_by_the_core_rule(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    """Issue #13 item 3: the tier in git config goes through the one normalisation every integration uses."""
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "tiergate.tier", " Internal")
    write_model(work)
    commit_all(work, "unattested")
    git(work, "config", "tiergate.tier", "іnternal")  # Cyrillic і: refused, not some other tier
    refused = push(work, env, "origin", "main")
    assert refused.returncode != 0 and "looks like the release target 'internal'" in refused.stderr
    git(work, "config", "tiergate.tier", " Internal")
    allowed = push(work, env, "origin", "main")
    assert allowed.returncode == 0, allowed.stderr
    assert "at tier 'internal': allowed" in allowed.stderr


def test_no_configured_tier_refuses_with_the_command_to_fix_it(tmp_path: Path, remote: Path,
                                                                env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "--unset", "tiergate.tier")
    write_model(work)
    commit_all(work, "model")
    result = push(work, env)
    assert result.returncode != 0
    assert "git config remote.origin.tiergateTier <tier>" in result.stderr
    assert remote_head(remote) is None


def test_deleting_a_remote_branch_needs_no_check(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "tiergate.tier", "internal")
    write_model(work)
    commit_all(work, "model")
    assert push(work, env, "origin", "main:old").returncode == 0
    git(work, "config", "--unset", "tiergate.tier")  # nothing configured: only deletions may pass
    result = push(work, env, "origin", ":old")
    assert result.returncode == 0, result.stderr
    assert remote_head(remote, "refs/heads/old") is None


def test_install_keeps_foreign_hooks_and_replaces_git_lfs_hook(tmp_path: Path, env: dict[str, str]) -> None:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    hook = repo / ".git" / "hooks" / "pre-push"

    def install(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tiergate", "hooks", "install", str(repo), *args],
                              capture_output=True, text=True, env={**os.environ, **env})

    hook.write_text("#!/bin/sh\nexit 0\n")
    kept = install()  # kept and chained (see test_prepush_review.py for it running)
    assert kept.returncode == 0, kept.stderr
    assert (hook.parent / "pre-push.before-tiergate").read_text() == "#!/bin/sh\nexit 0\n"
    hook.write_text("#!/bin/sh\nexit 3\n")  # another hook again, while a different one is kept: refused
    refused = install()
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert install("--force").returncode == 0
    assert (hook.parent / "pre-push.before-tiergate").read_text() == "#!/bin/sh\nexit 3\n"
    lfs_hook = ('#!/bin/sh\ncommand -v git-lfs >/dev/null 2>&1 || { echo >&2 "This repository is configured for '
                'Git LFS but \'git-lfs\' was not found"; exit 2; }\ngit lfs pre-push "$@"\n')
    hook.write_text(lfs_hook)
    assert install("--tier", "gated", "--remote", "hub").returncode == 0
    assert "tiergate pre-push hook" in hook.read_text() and sys.executable in hook.read_text()
    assert (hook.parent / "pre-push.before-tiergate").read_text() == "#!/bin/sh\nexit 3\n"  # git-lfs's: gone
    assert git(repo, "config", "remote.hub.tiergateTier").stdout.strip() == "gated"
    bad = install("--tier", "everyone")
    assert bad.returncode == 2 and "unknown tier" in bad.stderr


def test_repository_hook_script_matches_the_installed_one() -> None:
    from tiergate.integrations.git.install import hook_script

    from support import REPO
    script = REPO / "hooks" / "pre-push"
    assert script.read_text() == hook_script(None)
    assert os.access(script, os.X_OK)


def test_pointer_parsing() -> None:
    from tiergate.integrations.git.objects import parse_pointer

    oid = "a" * 64
    assert parse_pointer(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 12\n".encode()).oid == oid  # type: ignore[union-attr]
    assert parse_pointer(b"version https://git-lfs.github.com/spec/v1\nsize 12\n") is None
    assert parse_pointer(b"just a file") is None




# --- security review: ignored paths (F2), history by content (F4), LFS objects (F5), what is on the remote (F6) --


def test_tree_paths_police_every_ignored_path_as_a_folder_does() -> None:
    from tiergate.core.formats import BytesSource
    from tiergate.core.manifest import FileDigest
    from tiergate.errors import ModelError
    from tiergate.integrations.git.treemanifest import check_excluded_content, check_tree_paths, manifest_from_files

    fine = [".gitattributes", ".gitignore", ".github/workflows/ci.yml", ".attestations/eval.json", "model.safetensors"]
    check_tree_paths(fine, "org/model@main")
    digest = "ab" * 32
    manifest = manifest_from_files([FileDigest(p, 1, digest) for p in fine], "org/model@main")
    assert [f.path for f in manifest.files] == ["model.safetensors"]
    # Refused by name whatever they hold: .git, a folder named like a file, a file named like a folder.
    for path, why in ((".git/lfs/model.bin", "a .git folder"), (".gitignore/w.pt", ".gitignore must be a file"),
                      (".gitattributes/x.gguf", ".gitattributes must be a file"),
                      (".attestations", "a file named .attestations at the root is refused"),
                      (".github", "a file named .github at the root is refused")):
        with pytest.raises(ModelError, match=rf"^org/model@main: {re.escape(path)}: {re.escape(why)}"):
            check_tree_paths([path], "org/model@main")
        with pytest.raises(ModelError, match=re.escape(why)):
            manifest_from_files([FileDigest(path, 1, digest)], "org/model@main")
    # Refused by content, under any name (the same core rule a folder is hashed with).
    for path, data in ((".github/model.safetensors", b"\x00unhashed" * 512), (".github/ci.yml", b"\x80\x04N."),
                       (".attestations/adapter.json", b'{"weights": [0.1, 0.2]}')):
        with pytest.raises(ModelError, match=rf"^org/model@main: {re.escape(path)}: "):
            check_excluded_content(path, BytesSource(data), "org/model@main")
    check_excluded_content(".github/ci.yml", BytesSource(b"on: push\n"), "org/model@main")


def test_weights_under_an_ignored_path_are_refused_in_a_pushed_tree_as_in_a_folder(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    from tiergate.errors import ModelError

    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work)
    attest(world, work, "open")  # the attested identity leaves .github/ out ...
    write_model(work, {".github/model.safetensors": b"\x00unhashed" * 512})  # ... so this would ride along unhashed
    head = commit_all(work, "model with weights in .github")

    result = push(work, env)

    assert result.returncode != 0
    assert (f"commit {head[:12]}: .github/model.safetensors: only text may sit under an excluded path, found unknown"
            in result.stderr)
    assert remote_head(remote) is None
    folder = write_model(tmp_path / "folder",
                         {".github/model.safetensors": b"\x00unhashed" * 512, "config.json": b"{}"})
    with pytest.raises(ModelError, match=r"\.github/model\.safetensors: only text may sit under an excluded path"):
        hash_model(folder)  # the same rule for the folder


def test_weights_under_an_ignored_path_in_history_are_refused(tmp_path: Path, remote: Path, env: dict[str, str],
                                                              world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work)
    attest(world, work, "open")
    write_model(work, {".github/model.safetensors": b"\x00unhashed" * 512})
    first = commit_all(work, "attested model, plus weights in .github")
    (work / ".github" / "model.safetensors").unlink()
    commit_all(work, "tidy up")  # the tip is clean; its parent is published as well

    result = push(work, env)

    assert result.returncode != 0
    assert f"commit {first[:12]}: .github/model.safetensors: only text may sit under an excluded path" \
        in result.stderr
    assert remote_head(remote) is None


def test_history_is_checked_by_content_not_by_file_name(tmp_path: Path, remote: Path, env: dict[str, str],
                                                        world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work, {"variables/variables.data-00000-of-00001": os.urandom(4096),  # TF weights, no weight suffix
                       "ckpt/step-100": os.urandom(4096)})  # a renamed checkpoint
    commit_all(work, "draft")
    shutil.rmtree(work / "variables")
    shutil.rmtree(work / "ckpt")
    write_model(work)
    attest(world, work, "open")
    commit_all(work, "release")

    result = push(work, env)

    assert result.returncode != 0
    assert "history: adds ckpt/step-100, variables/variables.data-00000-of-00001" in result.stderr
    assert remote_head(remote) is None


def test_content_hidden_in_a_symlink_blob_in_history_is_checked(tmp_path: Path, remote: Path,
                                                                env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work)
    attest(world, work, "open")
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(8192))
    blob = git(work, "hash-object", "-w", str(payload)).stdout.strip()
    git(work, "add", "-A")
    git(work, "update-index", "--add", "--cacheinfo", f"120000,{blob},weights")  # a "symlink" of 8 KiB
    git(work, "commit", "-q", "-m", "weights behind a symlink")
    git(work, "rm", "-q", "--cached", "weights")
    commit_all(work, "release")

    result = push(work, env)

    assert result.returncode != 0
    assert "weights: a symlink whose target is 8192 bytes long is content, not a link" in result.stderr
    assert remote_head(remote) is None


def test_history_on_a_fetch_mirror_is_not_taken_as_being_on_the_push_target(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(mirror)], check=True)
    git(work, "remote", "add", "mirror", str(mirror))
    git(work, "config", "remote.mirror.tiergateTier", "internal")
    write_model(work, {"draft.safetensors": b"\x00unreviewed" * 512})
    commit_all(work, "draft weights")
    assert push(work, env, "mirror", "main").returncode == 0  # fine for the internal mirror
    git(work, "remote", "set-url", "origin", str(mirror))  # origin fetches from the mirror ...
    git(work, "remote", "set-url", "--push", "origin", str(remote))  # ... and pushes to the public remote
    git(work, "fetch", "-q", "origin")  # refs/remotes/origin/main: the draft, which the public remote never had
    (work / "draft.safetensors").unlink()
    write_model(work)
    attest(world, work, "open")
    commit_all(work, "release")

    result = push(work, env)

    assert result.returncode != 0
    assert "history: adds draft.safetensors" in result.stderr
    assert remote_head(remote) is None


def test_a_new_ref_is_checked_down_to_what_the_push_itself_says_is_on_the_remote(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "tiergate.tier", "internal")
    write_model(work, {"draft.safetensors": b"\x00unreviewed" * 512})
    commit_all(work, "draft weights")
    (work / "draft.safetensors").unlink()
    write_model(work)
    attest(world, work, "open")
    commit_all(work, "release")
    assert push(work, env).returncode == 0  # main, draft included, is on the remote at 'internal'
    git(work, "config", "tiergate.tier", "open")
    git(work, "commit", "-q", "--allow-empty", "-m", "bump")
    git(work, "branch", "feature")

    alone = push(work, env, "origin", "feature")  # git names no remote tip: all of feature's history is checked
    assert alone.returncode != 0 and "history: adds draft.safetensors" in alone.stderr
    assert remote_head(remote, "refs/heads/feature") is None

    together = push(work, env, "origin", "main", "feature")  # main's remote tip is on stdin: the draft is there
    assert together.returncode == 0, together.stderr
    assert remote_head(remote, "refs/heads/feature") == remote_head(remote)


def lfs_object_path(work: Path, oid: str) -> Path:
    return work / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def lfs_oid(work: Path, path: str) -> str:
    pointer = git(work, "cat-file", "-p", f"HEAD:{path}").stdout
    return next(line for line in pointer.splitlines() if line.startswith("oid sha256:"))[len("oid sha256:"):]


@needs_lfs
def test_a_local_lfs_object_changed_after_the_commit_is_not_pushed(tmp_path: Path, remote: Path,
                                                                   env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=True)
    write_model(work)
    attest(world, work, "open")
    head = commit_all(work, "model v1")
    oid = lfs_oid(work, "model.safetensors")
    stored = lfs_object_path(work, oid)
    os.chmod(stored, 0o644)
    # Same size and format, other bytes: git-lfs would upload them as-is; only hashing the object shows it.
    replacement = safetensors_bytes({"w": ("U8", [4096], os.urandom(4096))})
    assert len(replacement) == stored.stat().st_size
    stored.write_bytes(replacement)

    result = push(work, env)

    assert result.returncode != 0
    assert (f"model.safetensors in commit {head[:12]}: its LFS object sha256:{oid} does not match its pointer"
            in result.stderr)
    assert remote_head(remote) is None
    assert not (remote / "lfs").exists() or lfs_objects(remote) == set()

    stored.unlink()
    missing = push(work, env)
    assert missing.returncode != 0
    # At a tier with a formats rule the missing object cannot be classified, which denies first.
    assert "model.safetensors (not classified: its bytes were not available" in missing.stderr
    assert remote_head(remote) is None


@needs_lfs
def test_lfs_objects_already_on_the_remote_need_not_be_local(tmp_path: Path, remote: Path,
                                                             env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=True)
    write_model(work)
    attest(world, work, "open")
    commit_all(work, "model v1")
    assert push(work, env).returncode == 0
    (work / ATTESTATION_DIR / "eval-9.json").write_bytes((work / ATTESTATION_DIR / "eval-0.json").read_bytes())
    head = commit_all(work, "more evidence")  # the pointer is unchanged: only objects the push sends are hashed
    # as in a clone made with GIT_LFS_SKIP_SMUDGE (after the commit: `git add` may clean the file into the store again)
    lfs_object_path(work, lfs_oid(work, "model.safetensors")).unlink()

    at_open = push(work, env)  # but 'open' allows formats by content, and bytes that are not here cannot be judged
    assert at_open.returncode != 0 and "not classified: its bytes were not available" in at_open.stderr
    git(work, "config", "tiergate.tier", "gated")  # a tier without a formats rule: nothing local is needed
    result = push(work, env)

    assert result.returncode == 0, result.stderr
    assert remote_head(remote) == head
