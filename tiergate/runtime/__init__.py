"""The runtime layer: configuration, the one decision path, and following configuration files while running.

Layers (enforced by tests/test_layers.py): ``tiergate.core`` (pure) <- ``tiergate.runtime`` <- ``tiergate.service`` /
``tiergate.integrations`` / ``tiergate.audit`` <- ``tiergate.cli``.

- :mod:`~tiergate.runtime.port`: the :class:`Decider` protocol every publish path calls, and :class:`RecordedDecision`;
- :mod:`~tiergate.runtime.config`: :class:`GateConfig` (``GATE_CONFIG`` and ``GATE_*``);
- :mod:`~tiergate.runtime.local` / :mod:`~tiergate.runtime.remote`: deciding here, or asking a gate service
  (:mod:`~tiergate.runtime.client` is its API, :mod:`~tiergate.runtime.transport` the fail-closed HTTP under it);
- :mod:`~tiergate.runtime.reload`: the reloader every long-running process uses;
- :mod:`~tiergate.runtime.gate`: :class:`Gate`, a configuration followed as its files change, deciding through its
  decider.
"""

from tiergate.runtime.config import GateConfig
from tiergate.runtime.gate import Gate, Rules, load_rules
from tiergate.runtime.local import LocalDecider
from tiergate.runtime.port import Decider, RecordedDecision
from tiergate.runtime.reload import ConfigurationBroken, Reloader

# RemoteDecider (tiergate.runtime.remote) is not imported here: it brings in requests, which local decisions never need.
__all__ = ["ConfigurationBroken", "Decider", "Gate", "GateConfig", "LocalDecider", "RecordedDecision", "Reloader",
           "Rules", "load_rules"]
