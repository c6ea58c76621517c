"""Gated uploads through the real huggingface_hub client against the stand-in Hub."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from support import NOW, World
from tiergate.core.manifest import hash_model
from tiergate.integrations.hf.errors import BackstopRefused, GateDenied
from tiergate.runtime import Gate
from hf.conftest import attest_open, folder_files
from hf.hub_standin import HubStandin

#: Requests that carry file content or change a repository.
SENDING = ("preupload", "lfs/objects/batch", "_lfs/upload", "/commit/", "/settings", "repos/create")


def sent(hub: HubStandin) -> list[str]:
    return [f"{r.method} {r.path}" for r in hub.requests if any(s in r.path for s in SENDING)]


def test_denied_upload_sends_no_weight_bytes_and_no_commit(hub: HubStandin, gated_api: Any,
                                                           make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False)
    head = hub.repo("org/tiny").branches["main"]
    root = make_model(evidence="gated")  # enough for 'gated', not for the public repo's 'open'
    weights = (root / "model.safetensors").read_bytes()

    with pytest.raises(GateDenied) as denied:
        gated_api.upload_folder(repo_id="org/tiny", folder_path=root)

    assert denied.value.decision.decision == "deny"
    assert denied.value.decision.requested_tier == "open"
    assert {r.id for r in denied.value.decision.missing} >= {"strongreject-open"}
    assert "org/tiny" in str(denied.value) and "allowed" not in str(denied.value).split(":")[0]
    assert sent(hub) == []
    assert all(weights[:64] not in r.body for r in hub.requests)
    assert hub.repo("org/tiny").branches["main"] == head
    assert not hub.lfs


def test_allowed_upload_commits_exactly_the_checked_files(hub: HubStandin, gated_api: Any,
                                                          make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False)
    base = hub.repo("org/tiny").branches["main"]
    root = make_model(evidence="open")

    info = gated_api.upload_folder(repo_id="org/tiny", folder_path=root, commit_message="release v1")

    assert gated_api.last_decision.decision == "allow"
    assert gated_api.last_decision.model_digest == hash_model(root).digest
    tree = hub.head_tree("org/tiny")
    local = folder_files(root)
    assert set(tree) == set(local) | {".gitattributes"}
    for path, data in local.items():
        blob = tree[path]
        content = hub.lfs[blob.lfs_oid] if blob.lfs_oid else blob.content
        assert content == data, path
    assert tree["model.safetensors"].lfs_oid == hashlib.sha256(local["model.safetensors"]).hexdigest()
    commits = hub.requests_matching("POST", "/commit/")
    assert len(commits) == 1
    header = json.loads(commits[0].body.splitlines()[0])["value"]
    assert header["parentCommit"] == base  # pinned to the revision the decision was about
    assert info.oid == hub.repo("org/tiny").branches["main"]


class MutatingGate:
    """A gate that lets the decision through, then changes a file: the race the backstop exists for."""

    def __init__(self, gate: Gate, path: Path) -> None:
        self._gate, self._path = gate, path
        self.policy = gate.policy

    def decide(self, *args: Any, **kwargs: Any) -> Any:
        decision = self._gate.decide(*args, **kwargs)
        self._path.write_bytes(self._path.read_bytes() + b" changed after the check")
        return decision


@pytest.mark.parametrize("changed", ["model.safetensors", "config.json"])
def test_file_changed_after_the_check_is_refused_by_the_backstop(
        hub: HubStandin, gate: Gate, make_model: Callable[..., Path], changed: str) -> None:
    from tiergate.integrations.hf.api import GatedHfApi

    hub.create_repo("org/tiny", private=False)
    head = hub.repo("org/tiny").branches["main"]
    root = make_model(evidence="open")
    checked_weights = hashlib.sha256((root / "model.safetensors").read_bytes()).hexdigest()
    api = GatedHfApi(MutatingGate(gate, root / changed), clock=lambda: NOW, endpoint=hub.endpoint, token="hf_test")  # type: ignore[arg-type]

    with pytest.raises(BackstopRefused) as refused:
        api.upload_folder(repo_id="org/tiny", folder_path=root)

    assert f"{changed}: its content changed after the gate checked it" in str(refused.value)
    assert hub.repo("org/tiny").branches["main"] == head
    assert hub.requests_matching("POST", "/commit/") == []  # stopped in the process, never sent
    # Nothing reaches storage: every file is read against the check before the first byte is sent.
    assert hub.requests_matching("PUT", "_lfs/upload") == [] and not hub.lfs
    assert checked_weights not in {r.path.rsplit("/", 1)[-1] for r in hub.requests}


def test_plain_hfapi_commit_is_refused_once_the_backstop_is_installed(
        hub: HubStandin, gated_api: Any, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    hub.create_repo("org/tiny", private=False)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x00" * 2048)
    with pytest.raises(BackstopRefused, match="not checked by tiergate"):
        HfApi(endpoint=hub.endpoint, token="hf_test").upload_file(
            path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id="org/tiny")
    assert hub.requests_matching("POST", "/commit/") == []
    assert hub.requests_matching("POST", "lfs/objects/batch") == []


def test_private_repo_needs_only_the_lowest_tier(hub: HubStandin, gated_api: Any,
                                                 make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=True)
    root = make_model()  # no evidence at all
    gated_api.upload_folder(repo_id="org/tiny", folder_path=root)
    assert gated_api.last_decision.requested_tier == "internal"
    assert "model.safetensors" in hub.head_tree("org/tiny")


def test_upload_file_is_judged_by_the_revision_it_creates(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """Config and evidence already on the Hub + the weights uploaded now = the attested model: allowed."""
    root = make_model(evidence="open")
    files = folder_files(root)
    hub.create_repo("org/tiny", private=False, files={p: d for p, d in files.items() if p != "model.safetensors"})

    gated_api.upload_file(path_or_fileobj=root / "model.safetensors", path_in_repo="model.safetensors",
                          repo_id="org/tiny")

    assert gated_api.last_decision.decision == "allow"
    assert gated_api.last_decision.model_digest == hash_model(root).digest
    assert hub.head_tree("org/tiny")["model.safetensors"].lfs_oid is not None


def test_upload_next_to_unattested_leftovers_is_denied(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """The attested folder uploaded into a repo that already holds other weights is not the attested model."""
    hub.create_repo("org/tiny", private=False, files={"old/model.safetensors": b"\x00" * 4096})
    root = make_model(evidence="open")
    with pytest.raises(GateDenied):
        gated_api.upload_folder(repo_id="org/tiny", folder_path=root)
    assert sent(hub) == []


def test_making_a_repo_public_is_checked_against_its_files(
        hub: HubStandin, gated_api: Any, world: World, make_model: Callable[..., Path]) -> None:
    unattested = make_model()
    hub.create_repo("org/raw", private=True, files=folder_files(unattested))
    with pytest.raises(GateDenied, match="making org/raw public"):
        gated_api.update_repo_settings("org/raw", private=False)
    assert hub.repo("org/raw").private is True
    assert hub.requests_matching("PUT") == []

    attested = make_model(evidence="open")
    hub.create_repo("org/ready", private=True, files=folder_files(attested))
    gated_api.update_repo_settings("org/ready", visibility="public")
    assert hub.repo("org/ready").private is False
    assert gated_api.last_decision.requested_tier == "open"


def test_every_branch_is_checked_before_widening_access(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    attested = make_model(evidence="open")
    repo = hub.create_repo("org/ready", private=True, files=folder_files(attested))
    hub.push_commit("org/ready", {"other.safetensors": b"\x01" * 4096}, message="experiment")
    repo.branches["experiment"] = repo.branches["main"]
    repo.branches["main"] = repo.commits[repo.branches["experiment"]].parent  # type: ignore[assignment]
    with pytest.raises(GateDenied, match="refs/heads/experiment"):
        gated_api.update_repo_settings("org/ready", private=False)
    assert repo.private is True


def test_gating_is_a_tier_of_its_own(hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/gm", private=True, files=folder_files(make_model(evidence="gated")))
    gated_api.update_repo_settings("org/gm", private=False, gated="manual")  # 'gated' evidence is enough
    assert (hub.repo("org/gm").private, hub.repo("org/gm").gated) == (False, "manual")
    with pytest.raises(GateDenied):
        gated_api.update_repo_settings("org/gm", gated="auto")  # auto approval is the open tier
    with pytest.raises(GateDenied):
        gated_api.update_repo_settings("org/gm", gated=False)
    assert hub.repo("org/gm").gated == "manual"
    gated_api.update_repo_settings("org/gm", private=True)  # narrowing is never checked
    assert hub.repo("org/gm").private is True


def test_create_repo_public_is_a_publish_private_is_not(hub: HubStandin, gated_api: Any) -> None:
    with pytest.raises(GateDenied, match="private=True"):
        gated_api.create_repo("org/new")
    assert hub.requests_matching("POST", "repos/create") == []
    gated_api.create_repo("org/new", private=True)
    assert hub.repo("org/new").private is True
    gated_api.create_repo("org/new", exist_ok=True)  # exists: the Hub ignores visibility, nothing is published
    assert hub.repo("org/new").private is True


def test_publish_checks_before_creating_the_repo(hub: HubStandin, gated_api: Any,
                                                 make_model: Callable[..., Path]) -> None:
    with pytest.raises(GateDenied):
        gated_api.publish("org/fresh", make_model(evidence="gated"))
    assert sent(hub) == []
    assert ("model", "org/fresh") not in hub.repos

    root = make_model(evidence="open")
    gated_api.publish("org/fresh", root, revision="v1")
    repo = hub.repo("org/fresh")
    assert repo.private is False and "v1" in repo.branches
    assert "model.safetensors" in repo.commits[repo.branches["v1"]].tree


def test_pull_request_content_is_checked_at_the_repo_tier(hub: HubStandin, gated_api: Any,
                                                          make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False)
    with pytest.raises(GateDenied):
        gated_api.upload_folder(repo_id="org/tiny", folder_path=make_model(), create_pr=True)
    gated_api.upload_folder(repo_id="org/tiny", folder_path=make_model(evidence="open"), create_pr=True)
    assert hub.repo("org/tiny").prs


def test_commit_operations_with_copy_and_delete(hub: HubStandin, gated_api: Any, world: World,
                                                make_model: Callable[..., Path]) -> None:
    """A rename by copy + delete keeps the identity the attestations were made for, under the new name."""
    from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete

    root = make_model()
    files = folder_files(root)
    hub.create_repo("org/tiny", private=False, files={"weights/old.safetensors": files["model.safetensors"],
                                                      "config.json": files["config.json"],
                                                      "tokenizer.json": files["tokenizer.json"]})
    evidence = attest_open(world, hash_model(root))
    ops = [CommitOperationCopy(src_path_in_repo="weights/old.safetensors", path_in_repo="model.safetensors"),
           CommitOperationDelete(path_in_repo="weights/"),
           *[CommitOperationAdd(path_in_repo=f".attestations/e{n}.json", path_or_fileobj=d)
             for n, d in enumerate(evidence)]]
    gated_api.create_commit("org/tiny", ops, commit_message="rename")
    assert gated_api.last_decision.model_digest == hash_model(root).digest
    assert "weights/old.safetensors" not in hub.head_tree("org/tiny")


def test_attestation_folder_cannot_carry_weights(hub: HubStandin, gated_api: Any,
                                                 make_model: Callable[..., Path]) -> None:
    from tiergate.errors import ModelError

    hub.create_repo("org/tiny", private=True)
    root = make_model(evidence="open")
    (root / ".attestations" / "hidden.safetensors").write_bytes(b"\x00" * 1024)
    with pytest.raises(ModelError, match="only attestation files"):
        gated_api.upload_folder(repo_id="org/tiny", folder_path=root)
    assert sent(hub) == []


def test_run_as_future_reports_the_deny_through_the_future(hub: HubStandin, gated_api: Any,
                                                           make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False)
    future = gated_api.upload_folder(repo_id="org/tiny", folder_path=make_model(), run_as_future=True)
    with pytest.raises(GateDenied):
        future.result(timeout=30)
    assert sent(hub) == []
