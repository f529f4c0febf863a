//! Step 2, decide: the cache's decision for the prepared inputs (a base rebuilt in this run
//! rebuilds its dependents too), and what the image ends as when nothing more is done: a dry
//! run, or a skip.

use super::prepare::{Prepared, fresh_tags};
use super::shared::{Done, Emitter, ImageSuccess, JobContext};
use crate::image::cache::{CachedImage, Decided};
use crate::image::decision::{Decision, Reason};
use crate::pipeline::events::{ImageEvent, Status};
use crate::pipeline::plan::ImagePlan;
use indexmap::IndexMap;

/// Asks the cache, and turns the answer into a rebuild when a base was rebuilt in this run.
pub(super) fn decide(
    ctx: &JobContext,
    plan: &ImagePlan,
    deps: &IndexMap<String, (String, ImageSuccess)>,
    prepared: &Prepared,
) -> Decided {
    let settings = &ctx.settings;
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
    Decided {
        decision,
        cached,
        pending,
    }
}

/// `--dry-run`: what the image would end as (the tags it would get), having contacted nothing.
pub(super) fn dry_run(plan: &ImagePlan, decision: &Decision, recorded: Vec<String>) -> Done {
    let tags = if matches!(decision, Decision::Rebuild(_) | Decision::Retag) {
        fresh_tags(plan).unwrap_or_default()
    } else {
        recorded
    };
    let status = match decision {
        Decision::Retag => Status::WouldRetag,
        Decision::PushOnly(_) => Status::WouldPush,
        d if d.does_work() => Status::WouldBuild,
        _ => Status::Skipped,
    };
    Done {
        status,
        tags,
        digest: None,
        pushed: false,
    }
}

/// A verified skip: the recorded tags and push digest, and the plan's delivery note.
pub(super) fn skipped(
    plan: &ImagePlan,
    cached: Option<&CachedImage>,
    recorded: Vec<String>,
    emit: &Emitter,
) -> Done {
    if let Some(note) = plan.delivery_note(false) {
        emit.send(ImageEvent::Note(note));
    }
    let digest = cached
        .and_then(|c| c.record.as_ref())
        .and_then(|r| r.push.as_ref())
        .and_then(|p| p.digest.clone());
    Done {
        status: Status::Skipped,
        tags: recorded,
        digest,
        pushed: false,
    }
}
