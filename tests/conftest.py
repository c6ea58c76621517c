"""Fixtures for every test; their code lives in support.py, which test modules import helpers from."""

from support import key_pool, manifest, model_dir, world  # noqa: F401  (fixtures, found by pytest by name)

import os

# Every `gate serve` a test starts re-signs its checkpoint on the first read after an append, so a test can decide and
# prove at once; the tests of the bounded signing rate (tests/service/test_reads.py) pass --checkpoint-interval.
os.environ.setdefault("GATE_CHECKPOINT_INTERVAL", "0")
