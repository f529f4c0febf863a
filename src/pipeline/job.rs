//! One image's pipeline: Dockerfile → overrides → context scan → decision → verify the
//! skipped tag still exists → build → tag → push → cache commit. Sends typed events; prints
//! nothing. The cache entry is committed only after the image was built and pushed.

use crate::build::cache::{
    BuildOutcome as CacheOutcome, Cache, CachedImage, PendingEntry, PushRecord,
};
use crate::build::context::{self, tar::DockerfileEntry, tar::TarOptions};
use crate::build::decision::{BuilderInputs, Decision, DecisionInputs, FilesInput, Reason};
use crate::build::{dockerfile, tag};
use crate::builder::docker::{ConnectOptions, DockerEnv, resolve_endpoint};
use crate::builder::kaniko::{self, KanikoBuilder};
use crate::builder::{
    BuildEvent, BuildRequest, ContextBody, CustomBuilder, DaemonError, DockerApiBuilder,
    DockerCliBuilder, DockerDaemon, EventSink, PushRequest,
};
use crate::config::model::KanikoConfig;
use crate::config::{BuilderKind, ImageConfig};
use crate::exit::ExitCode;
use crate::kube::local::{ImageDelivery, KindLoad, LocalCluster, kind_load, minikube_docker_env};
use crate::kube::tools::Tools;
use crate::kube::{KubeError, KubeSettings, LazyKubeClient};
use crate::pipeline::events::{Event, ImageEvent, Stage, Status};
use crate::pipeline::plan::ImagePlan;
use crate::registry::client::RegistryClient;
use crate::registry::credentials::{Credential, DockerConfig};
use crate::registry::reference::{Reference, Registry};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

/// Settings of one run that every job shares.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Directory of `devspace.yaml`.
    pub root: PathBuf,
    /// Cache bucket (`profiles.<name>` in generated.yaml): the applied profiles, or "".
    pub profile_key: String,
    pub force_build: bool,
    pub skip_push: bool,
    /// `--dry-run`: decide only; never contact Docker or a registry.
    pub dry_run: bool,
    /// Cluster of kaniko builds (`--kube-context`, `-n`); read only when one is needed.
    pub kube: KubeSettings,
    /// DevSpace 6 config: DevSpace 6's cache layout (`.devspace/cache.yaml`).
    pub devspace6: bool,
    /// The local cluster deploy/dev deliver to (`None` for `devspace build`, like DevSpace 4,
    /// and for remote clusters): decides per image whether to push.
    pub local: Option<LocalTarget>,
}

/// A cluster on this machine and whether the `kind` CLI is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    pub cluster: LocalCluster,
    pub kind_installed: bool,
}

/// How `plan`'s image reaches the cluster: only daemon builds can skip the registry (kaniko
/// pushes while building; custom builds are the user's business).
fn delivery(plan: &ImagePlan, settings: &RunSettings) -> ImageDelivery {
    let Some(local) = &settings.local else {
        return ImageDelivery::Push;
    };
    let build = &plan.config.build;
    let prefer_minikube = match plan.builder {
        BuilderKind::Docker => build.docker.as_ref().and_then(|d| d.prefer_minikube),
        BuilderKind::BuildKit => build.build_kit.as_ref().and_then(|b| b.prefer_minikube),
        _ => return ImageDelivery::Push,
    };
    local
        .cluster
        .delivery(prefer_minikube != Some(false), local.kind_installed)
}

/// The one line saying how a locally delivered image reached `cluster`; `None` when pushed.
fn delivery_note(cluster: &LocalCluster, delivery: &ImageDelivery, built: bool) -> Option<String> {
    let text = match (cluster, delivery, built) {
        (_, ImageDelivery::Push, _) => return None,
        (LocalCluster::Minikube { profile }, _, true) => {
            format!(
                "minikube profile \"{profile}\": built with its Docker daemon instead of pushing"
            )
        }
        (LocalCluster::Minikube { profile }, _, false) => {
            format!("minikube profile \"{profile}\": image found in its Docker daemon; not pushed")
        }
        (LocalCluster::Kind { cluster }, ImageDelivery::KindLoad { .. }, true) => {
            format!("kind cluster \"{cluster}\": loaded image into the nodes instead of pushing")
        }
        (LocalCluster::Kind { cluster }, _, false) => {
            format!(
                "kind cluster \"{cluster}\": image unchanged; not pushed (loaded into the nodes when built)"
            )
        }
        (cluster, _, _) => format!("{cluster}: shares the local Docker daemon; not pushed"),
    };
    Some(text)
}

/// Connects to the Docker daemon inside minikube `profile` (`minikube docker-env`).
async fn connect_minikube(profile: &str) -> Result<DockerDaemon, DaemonError> {
    let env = minikube_docker_env(&Tools::from_env(), profile)
        .await
        .map_err(|e| DaemonError::LocalCluster(Box::new(e)))?;
    let get = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let docker_env = DockerEnv {
        docker_host: get("DOCKER_HOST"),
        docker_tls_verify: get("DOCKER_TLS_VERIFY"),
        docker_cert_path: get("DOCKER_CERT_PATH"),
        ..DockerEnv::from_process()
    };
    let endpoint = resolve_endpoint(&docker_env)?;
    DockerDaemon::connect_to(endpoint, ConnectOptions::default()).await
}

/// What every job shares: settings, the cache, the lazily connected daemon, credentials.
pub struct Shared {
    pub settings: RunSettings,
    pub cache: Cache,
    daemon: OnceCell<Result<DockerDaemon, Arc<DaemonError>>>,
    /// minikube's daemon, for images built against it.
    minikube_daemon: OnceCell<Result<DockerDaemon, Arc<DaemonError>>>,
    kube: LazyKubeClient,
    credentials: OnceCell<Result<DockerConfig, String>>,
    registry: OnceCell<Result<RegistryClient, String>>,
    /// Credentials resolved per registry, so a helper runs once per registry and run.
    resolved: tokio::sync::Mutex<HashMap<Registry, Option<Credential>>>,
}

impl Shared {
    /// Shared state for a run; nothing is connected until a job needs it.
    pub fn new(settings: RunSettings) -> Self {
        let cache = Cache::open_for(&settings.root, settings.devspace6);
        Shared {
            kube: LazyKubeClient::new(settings.kube.clone()),
            settings,
            cache,
            daemon: OnceCell::new(),
            minikube_daemon: OnceCell::new(),
            credentials: OnceCell::new(),
            registry: OnceCell::new(),
            resolved: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The daemon, connected (and pinged, with a short timeout) once per run.
    async fn connect_daemon(&self) -> Result<DockerDaemon, Arc<DaemonError>> {
        self.daemon
            .get_or_init(|| async { DockerDaemon::connect().await.map_err(Arc::new) })
            .await
            .clone()
    }

    /// The daemon `plan` builds with: minikube's when it shares minikube's daemon.
    async fn daemon_for(&self, plan: &ImagePlan) -> Result<DockerDaemon, Arc<DaemonError>> {
        match (&self.settings.local, delivery(plan, &self.settings)) {
            (
                Some(LocalTarget {
                    cluster: LocalCluster::Minikube { profile },
                    ..
                }),
                ImageDelivery::SharedDaemon,
            ) => self
                .minikube_daemon
                .get_or_init(|| async { connect_minikube(profile).await.map_err(Arc::new) })
                .await
                .clone(),
            _ => self.connect_daemon().await,
        }
    }

    async fn daemon(&self) -> Result<DockerDaemon, ImageFailure> {
        self.connect_daemon().await.map_err(|e| daemon_failure(&e))
    }

    /// The cluster client for kaniko builds, built on first use.
    async fn kube_client(&self) -> Result<&crate::kube::KubeClient, ImageFailure> {
        self.kube.get().await.map_err(|e| ImageFailure {
            exit: match e {
                KubeError::Unreachable { .. } | KubeError::NoKubeconfig { .. } => {
                    ExitCode::Unreachable
                }
                _ => ExitCode::Failure,
            },
            message: e.to_string(),
            hints: Vec::new(),
            last_lines: Vec::new(),
        })
    }

    async fn docker_config(&self) -> Result<&DockerConfig, ImageFailure> {
        let res = self
            .credentials
            .get_or_init(|| async { DockerConfig::load().map_err(|e| e.to_string()) })
            .await;
        res.as_ref().map_err(|e| ImageFailure::plain(e.clone()))
    }

    async fn registry_client(&self) -> Result<&RegistryClient, ImageFailure> {
        let res = self
            .registry
            .get_or_init(|| async {
                RegistryClient::new(Default::default()).map_err(|e| e.to_string())
            })
            .await;
        res.as_ref().map_err(|e| ImageFailure::plain(e.clone()))
    }

    /// Credentials for `registry`, resolved like Docker (helpers run on a blocking thread).
    async fn credential_for(
        &self,
        registry: &Registry,
    ) -> Result<Option<Credential>, ImageFailure> {
        // Held across the lookup: parallel images of one registry wait for one helper run.
        let mut resolved = self.resolved.lock().await;
        if let Some(c) = resolved.get(registry) {
            return Ok(c.clone());
        }
        let config = self.docker_config().await?.clone();
        let reg = registry.clone();
        let credential = tokio::task::spawn_blocking(move || config.resolve(&reg))
            .await
            .map_err(|e| ImageFailure::plain(format!("credential lookup failed: {e}")))?
            .map_err(|e| ImageFailure {
                message: e.to_string(),
                hints: e.hint().into_iter().collect(),
                last_lines: Vec::new(),
                exit: ExitCode::Auth,
            })?;
        resolved.insert(registry.clone(), credential.clone());
        Ok(credential)
    }
}

fn daemon_failure(e: &DaemonError) -> ImageFailure {
    ImageFailure {
        message: e.to_string(),
        hints: e.hint().into_iter().collect(),
        last_lines: Vec::new(),
        exit: e.exit_code(),
    }
}

fn disables_fallback(plan: &ImagePlan) -> bool {
    plan.config
        .build
        .docker
        .as_ref()
        .and_then(|d| d.disable_fallback)
        == Some(true)
}

/// Whether an unreachable daemon sends this image to kaniko (DevSpace: docker builder,
/// unless `build.docker.disableFallback`).
fn kaniko_fallback(plan: &ImagePlan, e: &DaemonError) -> bool {
    plan.builder == BuilderKind::Docker
        && matches!(e, DaemonError::Unreachable { .. })
        && !disables_fallback(plan)
}

/// The failure for a daemon error, saying when `disableFallback` kept kaniko out.
fn daemon_failure_for(plan: &ImagePlan, e: &DaemonError) -> ImageFailure {
    let mut failure = daemon_failure(e);
    if plan.builder == BuilderKind::Docker
        && matches!(e, DaemonError::Unreachable { .. })
        && disables_fallback(plan)
    {
        failure.message = format!(
            "image {}: {e}; build.docker.disableFallback is set, so it is not built with kaniko instead",
            plan.key
        );
        failure
            .hints
            .push("start the Docker daemon, or remove `disableFallback` to build in the cluster with kaniko".into());
    }
    failure
}

/// A successful image job.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSuccess {
    pub status: Status,
    /// The decision's reason (`skip (no change)`, `rebuild: ...`).
    pub reason: String,
    /// Tags of the image now (fresh when built, recorded when skipped).
    pub tags: Vec<String>,
    pub digest: Option<String>,
    pub pushed: bool,
    /// (files, bytes) of the context, when scanned.
    pub context: Option<(u64, u64)>,
}

/// A failed image job: the message, hints, the last log lines and the exit code class.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFailure {
    pub message: String,
    pub hints: Vec<String>,
    pub last_lines: Vec<String>,
    pub exit: ExitCode,
}

impl ImageFailure {
    fn plain(message: impl Into<String>) -> Self {
        ImageFailure {
            message: message.into(),
            hints: Vec::new(),
            last_lines: Vec::new(),
            exit: ExitCode::Failure,
        }
    }
}

/// Sends events for one image.
#[derive(Clone)]
pub struct Emitter {
    key: String,
    tx: mpsc::UnboundedSender<Event>,
}

impl Emitter {
    /// An emitter for image `key` into the dispatcher's channel.
    pub fn new(key: &str, tx: mpsc::UnboundedSender<Event>) -> Self {
        Emitter {
            key: key.to_string(),
            tx,
        }
    }

    fn send(&self, kind: ImageEvent) {
        let _ = self.tx.send(Event {
            image: self.key.clone(),
            kind,
        });
    }

    /// Builder events → pipeline events.
    fn sink(&self) -> EventSink {
        let this = self.clone();
        EventSink::new(move |ev| match ev {
            BuildEvent::Log(line) => this.send(ImageEvent::Log(line)),
            BuildEvent::Step { n, m, text } => this.send(ImageEvent::Step { n, total: m, text }),
            BuildEvent::Pushing { tag } => this.send(ImageEvent::Log(format!("pushing {tag}"))),
            BuildEvent::PushProgress { .. } | BuildEvent::ContextSent { .. } => {}
            BuildEvent::Pushed { tag, digest } => this.send(ImageEvent::Pushed { tag, digest }),
        })
    }
}

/// The inputs computed before deciding.
struct Prepared {
    inputs: DecisionInputs,
    /// Final Dockerfile text and how it enters the tar (docker/kaniko only).
    dockerfile: Option<(String, DockerfileEntry, String)>,
    scan: Option<context::ContextScan>,
}

/// Whether this image is pushed in this run.
fn wants_push(image: &ImageConfig, kind: BuilderKind, settings: &RunSettings) -> bool {
    // Kaniko pushes as part of the build: the registry is the only place its image exists.
    kind == BuilderKind::Kaniko
        || (kind != BuilderKind::Custom
            && !settings.skip_push
            && image.build.docker.as_ref().and_then(|d| d.skip_push) != Some(true)
            && image.build.build_kit.as_ref().and_then(|b| b.skip_push) != Some(true))
}

fn prepare(
    plan: &ImagePlan,
    fresh_from: &HashMap<String, String>,
    settings: &RunSettings,
    push: bool,
    cancel: &CancellationToken,
) -> Result<Prepared, ImageFailure> {
    let image = &plan.config;
    let root = &settings.root;
    match plan.builder {
        BuilderKind::Custom => {
            let custom = image.build.custom.clone().unwrap_or_default();
            let on_change = if custom.on_change.is_empty() {
                None
            } else {
                let files = crate::build::on_change::on_change_files(root, &custom.on_change)
                    .map_err(|e| ImageFailure::plain(format!("image {}: {e}", plan.key)))?;
                Some(FilesInput::from_files(files))
            };
            Ok(Prepared {
                inputs: DecisionInputs::new(image, root, push, BuilderInputs::Custom { on_change }),
                dockerfile: None,
                scan: None,
            })
        }
        _ => {
            let df_path = &image.dockerfile;
            let text = std::fs::read_to_string(df_path).map_err(|e| ImageFailure {
                message: format!(
                    "image {}: cannot read Dockerfile {}: {e}",
                    plan.key,
                    df_path.display()
                ),
                hints: vec![format!(
                    "set `images.{}.dockerfile` in devspace.yaml (paths are relative to {})",
                    plan.key,
                    root.display()
                )],
                last_lines: Vec::new(),
                exit: ExitCode::Failure,
            })?;
            let options = image.options().cloned().unwrap_or_default();
            let dferr = |e: dockerfile::DockerfileError| {
                ImageFailure::plain(format!("image {}: {e}", plan.key))
            };
            let text = dockerfile::rewrite_from(df_path, &text, &options.build_args, fresh_from)
                .map_err(dferr)?;
            let overrides = dockerfile::Overrides {
                entrypoint: image.entrypoint.clone(),
                cmd: image.cmd.clone(),
                append_instructions: image.append_dockerfile_instructions.clone(),
                target: options.target.clone(),
            };
            let final_text =
                dockerfile::apply_overrides(df_path, &text, &overrides).map_err(dferr)?;
            let scan = context::scan_context_until(
                &image.context,
                df_path,
                &root.join(".devspace"),
                cancel,
            )
            .map_err(|e| ImageFailure {
                exit: match e {
                    context::ContextError::Cancelled => ExitCode::Interrupted,
                    _ => ExitCode::Failure,
                },
                message: format!("image {}: {e}", plan.key),
                hints: Vec::new(),
                last_lines: Vec::new(),
            })?;
            // The per-file list is produced only when a decision names files or a commit
            // records them: a no-change run never builds it.
            let builder = BuilderInputs::dockerfile_with(
                &final_text,
                image.entrypoint.as_deref(),
                image.cmd.as_deref(),
                FilesInput::from_scan(&scan),
            );
            let (entry, name) = match &scan.dockerfile_rel {
                Some(rel) => (
                    DockerfileEntry::Replace {
                        rel_path: rel.clone(),
                        content: final_text.clone().into(),
                    },
                    rel.clone(),
                ),
                None => {
                    let name = context::tar::random_dockerfile_name();
                    (
                        DockerfileEntry::Extra {
                            name: name.clone(),
                            content: final_text.clone().into(),
                        },
                        name,
                    )
                }
            };
            Ok(Prepared {
                inputs: DecisionInputs::new(image, root, push, builder),
                dockerfile: Some((final_text, entry, name)),
                scan: Some(scan),
            })
        }
    }
}

/// The recorded tags of a cached image (all tags when our record has them).
fn recorded_tags(cached: Option<&CachedImage>) -> Vec<String> {
    let Some(c) = cached else { return Vec::new() };
    match &c.record {
        Some(r) if !r.tags.is_empty() => r.tags.clone(),
        _ => c.entry.tag.iter().cloned().collect(),
    }
}

/// Runs one image's pipeline. `deps` holds the results of the images it builds `FROM`.
pub async fn run_image(
    shared: Arc<Shared>,
    plan: ImagePlan,
    deps: IndexMap<String, (String, ImageSuccess)>,
    emit: Emitter,
    cancel: CancellationToken,
) -> Result<ImageSuccess, ImageFailure> {
    let settings = &shared.settings;
    let image = plan.config.clone();
    let delivery = delivery(&plan, settings);
    let push = wants_push(&image, plan.builder, settings) && delivery == ImageDelivery::Push;
    emit.send(ImageEvent::Stage(Stage::Hashing));

    let fresh_from: HashMap<String, String> = deps
        .values()
        .filter_map(|(repo, s)| {
            s.tags
                .first()
                .map(|t| (repo.clone(), format!("{repo}:{t}")))
        })
        .collect();
    let prepared = {
        let p = plan.clone();
        let settings = settings.clone();
        let stop = cancel.clone();
        tokio::task::spawn_blocking(move || prepare(&p, &fresh_from, &settings, push, &stop))
            .await
            .map_err(|e| ImageFailure::plain(format!("image {}: {e}", plan.key)))??
    };
    // Ctrl-C during the scan: nothing more for this image (no "building" after "interrupted").
    if cancel.is_cancelled() {
        return Err(ImageFailure {
            message: format!("image {}: cancelled", plan.key),
            hints: Vec::new(),
            last_lines: Vec::new(),
            exit: ExitCode::Interrupted,
        });
    }
    let context_size = prepared
        .scan
        .as_ref()
        .map(|s| (s.file_count as u64, s.total_bytes));
    let (mut decision, cached) = {
        let (d, c) = shared.cache.decide(
            &settings.profile_key,
            &plan.key,
            &prepared.inputs,
            settings.force_build,
        );
        (d, c)
    };
    // A dependency that was rebuilt in this run means a new base: rebuild too.
    if !decision.rebuild
        && let Some((dep_key, _)) = deps.iter().find(|(_, (_, s))| s.status == Status::Built)
    {
        decision = Decision {
            rebuild: true,
            reason: Reason::ImageConfigChanged {
                fields: vec![format!("FROM {dep_key}")],
            },
        };
    }
    let mut push_only = decision.push_only();
    let mut reason = decision.to_string();
    let mut tags = recorded_tags(cached.as_ref());

    if settings.dry_run {
        emit.send(ImageEvent::Decision {
            rebuild: decision.rebuild || push_only,
            reason: reason.clone(),
        });
        let tags = if decision.rebuild {
            tag::resolve_tags(
                &image.image,
                &tag::configured_tags(&image.tags, image.devspace6, &mut rand::rng()),
                None,
                image.tags_append_random == Some(true),
                &mut rand::rng(),
            )
            .unwrap_or_default()
        } else {
            tags
        };
        return Ok(ImageSuccess {
            status: if decision.rebuild || push_only {
                Status::WouldBuild
            } else {
                Status::Skipped
            },
            reason,
            tags,
            digest: None,
            pushed: false,
            context: context_size,
        });
    }

    // Trust, but verify: a skipped image must still exist where it is used.
    if !decision.rebuild && plan.builder != BuilderKind::Custom {
        emit.send(ImageEvent::Stage(Stage::Verifying));
        let first = tags.first().cloned().unwrap_or_default();
        let reference = format!("{}:{first}", image.image);
        if push && !push_only {
            match registry_has(&shared, &image.image, &first).await {
                Ok(true) => {}
                Ok(false) => {
                    // Without a daemon (kaniko, or Docker falling back) no local copy exists.
                    let local = match plan.builder {
                        BuilderKind::Kaniko => false,
                        _ => match shared.daemon_for(&plan).await {
                            Ok(daemon) => daemon.image_exists(&reference).await.unwrap_or(false),
                            Err(e) if kaniko_fallback(&plan, &e) => false,
                            Err(e) => return Err(daemon_failure_for(&plan, &e)),
                        },
                    };
                    if local {
                        push_only = true;
                        reason = "push: image missing in registry".to_string();
                    } else {
                        decision = Decision::missing_in_registry();
                        reason = decision.to_string();
                    }
                }
                Err(e) => return Err(e),
            }
        } else {
            let exists = match shared.daemon_for(&plan).await {
                Ok(daemon) => daemon
                    .image_exists(&reference)
                    .await
                    .map_err(|e| ImageFailure {
                        message: e.to_string(),
                        hints: e.hint().into_iter().collect(),
                        last_lines: Vec::new(),
                        exit: e.exit_code(),
                    })?,
                // A skipped image needs no fallback: with no daemon to ask, trust the cache.
                Err(e) if kaniko_fallback(&plan, &e) => true,
                Err(e) => return Err(daemon_failure_for(&plan, &e)),
            };
            if !exists {
                push_only = false;
                decision = Decision::missing_in_daemon();
                reason = decision.to_string();
            }
        }
    }
    emit.send(ImageEvent::Decision {
        rebuild: decision.rebuild || push_only,
        reason: reason.clone(),
    });

    if !decision.rebuild && !push_only {
        if let Some(note) = settings
            .local
            .as_ref()
            .and_then(|l| delivery_note(&l.cluster, &delivery, false))
        {
            emit.send(ImageEvent::Note(note));
        }
        return Ok(ImageSuccess {
            status: Status::Skipped,
            reason,
            digest: cached
                .as_ref()
                .and_then(|c| c.record.as_ref())
                .and_then(|r| r.push.as_ref())
                .and_then(|p| p.digest.clone()),
            pushed: false,
            tags,
            context: context_size,
        });
    }

    let pending = PendingEntry::new(
        &settings.profile_key,
        &plan.key,
        &image.image,
        prepared.inputs.clone(),
    );
    let sink = emit.sink();
    // Kaniko pushes while it builds: `Some(digest)` then, and no separate push.
    let mut pushed_by_build = None;
    if decision.rebuild {
        tags = tag::resolve_tags(
            &image.image,
            &tag::configured_tags(&image.tags, image.devspace6, &mut rand::rng()),
            None,
            image.tags_append_random == Some(true),
            &mut rand::rng(),
        )
        .map_err(|e| ImageFailure::plain(format!("image {}: {e}", plan.key)))?;
        if let Some(prev) = cached.as_ref().and_then(|c| c.entry.tag.clone())
            && tags.first() == Some(&prev)
        {
            emit.send(ImageEvent::Note(format!(
                "rebuilt image {}:{prev} has the same tag as the last build; a deployment may not pick it up",
                image.image
            )));
        }
        emit.send(ImageEvent::Stage(Stage::Building));
        pushed_by_build = build(&shared, &plan, &tags, prepared, &emit, &cancel).await?;
        if pushed_by_build.is_none() {
            deliver_locally(settings, &delivery, &image.image, &tags, &emit).await?;
        }
    }

    let mut digest = None;
    let mut pushed = false;
    if let Some(kaniko_digest) = pushed_by_build {
        digest = kaniko_digest;
        pushed = true;
    } else if push {
        emit.send(ImageEvent::Stage(Stage::Pushing));
        digest = push_tags(&shared, &plan, &tags, &sink, &cancel).await?;
        pushed = true;
    }
    let registry = Registry::of_image(&image.image)
        .map(|r| r.host().to_string())
        .unwrap_or_default();
    shared
        .cache
        .commit(
            pending,
            CacheOutcome {
                tags: tags.clone(),
                push: pushed.then(|| PushRecord {
                    registry,
                    digest: digest.clone(),
                }),
            },
        )
        .map_err(|e| ImageFailure::plain(format!("image {}: {e}", plan.key)))?;
    Ok(ImageSuccess {
        status: if decision.rebuild {
            Status::Built
        } else {
            Status::Pushed
        },
        reason,
        tags,
        digest,
        pushed,
        context: context_size,
    })
}

/// Makes a freshly built image visible to a local cluster (`kind load`) and says so.
async fn deliver_locally(
    settings: &RunSettings,
    delivery: &ImageDelivery,
    repository: &str,
    tags: &[String],
    emit: &Emitter,
) -> Result<(), ImageFailure> {
    let Some(local) = &settings.local else {
        return Ok(());
    };
    if let ImageDelivery::KindLoad { cluster } = delivery {
        let references: Vec<String> = tags.iter().map(|t| format!("{repository}:{t}")).collect();
        let loaded = kind_load(&Tools::from_env(), &references, cluster)
            .await
            .map_err(|e| ImageFailure::plain(format!("image {repository}: {e}")))?;
        if loaded == KindLoad::KindMissing {
            return Err(ImageFailure {
                message: format!(
                    "image {repository}: cannot load it into kind cluster `{cluster}`: `kind` is no longer in PATH"
                ),
                hints: vec!["install kind, or push by removing the kind context".into()],
                last_lines: Vec::new(),
                exit: ExitCode::Failure,
            });
        }
    }
    if let Some(note) = delivery_note(&local.cluster, delivery, true) {
        emit.send(ImageEvent::Note(note));
    }
    Ok(())
}

/// Whether `image:tag` exists in its registry, asked with the user's credentials.
async fn registry_has(shared: &Shared, image: &str, tag: &str) -> Result<bool, ImageFailure> {
    let reference = Reference::parse(&format!("{image}:{tag}"))
        .map_err(|e| ImageFailure::plain(format!("image {image}: {e}")))?;
    let registry = reference.registry();
    let credential = shared.credential_for(&registry).await?;
    let client = shared.registry_client().await?;
    client
        .manifest_exists(&reference, credential.as_ref())
        .await
        .map(|d| d.is_some())
        .map_err(|e| ImageFailure {
            message: e.to_string(),
            hints: e.hint().into_iter().collect(),
            last_lines: Vec::new(),
            exit: e.exit_code(),
        })
}

/// Builds the image; `Some(digest)` when the builder (kaniko) already pushed it.
async fn build(
    shared: &Shared,
    plan: &ImagePlan,
    tags: &[String],
    prepared: Prepared,
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<Option<Option<String>>, ImageFailure> {
    let sink = &emit.sink();
    let image = &plan.config;
    let options = image.options().cloned().unwrap_or_default();
    let mut labels = IndexMap::new();
    labels.insert("dev.devspace.image-key".to_string(), plan.key.clone());
    let request = BuildRequest {
        image_key: plan.key.clone(),
        repository: image.image.clone(),
        tags: tags.to_vec(),
        dockerfile: prepared
            .dockerfile
            .as_ref()
            .map(|(_, _, name)| name.clone())
            .unwrap_or_default(),
        build_args: options.build_args.clone(),
        target: options.target.clone(),
        network: options.network.clone(),
        labels,
        registry_auths: HashMap::new(),
    };
    match plan.builder {
        BuilderKind::Custom => {
            let custom = image.build.custom.clone().unwrap_or_default();
            CustomBuilder::new(custom, shared.settings.root.clone())
                .run(&request, sink, cancel)
                .await
                .map_err(build_failure)?;
        }
        _ => {
            let scan = prepared
                .scan
                .ok_or_else(|| ImageFailure::plain("no context"))?;
            let entry = prepared
                .dockerfile
                .map(|(_, entry, _)| entry)
                .unwrap_or_default();
            let body: ContextBody = Box::pin(context::tar::context_tar_stream(
                scan.root.clone(),
                scan.entries.clone(),
                TarOptions {
                    dockerfile: entry,
                    ..TarOptions::default()
                },
            ));
            if plan.builder == BuilderKind::Kaniko {
                let config = image.build.kaniko.clone().unwrap_or_default();
                return build_kaniko(shared, plan, config, &request, body, emit, cancel, None)
                    .await
                    .map(Some);
            }
            let daemon = match shared.daemon_for(plan).await {
                Ok(daemon) => daemon,
                Err(e) if kaniko_fallback(plan, &e) => {
                    let config = kaniko::fallback_config(image);
                    return build_kaniko(
                        shared,
                        plan,
                        config,
                        &request,
                        body,
                        emit,
                        cancel,
                        Some(&e),
                    )
                    .await
                    .map(Some);
                }
                Err(e) => return Err(daemon_failure_for(plan, &e)),
            };
            let docker = image.build.docker.clone().unwrap_or_default();
            let (cli, buildkit, args) = match &image.build.build_kit {
                Some(bk) if plan.builder == BuilderKind::BuildKit => {
                    if bk.in_cluster.is_some() {
                        return Err(ImageFailure::plain(format!(
                            "image {}: build.buildKit.inCluster is not supported",
                            plan.key
                        )));
                    }
                    (true, true, bk.args.clone())
                }
                _ => (
                    docker.use_build_kit == Some(true)
                        || docker.use_cli == Some(true)
                        || !docker.args.is_empty(),
                    docker.use_build_kit == Some(true),
                    docker.args.clone(),
                ),
            };
            if cli {
                DockerCliBuilder::new(buildkit, args)
                    .with_daemon(daemon)
                    .run(&request, body, sink, cancel)
                    .await
                    .map_err(build_failure)?;
            } else {
                DockerApiBuilder::new(daemon)
                    .run(&request, body, sink, cancel)
                    .await
                    .map_err(build_failure)?;
            }
        }
    }
    Ok(None)
}

/// Builds with kaniko in the cluster; `fallback_from` is the daemon error that sent a Docker
/// image here (said in one note). Returns the digest the executor reported.
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one build; a struct would only rename them"
)]
async fn build_kaniko(
    shared: &Shared,
    plan: &ImagePlan,
    config: KanikoConfig,
    request: &BuildRequest,
    body: ContextBody,
    emit: &Emitter,
    cancel: &CancellationToken,
    fallback_from: Option<&DaemonError>,
) -> Result<Option<String>, ImageFailure> {
    let result = run_kaniko(
        shared,
        plan,
        config,
        request,
        body,
        emit,
        cancel,
        fallback_from,
    )
    .await;
    match (result, fallback_from) {
        // Neither Docker nor the cluster answers: say both, not just the second.
        (Err(failure), Some(daemon)) if failure.exit == ExitCode::Unreachable => {
            let mut hints = daemon.hint().into_iter().collect::<Vec<_>>();
            hints.extend(failure.hints);
            hints.push(
                "set `build.docker.disableFallback: true` to fail at once when Docker is not running"
                    .to_string(),
            );
            Err(ImageFailure {
                message: format!(
                    "image {}: {daemon}; the kaniko fallback failed too: {}",
                    plan.key, failure.message
                ),
                hints,
                last_lines: failure.last_lines,
                exit: ExitCode::Unreachable,
            })
        }
        (result, _) => result,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one build; a struct would only rename them"
)]
async fn run_kaniko(
    shared: &Shared,
    plan: &ImagePlan,
    config: KanikoConfig,
    request: &BuildRequest,
    body: ContextBody,
    emit: &Emitter,
    cancel: &CancellationToken,
    fallback_from: Option<&DaemonError>,
) -> Result<Option<String>, ImageFailure> {
    let client = shared.kube_client().await?;
    let timeout = kaniko::timeout_from_env().map_err(ImageFailure::plain)?;
    let wants_credentials = config.pull_secret.as_deref().is_none_or(str::is_empty)
        && config.skip_pull_secret_mount != Some(true);
    let credential = match Registry::of_image(&plan.config.image) {
        Ok(registry) if wants_credentials => shared.credential_for(&registry).await?,
        _ => None,
    };
    let builder = KanikoBuilder::new(client.clone(), config)
        .with_timeout(timeout)
        .with_credential(credential);
    if let Some(DaemonError::Unreachable { endpoint, .. }) = fallback_from {
        emit.send(ImageEvent::Note(format!(
            "Docker daemon not reachable at {endpoint}: building with kaniko in namespace {} (context {})",
            builder.namespace(),
            client.context()
        )));
    }
    if shared.settings.skip_push {
        emit.send(ImageEvent::Note(
            "kaniko pushes as part of the build: --skip-push does not apply".to_string(),
        ));
    }
    builder
        .build_image(request, body, &emit.sink(), cancel)
        .await
        .map(|outcome| outcome.digest)
        .map_err(build_failure)
}

fn build_failure(e: crate::builder::BuildError) -> ImageFailure {
    ImageFailure {
        message: e.to_string(),
        hints: e.hint().into_iter().collect(),
        last_lines: e.last_lines().to_vec(),
        exit: e.exit_code(),
    }
}

async fn push_tags(
    shared: &Shared,
    plan: &ImagePlan,
    tags: &[String],
    sink: &EventSink,
    cancel: &CancellationToken,
) -> Result<Option<String>, ImageFailure> {
    let image = &plan.config.image;
    let registry = Registry::of_image(image)
        .map_err(|e| ImageFailure::plain(format!("image {}: {image}: {e}", plan.key)))?;
    let credential = shared.credential_for(&registry).await?;
    if let Some(c) = &credential
        && !c.survives_bollard_encoding(&registry)
    {
        // bollard encodes X-Registry-Auth as standard base64, the daemon decodes URL-safe
        // base64 and silently drops what it cannot read: refuse rather than push anonymously.
        return Err(ImageFailure {
            message: format!(
                "image {}: the credentials for {} cannot be passed to the Docker daemon intact (a known encoding bug with some characters such as `~`, `?` or `>`)",
                plan.key,
                registry.display_name()
            ),
            hints: vec![
                "change the password, or push with `docker push` after building with --skip-push"
                    .into(),
            ],
            last_lines: Vec::new(),
            exit: ExitCode::Auth,
        });
    }
    let credentials = credential.map(|c| c.to_docker_credentials(&registry));
    let daemon = shared.daemon().await?;
    let pushed = daemon
        .push(
            &PushRequest {
                image_key: plan.key.clone(),
                repository: image.clone(),
                tags: tags.to_vec(),
                credentials,
            },
            sink,
            cancel,
        )
        .await
        .map_err(|e| ImageFailure {
            message: e.to_string(),
            hints: e.hint().into_iter().collect(),
            last_lines: Vec::new(),
            exit: e.exit_code(),
        })?;
    Ok(pushed.into_iter().find_map(|p| p.digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BuildKitConfig, DockerConfig as DockerBuildConfig};

    fn plan(builder: BuilderKind, prefer_minikube: Option<bool>) -> ImagePlan {
        let mut config = ImageConfig::default();
        match builder {
            BuilderKind::BuildKit => {
                config.build.build_kit = Some(BuildKitConfig {
                    prefer_minikube,
                    ..BuildKitConfig::default()
                })
            }
            _ => {
                config.build.docker = Some(DockerBuildConfig {
                    prefer_minikube,
                    ..DockerBuildConfig::default()
                })
            }
        }
        ImagePlan {
            key: "app".into(),
            config,
            builder,
            depends_on: Vec::new(),
        }
    }

    fn settings(cluster: Option<LocalCluster>, kind_installed: bool) -> RunSettings {
        RunSettings {
            local: cluster.map(|cluster| LocalTarget {
                cluster,
                kind_installed,
            }),
            ..RunSettings::default()
        }
    }

    fn minikube() -> LocalCluster {
        LocalCluster::Minikube {
            profile: "minikube".into(),
        }
    }

    fn kind() -> LocalCluster {
        LocalCluster::Kind {
            cluster: "dev".into(),
        }
    }

    #[test]
    fn delivery_per_image() {
        let kind_load = ImageDelivery::KindLoad {
            cluster: "dev".into(),
        };
        let cases = [
            // (cluster, kind installed, builder, preferMinikube, expected)
            (None, true, BuilderKind::Docker, None, ImageDelivery::Push),
            (
                Some(minikube()),
                false,
                BuilderKind::Docker,
                None,
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Docker,
                Some(true),
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Docker,
                Some(false),
                ImageDelivery::Push,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::BuildKit,
                None,
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::BuildKit,
                Some(false),
                ImageDelivery::Push,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Kaniko,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Custom,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(kind()),
                true,
                BuilderKind::Docker,
                None,
                kind_load.clone(),
            ),
            (
                Some(kind()),
                false,
                BuilderKind::Docker,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(kind()),
                true,
                BuilderKind::Kaniko,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(LocalCluster::DockerDesktop),
                false,
                BuilderKind::Docker,
                None,
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(LocalCluster::K3d {
                    cluster: "x".into(),
                }),
                true,
                BuilderKind::Docker,
                None,
                ImageDelivery::Push,
            ),
        ];
        for (cluster, kind_installed, builder, prefer, expected) in cases {
            let got = delivery(
                &plan(builder, prefer),
                &settings(cluster.clone(), kind_installed),
            );
            assert_eq!(
                got, expected,
                "{cluster:?} kind={kind_installed} {builder:?} {prefer:?}"
            );
        }
    }

    #[test]
    fn push_is_skipped_only_for_local_delivery() {
        let image = plan(BuilderKind::Docker, None);
        let local = settings(Some(kind()), true);
        let remote = settings(None, true);
        let pushes = |s: &RunSettings| {
            wants_push(&image.config, image.builder, s)
                && delivery(&image, s) == ImageDelivery::Push
        };
        assert!(!pushes(&local));
        assert!(pushes(&remote));
    }

    #[test]
    fn delivery_notes() {
        let kind_load = ImageDelivery::KindLoad {
            cluster: "dev".into(),
        };
        let cases = [
            (kind(), ImageDelivery::Push, true, None),
            (
                kind(),
                kind_load.clone(),
                true,
                Some(r#"kind cluster "dev": loaded image into the nodes instead of pushing"#),
            ),
            (
                kind(),
                kind_load,
                false,
                Some(
                    r#"kind cluster "dev": image unchanged; not pushed (loaded into the nodes when built)"#,
                ),
            ),
            (
                minikube(),
                ImageDelivery::SharedDaemon,
                true,
                Some(
                    r#"minikube profile "minikube": built with its Docker daemon instead of pushing"#,
                ),
            ),
            (
                minikube(),
                ImageDelivery::SharedDaemon,
                false,
                Some(
                    r#"minikube profile "minikube": image found in its Docker daemon; not pushed"#,
                ),
            ),
            (
                LocalCluster::DockerDesktop,
                ImageDelivery::SharedDaemon,
                true,
                Some("Docker Desktop: shares the local Docker daemon; not pushed"),
            ),
        ];
        for (cluster, delivery, built, expected) in cases {
            assert_eq!(
                delivery_note(&cluster, &delivery, built).as_deref(),
                expected,
                "{cluster:?} {delivery:?} built={built}"
            );
        }
    }
}
