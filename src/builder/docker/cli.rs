//! The `docker build` CLI path, taken for `useBuildKit`, non-empty `args` or `useCli`.
//!
//! Owns the argv DevSpace uses (`build [--build-arg K=V]… [--network N] --tag ref…
//! --file F [--target T] [--label K=V]… <args…> -`), feeding the context tar on stdin,
//! `DOCKER_BUILDKIT=1` for BuildKit, output lines as events, and the errors users need: the
//! CLI missing, BuildKit unavailable (no buildx), a non-zero exit with the last lines. The
//! process (stdin fed from the context, killed with its group on cancel) is
//! [`crate::process::stream`].

use std::ffi::OsString;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::DockerDaemon;
use super::stream::BuildStreamState;
use crate::builder::{
    BuildError, BuildEvent, BuildOutcome, BuildRequest, ContextBody, ERROR_TAIL_LINES, EventSink,
    ImageBuilder, with_context,
};
use crate::process::{self, RunError, Spec, Streamed};

/// What newer docker CLIs print when BuildKit is asked for but buildx is not installed.
const BUILDX_MISSING: &str = "BuildKit is enabled but the buildx component is missing";

/// Builds by running the `docker` CLI.
#[derive(Debug, Clone)]
pub struct DockerCliBuilder {
    program: OsString,
    buildkit: bool,
    args: Vec<String>,
    daemon: Option<DockerDaemon>,
}

impl DockerCliBuilder {
    /// Runs `docker` from `PATH`; `buildkit` sets `DOCKER_BUILDKIT=1`; `args` are the user's
    /// `build.docker.args`, passed through as single argv elements.
    pub fn new(buildkit: bool, args: Vec<String>) -> Self {
        Self {
            program: OsString::from("docker"),
            buildkit,
            args,
            daemon: None,
        }
    }

    /// Uses another docker CLI binary (a path or a name on `PATH`).
    pub fn with_program(mut self, program: impl Into<OsString>) -> Self {
        self.program = program.into();
        self
    }

    /// Lets the builder clean up step containers after a cancel and read the image ID; pass
    /// the daemon the CLI talks to (both follow `DOCKER_HOST` and the current context).
    pub fn with_daemon(mut self, daemon: DockerDaemon) -> Self {
        self.daemon = Some(daemon);
        self
    }

    /// The argv (after the program name) for `request`.
    pub fn argv(&self, request: &BuildRequest) -> Vec<String> {
        cli_argv(request, self.buildkit, &self.args)
    }

    /// Runs `docker build … -` with `context` on stdin.
    pub async fn run(
        &self,
        request: &BuildRequest,
        context: ContextBody,
        events: &EventSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let image = &request.image_key;
        let command = self.program.to_string_lossy().into_owned();
        let args = self.argv(request);
        let owned_env = cli_env(self.buildkit, self.daemon.as_ref().map(|d| d.endpoint()));
        let mut state = BuildStreamState::new(ERROR_TAIL_LINES);
        let mut buildx_missing = false;
        let mut on_line = |line: String| {
            buildx_missing |= line.contains(BUILDX_MISSING);
            for event in state.on_text_line(line) {
                events.emit(event);
            }
        };
        let spec = owned_env
            .iter()
            .fold(Spec::new(&self.program).args(&args), |spec, (k, v)| {
                spec.env(k, v)
            });
        let outcome = process::stream(&spec, Some(context), &mut on_line, cancel).await;
        match outcome {
            Ok(Streamed::Exited { status, sent }) if status.success() => {
                if let Some(bytes) = sent {
                    events.emit(BuildEvent::ContextSent { bytes });
                }
                let references = request.references();
                let image_id = match (&self.daemon, references.first()) {
                    (Some(daemon), Some(first)) => daemon
                        .client()
                        .inspect_image(first)
                        .await
                        .ok()
                        .and_then(|i| i.id),
                    _ => None,
                };
                Ok(BuildOutcome {
                    image_id,
                    references,
                    pushed: false,
                    digest: None,
                })
            }
            Ok(Streamed::Exited { .. }) if buildx_missing => Err(BuildError::BuildKitUnavailable {
                image: image.clone(),
                command,
            }),
            Ok(Streamed::Exited { status, .. }) => Err(BuildError::CommandFailed {
                image: image.clone(),
                command,
                status: status.to_string(),
                last_lines: state.last_lines(),
            }),
            Ok(Streamed::Cancelled) => {
                if let Some(daemon) = &self.daemon {
                    daemon.remove_containers(&state.live_containers()).await;
                }
                Err(BuildError::Cancelled {
                    image: image.clone(),
                })
            }
            Err(RunError::Missing { .. }) => Err(BuildError::DockerCliNotFound {
                image: image.clone(),
                command,
            }),
            Err(RunError::Input { source, .. }) => Err(BuildError::Context {
                image: image.clone(),
                source,
            }),
            Err(RunError::Spawn { source, .. }) => Err(BuildError::Spawn {
                image: image.clone(),
                command,
                source,
            }),
            Err(other) => Err(BuildError::Spawn {
                image: image.clone(),
                command,
                source: std::io::Error::other(other.to_string()),
            }),
        }
    }
}

impl ImageBuilder for DockerCliBuilder {
    fn needs_context(&self) -> bool {
        true
    }

    fn build<'a>(
        &'a self,
        request: &'a BuildRequest,
        context: Option<ContextBody>,
        events: &'a EventSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<BuildOutcome, BuildError>> {
        with_context(request, context, move |c| {
            self.run(request, c, events, cancel)
        })
    }
}

/// `build [--force-rm] [--build-arg K=V]… [--network N] --tag ref… --file F [--target T]
/// [--label K=V]… <extra_args…> -` — DevSpace's order; build args without a value are
/// skipped. Our additions: `--force-rm` for the classic builder, which otherwise leaves the
/// container of a failed step behind (BuildKit leaves none), and labels, so both build paths
/// label images alike.
pub fn cli_argv(request: &BuildRequest, buildkit: bool, extra_args: &[String]) -> Vec<String> {
    let mut argv = vec!["build".to_string()];
    if !buildkit {
        argv.push("--force-rm".to_string());
    }
    for (key, value) in &request.build_args {
        if let Some(value) = value {
            argv.push("--build-arg".to_string());
            argv.push(format!("{key}={value}"));
        }
    }
    if let Some(network) = &request.network {
        argv.push("--network".to_string());
        argv.push(network.clone());
    }
    for reference in request.references() {
        argv.push("--tag".to_string());
        argv.push(reference);
    }
    argv.push("--file".to_string());
    argv.push(request.dockerfile.clone());
    if let Some(target) = &request.target {
        argv.push("--target".to_string());
        argv.push(target.clone());
    }
    for (key, value) in &request.labels {
        argv.push("--label".to_string());
        argv.push(format!("{key}={value}"));
    }
    argv.extend(extra_args.iter().cloned());
    argv.push("-".to_string());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    #[test]
    fn argv_table() {
        let full = BuildRequest {
            image_key: "api".into(),
            repository: "r/api".into(),
            tags: vec!["v1".into(), "latest".into()],
            dockerfile: "sub/Dockerfile".into(),
            build_args: IndexMap::from([
                ("B".to_string(), Some("2".to_string())),
                ("NONE".to_string(), None),
                ("A".to_string(), Some("x y".to_string())),
            ]),
            target: Some("prod".into()),
            network: Some("host".into()),
            labels: IndexMap::from([("team".to_string(), "core".to_string())]),
            ..Default::default()
        };
        let minimal = BuildRequest {
            repository: "app".into(),
            tags: vec!["abcde".into()],
            dockerfile: "Dockerfile".into(),
            ..Default::default()
        };
        let cases: Vec<(&BuildRequest, bool, Vec<String>, Vec<&str>)> = vec![
            (
                &full,
                true,
                vec!["--no-cache".into(), "--squash opt".into()],
                vec![
                    "build",
                    "--build-arg",
                    "B=2",
                    "--build-arg",
                    "A=x y",
                    "--network",
                    "host",
                    "--tag",
                    "r/api:v1",
                    "--tag",
                    "r/api:latest",
                    "--file",
                    "sub/Dockerfile",
                    "--target",
                    "prod",
                    "--label",
                    "team=core",
                    "--no-cache",
                    "--squash opt",
                    "-",
                ],
            ),
            (
                &minimal,
                false,
                vec![],
                vec![
                    "build",
                    "--force-rm",
                    "--tag",
                    "app:abcde",
                    "--file",
                    "Dockerfile",
                    "-",
                ],
            ),
        ];
        for (request, buildkit, extra, want) in cases {
            assert_eq!(cli_argv(request, buildkit, &extra), want);
        }
    }
}

/// The environment of the `docker` process: `DOCKER_BUILDKIT=1` for BuildKit, and — when the
/// daemon was chosen through an explicit host (e.g. minikube's `docker-env`) — that host and
/// its TLS files, so the CLI builds on the same daemon the rest of the pipeline talks to.
pub fn cli_env(buildkit: bool, endpoint: Option<&super::DockerEndpoint>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if buildkit {
        env.push(("DOCKER_BUILDKIT".to_string(), "1".to_string()));
    }
    if let Some(ep) = endpoint
        && ep.source == super::EndpointSource::DockerHost
    {
        env.push(("DOCKER_HOST".to_string(), ep.host.clone()));
        if let Some(tls) = &ep.tls
            && let Some(dir) = tls.ca.parent()
        {
            env.push(("DOCKER_TLS_VERIFY".to_string(), "1".to_string()));
            env.push(("DOCKER_CERT_PATH".to_string(), dir.display().to_string()));
        }
    }
    env
}

#[cfg(test)]
mod env_tests {
    use super::*;
    use crate::builder::docker::{DockerEndpoint, EndpointSource, TlsFiles};

    #[test]
    fn the_cli_builds_on_the_daemon_the_pipeline_chose() {
        assert_eq!(cli_env(false, None), Vec::<(String, String)>::new());
        assert_eq!(
            cli_env(true, Some(&DockerEndpoint::default_socket())),
            vec![("DOCKER_BUILDKIT".to_string(), "1".to_string())]
        );
        let minikube = DockerEndpoint {
            host: "tcp://192.168.49.2:2376".into(),
            tls: Some(TlsFiles::in_dir(std::path::Path::new(
                "/root/.minikube/certs",
            ))),
            source: EndpointSource::DockerHost,
        };
        assert_eq!(
            cli_env(false, Some(&minikube)),
            vec![
                (
                    "DOCKER_HOST".to_string(),
                    "tcp://192.168.49.2:2376".to_string()
                ),
                ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
                (
                    "DOCKER_CERT_PATH".to_string(),
                    "/root/.minikube/certs".to_string()
                ),
            ]
        );
    }
}
