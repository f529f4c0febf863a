//! One image's pipeline, a straight line over what the plan fixed and the
//! [`Services`](crate::pipeline::services::Services) port: [`run_image`] calls the steps in
//! order, each in a module of its own:
//!
//! 1. `prepare`: Dockerfile → `FROM` rewrite → overrides → context scan → content key;
//! 2. `decide`: the cache's decision (`Cache::decide_entry`); a base rebuilt in this run
//!    rebuilds its dependents; a dry run or a skip ends here;
//! 3. `retag` (tags changed only) or `verify` that a skipped tag still exists;
//! 4. `registry_cache`: built before, anywhere? reuse it from the registry;
//! 5. `build` with the planned builder (or its kaniko fallback);
//! 6. `deliver`: kind load → push → commit the cache entry the decision produced;
//! 7. `registry_cache` again: record the content key in the registry (with the commit, in
//!    [`finish`]).
//!
//! `shared` holds what every step works with (settings, context, emitter, results). Sends
//! typed events; prints nothing. The entry is committed only after the image was built and
//! pushed (or retagged, or found), so a failed or interrupted image leaves its old entry in
//! place.

mod build;
mod decide;
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
use crate::image::cache::{Decided, PendingEntry};
use crate::image::content_key::ContentKey;
use crate::image::decision::Decision;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{ImageEvent, Stage, Status};
use crate::pipeline::plan::ImagePlan;
use build::rebuild;
use decide::{decide, dry_run, skipped};
use deliver::{commit, push};
use indexmap::IndexMap;
use prepare::{fresh_tags, prepare_image, recorded_tags};
use registry_cache::{from_registry, record_in_registry, report_found};
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
    emit.send(ImageEvent::Stage(Stage::Hashing));
    let prepared = prepare_image(ctx, plan, deps, cancel).await?;
    let context_size = prepared.context_size();
    let content_key = prepared.content_key.clone();
    let Decided {
        mut decision,
        cached,
        pending,
    } = decide(ctx, plan, deps, &prepared);
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

    if ctx.settings.dry_run {
        emit.send(ImageEvent::Decision(decision.clone()));
        let done = dry_run(plan, &decision, recorded);
        return Ok(success(decision, done));
    }

    if decision == Decision::Retag {
        emit.send(ImageEvent::Decision(decision.clone()));
        let tags = fresh_tags(plan)?;
        match retag(ctx, plan, cached.as_ref(), &recorded, &tags, emit, cancel).await? {
            Ok((digest, pushed)) => {
                let done = Done {
                    status: Status::Retagged,
                    tags,
                    digest,
                    pushed,
                };
                finish(ctx, plan, pending, content_key.as_ref(), &done, emit).await?;
                return Ok(success(decision, done));
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
        if let Some((source, done)) = from_registry(ctx, plan, key, emit, cancel).await? {
            let decision = Decision::FoundInRegistry { source };
            report_found(plan, &decision, &done, emit);
            commit(ctx, plan, pending, &done.tags, true, done.digest.clone())?;
            return Ok(success(decision, done));
        }
    }
    emit.send(ImageEvent::Decision(decision.clone()));

    if decision == Decision::Skip {
        let done = skipped(plan, cached.as_ref(), recorded, emit);
        return Ok(success(decision, done));
    }

    let (tags, pushed_by_build) = if decision.is_rebuild() {
        rebuild(ctx, plan, cached.as_ref(), prepared.context, emit, cancel).await?
    } else {
        (recorded, None)
    };
    let (digest, pushed) = match pushed_by_build {
        Some(digest) => (digest, true),
        None if plan.push => (push(ctx, plan, &tags, emit, cancel).await?, true),
        None => (None, false),
    };
    let done = Done {
        status: if decision.is_rebuild() {
            Status::Built
        } else {
            Status::Pushed
        },
        tags,
        digest,
        pushed,
    };
    finish(ctx, plan, pending, content_key.as_ref(), &done, emit).await?;
    Ok(success(decision, done))
}

/// Commits the cache entry the decision produced, then, when the image was pushed, records
/// its content key in the registry.
async fn finish(
    ctx: &JobContext,
    plan: &ImagePlan,
    pending: PendingEntry,
    content_key: Option<&ContentKey>,
    done: &Done,
    emit: &Emitter,
) -> Result<(), ImageError> {
    commit(
        ctx,
        plan,
        pending,
        &done.tags,
        done.pushed,
        done.digest.clone(),
    )?;
    if let Some(key) = content_key.filter(|_| done.pushed) {
        record_in_registry(ctx, plan, key, done.digest.as_deref(), &done.tags, emit).await;
    }
    Ok(())
}
