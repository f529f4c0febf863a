#!/usr/bin/env bash
# The project's test command: the README and CI (.ci/run) both run exactly this.
# Needs the services from scripts/services.sh (Docker daemon, busybox image, registries) and the
# real Kubernetes test cluster of scripts/kube-up.sh, which it starts itself (idempotent: built
# once per machine, started in seconds, left running) unless DEVSPACE_TEST_KUBECONFIG names one.
# The integration tests are one binary, `it` (tests/it/main.rs); extra arguments go to
# `cargo test` (e.g. `scripts/test.sh --test it kube_fake::` runs one module).
# Missing services are an error here, reported once ("run scripts/services.sh"); plain
# `cargo test` skips the tests that need them instead, saying so on stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEVSPACE_TEST_REQUIRE_SERVICES=1
if [[ -z "${DEVSPACE_TEST_KUBECONFIG:-}" ]]; then
    DEVSPACE_TEST_KUBECONFIG="$(bash scripts/kube-up.sh | tail -n 1)"
    export DEVSPACE_TEST_KUBECONFIG
fi
exec cargo test --locked --all-targets "$@"
