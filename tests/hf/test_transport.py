"""The default transport is gated: with hf_xet installed and on, a gated upload sends exactly the bytes it checked.

F6: huggingface_hub 2.4 uploads through hf_xet whenever it is installed (``is_xet_available()``), moving bytes and
fetching its tokens from Rust where the backstop sees nothing, and hands hf_xet a sha256 computed earlier if one is
known, so a file changed after the check could be stored while the commit named the checked digest. The gated API now
hands huggingface_hub :class:`~tiergate.integrations.hf.plan.CheckedSource` file objects: only bytes whose block matches
the check are served, and file objects go by LFS, through the Python client the backstop wraps. A placeholder digest
(``***``, listed for a gated repository's files to a token without access) is never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from support import NOW, run_gate
from tiergate.errors import InputError
from tiergate.integrations.hf import plan as planning
from tiergate.integrations.hf.errors import BackstopRefused
from tiergate.runtime import Gate
from hf.conftest import folder_files
from hf.hub_standin import HubStandin


def xet_requests(hub: HubStandin) -> list[str]:
    return [r.path for r in hub.requests if "xet-" in r.path]


def test_gated_upload_with_xet_on_is_sent_by_lfs_through_the_backstop(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    from huggingface_hub.utils._runtime import is_xet_available

    assert is_xet_available()
    hub.create_repo("org/xet", private=False)
    root = make_model(evidence="open")
    weights = (root / "model.safetensors").read_bytes()

    gated_api.upload_folder(repo_id="org/xet", folder_path=root)

    assert xet_requests(hub) == []  # hf_xet never started
    oid = hashlib.sha256(weights).hexdigest()
    assert [r.path for r in hub.requests_matching("PUT", "_lfs/upload")] == [f"/_lfs/upload/{oid}"]
    assert hub.lfs[oid] == weights
    [commit] = hub.requests_matching("POST", "/commit/")
    lines = [json.loads(line) for line in commit.body.splitlines()]
    assert {"path": "model.safetensors", "oid": oid} in [
        {"path": v["value"]["path"], "oid": v["value"].get("oid")} for v in lines if v["key"] == "lfsFile"]


def test_a_file_changed_during_the_upload_is_refused(
        hub: HubStandin, gated_api: Any, make_model: Callable[..., Path]) -> None:
    """Changed after huggingface_hub read it once (at the preupload), before it sends it: its bytes never leave."""
    hub.create_repo("org/race", private=False)
    head = hub.repo("org/race").branches["main"]
    root = make_model(evidence="open")
    weights = root / "model.safetensors"
    original = weights.read_bytes()

    def swap(method: str, path: str) -> None:
        if method == "POST" and "/preupload/" in path:
            weights.write_bytes(bytes([original[0] ^ 1]) + original[1:])  # same size, other content

    hub.on_request = swap
    with pytest.raises(BackstopRefused, match="model.safetensors: its content changed after the gate checked it"):
        gated_api.upload_folder(repo_id="org/race", folder_path=root)

    assert hub.repo("org/race").branches["main"] == head and hub.requests_matching("POST", "/commit/") == []
    assert not hub.lfs and xet_requests(hub) == []
    # the upload request was opened, but not a byte of its body went out
    assert [r.body_size for r in hub.requests_matching("PUT", "_lfs/upload")] in ([], [0])


class Rewriting:
    """A gate that allows, then rewrites a file in place (same size): the race a pre-computed sha256 hid."""

    def __init__(self, gate: Gate, path: Path) -> None:
        self._gate, self._path, self.policy = gate, path, gate.policy

    def decide(self, *args: Any, **kwargs: Any) -> Any:
        decision = self._gate.decide(*args, **kwargs)
        data = self._path.read_bytes()
        self._path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        return decision


def test_an_operation_hashed_before_the_check_does_not_vouch_for_the_bytes_sent(
        hub: HubStandin, gate: Gate, make_model: Callable[..., Path]) -> None:
    from huggingface_hub import CommitOperationAdd

    from tiergate.integrations.hf.api import GatedHfApi

    hub.create_repo("org/pre", private=False)
    root = make_model(evidence="open")
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(root / rel)) for rel in folder_files(root)]
    for op in ops:
        assert op.upload_info.sha256  # computed now, before the gate's check
    api = GatedHfApi(Rewriting(gate, root / "model.safetensors"), clock=lambda: NOW,  # type: ignore[arg-type]
                     endpoint=hub.endpoint, token="hf_test")

    with pytest.raises(BackstopRefused, match="model.safetensors: its content changed"):
        api.create_commit("org/pre", ops, commit_message="release")

    assert not hub.lfs and hub.requests_matching("POST", "/commit/") == [] and xet_requests(hub) == []


def test_a_plain_upload_with_xet_on_is_stopped_before_any_content_moves(
        hub: HubStandin, gated_api: Any, tmp_path: Path) -> None:
    """hf_xet would move the bytes from Rust, unseen: the backstop refuses the preupload that comes first."""
    from huggingface_hub import HfApi

    hub.create_repo("org/plain", private=False)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 4096)
    hub.reset_requests()
    with pytest.raises(BackstopRefused, match="not checked by tiergate. .* No file content was sent"):
        HfApi(endpoint=hub.endpoint, token="hf_test").upload_file(
            path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id="org/plain")
    assert hub.requests_matching("POST") == [] and xet_requests(hub) == []


# --- CheckedSource --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(planning, "BLOCK_SIZE", 8)
    return 8


def checked(source: Any, data: bytes) -> planning.CheckedSource:
    read = planning.hash_source(io.BytesIO(data))
    return planning.CheckedSource(source, "w.bin", read.size, read.blocks)


def test_checked_source_serves_the_checked_bytes_in_any_order(small_blocks: int, tmp_path: Path) -> None:
    data = bytes(range(30))
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    for source in (str(path), data, io.BytesIO(data)):
        reader = checked(source, data)
        assert reader.read(5) == data[:5] and reader.read(10) == data[5:15]
        reader.seek(-7, io.SEEK_END)
        assert reader.read() == data[23:]
        reader.seek(0)
        assert reader.read() == data and reader.read() == b""
        buffer = bytearray(12)
        reader.seek(20)
        assert reader.readinto(buffer) == 10 and bytes(buffer[:10]) == data[20:]


@pytest.mark.parametrize(("change", "first_bad_read"), [
    (lambda d: d[:17] + b"X" + d[18:], 16),  # a byte of the third block
    (lambda d: d[:-3], 24),  # shorter
    (lambda d: d + b"more", 24),  # longer: the checked bytes are a prefix, still not the file that was checked
])
def test_checked_source_refuses_a_changed_block_before_handing_out_any_of_it(
        small_blocks: int, tmp_path: Path, change: Callable[[bytes], bytes], first_bad_read: int) -> None:
    data = bytes(range(30))
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    reader = checked(str(path), data)
    path.write_bytes(change(data))
    assert reader.read(first_bad_read) == data[:first_bad_read]  # blocks before the change are as checked
    with pytest.raises(BackstopRefused, match="w.bin: its content changed after the gate checked it"):
        reader.read(1)


def test_checked_source_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    reader = checked(str(path), b"")
    assert reader.read() == b""
    path.write_bytes(b"x")
    with pytest.raises(BackstopRefused, match="no longer empty"):
        checked(str(path), b"").read()


# --- `***`: what a gated repository lists to a token without access ----------------------------------------------


def gated_without_access(hub: HubStandin, make_model: Callable[..., Path]) -> None:
    repo = hub.create_repo("org/locked", private=False, gated="manual", files=folder_files(make_model(evidence="open")))
    repo.readers = {"hf_member"}


def test_placeholder_digests_are_refused_by_check(hub: HubStandin, gate_env: dict[str, str],
                                                  make_model: Callable[..., Path]) -> None:
    gated_without_access(hub, make_model)
    result = run_gate("hf", "check", "org/locked", env=gate_env)  # HF_TOKEN=hf_test: not on the access list
    assert result.returncode == 1, result.stdout
    assert "'***'" in result.stderr and "use a token with access" in result.stderr
    member = run_gate("hf", "check", "org/locked", "--tier", "gated", env={**gate_env, "HF_TOKEN": "hf_member"})
    assert member.returncode == 0, member.stderr


def test_placeholder_digests_are_refused_by_the_reader(hub: HubStandin, gated_api: Any,
                                                       make_model: Callable[..., Path]) -> None:
    from tiergate.integrations.hf import remote

    gated_without_access(hub, make_model)
    with pytest.raises(InputError, match="listed '\\*\\*\\*' as the (sha256|git blob id) of "):
        remote.read_revision(gated_api, "org/locked", token="hf_test")
    assert remote.read_revision(gated_api, "org/locked", token="hf_member").files["model.safetensors"].lfs_sha256


# --- client-reported digests: the check that holds them to the bytes ---------------------------------------------


def test_verify_bytes_refuses_a_listed_sha256_the_bytes_do_not_have(
        hub: HubStandin, gate_env: dict[str, str], make_model: Callable[..., Path]) -> None:
    """Xet storage keeps the sha256 the uploading client reported: a modified client can list an attested digest for
    other bytes. Metadata alone cannot tell; downloading does."""
    root = make_model(evidence="open")
    hub.create_repo("org/claimed", private=False, files=folder_files(root))
    oid = hub.head_tree("org/claimed")["model.safetensors"].lfs_oid
    assert oid is not None
    hub.lfs[oid] = b"\x0d" * len(hub.lfs[oid])  # what is stored under the claimed digest

    assert run_gate("hf", "check", "org/claimed", env=gate_env).returncode == 0  # metadata: the claim
    verified = run_gate("hf", "check", "org/claimed", "--verify-bytes", env=gate_env)
    assert verified.returncode == 1
    assert "the bytes of model.safetensors" in verified.stderr and "the uploading client's word" in verified.stderr
    hub.lfs[oid] = (root / "model.safetensors").read_bytes()
    honest = run_gate("hf", "check", "org/claimed", "--verify-bytes", env=gate_env)
    assert honest.returncode == 0, honest.stderr
    assert "each is the sha256 the Hub lists" in honest.stderr
