"""Fixtures for every test; their code lives in support.py, which test modules import helpers from."""

import os
import tempfile

from support import key_pool, manifest, model_dir, world  # noqa: F401  (fixtures, found by pytest by name)

# The CLI remembers digests of unchanged files (tiergate.core.digestcache); the tests' runs use a cache of their own,
# never the user's, and still exercise it.
os.environ["GATE_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiergate-test-cache-")
