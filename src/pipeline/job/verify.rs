//! Step 3b, verify: a skipped (or push-only) image must still exist in the registry or the
//! daemon it is used from; otherwise the decision turns into a push or a rebuild.

use super::shared::JobContext;
use crate::image::decision::{Decision, PushReason, Reason};
use crate::pipeline::error::ImageError;
use crate::pipeline::plan::{BuilderChoice, Fallback, ImagePlan};
use crate::registry::reference::Reference;

/// Trust, but verify: a skipped (or push-only) image must still exist where it is used.
/// Returns the decision the lookups lead to.
pub(super) async fn verify(
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
pub(super) async fn local_lookup(
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
