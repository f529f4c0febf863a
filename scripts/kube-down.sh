#!/usr/bin/env bash
# Stops what scripts/kube-up.sh started (by the process ids it recorded), newest first; after the
# kubelet, the pods' containers it left in its containerd are killed and removed. Keeps the
# state directory (certificates, etcd data) so the next kube-up.sh starts fast; `--purge` removes
# it too. The built binaries stay in their cache.
set -euo pipefail

STATE="${DEVSPACE_KUBE_STATE:-/var/lib/devspace-kube}"
log() { printf 'kube-down: %s\n' "$*" >&2; }

stop() {
    local name="$1" pidfile="$STATE/run/$1.pid" pid i
    pid="$(cat "$pidfile" 2>/dev/null)" || return 0
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        log "$name: stopping (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$pidfile"
}

# kill_pods: the kubelet's containers (and with them their shims) in its own containerd.
kill_pods() {
    local sock="$STATE/containerd/containerd.sock" task container
    [[ -S "$sock" ]] || return 0
    local ctr=(ctr --address "$sock" -n k8s.io)
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
        "${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    sleep 1
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
        "${ctr[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
    done
    for container in $("${ctr[@]}" containers ls -q 2>/dev/null); do
        "${ctr[@]}" containers delete "$container" >/dev/null 2>&1 || true
    done
}

stop kubelet
kill_pods
for name in registry containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop "$name"
done
if [[ "${1:-}" == --purge ]]; then
    log "removing $STATE"
    # The kubelet's volume mounts (secrets are tmpfs) first, deepest first.
    awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$STATE"
fi
log "stopped"
