"""tiergate: a release gate for model weights.

Use it from Python through the names exported here (the library API, :mod:`tiergate.api`)::

    import tiergate
    decision = tiergate.check("model/", tier="hosted", trust="trust.yaml")
    print(decision.decision, decision.summary())

The pure core lives in :mod:`tiergate.core` (model identity, attestations, trust, policy, decision, log); the
command line in :mod:`tiergate.cli`; adapters for hosts (MLflow, the Hugging Face Hub, CI, git) in
:mod:`tiergate.integrations`; the HTTP service in :mod:`tiergate.service`.
"""

__version__ = "0.1.0"

#: The distribution to install (``pip install DISTRIBUTION[extra]``); messages about missing extras name it.
DISTRIBUTION = "tiergate"

#: The public API (docs/library.md): loaded on first use, so that ``import tiergate`` and ``gate --help`` stay fast.
__all__ = [
    "check", "verify", "hash_model", "load_trust", "load_policy",
    "Decision", "Manifest", "Policy", "TrustStore", "AttestationInput", "VerificationReport",
    "GateError", "ConfigError", "InputError", "ModelError", "UsageError", "VerificationError",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        from tiergate import api

        return getattr(api, name)
    raise AttributeError(f"module 'tiergate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
