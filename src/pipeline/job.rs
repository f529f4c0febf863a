//! One image's pipeline, a straight line over what the plan fixed and the [`Services`] port:
//! prepare (Dockerfile → overrides → context scan → content key) → decide (the cache) →
//! retag (tags changed only) or verify a skipped tag still exists → the registry content
//! cache (built before, anywhere?) → build → deliver (kind load) → push → commit the cache
//! entry the decision produced → record the content key in the registry. Sends typed events;
//! prints nothing. The entry is committed only after the image was built and pushed (or
//! retagged, or found), so a failed or interrupted image leaves its old entry in place.

use crate::builder::{BuildEvent, BuildRequest, ContextBody, DaemonError, EventSink, PushRequest};
use crate::config::BuilderKind;
use crate::diagnostic::Diagnostic;
use crate::image::cache::{
    BuildOutcome as CacheOutcome, Cache, CachedImage, Decided, PendingEntry, PushRecord,
};
use crate::image::content_key::{self, ContentKey};
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
use crate::registry::client::Lookup;
use crate::registry::reference::{Reference, Registry};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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
    /// Registries whose content cache failed in this run: warned about once, not asked again.
    pub registry_cache_off: Mutex<HashSet<String>>,
}

impl JobContext {
    /// A context whose registry cache has not failed yet.
    pub fn new(settings: JobSettings, cache: Cache, services: Arc<dyn Services>) -> Self {
        JobContext {
            settings,
            cache,
            services,
            registry_cache_off: Mutex::new(HashSet::new()),
        }
    }

    fn registry_cache_is_off(&self, registry: &str) -> bool {
        self.registry_cache_off
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(registry)
    }

    /// A registry refused a cache request (or did not answer): the image is built as if there
    /// were no cache, the first image to meet it says so (one warning per registry and run),
    /// and no more cache requests go to that registry in this run.
    fn registry_cache_failed(&self, registry: &str, error: &ImageError, emit: &Emitter) {
        let first = self
            .registry_cache_off
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(registry.to_owned());
        if first {
            let hint = error
                .hints()
                .first()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            emit.send(ImageEvent::Note(format!(
                "warning: registry cache disabled for {registry} in this run: {error}{hint}; images are built and pushed as usual (--no-registry-cache turns it off)"
            )));
        }
    }
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
    /// The content key (images built `FROM` this one hash it instead of its tag).
    pub content_key: Option<ContentKey>,
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
    /// The content key (`None`: custom builder, or a base image without one).
    content_key: Option<ContentKey>,
    /// The context and the Dockerfile's place in it (docker/kaniko only).
    context: Option<PreparedContext>,
}

struct PreparedContext {
    scan: context::ContextScan,
    /// How the final Dockerfile enters the tar, and its path there.
    dockerfile: DockerfileEntry,
    dockerfile_name: String,
}

/// How the `FROM`s naming images of this config are rewritten: for the build, to this run's
/// tag of the base; for the hashes, to the base's content key (so a base that only got new
/// tags changes nothing downstream, and a rebuilt base with new content does).
#[derive(Debug, Clone, Default)]
struct BaseImages {
    /// repository → `repository:<tag of this run>`.
    build: HashMap<String, String>,
    /// repository → what the hashed text names ([`content_key::from_for_key`]).
    key: HashMap<String, String>,
    /// Whether every base has a content key (else this image has none either).
    all_keyed: bool,
}

impl BaseImages {
    fn of(deps: &IndexMap<String, (String, ImageSuccess)>) -> Self {
        let mut bases = BaseImages {
            all_keyed: true,
            ..Default::default()
        };
        for (repo, s) in deps.values() {
            let Some(tag) = s.tags.first() else { continue };
            let tagged = format!("{repo}:{tag}");
            let keyed = match &s.content_key {
                Some(k) => content_key::from_for_key(repo, k),
                None => {
                    bases.all_keyed = false;
                    tagged.clone()
                }
            };
            bases.build.insert(repo.clone(), tagged);
            bases.key.insert(repo.clone(), keyed);
        }
        bases
    }
}

/// Reads, rewrites and hashes what the decision compares (on a blocking thread).
fn prepare(
    plan: &ImagePlan,
    bases: &BaseImages,
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
            content_key: None,
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
    let overrides = dockerfile::Overrides {
        entrypoint: image.entrypoint.clone(),
        cmd: image.cmd.clone(),
        append_instructions: image.append_dockerfile_instructions.clone(),
        target: options.target.clone(),
    };
    let final_text = |from: &HashMap<String, String>| -> Result<String, ImageError> {
        let text = dockerfile::rewrite_from(df_path, &text, &options.build_args, from)?;
        Ok(dockerfile::apply_overrides(df_path, &text, &overrides)?)
    };
    let build_text = final_text(&bases.build)?;
    let key_text = if bases.key == bases.build {
        build_text.clone()
    } else {
        final_text(&bases.key)?
    };
    let scan =
        context::scan_context_until(&image.context, df_path, &root.join(".devspace"), cancel)?;
    // The per-file list is produced only when a decision names files or a commit records
    // them: a no-change run never builds it.
    let builder = BuilderInputs::dockerfile_with(
        &key_text,
        image.entrypoint.as_deref(),
        image.cmd.as_deref(),
        FilesInput::from_scan(&scan),
    );
    let (dockerfile, dockerfile_name) = match &scan.dockerfile_rel {
        Some(rel) => (
            DockerfileEntry::Replace {
                rel_path: rel.clone(),
                content: build_text.into(),
            },
            rel.clone(),
        ),
        None => {
            let name = context::tar::random_dockerfile_name();
            (
                DockerfileEntry::Extra {
                    name: name.clone(),
                    content: build_text.into(),
                },
                name,
            )
        }
    };
    let inputs = DecisionInputs::new(image, root, plan.push, builder);
    let content_key = if bases.all_keyed {
        ContentKey::of(plan.builder, &inputs)
    } else {
        None
    };
    Ok(Prepared {
        inputs,
        content_key,
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

/// What the image ends as, once its decision was carried out.
struct Done {
    status: Status,
    tags: Vec<String>,
    digest: Option<String>,
    pushed: bool,
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
    let bases = BaseImages::of(deps);
    let prepared = {
        let (plan, root, stop) = (plan.clone(), settings.root.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || prepare(&plan, &bases, &root, &stop)).await??
    };
    // Ctrl-C during the scan: nothing more for this image (no "building" after "interrupted").
    if cancel.is_cancelled() {
        return Err(context::ContextError::Cancelled.into());
    }
    let context_size = prepared
        .context
        .as_ref()
        .map(|c| (c.scan.file_count as u64, c.scan.total_bytes));
    let content_key = prepared.content_key.clone();
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
    // A dependency rebuilt in this run means a new base: rebuild too. (Its new content key
    // also changed the Dockerfile hash; the base is the reason to name.)
    if (!decision.is_rebuild() || decision == Decision::Rebuild(Reason::DockerfileChanged))
        && let Some((dep, _)) = deps.iter().find(|(_, (_, s))| s.status == Status::Built)
    {
        decision = Decision::Rebuild(Reason::BaseRebuilt { image: dep.clone() });
    }
    let recorded = recorded_tags(cached.as_ref());
    let success = |decision: Decision, done: Done| ImageSuccess {
        status: done.status,
        decision,
        tags: done.tags,
        digest: done.digest,
        pushed: done.pushed,
        context: context_size,
        content_key: content_key.clone(),
    };

    if settings.dry_run {
        emit.send(ImageEvent::Decision(decision.clone()));
        let tags = if matches!(decision, Decision::Rebuild(_) | Decision::Retag) {
            fresh_tags(plan).unwrap_or_default()
        } else {
            recorded
        };
        let status = if decision.does_work() {
            Status::WouldBuild
        } else {
            Status::Skipped
        };
        return Ok(success(
            decision,
            Done {
                status,
                tags,
                digest: None,
                pushed: false,
            },
        ));
    }

    if decision == Decision::Retag {
        emit.send(ImageEvent::Decision(decision.clone()));
        let tags = fresh_tags(plan)?;
        match retag(ctx, plan, cached.as_ref(), &recorded, &tags, emit, cancel).await? {
            Ok((digest, pushed)) => {
                commit(ctx, plan, pending, &tags, pushed, digest.clone())?;
                if let Some(key) = content_key.as_ref().filter(|_| pushed) {
                    record_in_registry(ctx, plan, key, digest.as_deref(), &tags, emit).await;
                }
                return Ok(success(
                    decision,
                    Done {
                        status: Status::Retagged,
                        tags,
                        digest,
                        pushed,
                    },
                ));
            }
            // The recorded image is gone: build it after all.
            Err(reason) => decision = Decision::Rebuild(reason),
        }
    } else if !decision.is_rebuild() && plan.builder != BuilderKind::Custom {
        emit.send(ImageEvent::Stage(Stage::Verifying));
        decision = verify(ctx, plan, decision, recorded.first()).await?;
    }

    // Built before, anywhere: reuse it from the registry instead of building.
    if let Decision::Rebuild(reason) = &decision
        && plan.registry_cache
        && reason.registry_cache_applies()
        && let Some(key) = &content_key
    {
        emit.send(ImageEvent::Stage(Stage::Verifying));
        if let Some(found) = from_registry(ctx, plan, key, emit, cancel).await? {
            let (source, done) = found;
            let decision = Decision::FoundInRegistry { source };
            emit.send(ImageEvent::Decision(decision.clone()));
            for tag in &done.tags {
                emit.send(ImageEvent::Pushed {
                    tag: format!("{}:{tag}", plan.config.image),
                    digest: done.digest.clone(),
                });
            }
            commit(ctx, plan, pending, &done.tags, true, done.digest.clone())?;
            return Ok(success(decision, done));
        }
    }
    emit.send(ImageEvent::Decision(decision.clone()));

    if decision == Decision::Skip {
        if let Some(note) = plan.delivery_note(false) {
            emit.send(ImageEvent::Note(note));
        }
        let digest = cached
            .as_ref()
            .and_then(|c| c.record.as_ref())
            .and_then(|r| r.push.as_ref())
            .and_then(|p| p.digest.clone());
        return Ok(success(
            decision,
            Done {
                status: Status::Skipped,
                tags: recorded,
                digest,
                pushed: false,
            },
        ));
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
        None if plan.push => (push(ctx, plan, &tags, emit, cancel).await?, true),
        None => (None, false),
    };
    commit(ctx, plan, pending, &tags, pushed, digest.clone())?;
    if let Some(key) = content_key.as_ref().filter(|_| pushed) {
        record_in_registry(ctx, plan, key, digest.as_deref(), &tags, emit).await;
    }
    Ok(success(
        decision.clone(),
        Done {
            status: if decision.is_rebuild() {
                Status::Built
            } else {
                Status::Pushed
            },
            tags,
            digest,
            pushed,
        },
    ))
}

/// Records a successful build, retag or reuse in the local cache.
fn commit(
    ctx: &JobContext,
    plan: &ImagePlan,
    pending: PendingEntry,
    tags: &[String],
    pushed: bool,
    digest: Option<String>,
) -> Result<(), ImageError> {
    let registry = Registry::of_image(&plan.config.image)
        .map(|r| r.host().to_string())
        .unwrap_or_default();
    ctx.cache.commit(
        pending,
        CacheOutcome {
            tags: tags.to_vec(),
            push: pushed.then_some(PushRecord { registry, digest }),
        },
    )?;
    Ok(())
}

/// Pushes every tag through the image's daemon; returns the digest.
async fn push(
    ctx: &JobContext,
    plan: &ImagePlan,
    tags: &[String],
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<Option<String>, ImageError> {
    emit.send(ImageEvent::Stage(Stage::Pushing));
    let request = PushRequest {
        image_key: plan.key.clone(),
        repository: plan.config.image.clone(),
        tags: tags.to_vec(),
        credentials: None,
    };
    let daemon = plan.build.daemon().cloned().unwrap_or_default();
    ctx.services
        .push(&daemon, request, &emit.sink(), cancel)
        .await
}

/// Runs `work` unless Ctrl-C comes first (then the image ends as interrupted, and nothing is
/// committed: the next run decides again from the old entry).
async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, ImageError>>,
) -> Result<T, ImageError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(context::ContextError::Cancelled.into()),
        result = work => result,
    }
}

/// `retag: tags changed`: gives the recorded image the tags `tags`. In the registry when it
/// was pushed and this run pushes (a manifest PUT per tag, nothing moves through this
/// machine); else in the image's daemon (`docker tag`), then loaded into kind or pushed as
/// the plan says. Returns (digest, pushed), or the rebuild reason when the recorded image is
/// in neither place.
async fn retag(
    ctx: &JobContext,
    plan: &ImagePlan,
    cached: Option<&CachedImage>,
    recorded: &[String],
    tags: &[String],
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<Result<(Option<String>, bool), Reason>, ImageError> {
    let image = &plan.config.image;
    let first = recorded.first().cloned().unwrap_or_default();
    let push_record = cached
        .and_then(|c| c.record.as_ref())
        .and_then(|r| r.push.as_ref());
    emit.send(ImageEvent::Stage(Stage::Tagging));
    if plan.push
        && let Some(record) = push_record
    {
        // By digest: the recorded tag may have been moved since. A record without a usable
        // digest falls back to the tag.
        let source = record
            .digest
            .as_ref()
            .and_then(|digest| Reference::parse(&format!("{image}@{digest}")).ok())
            .map_or_else(|| Reference::parse(&format!("{image}:{first}")), Ok)?;
        let tagged = unless_cancelled(
            cancel,
            ctx.services
                .registry_tag(&source, tags, plan.build.daemon()),
        )
        .await;
        match tagged {
            Ok(digest) => {
                for tag in tags {
                    emit.send(ImageEvent::Pushed {
                        tag: format!("{image}:{tag}"),
                        digest: Some(digest.clone()),
                    });
                }
                return Ok(Ok((Some(digest), true)));
            }
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => emit.send(ImageEvent::Note(format!(
                "cannot tag {source} in the registry ({e}); tagging the image in the Docker daemon instead"
            ))),
        }
    }
    let source = format!("{image}:{first}");
    let Some(daemon) = plan.build.daemon() else {
        return Ok(Err(Reason::MissingInRegistry));
    };
    if local_lookup(ctx, plan, &source).await? != Some(true) {
        return Ok(Err(if plan.push {
            Reason::MissingInRegistry
        } else {
            Reason::MissingInDaemon
        }));
    }
    unless_cancelled(cancel, ctx.services.tag_image(daemon, &source, image, tags)).await?;
    deliver_locally(ctx, plan, tags, emit).await?;
    if !plan.push {
        return Ok(Ok((None, false)));
    }
    let digest = push(ctx, plan, tags, emit, cancel).await?;
    Ok(Ok((digest, true)))
}

/// The registry content cache: looks this image's content key up in its repository; on a hit
/// gives the found manifest the tags this run wants (inside the registry; the caller reports
/// them after the decision). Returns the source
/// (`registry/repo:devspace-cache-…`) and the outcome, or `None` to build: a miss, a manifest
/// that cannot be reused (said in a note), or a registry that refuses (one warning per
/// registry and run, and no more cache requests to it).
async fn from_registry(
    ctx: &JobContext,
    plan: &ImagePlan,
    key: &ContentKey,
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<Option<(String, Done)>, ImageError> {
    let image = &plan.config.image;
    let source = format!("{image}:{}", key.cache_tag());
    let Ok(reference) = Reference::parse(&source) else {
        return Ok(None);
    };
    let registry = reference.registry().host().to_string();
    if ctx.registry_cache_is_off(&registry) {
        return Ok(None);
    }
    let daemon = plan.build.daemon();
    let found = unless_cancelled(cancel, ctx.services.registry_lookup(&reference, daemon)).await;
    let manifest = match found {
        Ok(Lookup::Found(manifest)) => manifest,
        Ok(Lookup::Missing) => return Ok(None),
        Ok(Lookup::Unusable(why)) => {
            emit.send(ImageEvent::Note(format!(
                "registry cache: {source} is not reused: {why}"
            )));
            return Ok(None);
        }
        Err(e) if e.is_cancelled() => return Err(e),
        Err(e) => {
            ctx.registry_cache_failed(&registry, &e, emit);
            return Ok(None);
        }
    };
    let tags = fresh_tags(plan)?;
    let by_digest = Reference::parse(&format!("{image}@{}", manifest.digest))?;
    let tagged =
        unless_cancelled(cancel, ctx.services.registry_tag(&by_digest, &tags, daemon)).await;
    match tagged {
        Ok(digest) => Ok(Some((
            source,
            Done {
                status: Status::Skipped,
                tags,
                digest: Some(digest),
                pushed: true,
            },
        ))),
        Err(e) if e.is_cancelled() => Err(e),
        Err(e) => {
            ctx.registry_cache_failed(&registry, &e, emit);
            Ok(None)
        }
    }
}

/// After a push: records the content key in the registry as the cache tag of the pushed
/// manifest (a registry-side PUT; works for every builder, kaniko included). A registry that
/// refuses gets one warning per run; the build itself succeeded.
async fn record_in_registry(
    ctx: &JobContext,
    plan: &ImagePlan,
    key: &ContentKey,
    digest: Option<&str>,
    tags: &[String],
    emit: &Emitter,
) {
    if !plan.registry_cache {
        return;
    }
    let image = &plan.config.image;
    let source = match (digest, tags.first()) {
        (Some(d), _) => format!("{image}@{d}"),
        (None, Some(tag)) => format!("{image}:{tag}"),
        (None, None) => return,
    };
    let Ok(source) = Reference::parse(&source) else {
        return;
    };
    let registry = source.registry().host().to_string();
    if ctx.registry_cache_is_off(&registry) {
        return;
    }
    let cache_tag = [key.cache_tag()];
    if let Err(e) = ctx
        .services
        .registry_tag(&source, &cache_tag, plan.build.daemon())
        .await
    {
        ctx.registry_cache_failed(&registry, &e, emit);
    }
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

    /// The digest of every image the fake registry holds.
    pub const DIGEST: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
        /// Registry-side tags: (source, new reference).
        pub registry_tags: Vec<(String, String)>,
        /// Daemon tags: (source, new reference).
        pub daemon_tags: Vec<(String, String)>,
        /// Registry cache lookups (references asked for).
        pub lookups: Vec<String>,
        /// References the registry has but that are no image manifest (a list, a missing
        /// blob), with the reason.
        pub unusable: HashMap<String, String>,
        /// The registry refuses cache lookups and registry-side tags (403).
        pub registry_refuses: bool,
        /// Registry-side tags wait until cancelled (to interrupt a retag midway).
        pub registry_tag_hangs: bool,
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

        fn refused() -> ImageError {
            ImageError::Registry(crate::registry::client::RegistryError::Unauthorized {
                registry: Registry::from_domain("127.0.0.1:5000"),
                status: 403,
                user: None,
                detail: "denied".into(),
            })
        }

        /// `repository:tag` of a reference the fake knows by tag, or any tag of its
        /// repository for a digest (every image here has one digest, [`DIGEST`]).
        fn resolve(world: &World, reference: &Reference) -> Option<String> {
            let repo = reference.name();
            match (reference.digest(), reference.tag()) {
                (Some(_), _) => world
                    .registry
                    .iter()
                    .find(|r| r.rsplit_once(':').is_some_and(|(name, _)| name == repo))
                    .cloned(),
                (None, tag) => {
                    let text = format!("{repo}:{}", tag.unwrap_or("latest"));
                    world.registry.contains(&text).then_some(text)
                }
            }
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
                Ok(Some(DIGEST.into()))
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

        fn tag_image<'a>(
            &'a self,
            _daemon: &'a DaemonChoice,
            source: &'a str,
            repository: &'a str,
            tags: &'a [String],
        ) -> BoxFuture<'a, Result<(), ImageError>> {
            async move {
                let mut world = self.world();
                assert!(world.local.contains(source), "tag of a missing {source}");
                for tag in tags {
                    let target = format!("{repository}:{tag}");
                    world.daemon_tags.push((source.to_owned(), target.clone()));
                    world.local.insert(target);
                }
                Ok(())
            }
            .boxed()
        }

        fn registry_lookup<'a>(
            &'a self,
            reference: &'a Reference,
            _daemon: Option<&'a DaemonChoice>,
        ) -> BoxFuture<'a, Result<Lookup, ImageError>> {
            async move {
                let mut world = self.world();
                world.lookups.push(reference.to_string());
                if world.registry_refuses {
                    return Err(Self::refused());
                }
                let Some(found) = Self::resolve(&world, reference) else {
                    return Ok(Lookup::Missing);
                };
                if let Some(why) = world.unusable.get(&found) {
                    return Ok(Lookup::Unusable(why.clone()));
                }
                Ok(Lookup::Found(crate::registry::client::Manifest {
                    digest: DIGEST.into(),
                    media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                    bytes: Default::default(),
                    body: serde_json::Value::Null,
                }))
            }
            .boxed()
        }

        fn registry_tag<'a>(
            &'a self,
            source: &'a Reference,
            tags: &'a [String],
            _daemon: Option<&'a DaemonChoice>,
        ) -> BoxFuture<'a, Result<String, ImageError>> {
            async move {
                if self.world().registry_tag_hangs {
                    futures_util::future::pending::<()>().await;
                }
                let mut world = self.world();
                if world.registry_refuses {
                    return Err(Self::refused());
                }
                let Some(found) = Self::resolve(&world, source) else {
                    return Err(ImageError::ManifestMissing {
                        reference: source.to_string(),
                    });
                };
                for tag in tags {
                    let target = format!("{}:{tag}", source.name());
                    world.registry_tags.push((found.clone(), target.clone()));
                    world.registry.insert(target);
                }
                Ok(DIGEST.into())
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
            self.run_until(services, settings, plan_settings, CancellationToken::new())
                .await
        }

        /// [`Project::run`] with a cancellation token (Ctrl-C).
        async fn run_until(
            &self,
            services: &FakeServices,
            settings: JobSettings,
            plan_settings: PlanSettings,
            cancel: CancellationToken,
        ) -> (
            IndexMap<String, Result<ImageSuccess, ImageError>>,
            Vec<Event>,
        ) {
            let ctx = JobContext::new(
                JobSettings {
                    root: self.root(),
                    ..settings
                },
                Cache::open(&self.root()),
                Arc::new(services.clone()),
            );
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
                let res = run_image(&ctx, p, &deps, &emit, &cancel).await;
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
        assert_eq!(app.digest.as_deref(), Some(fakes::DIGEST));
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

    fn cached_tags(project: &Project, key: &str) -> Vec<String> {
        Cache::open(&project.root())
            .cached("", key)
            .and_then(|c| c.record)
            .map(|r| r.tags)
            .unwrap_or_default()
    }

    fn with_tags(tags: &[&str]) -> PlanSettings {
        PlanSettings {
            tag_override: tags.iter().map(|t| t.to_string()).collect(),
            ..PlanSettings::default()
        }
    }

    fn cached_on() -> PlanSettings {
        PlanSettings {
            registry_cache: true,
            ..PlanSettings::default()
        }
    }

    #[tokio::test]
    async fn tags_changed_retags_in_the_registry_and_never_builds() {
        let project = Project::new(false);
        let services = FakeServices::default();
        project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        // `-t v2`, then back to the configured `v1`: two retags, one build.
        for (settings, want) in [(with_tags(&["v2"]), "v2"), (PlanSettings::default(), "v1")] {
            let (r, events) = project.run(&services, pushing(), settings).await;
            let app = ok(&r["app"]);
            assert_eq!(app.decision, Decision::Retag);
            assert_eq!(app.decision.to_string(), "retag: tags changed");
            assert_eq!(app.status, Status::Retagged);
            assert_eq!(app.tags, [want]);
            assert!(app.pushed);
            assert!(
                events
                    .iter()
                    .any(|e| e.kind == ImageEvent::Stage(Stage::Tagging))
            );
            assert_eq!(cached_tags(&project, "app"), [want]);
        }
        {
            let world = services.world();
            assert_eq!(world.builds.len(), 1, "built once");
            assert_eq!(world.pushes, ["127.0.0.1:5000/demo-app:v1"], "pushed once");
            let targets: Vec<&str> = world
                .registry_tags
                .iter()
                .map(|(_, to)| to.as_str())
                .collect();
            assert_eq!(
                targets,
                ["127.0.0.1:5000/demo-app:v2", "127.0.0.1:5000/demo-app:v1"]
            );
        }
        // Nothing changed since: a plain skip.
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        assert_eq!(ok(&r["app"]).decision, Decision::Skip);
    }

    #[tokio::test]
    async fn retag_in_the_daemon_when_not_pushed_and_rebuild_when_gone() {
        let project = Project::new(false);
        let services = FakeServices::default();
        let local = JobSettings {
            skip_push: true,
            ..JobSettings::default()
        };
        let no_push = |tags: &[&str]| PlanSettings {
            skip_push: true,
            ..with_tags(tags)
        };
        project.run(&services, local.clone(), no_push(&[])).await;
        let (r, _) = project
            .run(&services, local.clone(), no_push(&["v2"]))
            .await;
        let app = ok(&r["app"]);
        assert_eq!(app.status, Status::Retagged);
        assert!(!app.pushed);
        assert_eq!(
            services.world().daemon_tags,
            [(
                "127.0.0.1:5000/demo-app:v1".to_string(),
                "127.0.0.1:5000/demo-app:v2".to_string()
            )]
        );
        assert!(services.world().pushes.is_empty());
        // Pushing now: the recorded (v2) image was never pushed; the retag to v3 tags it in
        // the daemon and pushes the new tag.
        let (r, _) = project.run(&services, pushing(), with_tags(&["v3"])).await;
        assert_eq!(ok(&r["app"]).status, Status::Retagged);
        assert_eq!(services.world().pushes, ["127.0.0.1:5000/demo-app:v3"]);
        // Gone from daemon and registry: the retag becomes a build.
        services.world().local.clear();
        services.world().registry.clear();
        let (r, _) = project.run(&services, local, no_push(&["v4"])).await;
        let app = ok(&r["app"]);
        assert_eq!(app.decision, Decision::Rebuild(Reason::MissingInDaemon));
        assert_eq!(app.status, Status::Built);
        assert_eq!(services.world().builds.len(), 2);
    }

    #[tokio::test]
    async fn a_base_with_new_tags_does_not_rebuild_its_dependents() {
        let mut project = Project::new(true);
        let services = FakeServices::default();
        project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        project.image("base").tags = vec!["b2".into()];
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        assert_eq!(ok(&r["base"]).decision, Decision::Retag);
        assert_eq!(ok(&r["app"]).decision, Decision::Skip);
        assert_eq!(services.world().builds.len(), 2, "nothing rebuilt");
        // A base with new content still rebuilds them (its content key moved).
        std::fs::write(project.root().join("base/Dockerfile"), "FROM busybox:1\n").unwrap();
        let (r, _) = project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        assert!(ok(&r["app"]).decision.is_rebuild());
    }

    #[tokio::test]
    async fn ctrl_c_during_a_retag_commits_nothing() {
        let project = Project::new(false);
        let services = FakeServices::default();
        project
            .run(&services, pushing(), PlanSettings::default())
            .await;
        services.world().registry_tag_hangs = true;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            stop.cancel();
        });
        let (r, _) = project
            .run_until(&services, pushing(), with_tags(&["v2"]), cancel)
            .await;
        assert!(err(&r["app"]).is_cancelled(), "{:?}", r["app"]);
        assert_eq!(cached_tags(&project, "app"), ["v1"], "old entry kept");
        services.world().registry_tag_hangs = false;
        let (r, _) = project.run(&services, pushing(), with_tags(&["v2"])).await;
        assert_eq!(ok(&r["app"]).decision, Decision::Retag);
        assert_eq!(cached_tags(&project, "app"), ["v2"]);
        assert_eq!(services.world().builds.len(), 1);
    }

    #[tokio::test]
    async fn registry_cache_a_fresh_clone_builds_nothing() {
        let project = Project::new(true);
        let services = FakeServices::default();
        project.run(&services, pushing(), cached_on()).await;
        let cache_tags: Vec<String> = services
            .world()
            .registry_tags
            .iter()
            .map(|(_, to)| to.clone())
            .collect();
        assert_eq!(cache_tags.len(), 2, "one cache tag per pushed image");
        assert!(
            cache_tags
                .iter()
                .all(|t| t.contains(":devspace-cache-") && t.len() == t.find(":d").unwrap() + 56),
            "{cache_tags:?}"
        );
        // A fresh clone: no local cache.
        std::fs::remove_dir_all(project.root().join(".devspace")).unwrap();
        services.world().local.clear();
        let (r, _) = project.run(&services, pushing(), cached_on()).await;
        for key in ["base", "app"] {
            let s = ok(&r[key]);
            let Decision::FoundInRegistry { source } = &s.decision else {
                panic!("{key}: {:?}", s.decision)
            };
            assert!(cache_tags.contains(source), "{source}");
            assert!(
                s.decision
                    .to_string()
                    .starts_with("skip (found in registry: built elsewhere): 127.0.0.1:5000/"),
            );
            assert_eq!(s.status, Status::Skipped);
            assert!(s.pushed);
            assert_eq!(s.digest.as_deref(), Some(fakes::DIGEST));
        }
        assert_eq!(
            services.world().builds.len(),
            2,
            "nothing built the second time"
        );
        // Recorded locally as built and pushed: the next run is a plain skip.
        let (r, _) = project.run(&services, pushing(), cached_on()).await;
        assert_eq!(ok(&r["app"]).decision, Decision::Skip);
        // Another build arg misses the cache.
        let mut project = project;
        project.image("app").build.docker = Some(DockerBuildConfig {
            options: Some(crate::config::BuildOptions {
                build_args: IndexMap::from([("X".to_string(), Some("1".to_string()))]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let (r, _) = project.run(&services, pushing(), cached_on()).await;
        assert_eq!(ok(&r["app"]).status, Status::Built);
    }

    #[tokio::test]
    async fn registry_cache_is_not_asked_without_a_push_or_when_off_or_forced() {
        for (name, settings, plan_settings) in [
            (
                "skip push",
                JobSettings {
                    skip_push: true,
                    ..JobSettings::default()
                },
                PlanSettings {
                    skip_push: true,
                    ..cached_on()
                },
            ),
            ("turned off", pushing(), PlanSettings::default()),
            (
                "force build",
                JobSettings {
                    force_build: true,
                    ..JobSettings::default()
                },
                cached_on(),
            ),
        ] {
            let project = Project::new(false);
            let services = FakeServices::default();
            project.run(&services, settings, plan_settings).await;
            assert!(services.world().lookups.is_empty(), "{name}");
        }
    }

    #[tokio::test]
    async fn registry_cache_unusable_or_refused_means_a_normal_build() {
        // A manifest list (or missing blob) under the cache tag: not a hit, said in a note.
        let project = Project::new(false);
        let services = FakeServices::default();
        project.run(&services, pushing(), cached_on()).await;
        let cache_ref = services.world().registry_tags[0].1.clone();
        services.world().unusable.insert(
            cache_ref,
            "a manifest list (application/vnd.oci.image.index.v1+json)".into(),
        );
        std::fs::remove_dir_all(project.root().join(".devspace")).unwrap();
        let (r, events) = project.run(&services, pushing(), cached_on()).await;
        assert_eq!(ok(&r["app"]).status, Status::Built);
        assert!(
            notes(&events)
                .iter()
                .any(|n| n.contains("is not reused: a manifest list")),
            "{:?}",
            notes(&events)
        );

        // A registry that refuses: both images build, one warning for the run.
        let project = Project::new(true);
        let services = FakeServices::default();
        services.world().registry_refuses = true;
        let (r, events) = project.run(&services, pushing(), cached_on()).await;
        for key in ["base", "app"] {
            assert_eq!(ok(&r[key]).status, Status::Built, "{key}");
        }
        let warnings: Vec<String> = notes(&events)
            .into_iter()
            .filter(|n| n.starts_with("warning: registry cache disabled for 127.0.0.1:5000"))
            .collect();
        assert_eq!(warnings.len(), 1, "{:?}", notes(&events));
        assert_eq!(services.world().lookups.len(), 1, "not asked again");
    }
}
