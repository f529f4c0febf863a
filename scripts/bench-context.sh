#!/bin/sh
# Context hashing benchmark: generates contexts under /tmp/devspace-bench-context (override with
# BENCH_CONTEXT_DIR; ~2.5 GB, deleted at the end unless BENCH_KEEP=1), measures cold scans against
# `openssl dgst -sha256` and no-change scans against the previous walker and `find -printf`, all
# in the same run with wall and CPU time, and writes the "Context hashing" section of
# docs/benchmarks.md. BENCH_ONLY=big|small|four|one measures one context and prints it instead.
# Run it on an idle machine: record `uptime` (the report states the load average).
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench context "$@"
