#!/bin/sh
# Context hashing benchmark: generates contexts under /tmp (override with BENCH_CONTEXT_DIR),
# measures cold / no-change scans and the tar stream against an openssl baseline, and writes
# the "Context hashing" section of docs/benchmarks.md.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench context "$@"
