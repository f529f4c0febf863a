//! devspace: reads a `devspace.yaml`, builds every image it names in parallel, skips the ones
//! whose inputs did not change, tags and pushes them, and deploys with the new tags.
//!
//! See `docs/architecture.md` for the module map and the flow.

pub mod builder;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod dev;
pub mod diagnostic;
pub mod exit;
pub mod image;
pub mod kube;
pub mod pipeline;
pub mod pipeline_script;
pub mod process;
pub mod registry;
pub mod safe_fs;
pub mod signals;
pub mod ui;
pub mod yaml;
