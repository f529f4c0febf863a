//! One image's pipeline, a straight line over what the plan fixed and the
//! [`Services`](crate::pipeline::services::Services) port: [`run_image`] calls the steps in
//! order, each in a module of its own:
//!
//! 1. `prepare`: Dockerfile → `FROM` rewrite → overrides → context scan → content key;
//! 2. decide: the cache's decision (`Cache::decide_entry`); a base rebuilt in this run
//!    rebuilds its dependents;
//! 3. `retag` (tags changed only) or `verify` that a skipped tag still exists;
//! 4. `registry_cache`: built before, anywhere? reuse it from the registry;
//! 5. `build` with the planned builder (or its kaniko fallback);
//! 6. `deliver`: kind load → push → commit the cache entry the decision produced;
//! 7. `registry_cache` again: record the content key in the registry.
//!
//! `shared` holds what every step works with (settings, context, emitter, results). Sends
//! typed events; prints nothing. The entry is committed only after the image was built and
//! pushed (or retagged, or found), so a failed or interrupted image leaves its old entry in
//! place.

mod build;
mod deliver;
mod prepare;
mod registry_cache;
mod retag;
mod shared;
mod verify;

#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod tests;

pub use shared::{Emitter, ImageSuccess, JobContext, JobSettings};

use crate::config::BuilderKind;
use crate::image::cache::Decided;
use crate::image::context;
use crate::image::decision::{Decision, Reason};
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{ImageEvent, Stage, Status};
use crate::pipeline::plan::ImagePlan;
use build::build;
use deliver::{commit, deliver_locally, push};
use indexmap::IndexMap;
use prepare::{BaseImages, fresh_tags, prepare, recorded_tags};
use registry_cache::{from_registry, record_in_registry};
use retag::retag;
use shared::Done;
use tokio_util::sync::CancellationToken;
use verify::verify;

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
