#!/usr/bin/env bash
# The script the tiergate action runs (kept separate so it can be tested without a runner).
# Inputs arrive as INPUT_* variables; the decision table goes to $GITHUB_STEP_SUMMARY, the outcome to
# $GITHUB_OUTPUT, and the exit code is gate's: 0 allow, 1 deny, 2 configuration error.
set -uo pipefail

GATE="${GATE:-gate}"
args=(check "${INPUT_MODEL_DIR:?model-dir is required}" --tier "${INPUT_TIER:?tier is required}"
      --trust "${INPUT_TRUST:?trust is required}" --json)
[ -n "${INPUT_POLICY:-}" ] && args+=(--policy "$INPUT_POLICY")
[ -n "${INPUT_SERVER:-}" ] && args+=(--server "$INPUT_SERVER")
[ -n "${INPUT_SERVER_KEY:-}" ] && args+=(--server-key "$INPUT_SERVER_KEY")
[ -n "${INPUT_VSA:-}" ] && args+=(--vsa "$INPUT_VSA")
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && args+=(--markdown-summary "$GITHUB_STEP_SUMMARY")
if [ -n "${INPUT_ATTESTATIONS:-}" ]; then
  read -r -a extra <<< "$INPUT_ATTESTATIONS"
  args+=("${extra[@]}")
fi

decision_json="$(mktemp)"
trap 'rm -f "$decision_json"' EXIT
"$GATE" "${args[@]}" > "$decision_json"
code=$?

if [ -n "${GITHUB_OUTPUT:-}" ] && [ -s "$decision_json" ]; then
  python3 - "$decision_json" >> "$GITHUB_OUTPUT" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
print(f"decision={data['decision']}")
print(f"satisfied-tier={data.get('satisfied_tier') or ''}")
PY
fi
case "$code" in
  0) echo "tiergate: allowed" ;;
  1) echo "::error title=tiergate::release denied at tier ${INPUT_TIER}; see the job summary for what is missing" ;;
  *) echo "::error title=tiergate::configuration error (exit $code); see the log above" ;;
esac
exit "$code"
