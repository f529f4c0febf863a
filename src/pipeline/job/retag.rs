//! Step 3a, retag (`retag: tags changed`): the recorded image gets this run's tags, in the
//! registry or in the daemon, without a build.

use super::deliver::{deliver_locally, push};
use super::shared::{Emitter, JobContext, unless_cancelled};
use super::verify::local_lookup;
use crate::image::cache::CachedImage;
use crate::image::decision::Reason;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{ImageEvent, Stage};
use crate::pipeline::plan::ImagePlan;
use crate::registry::reference::Reference;
use tokio_util::sync::CancellationToken;

/// `retag: tags changed`: gives the recorded image the tags `tags`. In the registry when it
/// was pushed and this run pushes (a manifest PUT per tag, nothing moves through this
/// machine); else in the image's daemon (`docker tag`), then loaded into kind or pushed as
/// the plan says. Returns (digest, pushed), or the rebuild reason when the recorded image is
/// in neither place.
pub(super) async fn retag(
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
                    emit.send(ImageEvent::TaggedInRegistry {
                        tag: format!("{image}:{tag}"),
                        digest: digest.clone(),
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
