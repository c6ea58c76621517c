"""Fixtures for every test; their code lives in support.py, which test modules import helpers from."""

import os
import tempfile

from support import key_pool, manifest, model_dir, world  # noqa: F401  (fixtures, found by pytest by name)

# The CLI remembers digests of unchanged files (tiergate.core.digestcache); the tests' runs use a cache of their own,
# never the user's, and still exercise it.
os.environ["GATE_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiergate-test-cache-")

# Every `gate serve` a test starts re-signs its checkpoint on the first read after an append, so a test can decide and
# prove at once; the tests of the bounded signing rate (tests/service/test_reads.py) pass --checkpoint-interval.
os.environ.setdefault("GATE_CHECKPOINT_INTERVAL", "0")
