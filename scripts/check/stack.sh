#!/usr/bin/env bash
# Static checks of the AWS stack, offline:
#   1. sam validate --lint    SAM transform + cfn-lint rules on the expanded template
#   2. cfn-lint               the template as written (all regions' specs, SAM-aware)
#   3. asl-validator          every statemachine/*.asl.json (JSONPath schema, dangling Next,
#                             unreachable states)
#   4. asl_moto.py --quick    runs generation.asl.json in moto's executor with stub steps
#                             (data flow, Retry/Catch routing, Map concurrency, Fargate branch)
#   5. asl_moto_processing.py --quick
#                             the same for processing.asl.json (step payloads, single pass and
#                             segment Map, SNS + EventBridge delivered, failure path);
#   6. emulator_live.py       the emulator's stream feeder and WebSocket gateway with stand-in
#                             functions (filter, partial failure, repeat; 401, 410, DELETE)
#                             skip 4 to 6 with VIDPIPE_SKIP_MOTO=1, run the back-off scenarios
#                             too with VIDPIPE_MOTO_FULL=1
# Exits non-zero if any check fails; runs them all first so one run shows every problem.
# Takes about 20 s (sam validate ~3 s, cfn-lint ~2 s, asl-validator <1 s, moto ~9 s + ~5 s).
#
#   scripts/check/stack.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/env.sh

# SAM and cfn-lint need a region; nothing here talks to AWS, so no credentials are needed.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

failed=()
run() {
  local name="$1"; shift
  printf '== %s\n' "$name"
  if "$@"; then
    printf 'ok: %s\n' "$name"
  else
    printf 'FAILED: %s\n' "$name" >&2
    failed+=("$name")
  fi
}

for tool in sam cfn-lint asl-validator; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool not found: run scripts/setup.sh" >&2; exit 2; }
done

run "sam validate --lint" sam validate --lint --template template.yaml
run "cfn-lint" cfn-lint template.yaml
shopt -s nullglob
asl_files=(statemachine/*.asl.json)
if ((${#asl_files[@]} == 0)); then
  echo "no statemachine/*.asl.json found" >&2
  failed+=("asl files")
fi
for f in "${asl_files[@]}"; do
  run "asl-validator $f" asl-validator --json-path "$f"
done
if [[ "${VIDPIPE_SKIP_MOTO:-0}" != 1 ]]; then
  moto_args=(--quick)
  [[ "${VIDPIPE_MOTO_FULL:-0}" == 1 ]] && moto_args=()
  run "generation.asl.json in moto" .tools/venv/bin/python scripts/check/asl_moto.py "${moto_args[@]}"
  run "processing.asl.json in moto" .tools/venv/bin/python scripts/check/asl_moto_processing.py "${moto_args[@]}"
  run "emulator live progress" .tools/venv/bin/python scripts/check/emulator_live.py
fi

if ((${#failed[@]})); then
  printf 'stack checks failed: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "stack checks passed"
