//! Image builders: the adapters that turn one planned image into a built (and pushed) image.
//!
//! This module owns the typed contract between the orchestrator and the builders — what goes
//! in ([`BuildRequest`], the streamed [`ContextBody`]), what comes out ([`BuildOutcome`],
//! [`BuildError`]) and what is reported on the way ([`BuildEvent`] through an [`EventSink`]).
//! The adapters live in submodules: [`docker`] (Engine API over bollard, and the `docker
//! build` CLI for BuildKit/extra args), [`kaniko`] (a pod in the cluster) and [`custom`] (a
//! user command). Builders never print:
//! every line a build produces is an event, and the `ui` module decides what to show.
//! Cancellation is a [`CancellationToken`]; a cancelled build stops its work and cleans up the
//! containers or processes it started before returning [`BuildError::Cancelled`].

pub mod custom;
pub mod docker;
pub mod kaniko;
pub mod lines;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use bollard::auth::DockerCredentials;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use crate::config::model::ImageConfig;
use crate::exit::ExitCode;

pub use custom::CustomBuilder;
pub use docker::{
    DaemonError, DockerApiBuilder, DockerCliBuilder, DockerDaemon, DockerEndpoint, DockerMode,
    PushError, PushRequest, PushedTag,
};

/// The build context as an uncompressed tar, produced while it is sent.
///
/// A producer that fails part-way must yield `Err`: the builders then abort the upload instead
/// of letting the daemon build a truncated context.
pub type ContextBody = crate::process::Body;

/// Everything a builder needs to know about one image, independent of the builder kind.
#[derive(Clone, Default)]
pub struct BuildRequest {
    /// The key of the image in `images:` (names the image in events and errors).
    pub image_key: String,
    /// The image name without tag, e.g. `127.0.0.1:5000/app` or `john/api`.
    pub repository: String,
    /// Tags to apply, in config order; the first is the one recorded for deploy. Never empty.
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context tar (`/`-separated, relative).
    pub dockerfile: String,
    /// `--build-arg`s; `None` values mean "declared without a value" and are not sent.
    pub build_args: IndexMap<String, Option<String>>,
    /// Multi-stage target.
    pub target: Option<String>,
    /// Network mode for `RUN` steps.
    pub network: Option<String>,
    /// Labels set on the resulting image.
    pub labels: IndexMap<String, String>,
    /// Credentials for pulling base images, keyed by registry (sent as `X-Registry-Config`).
    pub registry_auths: HashMap<String, DockerCredentials>,
}

impl BuildRequest {
    /// The request for image `image_key` of the config: repository from `image`, build args,
    /// target and network from the active builder's `options`. `tags` are the resolved tags
    /// (first one recorded for deploy); `dockerfile_in_context` is where the (possibly
    /// rewritten) Dockerfile sits inside the context tar.
    pub fn for_image(
        image_key: &str,
        image: &ImageConfig,
        tags: Vec<String>,
        dockerfile_in_context: String,
    ) -> Self {
        let options = image.options();
        Self {
            image_key: image_key.to_string(),
            repository: image.image.clone(),
            tags,
            dockerfile: dockerfile_in_context,
            build_args: options.map(|o| o.build_args.clone()).unwrap_or_default(),
            target: options.and_then(|o| o.target.clone()),
            network: options.and_then(|o| o.network.clone()),
            labels: IndexMap::new(),
            registry_auths: HashMap::new(),
        }
    }

    /// `repository:tag` for every tag, in order.
    pub fn references(&self) -> Vec<String> {
        self.tags
            .iter()
            .map(|tag| format!("{}:{}", self.repository, tag))
            .collect()
    }
}

impl fmt::Debug for BuildRequest {
    // Hand-written so credentials never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildRequest")
            .field("image_key", &self.image_key)
            .field("repository", &self.repository)
            .field("tags", &self.tags)
            .field("dockerfile", &self.dockerfile)
            .field("build_args", &self.build_args.keys().collect::<Vec<_>>())
            .field("target", &self.target)
            .field("network", &self.network)
            .field("labels", &self.labels)
            .field(
                "registry_auths",
                &self.registry_auths.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a builder reports while it works. Lines are always whole lines without the newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// One line of build output (every line, including step lines).
    Log(String),
    /// A `Step n/m : INSTRUCTION` line was seen; sent right after its [`BuildEvent::Log`].
    Step {
        /// Current step, 1-based.
        n: u32,
        /// Number of steps.
        m: u32,
        /// The instruction text after `Step n/m : `.
        text: String,
    },
    /// The whole context was handed to the daemon or CLI.
    ContextSent {
        /// Bytes of tar sent.
        bytes: u64,
    },
    /// Push of one reference (`repository:tag`) started.
    Pushing {
        /// The full reference being pushed.
        tag: String,
    },
    /// A progress message of a running push.
    PushProgress {
        /// The full reference being pushed.
        tag: String,
        /// The daemon's status text (`Pushing`, `Layer already exists`, ...).
        status: String,
        /// Bytes done of the current layer, when the daemon says.
        current: Option<u64>,
        /// Size of the current layer, when the daemon says.
        total: Option<u64>,
    },
    /// Push of one reference finished.
    Pushed {
        /// The full reference pushed.
        tag: String,
        /// The manifest digest the registry reported (`sha256:...`).
        digest: Option<String>,
    },
}

/// Where a builder sends its [`BuildEvent`]s; cheap to clone.
#[derive(Clone)]
pub struct EventSink(Option<Arc<dyn Fn(BuildEvent) + Send + Sync>>);

impl EventSink {
    /// Calls `f` for every event (from the builder's task; keep it cheap).
    pub fn new(f: impl Fn(BuildEvent) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// Sends every event into an unbounded channel; a closed receiver drops events.
    pub fn channel(tx: tokio::sync::mpsc::UnboundedSender<BuildEvent>) -> Self {
        Self::new(move |event| {
            // The receiver going away means nobody is listening any more, not a build error.
            let _ = tx.send(event);
        })
    }

    /// Drops every event.
    pub fn discard() -> Self {
        Self(None)
    }

    /// Reports one event.
    pub fn emit(&self, event: BuildEvent) {
        if let Some(f) = &self.0 {
            f(event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink"
        } else {
            "EventSink(discard)"
        })
    }
}

/// A successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// The image ID the daemon reported (`sha256:...`), when the builder knows it.
    pub image_id: Option<String>,
    /// Every reference (`repository:tag`) that now exists, in tag order.
    pub references: Vec<String>,
    /// Whether the builder pushed the image itself (kaniko); the pipeline then does not.
    pub pushed: bool,
    /// The manifest digest the builder's push reported, if it pushed.
    pub digest: Option<String>,
}

/// How many trailing output lines a failure carries.
pub const ERROR_TAIL_LINES: usize = 20;

/// Why a build did not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The daemon answered the build with an error message (a failing `RUN`, a bad Dockerfile).
    #[error("image {image}: build failed: {message}")]
    Failed {
        /// Image key.
        image: String,
        /// The daemon's error message.
        message: String,
        /// The last output lines before the error.
        last_lines: Vec<String>,
    },
    /// Talking to the daemon failed (connection, protocol, HTTP error).
    #[error("image {image}: Docker daemon error during {action}: {source}")]
    Daemon {
        /// Image key.
        image: String,
        /// What was being done (`build`, `tag 127.0.0.1:5000/app:v2`, ...).
        action: String,
        /// The underlying error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The context producer failed; the upload was aborted so nothing was built from it.
    #[error("image {image}: reading the build context failed: {source}")]
    Context {
        /// Image key.
        image: String,
        /// The producer's error.
        #[source]
        source: io::Error,
    },
    /// The builder needs a context but none was given.
    #[error("image {image}: this builder needs a build context but none was given")]
    MissingContext {
        /// Image key.
        image: String,
    },
    /// The build was cancelled; its containers/processes were cleaned up.
    #[error("image {image}: build cancelled")]
    Cancelled {
        /// Image key.
        image: String,
    },
    /// The custom build command could not be found.
    #[error("image {image}: command `{command}` not found (is it installed and on PATH?)")]
    CommandNotFound {
        /// Image key.
        image: String,
        /// The program as configured.
        command: String,
    },
    /// The `docker` CLI (needed for `useBuildKit`, `args`, `useCli`) could not be found.
    #[error(
        "image {image}: the docker CLI `{command}` was not found (is it installed and on PATH?)"
    )]
    DockerCliNotFound {
        /// Image key.
        image: String,
        /// The CLI program tried.
        command: String,
    },
    /// The program could not be started or talked to.
    #[error("image {image}: running `{command}` failed: {source}")]
    Spawn {
        /// Image key.
        image: String,
        /// The program as configured.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("image {image}: `{command}` failed ({status})")]
    CommandFailed {
        /// Image key.
        image: String,
        /// The program as configured.
        command: String,
        /// How it ended (`exit status: 1`, `signal: 9`).
        status: String,
        /// The last output lines.
        last_lines: Vec<String>,
    },
    /// The kaniko build in the cluster failed (API, pod, upload, executor, timeout).
    #[error(transparent)]
    Kaniko(Box<kaniko::KanikoError>),
    /// `useBuildKit` was asked for but the `docker` CLI cannot run BuildKit builds.
    #[error(
        "image {image}: the docker CLI `{command}` cannot build with BuildKit (buildx is missing)"
    )]
    BuildKitUnavailable {
        /// Image key.
        image: String,
        /// The docker CLI used.
        command: String,
    },
}

impl BuildError {
    /// A transient failure of the Docker daemon's classic builder: its layer-cache lookup
    /// (moby's `getLocalCachedImage`) loads every child image of the step's parent and fails
    /// the whole build with `unable to find image "sha256:…"` when one of them is removed at
    /// that moment — typically an unrelated image built on the same base, deleted by someone
    /// else (`docker rmi`, a CI cleanup). Nothing was built; building again succeeds.
    pub fn is_daemon_cache_race(&self) -> bool {
        const MARK: &str = "unable to find image \"sha256:";
        match self {
            BuildError::Failed { message, .. } => message.contains(MARK),
            BuildError::CommandFailed { last_lines, .. } => {
                last_lines.iter().any(|l| l.contains(MARK))
            }
            _ => false,
        }
    }

    /// The last output lines a failure carries (empty for errors that have none).
    pub fn last_lines(&self) -> &[String] {
        match self {
            BuildError::Failed { last_lines, .. }
            | BuildError::CommandFailed { last_lines, .. } => last_lines,
            BuildError::Kaniko(e) => e.last_lines(),
            _ => &[],
        }
    }

    /// A `hint:` line for the user, when there is a useful one.
    pub fn hint(&self) -> Option<String> {
        match self {
            BuildError::DockerCliNotFound { .. } => Some(
                "install the Docker CLI, or remove `useBuildKit`/`args`/`useCli` to build through the Engine API"
                    .to_string(),
            ),
            BuildError::CommandNotFound { .. } => {
                Some("check `build.custom.command` in devspace.yaml".to_string())
            }
            BuildError::BuildKitUnavailable { .. } => Some(
                "install the docker buildx plugin (Debian: docker-buildx), or set `useBuildKit: false`"
                    .to_string(),
            ),
            BuildError::Kaniko(e) => e.hint(),
            _ => None,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            BuildError::Cancelled { .. } => ExitCode::Interrupted,
            BuildError::Kaniko(e) => e.exit_code(),
            _ => ExitCode::Failure,
        }
    }
}

/// One way of building images; implemented by the Docker API, Docker CLI, kaniko and custom
/// builders.
pub trait ImageBuilder: Send + Sync {
    /// Whether [`ImageBuilder::build`] reads the context (the custom builder does not).
    fn needs_context(&self) -> bool;

    /// Builds `request`, tagging every tag; returns when done, failed or cancelled.
    fn build<'a>(
        &'a self,
        request: &'a BuildRequest,
        context: Option<ContextBody>,
        events: &'a EventSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<BuildOutcome, BuildError>>;
}

/// Runs `run` with the context, or fails with [`BuildError::MissingContext`] when there is
/// none (for the builders that read one).
pub(crate) fn with_context<'a, F>(
    request: &'a BuildRequest,
    context: Option<ContextBody>,
    run: impl FnOnce(ContextBody) -> F + Send + 'a,
) -> BoxFuture<'a, Result<BuildOutcome, BuildError>>
where
    F: Future<Output = Result<BuildOutcome, BuildError>> + Send + 'a,
{
    async move {
        match context {
            Some(context) => run(context).await,
            None => Err(BuildError::MissingContext {
                image: request.image_key.clone(),
            }),
        }
    }
    .boxed()
}

impl crate::diagnostic::Diagnostic for BuildError {
    fn hints(&self) -> Vec<String> {
        self.hint().into_iter().collect()
    }
    fn exit_code(&self) -> ExitCode {
        BuildError::exit_code(self)
    }
    fn last_lines(&self) -> &[String] {
        BuildError::last_lines(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BuildConfig, BuildOptions, DockerConfig, KanikoConfig};

    #[test]
    fn request_for_image_takes_the_active_builders_options() {
        let options = BuildOptions {
            target: Some("prod".into()),
            network: Some("host".into()),
            build_args: IndexMap::from([("A".to_string(), Some("1".to_string()))]),
        };
        let docker_image = ImageConfig {
            image: "127.0.0.1:5000/api".into(),
            build: BuildConfig {
                docker: Some(DockerConfig {
                    options: Some(options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = BuildRequest::for_image(
            "api",
            &docker_image,
            vec!["v1".into(), "latest".into()],
            "Dockerfile".into(),
        );
        assert_eq!(r.image_key, "api");
        assert_eq!(r.repository, "127.0.0.1:5000/api");
        assert_eq!(
            r.references(),
            ["127.0.0.1:5000/api:v1", "127.0.0.1:5000/api:latest"]
        );
        assert_eq!(r.target.as_deref(), Some("prod"));
        assert_eq!(r.network.as_deref(), Some("host"));
        assert_eq!(r.build_args, options.build_args);

        let kaniko_image = ImageConfig {
            image: "app".into(),
            build: BuildConfig {
                kaniko: Some(KanikoConfig {
                    options: Some(options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = BuildRequest::for_image("k", &kaniko_image, vec!["x".into()], "D".into());
        assert_eq!(r.target.as_deref(), Some("prod"));

        let plain = ImageConfig {
            image: "app".into(),
            ..Default::default()
        };
        let r = BuildRequest::for_image("p", &plain, vec!["x".into()], "Dockerfile".into());
        assert!(r.build_args.is_empty() && r.target.is_none() && r.network.is_none());
    }

    #[test]
    fn debug_never_shows_registry_credentials() {
        let mut r = BuildRequest::default();
        r.registry_auths.insert(
            "127.0.0.1:5000".into(),
            DockerCredentials {
                password: Some("hunter2-secret".into()),
                ..Default::default()
            },
        );
        let text = format!("{r:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("127.0.0.1:5000"));
    }
}
