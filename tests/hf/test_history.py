"""Widening access publishes every reachable commit, not only the heads; a state the gate cannot read is refused.

F3: once a repository is public (or no longer gated) any commit in it can be downloaded by its sha, and so can every
pull-request ref (refs/pr/N). Checking only branch and tag heads let an unevaluated model committed while private,
then covered by a clean attested commit, become downloadable. F7b: a settings change whose starting state could not
be read (a gated repository the token may not read, the Hub failing) was made unchecked.

Everything here runs the real huggingface_hub client against the stand-in Hub (tests/hf/hub_standin.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from support import NOW
from tiergate.errors import ConfigError
from tiergate.integrations.hf.containment import MemorySeen, contain
from tiergate.integrations.hf.errors import GateDenied, TooManyCommits, Unverifiable
from tiergate.runtime import Gate
from hf.conftest import folder_files
from hf.hub_standin import HubStandin, webhook_payload


def unattested_then_covered(hub: HubStandin, repo_id: str, make_model: Callable[..., Path]) -> tuple[str, str]:
    """A private repository where an unevaluated model was committed, then replaced by a clean attested one.

    Returns (the unevaluated commit, the clean head)."""
    raw = folder_files(make_model())
    raw["raw.safetensors"] = b"\x07" * 4096  # an extra checkpoint the clean commit deletes
    hub.create_repo(repo_id, private=True, files=raw)
    unattested = hub.repo(repo_id).branches["main"]
    clean = hub.push_commit(repo_id, folder_files(make_model(evidence="open")), delete=["raw.safetensors"],
                            message="clean, attested model")
    return unattested, clean


def commit_listings(hub: HubStandin, repo_id: str) -> list[Any]:
    return hub.requests_matching("GET", f"/api/models/{repo_id}/commits/")


# --- GatedHfApi: update_repo_settings ------------------------------------------------------------------------------


def test_widening_access_checks_commits_in_the_history_not_only_heads(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    unattested, clean = unattested_then_covered(hub, "org/hist", make_model)

    with pytest.raises(GateDenied) as denied:
        gated_api.update_repo_settings("org/hist", private=False)

    message = str(denied.value)
    assert unattested[:12] in message and "history of refs/heads/main" in message
    assert clean[:12] not in message  # the head itself is cleared
    assert denied.value.decision.decision == "deny" and denied.value.decision.requested_tier == "open"
    assert hub.repo("org/hist").private is True and hub.requests_matching("PUT") == []
    # The history was listed through HfApi.list_repo_commits, pinned to the head commit.
    assert [r.path for r in commit_listings(hub, "org/hist")] == [f"/api/models/org/hist/commits/{clean}"]
    # Metadata only: no weight was downloaded to check either commit.
    assert not any(r.path.endswith(".safetensors") for r in hub.downloads())


def test_widening_access_checks_pull_request_refs(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/prs", private=True, files=folder_files(make_model(evidence="open")))
    num, pr_head = hub.open_pr("org/prs", {"candidate.safetensors": b"\x05" * 4096})

    with pytest.raises(GateDenied, match=f"refs/pr/{num} at {pr_head[:12]}"):
        gated_api.update_repo_settings("org/prs", visibility="public")

    assert hub.repo("org/prs").private is True and hub.requests_matching("PUT") == []
    [refs] = hub.requests_matching("GET", "/api/models/org/prs/refs")
    assert refs.query.get("include_prs") == ["1"]
    assert f"/api/models/org/prs/commits/{pr_head}" in [r.path for r in commit_listings(hub, "org/prs")]


def test_history_attested_in_a_later_commit_is_cleared_and_each_commit_costs_metadata_only(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """Weights uploaded in one commit and attested in the next: the attestations (about the model, wherever they are
    kept) clear both commits. Each commit is read once; a file several commits share is downloaded once."""
    files = folder_files(make_model(evidence="open"))
    attestations = {p: d for p, d in files.items() if p.startswith(".attestations/")}
    hub.create_repo("org/later", private=True, files={p: d for p, d in files.items() if p not in attestations})
    weights_commit = hub.repo("org/later").branches["main"]
    head = hub.push_commit("org/later", attestations, message="add attestations")
    initial = hub.history("org/later")[-1]
    hub.reset_requests()

    gated_api.update_repo_settings("org/later", private=False)

    assert hub.repo("org/later").private is False
    assert gated_api.last_decision.decision == "allow"
    infos = Counter(r.path.rsplit("/", 1)[-1] for r in hub.requests_matching("GET", "/api/models/org/later/revision/"))
    assert infos == Counter({head: 1, weights_commit: 1, initial: 1})  # one metadata request per commit
    downloads = Counter(r.path.rsplit("/", 1)[-1] for r in hub.downloads())
    assert downloads["config.json"] == 1 and downloads["tokenizer.json"] == 1  # shared blobs: hashed once
    assert not any(name.endswith(".safetensors") for name in downloads)


def test_check_exposure_decides_history_commits_and_skips_the_empty_initial_commit(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    from tiergate.integrations.hf.tiers import HubState

    hub.create_repo("org/two", private=True, files=folder_files(make_model(evidence="open")))
    hub.push_commit("org/two", folder_files(make_model(evidence="open")))  # another attested model over it
    decisions = gated_api.check_exposure("org/two", HubState(private=False))
    assert [d.decision for d in decisions] == ["allow", "allow"]  # head + the older model; not the initial commit
    assert len({d.model_digest for d in decisions}) == 2


def test_history_is_followed_across_pages(hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    from hf.hub_standin import GITATTRIBUTES

    hub.commits_page_size = 2
    unattested, _ = unattested_then_covered(hub, "org/long", make_model)
    for n in range(3):  # .gitattributes is outside the model's identity: these heads stay the attested model
        hub.push_commit("org/long", {".gitattributes": GITATTRIBUTES + f"# {n}\n".encode()}, message=f"attrs {n}")
    with pytest.raises(GateDenied) as denied:
        gated_api.update_repo_settings("org/long", private=False)
    assert unattested[:12] in str(denied.value) and "1 of the" in str(denied.value)
    pages = [r.query.get("p") for r in commit_listings(hub, "org/long")]
    assert pages == [None, ["1"], ["2"]]  # 6 commits, 2 a page: every page was read


def test_more_history_than_the_bound_is_refused(hub: HubStandin, gate: Gate, make_model: Callable[..., Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tiergate.integrations.hf.api import GatedHfApi

    hub.create_repo("org/big", private=True, files=folder_files(make_model(evidence="open")))  # 2 commits
    hub.push_commit("org/big", {"README.md": b"# model\n"})  # 3 commits
    bounded = GatedHfApi(gate, clock=lambda: NOW, endpoint=hub.endpoint, token="hf_test", max_commits=2)
    with pytest.raises(TooManyCommits, match="more than 2 commits are reachable") as refused:
        bounded.update_repo_settings("org/big", private=False)
    assert "access is not widened" in str(refused.value) and refused.value.exit_code == 1
    assert hub.repo("org/big").private is True and hub.requests_matching("PUT") == []

    monkeypatch.setenv("GATE_HF_MAX_COMMITS", "2")  # the operator's knob (the webhook service reads it too)
    default = GatedHfApi(gate, clock=lambda: NOW, endpoint=hub.endpoint, token="hf_test")
    with pytest.raises(TooManyCommits):
        default.update_repo_settings("org/big", private=False)
    monkeypatch.setenv("GATE_HF_MAX_COMMITS", "lots")
    with pytest.raises(ConfigError, match="GATE_HF_MAX_COMMITS"):
        default.update_repo_settings("org/big", private=False)
    assert hub.requests_matching("PUT") == []


# --- GatedHfApi: a state the gate cannot read (F7b) -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "reason"), [
    (403, "GatedRepo", "gated and this token is not on its access list"),  # GatedRepoError: the repo exists
    (401, None, "cannot read"),  # a bare 401: RepositoryNotFoundError, but the Hub did not say it does not exist
    (500, None, "HfHubHTTPError"),
])
def test_settings_change_is_refused_when_the_current_state_cannot_be_read(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path], status: int, code: str | None,
        reason: str) -> None:
    hub.create_repo("org/hidden", private=True, gated="manual", files=folder_files(make_model()))
    hub.failures[("GET", "/api/models/org/hidden")] = (status, code)

    with pytest.raises(Unverifiable, match="cannot read the repository's current visibility") as refused:
        gated_api.update_repo_settings("org/hidden", private=False, gated=False)

    assert reason in str(refused.value)
    assert hub.requests_matching("PUT") == []
    assert (hub.repo("org/hidden").private, hub.repo("org/hidden").gated) == (True, "manual")


def test_settings_change_on_a_repository_that_does_not_exist_is_left_to_the_hub(hub: HubStandin,
                                                                               gated_api: Any) -> None:
    from huggingface_hub.utils import RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError) as missing:
        gated_api.update_repo_settings("org/none", private=False)
    assert not isinstance(missing.value, Unverifiable)
    assert [r.path for r in hub.requests_matching("PUT")] == ["/api/models/org/none/settings"]  # the Hub says 404


# --- webhook containment ---------------------------------------------------------------------------------------


@pytest.fixture
def hub_api(hub: HubStandin) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token="hf_service")


def flip_public(hub: HubStandin, repo_id: str) -> dict[str, Any]:
    hub.set_visibility(repo_id, private=False)
    return webhook_payload(repo_id, scope="repo.config", updated_config={"private": False}, endpoint=hub.endpoint)


class RecordingSeen(MemorySeen):
    """MemorySeen that remembers how each key was finished (the service's store reopens keys on reopen=True)."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: dict[tuple[str, ...], bool] = {}

    def done(self, key: tuple[str, ...], *, reopen: bool = False) -> None:
        self.finished[key] = reopen


def test_flip_to_public_contains_an_unattested_commit_in_the_history(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    unattested, clean = unattested_then_covered(hub, "org/hist", make_model)
    seen = RecordingSeen()

    results = contain(hub_api, flip_public(hub, "org/hist"), gate, seen=seen, now=NOW)

    assert [(r.commit, r.history, r.decision.decision if r.decision else None) for r in results] == [
        (clean, False, "allow"), (unattested, True, "deny")]  # the initial commit holds nothing: not decided
    assert hub.repo("org/hist").private is True
    assert results[0].actions == ["made private"]  # at once, before the history was read
    assert results[1].actions == ["opened discussion #1"] and results[1].state_after == "private"
    [discussion] = hub.repo("org/hist").discussions
    assert unattested[:12] in discussion["title"]
    assert f"commit `{unattested}` in the history of `refs/heads/main`" in discussion["description"]
    assert "narrowed from **public** to **private**" in discussion["description"]
    # The head's key covers the history checked with it: reopened, so widening again is checked again.
    assert seen.finished == {("model", "org/hist", clean, "open", "history"): True}
    assert results[1].to_dict()["history"] is True


def test_flip_to_public_contains_an_unattested_pull_request(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/prs", private=True, files=folder_files(make_model(evidence="open")))
    num, pr_head = hub.open_pr("org/prs", {"candidate.safetensors": b"\x05" * 4096})

    results = contain(hub_api, flip_public(hub, "org/prs"), gate, now=NOW)

    denied = [r for r in results if r.decision and not r.decision.allowed]
    assert [(r.ref, r.commit, r.history, r.pull_request) for r in denied] == [(f"refs/pr/{num}", pr_head, False, num)]
    # F4: contained on the pull request, never by narrowing the repository (the branch was narrowed, then restored)
    repo = hub.repo("org/prs")
    assert repo.private is False and repo.discussions == []
    assert repo.pr_threads[num]["status"] == "closed" and "not cleared" in repo.pr_threads[num]["comments"][-1]


def test_several_commits_not_cleared_make_one_containment_and_one_discussion(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    unattested, _ = unattested_then_covered(hub, "org/many", make_model)
    num, pr_head = hub.open_pr("org/many", {"candidate.safetensors": b"\x05" * 4096})

    results = contain(hub_api, flip_public(hub, "org/many"), gate, now=NOW)

    denied = [r for r in results if r.decision and not r.decision.allowed]
    assert [(r.commit, r.history) for r in denied] == [(pr_head, False), (unattested, True)]  # heads first
    opened = f"opened discussion #{num + 1}"  # the pull request is discussion #num
    # The pull request is contained on itself, the history on the repository.
    assert [r.actions for r in denied] == [
        [f"closed pull request #{num}", f"kept pull request #{num} closed: not cleared"], [opened]]
    assert len(hub.requests_matching("PUT", "/settings")) == 1
    [discussion] = hub.repo("org/many").discussions
    assert unattested in discussion["description"] and pr_head not in discussion["description"]
    assert hub.repo("org/many").pr_threads[num]["status"] == "closed"


def test_flip_with_more_history_than_the_bound_is_contained(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/big", private=True, files=folder_files(make_model(evidence="open")))
    hub.push_commit("org/big", {"README.md": b"# model\n"})

    results = contain(hub_api, flip_public(hub, "org/big"), gate, now=NOW, max_commits=2)

    [result] = results
    assert result.decision is None and result.actions[0] == "made private"
    assert "more than 2 commits are reachable" in result.actions[1] and result.actions[2:] == ["opened discussion #1"]
    assert hub.repo("org/big").private is True
    assert "could not be verified" in hub.repo("org/big").discussions[0]["description"]


def test_a_private_repository_is_checked_at_its_heads_only(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    """Narrowing (or any config change of a private repository) publishes nothing: no history walk, no discussion."""
    unattested_then_covered(hub, "org/quiet", make_model)
    payload = webhook_payload("org/quiet", scope="repo.config", updated_config={"private": True},
                              endpoint=hub.endpoint)
    results = contain(hub_api, payload, gate, now=NOW, max_commits=1)
    assert [(r.tier, r.decision.decision) for r in results if r.decision] == [("internal", "allow")]
    assert commit_listings(hub, "org/quiet") == [] and hub.repo("org/quiet").discussions == []
