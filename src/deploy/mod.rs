//! Deploy-side work that needs no cluster: tag replacement in kubectl manifests and Helm values,
//! loading manifests (files, directories, globs, kustomize), assembling Helm values, and the
//! `render` core that returns, per deployment, the text deploy would apply.
//!
//! The cluster side works from [`render`]'s [`RenderedDeployment`]s: [`apply`] applies kubectl
//! objects by server-side apply, [`helm_run`] runs `helm upgrade --install` with the rendered
//! values. [`run`] is the whole pass deploy and dev share: connect, pull secrets, build,
//! render, apply.

pub mod apply;
pub mod helm;
pub mod helm_run;
pub mod manifests;
pub mod render;
pub mod replace;
pub mod run;

mod error;

pub use crate::yaml::Error as YamlSyntaxError;
pub use error::DeployError;
pub use manifests::{ManifestObject, ManifestSource};
pub use render::{RenderedDeployment, RenderedKind, format_rendered, render, render_deployment};
pub use replace::{ImageTable, ImageTag, Replaced, Replacement, Scope, replace_tags};
