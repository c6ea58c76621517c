"""Security review of the core after issues 9 and 11: attacks through the real CLI and the core API.

Each test is one attack; a finding fixed on this branch is a plain test, one left open is a strict xfail.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from tiergate.core.formats import HDF5_SIGNATURE, classify_bytes
from redteam_kit import Lab, evil_pickle

NUMPY_POLICY = """\
version: 1
name: review
tiers:
  - name: internal
  - name: arrays
    extends: internal
    requires:
      formats: {allow: [safetensors, numpy, keras]}
"""


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3, dtype=np.float32))
    return buf.getvalue()


def _hdf5_with_user_block(prefix: bytes) -> bytes:
    # HDF5 allows a user block of 512 bytes (or a power of two above) before the superblock.
    return prefix + b" " * (512 - len(prefix)) + HDF5_SIGNATURE + b"\0" * 64


# --- formats: a pickle in front of a container the classifier recognises further in ------------------------------
# pickle.load and torch.load (not a zip at byte 0: the legacy pickle path) read from byte 0 and stop at STOP; the
# classifier found the zip's end record or the HDF5 superblock and never looked at what came before.


@pytest.mark.parametrize("build", [lambda: evil_pickle(2) + _npz(), lambda: evil_pickle(0) + _npz(),
                                   lambda: _hdf5_with_user_block(evil_pickle(2))],
                         ids=["pickle+npz", "protocol0+npz", "pickle-in-hdf5-user-block"])
def test_pickle_before_a_container_is_a_pickle(build) -> None:
    assert classify_bytes(build()).kind == "pickle"


def test_plain_npz_and_hdf5_user_block_still_classified() -> None:
    assert classify_bytes(_npz()).kind == "numpy"
    assert classify_bytes(_hdf5_with_user_block(b"user block text\n")).kind == "keras"


def test_pickle_prefixed_npz_denied_by_check(lab: Lab) -> None:
    policy = lab.write("arrays.yaml", NUMPY_POLICY)
    model = lab.model({"weights.npz": evil_pickle(2) + _npz()})
    out = lab.check(model, "arrays", lab.trust(), policy)
    assert out.code == 1, out.text
    assert "weights.npz" in out.text and "internal error" not in out.text


# --- configuration: a field written without a value (YAML null) read as "not written" ----------------------------
# `scope:` with its list commented out made a capability-only evaluator trusted for every risk domain; `revoked_at:`
# left a key unrevoked; `formats:` dropped the tier's formats rule. Each is now a configuration error (exit 2).


def _trust_text(lab: Lab, name: str, extra: str) -> str:
    entry = lab.signers[name].trust_entry()
    pem = entry["keys"][0]["pem"].replace("\n", "\n          ")
    return (f"version: 1\nevaluators:\n  - id: {entry['id']}\n    organization: {entry['organization']}\n"
            f"    kind: {entry['kind']}\n    keys:\n      - pem: |\n          {pem.rstrip()}\n{extra}")


@pytest.mark.parametrize(("signer", "extra", "field"), [
    ("capco", "    scope:\n    #  - capability\n", "scope"),  # was: trusted for every risk domain
    ("evalco", "        revoked_at:\n", "revoked_at"),  # was: not revoked
])
def test_null_trust_field_is_refused(lab: Lab, signer: str, extra: str, field: str) -> None:
    model = lab.model()
    lab.attest(model, signer, "wmdp_bio", {"acc": 0.2})
    out = lab.check(model, "bio", lab.trust(text=_trust_text(lab, signer, extra)))
    assert out.code == 2, out.text
    assert field in out.text and "no value" in out.text


def test_null_formats_rule_is_refused(lab: Lab) -> None:
    policy = lab.write("nullformats.yaml", NUMPY_POLICY.replace(
        "      formats: {allow: [safetensors, numpy, keras]}\n", "      formats:\n      #  allow: [safetensors]\n"))
    model = lab.model({"weights.pkl": evil_pickle(2)})
    out = lab.check(model, "arrays", lab.trust(), policy)
    assert out.code == 2, out.text
    assert "formats" in out.text and "no value" in out.text


def test_extends_null_still_means_inherit_nothing(lab: Lab) -> None:
    policy = lab.write("extnull.yaml", NUMPY_POLICY.replace("    extends: internal\n", "    extends: null\n"))
    out = lab.check(lab.model(), "arrays", lab.trust(), policy)
    assert out.code == 0, out.text


# --- scope: a requirement counts its benchmark under every catalogue name ----------------------------------------
# The catalogue says wmdp_chemistry is wmdp_chem; the requirement named only wmdp_chem, so a failing wmdp_chemistry
# attestation beside a passing wmdp_chem one was never counted and the worst-of rule allowed.

CHEM_POLICY = """\
version: 1
name: chem
tiers:
  - name: internal
  - name: chem
    extends: internal
    requires:
      evaluations:
        - {id: wmdp-chem, benchmark: wmdp_chem, metric: acc, comparator: "<=", threshold: 0.30}
"""


def test_bad_score_under_a_catalogue_alias_counts(lab: Lab) -> None:
    policy = lab.write("chem.yaml", CHEM_POLICY)
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_chem", {"acc": 0.25})
    lab.attest(model, "redteam", "wmdp_chemistry", {"acc": 0.90})
    out = lab.check(model, "chem", lab.trust(), policy)
    assert out.code == 1, out.text
    assert "0.9" in out.text


def test_alias_alone_meets_the_requirement(lab: Lab) -> None:
    policy = lab.write("chem.yaml", CHEM_POLICY)
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_chemistry", {"acc": 0.25})
    assert lab.check(model, "chem", lab.trust(), policy).code == 0


# --- open: a registry prefix makes a benchmark unknown ------------------------------------------------------------
# By design (tests/redteam/test_parsing.py, "benchmark with prefix") `inspect_evals/wmdp_chem` is not in the
# catalogue, so an unscoped evaluator's failing result under that name is valid but counts for nothing, while a
# passing `wmdp_chem` beside it allows. Stripping the prefix in `normalize` closes it but reverses that design.


@pytest.mark.xfail(strict=True, reason="a failing result signed under the task's full name (inspect_evals/wmdp_chem) "
                   "is not counted by the wmdp_chem requirement: registry prefixes are not normalised (design choice)")
def test_bad_score_under_a_task_prefix_counts(lab: Lab) -> None:
    policy = lab.write("chem.yaml", CHEM_POLICY)
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_chem", {"acc": 0.25})
    lab.attest(model, "redteam", "inspect_evals/wmdp_chem", {"acc": 0.90}, risk_domain=None)
    out = lab.check(model, "chem", lab.trust(), policy)
    assert out.code == 1, out.text


def test_task_prefix_does_not_widen_scope(lab: Lab) -> None:
    # capco is trusted for capability only; an unknown (prefixed) name has no domain, so capco cannot use it
    model = lab.model()
    lab.attest(model, "capco", "inspect_evals/wmdp_bio", {"acc": 0.2}, risk_domain=None)
    out = lab.check(model, "bio", lab.trust())
    assert out.code == 1, out.text
