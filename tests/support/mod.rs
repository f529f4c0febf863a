//! Helpers shared by the integration tests: temporary projects and the binary runner
//! (`project`), the fake Kubernetes API server (`kube_fake`), the real test cluster of `scripts/kube-up.sh` (`kube_real`), registries on free ports
//! (`registry`), copies of the quickstart example (`quickstart`), a real credential helper (`credhelper`) and stand-in CLIs that record their
//! arguments (`stand_in`).

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary includes this module and uses a different subset of it"
)]

pub mod credhelper;
pub mod kube_fake;
pub mod kube_real;
pub mod project;
pub mod quickstart;
pub mod registry;
pub mod stand_in;
