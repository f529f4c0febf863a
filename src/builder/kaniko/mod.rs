//! The kaniko builder: builds (and pushes) one image in the cluster with a pod of its own.
//!
//! Flow of one build: the registry secret the executor pushes with (`kaniko.pullSecret`, or
//! `devspace-auth-<registry>` created/updated from the local credentials) → the pod
//! (`devspace-build-<image>-<random>`, [`pod::build_pod`]) → a **watch** on that one pod
//! drives everything: when the init container runs, the context tar is streamed into it
//! ([`upload`]); when the executor starts, its log is followed into [`BuildEvent::Log`]
//! lines; image-pull errors, unschedulable pods, containers that cannot be created and
//! non-zero exits fail at once with the reason ([`status::assess`]). One deadline bounds the
//! whole build (`DEVSPACE_KANIKO_TIMEOUT`, default 20 minutes). The pod is deleted by name —
//! never by label, so other builds' pods are left alone — on success, failure, timeout and
//! cancellation (and, should the build future be dropped, from a guard).

pub mod error;
pub mod pod;
pub mod status;
mod upload;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{AsyncBufReadExt as _, FutureExt as _, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams, WatchEvent, WatchParams};
use tokio_util::sync::CancellationToken;

use crate::config::model::{ImageConfig, KanikoConfig};
use crate::kube::{KubeClient, PlannedPullSecret, pull_secrets};
use crate::registry::credentials::Credential;
use crate::registry::reference::Registry;

use super::{
    BuildError, BuildEvent, BuildOutcome, BuildRequest, ContextBody, ERROR_TAIL_LINES, EventSink,
    ImageBuilder,
};
pub use error::KanikoError;
use pod::{KANIKO_CONTAINER, PodPlan};
use status::{PodState, assess};

/// How long a build may take when `DEVSPACE_KANIKO_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The environment variable that sets the build timeout (`90`, `90s`, `20m`, `1h`).
pub const TIMEOUT_ENV: &str = "DEVSPACE_KANIKO_TIMEOUT";
/// How long the executor's log may keep streaming after the container ended.
const LOG_DRAIN: Duration = Duration::from_secs(30);

/// Parses a timeout: whole seconds, or a number with `s`, `m` or `h`.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n * scale)),
        _ => Err(format!(
            "`{text}` is not a positive duration (e.g. 90, 90s, 20m, 1h)"
        )),
    }
}

/// The timeout from `DEVSPACE_KANIKO_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Result<Duration, String> {
    match std::env::var(TIMEOUT_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            parse_timeout(&v).map_err(|e| format!("{TIMEOUT_ENV}: {e}"))
        }
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

/// The kaniko block a Docker image falls back to when the daemon does not answer: its own
/// `build.kaniko` if present, else `cache: true` with the docker `options` (DevSpace).
pub fn fallback_config(image: &ImageConfig) -> KanikoConfig {
    image.build.kaniko.clone().unwrap_or_else(|| KanikoConfig {
        cache: Some(true),
        options: image.build.docker.as_ref().and_then(|d| d.options.clone()),
        ..KanikoConfig::default()
    })
}

/// The `.dockerconfigjson` document kaniko pushes with, built with serde.
pub fn docker_config(registry: &Registry, credential: &Credential) -> Vec<u8> {
    if credential.is_identity_token() {
        let mut entry = serde_json::Map::new();
        entry.insert(
            "identitytoken".into(),
            credential.secret.expose().to_string().into(),
        );
        let mut auths = serde_json::Map::new();
        auths.insert(registry.credential_key().to_string(), entry.into());
        serde_json::json!({ "auths": auths })
            .to_string()
            .into_bytes()
    } else {
        pull_secrets::docker_config_json(registry, credential)
    }
}

/// A successful kaniko build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KanikoOutcome {
    /// Every reference built and pushed, in tag order.
    pub references: Vec<String>,
    /// The manifest digest the executor reported (`Pushed ...@sha256:...`), if it did.
    pub digest: Option<String>,
    /// The pod that built it (deleted by now).
    pub pod: String,
}

/// Builds images with kaniko pods in one namespace of a cluster.
#[derive(Debug, Clone)]
pub struct KanikoBuilder {
    client: KubeClient,
    config: KanikoConfig,
    namespace: String,
    timeout: Duration,
    credential: Option<Credential>,
}

impl KanikoBuilder {
    /// A builder for `config`; the namespace is `kaniko.namespace`, else the client's.
    pub fn new(client: KubeClient, config: KanikoConfig) -> Self {
        let namespace = config
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| client.namespace().to_string());
        Self {
            client,
            config,
            namespace,
            timeout: DEFAULT_TIMEOUT,
            credential: None,
        }
    }

    /// Limits the whole build (pod start, upload, executor) to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The local credentials for the image's registry, from which `devspace-auth-<registry>`
    /// is made when `kaniko.pullSecret` is not set.
    pub fn with_credential(mut self, credential: Option<Credential>) -> Self {
        self.credential = credential;
        self
    }

    /// The namespace the build pod runs in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn kube_error(&self, image: &str, action: String, e: kube::Error) -> KanikoError {
        KanikoError::Kube {
            image: image.to_string(),
            source: self.client.error(action, e),
        }
    }

    /// The secret to mount at `/kaniko/.docker`, creating or updating it when it is ours.
    async fn pull_secret(
        &self,
        request: &BuildRequest,
        events: &EventSink,
    ) -> Result<Option<String>, KanikoError> {
        if self.config.skip_pull_secret_mount == Some(true) {
            return Ok(None);
        }
        if let Some(name) = self.config.pull_secret.clone().filter(|n| !n.is_empty()) {
            return Ok(Some(name));
        }
        let registry =
            Registry::of_image(&request.repository).map_err(|e| KanikoError::Config {
                image: request.image_key.clone(),
                message: format!("image name `{}`: {e}", request.repository),
            })?;
        let Some(credential) = &self.credential else {
            events.emit(BuildEvent::Log(format!(
                "kaniko: no credentials stored for {}: the executor pushes without authentication",
                registry.display_name()
            )));
            return Ok(None);
        };
        let name = registry.pull_secret_name();
        let planned = PlannedPullSecret::new(
            registry.clone(),
            &self.namespace,
            &name,
            docker_config(&registry, credential),
        );
        pull_secrets::ensure_pull_secret(&self.client, &planned)
            .await
            .map_err(|source| KanikoError::Kube {
                image: request.image_key.clone(),
                source,
            })?;
        Ok(Some(name))
    }

    /// Builds `request` from `context`: see the module documentation for the flow.
    pub async fn build_image(
        &self,
        request: &BuildRequest,
        context: ContextBody,
        events: &EventSink,
        cancel: &CancellationToken,
    ) -> Result<KanikoOutcome, BuildError> {
        let image = request.image_key.clone();
        let cancelled = || BuildError::Cancelled {
            image: image.clone(),
        };
        let secret = tokio::select! {
            r = self.pull_secret(request, events) => r?,
            () = cancel.cancelled() => return Err(cancelled()),
        };
        let (name, build_id) = {
            let mut rng = rand::rng();
            (
                pod::pod_name(&request.image_key, &mut rng),
                pod::build_id(&mut rng),
            )
        };
        let spec = pod::build_pod(&PodPlan {
            name: name.clone(),
            namespace: self.namespace.clone(),
            build_id,
            request,
            config: &self.config,
            pull_secret: secret,
        })
        .map_err(|e| KanikoError::Config {
            image: image.clone(),
            message: e.to_string(),
        })?;
        let api: Api<Pod> = Api::namespaced(self.client.client().clone(), &self.namespace);
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let created = api
            .create(&PostParams::default(), &spec)
            .await
            .map_err(|e| {
                self.kube_error(
                    &image,
                    format!("creating build pod {}/{name}", self.namespace),
                    e,
                )
            })?;
        let guard = PodGuard {
            api: api.clone(),
            name: name.clone(),
            armed: true,
        };
        events.emit(BuildEvent::Log(format!(
            "kaniko: building in pod {}/{name}",
            self.namespace
        )));
        let last = Mutex::new(created);
        let deadline = tokio::time::sleep(self.timeout);
        let result = tokio::select! {
            r = self.follow(&api, &name, request, context, events, &last) => r,
            () = cancel.cancelled() => Err(cancelled()),
            () = deadline => Err(KanikoError::Timeout {
                image: image.clone(),
                namespace: self.namespace.clone(),
                pod: name.clone(),
                after: self.timeout,
                state: status::describe(&lock(&last)),
            }.into()),
        };
        if let Err(e) = guard.delete().await {
            events.emit(BuildEvent::Log(format!(
                "kaniko: could not delete pod {}/{name}: {}",
                self.namespace,
                self.client.error("deleting the build pod", e)
            )));
        }
        result
    }

    /// Watches the pod until the executor ended, uploading and following the log on the way.
    async fn follow(
        &self,
        api: &Api<Pod>,
        name: &str,
        request: &BuildRequest,
        context: ContextBody,
        events: &EventSink,
        last: &Mutex<Pod>,
    ) -> Result<KanikoOutcome, BuildError> {
        let image = request.image_key.as_str();
        let pod_error = |failure| KanikoError::Pod {
            image: image.to_string(),
            namespace: self.namespace.clone(),
            pod: name.to_string(),
            failure,
        };
        let mut context = Some(context);
        let mut logs: Option<LogFollower> = None;
        let mut version = resource_version(&lock(last));
        loop {
            let params = WatchParams::default().fields(&format!("metadata.name={name}"));
            let stream = api
                .watch(&params, &version)
                .await
                .map_err(|e| self.kube_error(image, format!("watching build pod {name}"), e))?;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream
                .try_next()
                .await
                .map_err(|e| self.kube_error(image, format!("watching build pod {name}"), e))?
            {
                let pod = match event {
                    WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                    WatchEvent::Deleted(_) => {
                        return Err(KanikoError::PodDeleted {
                            image: image.to_string(),
                            namespace: self.namespace.clone(),
                            pod: name.to_string(),
                        }
                        .into());
                    }
                    WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(status) if status.code == 410 => {
                        // The watch fell too far behind: start again from the current pod.
                        let current = api.get(name).await.map_err(|e| {
                            self.kube_error(image, format!("reading build pod {name}"), e)
                        })?;
                        version = resource_version(&current);
                        *lock(last) = current;
                        break;
                    }
                    WatchEvent::Error(status) => {
                        return Err(self
                            .kube_error(
                                image,
                                format!("watching build pod {name}"),
                                kube::Error::Api(status),
                            )
                            .into());
                    }
                };
                version = resource_version(&pod);
                let state = assess(&pod);
                *lock(last) = pod;
                match state {
                    PodState::Waiting => {}
                    PodState::InitRunning => {
                        if let Some(context) = context.take() {
                            self.upload(api, name, image, context, events).await?;
                        }
                    }
                    PodState::KanikoRunning => {
                        if logs.is_none() {
                            logs = Some(LogFollower::start(api, name, events));
                        }
                    }
                    PodState::Finished {
                        exit_code,
                        reason,
                        message,
                    } => {
                        let logs = logs.unwrap_or_else(|| LogFollower::start(api, name, events));
                        let summary = logs.finish().await;
                        if exit_code != 0 {
                            let reason = [reason.filter(|r| r != "Error"), message]
                                .into_iter()
                                .flatten()
                                .filter(|s| !s.trim().is_empty())
                                .collect::<Vec<_>>();
                            return Err(KanikoError::Exit {
                                image: image.to_string(),
                                namespace: self.namespace.clone(),
                                pod: name.to_string(),
                                exit_code,
                                reason: (!reason.is_empty()).then(|| reason.join(": ")),
                                last_lines: summary.tail.into_iter().collect(),
                            }
                            .into());
                        }
                        let references = request.references();
                        for reference in &references {
                            events.emit(BuildEvent::Pushed {
                                tag: reference.clone(),
                                digest: summary.digest.clone(),
                            });
                        }
                        return Ok(KanikoOutcome {
                            references,
                            digest: summary.digest,
                            pod: name.to_string(),
                        });
                    }
                    PodState::Failed(failure) => return Err(pod_error(failure).into()),
                }
            }
        }
    }

    async fn upload(
        &self,
        api: &Api<Pod>,
        name: &str,
        image: &str,
        context: ContextBody,
        events: &EventSink,
    ) -> Result<(), BuildError> {
        match upload::upload(api, name, context).await {
            Ok(bytes) => {
                events.emit(BuildEvent::ContextSent { bytes });
                events.emit(BuildEvent::Log(format!(
                    "kaniko: uploaded the build context ({bytes} bytes)"
                )));
                Ok(())
            }
            Err(upload::UploadError::Context(source)) => Err(BuildError::Context {
                image: image.to_string(),
                source,
            }),
            Err(upload::UploadError::Api(e)) => Err(self
                .kube_error(
                    image,
                    format!("uploading the build context to pod {name}"),
                    e,
                )
                .into()),
            Err(upload::UploadError::Failed(message)) => Err(KanikoError::Upload {
                image: image.to_string(),
                namespace: self.namespace.clone(),
                pod: name.to_string(),
                message,
            }
            .into()),
        }
    }
}

impl ImageBuilder for KanikoBuilder {
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
        super::with_context(request, context, move |context| async move {
            let outcome = self.build_image(request, context, events, cancel).await?;
            Ok(BuildOutcome {
                image_id: None,
                references: outcome.references,
                pushed: true,
                digest: outcome.digest,
            })
        })
        .boxed()
    }
}

impl From<KanikoError> for BuildError {
    fn from(e: KanikoError) -> Self {
        BuildError::Kaniko(Box::new(e))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn resource_version(pod: &Pod) -> String {
    pod.metadata
        .resource_version
        .clone()
        .unwrap_or_else(|| "0".to_string())
}

/// Deletes the pod it names: explicitly with [`PodGuard::delete`], or from `Drop` when the
/// build future is dropped before (so an aborted task leaves no pod behind).
struct PodGuard {
    api: Api<Pod>,
    name: String,
    armed: bool,
}

impl PodGuard {
    fn params() -> DeleteParams {
        DeleteParams::default().grace_period(0)
    }

    async fn delete(mut self) -> Result<(), kube::Error> {
        self.armed = false;
        match self.api.delete(&self.name, &Self::params()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let name = std::mem::take(&mut self.name);
            runtime.spawn(async move {
                let _ = api.delete(&name, &PodGuard::params()).await;
            });
        }
    }
}

/// What the executor's log said, as far as the build result is concerned.
#[derive(Debug, Default)]
struct LogSummary {
    tail: VecDeque<String>,
    digest: Option<String>,
}

/// Follows the executor's log in a task, forwarding every line.
struct LogFollower {
    summary: Arc<Mutex<LogSummary>>,
    task: tokio::task::JoinHandle<()>,
}

impl LogFollower {
    fn start(api: &Api<Pod>, name: &str, events: &EventSink) -> Self {
        let summary = Arc::new(Mutex::new(LogSummary::default()));
        let (api, name, events, shared) = (
            api.clone(),
            name.to_string(),
            events.clone(),
            summary.clone(),
        );
        let task = tokio::spawn(async move {
            let params = LogParams {
                container: Some(KANIKO_CONTAINER.to_string()),
                follow: true,
                ..LogParams::default()
            };
            let stream = match api.log_stream(&name, &params).await {
                Ok(s) => s,
                Err(e) => {
                    events.emit(BuildEvent::Log(format!(
                        "kaniko: cannot follow the executor's log: {e}"
                    )));
                    return;
                }
            };
            let mut lines = std::pin::pin!(stream.lines());
            while let Some(Ok(line)) = lines.next().await {
                let line = line.trim_end_matches('\r').to_string();
                {
                    let mut s = lock(&shared);
                    if let Some(digest) = pushed_digest(&line) {
                        s.digest = Some(digest);
                    }
                    if s.tail.len() == ERROR_TAIL_LINES {
                        s.tail.pop_front();
                    }
                    s.tail.push_back(line.clone());
                }
                events.emit(BuildEvent::Log(line));
            }
        });
        Self { summary, task }
    }

    /// Waits (bounded) for the log to end after the container ended.
    async fn finish(mut self) -> LogSummary {
        if tokio::time::timeout(LOG_DRAIN, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        std::mem::take(&mut *lock(&self.summary))
    }
}

/// The digest in an executor line like `Pushed 127.0.0.1:5000/app@sha256:…`.
fn pushed_digest(line: &str) -> Option<String> {
    let at = line.find("Pushed ")?;
    let rest = &line[at + "Pushed ".len()..];
    let digest = rest.split_whitespace().next()?.split_once("@sha256:")?.1;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BuildConfig, BuildOptions, DockerConfig};

    #[test]
    fn timeouts() {
        let cases = [
            ("90", Some(90)),
            ("90s", Some(90)),
            ("20m", Some(1200)),
            (" 1h ", Some(3600)),
            ("0", None),
            ("-5", None),
            ("5d", None),
            ("m", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_timeout(text).ok().map(|d| d.as_secs()),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn fallback_takes_the_kaniko_block_or_docker_options() {
        let options = BuildOptions {
            target: Some("t".into()),
            ..BuildOptions::default()
        };
        let mut image = ImageConfig {
            build: BuildConfig {
                docker: Some(DockerConfig {
                    options: Some(options.clone()),
                    args: vec!["--squash".into()],
                    ..DockerConfig::default()
                }),
                ..BuildConfig::default()
            },
            ..ImageConfig::default()
        };
        assert_eq!(
            fallback_config(&image),
            KanikoConfig {
                cache: Some(true),
                options: Some(options),
                ..KanikoConfig::default()
            }
        );
        let own = KanikoConfig {
            namespace: Some("builds".into()),
            ..KanikoConfig::default()
        };
        image.build.kaniko = Some(own.clone());
        assert_eq!(fallback_config(&image), own);
    }

    #[test]
    fn digests_from_executor_lines() {
        let digest = "a".repeat(64);
        let line = format!("INFO[0004] Pushed 127.0.0.1:5000/app@sha256:{digest}");
        assert_eq!(pushed_digest(&line), Some(format!("sha256:{digest}")));
        assert_eq!(
            pushed_digest("INFO[0004] Pushed image to 1 destinations"),
            None
        );
        assert_eq!(pushed_digest("Pushed x@sha256:abc"), None);
    }

    #[test]
    fn docker_config_documents() {
        let hub = Registry::of_image("john/app").expect("image");
        let json: serde_json::Value =
            serde_json::from_slice(&docker_config(&hub, &Credential::new("john", "pw")))
                .expect("json");
        assert_eq!(
            json["auths"]["https://index.docker.io/v1/"]["auth"],
            "am9objpwdw=="
        );
        let local = Registry::of_image("127.0.0.1:5000/app").expect("image");
        let json: serde_json::Value = serde_json::from_slice(&docker_config(
            &local,
            &Credential::identity_token("tok\"en"),
        ))
        .expect("json");
        assert_eq!(json["auths"]["127.0.0.1:5000"]["identitytoken"], "tok\"en");
    }
}
