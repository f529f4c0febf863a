//! Whether an image must be rebuilt (or only pushed) and why, from this run's inputs and what
//! the cache recorded for the last successful build. Pure: hashes in, [`Decision`] out.
//!
//! The hashes (all SHA-256, lowercase hex) are ours, not DevSpace's, and depend on content only:
//! - `dockerfileHash`: the Dockerfile text exactly as it is sent to the builder, i.e. after the
//!   entrypoint/cmd/append override and the `FROM` rewrite to fresh tags (so an image built
//!   `FROM` a rebuilt image of the same config is rebuilt too);
//! - `entrypointHash`: the effective entrypoint and cmd as a JSON pair (unambiguous, unlike
//!   DevSpace's plain concatenation); empty when neither is set, as in DevSpace;
//! - `imageConfigHash`: one hash per field of the resolved image config ([`image_config_fields`])
//!   combined into one, so a decision can name the fields that changed. Paths are relative to the
//!   project root, so a moved checkout matches;
//! - `contextHash`: computed by `image::context`, with the per-file digest list that lets a
//!   decision name the changed files; `customFilesHash`: [`files_hash`] of the `onChange` files.
//!
//! Which fields of the image config are in the key is a typed table, [`key_fields`]: every
//! field of the model is classified (in the key, excluded with the reason, or structure whose
//! fields are classified one by one), and the table does not compile when the model gains a
//! field. Excluded are the fields that change what happens around the image, not the image:
//! `createPullSecret` (deploy), `preferSyncOverRebuild` and `rebuildStrategy` (policy of `dev`),
//! `entrypoint`/`cmd` (their own `entrypointHash`), `skipPush` of docker and buildKit (push,
//! which has its own decision), `preferMinikube` and `disableFallback` (where it is built: the
//! existence check covers that), and the kaniko pod's scheduling, credentials and init
//! container. `tags` and `tagsAppendRandom` are not in the key either: tags are not content.
//! Their own hashes ([`DecisionInputs::tag_fields`], recorded beside the key) make a change of
//! tags alone (`-t`, a `tags:` edit, a var in a tag) a [`Decision::Retag`]: the recorded image
//! gets the new tags, nothing is rebuilt. (DevSpace puts tags in its `imageConfigHash` and
//! rebuilds; a cache written before tags left the key still matches, see [`decide`].)

use crate::config::model::ImageConfig;
use crate::image::context::ContextScan;
use crate::image::record::CachedImage;
use indexmap::IndexMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Component, Path};
use std::sync::{Arc, OnceLock};

pub use crate::image::record::FileDigests;

/// Where a field of the resolved image config stands in the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Part of the key: a change rebuilds the image (one hash per field, so the reason can
    /// name it).
    Key,
    /// Left out, because it does not change the image that is built; says why.
    Excluded(&'static str),
    /// An object of config structure: its fields are classified one by one.
    Structural,
}

/// The cache key's typed view of the image config: every field of `ImageConfig` and of its
/// builder blocks, by JSON path, with its [`KeyRole`]. The exhaustive destructuring below makes
/// a field added to the model a compile error until it is classified here; the tests check that
/// every path a config serialises to is in this table, for every builder kind.
pub fn key_fields() -> &'static [(&'static str, KeyRole)] {
    use crate::config::model::{
        BuildConfig, BuildKitConfig, BuildOptions, CustomConfig, DockerConfig, KanikoConfig,
    };
    #[rustfmt::skip]
    let _exhaustive = |i: ImageConfig, b: BuildConfig, d: DockerConfig, k: KanikoConfig,
                       c: CustomConfig, bk: BuildKitConfig, o: BuildOptions| {
        let ImageConfig { image: _, tags: _, dockerfile: _, context: _, entrypoint: _, cmd: _,
            create_pull_secret: _, prefer_sync_over_rebuild: _, inject_restart_helper: _,
            restart_helper_path: _, append_dockerfile_instructions: _, tags_append_random: _,
            rebuild_strategy: _, build: _, devspace6: _ } = i;
        let BuildConfig { docker: _, kaniko: _, custom: _, build_kit: _, disabled: _ } = b;
        let DockerConfig { prefer_minikube: _, skip_push: _, disable_fallback: _,
            use_build_kit: _, use_cli: _, args: _, options: _ } = d;
        let KanikoConfig { cache: _, snapshot_mode: _, image: _, init_image: _, args: _,
            command: _, namespace: _, insecure: _, pull_secret: _, skip_pull_secret_mount: _,
            additional_mounts: _, resources: _, node_selector: _, service_account: _,
            annotations: _, labels: _, init_env: _, env: _, env_from: _, tolerations: _,
            options: _ } = k;
        let CustomConfig { command: _, commands: _, args: _, append_args: _, image_flag: _,
            image_tag_only: _, skip_image_arg: _, on_change: _ } = c;
        let BuildKitConfig { skip_push: _, prefer_minikube: _, in_cluster: _, args: _,
            command: _, options: _ } = bk;
        let BuildOptions { target: _, network: _, build_args: _ } = o;
    };
    use KeyRole::{Excluded, Key, Structural};
    const PUSH: KeyRole = Excluded("push has its own decision");
    const WHERE: KeyRole = Excluded("where it is built: the existence check covers that");
    const POD: KeyRole = Excluded("the kaniko pod's scheduling, credentials or init container");
    const DEV: KeyRole = Excluded("policy of `devspace dev`");
    const TAGS: KeyRole = Excluded("tags are not content: a change of tags alone retags");
    #[rustfmt::skip]
    const FIELDS: &[(&str, KeyRole)] = &[
        ("image", Key), ("tags", TAGS), ("dockerfile", Key), ("context", Key),
        ("entrypoint", Excluded("its own entrypointHash")),
        ("cmd", Excluded("its own entrypointHash")),
        ("createPullSecret", Excluded("deploy")),
        ("preferSyncOverRebuild", DEV), ("rebuildStrategy", DEV),
        ("injectRestartHelper", Key), ("restartHelperPath", Key),
        ("appendDockerfileInstructions", Key), ("tagsAppendRandom", TAGS),
        ("build", Structural),
        ("build.disabled", Key),
        ("build.docker", Structural),
        ("build.docker.preferMinikube", WHERE), ("build.docker.skipPush", PUSH),
        ("build.docker.disableFallback", WHERE),
        ("build.docker.useBuildKit", Key), ("build.docker.useCli", Key),
        ("build.docker.args", Key),
        ("build.docker.options", Structural),
        ("build.docker.options.target", Key), ("build.docker.options.network", Key),
        ("build.docker.options.buildArgs", Key),
        ("build.kaniko", Structural),
        ("build.kaniko.cache", Key), ("build.kaniko.snapshotMode", Key),
        ("build.kaniko.image", Key), ("build.kaniko.initImage", POD),
        ("build.kaniko.args", Key), ("build.kaniko.command", Key),
        ("build.kaniko.namespace", POD), ("build.kaniko.insecure", Key),
        ("build.kaniko.pullSecret", POD), ("build.kaniko.skipPullSecretMount", POD),
        ("build.kaniko.additionalMounts", Key), ("build.kaniko.resources", POD),
        ("build.kaniko.nodeSelector", POD), ("build.kaniko.serviceAccount", POD),
        ("build.kaniko.annotations", POD), ("build.kaniko.labels", POD),
        ("build.kaniko.initEnv", POD), ("build.kaniko.env", Key),
        ("build.kaniko.envFrom", Key), ("build.kaniko.tolerations", POD),
        ("build.kaniko.options", Structural),
        ("build.kaniko.options.target", Key), ("build.kaniko.options.network", Key),
        ("build.kaniko.options.buildArgs", Key),
        ("build.custom", Structural),
        ("build.custom.command", Key), ("build.custom.commands", Key),
        ("build.custom.args", Key), ("build.custom.appendArgs", Key),
        ("build.custom.imageFlag", Key), ("build.custom.imageTagOnly", Key),
        ("build.custom.skipImageArg", Key), ("build.custom.onChange", Key),
        ("build.buildKit", Structural),
        ("build.buildKit.skipPush", PUSH), ("build.buildKit.preferMinikube", WHERE),
        ("build.buildKit.inCluster", Key), ("build.buildKit.args", Key),
        ("build.buildKit.command", Key),
        ("build.buildKit.options", Structural),
        ("build.buildKit.options.target", Key), ("build.buildKit.options.network", Key),
        ("build.buildKit.options.buildArgs", Key),
    ];
    FIELDS
}

/// The fields that only name the image (classified as excluded from the key): their hashes are
/// kept apart ([`tag_fields`]), so a change of them alone retags instead of rebuilding.
pub const TAG_FIELDS: &[&str] = &["tags", "tagsAppendRandom"];

/// The role of the field at `path` (`None`: not in the table, which the tests forbid).
pub fn key_role(path: &str) -> Option<KeyRole> {
    key_fields()
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, role)| *role)
}

/// A set of files and the hash over all of them. The per-file list is needed only to name
/// changed files and to commit, so it can be produced on first use ([`FilesInput::deferred`]):
/// a no-change run of a 100,000-file context then never builds it.
#[derive(Clone)]
pub struct FilesInput {
    /// `contextHash` or `customFilesHash`.
    pub hash: String,
    files: Arc<OnceLock<FileDigests>>,
    producer: Option<Arc<dyn Fn() -> FileDigests + Send + Sync>>,
}

impl FilesInput {
    /// A hash with its file list (sorted here).
    pub fn new(hash: String, mut files: FileDigests) -> Self {
        files.sort();
        Self {
            hash,
            files: Arc::new(OnceLock::from(files)),
            producer: None,
        }
    }

    /// A hash whose file list `producer` makes when first asked for (it must return the
    /// list sorted by path).
    pub fn deferred(
        hash: String,
        producer: impl Fn() -> FileDigests + Send + Sync + 'static,
    ) -> Self {
        Self {
            hash,
            files: Arc::new(OnceLock::new()),
            producer: Some(Arc::new(producer)),
        }
    }

    /// `onChange` files: the hash is [`files_hash`] of the list.
    pub fn from_files(files: FileDigests) -> Self {
        Self::new(files_hash(&files), files)
    }

    /// The scan of a build context by [`crate::image::context::scan_context`]: its hash and,
    /// deferred, its file digests.
    pub fn from_scan(scan: &ContextScan) -> Self {
        let scan = scan.clone();
        Self::deferred(scan.hash.to_string(), move || {
            scan.file_digests()
                .map(|(path, digest)| (path.to_owned(), digest.to_string()))
                .collect()
        })
    }

    /// The per-file digests, sorted by path.
    pub fn files(&self) -> &FileDigests {
        self.files
            .get_or_init(|| self.producer.as_ref().map(|p| p()).unwrap_or_default())
    }
}

impl fmt::Debug for FilesInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesInput")
            .field("hash", &self.hash)
            .field(
                "files",
                &self
                    .files
                    .get()
                    .map_or("(deferred)".to_owned(), |l| format!("{} files", l.len())),
            )
            .finish()
    }
}

impl PartialEq for FilesInput {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.files() == other.files()
    }
}

impl Eq for FilesInput {}

/// What the builder-specific part of the decision looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuilderInputs {
    /// Docker and kaniko: Dockerfile, entrypoint and context.
    Dockerfile {
        dockerfile_hash: String,
        entrypoint_hash: String,
        context: FilesInput,
    },
    /// The custom builder: its `onChange` files, `None` when it has no `onChange`.
    Custom { on_change: Option<FilesInput> },
}

impl BuilderInputs {
    /// Inputs of a docker/kaniko image from the final Dockerfile text (after override and
    /// `FROM` rewrite), the effective entrypoint/cmd, the context hash and its file list.
    pub fn dockerfile(
        final_dockerfile: &str,
        entrypoint: Option<&[String]>,
        cmd: Option<&[String]>,
        context_hash: String,
        files: FileDigests,
    ) -> Self {
        Self::dockerfile_with(
            final_dockerfile,
            entrypoint,
            cmd,
            FilesInput::new(context_hash, files),
        )
    }

    /// Like [`BuilderInputs::dockerfile`] with the context as a [`FilesInput`]; with
    /// [`FilesInput::from_scan`] the per-file list is built only if a decision or a commit
    /// needs it.
    pub fn dockerfile_with(
        final_dockerfile: &str,
        entrypoint: Option<&[String]>,
        cmd: Option<&[String]>,
        context: FilesInput,
    ) -> Self {
        Self::Dockerfile {
            dockerfile_hash: dockerfile_hash(final_dockerfile),
            entrypoint_hash: entrypoint_hash(entrypoint, cmd),
            context,
        }
    }

    /// The files hash this input is recorded under (`contextHash` or `customFilesHash`).
    pub fn files(&self) -> Option<&FilesInput> {
        match self {
            BuilderInputs::Dockerfile { context, .. } => Some(context),
            BuilderInputs::Custom { on_change } => on_change.as_ref(),
        }
    }
}

/// Everything a decision compares with the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionInputs {
    pub image_config_hash: String,
    /// Per-field hashes (see [`image_config_fields`]).
    pub image_config_fields: IndexMap<String, String>,
    /// Per-field hashes of the [`TAG_FIELDS`] (see [`tag_fields`]): not in the key, compared to
    /// tell a retag from a skip.
    pub tag_fields: IndexMap<String, String>,
    /// Whether this run pushes the image (no `--skip-push`, no `skipPush`, not a local cluster).
    pub push: bool,
    pub builder: BuilderInputs,
    /// `rebuildStrategy` (v1beta10+ and DevSpace 6): `always` rebuilds every run,
    /// `ignoreContextChanges` leaves build-context files out of the decision.
    pub strategy: RebuildStrategy,
}

/// `images.*.rebuildStrategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RebuildStrategy {
    #[default]
    Default,
    Always,
    IgnoreContextChanges,
}

impl RebuildStrategy {
    /// From the config value (`""`/`default`/unknown → default).
    pub fn from_config(value: Option<&str>) -> Self {
        match value {
            Some("always") => RebuildStrategy::Always,
            Some("ignoreContextChanges") => RebuildStrategy::IgnoreContextChanges,
            _ => RebuildStrategy::Default,
        }
    }
}

impl DecisionInputs {
    /// Hashes `config` (resolved, with `-t/--tag` overrides already applied) relative to
    /// `project_root`.
    pub fn new(
        config: &ImageConfig,
        project_root: &Path,
        push: bool,
        builder: BuilderInputs,
    ) -> Self {
        let image_config_fields = image_config_fields(config, project_root);
        Self {
            image_config_hash: combine_field_hashes(&image_config_fields),
            image_config_fields,
            tag_fields: tag_fields(config),
            push,
            builder,
            strategy: RebuildStrategy::from_config(config.rebuild_strategy.as_deref()),
        }
    }
}

/// The outcome for one image: skip it, push the recorded image only, or rebuild it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `skip (no change)`: the recorded image is still what this run would build.
    Skip,
    /// Nothing to build, but the recorded image must be pushed.
    PushOnly(PushReason),
    /// `skip (found in registry: built elsewhere): <source>`: no usable local record, but the
    /// registry content cache has this image's content key (`source`, the cache tag's
    /// reference); it got this run's tags inside the registry, nothing was built.
    FoundInRegistry { source: String },
    /// `retag: tags changed`: the recorded image is what this run would build, only its tags
    /// changed (`-t`, a `tags:` edit, a var in a tag): it gets the new tags (in the registry,
    /// or in the daemon and pushed), nothing is rebuilt.
    Retag,
    /// Build it.
    Rebuild(Reason),
}

impl Decision {
    /// Whether the image is built.
    pub fn is_rebuild(&self) -> bool {
        matches!(self, Decision::Rebuild(_))
    }

    /// Nothing to build, but the recorded image must be pushed.
    pub fn push_only(&self) -> bool {
        matches!(self, Decision::PushOnly(_))
    }

    /// Whether the image is built or pushed (not skipped).
    pub fn does_work(&self) -> bool {
        !matches!(self, Decision::Skip)
    }

    /// A stable identifier for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Skip => "no-change",
            Decision::PushOnly(PushReason::NotPushedYet) => "not-pushed-yet",
            Decision::PushOnly(PushReason::MissingInRegistry) => "push-missing-in-registry",
            Decision::Retag => "retag-tags-changed",
            Decision::FoundInRegistry { .. } => "found-in-registry",
            Decision::Rebuild(reason) => reason.code(),
        }
    }
}

/// `{"rebuild": .., "pushOnly": .., "code": .., "reason": "<as displayed>"}` plus `files`,
/// `fields` or `base` when the reason names them: the decision as the JSON report shows it.
impl serde::Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("rebuild", &self.is_rebuild())?;
        map.serialize_entry("pushOnly", &self.push_only())?;
        map.serialize_entry("code", self.code())?;
        map.serialize_entry("reason", &self.to_string())?;
        match self {
            Decision::Rebuild(Reason::FilesChanged { files }) => {
                map.serialize_entry("files", files)?
            }
            Decision::Rebuild(Reason::ImageConfigChanged { fields }) => {
                map.serialize_entry("fields", fields)?
            }
            Decision::Rebuild(Reason::BaseRebuilt { image }) => {
                map.serialize_entry("base", image)?
            }
            Decision::FoundInRegistry { source } => map.serialize_entry("source", source)?,
            _ => {}
        }
        map.end()
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Skip => f.write_str("skip (no change)"),
            Decision::PushOnly(reason) => reason.fmt(f),
            Decision::Retag => f.write_str("retag: tags changed"),
            Decision::FoundInRegistry { source } => {
                write!(f, "skip (found in registry: built elsewhere): {source}")
            }
            Decision::Rebuild(reason) => reason.fmt(f),
        }
    }
}

/// Why a recorded image is pushed without being rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushReason {
    /// `push: not pushed yet` (built with `--skip-push` before, pushed now)
    NotPushedYet,
    /// `push: image missing in registry` (the local daemon still has it)
    MissingInRegistry,
}

impl fmt::Display for PushReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushReason::NotPushedYet => "push: not pushed yet",
            PushReason::MissingInRegistry => "push: image missing in registry",
        })
    }
}

/// Why an image is rebuilt; `Display` is what users read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `rebuild: --force-build`
    ForceBuild,
    /// `rebuild: never built` (no cache entry, or one without a tag)
    NeverBuilt,
    /// `rebuild: custom builder without onChange` (as DevSpace: every run)
    CustomWithoutOnChange,
    /// `rebuild: image config changed (tags, buildArgs)`; `fields` is empty when the cache does
    /// not say which (written by another tool).
    ImageConfigChanged { fields: Vec<String> },
    /// `rebuild: entrypoint changed`
    EntrypointChanged,
    /// `rebuild: Dockerfile changed`
    DockerfileChanged,
    /// `rebuild: 3 files changed: src/a.rs, src/b.rs, +1`; all added, removed or modified
    /// paths, sorted.
    FilesChanged { files: Vec<String> },
    /// `rebuild: build context changed`: the hash differs but no per-file list tells where
    /// (cache written by another tool, or only modes or symlink targets changed).
    ContextChanged,
    /// `rebuild: base image base was rebuilt`: an image of this config that this one's
    /// Dockerfile builds `FROM` was rebuilt in this run.
    BaseRebuilt { image: String },
    /// `rebuild: image missing in local daemon`
    MissingInDaemon,
    /// `rebuild: image missing in registry`
    MissingInRegistry,
    /// `push: not pushed yet` (built with `--skip-push` before, pushed now)
    /// `rebuild: rebuildStrategy always`
    RebuildAlways,
}

impl Reason {
    /// Whether the registry content cache may replace this rebuild: the local record is
    /// missing or stale (or its image gone). Not for `--force-build`, `rebuildStrategy:
    /// always`, a custom builder, or a base rebuilt in this run (a rebuilt base asks for its
    /// dependents to be built on it).
    pub fn registry_cache_applies(&self) -> bool {
        matches!(
            self,
            Reason::NeverBuilt
                | Reason::ImageConfigChanged { .. }
                | Reason::EntrypointChanged
                | Reason::DockerfileChanged
                | Reason::FilesChanged { .. }
                | Reason::ContextChanged
                | Reason::MissingInDaemon
                | Reason::MissingInRegistry
        )
    }

    /// A stable identifier for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::ForceBuild => "force-build",
            Reason::NeverBuilt => "never-built",
            Reason::CustomWithoutOnChange => "custom-without-on-change",
            Reason::ImageConfigChanged { .. } => "image-config-changed",
            Reason::EntrypointChanged => "entrypoint-changed",
            Reason::DockerfileChanged => "dockerfile-changed",
            Reason::FilesChanged { .. } => "files-changed",
            Reason::ContextChanged => "context-changed",
            Reason::BaseRebuilt { .. } => "base-rebuilt",
            Reason::MissingInDaemon => "missing-in-daemon",
            Reason::MissingInRegistry => "missing-in-registry",
            Reason::RebuildAlways => "rebuild-strategy-always",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ForceBuild => f.write_str("rebuild: --force-build"),
            Reason::NeverBuilt => f.write_str("rebuild: never built"),
            Reason::CustomWithoutOnChange => {
                f.write_str("rebuild: custom builder without onChange")
            }
            Reason::ImageConfigChanged { fields } if fields.is_empty() => {
                f.write_str("rebuild: image config changed")
            }
            Reason::ImageConfigChanged { fields } => {
                write!(f, "rebuild: image config changed ({})", fields.join(", "))
            }
            Reason::EntrypointChanged => f.write_str("rebuild: entrypoint changed"),
            Reason::DockerfileChanged => f.write_str("rebuild: Dockerfile changed"),
            Reason::FilesChanged { files } => {
                let n = files.len();
                write!(
                    f,
                    "rebuild: {n} file{} changed: ",
                    if n == 1 { "" } else { "s" }
                )?;
                f.write_str(
                    &files
                        .iter()
                        .take(2)
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                )?;
                if n > 2 {
                    write!(f, ", +{}", n - 2)?;
                }
                Ok(())
            }
            Reason::ContextChanged => f.write_str("rebuild: build context changed"),
            Reason::BaseRebuilt { image } => write!(f, "rebuild: base image {image} was rebuilt"),
            Reason::MissingInDaemon => f.write_str("rebuild: image missing in local daemon"),
            Reason::MissingInRegistry => f.write_str("rebuild: image missing in registry"),
            Reason::RebuildAlways => f.write_str("rebuild: rebuildStrategy always"),
        }
    }
}

/// Decides for one image. Checks in order: `--force-build`, never built, custom builder without
/// `onChange`, image config, entrypoint, Dockerfile, files; then, when the content is unchanged,
/// the tags (a change is a [`Decision::Retag`], or a rebuild for a custom builder, whose command
/// tags what it builds); then, when this run pushes, whether the recorded build was pushed.
///
/// The changed-file list needs the cached file list ([`crate::image::record::ImageRecord::files`]);
/// [`needs_cached_files`] says when to load it.
pub fn decide(inputs: &DecisionInputs, cached: Option<&CachedImage>, force: bool) -> Decision {
    if force {
        return Decision::Rebuild(Reason::ForceBuild);
    }
    if inputs.strategy == RebuildStrategy::Always {
        return Decision::Rebuild(Reason::RebuildAlways);
    }
    let Some(cached) = cached.filter(|c| c.entry.tag.as_deref().is_some_and(|t| !t.is_empty()))
    else {
        return Decision::Rebuild(Reason::NeverBuilt);
    };
    if matches!(inputs.builder, BuilderInputs::Custom { on_change: None }) {
        return Decision::Rebuild(Reason::CustomWithoutOnChange);
    }
    let entry = &cached.entry;
    if entry.image_config_hash.as_deref() != Some(inputs.image_config_hash.as_str())
        && !record_key_matches(cached, inputs)
    {
        let fields = cached
            .record
            .as_ref()
            .map(|r| changed_fields(&inputs.image_config_fields, &r.image_config_fields))
            .unwrap_or_default();
        return Decision::Rebuild(Reason::ImageConfigChanged { fields });
    }
    let (cached_files_hash, files) = match &inputs.builder {
        BuilderInputs::Dockerfile {
            dockerfile_hash,
            entrypoint_hash,
            context,
        } => {
            if entry.entrypoint_hash.as_deref().unwrap_or("") != entrypoint_hash {
                return Decision::Rebuild(Reason::EntrypointChanged);
            }
            if entry.dockerfile_hash.as_deref() != Some(dockerfile_hash.as_str()) {
                return Decision::Rebuild(Reason::DockerfileChanged);
            }
            (&entry.context_hash, context)
        }
        BuilderInputs::Custom { on_change } => {
            let Some(on_change) = on_change else {
                return Decision::Rebuild(Reason::CustomWithoutOnChange);
            };
            (&entry.custom_files_hash, on_change)
        }
    };
    let ignore_files = inputs.strategy == RebuildStrategy::IgnoreContextChanges
        && matches!(inputs.builder, BuilderInputs::Dockerfile { .. });
    if !ignore_files && cached_files_hash.as_deref() != Some(files.hash.as_str()) {
        let changed = cached
            .record
            .as_ref()
            .and_then(|r| r.files.as_ref())
            .map(|old| changed_files(old, files.files()))
            .unwrap_or_default();
        return Decision::Rebuild(if changed.is_empty() {
            Reason::ContextChanged
        } else {
            Reason::FilesChanged { files: changed }
        });
    }
    if tags_changed(inputs, cached) {
        // A custom command tags what it builds: only running it again gives the new tags.
        if matches!(inputs.builder, BuilderInputs::Custom { .. }) {
            return Decision::Rebuild(Reason::ImageConfigChanged {
                fields: vec!["tags".into()],
            });
        }
        return Decision::Retag;
    }
    if inputs.push && cached.record.as_ref().is_some_and(|r| r.push.is_none()) {
        return Decision::PushOnly(PushReason::NotPushedYet);
    }
    Decision::Skip
}

/// Whether the record's per-field hashes, restricted to the fields in the key today, give
/// this run's config hash: an entry written while more fields were in the key (`tags`, before
/// tags stopped being content) still matches when only those fields differ.
fn record_key_matches(cached: &CachedImage, inputs: &DecisionInputs) -> bool {
    let Some(record) = &cached.record else {
        return false;
    };
    let in_key: IndexMap<String, String> = record
        .image_config_fields
        .iter()
        .filter(|(path, _)| !matches!(key_role(path), Some(KeyRole::Excluded(_))))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    combine_field_hashes(&in_key) == inputs.image_config_hash
}

/// Whether the tag fields differ from the recorded ones (a record written while tags were in
/// the key has them among its config fields). Without a record nothing says: no retag.
fn tags_changed(inputs: &DecisionInputs, cached: &CachedImage) -> bool {
    let Some(record) = &cached.record else {
        return false;
    };
    let recorded: IndexMap<&str, &str> = if record.tag_fields.is_empty() {
        record
            .image_config_fields
            .iter()
            .filter(|(k, _)| TAG_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    } else {
        record
            .tag_fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    let now: IndexMap<&str, &str> = inputs
        .tag_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    recorded.len() != now.len() || now.iter().any(|(k, v)| recorded.get(k) != Some(v))
}

/// Whether [`decide`] would name changed files if it had the cached file list: everything
/// before the files check is unchanged and the files hash differs. Loading the list costs a
/// read of the whole sidecar, so it is done only then.
pub fn needs_cached_files(
    inputs: &DecisionInputs,
    cached: Option<&CachedImage>,
    force: bool,
) -> bool {
    let Some(cached) = cached else {
        return false;
    };
    if inputs.builder.files().is_none() {
        return false;
    }
    if cached.record.as_ref().is_some_and(|r| r.files.is_some()) {
        return false;
    }
    decide(inputs, Some(cached), force) == Decision::Rebuild(Reason::ContextChanged)
}

/// Added, removed and modified paths between two lists sorted by path, sorted.
pub fn changed_files(old: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let mut changed = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                if a.1 != b.1 {
                    changed.push(a.0.clone());
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                changed.push(a.0.clone());
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                changed.push(b.0.clone());
                j += 1;
            }
            (Some(a), None) => {
                changed.push(a.0.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    changed
}

/// Names of the fields whose hashes differ (present on one side only counts), in config
/// order, shown by their last path segment (`build.docker.options.buildArgs` → `buildArgs`).
pub fn changed_fields(
    new: &IndexMap<String, String>,
    old: &IndexMap<String, String>,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let differing = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(old.keys().filter(|k| !new.contains_key(*k)));
    for path in differing {
        let name = path.rsplit('.').next().unwrap_or(path).to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes.as_ref()))
}

/// `dockerfileHash`: the final Dockerfile text.
pub fn dockerfile_hash(final_dockerfile: &str) -> String {
    sha256_hex(final_dockerfile)
}

/// `entrypointHash`: empty when neither is set (or both are empty), otherwise the hash of
/// `[entrypoint, cmd]` as JSON (`null` for unset).
pub fn entrypoint_hash(entrypoint: Option<&[String]>, cmd: Option<&[String]>) -> String {
    if entrypoint.is_none_or(<[String]>::is_empty) && cmd.is_none_or(<[String]>::is_empty) {
        return String::new();
    }
    let pair = Value::Array(vec![
        entrypoint.map_or(Value::Null, |e| Value::from(e.to_vec())),
        cmd.map_or(Value::Null, |c| Value::from(c.to_vec())),
    ]);
    sha256_hex(pair.to_string())
}

/// `customFilesHash` (and any file-set hash): over `path NUL digest LF` of the list sorted by
/// path, so the walk order never matters.
pub fn files_hash(files: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (path, digest) in sorted {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(digest.as_bytes());
        hasher.update([b'\n']);
    }
    hex::encode(hasher.finalize())
}

/// Per-field hashes of the resolved image config, in config order: field path (`tags`,
/// `build.docker.options.buildArgs`, ...) → SHA-256 of the field's canonical JSON (object keys
/// sorted), as [`key_fields`] classifies them: excluded fields are left out; `dockerfile` and `context` are relative to
/// `project_root`.
pub fn image_config_fields(config: &ImageConfig, project_root: &Path) -> IndexMap<String, String> {
    let mut portable = config.clone();
    portable.dockerfile = relative_path(&config.dockerfile, project_root).into();
    portable.context = relative_path(&config.context, project_root).into();
    let value = serde_json::to_value(&portable).unwrap_or(Value::Null);
    let mut fields = IndexMap::new();
    flatten("", &value, &mut fields);
    fields
}

/// Per-field hashes of the [`TAG_FIELDS`] that are set, hashed like [`image_config_fields`]
/// (so a record written while they were in the key compares equal).
pub fn tag_fields(config: &ImageConfig) -> IndexMap<String, String> {
    let value = serde_json::to_value(config).unwrap_or(Value::Null);
    TAG_FIELDS
        .iter()
        .filter_map(|field| {
            value
                .get(field)
                .map(|v| ((*field).to_owned(), sha256_hex(canonical_json(v))))
        })
        .collect()
}

/// `imageConfigHash`: one hash over the per-field hashes.
pub fn combine_field_hashes(fields: &IndexMap<String, String>) -> String {
    let mut sorted: Vec<(&String, &String)> = fields.iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (path, hash) in sorted {
        hasher.update(path.as_bytes());
        hasher.update([b'=']);
        hasher.update(hash.as_bytes());
        hasher.update([b'\n']);
    }
    hex::encode(hasher.finalize())
}

fn flatten(prefix: &str, value: &Value, out: &mut IndexMap<String, String>) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, child) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match key_role(&path) {
            Some(KeyRole::Excluded(_)) => continue,
            Some(KeyRole::Structural) if child.is_object() => flatten(&path, child, out),
            _ => {
                out.insert(path, sha256_hex(canonical_json(child)));
            }
        }
    }
}

/// JSON with object keys sorted at every level, so map order in the file does not matter.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// `path` relative to `root` with `/` separators (`.` for the root itself, `../x` outside
/// it); lexical, no file system access.
pub fn relative_path(path: &Path, root: &Path) -> String {
    let normal = |p: &Path| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.last().is_some_and(|l| l != "..") {
                        parts.pop();
                    } else {
                        parts.push("..".into());
                    }
                }
                other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
            }
        }
        parts
    };
    let (p, r) = (normal(path), normal(root));
    if path.is_absolute() != root.is_absolute() {
        return p.join("/");
    }
    let common = p.iter().zip(&r).take_while(|(a, b)| a == b).count();
    let mut rel: Vec<&str> = vec![".."; r.len() - common];
    rel.extend(p[common..].iter().map(String::as_str));
    if rel.is_empty() {
        ".".to_owned()
    } else {
        rel.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BuildConfig, BuildOptions, CustomConfig, DockerConfig};
    use crate::image::record::{GeneratedImage, ImageRecord, PushRecord};
    use std::path::PathBuf;

    fn files(list: &[(&str, &str)]) -> FileDigests {
        list.iter()
            .map(|(p, d)| (p.to_string(), d.to_string()))
            .collect()
    }

    fn config() -> ImageConfig {
        ImageConfig {
            image: "john/app".into(),
            tags: vec!["v1".into()],
            dockerfile: PathBuf::from("/proj/Dockerfile"),
            context: PathBuf::from("/proj"),
            build: BuildConfig {
                docker: Some(DockerConfig {
                    options: Some(BuildOptions {
                        build_args: IndexMap::from([("A".to_owned(), Some("1".to_owned()))]),
                        ..BuildOptions::default()
                    }),
                    ..DockerConfig::default()
                }),
                ..BuildConfig::default()
            },
            ..ImageConfig::default()
        }
    }

    const DOCKERFILE: &str = "FROM alpine\n";
    const CONTEXT: &[(&str, &str)] =
        &[("Dockerfile", "d0"), ("src/a.rs", "a0"), ("src/b.rs", "b0")];

    fn docker_inputs(
        config: &ImageConfig,
        dockerfile: &str,
        ep: Option<&[String]>,
        ctx: &[(&str, &str)],
        push: bool,
    ) -> DecisionInputs {
        let ctx = files(ctx);
        let hash = files_hash(&ctx);
        DecisionInputs::new(
            config,
            Path::new("/proj"),
            push,
            BuilderInputs::dockerfile(dockerfile, ep, None, hash, ctx),
        )
    }

    /// What a successful build with `inputs` would have recorded.
    fn recorded(inputs: &DecisionInputs, pushed: bool) -> CachedImage {
        let mut entry = GeneratedImage {
            image_config_hash: Some(inputs.image_config_hash.clone()),
            image_name: Some("john/app".into()),
            tag: Some("v1".into()),
            ..GeneratedImage::default()
        };
        match &inputs.builder {
            BuilderInputs::Dockerfile {
                dockerfile_hash,
                entrypoint_hash,
                context,
            } => {
                entry.dockerfile_hash = Some(dockerfile_hash.clone());
                entry.entrypoint_hash = Some(entrypoint_hash.clone()).filter(|h| !h.is_empty());
                entry.context_hash = Some(context.hash.clone());
            }
            BuilderInputs::Custom { on_change } => {
                entry.custom_files_hash = on_change.as_ref().map(|f| f.hash.clone());
            }
        }
        CachedImage {
            entry,
            record: Some(ImageRecord {
                image_config_hash: inputs.image_config_hash.clone(),
                image_config_fields: inputs.image_config_fields.clone(),
                tag_fields: inputs.tag_fields.clone(),
                files_hash: inputs.builder.files().map(|f| f.hash.clone()),
                tags: vec!["v1".into()],
                push: pushed.then(|| PushRecord {
                    registry: "docker.io".into(),
                    digest: None,
                }),
                files: inputs.builder.files().map(|f| f.files().clone()),
            }),
        }
    }

    #[test]
    fn rebuild_strategy_is_honoured() {
        let mut always = config();
        always.rebuild_strategy = Some("always".into());
        let inputs = docker_inputs(&always, DOCKERFILE, None, CONTEXT, true);
        let built = recorded(&inputs, true);
        assert_eq!(
            decide(&inputs, Some(&built), false).to_string(),
            "rebuild: rebuildStrategy always"
        );

        let mut ignore = config();
        ignore.rebuild_strategy = Some("ignoreContextChanges".into());
        let inputs = docker_inputs(&ignore, DOCKERFILE, None, CONTEXT, true);
        let built = recorded(&inputs, true);
        let edited: &[(&str, &str)] = &[("Dockerfile", "d0"), ("src/a.rs", "a1")];
        let changed = docker_inputs(&ignore, DOCKERFILE, None, edited, true);
        assert_eq!(
            decide(&changed, Some(&built), false).to_string(),
            "skip (no change)"
        );
        // The Dockerfile still counts.
        let dockerfile = docker_inputs(&ignore, "FROM busybox\n", None, CONTEXT, true);
        assert_eq!(
            decide(&dockerfile, Some(&built), false).to_string(),
            "rebuild: Dockerfile changed"
        );
        // Without a strategy the same edit rebuilds.
        let base = docker_inputs(&config(), DOCKERFILE, None, CONTEXT, true);
        let base_built = recorded(&base, true);
        let edited_base = docker_inputs(&config(), DOCKERFILE, None, edited, true);
        assert!(decide(&edited_base, Some(&base_built), false).is_rebuild());
    }

    #[test]
    fn decision_table() {
        let base = docker_inputs(&config(), DOCKERFILE, None, CONTEXT, true);
        let built = recorded(&base, true);
        let unpushed = recorded(&base, false);
        let mut tags_and_args = config();
        tags_and_args.tags = vec!["v2".into()];
        tags_and_args
            .build
            .docker
            .as_mut()
            .unwrap()
            .options
            .as_mut()
            .unwrap()
            .build_args = IndexMap::from([("A".to_owned(), Some("2".to_owned()))]);
        let mut tags_only = config();
        tags_only.tags = vec!["v2".into()];
        let mut append_random = config();
        append_random.tags_append_random = Some(true);
        // What a build recorded while `tags` were part of the key: the tags among the
        // config fields, in the combined hash, and no separate tag fields.
        let mut legacy = built.clone();
        {
            let record = legacy.record.as_mut().unwrap();
            let mut fields = base.image_config_fields.clone();
            fields.extend(base.tag_fields.clone());
            record.image_config_fields = fields.clone();
            record.image_config_hash = combine_field_hashes(&fields);
            record.tag_fields.clear();
            legacy.entry.image_config_hash = Some(record.image_config_hash.clone());
        }
        let mut no_tag = built.clone();
        no_tag.entry.tag = None;
        let mut foreign = built.clone();
        foreign.record = None;
        foreign.entry.image_config_hash = Some("devspace-go-hash".into());
        let mut foreign_ctx = built.clone();
        foreign_ctx.record = None;
        foreign_ctx.entry.context_hash = Some("devspace-go-hash".into());
        let mut moved_only_modes = base.clone();
        if let BuilderInputs::Dockerfile { context, .. } = &mut moved_only_modes.builder {
            context.hash = "other".into();
        }
        let ep = vec!["sleep".to_owned()];
        let mut no_push = base.clone();
        no_push.push = false;

        let cases: Vec<(&str, DecisionInputs, Option<&CachedImage>, bool, &str)> = vec![
            (
                "no change",
                base.clone(),
                Some(&built),
                false,
                "skip (no change)",
            ),
            (
                "force wins",
                base.clone(),
                Some(&built),
                true,
                "rebuild: --force-build",
            ),
            (
                "no cache entry",
                base.clone(),
                None,
                false,
                "rebuild: never built",
            ),
            (
                "entry without tag",
                base.clone(),
                Some(&no_tag),
                false,
                "rebuild: never built",
            ),
            (
                "Dockerfile content",
                docker_inputs(&config(), "FROM alpine:3\n", None, CONTEXT, true),
                Some(&built),
                false,
                "rebuild: Dockerfile changed",
            ),
            (
                "entrypoint before Dockerfile",
                docker_inputs(
                    &config(),
                    "FROM alpine\nENTRYPOINT [\"sleep\"]\n",
                    Some(&ep),
                    CONTEXT,
                    true,
                ),
                Some(&built),
                false,
                "rebuild: entrypoint changed",
            ),
            (
                "one file modified",
                docker_inputs(
                    &config(),
                    DOCKERFILE,
                    None,
                    &[("Dockerfile", "d0"), ("src/a.rs", "a1"), ("src/b.rs", "b0")],
                    true,
                ),
                Some(&built),
                false,
                "rebuild: 1 file changed: src/a.rs",
            ),
            (
                "added, removed, modified",
                docker_inputs(
                    &config(),
                    DOCKERFILE,
                    None,
                    &[("Dockerfile", "d1"), ("src/a.rs", "a1"), ("src/c.rs", "c0")],
                    true,
                ),
                Some(&built),
                false,
                "rebuild: 4 files changed: Dockerfile, src/a.rs, +2",
            ),
            (
                "config fields named (tags are not among them)",
                docker_inputs(&tags_and_args, DOCKERFILE, None, CONTEXT, true),
                Some(&built),
                false,
                "rebuild: image config changed (buildArgs)",
            ),
            (
                "only the tags changed",
                docker_inputs(&tags_only, DOCKERFILE, None, CONTEXT, true),
                Some(&built),
                false,
                "retag: tags changed",
            ),
            (
                "only the tags changed, not pushed yet: the retag pushes",
                docker_inputs(&tags_only, DOCKERFILE, None, CONTEXT, true),
                Some(&unpushed),
                false,
                "retag: tags changed",
            ),
            (
                "tagsAppendRandom turned on",
                docker_inputs(&append_random, DOCKERFILE, None, CONTEXT, true),
                Some(&built),
                false,
                "retag: tags changed",
            ),
            (
                "record written while tags were in the key, same tags",
                base.clone(),
                Some(&legacy),
                false,
                "skip (no change)",
            ),
            (
                "record written while tags were in the key, other tags",
                docker_inputs(&tags_only, DOCKERFILE, None, CONTEXT, true),
                Some(&legacy),
                false,
                "retag: tags changed",
            ),
            (
                "tags changed and the Dockerfile too: the content wins",
                docker_inputs(&tags_only, "FROM alpine:3\n", None, CONTEXT, true),
                Some(&built),
                false,
                "rebuild: Dockerfile changed",
            ),
            (
                "config changed, cache from another tool",
                base.clone(),
                Some(&foreign),
                false,
                "rebuild: image config changed",
            ),
            (
                "context changed, no file list",
                base.clone(),
                Some(&foreign_ctx),
                false,
                "rebuild: build context changed",
            ),
            (
                "context hash differs, files equal",
                moved_only_modes,
                Some(&built),
                false,
                "rebuild: build context changed",
            ),
            (
                "pushing after a --skip-push build",
                base.clone(),
                Some(&unpushed),
                false,
                "push: not pushed yet",
            ),
            (
                "not pushing, not pushed",
                no_push,
                Some(&unpushed),
                false,
                "skip (no change)",
            ),
        ];
        for (name, inputs, cached, force, want) in cases {
            let decision = decide(&inputs, cached, force);
            assert_eq!(decision.to_string(), want, "case: {name}");
            assert_eq!(
                decision.is_rebuild(),
                want.starts_with("rebuild"),
                "case: {name}"
            );
            assert_eq!(
                decision.push_only(),
                want.starts_with("push"),
                "case: {name}"
            );
        }
    }

    #[test]
    fn custom_builder_decisions() {
        let mut custom = config();
        custom.build = BuildConfig {
            custom: Some(CustomConfig {
                command: "./build.sh".into(),
                on_change: vec!["src/**".into()],
                ..CustomConfig::default()
            }),
            ..BuildConfig::default()
        };
        let on_change = |list: &[(&str, &str)]| {
            DecisionInputs::new(
                &custom,
                Path::new("/proj"),
                true,
                BuilderInputs::Custom {
                    on_change: Some(FilesInput::from_files(files(list))),
                },
            )
        };
        let base = on_change(&[("src/a.rs", "a0")]);
        let built = recorded(&base, true);
        let without = DecisionInputs::new(
            &custom,
            Path::new("/proj"),
            true,
            BuilderInputs::Custom { on_change: None },
        );
        let cases = [
            ("unchanged", base.clone(), Some(&built), "skip (no change)"),
            ("never built", base.clone(), None, "rebuild: never built"),
            (
                "file changed",
                on_change(&[("src/a.rs", "a1")]),
                Some(&built),
                "rebuild: 1 file changed: src/a.rs",
            ),
            (
                "file added",
                on_change(&[("src/a.rs", "a0"), ("src/n.rs", "n")]),
                Some(&built),
                "rebuild: 1 file changed: src/n.rs",
            ),
            (
                "tags changed: the command tags what it builds, so it runs again",
                DecisionInputs::new(
                    &ImageConfig {
                        tags: vec!["v2".into()],
                        ..custom.clone()
                    },
                    Path::new("/proj"),
                    true,
                    BuilderInputs::Custom {
                        on_change: Some(FilesInput::from_files(files(&[("src/a.rs", "a0")]))),
                    },
                ),
                Some(&built),
                "rebuild: image config changed (tags)",
            ),
            (
                "no onChange",
                without,
                Some(&built),
                "rebuild: custom builder without onChange",
            ),
        ];
        for (name, inputs, cached, want) in cases {
            assert_eq!(
                decide(&inputs, cached, false).to_string(),
                want,
                "case: {name}"
            );
        }
    }

    #[test]
    fn reasons_display_table() {
        let f = |n: usize| {
            Decision::Rebuild(Reason::FilesChanged {
                files: (0..n).map(|i| format!("f{i}")).collect(),
            })
        };
        let r = Decision::Rebuild;
        let cases = [
            (Decision::Skip, "skip (no change)"),
            (r(Reason::ForceBuild), "rebuild: --force-build"),
            (r(Reason::NeverBuilt), "rebuild: never built"),
            (r(Reason::DockerfileChanged), "rebuild: Dockerfile changed"),
            (f(1), "rebuild: 1 file changed: f0"),
            (f(2), "rebuild: 2 files changed: f0, f1"),
            (f(3), "rebuild: 3 files changed: f0, f1, +1"),
            (f(12), "rebuild: 12 files changed: f0, f1, +10"),
            (
                r(Reason::ImageConfigChanged {
                    fields: vec!["tags".into(), "buildArgs".into()],
                }),
                "rebuild: image config changed (tags, buildArgs)",
            ),
            (
                r(Reason::ImageConfigChanged { fields: vec![] }),
                "rebuild: image config changed",
            ),
            (r(Reason::EntrypointChanged), "rebuild: entrypoint changed"),
            (
                r(Reason::CustomWithoutOnChange),
                "rebuild: custom builder without onChange",
            ),
            (r(Reason::ContextChanged), "rebuild: build context changed"),
            (
                r(Reason::MissingInDaemon),
                "rebuild: image missing in local daemon",
            ),
            (
                r(Reason::MissingInRegistry),
                "rebuild: image missing in registry",
            ),
            (
                r(Reason::BaseRebuilt {
                    image: "base".into(),
                }),
                "rebuild: base image base was rebuilt",
            ),
            (Decision::Retag, "retag: tags changed"),
            (
                Decision::FoundInRegistry {
                    source: "r:5000/app:devspace-cache-0a".into(),
                },
                "skip (found in registry: built elsewhere): r:5000/app:devspace-cache-0a",
            ),
            (
                Decision::PushOnly(PushReason::NotPushedYet),
                "push: not pushed yet",
            ),
            (
                Decision::PushOnly(PushReason::MissingInRegistry),
                "push: image missing in registry",
            ),
        ];
        let mut codes = std::collections::HashSet::new();
        for (decision, want) in cases {
            assert_eq!(decision.to_string(), want);
            codes.insert(decision.code());
        }
        assert_eq!(codes.len(), 16, "every decision has its own code");
        let json = serde_json::to_value(Decision::FoundInRegistry {
            source: "r:5000/app:devspace-cache-0a".into(),
        })
        .unwrap();
        assert_eq!(json["code"], "found-in-registry");
        assert_eq!(json["source"], "r:5000/app:devspace-cache-0a");
        assert_eq!(json["rebuild"], false);
        let json = serde_json::to_value(f(3)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"rebuild": true, "pushOnly": false, "code": "files-changed",
                "reason": "rebuild: 3 files changed: f0, f1, +1", "files": ["f0", "f1", "f2"]})
        );
        let json = serde_json::to_value(Decision::PushOnly(PushReason::NotPushedYet)).unwrap();
        assert_eq!(json["pushOnly"], true);
        let json = serde_json::to_value(r(Reason::BaseRebuilt {
            image: "base".into(),
        }))
        .unwrap();
        assert_eq!(json["base"], "base");
        assert_eq!(json["code"], "base-rebuilt");
    }

    /// Every field set, every builder block present.
    fn full_config() -> serde_json::Value {
        let options =
            serde_json::json!({"target": "t", "network": "host", "buildArgs": {"A": "1"}});
        serde_json::json!({
            "image": "john/app", "tags": ["v1"], "dockerfile": "/proj/Dockerfile",
            "context": "/proj", "entrypoint": ["sh"], "cmd": ["-c"], "createPullSecret": true,
            "preferSyncOverRebuild": true, "injectRestartHelper": true,
            "restartHelperPath": "/r.sh", "appendDockerfileInstructions": ["RUN x"],
            "tagsAppendRandom": true, "rebuildStrategy": "always",
            "build": {
                "disabled": false,
                "docker": {"preferMinikube": true, "skipPush": false, "disableFallback": false,
                    "useBuildKit": false, "useCli": false, "args": ["--pull"], "options": options},
                "kaniko": {"cache": true, "snapshotMode": "full", "image": "k", "initImage": "i",
                    "args": ["a"], "command": ["c"], "namespace": "n", "insecure": false,
                    "pullSecret": "p", "skipPullSecretMount": false,
                    "additionalMounts": [{"mountPath": "/m"}],
                    "resources": {"limits": {"cpu": "1"}}, "nodeSelector": {"a": "b"},
                    "serviceAccount": "sa", "annotations": {"a": "b"}, "labels": {"a": "b"},
                    "initEnv": {"A": "1"}, "env": {"A": "1"}, "envFrom": {"x": {"a": "1"}},
                    "tolerations": [{"key": "k"}], "options": options},
                "custom": {"command": "./b.sh", "commands": [{"command": "b.exe", "os": "windows"}],
                    "args": ["a"], "appendArgs": ["b"], "imageFlag": "--image",
                    "imageTagOnly": true, "skipImageArg": false, "onChange": ["src/**"]},
                "buildKit": {"skipPush": false, "preferMinikube": true,
                    "inCluster": {"name": "b"}, "args": ["a"], "command": ["docker", "buildx"],
                    "options": options},
            },
        })
    }

    /// Leaf paths of `value` as the key walks it (structural objects opened).
    fn leaf_paths(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        let serde_json::Value::Object(map) = value else {
            return;
        };
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match key_role(&path) {
                Some(KeyRole::Structural) => leaf_paths(&path, v, out),
                _ => out.push(path),
            }
        }
    }

    /// A different value of the same kind.
    fn changed(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Bool(b) => Value::Bool(!b),
            Value::String(s) => Value::String(format!("{s}x")),
            Value::Array(a) if a.first().is_some_and(Value::is_string) => {
                let mut a = a.clone();
                a.push(Value::String("more".into()));
                Value::Array(a)
            }
            Value::Array(a) => {
                let mut a = a.clone();
                a.push(a[0].clone());
                Value::Array(a)
            }
            Value::Object(m) => {
                let mut m = m.clone();
                let (k, v) = m
                    .iter()
                    .next()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .unwrap();
                m.insert(k, changed(&v));
                Value::Object(m)
            }
            other => panic!("no change for {other}"),
        }
    }

    #[test]
    fn every_config_field_is_in_the_key_or_excluded_for_every_builder() {
        let full = full_config();
        let config: ImageConfig = serde_json::from_value(full.clone()).unwrap();
        // Serialised back, the full config has exactly the table's leaves: nothing unclassified,
        // nothing stale in the table.
        let mut paths = Vec::new();
        leaf_paths("", &serde_json::to_value(&config).unwrap(), &mut paths);
        let mut table: Vec<String> = key_fields()
            .iter()
            .filter(|(_, r)| *r != KeyRole::Structural)
            .map(|(p, _)| p.to_string())
            .collect();
        paths.sort();
        table.sort();
        assert_eq!(paths, table);

        let hash = |v: &serde_json::Value| {
            let c: ImageConfig = serde_json::from_value(v.clone()).unwrap();
            image_config_fields(&c, Path::new("/proj"))
        };
        for builder in ["docker", "kaniko", "custom", "buildKit"] {
            // One builder block at a time, as each kind is configured.
            let mut one = full.clone();
            let build = one["build"].as_object_mut().unwrap();
            build.retain(|k, _| k == builder || k == "disabled");
            let base = hash(&one);
            let mut leaves = Vec::new();
            leaf_paths("", &one, &mut leaves);
            for path in leaves {
                let role = key_role(&path).unwrap_or_else(|| panic!("{path} is not classified"));
                let mut edited = one.clone();
                let pointer = format!("/{}", path.replace('.', "/"));
                let slot = edited.pointer_mut(&pointer).unwrap();
                *slot = changed(slot);
                let after = hash(&edited);
                match role {
                    KeyRole::Key => assert_ne!(
                        combine_field_hashes(&after),
                        combine_field_hashes(&base),
                        "{builder}: {path} is in the key"
                    ),
                    KeyRole::Excluded(why) => assert_eq!(after, base, "{builder}: {path} ({why})"),
                    KeyRole::Structural => unreachable!(),
                }
            }
        }
    }

    #[test]
    fn buildkit_skip_push_does_not_force_a_rebuild() {
        let with = |skip: Option<bool>| {
            let mut c = config();
            c.build = crate::config::BuildConfig {
                build_kit: Some(crate::config::model::BuildKitConfig {
                    skip_push: skip,
                    prefer_minikube: skip,
                    ..Default::default()
                }),
                ..Default::default()
            };
            DecisionInputs::new(
                &c,
                Path::new("/proj"),
                true,
                BuilderInputs::Custom { on_change: None },
            )
            .image_config_hash
        };
        assert_eq!(with(None), with(Some(true)));
        assert_eq!(with(Some(false)), with(Some(true)));
    }

    #[test]
    fn image_config_hash_ignores_what_does_not_change_the_image() {
        let base = config();
        let hash = |c: &ImageConfig, root: &str| {
            DecisionInputs::new(
                c,
                Path::new(root),
                true,
                BuilderInputs::Custom { on_change: None },
            )
            .image_config_hash
        };
        let h0 = hash(&base, "/proj");
        let mut same = base.clone();
        same.create_pull_secret = Some(false);
        same.prefer_sync_over_rebuild = Some(true);
        same.entrypoint = Some(vec!["x".into()]);
        let docker = same.build.docker.as_mut().unwrap();
        docker.skip_push = Some(true);
        docker.prefer_minikube = Some(false);
        docker.disable_fallback = Some(true);
        assert_eq!(hash(&same, "/proj"), h0, "excluded fields");

        let mut moved = base.clone();
        moved.dockerfile = PathBuf::from("/elsewhere/copy/Dockerfile");
        moved.context = PathBuf::from("/elsewhere/copy");
        assert_eq!(hash(&moved, "/elsewhere/copy"), h0, "moved checkout");

        let mut reordered = base.clone();
        let args = &mut reordered
            .build
            .docker
            .as_mut()
            .unwrap()
            .options
            .as_mut()
            .unwrap()
            .build_args;
        args.insert("B".into(), None);
        let h_with_b = hash(&reordered, "/proj");
        let args = &mut reordered
            .build
            .docker
            .as_mut()
            .unwrap()
            .options
            .as_mut()
            .unwrap()
            .build_args;
        args.shift_remove("A");
        args.insert("A".into(), Some("1".into()));
        assert_eq!(
            hash(&reordered, "/proj"),
            h_with_b,
            "map order does not matter"
        );
        assert_ne!(h_with_b, h0);

        for change in [
            |c: &mut ImageConfig| c.image = "john/other".into(),
            |c: &mut ImageConfig| c.dockerfile = PathBuf::from("/proj/other.Dockerfile"),
            |c: &mut ImageConfig| c.append_dockerfile_instructions = vec!["RUN x".into()],
            |c: &mut ImageConfig| {
                c.build
                    .docker
                    .as_mut()
                    .unwrap()
                    .options
                    .as_mut()
                    .unwrap()
                    .target = Some("t".into())
            },
        ] {
            let mut c = base.clone();
            change(&mut c);
            assert_ne!(hash(&c, "/proj"), h0, "{c:?}");
        }
    }

    #[test]
    fn hash_helpers() {
        assert_eq!(entrypoint_hash(None, None), "");
        assert_eq!(entrypoint_hash(Some(&[]), Some(&[])), "");
        let ab = ["a".to_owned(), "b".to_owned()];
        let joined = ["ab".to_owned()];
        assert_ne!(
            entrypoint_hash(Some(&ab), None),
            entrypoint_hash(Some(&joined), None),
            "unambiguous"
        );
        assert_ne!(
            entrypoint_hash(Some(&ab), None),
            entrypoint_hash(None, Some(&ab))
        );
        assert_eq!(
            sha256_hex("string"),
            "473287f8298dba7163a897908958f7c0eae733e25d2e027992ea2edc9bed2fa8"
        );
        let a = files(&[("b", "2"), ("a", "1")]);
        let b = files(&[("a", "1"), ("b", "2")]);
        assert_eq!(files_hash(&a), files_hash(&b), "order-independent");
        assert_ne!(
            files_hash(&a),
            files_hash(&files(&[("a", "1"), ("b", "3")]))
        );
        assert_ne!(
            files_hash(&files(&[("a", "1b")])),
            files_hash(&files(&[("a1", "b")]))
        );
    }

    #[test]
    fn changed_files_and_fields() {
        assert_eq!(
            changed_files(
                &files(&[("a", "1"), ("b", "1"), ("d", "1")]),
                &files(&[("a", "1"), ("c", "1"), ("d", "2")])
            ),
            ["b", "c", "d"]
        );
        assert!(changed_files(&[], &[]).is_empty());
        assert_eq!(changed_files(&[], &files(&[("x", "1")])), ["x"]);
        let new = IndexMap::from([
            ("tags".to_owned(), "1".to_owned()),
            ("build.docker.options.buildArgs".to_owned(), "2".to_owned()),
        ]);
        let old = IndexMap::from([
            ("tags".to_owned(), "1".to_owned()),
            ("build.kaniko.options.buildArgs".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(changed_fields(&new, &old), ["buildArgs"]);
    }

    #[test]
    fn relative_paths() {
        for (path, root, want) in [
            ("/p/Dockerfile", "/p", "Dockerfile"),
            ("/p", "/p", "."),
            ("/p/./a/../b/Dockerfile", "/p/", "b/Dockerfile"),
            ("/shared/base", "/p/app", "../../shared/base"),
        ] {
            assert_eq!(
                relative_path(Path::new(path), Path::new(root)),
                want,
                "{path}"
            );
        }
    }
}
