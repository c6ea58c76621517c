"""What is left out of a model's identity stays small in total, on every surface (folder, git tree, Hub revision).

Each file under an excluded path is judged by its content, but an attestation envelope's payload or a text file can
still carry bytes: without a total, a thousand 16 MiB attestation files would carry a whole model past the digest.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tiergate.core import manifest as manifest_module
from tiergate.core.manifest import check_excluded_budget, hash_model
from tiergate.errors import ModelError
from support import write_model


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "MAX_EXCLUDED_FILES", 3)
    monkeypatch.setattr(manifest_module, "MAX_EXCLUDED_TOTAL_BYTES", 10_000)


def _github_files(root: Path, count: int, size: int = 10) -> None:
    (root / ".github").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / ".github" / f"notes-{i}.md").write_text("x" * size)


def test_the_budget_counts_files_and_bytes(small_budget: None) -> None:
    check_excluded_budget([("a", 5000), ("b", 5000), ("c", 0)])
    with pytest.raises(ModelError, match="4 files of 4 bytes under excluded paths"):
        check_excluded_budget([(str(i), 1) for i in range(4)], "org/m@1")
    with pytest.raises(ModelError, match="over the limit"):
        check_excluded_budget([("a", 10_001)])


@pytest.mark.parametrize(("count", "size"), [(4, 10), (2, 6000)])
def test_a_folder_over_the_budget_is_refused(small_budget: None, tmp_path: Path, count: int, size: int) -> None:
    model = write_model(tmp_path / "m")
    _github_files(model, 3, 10)
    hash_model(model)  # at the limit: fine
    _github_files(model, count, size)
    with pytest.raises(ModelError, match="under excluded paths"):
        hash_model(model)


def test_a_git_tree_over_the_budget_is_refused(small_budget: None, tmp_path: Path) -> None:
    from tiergate.integrations.git.objects import GitRepo, pushed_tree

    work = write_model(tmp_path / "repo")
    _github_files(work, 4)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "many notes"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
    repo = GitRepo(work)
    try:
        with pytest.raises(ModelError, match="under excluded paths"):
            pushed_tree(repo, head)
    finally:
        repo.close()


def test_a_hub_revision_over_the_budget_is_refused_before_anything_is_read(small_budget: None) -> None:
    from tiergate.integrations.hf.remote import RemoteFile, RemoteRevision, excluded_content

    files = {f".github/n{i}.md": RemoteFile(f".github/n{i}.md", 10, "0" * 40, None) for i in range(4)}
    rev = RemoteRevision("org/m", "model", "a" * 40, state=None, files=files)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="org/m@aaaaaaaaaaaa: 4 files"):
        excluded_content(api=None, rev=rev, paths=files)  # no api: reading anything would fail differently
