"""History is the unit, and creating is safe: every GatedHfApi call that makes commits reachable at a higher tier
checks all of them, and a publish never joins a repository wider than it asked for.

F2: ``duplicate_repo`` checked only the source's head, while the Hub copies the whole history. F5: ``publish(private=
True)`` committed into a repository someone else had created public meanwhile (``exist_ok`` hid the clash). Branches,
tags and merged pull requests publish the commits they reach. All against the stand-in Hub (full-history duplicate,
``refs/pr/N``), Xet on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from tiergate.integrations.hf.errors import GateDenied, Unverifiable
from hf.conftest import folder_files
from hf.hub_standin import HubStandin


def unattested_then_covered(hub: HubStandin, repo_id: str, make_model: Callable[..., Path]) -> tuple[str, str]:
    raw = folder_files(make_model())
    raw["raw.safetensors"] = b"\x07" * 4096
    hub.create_repo(repo_id, private=True, files=raw)
    unattested = hub.repo(repo_id).branches["main"]
    clean = hub.push_commit(repo_id, folder_files(make_model(evidence="open")), delete=["raw.safetensors"])
    return unattested, clean


# --- duplicate_repo (F2) -------------------------------------------------------------------------------------------


def test_duplicate_checks_the_whole_history_the_hub_copies(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    unattested, _clean = unattested_then_covered(hub, "org/src", make_model)

    with pytest.raises(GateDenied) as denied:
        gated_api.duplicate_repo("org/src", "org/copy", private=False)

    assert unattested[:12] in str(denied.value) and "history of refs/heads/main" in str(denied.value)
    assert hub.requests_matching("POST", "/duplicate") == [] and ("model", "org/copy") not in hub.repos
    with pytest.raises(GateDenied):  # visibility not given: the copy may be public
        gated_api.duplicate_repo("org/src", "org/copy")
    gated_api.duplicate_repo("org/src", "org/copy", private=True)  # the private tier needs nothing
    assert unattested in hub.repo("org/copy").commits  # the stand-in copies the history, as the Hub does


def test_duplicate_of_a_clean_history_is_allowed(hub: HubStandin, gated_api: Any,
                                                 make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/clean", private=True, files=folder_files(make_model(evidence="open")))
    gated_api.duplicate_repo("org/clean", "org/clean-copy", visibility="public")
    assert hub.repo("org/clean-copy").private is False
    assert gated_api.last_decision.decision == "allow"


# --- branches, tags, merges ----------------------------------------------------------------------------------------


def test_a_branch_or_tag_at_a_pull_request_publishes_its_commits(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/pub", private=False, files=folder_files(make_model(evidence="open")))
    num, pr_head = hub.open_pr("org/pub", {"candidate.safetensors": b"\x05" * 4096})

    with pytest.raises(GateDenied, match=f"creating branch exp in org/pub .*{pr_head[:12]}"):
        gated_api.create_branch("org/pub", branch="exp", revision=f"refs/pr/{num}")
    with pytest.raises(GateDenied, match="creating tag v1"):
        gated_api.create_tag("org/pub", tag="v1", revision=pr_head)
    repo = hub.repo("org/pub")
    assert "exp" not in repo.branches and "v1" not in repo.tags

    gated_api.create_tag("org/pub", tag="v0")  # main is published already: nothing new becomes reachable
    assert repo.tags["v0"] == repo.branches["main"]


def test_merging_a_pull_request_checks_its_commits_at_the_repository_tier(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/pub", private=False, files=folder_files(make_model(evidence="open")))
    head = hub.repo("org/pub").branches["main"]
    num, _ = hub.open_pr("org/pub", {"candidate.safetensors": b"\x05" * 4096})
    with pytest.raises(GateDenied, match=f"merging pull request #{num}"):
        gated_api.merge_pull_request("org/pub", num)
    assert hub.repo("org/pub").branches["main"] == head

    attested = folder_files(make_model(evidence="open"))
    good, _ = hub.open_pr("org/pub", attested)
    hub.repo("org/pub").prs[good] = hub.push_commit("org/pub", {}, branch="main")  # a PR the stand-in can merge
    hub.repo("org/pub").branches["main"] = head
    gated_api.merge_pull_request("org/pub", good)


# --- create safely (F5) --------------------------------------------------------------------------------------------


def test_publish_private_into_an_existing_public_repo_is_refused(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/taken", private=False)
    head = hub.repo("org/taken").branches["main"]
    with pytest.raises(Unverifiable, match="org/taken already exists and is public, not private as asked"):
        gated_api.publish("org/taken", make_model(), private=True)
    with pytest.raises(Unverifiable, match="already exists and is public"):
        gated_api.create_repo("org/taken", private=True, exist_ok=True)
    assert hub.repo("org/taken").branches["main"] == head and hub.requests_matching("POST", "/commit/") == []


def test_publish_private_into_a_repo_created_public_meanwhile_is_refused(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """The check ran at the private tier; someone creates the repository public before ours: exist_ok hides it."""
    def squat(method: str, path: str) -> None:
        if method == "POST" and path == "/api/repos/create" and ("model", "org/race") not in hub.repos:
            hub.create_repo("org/race", private=False)

    hub.on_request = squat
    with pytest.raises(Unverifiable, match="org/race already exists and is public, not private as asked"):
        gated_api.publish("org/race", make_model(), private=True)  # unattested: fine for private only
    repo = hub.repo("org/race")
    assert len(repo.commits) == 1 and hub.requests_matching("POST", "/commit/") == []
    assert not hub.lfs and hub.requests_matching("POST", "/preupload/") == []


def test_upload_cli_private_into_a_public_repo_is_refused_in_one_line(
        hub: HubStandin, gate_env: dict[str, str], make_model: Callable[..., Path]) -> None:
    from support import run_gate

    hub.create_repo("org/cli-taken", private=False)
    result = run_gate("hf", "upload", "org/cli-taken", str(make_model()), "--private", env=gate_env)
    assert result.returncode == 1, result.stderr
    assert "org/cli-taken already exists and is public, not private as asked" in result.stderr
    assert "Traceback" not in result.stderr and hub.requests_matching("POST", "/commit/") == []


def test_a_pull_request_based_on_an_unpublished_commit_checks_its_history(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """Opened with parent_commit: the commit's history becomes reachable from the new refs/pr/N."""
    from huggingface_hub import CommitOperationAdd

    hub.create_repo("org/pub", private=False, files=folder_files(make_model(evidence="open")))
    repo = hub.repo("org/pub")
    main = repo.branches["main"]
    with hub.lock:  # a side line of history no branch or tag reaches: weights added, then removed again
        dirty = hub._commit(repo, None, {**repo.commits[main].tree, "x.safetensors": hub._store(
            "x.safetensors", b"\x0c" * 4096)}, "draft", parent=main)
        clean = hub._commit(repo, None, dict(repo.commits[main].tree), "undo", parent=dirty.sha)
    with pytest.raises(GateDenied, match=f"opening a pull request in org/pub .*{dirty.sha[:12]}"):
        gated_api.create_commit("org/pub", [CommitOperationAdd(path_in_repo="notes.txt", path_or_fileobj=b"hi")],
                                commit_message="notes", create_pr=True, parent_commit=clean.sha)
    assert repo.prs == {}
