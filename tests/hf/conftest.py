"""Fixtures for the Hub integration: a stand-in Hub on 127.0.0.1, a test policy, gates, and attested models.

The real huggingface_hub client talks to the stand-in over HTTP, with Xet ON as users get it (hf_xet installed,
HF_HUB_DISABLE_XET unset): gated uploads must take a path the gate controls whatever the transport default is.
HF_HOME is a temporary folder so no real token or cache is touched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterator

import pytest

# Before huggingface_hub is imported anywhere in this process: it reads these once, at import.
os.environ.pop("HF_HUB_DISABLE_XET", None)
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="gate-hf-home-"))
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)

from tiergate.core.manifest import ATTESTATION_DIR, Manifest, hash_model
from tiergate.runtime import Gate, GateConfig
from support import NOW, World, write_model
from hf.hub_standin import HubStandin

POLICY = """\
version: 1
name: hf-test
tiers:
  - name: internal
  - name: hosted
  - name: gated
    requires:
      signers: {kinds: [third_party]}
      evaluations:
        - {id: strongreject-gated, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.2}
  - name: open
    requires:
      signers: {min_organizations: 2, kinds: [third_party, government]}
      formats: {allow: [safetensors]}
      evaluations:
        - {id: strongreject-open, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.05}
targets:
  huggingface: {private: internal, gated_manual: gated, gated_auto: open, public: open}
"""


@pytest.fixture(autouse=True)
def _xet_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Xet as users get it; another test module of this worker must not have turned it off."""
    from huggingface_hub import constants
    from huggingface_hub.utils._runtime import is_xet_available

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert is_xet_available(), "hf_xet must be installed: the tests run the default transport"


@pytest.fixture(autouse=True)
def _restore_client_factory() -> Iterator[None]:
    """The backstop is process-wide: put huggingface_hub's client back so other tests in this worker see a plain one."""
    from huggingface_hub.utils import _http, set_client_factory

    from tiergate.integrations.hf import backstop

    before = _http._GLOBAL_CLIENT_FACTORY
    yield
    set_client_factory(before)
    backstop._installed_factory = None


@pytest.fixture
def hub() -> Iterator[HubStandin]:
    standin = HubStandin()
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def gate(world: World, policy_path: Path) -> Gate:
    return Gate.load(GateConfig(policy=policy_path, trust=world.trust_path()))


@pytest.fixture
def gate_env(world: World, policy_path: Path, hub: HubStandin) -> dict[str, str]:
    """Environment for `gate` subprocesses talking to the stand-in."""
    return {"GATE_POLICY": str(policy_path), "GATE_TRUST": str(world.trust_path()), "GATE_NOW": "2026-11-01T12:00:00Z",
            "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_test",
            "HF_HOME": os.environ["HF_HOME"]}


def attest_open(world: World, manifest: Manifest) -> list[bytes]:
    """Evidence that clears every tier of the test policy."""
    return [world.attest(manifest, "evalco", "strongreject", {"score": 0.03}).data,
            world.attest(manifest, "aisi", "strongreject", {"score": 0.04}).data]


def attest_gated(world: World, manifest: Manifest) -> list[bytes]:
    """Evidence that clears 'gated' but not 'open'."""
    return [world.attest(manifest, "evalco", "strongreject", {"score": 0.1}).data]


@pytest.fixture
def make_model(tmp_path: Path, world: World) -> Callable[..., Path]:
    """A model folder; ``evidence`` = 'open' | 'gated' | None writes matching attestations into .attestations/."""
    counter = iter(range(1000))

    def make(evidence: str | None = None, files: dict[str, bytes] | None = None) -> Path:
        root = write_model(tmp_path / f"model-{next(counter)}", files)
        if evidence:
            manifest = hash_model(root)
            items = attest_open(world, manifest) if evidence == "open" else attest_gated(world, manifest)
            (root / ATTESTATION_DIR).mkdir()
            for n, data in enumerate(items):
                (root / ATTESTATION_DIR / f"eval-{n}.json").write_bytes(data)
        return root

    return make


@pytest.fixture
def gated_api(hub: HubStandin, gate: Gate):  # -> GatedHfApi
    from tiergate.integrations.hf.api import GatedHfApi

    return GatedHfApi(gate, clock=lambda: NOW, endpoint=hub.endpoint, token="hf_test")


def folder_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # huggingface_hub's own LFS upload passes a file as `data=`, which httpx2 deprecates; not ours to fix.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"))
