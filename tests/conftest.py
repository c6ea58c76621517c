"""Fixtures for every test; their code lives in support.py, which test modules import helpers from."""

from support import key_pool, manifest, model_dir, world  # noqa: F401  (fixtures, found by pytest by name)
