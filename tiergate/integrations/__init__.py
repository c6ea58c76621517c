"""Thin adapters that turn a host's publish event into one call of the core and its decision into the host's refusal.

- :mod:`tiergate.integrations.mlflow` - an ``mlflow.app`` plugin in front of the model registry.
- :mod:`tiergate.integrations.hf` - gated Hugging Face Hub uploads, the commit backstop, webhook containment.
- :mod:`tiergate.integrations.git` - the git pre-push hook.
"""
