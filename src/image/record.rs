//! What the cache remembers about an image's last successful build, as plain data: the
//! `generated.yaml` entry (DevSpace's layout), this tool's record beside it, and the push.
//! Shared by [`crate::image::cache`] (which reads and writes them) and
//! [`crate::image::decision`] (which compares them with this run's inputs), so neither of the
//! two depends on the other's internals.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A sorted list of (path relative to the context or project root, `/`-separated; hex digest).
pub type FileDigests = Vec<(String, String)>;

/// `profiles.<p>.images.<key>` of `generated.yaml`; absent fields are omitted, as DevSpace does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_config_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_files_hash: Option<String>,
    /// The `image:` value verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// The first tag of the last successful build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Where an image was pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    /// Registry host (`localhost:5000`, `docker.io`).
    pub registry: String,
    /// The manifest digest the registry answered, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// This tool's own record of the last successful build of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub image_config_hash: String,
    pub image_config_fields: IndexMap<String, String>,
    /// Per-field hashes of the tag fields (`tags`, `tagsAppendRandom`); empty in records
    /// written while tags were part of `image_config_fields`.
    pub tag_fields: IndexMap<String, String>,
    /// `contextHash` or `customFilesHash` the file list belongs to.
    pub files_hash: Option<String>,
    /// Every tag applied, the recorded one first.
    pub tags: Vec<String>,
    /// `None`: built but not pushed.
    pub push: Option<PushRecord>,
    /// Per-file digests, sorted; `None` until [`Cache::load_files`] (they can be large).
    pub files: Option<FileDigests>,
}

/// What the cache knows about an image's last successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedImage {
    pub entry: GeneratedImage,
    /// `None` when missing, unreadable or stale (the entry was rewritten by another tool).
    pub record: Option<ImageRecord>,
}
