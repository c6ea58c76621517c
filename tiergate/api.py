"""The library API: what a Python program needs to check a release, in one import.

Everything named in ``__all__`` here (and re-exported from the package root, ``import tiergate``) is public: it keeps
its name and meaning within a major version, and a change to it is announced in the changelog a minor release ahead.
Everything else (``tiergate.core.*``, ``tiergate.runtime``, ``tiergate.service``, ``tiergate.integrations``,
``tiergate.cli``) is internal and may change in any release. See docs/library.md.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from collections.abc import Sequence

from tiergate.core.collect import model_attestations, read_attestations
from tiergate.core.decision import Decision
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.policy import Policy
from tiergate.core.timeutil import utcnow
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, VerificationReport, verify_all
from tiergate.errors import ConfigError, GateError, InputError, ModelError, UsageError, VerificationError
from tiergate.runtime.local import LocalDecider

__all__ = [
    "check", "verify", "hash_model", "load_trust", "load_policy",
    "Decision", "Manifest", "Policy", "TrustStore", "AttestationInput", "VerificationReport",
    "GateError", "ConfigError", "InputError", "ModelError", "UsageError", "VerificationError",
]

PathLike = str | os.PathLike[str]


def load_trust(trust: PathLike | TrustStore | None) -> TrustStore:
    """A trust store from a YAML file (or as given); None is an empty store, which allows only the lowest tier.

    Raises ConfigError naming the file and field when it does not load.
    """
    if isinstance(trust, TrustStore):
        return trust
    return TrustStore.load(trust) if trust is not None else TrustStore((), source="(no trust store)")


def load_policy(policy: PathLike | Policy | None) -> Policy:
    """A tier policy from a YAML file (or as given); None is the default policy shipped with the package.

    Raises ConfigError naming the file and field when it does not load.
    """
    return policy if isinstance(policy, Policy) else Policy.load(policy)


def _inputs(model_dir: PathLike, attestations: Sequence[PathLike]) -> list[AttestationInput]:
    return model_attestations(model_dir) + read_attestations(attestations)


def check(
    model_dir: PathLike,
    tier: str,
    *,
    trust: PathLike | TrustStore | None = None,
    policy: PathLike | Policy | None = None,
    attestations: Sequence[PathLike] = (),
    now: datetime | None = None,
) -> Decision:
    """Decide whether the model in ``model_dir`` may be released at ``tier``, as ``gate check`` does.

    The attestations are those in the model's ``.attestations/`` folder plus ``attestations`` (files or folders).
    Nothing is recorded: this is the decision alone (``gate check`` and the integrations also log it).

    Raises ConfigError (trust store, policy, unknown tier), ModelError (the folder cannot be given an identity) or
    InputError (a folder holds more attestation files than are read; a file that cannot be read is a rejected
    attestation, not an error). A deny is not an exception: look at ``Decision.allowed``.
    """
    store, rules = load_trust(trust), load_policy(policy)
    rules.tier(tier)  # an unknown tier is a configuration error before any hashing
    manifest = hash_model(Path(model_dir))
    # The one decision path (tiergate.runtime.LocalDecider), with no log: nothing is recorded.
    return LocalDecider(rules, store).decide(tier, manifest, _inputs(model_dir, attestations), now=now).decision


def verify(
    model_dir: PathLike,
    *,
    trust: PathLike | TrustStore | None = None,
    attestations: Sequence[PathLike] = (),
    now: datetime | None = None,
    policy: PathLike | Policy | None = None,
) -> VerificationReport:
    """Verify every attestation of the model in ``model_dir`` (its ``.attestations/`` plus ``attestations``), as
    ``gate verify`` does: which are accepted, and why each other one is rejected. ``policy`` gives the clock skew
    and the benchmark catalogue (each evaluation's risk domain); None is the default policy.

    Raises ConfigError, ModelError or InputError as :func:`check` does.
    """
    store, rules = load_trust(trust), load_policy(policy)
    manifest = hash_model(Path(model_dir))
    return verify_all(_inputs(model_dir, attestations), store, manifest, now or utcnow(), rules.clock_skew,
                      rules.benchmarks)
