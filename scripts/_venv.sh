# Sourced by scripts/demo and scripts/test: create .venv once and install tiergate with everything the demo
# and the tests use. Re-running is cheap: pip skips what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
VPY="$ROOT/.venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
"$VPY" -m pip install -qq --disable-pip-version-check -e "$ROOT[all,dev]"
# CI's MLflow floor job tests the oldest MLflow pyproject declares (GATE_MLFLOW_VERSION=3.17.0); the others the newest.
if [ -n "${GATE_MLFLOW_VERSION:-}" ]; then
  "$VPY" -m pip install -qq --disable-pip-version-check "mlflow==$GATE_MLFLOW_VERSION" \
    "mlflow-skinny==$GATE_MLFLOW_VERSION" "mlflow-tracing==$GATE_MLFLOW_VERSION"
fi
# git-lfs is used by the pre-push hook tests; installed from Debian where we can (root), else they skip loudly.
if ! command -v git-lfs >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  { apt-get install -y -q git-lfs || { apt-get update -q && apt-get install -y -q git-lfs; }; } >/dev/null 2>&1 \
    || echo "note: git-lfs could not be installed; the LFS pre-push tests will be skipped" >&2
fi
# SoftHSM2 is the PKCS#11 token the `gate attest --signer hsm:` tests and the evaluator guide sign with, OpenSC's
# pkcs11-tool what the guide makes its key with; Debian's, where we can (root).
if { ! command -v softhsm2-util || ! command -v pkcs11-tool; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  { apt-get install -y -q softhsm2 opensc || { apt-get update -q && apt-get install -y -q softhsm2 opensc; }; } \
    >/dev/null 2>&1 || echo "note: softhsm2/opensc could not be installed; the PKCS#11 signing tests will be skipped" >&2
fi
