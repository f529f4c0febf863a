//! Loading `devspace.yaml`: find, parse per declared version, profiles, vars, upgrade, validate.

pub mod model;

pub use model::*;
