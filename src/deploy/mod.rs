//! Deploy-side work that needs no cluster: tag replacement in kubectl manifests and Helm values,
//! loading manifests (files, directories, globs, kustomize), assembling Helm values, and the
//! `render` core that returns, per deployment, the text deploy would apply.
//!
//! Applying objects and running `helm` belong to the deploy command, which calls [`render`] and
//! works from its [`RenderedDeployment`]s.

pub mod helm;
pub mod manifests;
pub mod render;
pub mod replace;

mod error;
pub(crate) mod reference;
mod yaml;

pub use error::DeployError;
pub use manifests::{ManifestObject, ManifestSource};
pub use render::{RenderedDeployment, RenderedKind, format_rendered, render, render_deployment};
pub use replace::{ImageTable, ImageTag, Replaced, Replacement, Scope, replace_tags};
pub use yaml::YamlSyntaxError;
