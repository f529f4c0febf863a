#!/usr/bin/env bash
# The quick start on a fresh Debian machine: services (Docker daemon, busybox image, registries),
# a release build of devspace, then the quickstart example's images.
# Arguments are passed to the devspace command (e.g. `scripts/quickstart.sh -p production`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$repo/scripts/services.sh"
echo "quickstart: building devspace (release)" >&2
cargo build --release --locked --manifest-path "$repo/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$repo/target}/release/devspace"

cd "$repo/examples/quickstart"
QUICKSTART_COMMAND=(build)
echo "quickstart: devspace ${QUICKSTART_COMMAND[*]} $* (in examples/quickstart)" >&2
status=0
"$bin" "${QUICKSTART_COMMAND[@]}" "$@" || status=$?
if ((status == 0)); then
    echo "quickstart: next: scripts/test.sh runs the tests;" \
        "cd examples/quickstart && $bin build again skips every image;" \
        "more to try in examples/quickstart/README.md" >&2
fi
exit "$status"
