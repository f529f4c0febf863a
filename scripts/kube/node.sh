# Level 2 of scripts/kube-up.sh (sourced by it when DEVSPACE_KUBE_NODE=1): kube-scheduler and
# one kubelet on a containerd of its own (Debian's `containerd`, separate from Docker's, its
# socket in the state directory), pods networked by the CNI bridge plugin of Debian's
# `containernetworking-plugins`, a pause image made from the local busybox, and containerd
# pulling from the plain registry on 127.0.0.1:5000 over HTTP. The kubelet listens on NODE_IP.
# shellcheck shell=bash

CTRD="$STATE/containerd"
CTRD_SOCK="$CTRD/containerd.sock"
PAUSE_IMAGE=devspace.local/pause:1
CNI_BIN=/usr/lib/cni
CNI_SUBNET=10.88.0.0/16
# The node's address. The kubelet refuses a loopback node IP (and without one the API server
# cannot reach it for logs and exec), so a host-only /32 goes on `lo`: reachable from this
# machine and from its pods (through the bridge), not routed from anywhere else.
NODE_IP=10.255.255.1

node_address() {
    local addresses
    addresses="$(ip -o addr show dev lo)"
    [[ "$addresses" == *" $NODE_IP/"* ]] || ip addr add "$NODE_IP/32" dev lo
}

start_containerd() {
    mkdir -p "$STATE/cni/net.d"
    local registry
    for registry in 127.0.0.1:5000 "$NODE_IP:5000"; do
        mkdir -p "$CTRD/certs.d/$registry"
        cat >"$CTRD/certs.d/$registry/hosts.toml" <<EOF
server = "http://$registry"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
EOF
    done
    cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"

[grpc]
  address = "$CTRD_SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Inside a container (as on the test machines) lowering oom_score_adj below containerd's own
  # is refused ("failed to update /proc/self/oom_score_adj: Permission denied" from runc).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CTRD/certs.d"
EOF
    cat >"$STATE/cni/net.d/10-devspace.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "devspace",
  "plugins": [
    {"type": "bridge", "bridge": "devspace0", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$CNI_SUBNET"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    start containerd containerd --config "$CTRD/config.toml"
    wait_for containerd ctr --address "$CTRD_SOCK" version
}

# The sandbox ("pause") image: the local busybox sleeping, imported into the k8s.io namespace.
pause_image() {
    local images
    images="$(ctr --address "$CTRD_SOCK" -n k8s.io images ls -q)"
    if grep -qxF "$PAUSE_IMAGE" <<<"$images"; then
        return
    fi
    log "image $PAUSE_IMAGE: making it from busybox:latest"
    local id
    id="$(docker create --entrypoint /bin/sleep busybox:latest 2147483647)"
    docker commit -c 'ENTRYPOINT ["/bin/sleep", "2147483647"]' -c 'CMD []' "$id" "$PAUSE_IMAGE" >/dev/null
    docker rm "$id" >/dev/null
    docker save "$PAUSE_IMAGE" | ctr --address "$CTRD_SOCK" -n k8s.io images import - >/dev/null
}

start_scheduler() {
    start kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig "$STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false
}

start_kubelet() {
    mkdir -p "$STATE/kubelet"
    cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: "unix://$CTRD_SOCK"
failSwapOn: false
failCgroupV1: false
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# Images imported into containerd after the kubelet started (the kaniko executor, busybox, a
# test's) count as "pulled by someone else": with the default policy the kubelet would pull them
# again (from Docker Hub, unreachable) even with pull policy IfNotPresent.
imagePullCredentialsVerificationPolicy: NeverVerify
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
EOF
    start kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" \
        --kubeconfig "$STATE/kubelet.kubeconfig" --hostname-override "$NODE_NAME" \
        --node-ip "$NODE_IP" --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet/pki"
    wait_for "the kubelet's node to be Ready" node_ready
}

# node_ready: this kubelet answers and its node reports Ready.
node_ready() {
    curl -sf --max-time 2 "http://127.0.0.1:10248/healthz" >/dev/null || return 1
    local node
    node="$(api "api/v1/nodes/$NODE_NAME" | tr -d ' \n')" || return 1
    [[ "$node" == *'"type":"Ready","status":"True"'* ]]
}

# The plain registry of scripts/services.sh (its storage) served on NODE_IP:5000 as well: a pod
# cannot reach the host's 127.0.0.1, so kaniko pushes to NODE_IP:5000.
start_node_registry() {
    local config=/var/lib/devspace-test-registry/plain/config.yml
    [[ -s "$config" ]] || die "$config missing: run scripts/services.sh first"
    sed "s|addr: 127.0.0.1:5000|addr: $NODE_IP:5000|" "$config" >"$STATE/registry.yml"
    start registry docker-registry serve "$STATE/registry.yml"
    wait_for "the registry on $NODE_IP:5000" curl -sf --max-time 2 "http://$NODE_IP:5000/v2/"
}

# Images the kaniko builds use, imported into containerd's k8s.io namespace (pull policy
# IfNotPresent uses them): busybox (the init container) and the kaniko executor, built from its
# Go module (scripts/kube/kaniko) into $EXECUTOR_IMAGE.
KANIKO_MODULE="$MODULE/kaniko"
EXECUTOR_VERSION="$(awk '$1 == "github.com/GoogleContainerTools/kaniko" && $2 ~ /^v/ {print $2; exit}' \
    "$KANIKO_MODULE/go.mod")"
EXECUTOR_IMAGE="devspace.local/kaniko-executor:$EXECUTOR_VERSION"

kaniko_images() {
    local images
    images="$(ctr --address "$CTRD_SOCK" -n k8s.io images ls -q)"
    if ! grep -qxF docker.io/library/busybox:latest <<<"$images"; then
        docker save busybox:latest | ctr --address "$CTRD_SOCK" -n k8s.io images import - >/dev/null
    fi
    grep -qxF "$EXECUTOR_IMAGE" <<<"$images" && return
    local cache="${CACHE%/*}/kaniko-$EXECUTOR_VERSION"
    if [[ ! -x "$cache/executor" ]]; then
        log "building the kaniko executor $EXECUTOR_VERSION (log: $cache/build.log)"
        mkdir -p "$cache"
        local go started=$SECONDS
        go="$(find_go)"
        if ! (cd "$KANIKO_MODULE" && CGO_ENABLED=0 "$go" build -trimpath -ldflags='-s -w' \
            -o "$cache/executor.tmp" github.com/GoogleContainerTools/kaniko/cmd/executor) \
            >"$cache/build.log" 2>&1; then
            tail -n 30 "$cache/build.log" >&2
            die "building the kaniko executor failed (log: $cache/build.log)"
        fi
        mv "$cache/executor.tmp" "$cache/executor"
        log "kaniko executor built in $((SECONDS - started))s"
    fi
    log "image $EXECUTOR_IMAGE: making it (as the upstream image: /kaniko/executor, CA bundle)"
    local root
    root="$(mktemp -d)"
    mkdir -p "$root/kaniko/.docker" "$root/kaniko/ssl/certs" "$root/workspace" "$root/etc" "$root/root"
    cp "$cache/executor" "$root/kaniko/executor"
    cp /etc/ssl/certs/ca-certificates.crt "$root/kaniko/ssl/certs/ca-certificates.crt"
    echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
    tar -C "$root" -c . | docker import \
        -c 'ENV HOME=/root USER=root PATH=/usr/local/bin:/kaniko SSL_CERT_DIR=/kaniko/ssl/certs DOCKER_CONFIG=/kaniko/.docker/' \
        -c 'WORKDIR /workspace' -c 'ENTRYPOINT ["/kaniko/executor"]' - "$EXECUTOR_IMAGE" >/dev/null
    rm -rf "$root"
    docker save "$EXECUTOR_IMAGE" | ctr --address "$CTRD_SOCK" -n k8s.io images import - >/dev/null
}

start_node() {
    install_missing containerd containernetworking-plugins runc iptables
    node_address
    start_containerd
    pause_image
    start_scheduler
    start_kubelet
    start_node_registry
    kaniko_images
}
