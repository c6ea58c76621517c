"""Fixtures for the MLflow end-to-end tests: one real ``mlflow server --app-name tiergate`` per test session.

Their code lives in mlflow_e2e.py, with the helpers test modules import.
"""

from mlflow_e2e import client_env, gate_server, registry  # noqa: F401  (fixtures, found by pytest by name)
