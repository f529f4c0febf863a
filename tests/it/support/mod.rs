//! Helpers shared by the integration tests: temporary projects and the binary runner
//! (`project`), the project harness for end-to-end runs with unique image names (`harness`),
//! the fake Kubernetes API server (`kube_fake`), registries on free ports (`registry`) and a
//! proxy that makes one refuse or hold our writes (`registry_proxy`), a real
//! credential helper (`credhelper`), stand-in CLIs that record their arguments (`stand_in`),
//! and the check that the test services are up (`services`, [`require_services!`]).

#![allow(
    dead_code,
    reason = "a toolkit for all modules: some helpers (e.g. `Devspace::run_async`) wait for the \
              tests that need them"
)]

/// Returns from the calling test unless the services of `scripts/services.sh` are up; under
/// `DEVSPACE_TEST_REQUIRE_SERVICES=1` a missing service stops the test binary instead (see
/// [`services`]).
macro_rules! require_services {
    () => {
        if !$crate::support::services::available(module_path!()) {
            return;
        }
    };
}

pub mod credhelper;
pub mod harness;
pub mod kube_fake;
pub mod kube_real;
pub mod project;
pub mod registry;
pub mod registry_proxy;
pub mod services;
pub mod stand_in;
