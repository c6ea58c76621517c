# Sourced by scripts/demo and scripts/test: create .venv once and install release-gate with everything the demo
# and the tests use. Re-running is cheap: pip skips what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
VPY="$ROOT/.venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
"$VPY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[all,dev]"
# git-lfs is used by the pre-push hook tests when Debian can provide it; they skip loudly without it.
