"""The backstop's rules on raw commit payloads, and the import-laziness of the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

import pytest

from tiergate.core.manifest import FileDigest
from tiergate.integrations.hf.backstop import Approvals
from tiergate.integrations.hf.errors import BackstopRefused
from tiergate.integrations.hf.plan import CommitPlan

WEIGHTS = "c" * 64
CONFIG = b'{"hidden_size": 16}'


def payload(*lines: dict) -> bytes:
    header = {"key": "header", "value": {"summary": "s", "description": ""}}
    return b"".join(json.dumps(line).encode() + b"\n" for line in (header, *lines))


def lfs(path: str, oid: str) -> dict:
    return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": 10}}


def regular(path: str, data: bytes) -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


@pytest.fixture
def approvals() -> Approvals:
    return Approvals()


PLAN = CommitPlan("model", "org/m", {
    "model.safetensors": FileDigest("model.safetensors", 10, WEIGHTS),
    "config.json": FileDigest("config.json", len(CONFIG), hashlib.sha256(CONFIG).hexdigest())},
    deleted_files=frozenset({"old.bin"}), deleted_folders=frozenset({"ckpt"}))


def test_a_commit_within_a_live_plan_passes(approvals: Approvals) -> None:
    with approvals.approve(PLAN):
        approvals.check_commit("model", "org/m",
                               payload(lfs("model.safetensors", WEIGHTS), regular("config.json", CONFIG)))
        approvals.check_commit("model", "org/m", payload(lfs("model.safetensors", WEIGHTS)))  # a part of it
        approvals.check_commit("model", "org/m", payload({"key": "deletedFile", "value": {"path": "ckpt/a.bin"}},
                                                         {"key": "deletedFolder", "value": {"path": "ckpt/"}}))
        approvals.check_lfs_upload("model", "org/m", [WEIGHTS])


@pytest.mark.parametrize(("line", "reason"), [
    (lfs("model.safetensors", "d" * 64), "is not what the gate checked"),
    (lfs("other.safetensors", WEIGHTS), "is not what the gate checked"),
    (regular("config.json", CONFIG + b" "), "content is not what the gate checked"),
    ({"key": "deletedFile", "value": {"path": "README.md"}}, "deleting it was not part"),
    ({"key": "deletedFolder", "value": {"path": "weights"}}, "deleting it was not part"),
    ({"key": "copyFile", "value": {"path": "x"}}, "unknown commit line"),
])
def test_anything_else_is_refused(approvals: Approvals, line: dict, reason: str) -> None:
    with approvals.approve(PLAN), pytest.raises(BackstopRefused, match=reason):
        approvals.check_commit("model", "org/m", payload(line))


def test_plans_end_with_their_call_and_are_per_repository(approvals: Approvals) -> None:
    with approvals.approve(PLAN):
        with pytest.raises(BackstopRefused, match="not checked by tiergate"):
            approvals.check_commit("model", "org/other", payload(lfs("model.safetensors", WEIGHTS)))
        with pytest.raises(BackstopRefused, match="not checked by tiergate"):
            approvals.check_commit("dataset", "org/m", payload(lfs("model.safetensors", WEIGHTS)))
        with pytest.raises(BackstopRefused, match="No bytes of it were sent"):
            approvals.check_lfs_upload("model", "org/m", ["e" * 64])
    with pytest.raises(BackstopRefused):
        approvals.check_commit("model", "org/m", payload(lfs("model.safetensors", WEIGHTS)))


def test_gate_help_never_imports_huggingface_hub() -> None:
    code = ("import sys\nfrom tiergate.cli import main\n"
            "for args in (['--help'], ['hf', '--help'], ['hf', 'upload', '--help'], ['hooks', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "import tiergate.integrations.hf, tiergate.integrations.git.prepush\n"
            "print('LOADED' if 'huggingface_hub' in sys.modules else 'CLEAN', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stderr.strip().endswith("CLEAN"), result.stderr


def test_a_preupload_passes_only_for_checked_paths_at_checked_sizes(approvals: Approvals) -> None:
    with pytest.raises(BackstopRefused, match="not checked by tiergate. .* No file content was sent"):
        approvals.check_preupload("model", "org/m", [("model.safetensors", 10)])
    with approvals.approve(PLAN):
        approvals.check_preupload("model", "org/m", [("model.safetensors", 10), ("config.json", len(CONFIG))])
        for files in ([("model.safetensors", 11)], [("other.bin", 10)], [("config.json", len(CONFIG)), ("x", 1)]):
            with pytest.raises(BackstopRefused, match="is not a file the gate checked"):
                approvals.check_preupload("model", "org/m", files)


def test_the_transport_reads_preuploads_and_refuses_xet_tokens(approvals: Approvals) -> None:
    from huggingface_hub.utils import httpx

    from tiergate.integrations.hf.backstop import check_request

    def request(method: str, path: str, body: bytes = b"") -> object:
        return httpx.Request(method, f"http://hub.test{path}", content=body)

    preupload = json.dumps({"files": [{"path": "model.safetensors", "size": 10, "sample": ""}]}).encode()
    with pytest.raises(BackstopRefused, match="not checked by tiergate"):
        check_request(request("POST", "/api/models/org/m/preupload/main", preupload), approvals)
    with pytest.raises(BackstopRefused, match="not the JSON"):
        check_request(request("POST", "/api/models/org/m/preupload/main", b"[1]"), approvals)
    with approvals.approve(PLAN):
        check_request(request("POST", "/api/models/org/m/preupload/main", preupload), approvals)
        with pytest.raises(BackstopRefused, match="Xet write token request refused"):
            check_request(request("GET", "/api/models/org/m/xet-write-token/main"), approvals)
    check_request(request("GET", "/api/models/org/m/xet-read-token/main"), approvals)  # downloads are not gated
