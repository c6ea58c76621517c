"""Fixtures of the red-team suite: the lab (evaluators, trust stores, the red-team policy, the `gate` CLI).

The helpers live in redteam_kit.py; the session-wide key pool comes from tests/support.py.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

import pytest

from tiergate.core.keys import PrivateKey
from redteam_kit import Lab


@pytest.fixture
def lab(tmp_path: Path, key_pool: Callable[[str], PrivateKey]) -> Lab:
    return Lab(tmp_path, key_pool)
