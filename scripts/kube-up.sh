#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver and
# kube-controller-manager (Level 1), plus the real `kubectl` (checked with `kubectl version` on
# every start), built from their published Go modules by the small Go
# module in scripts/kube/ (its go.mod maps k8s.io/kubernetes' staging modules to their published
# releases). With DEVSPACE_KUBE_NODE=1 it also starts kube-scheduler and a kubelet on Debian's
# containerd (Level 2, see the README for how far that gets on a machine like the CI's).
#
# Built once per machine into a cache outside the repository (DEVSPACE_KUBE_CACHE, default
# ~/.cache/devspace-kube/<kubernetes version>-<go.sum hash>), so every later run, and CI on the
# same machine, reuses the binaries. Measured on the 2-core test machine: the first Level 1
# build on a fresh machine (etcd, kube-apiserver, kube-controller-manager; modules downloaded from
# the proxy included) took 8.2 min wall, 10 min CPU inside .ci/run; kubectl adds ~1 min once.
# All five components with other builds sharing the cores (load ~16): 15 min CPU, 31.6 min wall;
# relinking with new flags 37 s. A start once
# built: 12 s (first, empty etcd), 6 s (restart), 0.4 s while it is up. With DEVSPACE_KUBE_NODE=1
# the kaniko executor adds 3.3 min of CPU once (12 min wall, shared) and the node 3-11 s a start.
#
# Idempotent: components already answering are left alone, missing ones are (re)started.
# Everything listens on 127.0.0.1 only: API server https://127.0.0.1:16443, etcd 12379/12380.
# State (certificates, etcd data, kubeconfigs, logs) lives in DEVSPACE_KUBE_STATE (default
# /var/lib/devspace-kube). Needs root (like scripts/services.sh; it installs openssl and curl
# when missing) and Go >= 1.26 (DEVSPACE_GO, default `go` in PATH or /usr/local/go/bin/go).
#
# The LAST line of the output is the path of the admin kubeconfig (client certificate in
# group system:masters). scripts/kube-down.sh stops everything this script started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/scripts/kube"
STATE="${DEVSPACE_KUBE_STATE:-/var/lib/devspace-kube}"
WAIT_SECS="${DEVSPACE_KUBE_WAIT:-120}"
NODE="${DEVSPACE_KUBE_NODE:-0}"
API_PORT=16443
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
NODE_NAME=devspace-node

log() { printf 'kube-up: %s\n' "$*" >&2; }
die() { printf 'kube-up: error: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root (it starts a kubelet and writes $STATE)"

# install_missing PACKAGE...: installs the Debian packages that are not installed yet.
install_missing() {
    local missing=() p
    for p in "$@"; do
        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return
    log "packages: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- build --------------------------------------------------------------------------------------
find_go() {
    if [[ -n "${DEVSPACE_GO:-}" ]]; then echo "$DEVSPACE_GO"; return; fi
    if command -v go >/dev/null; then command -v go; return; fi
    if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
    die "Go is missing: install Go >= 1.26 or set DEVSPACE_GO"
}

K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$MODULE/go.mod")"
[[ -n "$K8S_VERSION" ]] || die "no k8s.io/kubernetes version in $MODULE/go.mod"
SUM="$(cat "$MODULE/go.mod" "$MODULE/go.sum" | sha256sum | cut -c1-12)"
CACHE="${DEVSPACE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devspace-kube}/$K8S_VERSION-$SUM"
BIN="$CACHE/bin"
# binary name -> Go package (go.etcd.io/etcd/server/v3 builds as `server`, renamed to etcd).
declare -A PACKAGES=(
    [etcd]=go.etcd.io/etcd/server/v3
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
)

# build BINARY...: builds those missing from the cache (Level 1 never waits for the kubelet).
build() {
    local b missing=()
    for b in "$@"; do [[ -x "$BIN/$b" ]] || missing+=("$b"); done
    if ((${#missing[@]} == 0)); then
        log "binaries: $BIN (cached)"
        return
    fi
    local go
    go="$(find_go)"
    log "building ${missing[*]} ($K8S_VERSION) with $("$go" version | cut -d' ' -f3) into $BIN"
    log "(the first build on a machine takes 15 min of CPU, 8-30 min on 2 cores; log: $CACHE/build.log)"
    mkdir -p "$BIN" "$CACHE/tmp"
    local started=$SECONDS ldflags pkg="k8s.io/component-base/version" packages=()
    for b in "${missing[@]}"; do packages+=("${PACKAGES[$b]}"); done
    # The version the API server reports (`kubectl version`), as the upstream release build sets it.
    ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    if ! (cd "$MODULE" && "$go" build -trimpath -ldflags="$ldflags" -o "$CACHE/tmp/" \
        "${packages[@]}") >"$CACHE/build.log" 2>&1; then
        tail -n 30 "$CACHE/build.log" >&2
        die "go build failed (full log: $CACHE/build.log)"
    fi
    if [[ -e "$CACHE/tmp/server" ]]; then mv "$CACHE/tmp/server" "$CACHE/tmp/etcd"; fi
    for b in "${missing[@]}"; do mv "$CACHE/tmp/$b" "$BIN/$b"; done
    log "built in $((SECONDS - started))s"
}

# --- certificates -------------------------------------------------------------------------------
PKI="$STATE/pki"

# key FILE: a P-256 key in PKCS#8 (what every client here reads).
key() {
    [[ -s "$1" ]] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# cert NAME SUBJECT EXTENSIONS: $PKI/NAME.{key,crt} signed by the CA.
cert() {
    local name="$1" subject="$2" ext="$3"
    [[ -s "$PKI/$name.crt" ]] && return
    key "$PKI/$name.key"
    openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" >"$PKI/$name.ext"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
        -CAcreateserial -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

certificates() {
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    if [[ ! -s "$PKI/ca.crt" ]]; then
        key "$PKI/ca.key"
        openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=devspace-test-ca" -days 3650 \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI/ca.crt" 2>/dev/null
    fi
    local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert admin "/O=system:masters/CN=devspace-admin" "$client"
    cert controller-manager "/CN=system:kube-controller-manager" "$client"
    cert scheduler "/CN=system:kube-scheduler" "$client"
    cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    # The key service-account tokens are signed with.
    key "$PKI/sa.key"
    [[ -s "$PKI/sa.pub" ]] || openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig NAME: $STATE/NAME.kubeconfig for the client certificate $PKI/NAME.crt.
kubeconfig() {
    local name="$1" file="$STATE/$1.kubeconfig"
    [[ -s "$file" ]] && return
    cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: devspace-test
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
  - name: $name
    user:
      client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
      client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
  - name: devspace-test
    context:
      cluster: devspace-test
      user: $name
      namespace: default
current-context: devspace-test
EOF
    chmod 600 "$file.tmp"
    mv "$file.tmp" "$file"
}

# --- processes ----------------------------------------------------------------------------------
# running NAME: the process started for NAME is alive.
running() {
    local pid
    pid="$(cat "$STATE/run/$1.pid" 2>/dev/null)" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# start NAME COMMAND...: starts COMMAND detached (it outlives this script), logging to
# $STATE/log/NAME.log, unless the one started before is still alive.
start() {
    local name="$1"
    shift
    if running "$name"; then
        return
    fi
    log "$name: starting (log: $STATE/log/$name.log)"
    setsid nohup "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/run/$name.pid"
}

# wait_for WHAT COMMAND...: polls COMMAND until it succeeds, at most WAIT_SECS seconds.
wait_for() {
    local what="$1" i
    shift
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what not ready within ${WAIT_SECS}s (logs: $STATE/log/)"
}

# api PATH: GET https://127.0.0.1:API_PORT/PATH as the admin.
api() {
    curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://127.0.0.1:$API_PORT/$1"
}

start_etcd() {
    mkdir -p "$STATE/etcd"
    chmod 700 "$STATE/etcd"
    # --unsafe-no-fsync: test data, thrown away with the state directory; saves seconds per test.
    start etcd "$BIN/etcd" --name devspace --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "devspace=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_for etcd curl -sf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
    start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$PKI/sa.pub" \
        --service-account-signing-key-file "$PKI/sa.key" \
        --service-cluster-ip-range 10.0.0.0/24 \
        --authorization-mode Node,RBAC \
        --allow-privileged=true \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP,Hostname \
        --endpoint-reconciler-type none
    wait_for kube-apiserver api readyz
}

start_controller_manager() {
    # The serviceaccount controller gives every namespace its `default` ServiceAccount; the
    # namespace, deployment and replicaset controllers do the rest a test touches.
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
        --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
        --use-service-account-credentials=true --controllers '*'
    wait_for "kube-controller-manager (the default ServiceAccount)" \
        api api/v1/namespaces/default/serviceaccounts/default
}

main() {
    install_missing openssl curl ca-certificates
    mkdir -p "$STATE/run" "$STATE/log"
    chmod 700 "$STATE"
    if [[ "$NODE" == 1 ]]; then
        build etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet
    else
        build etcd kube-apiserver kube-controller-manager kubectl
    fi
    certificates
    local k
    for k in admin controller-manager scheduler kubelet; do kubeconfig "$k"; done
    local started=$SECONDS
    start_etcd
    start_apiserver
    start_controller_manager
    if [[ "$NODE" == 1 ]]; then
        # shellcheck source=scripts/kube/node.sh
        source "$MODULE/node.sh"
        start_node
    fi
    log "ready in $((SECONDS - started))s: Kubernetes $K8S_VERSION at https://127.0.0.1:$API_PORT"
    # The real kubectl, as a user would check it (and a second client next to ours in the tests).
    "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" version >&2 ||
        die "kubectl version failed against the API server"
    log "kubectl: $BIN/kubectl"
    echo "$STATE/admin.kubeconfig"
}

main "$@"
