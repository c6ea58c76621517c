"""The runtime layer: configuration, the one decision path, and following configuration files while running.

Layers (enforced by tests/test_layers.py): ``gate.core`` (pure) <- ``gate.runtime`` <- ``gate.service`` /
``gate.integrations`` / ``gate.audit`` <- ``gate.cli``.

- :mod:`~gate.runtime.port`: the :class:`Decider` protocol every publish path calls, and :class:`RecordedDecision`;
- :mod:`~gate.runtime.config`: :class:`GateConfig` (``GATE_CONFIG`` and ``GATE_*``);
- :mod:`~gate.runtime.local` / :mod:`~gate.runtime.remote`: deciding here, or asking a gate service
  (:mod:`~gate.runtime.client` is its API, :mod:`~gate.runtime.transport` the fail-closed HTTP under it);
- :mod:`~gate.runtime.reload`: the reloader every long-running process uses;
- :mod:`~gate.runtime.gate`: :class:`Gate`, a configuration followed as its files change, deciding through its
  decider.
"""

from gate.runtime.config import GateConfig
from gate.runtime.gate import Gate, Rules, load_rules
from gate.runtime.local import LocalDecider
from gate.runtime.port import Decider, RecordedDecision
from gate.runtime.reload import ConfigurationBroken, Reloader

# RemoteDecider (gate.runtime.remote) is not imported here: it brings in requests, which local decisions never need.
__all__ = ["ConfigurationBroken", "Decider", "Gate", "GateConfig", "LocalDecider", "RecordedDecision", "Reloader",
           "Rules", "load_rules"]
