"""`gate hf check`: a pushed revision verified from Hub metadata, without downloading its weights."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Callable

from support import World, run_gate
from tiergate.core.manifest import hash_model
from hf.conftest import folder_files
from hf.hub_standin import HubStandin


def test_check_allows_an_attested_revision_without_downloading_weights(
        hub: HubStandin, gate_env: dict[str, str], make_model: Callable[..., Path]) -> None:
    root = make_model(evidence="open")
    hub.create_repo("org/tiny", private=False, files=folder_files(root))
    head = hub.repo("org/tiny").branches["main"]

    result = run_gate("hf", "check", f"org/tiny@{head}", "--tier", "open", "--json", env=gate_env)

    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["decision"] == "allow"
    assert decision["model_digest"] == hash_model(root).digest  # the same identity as `gate check` on the folder
    downloads = [r.path for r in hub.downloads()]
    assert not any(p.endswith(".safetensors") for p in downloads)
    assert any(p.endswith("config.json") for p in downloads)  # small regular files are hashed
    # Weights are classified from ranged reads of their first and last bytes only.
    ranged = [r for r in hub.requests_matching("GET", "/resolve/") if "range" in r.headers]
    assert ranged and all(r.path.endswith(".safetensors") for r in ranged) and hub.bytes_ranged <= 256 * 1024
    assert "LFS digest(s) from metadata" in result.stderr
    # `gate check --hf` is the same check, reached from the command release engineers already use.
    same = run_gate("check", "--hf", f"org/tiny@{head}", "--tier", "open", "--json", env=gate_env)
    assert same.returncode == 0 and json.loads(same.stdout)["model_digest"] == decision["model_digest"]


def test_check_denies_and_says_what_is_missing(hub: HubStandin, gate_env: dict[str, str],
                                               make_model: Callable[..., Path]) -> None:
    hub.create_repo("org/tiny", private=False, files=folder_files(make_model(evidence="gated")))

    result = run_gate("hf", "check", "org/tiny", env=gate_env)  # tier from visibility: public -> open

    assert result.returncode == 1
    assert "tier       open" in result.stdout
    assert "NOT MET" in result.stdout and "strongreject-open" in result.stdout
    assert "denied" in result.stderr


def test_check_at_an_explicit_lower_tier(hub: HubStandin, gate_env: dict[str, str],
                                         make_model: Callable[..., Path], tmp_path: Path) -> None:
    hub.create_repo("org/tiny", private=False, files=folder_files(make_model(evidence="gated")))
    summary = tmp_path / "summary.md"
    result = run_gate("hf", "check", "org/tiny@main", "--tier", "gated", "--markdown-summary", str(summary),
                      env=gate_env)
    assert result.returncode == 0, result.stderr
    assert "ALLOW" in summary.read_text()


def test_check_takes_extra_attestations(hub: HubStandin, gate_env: dict[str, str], world: World,
                                        make_model: Callable[..., Path], tmp_path: Path) -> None:
    from hf.conftest import attest_open

    root = make_model()
    hub.create_repo("org/tiny", private=False, files=folder_files(root))
    paths = []
    for n, data in enumerate(attest_open(world, hash_model(root))):
        paths.append(tmp_path / f"extra-{n}.json")
        paths[-1].write_bytes(data)
    result = run_gate("hf", "check", "org/tiny", *map(str, paths), env=gate_env)
    assert result.returncode == 0, result.stderr


def test_check_usage_errors_exit_2(hub: HubStandin, gate_env: dict[str, str]) -> None:
    hub.create_repo("org/tiny", private=False)
    missing = run_gate("hf", "check", "org/nope", env=gate_env)
    assert missing.returncode == 2 and "repository not found" in missing.stderr
    bad_rev = run_gate("hf", "check", "org/tiny@nope", env=gate_env)
    assert bad_rev.returncode == 2 and "no such revision" in bad_rev.stderr
    hub.reset_requests()
    bad_tier = run_gate("hf", "check", "org/tiny", "--tier", "everyone", env=gate_env)
    assert bad_tier.returncode == 2 and "unknown tier" in bad_tier.stderr
    assert hub.requests_matching("GET", "/api/models/org/tiny") == []  # the tier was refused before any request


def test_check_refuses_content_that_does_not_match_its_metadata(hub: HubStandin, gate_env: dict[str, str],
                                                                make_model: Callable[..., Path]) -> None:
    root = make_model(evidence="open")
    hub.create_repo("org/tiny", private=False, files=folder_files(root))
    tree = hub.head_tree("org/tiny")
    tree["config.json"] = _Lying(tree["config.json"], b"x" * tree["config.json"].size)  # type: ignore[assignment]
    result = run_gate("hf", "check", "org/tiny", env=gate_env)
    assert result.returncode == 1
    assert "does not match its git blob id" in result.stderr


class _Lying:
    """A blob whose metadata says one thing and whose download says another."""

    def __init__(self, real: object, served: bytes) -> None:
        self.size = real.size  # type: ignore[attr-defined]
        self.blob_id = real.blob_id  # type: ignore[attr-defined]
        self.lfs_oid = None
        self.content = served


def test_upload_cli_mirrors_hf_upload(hub: HubStandin, gate_env: dict[str, str],
                                      make_model: Callable[..., Path]) -> None:
    denied = run_gate("hf", "upload", "org/cli", str(make_model(evidence="gated")), env=gate_env)
    assert denied.returncode == 1
    assert "DENY" in denied.stdout and "denied" in denied.stderr
    assert ("model", "org/cli") not in hub.repos and hub.requests_matching("POST") == []

    private = run_gate("hf", "upload", "org/cli", str(make_model()), "--private", env=gate_env)
    assert private.returncode == 0, private.stderr
    assert hub.repo("org/cli").private is True and "uploaded to" in private.stderr

    root = make_model(evidence="open")
    public = run_gate("hf", "upload", "org/cli-public", str(root), "--commit-message", "v1", env=gate_env)
    assert public.returncode == 0, public.stderr
    assert "ALLOW" in public.stdout
    tree = hub.head_tree("org/cli-public")
    assert {p for p in tree if p != ".gitattributes"} == set(folder_files(root))

    single = run_gate("hf", "upload", "org/cli", str(root / "config.json"), "conf/config.json", env=gate_env)
    assert single.returncode == 0, single.stderr
    assert "conf/config.json" in hub.head_tree("org/cli")
