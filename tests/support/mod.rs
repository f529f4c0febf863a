//! Shared helpers for the integration tests.

pub mod credhelper;
pub mod registry;
