"""Sigstore bundles v0.3 wrapping DSSE: the bundle-verify cases of sigstore-conformance that apply to the gate.

Layout and outcomes as the suite defines them (``sigstore-conformance/README.md``, ``client.py``): a case directory
ending in ``_fail`` must be refused, any other must verify; the identity and issuer are the case's ``identity`` /
``issuer`` files or the suite's defaults (``CERTIFICATE_IDENTITY`` / ``CERTIFICATE_OIDC_ISSUER`` in ``client.py``,
read from the copied file); the trusted root is the case's ``trusted_root.json`` or the public-good instance's.

The statements are SLSA provenance for ``a.txt``, not evaluations: the gate is asked about the model whose digest is
``a.txt``'s, and a case "verifies" when the only refusal left is the predicate type (signature, certificate chain,
identity and transparency log all passed), verified offline against the trust store's ``sigstore`` identity.
"""

from __future__ import annotations

import ast
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import GateError

HERE = Path(__file__).parent / "sigstore-conformance"
CASES = sorted(p for p in HERE.iterdir() if (p / "bundle.sigstore.json").is_file())
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
UNSUPPORTED_PREDICATE = "unsupported predicateType"


def _suite_default(name: str) -> str:
    """A module-level string constant of the suite's ``client.py``."""
    for node in ast.parse((HERE / "client.py").read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError(f"client.py defines no {name}")


def _store(case: Path) -> TrustStore:
    """The Sigstore identity the suite verifies the case against, as a trust-store entry."""
    def read(name: str, default: str) -> str:
        path = case / name
        return path.read_text().strip() if path.exists() else _suite_default(default)

    identity: dict[str, Any] = {"identity": read("identity", "CERTIFICATE_IDENTITY"),
                                "issuer": read("issuer", "CERTIFICATE_OIDC_ISSUER")}
    if (case / "trusted_root.json").exists():
        identity["trusted_root"] = "trusted_root.json"  # relative to the trust store, here the case's directory
    entry = {"id": "conformance", "organization": "sigstore", "kind": "developer", "keys": [{"sigstore": identity}]}
    return TrustStore.from_dict({"version": 1, "evaluators": [entry]}, source="vectors", base_dir=case)


def test_cases_present() -> None:
    names = {c.name for c in CASES}
    assert "happy-path-intoto-in-dsse-v3" in names and "dsse-invalid-sig_fail" in names and len(names) == 8
    assert all((c / "README").read_text().strip() for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bundle_verify_case(case: Path) -> None:
    subject = hashlib.sha256(((case / "artifact") if (case / "artifact").exists() else HERE / "a.txt").read_bytes())
    item = AttestationInput(case.name, (case / "bundle.sigstore.json").read_bytes())
    store = _store(case)  # a trust store without Sigstore identities refuses the entry: not a verdict on the case
    try:
        verify_attestation(item, store, subject.hexdigest(), NOW)
        reason = None
    except GateError as exc:
        reason = str(exc)
    if case.name.endswith("_fail"):
        # Refused for what the case breaks, not for the predicate the gate would refuse anyway.
        assert reason is not None and UNSUPPORTED_PREDICATE not in reason and "unsupported" not in reason
    else:
        assert reason is None or UNSUPPORTED_PREDICATE in reason, reason
