//! One image's pipeline, a straight line over what the plan fixed and the [`Services`] port:
//! prepare (Dockerfile → overrides → context scan) → decide (the cache) → verify a skipped
//! tag still exists → build → deliver (kind load) → push → commit the cache entry the decision
//! produced. Sends typed events; prints nothing. The entry is committed only after the image
//! was built and pushed, so a failed or interrupted image leaves its old entry in place.

use crate::builder::{BuildEvent, BuildRequest, ContextBody, DaemonError, EventSink, PushRequest};
use crate::config::BuilderKind;
use crate::image::cache::{BuildOutcome as CacheOutcome, Cache, CachedImage, Decided, PushRecord};
use crate::image::context::{self, tar::DockerfileEntry, tar::TarOptions};
use crate::image::decision::{
    BuilderInputs, Decision, DecisionInputs, FilesInput, PushReason, Reason,
};
use crate::image::{dockerfile, tag};
use crate::kube::local::ImageDelivery;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{Event, ImageEvent, Stage, Status};
use crate::pipeline::plan::{BuilderChoice, Fallback, ImagePlan};
use crate::pipeline::services::{ReadyBuilder, Services};
use crate::registry::reference::{Reference, Registry};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Settings of one run that every job shares.
#[derive(Debug, Clone, Default)]
pub struct JobSettings {
    /// Directory of `devspace.yaml`.
    pub root: PathBuf,
    /// Cache bucket (`profiles.<name>` in generated.yaml): the applied profiles, or "".
    pub profile_key: String,
    pub force_build: bool,
    pub skip_push: bool,
    /// `--dry-run`: decide only; never contact Docker or a registry.
    pub dry_run: bool,
}

/// What every job of a run works with: the settings, the cache and the services port.
pub struct JobContext {
    pub settings: JobSettings,
    pub cache: Cache,
    pub services: Arc<dyn Services>,
}

/// A successful image job.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSuccess {
    pub status: Status,
    /// The decision, after verification.
    pub decision: Decision,
    /// Tags of the image now (fresh when built, recorded when skipped).
    pub tags: Vec<String>,
    pub digest: Option<String>,
    pub pushed: bool,
    /// (files, bytes) of the context, when scanned.
    pub context: Option<(u64, u64)>,
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

    /// Sends one event for this image (a closed dispatcher drops it).
    pub fn send(&self, kind: ImageEvent) {
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
    /// The context and the Dockerfile's place in it (docker/kaniko only).
    context: Option<PreparedContext>,
}

struct PreparedContext {
    scan: context::ContextScan,
    /// How the final Dockerfile enters the tar, and its path there.
    dockerfile: DockerfileEntry,
    dockerfile_name: String,
}

/// Reads, rewrites and hashes what the decision compares (on a blocking thread).
fn prepare(
    plan: &ImagePlan,
    fresh_from: &HashMap<String, String>,
    root: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<Prepared, ImageError> {
    let image = &plan.config;
    if let BuilderChoice::Custom(custom) = &plan.build {
        let on_change = if custom.on_change.is_empty() {
            None
        } else {
            let files = crate::image::on_change::on_change_files(root, &custom.on_change)?;
            Some(FilesInput::from_files(files))
        };
        return Ok(Prepared {
            inputs: DecisionInputs::new(
                image,
                root,
                plan.push,
                BuilderInputs::Custom { on_change },
            ),
            context: None,
        });
    }
    let df_path = &image.dockerfile;
    let text =
        std::fs::read_to_string(df_path).map_err(|source| ImageError::DockerfileUnreadable {
            key: plan.key.clone(),
            path: df_path.clone(),
            root: root.to_path_buf(),
            source,
        })?;
    let options = image.options().cloned().unwrap_or_default();
    let text = dockerfile::rewrite_from(df_path, &text, &options.build_args, fresh_from)?;
    let overrides = dockerfile::Overrides {
        entrypoint: image.entrypoint.clone(),
        cmd: image.cmd.clone(),
        append_instructions: image.append_dockerfile_instructions.clone(),
        target: options.target.clone(),
    };
    let final_text = dockerfile::apply_overrides(df_path, &text, &overrides)?;
    let scan =
        context::scan_context_until(&image.context, df_path, &root.join(".devspace"), cancel)?;
    // The per-file list is produced only when a decision names files or a commit records
    // them: a no-change run never builds it.
    let builder = BuilderInputs::dockerfile_with(
        &final_text,
        image.entrypoint.as_deref(),
        image.cmd.as_deref(),
        FilesInput::from_scan(&scan),
    );
    let (dockerfile, dockerfile_name) = match &scan.dockerfile_rel {
        Some(rel) => (
            DockerfileEntry::Replace {
                rel_path: rel.clone(),
                content: final_text.into(),
            },
            rel.clone(),
        ),
        None => {
            let name = context::tar::random_dockerfile_name();
            (
                DockerfileEntry::Extra {
                    name: name.clone(),
                    content: final_text.into(),
                },
                name,
            )
        }
    };
    Ok(Prepared {
        inputs: DecisionInputs::new(image, root, plan.push, builder),
        context: Some(PreparedContext {
            scan,
            dockerfile,
            dockerfile_name,
        }),
    })
}

/// The recorded tags of a cached image (all tags when our record has them).
fn recorded_tags(cached: Option<&CachedImage>) -> Vec<String> {
    let Some(c) = cached else { return Vec::new() };
    match &c.record {
        Some(r) if !r.tags.is_empty() => r.tags.clone(),
        _ => c.entry.tag.iter().cloned().collect(),
    }
}

fn fresh_tags(plan: &ImagePlan) -> Result<Vec<String>, ImageError> {
    let image = &plan.config;
    Ok(tag::resolve_tags(
        &image.image,
        &tag::configured_tags(&image.tags, image.devspace6, &mut rand::rng()),
        None,
        image.tags_append_random == Some(true),
        &mut rand::rng(),
    )?)
}

/// Runs one image's pipeline. `deps` holds, by key, the repository and result of the images
/// it builds `FROM`.
pub async fn run_image(
    ctx: &JobContext,
    plan: &ImagePlan,
    deps: &IndexMap<String, (String, ImageSuccess)>,
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<ImageSuccess, ImageError> {
    let settings = &ctx.settings;
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
        let (plan, root, stop) = (plan.clone(), settings.root.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || prepare(&plan, &fresh_from, &root, &stop)).await??
    };
    // Ctrl-C during the scan: nothing more for this image (no "building" after "interrupted").
    if cancel.is_cancelled() {
        return Err(context::ContextError::Cancelled.into());
    }
    let context_size = prepared
        .context
        .as_ref()
        .map(|c| (c.scan.file_count as u64, c.scan.total_bytes));
    let Decided {
        mut decision,
        cached,
        pending,
    } = ctx.cache.decide_entry(
        &settings.profile_key,
        &plan.key,
        &plan.config.image,
        prepared.inputs.clone(),
        settings.force_build,
    );
    // A dependency rebuilt in this run means a new base: rebuild too.
    if !decision.is_rebuild()
        && let Some((dep, _)) = deps.iter().find(|(_, (_, s))| s.status == Status::Built)
    {
        decision = Decision::Rebuild(Reason::BaseRebuilt { image: dep.clone() });
    }
    let recorded = recorded_tags(cached.as_ref());

    if settings.dry_run {
        emit.send(ImageEvent::Decision(decision.clone()));
        let tags = if decision.is_rebuild() {
            fresh_tags(plan).unwrap_or_default()
        } else {
            recorded
        };
        return Ok(ImageSuccess {
            status: if decision.does_work() {
                Status::WouldBuild
            } else {
                Status::Skipped
            },
            decision,
            tags,
            digest: None,
            pushed: false,
            context: context_size,
        });
    }

    if !decision.is_rebuild() && plan.builder != BuilderKind::Custom {
        emit.send(ImageEvent::Stage(Stage::Verifying));
        decision = verify(ctx, plan, decision, recorded.first()).await?;
    }
    emit.send(ImageEvent::Decision(decision.clone()));

    if decision == Decision::Skip {
        if let Some(note) = plan.delivery_note(false) {
            emit.send(ImageEvent::Note(note));
        }
        return Ok(ImageSuccess {
            status: Status::Skipped,
            decision,
            digest: cached
                .as_ref()
                .and_then(|c| c.record.as_ref())
                .and_then(|r| r.push.as_ref())
                .and_then(|p| p.digest.clone()),
            pushed: false,
            tags: recorded,
            context: context_size,
        });
    }

    let mut tags = recorded;
    let mut pushed_by_build = None;
    if decision.is_rebuild() {
        tags = fresh_tags(plan)?;
        if let Some(prev) = cached.as_ref().and_then(|c| c.entry.tag.clone())
            && tags.first() == Some(&prev)
        {
            emit.send(ImageEvent::Note(format!(
                "rebuilt image {}:{prev} has the same tag as the last build; a deployment may not pick it up",
                plan.config.image
            )));
        }
        emit.send(ImageEvent::Stage(Stage::Building));
        let outcome = build(ctx, plan, &tags, prepared.context, emit, cancel).await?;
        if outcome.pushed {
            pushed_by_build = Some(outcome.digest);
        } else {
            deliver_locally(ctx, plan, &tags, emit).await?;
        }
    }

    let (digest, pushed) = match pushed_by_build {
        Some(digest) => (digest, true),
        None if plan.push => {
            emit.send(ImageEvent::Stage(Stage::Pushing));
            let request = PushRequest {
                image_key: plan.key.clone(),
                repository: plan.config.image.clone(),
                tags: tags.clone(),
                credentials: None,
            };
            let daemon = plan.build.daemon().cloned().unwrap_or_default();
            let digest = ctx
                .services
                .push(&daemon, request, &emit.sink(), cancel)
                .await?;
            (digest, true)
        }
        None => (None, false),
    };
    let registry = Registry::of_image(&plan.config.image)
        .map(|r| r.host().to_string())
        .unwrap_or_default();
    ctx.cache.commit(
        pending,
        CacheOutcome {
            tags: tags.clone(),
            push: pushed.then(|| PushRecord {
                registry,
                digest: digest.clone(),
            }),
        },
    )?;
    Ok(ImageSuccess {
        status: if decision.is_rebuild() {
            Status::Built
        } else {
            Status::Pushed
        },
        decision,
        tags,
        digest,
        pushed,
        context: context_size,
    })
}

/// Trust, but verify: a skipped (or push-only) image must still exist where it is used.
/// Returns the decision the lookups lead to.
async fn verify(
    ctx: &JobContext,
    plan: &ImagePlan,
    decision: Decision,
    first_tag: Option<&String>,
) -> Result<Decision, ImageError> {
    let first = first_tag.cloned().unwrap_or_default();
    let reference = format!("{}:{first}", plan.config.image);
    if plan.push && decision == Decision::Skip {
        let parsed = Reference::parse(&reference)?;
        if ctx
            .services
            .registry_has(&parsed, plan.build.daemon())
            .await?
        {
            return Ok(Decision::Skip);
        }
        // Without a daemon (kaniko, or Docker falling back) no local copy exists.
        let local = local_lookup(ctx, plan, &reference)
            .await?
            .unwrap_or_default();
        return Ok(if local {
            Decision::PushOnly(PushReason::MissingInRegistry)
        } else {
            Decision::Rebuild(Reason::MissingInRegistry)
        });
    }
    // A skipped image with no daemon to ask (kaniko, or the fallback) is trusted.
    let exists = local_lookup(ctx, plan, &reference).await?.unwrap_or(true);
    Ok(if exists {
        decision
    } else {
        Decision::Rebuild(Reason::MissingInDaemon)
    })
}

/// Whether `reference` exists in the image's daemon; `None` when there is no daemon to ask
/// (kaniko, or an unreachable daemon the image falls back from).
async fn local_lookup(
    ctx: &JobContext,
    plan: &ImagePlan,
    reference: &str,
) -> Result<Option<bool>, ImageError> {
    let BuilderChoice::Docker {
        daemon, fallback, ..
    } = &plan.build
    else {
        return Ok(None);
    };
    match ctx.services.image_exists(daemon, reference).await {
        Ok(exists) => Ok(Some(exists)),
        Err(e) => match (e.daemon_unreachable(), fallback) {
            (Some(_), Fallback::Kaniko(_)) => Ok(None),
            (Some(daemon), Fallback::Disabled) => Err(ImageError::FallbackDisabled {
                daemon: daemon.clone(),
            }),
            _ => Err(e),
        },
    }
}

/// The builder of `plan`; a Docker image whose daemon does not answer goes to kaniko unless
/// `disableFallback` (said in one note), and when no cluster answers either, both are named.
async fn builder_for(
    ctx: &JobContext,
    plan: &ImagePlan,
    emit: &Emitter,
) -> Result<(ReadyBuilder, Option<Arc<DaemonError>>), ImageError> {
    let err = match ctx.services.builder(plan, &plan.build).await {
        Ok(b) => return Ok((b, None)),
        Err(e) => e,
    };
    let (Some(daemon), BuilderChoice::Docker { fallback, .. }) =
        (err.daemon_unreachable().cloned(), &plan.build)
    else {
        return Err(err);
    };
    match fallback {
        Fallback::Kaniko(config) => {
            let choice = BuilderChoice::Kaniko(config.clone());
            match ctx.services.builder(plan, &choice).await {
                Ok(ready) => {
                    if let DaemonError::Unreachable { endpoint, .. } = &*daemon {
                        emit.send(ImageEvent::Note(format!(
                            "Docker daemon not reachable at {endpoint}: building with kaniko in {}",
                            ready.location.as_deref().unwrap_or("the cluster")
                        )));
                    }
                    Ok((ready, Some(daemon)))
                }
                Err(e) => Err(fallback_failed(daemon, e)),
            }
        }
        Fallback::Disabled => Err(ImageError::FallbackDisabled { daemon }),
        Fallback::None => Err(err),
    }
}

/// Neither Docker nor the cluster answers: say both, not just the second.
fn fallback_failed(daemon: Arc<DaemonError>, e: ImageError) -> ImageError {
    use crate::diagnostic::Diagnostic;
    if e.exit_code() == crate::exit::ExitCode::Unreachable {
        ImageError::NoDaemonNoCluster {
            daemon,
            cluster: Box::new(e),
        }
    } else {
        e
    }
}

/// Builds the image with the planned builder (or its fallback).
async fn build(
    ctx: &JobContext,
    plan: &ImagePlan,
    tags: &[String],
    context: Option<PreparedContext>,
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<crate::builder::BuildOutcome, ImageError> {
    let (ready, fell_back_from) = builder_for(ctx, plan, emit).await?;
    let kaniko = fell_back_from.is_some() || matches!(plan.build, BuilderChoice::Kaniko(_));
    if kaniko && ctx.settings.skip_push {
        emit.send(ImageEvent::Note(
            "kaniko pushes as part of the build: --skip-push does not apply".to_string(),
        ));
    }
    let mut request = BuildRequest::for_image(
        &plan.key,
        &plan.config,
        tags.to_vec(),
        context
            .as_ref()
            .map(|c| c.dockerfile_name.clone())
            .unwrap_or_default(),
    );
    request
        .labels
        .insert("dev.devspace.image-key".to_string(), plan.key.clone());
    let body: Option<ContextBody> = context.map(|c| {
        Box::pin(context::tar::context_tar_stream(
            c.scan.root.clone(),
            c.scan.entries.clone(),
            TarOptions {
                dockerfile: c.dockerfile,
                ..TarOptions::default()
            },
        )) as ContextBody
    });
    let sink = emit.sink();
    let result = ready.builder.build(&request, body, &sink, cancel).await;
    match (result, fell_back_from) {
        (Ok(outcome), _) => Ok(outcome),
        (Err(e), Some(daemon)) => Err(fallback_failed(daemon, e.into())),
        (Err(e), None) => Err(e.into()),
    }
}

/// Makes a freshly built image visible to a local cluster (`kind load`) and says so.
async fn deliver_locally(
    ctx: &JobContext,
    plan: &ImagePlan,
    tags: &[String],
    emit: &Emitter,
) -> Result<(), ImageError> {
    if let ImageDelivery::KindLoad { cluster } = &plan.delivery {
        let references: Vec<String> = tags
            .iter()
            .map(|t| format!("{}:{t}", plan.config.image))
            .collect();
        ctx.services.kind_load(&references, cluster).await?;
    }
    if let Some(note) = plan.delivery_note(true) {
        emit.send(ImageEvent::Note(note));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod fakes {
    //! A fake [`Services`]: daemons, cluster, registry and builders in memory, recording what
    //! the job asked for. Shared by the job's and the dispatcher's table tests.

    use super::*;
    use crate::builder::docker::DockerEndpoint;
    use crate::builder::{BuildError, BuildOutcome, ImageBuilder};
    use crate::kube::KubeError;
    use crate::pipeline::plan::DaemonChoice;
    use crate::pipeline::services::ReadyBuilder;
    use futures_util::FutureExt;
    use futures_util::future::BoxFuture;
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// What the fake world looks like and what happened in it.
    #[derive(Default)]
    pub struct World {
        pub daemon_down: bool,
        pub cluster_down: bool,
        /// References the local daemon has.
        pub local: HashSet<String>,
        /// References the registry has.
        pub registry: HashSet<String>,
        /// Image keys whose build fails.
        pub failing: HashSet<String>,
        /// (builder, image key) per build.
        pub builds: Vec<(String, String)>,
        /// References pushed.
        pub pushes: Vec<String>,
        pub kind_loads: Vec<String>,
    }

    #[derive(Default, Clone)]
    pub struct FakeServices(pub Arc<Mutex<World>>);

    impl FakeServices {
        pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
            self.0.lock().unwrap()
        }

        fn daemon_error() -> ImageError {
            ImageError::Daemon(Arc::new(DaemonError::Unreachable {
                endpoint: Box::new(DockerEndpoint::from_host("tcp://127.0.0.1:1")),
                reason: "connection refused".into(),
            }))
        }

        fn cluster_error() -> ImageError {
            ImageError::Kube(Arc::new(KubeError::NoKubeconfig {
                location: "/nonexistent".into(),
                message: "no such file".into(),
            }))
        }
    }

    struct FakeBuilder {
        kind: &'static str,
        world: Arc<Mutex<World>>,
    }

    impl ImageBuilder for FakeBuilder {
        fn needs_context(&self) -> bool {
            self.kind != "custom"
        }

        fn build<'a>(
            &'a self,
            request: &'a BuildRequest,
            _context: Option<ContextBody>,
            events: &'a EventSink,
            _cancel: &'a CancellationToken,
        ) -> BoxFuture<'a, Result<BuildOutcome, BuildError>> {
            async move {
                let mut world = self.world.lock().unwrap();
                world
                    .builds
                    .push((self.kind.to_string(), request.image_key.clone()));
                events.emit(BuildEvent::Log(format!("{} building", self.kind)));
                if world.failing.contains(&request.image_key) {
                    return Err(BuildError::Failed {
                        image: request.image_key.clone(),
                        message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
                            .into(),
                        last_lines: vec!["Step 2/2 : RUN exit 3".into()],
                    });
                }
                let pushed = self.kind == "kaniko";
                for r in request.references() {
                    if pushed {
                        world.registry.insert(r.clone());
                    } else {
                        world.local.insert(r);
                    }
                }
                Ok(BuildOutcome {
                    image_id: None,
                    references: request.references(),
                    pushed,
                    digest: pushed.then(|| "sha256:kaniko".to_string()),
                })
            }
            .boxed()
        }
    }

    impl Services for FakeServices {
        fn builder<'a>(
            &'a self,
            _plan: &'a ImagePlan,
            choice: &'a BuilderChoice,
        ) -> BoxFuture<'a, Result<ReadyBuilder, ImageError>> {
            async move {
                let world = self.world();
                let (kind, location) = match choice {
                    BuilderChoice::Docker { .. } if world.daemon_down => {
                        return Err(Self::daemon_error());
                    }
                    BuilderChoice::Docker { .. } => ("docker", None),
                    BuilderChoice::Kaniko(_) if world.cluster_down => {
                        return Err(Self::cluster_error());
                    }
                    BuilderChoice::Kaniko(_) => {
                        ("kaniko", Some("namespace default (context fake)".into()))
                    }
                    BuilderChoice::Custom(_) => ("custom", None),
                    BuilderChoice::Unsupported(what) => {
                        return Err(ImageError::Unsupported(what.clone()));
                    }
                };
                Ok(ReadyBuilder {
                    builder: Box::new(FakeBuilder {
                        kind,
                        world: self.0.clone(),
                    }),
                    location,
                })
            }
            .boxed()
        }

        fn image_exists<'a>(
            &'a self,
            _daemon: &'a DaemonChoice,
            reference: &'a str,
        ) -> BoxFuture<'a, Result<bool, ImageError>> {
            async move {
                let world = self.world();
                if world.daemon_down {
                    return Err(Self::daemon_error());
                }
                Ok(world.local.contains(reference))
            }
            .boxed()
        }

        fn registry_has<'a>(
            &'a self,
            reference: &'a Reference,
            _daemon: Option<&'a DaemonChoice>,
        ) -> BoxFuture<'a, Result<bool, ImageError>> {
            async move {
                let text = format!("{}:{}", reference.name(), reference.tag().unwrap_or(""));
                Ok(self
                    .world()
                    .registry
                    .iter()
                    .any(|r| *r == text || text.ends_with(r.as_str())))
            }
            .boxed()
        }

        fn push<'a>(
            &'a self,
            _daemon: &'a DaemonChoice,
            request: PushRequest,
            _events: &'a EventSink,
            _cancel: &'a CancellationToken,
        ) -> BoxFuture<'a, Result<Option<String>, ImageError>> {
            async move {
                let mut world = self.world();
                if world.daemon_down {
                    return Err(Self::daemon_error());
                }
                for t in &request.tags {
                    let r = format!("{}:{t}", request.repository);
                    world.pushes.push(r.clone());
                    world.registry.insert(r);
                }
                Ok(Some("sha256:pushed".into()))
            }
            .boxed()
        }

        fn kind_load<'a>(
            &'a self,
            references: &'a [String],
            _cluster: &'a str,
        ) -> BoxFuture<'a, Result<(), ImageError>> {
            async move {
                self.world().kind_loads.extend(references.iter().cloned());
                Ok(())
            }
            .boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fakes::FakeServices;
    use super::*;
    use crate::config::model::{DockerConfig as DockerBuildConfig, KanikoConfig};
    use crate::config::{Config, ImageConfig};
    use crate::diagnostic::Diagnostic;
    use crate::exit::ExitCode;
    use crate::kube::local::LocalCluster;
    use crate::pipeline::plan::{LocalTarget, PlanSettings, plan};

    /// A project with one image `app` (FROM busybox, one file), optionally `base` too.
    struct Project {
        dir: tempfile::TempDir,
        config: Config,
    }

    impl Project {
        fn new(with_base: bool) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            std::fs::create_dir_all(root.join("app")).unwrap();
            std::fs::write(
                root.join("app/Dockerfile"),
                "FROM 127.0.0.1:5000/demo-base\nCOPY . /\n",
            )
            .unwrap();
            std::fs::write(root.join("app/main.sh"), "echo hi\n").unwrap();
            let mut config = Config::default();
            if with_base {
                std::fs::create_dir_all(root.join("base")).unwrap();
                std::fs::write(root.join("base/Dockerfile"), "FROM busybox\n").unwrap();
                config.images.insert(
                    "base".into(),
                    ImageConfig {
                        image: "127.0.0.1:5000/demo-base".into(),
                        tags: vec!["b1".into()],
                        dockerfile: root.join("base/Dockerfile"),
                        context: root.join("base"),
                        ..Default::default()
                    },
                );
            }
            config.images.insert(
                "app".into(),
                ImageConfig {
                    image: "127.0.0.1:5000/demo-app".into(),
                    tags: vec!["v1".into()],
                    dockerfile: root.join("app/Dockerfile"),
                    context: root.join("app"),
                    ..Default::default()
                },
            );
            Project { dir, config }
        }

        fn root(&self) -> PathBuf {
            self.dir.path().to_path_buf()
        }

        fn image(&mut self, key: &str) -> &mut ImageConfig {
            self.config.images.get_mut(key).unwrap()
        }

        /// Runs the image jobs in config order (dependencies first), like the scheduler.
        async fn run(
            &self,
            services: &FakeServices,
            settings: JobSettings,
            plan_settings: PlanSettings,
        ) -> (
            IndexMap<String, Result<ImageSuccess, ImageError>>,
            Vec<Event>,
        ) {
            let ctx = JobContext {
                settings: JobSettings {
                    root: self.root(),
                    ..settings
                },
                cache: Cache::open(&self.root()),
                services: Arc::new(services.clone()),
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            let mut plans = plan(&self.config, &plan_settings);
            plans.sort_by_key(|p| p.depends_on.len());
            let mut results = IndexMap::new();
            let mut done: IndexMap<String, (String, ImageSuccess)> = IndexMap::new();
            for p in &plans {
                let deps = done
                    .iter()
                    .filter(|(k, _)| p.depends_on.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let emit = Emitter::new(&p.key, tx.clone());
                let res = run_image(&ctx, p, &deps, &emit, &CancellationToken::new()).await;
                if let Ok(s) = &res {
                    done.insert(p.key.clone(), (p.config.image.clone(), s.clone()));
                }
                results.insert(p.key.clone(), res);
            }
            drop(tx);
            let mut events = Vec::new();
            while let Some(e) = rx.recv().await {
                events.push(e);
            }
            (results, events)
        }
    }

    fn pushing() -> JobSettings {
        JobSettings::default()
    }

    fn ok(r: &Result<ImageSuccess, ImageError>) -> &ImageSuccess {
        r.as_ref().unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(r: &Result<ImageSuccess, ImageError>) -> &ImageError {
        match r {
            Ok(s) => panic!("expected a failure, got {s:?}"),
            Err(e) => e,
        }
    }

    fn notes(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                ImageEvent::Note(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn build_push_then_skip_after_verifying() {
        let project = Project::new(false);
        let services = FakeServices::default();
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        let app = ok(&r["app"]);
        assert_eq!(app.status, Status::Built);
        assert_eq!(app.decision, Decision::Rebuild(Reason::NeverBuilt));
        assert_eq!(app.tags, ["v1"]);
        assert!(app.pushed);
        assert_eq!(services.world().pushes, ["127.0.0.1:5000/demo-app:v1"]);

        let (r, events) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        let app = ok(&r["app"]);
        assert_eq!(app.status, Status::Skipped);
        assert_eq!(app.decision, Decision::Skip);
        assert_eq!(app.tags, ["v1"]);
        assert_eq!(app.digest.as_deref(), Some("sha256:pushed"));
        assert!(
            events
                .iter()
                .any(|e| e.kind == ImageEvent::Stage(Stage::Verifying))
        );
        assert_eq!(services.world().builds.len(), 1, "built once");
    }

    #[tokio::test]
    async fn verification_table() {
        // (name, in registry, in daemon, skip push, expected decision, status)
        let cases = [
            (
                "present",
                true,
                true,
                false,
                Decision::Skip,
                Status::Skipped,
            ),
            (
                "registry lost it, daemon has it",
                false,
                true,
                false,
                Decision::PushOnly(PushReason::MissingInRegistry),
                Status::Pushed,
            ),
            (
                "gone everywhere",
                false,
                false,
                false,
                Decision::Rebuild(Reason::MissingInRegistry),
                Status::Built,
            ),
            (
                "not pushing, daemon lost it",
                true,
                false,
                true,
                Decision::Rebuild(Reason::MissingInDaemon),
                Status::Built,
            ),
            (
                "not pushing, daemon has it",
                false,
                true,
                true,
                Decision::PushOnly(PushReason::NotPushedYet),
                Status::Pushed,
            ),
        ];
        for (name, in_registry, in_daemon, skip_push, want, status) in cases {
            let project = Project::new(false);
            let services = FakeServices::default();
            // The first build records the image (pushed unless skip_push).
            let first = JobSettings {
                skip_push,
                ..JobSettings::default()
            };
            let plan_settings = PlanSettings {
                skip_push,
                ..PlanSettings::default()
            };
            project.run(&services, first, plan_settings.clone()).await;
            {
                let mut world = services.world();
                world.registry.clear();
                world.local.clear();
                if in_registry {
                    world.registry.insert("127.0.0.1:5000/demo-app:v1".into());
                }
                if in_daemon {
                    world.local.insert("127.0.0.1:5000/demo-app:v1".into());
                }
            }
            // "not pushing, daemon has it": the second run pushes what the first did not.
            let (second, second_plan) = if name == "not pushing, daemon has it" {
                (pushing(), PlanSettings::default())
            } else {
                (
                    JobSettings {
                        skip_push,
                        ..JobSettings::default()
                    },
                    plan_settings,
                )
            };
            let (r, _) = project.run(&services, second, second_plan).await;
            let app = ok(&r["app"]);
            assert_eq!(app.decision, want, "{name}");
            assert_eq!(app.status, status, "{name}");
        }
    }

    #[tokio::test]
    async fn base_rebuilt_rebuilds_dependents() {
        let project = Project::new(true);
        let services = FakeServices::default();
        project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        std::fs::write(project.root().join("base/Dockerfile"), "FROM busybox:1\n").unwrap();
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        assert_eq!(
            ok(&r["base"]).decision,
            Decision::Rebuild(Reason::DockerfileChanged)
        );
        assert_eq!(
            ok(&r["app"]).decision,
            Decision::Rebuild(Reason::BaseRebuilt {
                image: "base".into()
            })
        );
    }

    #[tokio::test]
    async fn daemon_down_falls_back_to_kaniko() {
        let project = Project::new(false);
        let services = FakeServices::default();
        services.world().daemon_down = true;
        let settings = JobSettings {
            skip_push: true,
            ..JobSettings::default()
        };
        let (r, events) = project
            .run(&services, settings, PlanSettings::default())
            .await;
        let app = ok(&r["app"]);
        assert_eq!(app.status, Status::Built);
        assert!(app.pushed, "kaniko pushes while building");
        assert_eq!(app.digest.as_deref(), Some("sha256:kaniko"));
        assert_eq!(services.world().builds, [("kaniko".into(), "app".into())]);
        assert!(services.world().pushes.is_empty(), "no second push");
        assert_eq!(
            notes(&events),
            [
                "Docker daemon not reachable at tcp://127.0.0.1:1: building with kaniko in namespace default (context fake)",
                "kaniko pushes as part of the build: --skip-push does not apply",
            ]
        );
    }

    #[tokio::test]
    async fn environment_failures_are_typed() {
        // No daemon, no cluster: both named, exit 4, an environment cause.
        let project = Project::new(false);
        let services = FakeServices::default();
        services.world().daemon_down = true;
        services.world().cluster_down = true;
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        let e = err(&r["app"]);
        assert!(matches!(e, ImageError::NoDaemonNoCluster { .. }), "{e:?}");
        assert_eq!(e.exit_code(), ExitCode::Unreachable);
        assert!(e.is_environment());
        let text = e.to_string();
        assert!(
            text.contains("cannot reach the Docker daemon at tcp://127.0.0.1:1"),
            "{text}"
        );
        assert!(
            text.contains("the kaniko fallback failed too: cannot read the kubeconfig"),
            "{text}"
        );
        assert!(Cache::open(&project.root()).cached("", "app").is_none());

        // disableFallback: the daemon error, and why kaniko was not tried.
        let mut project = Project::new(false);
        project.image("app").build.docker = Some(DockerBuildConfig {
            disable_fallback: Some(true),
            ..Default::default()
        });
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        let e = err(&r["app"]);
        assert!(matches!(e, ImageError::FallbackDisabled { .. }), "{e:?}");
        assert_eq!(e.exit_code(), ExitCode::Unreachable);
        assert!(e.hints().iter().any(|h| h.contains("disableFallback")));
    }

    #[tokio::test]
    async fn a_failed_build_commits_nothing() {
        let project = Project::new(false);
        let services = FakeServices::default();
        services.world().failing.insert("app".into());
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        let e = err(&r["app"]);
        assert!(matches!(e, ImageError::Build(_)), "{e:?}");
        assert_eq!(e.last_lines(), ["Step 2/2 : RUN exit 3"]);
        assert!(!e.is_environment());
        assert!(Cache::open(&project.root()).cached("", "app").is_none());
        assert!(services.world().pushes.is_empty());
    }

    #[tokio::test]
    async fn kaniko_and_kind_delivery() {
        let mut project = Project::new(false);
        project.image("app").build.kaniko = Some(KanikoConfig::default());
        let services = FakeServices::default();
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        assert_eq!(services.world().builds, [("kaniko".into(), "app".into())]);
        assert!(ok(&r["app"]).pushed);

        let project = Project::new(false);
        let services = FakeServices::default();
        let kind = PlanSettings {
            local: Some(LocalTarget {
                cluster: LocalCluster::Kind {
                    cluster: "dev".into(),
                },
                kind_installed: true,
            }),
            ..PlanSettings::default()
        };
        let (r, events) = project.run(&services, pushing(), kind).await;
        let app = ok(&r["app"]);
        assert!(!app.pushed);
        assert_eq!(services.world().kind_loads, ["127.0.0.1:5000/demo-app:v1"]);
        assert!(services.world().pushes.is_empty());
        assert_eq!(
            notes(&events),
            [r#"kind cluster "dev": loaded image into the nodes instead of pushing"#]
        );
    }

    #[tokio::test]
    async fn dry_run_contacts_nothing() {
        let project = Project::new(false);
        let services = FakeServices::default();
        services.world().daemon_down = true;
        let settings = JobSettings {
            dry_run: true,
            ..JobSettings::default()
        };
        let (r, _) = project
            .run(&services, settings, PlanSettings::default())
            .await;
        let app = ok(&r["app"]);
        assert_eq!(app.status, Status::WouldBuild);
        assert_eq!(app.decision, Decision::Rebuild(Reason::NeverBuilt));
        assert!(services.world().builds.is_empty());
    }
}
