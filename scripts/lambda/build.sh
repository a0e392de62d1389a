#!/usr/bin/env bash
# Builds the Lambda deployment package that deploy/template.yaml deploys:
# ./cmd/lambdagent cross-compiled for linux/arm64 (provided.al2023) as
# dist/lambda/bootstrap, zipped into dist/lambda.zip. Prints the sizes.
#
#   scripts/lambda/build.sh            # GOARCH=amd64 scripts/lambda/build.sh for x86_64
#   scripts/lambda/build.sh ./examples/lambda   # your own main package instead
set -euo pipefail
pkg="${1:-./cmd/lambdagent}"
cd "$(dirname "$0")/../.."
arch="${GOARCH:-arm64}"
out=dist/lambda
rm -rf "$out" dist/lambda.zip
mkdir -p "$out"
# grpcnotrace: the OTLP trace exporter links gRPC, for its option types
# only. Without the tag gRPC imports golang.org/x/net/trace, whose use of
# html/template (reflect.Value.MethodByName) stops the linker from
# dropping unused methods: the arm64 bootstrap was 43 MB instead of 22 MB
# (zip 12.3 MB instead of 7.2 MB) and its init used ~6 ms more CPU.
# lambda: leaves out the modes that only run on a developer's machine (dev,
# sim, load, chat, cost), so the bootstrap does not link the simulator, the
# load generator or the chat UI (cmd/lambdagent/modes_lambda.go;
# internal/archtest checks it). lambda.norpc: no RPC mode (the go1.x runtime).
# cmd/lambdagent/lambda_test.go builds with the same tags.
GOOS=linux GOARCH="$arch" CGO_ENABLED=0 \
  go build -tags lambda,lambda.norpc,grpcnotrace -trimpath -ldflags="-s -w" -o "$out/bootstrap" "$pkg"
chmod 755 "$out/bootstrap"
if command -v zip >/dev/null 2>&1; then
  (cd "$out" && zip -q -X ../lambda.zip bootstrap)
else
  # No zip(1): the same archive with Go's archive/zip, which keeps the
  # executable bit Lambda needs.
  go run ./scripts/lambda/zipbootstrap "$out/bootstrap" dist/lambda.zip
fi
size() { wc -c <"$1" | tr -d ' '; }
echo "dist/lambda/bootstrap $(size "$out/bootstrap") bytes (linux/$arch)"
echo "dist/lambda.zip $(size dist/lambda.zip) bytes"
