#!/usr/bin/env bash
# Installs the pinned AWS Lambda Runtime Interface Emulator (aws-lambda-rie)
# into $(go env GOPATH)/bin, unless that version is already there. Tests run
# the bootstrap under it (internal/lambdafn/rietest finds it there).
# Idempotent; it builds from the Go module proxy, no other download.
set -euo pipefail
version=v0.0.0-20261030222936-bef5c4ba774d
module=github.com/aws/aws-lambda-runtime-interface-emulator
bindir="$(go env GOPATH)/bin"
bin="$bindir/aws-lambda-rie"
if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "mod[[:space:]]*$module[[:space:]]*$version"; then
  exit 0
fi
echo "installing aws-lambda-rie $version into $bindir"
# Outside any module, so the project's go.mod and GOFLAGS do not apply.
cd "$(mktemp -d)"
GOBIN="$bindir" GOFLAGS= CGO_ENABLED=0 go install "$module/cmd/aws-lambda-rie@$version"
