//! The Docker builders and the daemon connection they share.
//!
//! Owns connecting to the daemon (endpoint resolution in [`endpoint`], TLS, version
//! negotiation, a short-timeout ping with a typed "unreachable" error), local image checks,
//! the Engine API build ([`DockerApiBuilder`], in `api`), the `docker build` CLI path for
//! BuildKit and extra args ([`DockerCliBuilder`], in `cli`), and pushing ([`DockerDaemon::push`],
//! in `push`). Message parsing is pure and lives in [`stream`].

mod api;
mod cli;
pub mod endpoint;
mod push;
pub mod stream;

use std::path::PathBuf;
use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, RemoveContainerOptionsBuilder};
use bollard::{API_DEFAULT_VERSION, Docker};

use crate::builder::ImageBuilder;
use crate::config::model::DockerConfig;
use crate::exit::ExitCode;

pub use api::DockerApiBuilder;
pub use cli::{DockerCliBuilder, cli_argv};
pub use endpoint::{DockerEndpoint, DockerEnv, EndpointSource, TlsFiles, resolve_endpoint};
pub use push::{PushError, PushRequest, PushedTag};

/// Which path a `build.docker` image takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerMode {
    /// The Engine API (the default).
    Api,
    /// The `docker build` CLI, as DevSpace does for `useBuildKit`, non-empty `args`, or 5.x
    /// `useCli`.
    Cli {
        /// Set `DOCKER_BUILDKIT=1`.
        buildkit: bool,
        /// The user's extra `docker build` arguments.
        args: Vec<String>,
    },
}

impl DockerMode {
    /// The mode for an image's `build.docker` block (absent block: the API).
    pub fn for_config(config: Option<&DockerConfig>) -> Self {
        let Some(config) = config else {
            return DockerMode::Api;
        };
        let buildkit = config.use_build_kit == Some(true);
        if buildkit || !config.args.is_empty() || config.use_cli == Some(true) {
            DockerMode::Cli {
                buildkit,
                args: config.args.clone(),
            }
        } else {
            DockerMode::Api
        }
    }

    /// The builder for this mode, talking to `daemon` (the CLI uses it to clean up after a
    /// cancel and to read the image ID).
    pub fn builder(&self, daemon: DockerDaemon) -> Box<dyn ImageBuilder> {
        match self {
            DockerMode::Api => Box::new(DockerApiBuilder::new(daemon)),
            DockerMode::Cli { buildkit, args } => {
                Box::new(DockerCliBuilder::new(*buildkit, args.clone()).with_daemon(daemon))
            }
        }
    }
}

/// How long a ping may take before the daemon counts as unreachable.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(3);

/// How long any one request may wait for the daemon's response headers. The daemon answers a
/// build only after the whole context arrived, so this bounds uploads: bollard's 120 s default
/// is too short for large contexts. Builds can always be cancelled.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Connection tuning.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Bound for the reachability ping and version negotiation.
    pub ping_timeout: Duration,
    /// Bound for waiting on response headers of every other request.
    pub request_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            ping_timeout: DEFAULT_PING_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Failures talking to the daemon outside a build or push.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The daemon did not answer the ping.
    #[error("cannot reach the Docker daemon at {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: Box<DockerEndpoint>,
        /// What went wrong (connection refused, timeout after 3 s, ...).
        reason: String,
    },
    /// The docker CLI context could not be used.
    #[error("docker context `{name}`: {reason} ({})", path.display())]
    Context {
        /// Context name.
        name: String,
        /// The file looked at.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The docker `config.json` could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The host's scheme is not one this tool can connect to.
    #[error("unsupported Docker host `{host}` (use unix://, tcp://, http:// or https://)")]
    UnsupportedHost {
        /// The host as configured.
        host: String,
    },
    /// Setting up the client failed (e.g. unreadable TLS files).
    #[error("cannot set up the Docker client for {endpoint}: {source}")]
    Client {
        /// The endpoint.
        endpoint: Box<DockerEndpoint>,
        /// The underlying error.
        #[source]
        source: Box<bollard::errors::Error>,
    },
    /// The daemon of a local cluster could not be found (`minikube docker-env` failed).
    #[error(transparent)]
    LocalCluster(Box<crate::kube::local::LocalClusterError>),
    /// A request to the daemon failed.
    #[error("Docker daemon at {host}: {action} failed: {source}")]
    Api {
        /// The daemon host.
        host: String,
        /// What was asked (`inspect image app:v1`).
        action: String,
        /// The underlying error.
        #[source]
        source: Box<bollard::errors::Error>,
    },
}

impl DaemonError {
    /// A `hint:` line for the user, when there is a useful one.
    pub fn hint(&self) -> Option<String> {
        match self {
            DaemonError::Unreachable { endpoint, .. } => {
                let docker_host = match &endpoint.source {
                    EndpointSource::DockerHost => endpoint.host.clone(),
                    EndpointSource::Context(name) => format!("unset, docker context {name}"),
                    EndpointSource::Default => "unset".to_string(),
                };
                Some(format!(
                    "is the Docker daemon running? (DOCKER_HOST={docker_host})"
                ))
            }
            DaemonError::Context { .. } => Some(
                "pick an existing context with `docker context use NAME`, or set DOCKER_HOST"
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            DaemonError::Unreachable { .. } => ExitCode::Unreachable,
            _ => ExitCode::Failure,
        }
    }
}

/// A connected, version-negotiated Docker daemon.
#[derive(Debug, Clone)]
pub struct DockerDaemon {
    docker: Docker,
    endpoint: DockerEndpoint,
}

impl DockerDaemon {
    /// Connects to the daemon the docker CLI would use (`DOCKER_HOST`, current context,
    /// default socket), pings it and negotiates the API version.
    pub async fn connect() -> Result<Self, DaemonError> {
        let endpoint = resolve_endpoint(&DockerEnv::from_process())?;
        Self::connect_to(endpoint, ConnectOptions::default()).await
    }

    /// Connects to `endpoint`, pings it (bounded by `options.ping_timeout`) and negotiates
    /// the API version.
    pub async fn connect_to(
        endpoint: DockerEndpoint,
        options: ConnectOptions,
    ) -> Result<Self, DaemonError> {
        let docker = client_for(&endpoint, options.request_timeout)?;
        let daemon = Self { docker, endpoint };
        daemon.ping(options.ping_timeout).await?;
        let unreachable = |reason: String| DaemonError::Unreachable {
            endpoint: Box::new(daemon.endpoint.clone()),
            reason,
        };
        let docker = tokio::time::timeout(
            options.ping_timeout,
            daemon.docker.clone().negotiate_version(),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "no version answer within {:?}",
                options.ping_timeout
            ))
        })?
        .map_err(|e| unreachable(format!("version negotiation failed: {e}")))?;
        Ok(Self {
            docker,
            endpoint: daemon.endpoint,
        })
    }

    /// Checks that the daemon answers within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), DaemonError> {
        let unreachable = |reason: String| DaemonError::Unreachable {
            endpoint: Box::new(self.endpoint.clone()),
            reason,
        };
        match tokio::time::timeout(timeout, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
        }
    }

    /// The endpoint this daemon was reached at.
    pub fn endpoint(&self) -> &DockerEndpoint {
        &self.endpoint
    }

    /// The underlying bollard client (for callers that need other API calls).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Whether `reference` (`image:tag` or an ID) exists in the daemon's image store.
    pub async fn image_exists(&self, reference: &str) -> Result<bool, DaemonError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(DaemonError::Api {
                host: self.endpoint.host.clone(),
                action: format!("inspect image {reference}"),
                source: Box::new(source),
            }),
        }
    }

    /// Tags image `source` (reference or ID) as `repository:tag`, like `docker tag`.
    pub async fn tag_image(
        &self,
        source: &str,
        repository: &str,
        tag: &str,
    ) -> Result<(), DaemonError> {
        let options = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repository)
            .tag(tag)
            .build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|source_error| DaemonError::Api {
                host: self.endpoint.host.clone(),
                action: format!("tag image {source} as {repository}:{tag}"),
                source: Box::new(source_error),
            })
    }

    /// Force-removes containers a cancelled build left running and waits until they are
    /// gone, so a cancelled build leaves nothing behind. Best effort: errors are ignored.
    pub(crate) async fn remove_containers(&self, ids: &[String]) {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        for id in ids {
            let _ = self
                .docker
                .remove_container(id, Some(options.clone()))
                .await;
        }
        // The daemon may still be tearing a container down after our remove returned
        // "removal in progress"; wait for it to disappear (bounded).
        for id in ids {
            for _ in 0..100 {
                match self
                    .docker
                    .inspect_container(id, None::<InspectContainerOptions>)
                    .await
                {
                    // 404: gone; any other error: nothing more we can do.
                    Err(_) => break,
                    Ok(_) => {
                        let _ = self
                            .docker
                            .remove_container(id, Some(options.clone()))
                            .await;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

/// Builds a bollard client for `endpoint` without touching the network.
fn client_for(endpoint: &DockerEndpoint, timeout: Duration) -> Result<Docker, DaemonError> {
    let host = endpoint.host.as_str();
    let secs = timeout.as_secs().max(1);
    let client_err = |source| DaemonError::Client {
        endpoint: Box::new(endpoint.clone()),
        source: Box::new(source),
    };
    let docker = if host.starts_with("unix://") {
        match Docker::connect_with_unix(host, secs, API_DEFAULT_VERSION) {
            Ok(docker) => docker,
            Err(bollard::errors::Error::SocketNotFoundError(path)) => {
                return Err(DaemonError::Unreachable {
                    endpoint: Box::new(endpoint.clone()),
                    reason: format!("socket {path} does not exist"),
                });
            }
            Err(e) => return Err(client_err(e)),
        }
    } else if host.starts_with("tcp://")
        || host.starts_with("http://")
        || host.starts_with("https://")
    {
        match &endpoint.tls {
            Some(tls) => Docker::connect_with_ssl(
                host,
                &tls.key,
                &tls.cert,
                &tls.ca,
                secs,
                API_DEFAULT_VERSION,
            )
            .map_err(client_err)?,
            None if host.starts_with("https://") => {
                return Err(client_err(
                    bollard::errors::Error::UnsupportedURISchemeError {
                        uri: format!("{host} without DOCKER_TLS_VERIFY/DOCKER_CERT_PATH"),
                    },
                ));
            }
            None => {
                Docker::connect_with_http(host, secs, API_DEFAULT_VERSION).map_err(client_err)?
            }
        }
    } else {
        return Err(DaemonError::UnsupportedHost {
            host: host.to_string(),
        });
    };
    Ok(docker)
}

impl crate::diagnostic::Diagnostic for DaemonError {
    fn hints(&self) -> Vec<String> {
        self.hint().into_iter().collect()
    }
    fn exit_code(&self) -> ExitCode {
        DaemonError::exit_code(self)
    }
    fn is_environment(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_mode_table() {
        let cfg = |buildkit: Option<bool>, args: &[&str], cli: Option<bool>| DockerConfig {
            use_build_kit: buildkit,
            args: args.iter().map(|s| s.to_string()).collect(),
            use_cli: cli,
            ..Default::default()
        };
        let cases = [
            (None, DockerMode::Api),
            (Some(cfg(None, &[], None)), DockerMode::Api),
            (Some(cfg(Some(false), &[], Some(false))), DockerMode::Api),
            (
                Some(cfg(Some(true), &[], None)),
                DockerMode::Cli {
                    buildkit: true,
                    args: vec![],
                },
            ),
            (
                Some(cfg(None, &["--no-cache"], None)),
                DockerMode::Cli {
                    buildkit: false,
                    args: vec!["--no-cache".into()],
                },
            ),
            (
                Some(cfg(None, &[], Some(true))),
                DockerMode::Cli {
                    buildkit: false,
                    args: vec![],
                },
            ),
        ];
        for (config, want) in cases {
            assert_eq!(DockerMode::for_config(config.as_ref()), want, "{config:?}");
        }
    }

    #[test]
    fn unreachable_hint_names_docker_host() {
        let cases = [
            (
                DockerEndpoint::from_host("tcp://127.0.0.1:1"),
                "is the Docker daemon running? (DOCKER_HOST=tcp://127.0.0.1:1)",
            ),
            (
                DockerEndpoint::default_socket(),
                "is the Docker daemon running? (DOCKER_HOST=unset)",
            ),
            (
                DockerEndpoint {
                    host: "unix:///x.sock".into(),
                    tls: None,
                    source: EndpointSource::Context("colima".into()),
                },
                "is the Docker daemon running? (DOCKER_HOST=unset, docker context colima)",
            ),
        ];
        for (endpoint, want) in cases {
            let err = DaemonError::Unreachable {
                endpoint: Box::new(endpoint),
                reason: "x".into(),
            };
            assert_eq!(err.hint().as_deref(), Some(want));
            assert_eq!(err.exit_code(), ExitCode::Unreachable);
        }
    }

    #[test]
    fn unsupported_hosts_are_rejected_before_connecting() {
        for host in ["ssh://me@box", "npipe:////./pipe/docker_engine", "fd://"] {
            let err =
                client_for(&DockerEndpoint::from_host(host), DEFAULT_REQUEST_TIMEOUT).unwrap_err();
            assert!(matches!(err, DaemonError::UnsupportedHost { .. }), "{host}");
            assert!(err.to_string().contains(host));
        }
    }

    #[test]
    fn missing_tls_files_name_the_file() {
        let endpoint = DockerEndpoint {
            host: "tcp://127.0.0.1:2376".into(),
            tls: Some(TlsFiles::in_dir(std::path::Path::new("/nonexistent-certs"))),
            source: EndpointSource::DockerHost,
        };
        let err = client_for(&endpoint, DEFAULT_REQUEST_TIMEOUT).unwrap_err();
        assert!(
            format!("{err}: {:?}", std::error::Error::source(&err)).contains("nonexistent-certs"),
            "{err:?}"
        );
    }
}
