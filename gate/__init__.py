"""release-gate: a release gate for model weights.

The pure core lives in :mod:`gate.core` (model identity, attestations, trust, policy, decision, log); the
command line in :mod:`gate.cli`; adapters for hosts (MLflow, the Hugging Face Hub, CI, git) in
:mod:`gate.integrations`; the HTTP service in :mod:`gate.service`.
"""

__version__ = "0.1.0"

#: The distribution to install (``pip install DISTRIBUTION[extra]``); messages about missing extras name it.
DISTRIBUTION = "release-gate"
