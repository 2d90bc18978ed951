#!/usr/bin/env bash
# Runs every check and test of rustypipe: formatting, vet (Linux and
# Windows), the Windows build, and the whole Go test suite, after starting
# the real services that backend tests use (scripts/services/*.sh: a Docker
# engine, OpenSSH's sshd). A service that cannot be started is skipped by its
# tests, unless RUSTYPIPE_TEST_<SERVICE>=1 makes it required (CI sets all).
# Usage: scripts/test.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v go >/dev/null || { echo "test.sh: Go 1.26 or newer is required" >&2; exit 1; }

echo "== services"
for svc in scripts/services/*.sh; do
  name=$(basename "$svc" .sh)
  case $name in dockerd) need=${RUSTYPIPE_TEST_DOCKER:-} ;; sshd) need=${RUSTYPIPE_TEST_SSH:-} ;; *) need=1 ;; esac
  if ! "$svc"; then
    if [ "$need" = 1 ]; then echo "test.sh: $svc failed and its tests are required" >&2; exit 1; fi
    echo "test.sh: $svc failed; its tests will skip"
  fi
done

echo "== kubernetes (a single-node cluster built by scripts/k8s/up.sh; first time ~10 min)"
export RP_K8S_DIR=${RP_K8S_DIR:-/tmp/rp-k8s}
if [ "$(id -u)" = 0 ] && scripts/k8s/up.sh > "${TMPDIR:-/tmp}/rustypipe-k8s-up.log" 2>&1; then
  export KUBECONFIG=$RP_K8S_DIR/kubeconfig
  trap 'echo "== kubernetes down"; scripts/k8s/down.sh >/dev/null 2>&1 || true' EXIT
  echo "cluster up (KUBECONFIG=$KUBECONFIG)"
else
  if [ "${RUSTYPIPE_TEST_KUBE:-}" = 1 ]; then
    echo "test.sh: the Kubernetes cluster did not come up and its tests are required; last lines of the log:" >&2
    tail -n 30 "${TMPDIR:-/tmp}/rustypipe-k8s-up.log" >&2 || true
    exit 1
  fi
  echo "test.sh: no Kubernetes cluster (needs root); its tests will skip"
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

echo "== go vet (linux, windows)"
go vet ./...
GOOS=windows go vet ./...

echo "== go build (windows)"
GOOS=windows go build -o /dev/null ./...

echo "== go test"
go test -count=1 "$@" ./...

echo "== go test -race (scheduler, build, backends)"
go test -count=1 -race ./dag/... ./build/... ./exec/...
