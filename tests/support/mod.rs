//! Helpers shared by the integration tests: temporary projects and the binary runner
//! (`project`), the fake Kubernetes API server (`kube_fake`), registries on free ports
//! (`registry`), a real credential helper (`credhelper`) and stand-in CLIs that record their
//! arguments (`stand_in`).

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary includes this module and uses a different subset of it"
)]

pub mod credhelper;
pub mod kube_fake;
pub mod project;
pub mod registry;
pub mod stand_in;
