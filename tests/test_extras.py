"""A command whose extra is not installed says which extra to install, in one line, with exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tiergate import DISTRIBUTION
from support import World, write_model

# Blocks the module as if its distribution were not installed: `import X` raises ModuleNotFoundError(name=X).
_RUN = ("import sys; sys.modules[{module!r}] = None; sys.argv[0] = 'gate'; "
        "from tiergate.cli import main; main(sys.argv[1:])")


def run_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN.format(module=module), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("module", "extra", "args"), [
    ("mlflow", "mlflow", ["mlflow", "check", "models:/m/1", "--tier", "hosted", "--tracking-uri", "http://127.0.0.1:9"]),
    ("huggingface_hub", "hf", ["hf", "check", "org/model", "--tier", "open"]),
    ("sigstore", "sigstore", ["attest", "{model}", "--evaluator", "e", "--eval", "x", "--metric", "s=1", "--sigstore"]),
    ("securesystemslib", "signers", ["attest", "{model}", "--evaluator", "e", "--eval", "x", "--metric", "s=1",
                                     "--signer", "file2:{tmp}/e.key", "--signer-public-key", "{tmp}/e.pub"]),
    ("psycopg", "postgres", ["log", "audit", "--log", "postgresql://127.0.0.1:5432/test", "--unsigned-ok",
                             "--trust", "{trust}"]),
])
def test_a_missing_extra_names_the_extra_to_install(module: str, extra: str, args: list[str], world: World) -> None:
    trust = world.trust_path()
    model = write_model(world.tmp / "tiny")
    (world.tmp / "e.pub").write_bytes(world.evaluators["evalco"].key.public.to_pem())
    result = run_without(module, *(a.format(trust=trust, model=model, tmp=world.tmp) for a in args))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"'{extra}' extra" in lines[0] and "pip install '" in lines[0], lines[0]
    # the requirements themselves, never `tiergate[extra]`: right however tiergate itself was installed
    assert f"{DISTRIBUTION}[" not in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_a_missing_module_of_no_extra_stays_an_internal_error() -> None:
    from tiergate.cli._run import missing_extra

    assert missing_extra(ModuleNotFoundError("x", name="mlflow.server")) == "mlflow"
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
