"""Contain first, then verify; pull requests are contained on themselves; history is the unit for pushes too.

F4: a stranger's README-typo pull request on a public repository made containment set the whole repository private.
F5: containment read every reachable commit before narrowing anything (seconds to minutes while the weights stayed
public); a multi-commit push to a public repository was checked at its head only, and the record of that head-only
check let later events at the same tier skip the history walk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from support import NOW
from tiergate.integrations.hf.containment import MemorySeen, contain, seen_key
from tiergate.runtime import Gate
from hf.conftest import folder_files
from hf.hub_standin import HubStandin, webhook_payload


@pytest.fixture
def hub_api(hub: HubStandin) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token="hf_service")


def push_event(hub: HubStandin, repo_id: str, ref: str, old: str | None, new: str) -> dict[str, Any]:
    return webhook_payload(repo_id, scope="repo.content", head_sha=new, endpoint=hub.endpoint,
                           updated_refs=[{"ref": ref, "oldSha": old or "0" * 40, "newSha": new}])


def flip_public(hub: HubStandin, repo_id: str) -> dict[str, Any]:
    hub.set_visibility(repo_id, private=False)
    return webhook_payload(repo_id, scope="repo.config", updated_config={"private": False}, endpoint=hub.endpoint)


def first(hub: HubStandin, method: str, part: str) -> int:
    return next(n for n, r in enumerate(hub.requests) if r.method == method and part in r.path)


# --- F4: pull requests ---------------------------------------------------------------------------------------------


def test_a_strangers_pull_request_is_contained_on_the_pull_request_not_the_repository(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/release", private=False, files=folder_files(make_model(evidence="open")))
    seen = MemorySeen()
    contain(hub_api, flip_public(hub, "org/release"), gate, seen=seen, now=NOW)  # the release is cleared
    num, head = hub.open_pr("org/release", {"README.md": b"# Modle card (typo fixed: Model)\n"})
    hub.reset_requests()

    [result] = contain(hub_api, push_event(hub, "org/release", f"refs/pr/{num}", None, head), gate, seen=seen,
                       now=NOW)

    repo = hub.repo("org/release")
    assert repo.private is False and repo.gated is False and hub.requests_matching("PUT", "/settings") == []
    assert result.decision is not None and not result.decision.allowed and result.pull_request == num
    assert result.actions == [f"closed pull request #{num}", f"kept pull request #{num} closed: not cleared"]
    thread = repo.pr_threads[num]
    assert thread["status"] == "closed"
    assert "stays closed (the repository itself is unchanged)" in thread["comments"][-1]
    assert repo.discussions == []  # no repository-wide alarm for a pull request


def test_a_cleared_pull_request_is_reopened(hub: HubStandin, hub_api: Any, gate: Gate,
                                            make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/release", private=False)
    num, head = hub.open_pr("org/release", folder_files(make_model(evidence="open")))

    [result] = contain(hub_api, push_event(hub, "org/release", f"refs/pr/{num}", None, head), gate, now=NOW)

    assert result.decision is not None and result.decision.allowed
    assert result.actions == [f"closed pull request #{num}", f"reopened pull request #{num}"]
    assert hub.repo("org/release").pr_threads[num]["status"] == "open"
    assert hub.repo("org/release").private is False


# --- F5: contain first ---------------------------------------------------------------------------------------------


def test_access_is_narrowed_before_any_history_is_read_then_restored_when_cleared(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/ready", private=True, files=folder_files(make_model(evidence="open")))
    for n in range(3):
        hub.push_commit("org/ready", {".gitattributes": f"# {n}\n".encode()})
    seen = MemorySeen()
    payload = flip_public(hub, "org/ready")
    hub.reset_requests()

    result, *history = contain(hub_api, payload, gate, seen=seen, now=NOW)

    assert result.decision is not None and result.decision.allowed and len(history) == 3
    assert all(r.decision is not None and r.decision.allowed and r.actions == [] for r in history)
    assert result.actions == ["made private", "restored to public"]
    narrowed = first(hub, "PUT", "/settings")
    assert narrowed < first(hub, "GET", "/commits/") and narrowed < first(hub, "GET", "/revision/")
    assert narrowed <= 2  # the state and the refs were read, nothing else
    assert hub.repo("org/ready").private is False
    # The event the restore itself causes finds everything checked: nothing is narrowed again.
    hub.reset_requests()
    again = contain(hub_api, flip_public(hub, "org/ready"), gate, seen=seen, now=NOW)
    assert [r.skipped for r in again] == ["already checked at this tier"] and hub.requests_matching("PUT") == []


def test_a_change_made_meanwhile_is_not_overwritten_by_the_restore(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/ready", private=True, files=folder_files(make_model(evidence="open")))
    payload = flip_public(hub, "org/ready")

    def admin(method: str, path: str) -> None:
        if method == "GET" and "/commits/" in path:
            hub.repo("org/ready").gated = "manual"  # an admin gates it while the gate verifies

    hub.on_request = admin
    [result] = contain(hub_api, payload, gate, now=NOW)
    assert result.actions == ["made private", "left private: access was changed by someone else meanwhile"]
    assert hub.repo("org/ready").private is True and hub.repo("org/ready").gated == "manual"


# --- F5: a push is a history ---------------------------------------------------------------------------------------


def test_a_multi_commit_push_to_a_public_repository_is_checked_commit_by_commit(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    clean = folder_files(make_model(evidence="open"))
    hub.create_repo("org/pub", private=False, files=clean)
    before = hub.repo("org/pub").branches["main"]
    seen = MemorySeen()
    contain(hub_api, flip_public(hub, "org/pub"), gate, seen=seen, now=NOW)  # the published state is cleared
    hub.reset_requests()
    # `git push --no-verify` of two commits: unattested weights, then a clean head that deletes them again
    unattested = hub.push_commit("org/pub", {"draft.safetensors": b"\x09" * 4096})
    head = hub.push_commit("org/pub", {}, delete=["draft.safetensors"])

    results = contain(hub_api, push_event(hub, "org/pub", "refs/heads/main", before, head), gate, seen=seen, now=NOW)

    assert [(r.commit, r.history, r.decision.decision if r.decision else None) for r in results] == [
        (head, False, "allow"), (unattested, True, "deny")]
    assert hub.repo("org/pub").private is True and hub.repo("org/pub").discussions
    # only what the push added was read: the history already cleared at this tier was not
    read = {r.path.rsplit("/", 1)[-1] for r in hub.requests_matching("GET", "/revision/")}
    assert read == {head, unattested}


def test_a_head_only_record_never_stands_in_for_a_history_walk(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    raw = folder_files(make_model())
    hub.create_repo("org/old", private=True, files=raw)
    unattested = hub.repo("org/old").branches["main"]
    head = hub.push_commit("org/old", folder_files(make_model(evidence="open")), delete=[
        p for p in raw if p.endswith(".safetensors")])
    seen = MemorySeen()
    head_only = seen_key("model", "org/old", head, "open", walked=False)  # as the old code recorded a push
    assert seen.add(head_only) and head_only != seen_key("model", "org/old", head, "open")
    seen.done(head_only)

    results = contain(hub_api, flip_public(hub, "org/old"), gate, seen=seen, now=NOW)

    assert [(r.commit, r.decision.decision if r.decision else None) for r in results] == [
        (head, "allow"), (unattested, "deny")]
    assert hub.repo("org/old").private is True


@pytest.mark.parametrize("attested", [False, True])
def test_what_is_pushed_while_access_is_narrowed_is_verified_before_restoring(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path], attested: bool) -> None:
    """A push to the narrowed repository is checked at the private tier only: the restore must not publish it."""
    hub.create_repo("org/busy", private=True, files=folder_files(make_model(evidence="open")))
    payload = flip_public(hub, "org/busy")
    arrived: list[str] = []
    late = folder_files(make_model(evidence="open")) if attested else {"late.safetensors": b"\x0b" * 4096}

    def push_meanwhile(method: str, path: str) -> None:
        if method == "GET" and "/commits/" in path and not arrived:
            arrived.append(hub.push_commit("org/busy", late))

    hub.on_request = push_meanwhile
    results = contain(hub_api, payload, gate, now=NOW)

    [late_result] = [r for r in results if r.commit == arrived[0]]
    assert late_result.actions[0] == "arrived while access was narrowed: verified before restoring"
    assert late_result.decision is not None and late_result.decision.allowed is attested
    assert hub.repo("org/busy").private is not attested
    assert bool(hub.repo("org/busy").discussions) is not attested


def test_a_new_repository_holding_nothing_yet_is_restored_without_a_discussion(
        hub: HubStandin, hub_api: Any, gate: Gate) -> None:
    """`publish` creates the repository public first: its initial commit publishes nothing of a model."""
    hub.create_repo("org/new", private=False)
    [result] = contain(hub_api, webhook_payload("org/new", scope="repo", action="create", endpoint=hub.endpoint),
                       gate, now=NOW)
    assert result.skipped == "holds nothing of a model" and result.decision is None
    assert result.actions == ["made private", "restored to public"]
    assert hub.repo("org/new").private is False and hub.repo("org/new").discussions == []
