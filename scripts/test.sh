#!/usr/bin/env bash
# The project's test command: the README and CI (.ci/run) both run exactly this.
# Needs the services from scripts/services.sh (Docker daemon, busybox image, registries).
# The integration tests are one binary, `it` (tests/it/main.rs); extra arguments go to
# `cargo test` (e.g. `scripts/test.sh --test it kube_fake::` runs one module).
# Missing services are an error here, reported once ("run scripts/services.sh"); plain
# `cargo test` skips the tests that need them instead, saying so on stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEVSPACE_TEST_REQUIRE_SERVICES=1
# Most integration tests wait on the Docker daemon, registries or child processes, not the CPU:
# more test threads than cores (libtest's default) shortens the run. Measured on a loaded 2-core
# machine: the `it` binary took 110-130 s with 2 threads, 77 s with 6, 80 s with 10.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-6}"
exec cargo test --locked --all-targets "$@"
