#!/usr/bin/env bash
# Prints the cold-start figures the README reports: the size of the
# deployment package (scripts/lambda/build.sh: linux/arm64, stripped,
# zipped) and, for the real bootstrap built for this machine, the init
# duration and first-turn latency under the AWS Lambda Runtime Interface
# Emulator, with a real redis-server and the Claude simulator, over
# RUNS fresh starts (default 20). A minimal Go bootstrap is measured the
# same way alongside, to show what this machine gives any Go function.
#
#   scripts/lambda/coldstart.sh            # RUNS=50 scripts/lambda/coldstart.sh
#
# The runs are TestLambdaColdStart in cmd/lambdagent/lambda_test.go.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${RUNS:-20}"
scripts/lambda/install-rie.sh
command -v redis-server >/dev/null || { echo "coldstart.sh: redis-server not on PATH (scripts/install-test-deps installs it)" >&2; exit 1; }

echo "== deployment package"
scripts/lambda/build.sh

echo "== cold starts: $runs runs each, on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'), $(go version | cut -d' ' -f3-)"
out=$(go test -count=1 -timeout 10m -run '^TestLambdaColdStart$' -v ./cmd/lambdagent -coldstarts "$runs" 2>&1) || {
  echo "$out"
  exit 1
}
echo "$out" | sed -n 's/.*coldstart: //p'
