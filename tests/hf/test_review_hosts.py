"""Red-team review (issue 11): attacks on webhook containment with the Hub stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from support import NOW
from tiergate.integrations.hf.containment import contain
from tiergate.runtime import Gate
from tiergate.service.seen import DatabaseSeen
from hf.conftest import folder_files
from hf.hub_standin import HubStandin
from hf.test_contain_first import hub_api, push_event  # noqa: F401  (hub_api is a fixture)


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/tags/v2", "refs/heads/release"])
def test_a_pull_request_head_denied_on_the_pull_request_is_checked_again_when_a_branch_or_tag_reaches_it(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path], ref: str, tmp_path: Path) -> None:
    """A denied pull request is contained on the pull request (closed), the repository untouched, and its head's key
    was recorded ``done``: the same key a branch or tag at that commit gets. Before the fix, moving ``main`` to the
    denied commit (a fast-forward merge, ``git push origin refs/pr/1:main``) or tagging it was skipped as "already
    checked at this tier" (and the denied commit counted as cleared history), and the public repository served
    unattested weights from its main branch."""
    hub.create_repo("org/release", private=False, files=folder_files(make_model(evidence="open")))
    seen = DatabaseSeen(str(tmp_path / "seen.db"))  # the store `gate serve` uses
    before = hub.repo("org/release").branches["main"]
    contain(hub_api, push_event(hub, "org/release", "refs/heads/main", None, before), gate, seen=seen, now=NOW)
    num, head = hub.open_pr("org/release", {"adapter.safetensors": b"\x07" * 4096})  # unattested weights
    [result] = contain(hub_api, push_event(hub, "org/release", f"refs/pr/{num}", None, head), gate, seen=seen,
                       now=NOW)
    assert result.decision is not None and not result.decision.allowed
    assert hub.repo("org/release").private is False  # contained on the pull request only

    repo = hub.repo("org/release")
    if ref.startswith("refs/tags/"):
        repo.tags[ref.removeprefix("refs/tags/")] = head
        old = None
    else:
        branch = ref.removeprefix("refs/heads/")
        old = repo.branches.get(branch)
        repo.branches[branch] = head
    results = contain(hub_api, push_event(hub, "org/release", ref, old, head), gate, seen=seen, now=NOW)

    assert not any(r.skipped for r in results if r.commit == head), [(r.ref, r.skipped) for r in results]
    assert hub.repo("org/release").private is True or hub.repo("org/release").gated, "weights left public"


def test_a_denied_pull_request_head_merged_under_a_clean_commit_is_checked_in_main_s_history(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path], tmp_path: Path) -> None:
    """The pull request's weights, then a commit on top that deletes them, fast-forwarded onto ``main``: the head is
    clean, the denied commit is in the public history. It must not count as cleared history."""
    hub.create_repo("org/release", private=False, files=folder_files(make_model(evidence="open")))
    seen = DatabaseSeen(str(tmp_path / "seen.db"))
    before = hub.repo("org/release").branches["main"]
    contain(hub_api, push_event(hub, "org/release", "refs/heads/main", None, before), gate, seen=seen, now=NOW)
    num, head = hub.open_pr("org/release", {"adapter.safetensors": b"\x07" * 4096})
    contain(hub_api, push_event(hub, "org/release", f"refs/pr/{num}", None, head), gate, seen=seen, now=NOW)
    hub.repo("org/release").branches["merging"] = head
    clean = hub.push_commit("org/release", {}, branch="merging", delete=["adapter.safetensors"])
    hub.repo("org/release").branches["main"] = clean
    del hub.repo("org/release").branches["merging"]

    results = contain(hub_api, push_event(hub, "org/release", "refs/heads/main", before, clean), gate, seen=seen,
                      now=NOW)

    denied = [r.commit for r in results if r.decision is not None and not r.decision.allowed]
    assert head in denied, [(r.commit[:8], r.skipped, r.decision and r.decision.decision) for r in results]
    assert hub.repo("org/release").private is True


def test_a_gated_commit_to_an_open_pull_request_of_a_public_repository_is_checked_at_its_tier(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """A pull request's ref of a public repository is public: committing unattested weights onto ``refs/pr/N``
    through the gated client is a publish at the repository's tier."""
    from tiergate.errors import GateError

    hub.create_repo("org/release", private=False, files=folder_files(make_model(evidence="open")))
    num, head = hub.open_pr("org/release", {"README.md": b"# card\n"})
    with pytest.raises(GateError) as excinfo:
        gated_api.upload_file(path_or_fileobj=b"\x07" * 4096, path_in_repo="adapter.safetensors",
                              repo_id="org/release", revision=f"refs/pr/{num}")
    assert "adapter.safetensors" in str(excinfo.value), excinfo.value
    assert hub.repo("org/release").prs[num] == head
