//! The integration tests: one test binary (each `tests/*.rs` file would be its own binary that
//! compiles and links the whole crate again), one module per area, and the shared helpers in
//! [`support`].
//!
//! Tests that need the services of `scripts/services.sh` (Docker daemon, busybox image,
//! registries) start with [`require_services!`]: under `scripts/test.sh` (which sets
//! `DEVSPACE_TEST_REQUIRE_SERVICES=1`) a missing service stops the whole binary at once with
//! one line; under plain `cargo test` those tests are skipped with one line per module on
//! stderr, and the pure tests still run.

#[macro_use]
mod support;

mod build_decision;
mod build_e2e;
mod config;
mod deploy_apply;
mod deploy_e2e;
mod deploy_replace;
mod dev_loop;
mod docker_builder;
mod dockerignore;
mod kaniko;
mod kube_cluster;
mod kube_fake;
mod kube_real;
mod local_clusters;
mod quickstart;
mod registry;
mod registry_cache;
mod render;
mod v6;
