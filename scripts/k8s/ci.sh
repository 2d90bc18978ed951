#!/bin/bash
# ci.sh - the Kubernetes backend's CI job: bring the test cluster up (up.sh, idempotent: the first
# run on a machine builds it from source, ~8-16 min; later runs reuse the binaries and the Go
# caches), run the tests of remote/kube and cmd/rustypipe-kube against it with
# RUSTYPIPE_TEST_KUBE=1 (a cluster that is not there fails them instead of skipping), and take the
# cluster down again (down.sh) whatever the tests did. Extra arguments go to `go test`.
#   scripts/k8s/ci.sh [-race] [-run TestX]      # as root, like up.sh
# Env: RP_K8S_DIR (/tmp/rp-k8s) as for up.sh; RP_K8S_KEEP=1 leaves the cluster running.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RP=${RP_K8S_DIR:-/tmp/rp-k8s}
export PATH=/usr/local/go/bin:$PATH

teardown() {
  local rc=$?
  if [ "${RP_K8S_KEEP:-0}" = 1 ]; then
    echo "ci.sh: RP_K8S_KEEP=1: the cluster stays up (down with $here/down.sh)"
  else
    echo "== down.sh"
    "$here/down.sh" || echo "ci.sh: down.sh failed" >&2
  fi
  exit "$rc"
}
trap teardown EXIT

echo "== up.sh"
t0=$SECONDS
"$here/up.sh"
echo "ci.sh: cluster up in $((SECONDS - t0))s"

echo "== go test (kubernetes backend)"
export KUBECONFIG=$RP/kubeconfig RUSTYPIPE_TEST_KUBE=1
t0=$SECONDS
(cd "$root" && go test -count=1 "$@" ./remote/kube/... ./cmd/rustypipe-kube/...)
echo "ci.sh: tests passed in $((SECONDS - t0))s"
