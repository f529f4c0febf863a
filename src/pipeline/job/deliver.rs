//! Step 6, deliver: where the image ends: loaded into a local cluster (`kind load`), pushed,
//! and the cache entry its decision produced committed.

use super::shared::{Emitter, JobContext};
use crate::builder::PushRequest;
use crate::image::cache::{BuildOutcome as CacheOutcome, PendingEntry, PushRecord};
use crate::kube::local::ImageDelivery;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{ImageEvent, Stage};
use crate::pipeline::plan::ImagePlan;
use crate::registry::reference::Registry;
use tokio_util::sync::CancellationToken;

/// Makes a freshly built image visible to a local cluster (`kind load`) and says so.
pub(super) async fn deliver_locally(
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

/// Pushes every tag through the image's daemon; returns the digest.
pub(super) async fn push(
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

/// Records a successful build, retag or reuse in the local cache.
pub(super) fn commit(
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
