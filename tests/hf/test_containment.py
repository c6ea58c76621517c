"""Webhook containment against the stand-in Hub: what the gate service does when something got past the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from support import NOW
from tiergate.integrations.hf.containment import MemorySeen, contain, handle_webhook, parse_event, secret_matches
from tiergate.runtime import Gate
from hf.conftest import folder_files
from hf.hub_standin import HubStandin, webhook_payload

SECRET = "s3cr3t-webhook"


@pytest.fixture
def hub_api(hub: HubStandin) -> Any:
    """The service's own HfApi (a token allowed to change settings and open discussions)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token="hf_service")


def flip_public(hub: HubStandin, repo_id: str) -> dict[str, Any]:
    """Someone makes the repo public in the web UI, behind the gate's back; the Hub sends this."""
    hub.set_visibility(repo_id, private=False)
    return webhook_payload(repo_id, scope="repo.config", updated_config={"private": False},
                           head_sha=hub.repo(repo_id).branches["main"], endpoint=hub.endpoint)


def test_private_to_public_flip_without_evidence_is_set_back_and_explained(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/raw", private=True, files=folder_files(make_model()))
    payload = flip_public(hub, "org/raw")
    head = hub.repo("org/raw").branches["main"]

    results = contain(hub_api, payload, gate, now=NOW)

    assert [r.decision.decision for r in results if r.decision] == ["deny"]
    assert results[0].tier == "open" and results[0].commit == head
    assert hub.repo("org/raw").private is True
    discussions = hub.repo("org/raw").discussions
    assert len(discussions) == 1
    assert head[:12] in discussions[0]["title"]
    body = discussions[0]["description"]
    assert "strongreject-open" in body and "narrowed from **public** to **private**" in body
    assert results[0].actions == ["made private", "opened discussion #1"]
    assert not any(r.path.endswith(".safetensors") for r in hub.downloads())


def test_containment_is_idempotent_by_repo_commit_and_tier(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/raw", private=True, files=folder_files(make_model()))
    payload = flip_public(hub, "org/raw")
    seen = MemorySeen()
    contain(hub_api, payload, gate, seen=seen, now=NOW)
    hub.reset_requests()

    hub.set_visibility("org/raw", private=False)  # redelivered event, or flipped again: same commit, same tier
    again = contain(hub_api, payload, gate, seen=seen, now=NOW)

    assert again[0].skipped == "already checked at this tier"
    assert len(hub.repo("org/raw").discussions) == 1
    assert hub.requests_matching("PUT") == [] and hub.requests_matching("POST") == []
    # The event the containment itself causes (public -> private) is checked at the private tier, and allowed.
    hub.set_visibility("org/raw", private=True)
    follow_up = contain(hub_api, webhook_payload("org/raw", scope="repo.config", updated_config={"private": True}),
                        gate, seen=seen, now=NOW)
    assert follow_up[0].decision is not None and follow_up[0].decision.decision == "allow"
    assert follow_up[0].actions == []


def test_flip_with_evidence_is_left_alone(hub: HubStandin, hub_api: Any, gate: Gate,
                                          make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/ready", private=True, files=folder_files(make_model(evidence="open")))
    results = contain(hub_api, flip_public(hub, "org/ready"), gate, now=NOW)
    assert results[0].decision is not None and results[0].decision.decision == "allow"
    assert hub.repo("org/ready").private is False and not hub.repo("org/ready").discussions


def test_evidence_for_gated_leads_to_manual_gating_not_private(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/gm", private=True, files=folder_files(make_model(evidence="gated")))
    results = contain(hub_api, flip_public(hub, "org/gm"), gate, now=NOW)
    repo = hub.repo("org/gm")
    assert (repo.private, repo.gated) == (False, "manual")
    assert results[0].actions[:2] == ["made private", "gated (manual approval)"]  # contained first, then eased


def test_unattested_push_to_a_public_repo_is_contained(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/pub", private=False, files=folder_files(make_model(evidence="open")))
    old = hub.repo("org/pub").branches["main"]
    new = hub.push_commit("org/pub", {"extra.safetensors": b"\x02" * 4096})  # a `git push --no-verify`
    payload = webhook_payload("org/pub", scope="repo.content", head_sha=new, endpoint=hub.endpoint,
                              updated_refs=[{"ref": "refs/heads/main", "oldSha": old, "newSha": new}])

    results = contain(hub_api, payload, gate, now=NOW)

    assert [(r.ref, r.commit, r.history) for r in results] == [("refs/heads/main", new, False),
                                                               ("refs/heads/main", old, True)]
    assert hub.repo("org/pub").private is True
    assert results[0].actions == ["made private", "opened discussion #1"]


def test_events_that_cannot_publish_are_ignored(hub: HubStandin, hub_api: Any, gate: Gate) -> None:
    assert parse_event(webhook_payload("org/x", scope="discussion.comment", action="create")) is None
    assert parse_event(webhook_payload("org/x", scope="repo", action="delete")) is None
    event = parse_event(webhook_payload("org/x", scope="repo.content", updated_refs=[
        {"ref": "refs/heads/gone", "oldSha": "a" * 40, "newSha": "0" * 40},
        {"ref": "refs/heads/main", "oldSha": "a" * 40, "newSha": "b" * 40}]))
    assert event is not None and event.updated_refs == (("refs/heads/main", "b" * 40),)
    assert contain(hub_api, webhook_payload("org/x", scope="discussion", action="create"), gate) == []
    assert hub.requests == []


def test_webhook_with_wrong_secret_is_refused_before_anything_is_read(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/raw", private=True, files=folder_files(make_model()))
    body = json.dumps(flip_public(hub, "org/raw")).encode()

    for headers in ({"X-Webhook-Secret": "guess"}, {}, {"X-Webhook-Secret": SECRET + " "}):
        response = handle_webhook(headers, body, SECRET, hub_api, gate, now=NOW)
        assert response.status == 401
    assert hub.requests == [] and hub.repo("org/raw").private is False
    assert handle_webhook({"X-Webhook-Secret": "anything"}, body, None, hub_api, gate).status == 401  # none set
    assert handle_webhook({"x-webhook-secret": SECRET}, b"not json", SECRET, hub_api, gate).status == 400

    ok = handle_webhook({"x-webhook-secret": SECRET}, body, SECRET, hub_api, gate, now=NOW)
    assert ok.status == 200 and ok.body["results"][0]["decision"] == "deny"
    assert hub.repo("org/raw").private is True


def test_secret_comparison() -> None:
    assert secret_matches("abc", "abc")
    assert not secret_matches("abd", "abc") and not secret_matches(None, "abc") and not secret_matches("", "")
    assert secret_matches("ünï", "ünï")


def test_a_revision_the_gate_cannot_read_is_contained_not_retried(
        hub: HubStandin, hub_api: Any, gate: Gate, make_model: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: a large file kept out of LFS cannot be checked from metadata, so the flip is undone."""
    from tiergate.integrations.hf import remote

    monkeypatch.setattr(remote, "MAX_REGULAR_BYTES", 64)  # stands in for a 64 MiB file committed without LFS
    files = folder_files(make_model(evidence="open"))
    files["notes.txt"] = b"x" * 100
    hub.create_repo("org/odd", private=True, files=files)

    results = contain(hub_api, flip_public(hub, "org/odd"), gate, now=NOW)

    assert results[0].decision is None and results[0].actions[0] == "made private"
    assert results[0].actions[1].startswith("could not verify: ") and "not stored with LFS" in results[0].actions[1]
    assert hub.repo("org/odd").private is True
    body = hub.repo("org/odd").discussions[0]["description"]
    assert "could not be verified" in body and "narrowed from **public** to **private**" in body
