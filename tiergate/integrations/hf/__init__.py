"""Hugging Face Hub integration: gated uploads, a commit backstop, remote verification and webhook containment.

Modules, one job each:

- :mod:`.tiers`       Hub repo state (private / gated / public) -> policy tier, and the state a change leads to.
- :mod:`.remote`      a pushed revision's identity from Hub metadata (LFS sha256), without downloading weights.
- :mod:`.plan`        what a commit will put in a repo, hashed locally, and the manifest of the resulting tree.
- :mod:`.backstop`    an HTTP transport that refuses commits whose content differs from what the gate checked.
- :mod:`.api`         :class:`GatedHfApi`, an ``HfApi`` whose publishing methods ask the gate first.
- :mod:`.containment` the webhook side: re-check a pushed revision and contain it (private / gated + discussion).

``huggingface_hub`` is imported only by the modules that talk to the Hub, never by this package's import, so that
``gate --help`` stays fast and works without the ``hf`` extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GatedHfApi", "GateDenied", "BackstopRefused"]


def __getattr__(name: str) -> Any:
    if name == "GatedHfApi":
        from tiergate.integrations.hf.api import GatedHfApi

        return GatedHfApi
    if name in ("GateDenied", "BackstopRefused"):
        from tiergate.integrations.hf import errors

        return getattr(errors, name)
    raise AttributeError(name)
