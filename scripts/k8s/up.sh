#!/bin/bash
# up.sh - bring up a REAL single-node Kubernetes (etcd + kube-apiserver + kube-controller-manager
# + kube-scheduler + kubelet + containerd/runc + bridge CNI) from scratch, without any container
# registry and without downloading prebuilt binaries. Everything is either a Debian 12 apt package
# or compiled from Go modules fetched through the Go module proxy.
#
# Idempotent: re-running skips whatever is already built / generated / running.
# The wrapper modules it builds from are in modules/ (pinned go.mod + go.sum for the default versions).
#   sudo scripts/k8s/up.sh                     # as root
#   export KUBECONFIG=$RP_K8S_DIR/state/admin.kubeconfig   (also symlinked at $RP_K8S_DIR/kubeconfig)
#   $RP_K8S_DIR/bin/podproof                   # proves a pod runs; exit code + logs read via the API
#   ./down.sh [--purge]
# Knobs (env): RP_K8S_DIR (/tmp/rp-k8s), K8S_VERSION (1.34.4), ETCD (source|debian; source),
#   ETCD_VERSION (v3.6.8), CONTAINERD (source|debian; source), CONTAINERD_VERSION (v1.7.30),
#   CRICTL_VERSION (v1.34.0; empty = skip), NODE_NAME (rp-node), NODE_IP (auto),
#   GOMODCACHE/GOCACHE (the user's, as `go env` says, so later builds are warm), RP_K8S_SKIP_APT=1,
#   ports below.
# Why containerd from source by default: Debian 12's containerd 1.6.20 closes the container's
# stdout/stderr FIFOs before draining them when a task exits (client task.Delete: io.Close()
# before io.Wait(); fixed in later 1.6.x/1.7.x), so the last ~64-100 KB a pod prints right
# before exiting can be missing from its logs. Verified here: `seq 1 20000` -> ~13000 lines.
set -euo pipefail

RP=${RP_K8S_DIR:-/tmp/rp-k8s}
K8S_VERSION=${K8S_VERSION:-1.34.4}   # k8s.io/kubernetes v$K8S_VERSION + staging modules v0.${K8S_VERSION#1.}
ETCD=${ETCD:-source}                  # source: go.etcd.io/etcd/server/v3@$ETCD_VERSION ; debian: etcd-server 3.4.23
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
CONTAINERD=${CONTAINERD:-source}      # source: github.com/containerd/containerd@$CONTAINERD_VERSION ; debian: 1.6.20
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v1.7.30}
CRICTL_VERSION=${CRICTL_VERSION-v1.34.0}
NODE_NAME=${NODE_NAME:-rp-node}
ETCD_PORT=${ETCD_PORT:-12379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-12380}
API_PORT=${API_PORT:-16443}
KUBELET_PORT=${KUBELET_PORT:-20250}
KUBELET_HEALTHZ_PORT=${KUBELET_HEALTHZ_PORT:-20248}
SCHED_PORT=${SCHED_PORT:-20259}
KCM_PORT=${KCM_PORT:-20257}
POD_CIDR=${POD_CIDR:-10.244.0.0/24}
SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/16}
PAUSE_IMAGE=rp-k8s.local/pause:rp1
BUSYBOX_IMAGE=rp-busybox:test        # -> docker.io/library/rp-busybox:test in containerd

BIN=$RP/bin
ST=$RP/state
PKI=$ST/pki
LOGS=$ST/logs
PIDS=$ST/pids
RUN=/run/rp-k8s
CTRD_SOCK=$RUN/containerd/containerd.sock
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin
# The user's own Go caches, so that a second run (and any later build of the same modules) is warm.
GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE 2>/dev/null || true)}
GOCACHE=${GOCACHE:-$(go env GOCACHE 2>/dev/null || true)}
export GOMODCACHE=${GOMODCACHE:-$RP/gomod} GOCACHE=${GOCACHE:-$RP/gocache} GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { echo "[$(date +%H:%M:%S) +$((SECONDS))s] $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

if [ -z "${NODE_IP:-}" ]; then
  NODE_IP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1 || true)
  [ -n "$NODE_IP" ] || NODE_IP=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | grep -v '^172\.17\.' | head -1 || true)
fi
[ -n "$NODE_IP" ] || die "cannot determine a non-loopback NODE_IP (kubelet rejects loopback); set NODE_IP"
mkdir -p "$BIN" "$PKI" "$LOGS" "$PIDS" "$RUN/containerd" "$ST/cni/net.d" "$ST/cni/ipam" "$ST/images"
log "RP=$RP node=$NODE_NAME ip=$NODE_IP k8s=v$K8S_VERSION etcd=$ETCD containerd=$CONTAINERD"

# =============================================================== 0. apt packages
if [ "${RP_K8S_SKIP_APT:-0}" != 1 ]; then
  need=()
  pkgs=(runc containernetworking-plugins iptables iproute2 openssl busybox-static curl)
  [ "$CONTAINERD" = debian ] && pkgs+=(containerd)
  [ "$ETCD" = debian ] && pkgs+=(etcd-server)
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >"$LOGS/apt.log" 2>&1 ||
      { apt-get update >>"$LOGS/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >>"$LOGS/apt.log" 2>&1; } ||
      die "apt-get failed, see $LOGS/apt.log"
  fi
fi
command -v go >/dev/null || die "go toolchain (>= 1.24) not found"

# =============================================================== 1. build binaries from Go modules
# The wrapper modules live in modules/ beside this script: the main.go files, and go.mod + go.sum
# pinned for the default versions. They are copied into $RP/build*; for other versions go.mod is
# generated and go.sum made by `go mod tidy`.
MODULES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/modules
sync_file() { cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"; }   # unchanged files keep their mtime
pinned() { grep -qE "^[[:space:]]*(require )?$2 $3( |\$)" "$MODULES/$1/go.mod"; }   # dir module version
K8S_PINNED=0 ETCD_PINNED=0 CONTAINERD_PINNED=0
tidy() { # dir pinned: a pinned module is already tidy, and go build verifies it against go.sum
  [ "$2" = 1 ] || (cd "$1" && go mod tidy)
}
write_sources() {
  local b=$RP/build kv=v$K8S_VERSION sv=v0.${K8S_VERSION#1.}
  mkdir -p "$b/cmd/rp-pause" "$b/cmd/podproof" "$RP/build-etcd" "$RP/build-containerd"
  sync_file "$MODULES/k8s/cmd/rp-pause/main.go" "$b/cmd/rp-pause/main.go"
  sync_file "$MODULES/k8s/cmd/podproof/main.go" "$b/cmd/podproof/main.go"
  sync_file "$MODULES/etcd/main.go" "$RP/build-etcd/main.go"
  # containerd's own go.mod has an exclude directive, so `go install ...@version` refuses it: wrap it
  if pinned containerd github.com/containerd/containerd "$CONTAINERD_VERSION"; then
    CONTAINERD_PINNED=1
    sync_file "$MODULES/containerd/go.mod" "$RP/build-containerd/go.mod"
    sync_file "$MODULES/containerd/go.sum" "$RP/build-containerd/go.sum"
  elif ! grep -q "containerd/containerd $CONTAINERD_VERSION\$" "$RP/build-containerd/go.mod" 2>/dev/null; then
    printf 'module rpcontainerd\n\ngo 1.24.0\n\nrequire github.com/containerd/containerd %s\n\ntool (\n\tgithub.com/containerd/containerd/cmd/containerd\n\tgithub.com/containerd/containerd/cmd/containerd-shim-runc-v2\n\tgithub.com/containerd/containerd/cmd/ctr\n)\n' "$CONTAINERD_VERSION" >"$RP/build-containerd/go.mod"
    rm -f "$RP/build-containerd/go.sum"
  fi
  if pinned k8s k8s.io/kubernetes "$kv"; then
    K8S_PINNED=1
    sync_file "$MODULES/k8s/go.mod" "$b/go.mod"
    sync_file "$MODULES/k8s/go.sum" "$b/go.sum"
    echo "$kv" >"$b/.k8s-version"
  elif [ ! -f "$b/go.mod" ] || [ "$(cat "$b/.k8s-version" 2>/dev/null)" != "$kv" ] || pinned k8s k8s.io/kubernetes "$(cat "$b/.k8s-version")"; then
    log "writing wrapper module for k8s.io/kubernetes $kv (staging modules -> $sv)"
    rm -f "$b/go.sum"
    # k8s.io/kubernetes' go.mod maps its staging modules to ./staging/...; that only works inside
    # the kubernetes repo, so map every one of them to the published v0.X.Y module instead.
    local modfile
    modfile=$(cd / && go mod download -json "k8s.io/kubernetes@$kv" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@$kv"
    {
      printf 'module rpk8s\n\ngo 1.24.0\n\ngodebug default=go1.24\n\nrequire k8s.io/kubernetes %s\n\ntool (\n' "$kv"
      for c in kube-apiserver kubelet kube-scheduler kube-controller-manager kubectl; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$c"; done
      printf ')\n\nreplace (\n'
      grep -E '=> \./staging/' "$modfile" | awk -v v="$sv" '{print "\t"$1" => "$1" "v}'
      printf ')\n'
    } >"$b/go.mod"
    echo "$kv" >"$b/.k8s-version"
  fi
  if pinned etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"; then
    ETCD_PINNED=1
    sync_file "$MODULES/etcd/go.mod" "$RP/build-etcd/go.mod"
    sync_file "$MODULES/etcd/go.sum" "$RP/build-etcd/go.sum"
  elif ! grep -q "server/v3 $ETCD_VERSION\$" "$RP/build-etcd/go.mod" 2>/dev/null; then
    printf 'module rpetcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$RP/build-etcd/go.mod"
    rm -f "$RP/build-etcd/go.sum"
  fi
}

build_k8s() {
  local b=$RP/build kv=v$K8S_VERSION minor ld="-s -w" p
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$kv -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  [ "$K8S_PINNED" = 1 ] || log "go mod tidy (first time: fills a ~1.7 GB module cache from the Go proxy)"
  tidy "$b" "$K8S_PINNED" >"$LOGS/go-mod-tidy.log" 2>&1 || { tail -20 "$LOGS/go-mod-tidy.log"; die "go mod tidy failed"; }
  log "go build kube-apiserver kubelet kube-scheduler kube-controller-manager kubectl rp-pause podproof (slow part)"
  (cd "$b" && nice -n 19 go build -trimpath -ldflags "$ld" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl ./cmd/rp-pause ./cmd/podproof) >"$LOGS/go-build.log" 2>&1 ||
    { tail -50 "$LOGS/go-build.log"; die "go build failed"; }
}

t_build=$SECONDS
write_sources
if ! "$BIN/kubelet" --version 2>/dev/null | grep -q "v$K8S_VERSION\$" ||
   ! (for x in kube-apiserver kube-scheduler kube-controller-manager kubectl rp-pause podproof; do [ -x "$BIN/$x" ] || exit 1; done); then
  t0=$SECONDS; build_k8s; log "kubernetes binaries built in $((SECONDS - t0))s"
fi
if [ "$ETCD" = source ]; then
  ETCD_BIN=$BIN/etcd
  if ! "$ETCD_BIN" --version 2>/dev/null | grep -q "etcd Version: ${ETCD_VERSION#v}\$"; then
    t0=$SECONDS; log "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3"
    (tidy "$RP/build-etcd" "$ETCD_PINNED" && cd "$RP/build-etcd" && nice -n 19 go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN" .) >"$LOGS/go-build-etcd.log" 2>&1 ||
      { tail -30 "$LOGS/go-build-etcd.log"; die "etcd build failed"; }
    log "etcd built in $((SECONDS - t0))s"
  fi
else
  ETCD_BIN=/usr/bin/etcd
fi
if [ "$CONTAINERD" = source ]; then
  CTRD_DIR=$BIN/containerd
  if ! "$CTRD_DIR/containerd" --version 2>/dev/null | grep -q " $CONTAINERD_VERSION\b" || [ ! -x "$CTRD_DIR/containerd-shim-runc-v2" ]; then
    t0=$SECONDS; log "building containerd $CONTAINERD_VERSION (containerd, containerd-shim-runc-v2, ctr)"
    mkdir -p "$CTRD_DIR"
    (tidy "$RP/build-containerd" "$CONTAINERD_PINNED" && cd "$RP/build-containerd" && nice -n 19 go build -trimpath \
      -ldflags "-s -w -X github.com/containerd/containerd/version.Version=$CONTAINERD_VERSION" -o "$CTRD_DIR/" \
      github.com/containerd/containerd/cmd/containerd github.com/containerd/containerd/cmd/containerd-shim-runc-v2 \
      github.com/containerd/containerd/cmd/ctr) >"$LOGS/go-build-containerd.log" 2>&1 ||
      { tail -30 "$LOGS/go-build-containerd.log"; die "containerd build failed"; }
    log "containerd built in $((SECONDS - t0))s"
  fi
else
  CTRD_DIR=/usr/bin
fi
if [ -n "$CRICTL_VERSION" ] && ! "$BIN/crictl" --version 2>/dev/null | grep -q "${CRICTL_VERSION#v}\$"; then
  t0=$SECONDS; log "building crictl $CRICTL_VERSION (sigs.k8s.io/cri-tools)"
  (cd / && GOBIN=$BIN nice -n 19 go install -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION") >"$LOGS/go-build-crictl.log" 2>&1 ||
    { tail -30 "$LOGS/go-build-crictl.log"; die "crictl build failed"; }
  log "crictl built in $((SECONDS - t0))s"
fi
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$CTRD_SOCK" "$CTRD_SOCK" >"$BIN/crictl.yaml"
[ $((SECONDS - t_build)) -gt 5 ] && log "build phase: $((SECONDS - t_build))s"
KUBECTL="$BIN/kubectl"

# =============================================================== 2. PKI (self-signed CA, ECDSA P-256, openssl)
mkcert() { # name CN [O] [server SANs]
  local n=$1 cn=$2 o=${3:-} san=${4:-} subj ext
  [ -f "$PKI/$n.crt" ] && return 0
  subj="/CN=$cn"; [ -n "$o" ] && subj="$subj/O=$o"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PKI/$n.key" \
    -subj "$subj" -out "$PKI/$n.csr" 2>/dev/null
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth${san:+,serverAuth}"
  [ -n "$san" ] && ext="$ext
subjectAltName=$san"
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile <(echo "$ext") -out "$PKI/$n.crt.tmp" 2>/dev/null
  mv "$PKI/$n.crt.tmp" "$PKI/$n.crt"; rm -f "$PKI/$n.csr"
}
if [ ! -f "$PKI/ca.crt" ]; then
  log "generating PKI in $PKI"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt.tmp" -subj "/CN=rp-k8s-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  mv "$PKI/ca.crt.tmp" "$PKI/ca.crt"
fi
SVC_IP=$(echo "${SERVICE_CIDR%/*}" | awk -F. '{print $1"."$2"."$3"."$4+1}')
mkcert apiserver kube-apiserver "" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:$SVC_IP"
mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
mkcert front-proxy-client front-proxy-client
mkcert kubelet "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
mkcert admin rp-admin system:masters
mkcert kube-controller-manager system:kube-controller-manager system:masters
mkcert kube-scheduler system:kube-scheduler
if [ ! -f "$PKI/sa.pub" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key"
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
kubeconfig() { # file user(cert name)
  cat >"$ST/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rp-k8s
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$PKI/$2.crt", client-key: "$PKI/$2.key"}
contexts:
- name: rp-k8s
  context: {cluster: rp-k8s, user: $2, namespace: default}
current-context: rp-k8s
EOF
}
kubeconfig admin admin
kubeconfig kubelet kubelet
kubeconfig controller-manager kube-controller-manager
kubeconfig scheduler kube-scheduler
ln -sfn "$ST/admin.kubeconfig" "$RP/kubeconfig"

# =============================================================== process helpers
running() { # name match: our pidfile points at a live process whose cmdline contains match
  local f="$PIDS/$1.pid" p
  [ -f "$f" ] || return 1
  p=$(cat "$f"); [ -n "$p" ] && [ -d "/proc/$p" ] || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -- "$2"
}
start() { # name match cmd...
  local n=$1 m=$2; shift 2
  if running "$n" "$m"; then log "$n already running (pid $(cat "$PIDS/$n.pid"))"; return 0; fi
  log "starting $n"
  # own session (survives the caller); the sh records its pid, then execs the daemon (same pid)
  setsid -f sh -c 'echo $$ >"$0"; l=$1; shift; exec "$@" >>"$l" 2>&1 </dev/null' "$PIDS/$n.pid" "$LOGS/$n.log" "$@"
  sleep 0.2
}
wait_for() { # description timeout_s cmd...
  local d=$1 t=$2 i; shift 2
  for ((i = 0; i < t * 4; i++)); do "$@" >/dev/null 2>&1 && { log "$d: ok"; return 0; }; sleep 0.25; done
  die "$d: not ready after ${t}s (logs in $LOGS/)"
}
ADMIN_CURL=(curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")

# =============================================================== 3. etcd
start etcd "$ST/etcd" "$ETCD_BIN" --name rp --data-dir "$ST/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "rp=http://127.0.0.1:$ETCD_PEER_PORT" --snapshot-count 10000 --quota-backend-bytes 2147483648
wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# =============================================================== 4. kube-apiserver
# PodLogsQuerySplitStreams (alpha in 1.34, also set for the kubelet below): logs of one stream,
# stdout or stderr, from which rustypipe's kube backend recovers output an attach stream lost.
start kube-apiserver "$BIN/kube-apiserver" "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --requestheader-client-ca-file "$PKI/ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction --allow-privileged=true --profiling=false \
  --feature-gates PodLogsQuerySplitStreams=true \
  --cert-dir "$ST/apiserver-certs" --v 1
wait_for kube-apiserver 180 "${ADMIN_CURL[@]}" "https://127.0.0.1:$API_PORT/readyz"

# =============================================================== 5. containerd (own instance: own socket, root, state)
cat >"$ST/containerd.toml" <<EOF
version = 2
root = "$ST/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$ST/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    # CAP_SYS_RESOURCE may be missing from the bounding set (it is on the machine this was made on),
    # then nobody may LOWER oom_score_adj and the CRI sandbox's -998 makes runc fail with
    # "can't get final child's PID from pipe: EOF". Clamp to containerd's own value instead.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$RUN/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$ST/cni/net.d"
EOF
cat >"$ST/cni/net.d/10-rp-k8s.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "rp-k8s",
  "plugins": [
    {"type": "bridge", "bridge": "rp-cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$ST/cni/ipam"}},
    {"type": "firewall"}
  ]
}
EOF
# PATH: containerd looks the shim up in $PATH first; make it find the matching one (runc stays Debian's)
start containerd "$ST/containerd.toml" env PATH="$CTRD_DIR:$PATH" "$CTRD_DIR/containerd" --config "$ST/containerd.toml"
CTR=("$CTRD_DIR/ctr" --address "$CTRD_SOCK" -n k8s.io)
wait_for containerd 60 "${CTR[@]}" version

# =============================================================== 6. local images (no registry anywhere)
mkimage() { # REF ROOTFS_DIR OUT_TAR ENTRYPOINT_JSON CMD_JSON  -> single-layer "docker save" archive
  local ref=$1 rootfs=$2 out=$3 ep=$4 cmd=$5 tmp diffid cfg
  tmp=$(mktemp -d)
  tar --numeric-owner --owner=0 --group=0 --mtime='2000-01-01 00:00Z' --sort=name -C "$rootfs" -cf "$tmp/layer.tar" .
  diffid=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","created":"2000-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}\n' \
    "$ep" "$cmd" "$diffid" >"$tmp/config.json"
  cfg=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
  mv "$tmp/config.json" "$tmp/$cfg.json"; mkdir "$tmp/$diffid"; mv "$tmp/layer.tar" "$tmp/$diffid/layer.tar"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg" "$ref" "$diffid" >"$tmp/manifest.json"
  tar -C "$tmp" -cf "$out" manifest.json "$cfg.json" "$diffid"
  rm -rf "$tmp"
}
have_images=$("${CTR[@]}" images ls -q)   # (not piped into grep -q: SIGPIPE + pipefail)
if ! grep -qx "$PAUSE_IMAGE" <<<"$have_images"; then
  r="$ST/images/pause"; rm -rf "$r" && mkdir -p "$r"
  cp "$BIN/rp-pause" "$r/pause"
  mkimage "$PAUSE_IMAGE" "$r" "$ST/images/pause.tar" '["/pause"]' null
  "${CTR[@]}" images import "$ST/images/pause.tar" >/dev/null
  log "imported $PAUSE_IMAGE"
fi
if ! grep -qx "docker.io/library/$BUSYBOX_IMAGE" <<<"$have_images"; then
  r="$ST/images/busybox"; rm -rf "$r" && mkdir -p "$r/bin" "$r/tmp" "$r/etc" "$r/proc" "$r/sys" "$r/dev" "$r/root"
  cp /bin/busybox "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"; echo 'root:x:0:' >"$r/etc/group"
  mkimage "$BUSYBOX_IMAGE" "$r" "$ST/images/busybox.tar" null '["sh"]'
  "${CTR[@]}" images import "$ST/images/busybox.tar" >/dev/null
  log "imported docker.io/library/$BUSYBOX_IMAGE"
fi
# more local images: docker save IMG | $CTRD_DIR/ctr --address $CTRD_SOCK -n k8s.io images import -

# =============================================================== 7. kubelet
# kubelet (re)writes these sysctls on start (vm.overcommit_memory=1, kernel.panic=10,
# kernel.panic_on_oops=1, ...). Save the originals once so down.sh can restore them.
[ -f "$ST/sysctl.orig" ] || for s in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
  echo "$s=$(sysctl -n $s)"; done >"$ST/sysctl.orig"
cat >"$ST/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$NODE_IP"
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$PKI/kubelet.crt"
tlsPrivateKeyFile: "$PKI/kubelet.key"
containerRuntimeEndpoint: "unix://$CTRD_SOCK"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
podLogsDir: "$ST/pod-logs"
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 50
featureGates: {PodLogsQuerySplitStreams: true}
EOF
start kubelet "$BIN/kubelet" "$BIN/kubelet" --config "$ST/kubelet.yaml" --kubeconfig "$ST/kubelet.kubeconfig" \
  --root-dir "$ST/kubelet" --cert-dir "$ST/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 1

# =============================================================== 8. scheduler + controller-manager
start kube-scheduler "$BIN/kube-scheduler" "$BIN/kube-scheduler" --kubeconfig "$ST/scheduler.kubeconfig" \
  --authentication-kubeconfig "$ST/scheduler.kubeconfig" --authorization-kubeconfig "$ST/scheduler.kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --v 1
start kube-controller-manager "$BIN/kube-controller-manager" "$BIN/kube-controller-manager" \
  --kubeconfig "$ST/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$ST/controller-manager.kubeconfig" --authorization-kubeconfig "$ST/controller-manager.kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=false --cluster-name rp-k8s --v 1

export KUBECONFIG="$ST/admin.kubeconfig"
wait_for "kubelet healthz" 120 curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
wait_for "node $NODE_NAME Ready" 180 sh -c "'$KUBECTL' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
wait_for "serviceaccount default/default" 120 "$KUBECTL" -n default get serviceaccount default
log "cluster up: export KUBECONFIG=$ST/admin.kubeconfig; $KUBECTL get nodes; $BIN/podproof"
