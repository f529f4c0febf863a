//! Typed events that image jobs send to the dispatcher, and the report a run ends with.

use crate::image::decision::Decision;
use serde::Serialize;
use std::path::PathBuf;

/// Where an image job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Waiting,
    Hashing,
    Verifying,
    Building,
    Pushing,
    /// Giving an existing image new tags (a retag, or an image found in the registry cache).
    Tagging,
}

impl Stage {
    /// The word users read.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Waiting => "waiting",
            Stage::Hashing => "hashing",
            Stage::Verifying => "checking",
            Stage::Building => "building",
            Stage::Pushing => "pushing",
            Stage::Tagging => "tagging",
        }
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageEvent {
    /// The job moved to another stage.
    Stage(Stage),
    /// The build decision, after verification (`skip (no change)`, `rebuild: ...`).
    Decision(Decision),
    /// A `Step n/m : ...` line of a Docker build.
    Step { n: u32, total: u32, text: String },
    /// One whole line of build/push output.
    Log(String),
    /// A message for the user about this image (warnings, fallbacks).
    Note(String),
    /// A tag was pushed.
    Pushed { tag: String, digest: Option<String> },
    /// A tag was set inside the registry on a manifest already there (retag, registry content
    /// cache): nothing was pushed from this machine.
    TaggedInRegistry { tag: String, digest: String },
    /// The job ended (successfully or not) after `duration_ms` of work.
    Finished { duration_ms: u64 },
}

/// An event for one image, sent to the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub image: String,
    pub kind: ImageEvent,
}

/// How an image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Built,
    /// Not rebuilt; pushed again because the registry lacked it.
    Pushed,
    /// Not rebuilt: the recorded image got this run's tags (`retag: tags changed`).
    Retagged,
    Skipped,
    Disabled,
    Failed,
    DependencyFailed,
    Cancelled,
    /// `--dry-run`: would be built.
    WouldBuild,
    /// `--dry-run`: not built, but the recorded image would be pushed again.
    WouldPush,
    /// `--dry-run`: not built, the recorded image would get this run's tags.
    WouldRetag,
}

impl Status {
    /// True for the outcomes that make the run fail.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::DependencyFailed | Status::Cancelled
        )
    }

    /// The word users read in the summary.
    pub fn label(self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::Pushed => "pushed",
            Status::Retagged => "retagged",
            Status::Skipped => "skipped",
            Status::Disabled => "disabled",
            Status::Failed => "FAILED",
            Status::DependencyFailed => "not built",
            Status::Cancelled => "cancelled",
            Status::WouldBuild => "would build",
            Status::WouldPush => "would push",
            Status::WouldRetag => "would retag",
        }
    }
}

/// One image's line in the final report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageReport {
    /// The image key (`images.<key>`).
    pub key: String,
    /// The repository (`image:`).
    pub image: String,
    /// Tags applied (the first one is recorded for deploy).
    pub tags: Vec<String>,
    pub builder: String,
    pub status: Status,
    /// The decision and its reason, or the error's first line.
    pub reason: String,
    /// The typed decision (after verification), when the job got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Digest of the pushed image, if pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub pushed: bool,
    pub duration_ms: u64,
    /// The error, for failed images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full log of this image's build, if one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// Context size as (files, bytes), when it was scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_bytes: Option<u64>,
}

/// The result of a whole build run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildReport {
    pub images: Vec<ImageReport>,
    pub duration_ms: u64,
    pub success: bool,
    pub interrupted: bool,
}
