#!/usr/bin/env bash
# Sets up everything the tests, the quick start and the benchmarks talk to, on a Debian machine:
#   - Debian packages: docker.io, docker-registry, busybox-static, golang-docker-credential-helpers,
#     pass, gnupg, apache2-utils (htpasswd), openssl, hyperfine, git
#   - a Docker daemon (started only when `docker version` does not answer)
#   - a local `busybox:latest` image built from the static busybox binary (nothing can be pulled)
#   - two registries (CNCF distribution, Debian's `docker-registry`):
#       127.0.0.1:5000  plain, no auth
#       127.0.0.1:5001  htpasswd auth, user `devspace`, password `devspace-test`
#     These are throw-away TEST credentials for a loopback-only registry, not a secret.
#
# Idempotent: safe to run any number of times, and when some of these are already running
# (e.g. a dockerd started by hand). Needs root for installing and starting services.
# Environment: DEVSPACE_SERVICES_WAIT (seconds to wait for each service, default 60).
set -euo pipefail

WAIT_SECS="${DEVSPACE_SERVICES_WAIT:-60}"
BUSYBOX_IMAGE="${DEVSPACE_BUSYBOX_IMAGE:-busybox:latest}" # override only to test the import
STATE_DIR=/var/lib/devspace-test-registry
LOG_DIR=/var/log
REG_USER=devspace
REG_PASSWORD=devspace-test # test-only credential, see the header

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi
fi
as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; elif ((${#SUDO[@]})); then "${SUDO[@]}" "$@"; else
        die "need root for: $* (run this script as root)"
    fi
}

# --- packages -------------------------------------------------------------------------------
PACKAGES=(docker.io docker-registry busybox-static golang-docker-credential-helpers pass gnupg
    apache2-utils openssl hyperfine git)

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "packages: all present"
        return
    fi
    log "packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# --- helpers ----------------------------------------------------------------------------------
# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

docker_answers() {
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# wait_for COMMAND...: polls COMMAND until it succeeds, at most WAIT_SECS seconds.
wait_for() {
    local i
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        if "$@"; then return 0; fi
        sleep 0.5
    done
    return 1
}

# --- docker daemon ----------------------------------------------------------------------------
start_dockerd() {
    if docker_answers; then
        log "dockerd: already answering"
        return
    fi
    local logf="$LOG_DIR/devspace-dockerd.log"
    log "dockerd: starting (log: $logf)"
    # setsid + nohup: the daemon must outlive this script and the shell that ran it.
    as_root bash -c "setsid nohup dockerd >>'$logf' 2>&1 </dev/null &"
    if ! wait_for docker_answers; then
        tail -n 20 "$logf" >&2 || true
        die "dockerd did not answer within ${WAIT_SECS}s (see $logf)"
    fi
}

# --- busybox base image -----------------------------------------------------------------------
import_busybox() {
    if docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
        log "image $BUSYBOX_IMAGE: present"
        return
    fi
    local bb=/bin/busybox
    [[ -x "$bb" ]] || die "$bb missing (package busybox-static)"
    # A dynamically linked busybox would not run in an empty rootfs.
    if ldd "$bb" >/dev/null 2>&1; then die "$bb is not statically linked (install busybox-static)"; fi
    log "image $BUSYBOX_IMAGE: importing from $bb"
    local root
    root="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: root is local
    trap "rm -rf '$root'" RETURN
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
    chmod 1777 "$root/tmp"
    cp "$bb" "$root/bin/busybox"
    local applet
    while read -r applet; do
        [[ -n "$applet" && "$applet" != busybox ]] || continue
        ln -sf busybox "$root/bin/$applet"
    done < <("$bb" --list)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["/bin/sh"]' - "$BUSYBOX_IMAGE" >/dev/null
    docker run --rm "$BUSYBOX_IMAGE" true || die "imported $BUSYBOX_IMAGE does not run"
}

# --- registries -------------------------------------------------------------------------------
# start_registry NAME PORT [htpasswd]
start_registry() {
    local name="$1" port="$2" auth="${3:-}"
    if port_open "$port"; then
        log "registry $name: 127.0.0.1:$port already answering"
        return
    fi
    local dir="$STATE_DIR/$name"
    local logf="$LOG_DIR/devspace-registry-$port.log"
    as_root mkdir -p "$dir/data"
    local auth_block=""
    if [[ "$auth" == htpasswd ]]; then
        # bcrypt (-B): the only hash distribution's htpasswd backend accepts.
        if [[ ! -s "$dir/htpasswd" ]]; then
            htpasswd -Bbn "$REG_USER" "$REG_PASSWORD" | as_root tee "$dir/htpasswd" >/dev/null
        fi
        auth_block="auth:
  htpasswd:
    realm: devspace-test
    path: $dir/htpasswd"
    fi
    as_root tee "$dir/config.yml" >/dev/null <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: devspace-test-registry-$name
$auth_block
YAML
    log "registry $name: starting on 127.0.0.1:$port (log: $logf)"
    as_root bash -c "setsid nohup docker-registry serve '$dir/config.yml' >>'$logf' 2>&1 </dev/null &"
    if ! wait_for port_open "$port"; then
        tail -n 20 "$logf" >&2 || true
        die "registry $name did not listen on 127.0.0.1:$port within ${WAIT_SECS}s (see $logf)"
    fi
}

main() {
    install_packages
    start_dockerd
    import_busybox
    start_registry plain 5000
    start_registry auth 5001 htpasswd
    cat >&2 <<SUMMARY
services: ready
  docker     $(docker version --format 'Engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)
  image      $BUSYBOX_IMAGE $(docker image inspect "$BUSYBOX_IMAGE" --format '{{.Id}}' | cut -c8-19)
  registry   127.0.0.1:5000 (no auth)
  registry   127.0.0.1:5001 (htpasswd, user $REG_USER, test password in scripts/services.sh)
SUMMARY
}

main "$@"
