//! Steps 4 and 7, the registry content cache: before a build, reuse an image built before
//! anywhere (found by its content key in its repository); after a push, record the content
//! key there. A registry that refuses is warned about once per run and not asked again.

use super::prepare::fresh_tags;
use super::shared::{Done, Emitter, JobContext, unless_cancelled};
use crate::diagnostic::Diagnostic;
use crate::image::content_key::ContentKey;
use crate::image::decision::Decision;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{ImageEvent, Status};
use crate::pipeline::plan::ImagePlan;
use crate::registry::client::Lookup;
use crate::registry::reference::Reference;
use tokio_util::sync::CancellationToken;

impl JobContext {
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

/// The registry content cache: looks this image's content key up in its repository; on a hit
/// gives the found manifest the tags this run wants (inside the registry; [`report_found`] says
/// them after the decision). Returns the source
/// (`registry/repo:devspace-cache-…`) and the outcome, or `None` to build: a miss, a manifest
/// that cannot be reused (said in a note), or a registry that refuses (one warning per
/// registry and run, and no more cache requests to it).
pub(super) async fn from_registry(
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

/// Says what the registry cache found: the decision, then each tag the found image got.
pub(super) fn report_found(plan: &ImagePlan, decision: &Decision, done: &Done, emit: &Emitter) {
    emit.send(ImageEvent::Decision(decision.clone()));
    for tag in &done.tags {
        emit.send(ImageEvent::TaggedInRegistry {
            tag: format!("{}:{tag}", plan.config.image),
            digest: done.digest.clone().unwrap_or_default(),
        });
    }
}

/// After a push: records the content key in the registry as the cache tag of the pushed
/// manifest (a registry-side PUT; works for every builder, kaniko included). A registry that
/// refuses gets one warning per run; the build itself succeeded.
pub(super) async fn record_in_registry(
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
