//! Step 1, prepare (on a blocking thread): read the Dockerfile, rewrite the `FROM`s naming
//! images of this run, apply the overrides, scan the context and hash it into the
//! [`DecisionInputs`] and the content key; and the tags an image has (recorded) or gets (fresh).

use super::shared::{ImageSuccess, JobContext};
use crate::image::cache::CachedImage;
use crate::image::content_key::{self, ContentKey};
use crate::image::context::{self, tar::DockerfileEntry};
use crate::image::decision::{BuilderInputs, DecisionInputs, FilesInput};
use crate::image::{dockerfile, tag};
use crate::pipeline::error::ImageError;
use crate::pipeline::plan::{BuilderChoice, ImagePlan};
use indexmap::IndexMap;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// The inputs computed before deciding.
pub(super) struct Prepared {
    pub(super) inputs: DecisionInputs,
    /// The content key (`None`: custom builder, or a base image without one).
    pub(super) content_key: Option<ContentKey>,
    /// The context and the Dockerfile's place in it (docker/kaniko only).
    pub(super) context: Option<PreparedContext>,
}

pub(super) struct PreparedContext {
    pub(super) scan: context::ContextScan,
    /// How the final Dockerfile enters the tar, and its path there.
    pub(super) dockerfile: DockerfileEntry,
    pub(super) dockerfile_name: String,
}

impl Prepared {
    /// (files, bytes) of the context, when scanned.
    pub(super) fn context_size(&self) -> Option<(u64, u64)> {
        self.context
            .as_ref()
            .map(|c| (c.scan.file_count as u64, c.scan.total_bytes))
    }
}

/// Step 1 on a blocking thread, from the results of the images this one builds `FROM`.
pub(super) async fn prepare_image(
    ctx: &JobContext,
    plan: &ImagePlan,
    deps: &IndexMap<String, (String, ImageSuccess)>,
    cancel: &CancellationToken,
) -> Result<Prepared, ImageError> {
    let bases = BaseImages::of(deps);
    let prepared = {
        let (plan, root, stop) = (plan.clone(), ctx.settings.root.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || prepare(&plan, &bases, &root, &stop)).await??
    };
    // Ctrl-C during the scan: nothing more for this image (no "building" after "interrupted").
    if cancel.is_cancelled() {
        return Err(context::ContextError::Cancelled.into());
    }
    Ok(prepared)
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
pub(super) fn recorded_tags(cached: Option<&CachedImage>) -> Vec<String> {
    let Some(c) = cached else { return Vec::new() };
    match &c.record {
        Some(r) if !r.tags.is_empty() => r.tags.clone(),
        _ => c.entry.tag.iter().cloned().collect(),
    }
}

pub(super) fn fresh_tags(plan: &ImagePlan) -> Result<Vec<String>, ImageError> {
    let image = &plan.config;
    Ok(tag::resolve_tags(
        &image.image,
        &tag::configured_tags(&image.tags, image.devspace6, &mut rand::rng()),
        None,
        image.tags_append_random == Some(true),
        &mut rand::rng(),
    )?)
}
