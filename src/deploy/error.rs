//! The errors of loading and rendering deployments, each naming the deployment and the file.

use crate::deploy::YamlSyntaxError;
use std::path::PathBuf;

/// Why a deployment could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("deployment `{deployment}`: manifest `{pattern}` matches no file")]
    NoManifest { deployment: String, pattern: String },
    #[error("deployment `{deployment}`: invalid manifest glob `{pattern}`: {message}")]
    BadGlob {
        deployment: String,
        pattern: String,
        message: String,
    },
    #[error("deployment `{deployment}`: cannot read {}: {source}", path.display())]
    Read {
        deployment: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("deployment `{deployment}`: {}: {source}", path.display())]
    Yaml {
        deployment: String,
        path: PathBuf,
        source: YamlSyntaxError,
    },
    #[error("deployment `{deployment}`: {}: {message}", path.display())]
    Invalid {
        deployment: String,
        path: PathBuf,
        message: String,
    },
    #[error(
        "deployment `{deployment}` sets `kustomize: true` but neither `kustomize` nor `kubectl` is in PATH\nhint: install kustomize (https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl"
    )]
    KustomizeMissing { deployment: String },
    #[error("deployment `{deployment}`: `{command}` failed: {message}")]
    KustomizeFailed {
        deployment: String,
        command: String,
        message: String,
    },
    #[error(
        "deployment `{deployment}` has neither `kubectl` nor `helm`; only those two kinds can be deployed"
    )]
    Unsupported { deployment: String },
}

impl crate::diagnostic::Diagnostic for DeployError {}
