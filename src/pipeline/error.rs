//! Why one image job failed, typed: every failure of a step is converted (`#[from]`) into
//! [`ImageError`], which says its hints, exit code and whether its cause is the environment
//! (shared by every image that needs it) through [`Diagnostic`].

use crate::builder::{BuildError, DaemonError, PushError};
use crate::diagnostic::Diagnostic;
use crate::exit::ExitCode;
use crate::image::cache::CacheError;
use crate::image::context::ContextError;
use crate::image::dockerfile::DockerfileError;
use crate::image::on_change::OnChangeError;
use crate::image::tag::InvalidTag;
use crate::kube::KubeError;
use crate::kube::local::LocalClusterError;
use crate::registry::client::RegistryError;
use crate::registry::credentials::CredentialError;
use crate::registry::reference::ReferenceError;
use std::path::PathBuf;
use std::sync::Arc;

/// Why one image was not built, pushed or verified.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The Dockerfile cannot be read.
    #[error("cannot read Dockerfile {}: {source}", path.display())]
    DockerfileUnreadable {
        key: String,
        path: PathBuf,
        root: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    OnChange(#[from] OnChangeError),
    #[error(transparent)]
    Tag(#[from] InvalidTag),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The Docker daemon cannot be used (shared by every image of the run that needs it).
    #[error(transparent)]
    Daemon(#[from] Arc<DaemonError>),
    /// The daemon does not answer and `build.docker.disableFallback` keeps kaniko out.
    #[error(
        "{daemon}; build.docker.disableFallback is set, so it is not built with kaniko instead"
    )]
    FallbackDisabled { daemon: Arc<DaemonError> },
    /// The daemon does not answer and the kaniko fallback cannot reach a cluster either.
    #[error("{daemon}; the kaniko fallback failed too: {cluster}")]
    NoDaemonNoCluster {
        daemon: Arc<DaemonError>,
        cluster: Box<ImageError>,
    },
    /// The cluster (kaniko builds) cannot be used.
    #[error(transparent)]
    Kube(#[from] Arc<KubeError>),
    /// `DEVSPACE_KANIKO_TIMEOUT` is not a duration.
    #[error("{0}")]
    KanikoTimeout(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Push(#[from] PushError),
    /// A registry lookup (does the skipped tag still exist?) failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The manifest a registry-side retag copies is not in the registry.
    #[error("{reference} is not in the registry")]
    ManifestMissing { reference: String },
    /// Credentials could not be read (config file, helper).
    #[error(transparent)]
    Credentials(#[from] Arc<CredentialError>),
    /// bollard would corrupt these credentials on the way to the daemon.
    #[error(
        "the credentials for {registry} cannot be passed to the Docker daemon intact (a known encoding bug with some characters such as `~`, `?` or `>`)"
    )]
    CredentialsEncoding { registry: String },
    /// Local cluster delivery (`minikube docker-env`, `kind load`).
    #[error(transparent)]
    LocalCluster(Box<LocalClusterError>),
    /// `kind` disappeared between planning and loading.
    #[error("cannot load {repository} into kind cluster `{cluster}`: `kind` is no longer in PATH")]
    KindMissing { repository: String, cluster: String },
    /// The image's configuration cannot be built by this tool.
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A blocking step panicked or was aborted.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ImageError {
    /// Whether the daemon did not answer its ping (the kaniko fallback's trigger).
    pub fn daemon_unreachable(&self) -> Option<&Arc<DaemonError>> {
        match self {
            ImageError::Daemon(d) if matches!(**d, DaemonError::Unreachable { .. }) => Some(d),
            _ => None,
        }
    }

    /// A failure that was a cancellation (Ctrl-C), not an error.
    pub fn is_cancelled(&self) -> bool {
        self.exit_code() == ExitCode::Interrupted
    }
}

impl Diagnostic for ImageError {
    fn hints(&self) -> Vec<String> {
        match self {
            ImageError::DockerfileUnreadable { key, root, .. } => vec![format!(
                "set `images.{key}.dockerfile` in devspace.yaml (paths are relative to {})",
                root.display()
            )],
            ImageError::Daemon(d) => d.hint().into_iter().collect(),
            ImageError::FallbackDisabled { daemon } => {
                let mut hints: Vec<String> = daemon.hint().into_iter().collect();
                hints.push(
                    "start the Docker daemon, or remove `disableFallback` to build in the cluster with kaniko"
                        .into(),
                );
                hints
            }
            ImageError::NoDaemonNoCluster { daemon, cluster } => {
                let mut hints: Vec<String> = daemon.hint().into_iter().collect();
                hints.extend(cluster.hints());
                hints.extend(crate::diagnostic::split_hints(&cluster.to_string()).1);
                hints.push(
                    "set `build.docker.disableFallback: true` to fail at once when Docker is not running"
                        .into(),
                );
                hints
            }
            ImageError::Kube(_) => Vec::new(),
            ImageError::Build(e) => e.hint().into_iter().collect(),
            ImageError::Push(e) => e.hint().into_iter().collect(),
            ImageError::Registry(e) => e.hint().into_iter().collect(),
            ImageError::Credentials(e) => e.hint().into_iter().collect(),
            ImageError::CredentialsEncoding { .. } => vec![
                "change the password, or push with `docker push` after building with --skip-push"
                    .into(),
            ],
            ImageError::KindMissing { .. } => {
                vec!["install kind, or push by removing the kind context".into()]
            }
            _ => Vec::new(),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            ImageError::Daemon(d) => d.exit_code(),
            ImageError::FallbackDisabled { daemon } => daemon.exit_code(),
            ImageError::NoDaemonNoCluster { .. } => ExitCode::Unreachable,
            ImageError::Kube(e) => e.exit_code(),
            ImageError::Build(e) => e.exit_code(),
            ImageError::Push(e) => e.exit_code(),
            ImageError::Registry(e) => e.exit_code(),
            ImageError::Context(ContextError::Cancelled) => ExitCode::Interrupted,
            ImageError::Credentials(_) | ImageError::CredentialsEncoding { .. } => ExitCode::Auth,
            _ => ExitCode::Failure,
        }
    }

    fn last_lines(&self) -> &[String] {
        match self {
            ImageError::Build(e) => e.last_lines(),
            _ => &[],
        }
    }

    fn is_environment(&self) -> bool {
        match self {
            ImageError::Daemon(_)
            | ImageError::FallbackDisabled { .. }
            | ImageError::NoDaemonNoCluster { .. }
            | ImageError::Kube(_)
            | ImageError::Credentials(_)
            | ImageError::CredentialsEncoding { .. } => true,
            ImageError::Registry(e) => e.exit_code() != ExitCode::Failure,
            ImageError::Push(e) => e.exit_code() != ExitCode::Failure,
            _ => false,
        }
    }
}

impl From<LocalClusterError> for ImageError {
    fn from(e: LocalClusterError) -> Self {
        ImageError::LocalCluster(Box::new(e))
    }
}

impl From<tokio::task::JoinError> for ImageError {
    fn from(e: tokio::task::JoinError) -> Self {
        ImageError::Internal(e.to_string())
    }
}
