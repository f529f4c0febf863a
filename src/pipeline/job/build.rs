//! Step 5, build: with this run's tags, with the planned builder, or, when the Docker daemon
//! does not answer, with its kaniko fallback (said in one note; when no cluster answers
//! either, both are named); then `kind load` unless the builder pushed.

use super::deliver::deliver_locally;
use super::prepare::{PreparedContext, fresh_tags};
use super::shared::{Emitter, JobContext};
use crate::builder::{BuildRequest, ContextBody, DaemonError};
use crate::image::cache::CachedImage;
use crate::image::context::{self, tar::TarOptions};
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{ImageEvent, Stage};
use crate::pipeline::plan::{BuilderChoice, Fallback, ImagePlan};
use crate::pipeline::services::ReadyBuilder;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// A rebuild: this run's tags (with a note when the first is the last build's), the build,
/// then `kind load` unless the builder pushed. Returns the tags and, when the builder pushed
/// (kaniko), the digest it reported.
pub(super) async fn rebuild(
    ctx: &JobContext,
    plan: &ImagePlan,
    cached: Option<&CachedImage>,
    context: Option<PreparedContext>,
    emit: &Emitter,
    cancel: &CancellationToken,
) -> Result<(Vec<String>, Option<Option<String>>), ImageError> {
    let tags = fresh_tags(plan)?;
    if let Some(prev) = cached.and_then(|c| c.entry.tag.clone())
        && tags.first() == Some(&prev)
    {
        emit.send(ImageEvent::Note(format!(
            "rebuilt image {}:{prev} has the same tag as the last build; a deployment may not pick it up",
            plan.config.image
        )));
    }
    emit.send(ImageEvent::Stage(Stage::Building));
    let outcome = build(ctx, plan, &tags, context, emit, cancel).await?;
    let pushed_by_build = if outcome.pushed {
        Some(outcome.digest)
    } else {
        deliver_locally(ctx, plan, &tags, emit).await?;
        None
    };
    Ok((tags, pushed_by_build))
}

/// How often a build is tried when the daemon's cache lookup races with an image removal.
const DAEMON_CACHE_RACE_ATTEMPTS: u32 = 3;

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
    let body = |c: &PreparedContext| -> ContextBody {
        Box::pin(context::tar::context_tar_stream(
            c.scan.root.clone(),
            c.scan.entries.clone(),
            TarOptions {
                dockerfile: c.dockerfile.clone(),
                ..TarOptions::default()
            },
        ))
    };
    let sink = emit.sink();
    let mut attempt = 1;
    let result = loop {
        let result = ready
            .builder
            .build(&request, context.as_ref().map(body), &sink, cancel)
            .await;
        match result {
            // The daemon's cache lookup tripped over an image someone removed meanwhile:
            // nothing was built, so build again (see `BuildError::is_daemon_cache_race`).
            Err(e)
                if e.is_daemon_cache_race()
                    && attempt < DAEMON_CACHE_RACE_ATTEMPTS
                    && !cancel.is_cancelled() =>
            {
                emit.send(ImageEvent::Note(format!(
                    "the Docker daemon's build-cache lookup failed on an image removed at that moment ({e}); building again"
                )));
                attempt += 1;
            }
            result => break result,
        }
    };
    match (result, fell_back_from) {
        (Ok(outcome), _) => Ok(outcome),
        (Err(e), Some(daemon)) => Err(fallback_failed(daemon, e.into())),
        (Err(e), None) => Err(e.into()),
    }
}
