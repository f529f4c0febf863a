#!/usr/bin/env bash
# The project's test command: the README and CI (.ci/run) both run exactly this.
# Needs the services from scripts/services.sh (Docker daemon, busybox image, registries).
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test kube_fake`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo test --locked --all-targets "$@"
