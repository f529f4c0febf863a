//! The build cache on disk under `<project root>/.devspace/`:
//! - `generated.yaml` in DevSpace's layout (`profiles.<profile>.images.<key>` with
//!   `imageConfigHash`, `dockerfileHash`, `contextHash`, `entrypointHash`, `customFilesHash`,
//!   `imageName`, `tag`), so users can switch between DevSpace and this tool. Every other key
//!   (`vars`, `activeProfile`, `lastContext`, `deployments`, ...) is kept as it was;
//! - one record per image, `images/p-<profile>/<key>.rec`, with what DevSpace does not store:
//!   the per-field image config hashes and the per-file digests (so a decision can say what
//!   changed), all tags, and whether and where the image was pushed.
//!
//! Entries are committed only after the image was built (and pushed): the build stage holds a
//! [`PendingEntry`] and turns it into a committed entry with [`Cache::commit`]; dropping it
//! writes nothing. Each commit takes an exclusive lock on `.devspace/.lock`, re-reads
//! `generated.yaml`, changes only this image's entry and renames a complete temp file over the
//! old one, so parallel runs keep each other's entries and an interrupted run leaves either
//! the old or the new file. Unreadable, corrupt or foreign files count as empty, with a warning.
//!
//! A record is trusted only while it matches its `generated.yaml` entry (same config hash,
//! files hash and tag): another tool rewriting the entry makes the record stale, not wrong.

use crate::image::decision::{self, Decision, DecisionInputs, FilesInput};
pub use crate::image::record::{CachedImage, FileDigests, GeneratedImage, ImageRecord, PushRecord};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The DevSpace cache file, relative to `.devspace/`.
pub const GENERATED_FILE: &str = "generated.yaml";
/// DevSpace 6's cache file (`images.<key>`, not per profile), relative to `.devspace/`.
pub const CACHE_FILE_V6: &str = "cache.yaml";
const LOCK_FILE: &str = ".lock";
const RECORDS_DIR: &str = "images";
const RECORD_VERSION: u32 = 1;

/// A cache write that failed (reads never fail: they warn and count as empty).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cache {path}: cannot write: {message}")]
    Serialize { path: PathBuf, message: String },
}

/// What one successful build produced, given to [`Cache::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// Every tag applied; the first is recorded in `generated.yaml` for deploy.
    pub tags: Vec<String>,
    /// Where it was pushed; `None` with `--skip-push`/`skipPush`.
    pub push: Option<PushRecord>,
}

/// A cache entry that may be written only once its image was built (and pushed): the build
/// stage creates it from the decision inputs and hands it to [`Cache::commit`] on success.
/// Dropping it commits nothing.
#[derive(Debug)]
#[must_use = "a pending cache entry is written only by Cache::commit"]
pub struct PendingEntry {
    profile: String,
    key: String,
    image_name: String,
    inputs: DecisionInputs,
}

impl PendingEntry {
    /// The entry for image `key` (`images.<key>`) of `profile` (`""` without profile) whose
    /// `image:` is `image_name`.
    pub fn new(profile: &str, key: &str, image_name: &str, inputs: DecisionInputs) -> Self {
        Self {
            profile: profile.to_owned(),
            key: key.to_owned(),
            image_name: image_name.to_owned(),
            inputs,
        }
    }

    /// The image key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The inputs the entry will record.
    pub fn inputs(&self) -> &DecisionInputs {
        &self.inputs
    }
}

/// What [`Cache::decide_entry`] returns.
#[derive(Debug)]
pub struct Decided {
    pub decision: Decision,
    /// The last successful build (recorded tags and push), if any.
    pub cached: Option<CachedImage>,
    /// The entry to commit once the image was built (and pushed).
    pub pending: PendingEntry,
}

/// Handle on `.devspace/` of one project; cheap reads from a snapshot taken at open, locked
/// read-merge-write commits. Shareable between threads.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    /// DevSpace 6 layout: `cache.yaml` with `images.<key>` for every profile.
    devspace6: bool,
    snapshot: Mutex<Map<String, Value>>,
    warnings: Mutex<Vec<String>>,
}

impl Cache {
    /// Reads `<project_root>/.devspace/generated.yaml` (missing → empty). Never fails.
    pub fn open(project_root: &Path) -> Self {
        Self::open_for(project_root, false)
    }

    /// [`Cache::open`] in DevSpace 6's layout (`.devspace/cache.yaml`, `images.<key>`, the
    /// same entry for every profile) when `devspace6`.
    pub fn open_for(project_root: &Path, devspace6: bool) -> Self {
        let cache = Self {
            devspace6,
            dir: project_root.join(".devspace"),
            snapshot: Mutex::new(Map::new()),
            warnings: Mutex::new(Vec::new()),
        };
        let generated = cache.read_generated(false);
        *lock(&cache.snapshot) = generated;
        cache
    }

    /// The `.devspace/` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Problems met while reading (corrupt files ignored, ...), for the UI to show once.
    pub fn warnings(&self) -> Vec<String> {
        lock(&self.warnings).clone()
    }

    /// DevSpace's active profile: `lastOverrideProfile`, else `activeProfile`.
    pub fn active_profile(&self) -> Option<String> {
        let snapshot = lock(&self.snapshot);
        ["lastOverrideProfile", "activeProfile"]
            .iter()
            .find_map(|k| {
                snapshot
                    .get(*k)
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
            })
            .map(str::to_owned)
    }

    /// Cached answers of variables (top-level `vars`), scalars as strings.
    pub fn vars(&self) -> IndexMap<String, String> {
        let snapshot = lock(&self.snapshot);
        let Some(Value::Object(vars)) = snapshot.get("vars") else {
            return IndexMap::new();
        };
        vars.iter()
            .filter_map(|(k, v)| scalar_string(v).map(|s| (k.clone(), s)))
            .collect()
    }

    /// Stores variable answers (merged into `vars`, other keys kept).
    pub fn set_vars(&self, vars: &IndexMap<String, String>) -> Result<(), CacheError> {
        self.update_generated(|generated| {
            let slot = generated
                .entry("vars")
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(map) = slot {
                for (k, v) in vars {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
            }
        })
    }

    /// The last successful build of `key` under `profile`, without its file list.
    pub fn cached(&self, profile: &str, key: &str) -> Option<CachedImage> {
        let entry = {
            let snapshot = lock(&self.snapshot);
            let images = if self.devspace6 {
                snapshot.get("images")?
            } else {
                snapshot.get("profiles")?.get(profile)?.get("images")?
            };
            let value = images.get(key)?.clone();
            drop(snapshot);
            match serde_json::from_value::<GeneratedImage>(value) {
                Ok(entry) => entry,
                Err(e) => {
                    self.warn(format!(
                        "cache {}: profiles.{profile:?}.images.{key}: ignored ({e})",
                        self.generated_path().display()
                    ));
                    return None;
                }
            }
        };
        let record = self
            .read_record_meta(profile, key)
            .filter(|record| record_matches(record, &entry));
        Some(CachedImage { entry, record })
    }

    /// Loads the per-file digests into `cached.record` (no-op without a record).
    pub fn load_files(&self, profile: &str, key: &str, cached: &mut CachedImage) {
        let Some(record) = cached.record.as_mut() else {
            return;
        };
        if record.files.is_none() {
            record.files = self.read_record_files(profile, key);
        }
    }

    /// [`decision::decide`] against this cache, loading the cached file list only when it is
    /// needed to name changed files. Returns the cached image too (for tags, push records).
    pub fn decide(
        &self,
        profile: &str,
        key: &str,
        inputs: &DecisionInputs,
        force: bool,
    ) -> (Decision, Option<CachedImage>) {
        let mut cached = self.cached(profile, key);
        if decision::needs_cached_files(inputs, cached.as_ref(), force)
            && let Some(c) = cached.as_mut()
        {
            self.load_files(profile, key, c);
        }
        (decision::decide(inputs, cached.as_ref(), force), cached)
    }

    /// Decides for image `key` (whose `image:` is `image_name`) and produces the entry a
    /// successful build (or push) of it commits: the decision owns what it was made from.
    pub fn decide_entry(
        &self,
        profile: &str,
        key: &str,
        image_name: &str,
        inputs: DecisionInputs,
        force: bool,
    ) -> Decided {
        let (decision, cached) = self.decide(profile, key, &inputs, force);
        Decided {
            decision,
            cached,
            pending: PendingEntry::new(profile, key, image_name, inputs),
        }
    }

    /// Records a successful build: the `generated.yaml` entry and this tool's record, under
    /// the lock, merged into what is on disk now.
    pub fn commit(&self, pending: PendingEntry, outcome: BuildOutcome) -> Result<(), CacheError> {
        let PendingEntry {
            profile,
            key,
            image_name,
            inputs,
        } = pending;
        let (entry, files) = entry_for(&inputs, &image_name, &outcome);
        let record = ImageRecord {
            image_config_hash: inputs.image_config_hash.clone(),
            image_config_fields: inputs.image_config_fields.clone(),
            tag_fields: inputs.tag_fields.clone(),
            files_hash: inputs.builder.files().map(|f| f.hash.clone()),
            tags: outcome.tags.clone(),
            push: outcome.push.clone(),
            files: None,
        };
        let entry_value = serde_json::to_value(&entry).map_err(|e| CacheError::Serialize {
            path: self.generated_path(),
            message: e.to_string(),
        })?;
        let _guard = self.lock_dir()?;
        // Record first: a record newer than its entry is stale (ignored), never misleading.
        self.write_record(&profile, &key, &record, files)?;
        self.update_generated_locked(|generated| {
            let images = object_at(generated, &self.images_path(&profile));
            let slot = images
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            // Keep fields other tools may have added to the entry; ours are replaced whole.
            let mut merged = match slot.take() {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            for field in [
                "imageConfigHash",
                "dockerfileHash",
                "contextHash",
                "entrypointHash",
                "customFilesHash",
                "imageName",
                "tag",
            ] {
                merged.remove(field);
            }
            if let Value::Object(ours) = &entry_value {
                merged.extend(ours.clone());
            }
            *slot = Value::Object(merged);
        })
    }

    /// Drops the entries (and records) of `profile` whose image key is not in `keep`, as
    /// DevSpace does before deploy when images were removed from the config. Returns the
    /// removed keys.
    pub fn retain_images(&self, profile: &str, keep: &[&str]) -> Result<Vec<String>, CacheError> {
        let _guard = self.lock_dir()?;
        let mut removed = Vec::new();
        self.update_generated_locked(|generated| {
            let images = object_at(generated, &self.images_path(profile));
            images.retain(|key, _| {
                let kept = keep.contains(&key.as_str());
                if !kept {
                    removed.push(key.clone());
                }
                kept
            });
        })?;
        for key in &removed {
            match fs::remove_file(self.record_path(profile, key)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    self.warn(format!("cache: cannot remove record of {key}: {e}"));
                }
                _ => {}
            }
        }
        Ok(removed)
    }

    fn file_name(&self) -> &'static str {
        if self.devspace6 {
            CACHE_FILE_V6
        } else {
            GENERATED_FILE
        }
    }

    fn generated_path(&self) -> PathBuf {
        self.dir.join(self.file_name())
    }

    /// Where the image entries live in the file.
    fn images_path<'p>(&self, profile: &'p str) -> Vec<&'p str> {
        if self.devspace6 {
            vec!["images"]
        } else {
            vec!["profiles", profile, "images"]
        }
    }

    fn record_path(&self, profile: &str, key: &str) -> PathBuf {
        let bucket = if self.devspace6 {
            "v6".to_string()
        } else {
            format!("p-{}", encode_name(profile))
        };
        self.dir
            .join(RECORDS_DIR)
            .join(bucket)
            .join(format!("{}.rec", encode_name(key)))
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        lock(&self.warnings).push(message);
    }

    /// Reads `generated.yaml` as a mapping; anything unusable is empty with a warning. With
    /// `keep_corrupt`, a corrupt file is renamed to `generated.yaml.corrupt` before it is
    /// overwritten, so nothing the user had is lost silently.
    fn read_generated(&self, keep_corrupt: bool) -> Map<String, Value> {
        let path = self.generated_path();
        let text = match crate::yaml::limits::read_file(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Map::new(),
            Err(e) => {
                self.warn(format!(
                    "cache {}: unreadable, treated as empty ({e})",
                    path.display()
                ));
                return Map::new();
            }
        };
        if text.trim().is_empty() {
            return Map::new();
        }
        let problem = match crate::yaml::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => return map,
            Ok(Value::Null) => return Map::new(),
            Ok(_) => "not a mapping".to_owned(),
            Err(e) => e,
        };
        let mut message = format!(
            "cache {}: corrupt, treated as empty ({problem})",
            path.display()
        );
        if keep_corrupt {
            let backup = self.dir.join(format!("{}.corrupt", self.file_name()));
            if fs::rename(&path, &backup).is_ok() {
                message.push_str(&format!("; kept as {}", backup.display()));
            }
        }
        self.warn(message);
        Map::new()
    }

    fn lock_dir(&self) -> Result<File, CacheError> {
        let io_err = |source| CacheError::Io {
            path: self.dir.join(LOCK_FILE),
            source,
        };
        crate::safe_fs::create_dir(&self.dir, 1).map_err(io_err)?;
        let file = crate::safe_fs::open_lock(&self.dir.join(LOCK_FILE)).map_err(io_err)?;
        file.lock().map_err(io_err)?;
        Ok(file)
    }

    fn update_generated(
        &self,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<(), CacheError> {
        let _guard = self.lock_dir()?;
        self.update_generated_locked(change)
    }

    /// Re-reads, changes and atomically rewrites `generated.yaml`; the caller holds the lock.
    fn update_generated_locked(
        &self,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<(), CacheError> {
        let mut generated = self.read_generated(true);
        change(&mut generated);
        let path = self.generated_path();
        let text = serde_saphyr::to_string(&Value::Object(generated.clone())).map_err(|e| {
            CacheError::Serialize {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        write_atomically(&path, text.as_bytes())?;
        *lock(&self.snapshot) = generated;
        Ok(())
    }

    fn write_record(
        &self,
        profile: &str,
        key: &str,
        record: &ImageRecord,
        files: Option<&FileDigests>,
    ) -> Result<(), CacheError> {
        let path = self.record_path(profile, key);
        let meta = RecordMeta {
            version: RECORD_VERSION,
            image_config_hash: record.image_config_hash.clone(),
            image_config_fields: record.image_config_fields.clone(),
            tag_fields: record.tag_fields.clone(),
            files_hash: record.files_hash.clone(),
            tags: record.tags.clone(),
            push: record.push.clone(),
        };
        let mut out = serde_json::to_string(&meta).map_err(|e| CacheError::Serialize {
            path: path.clone(),
            message: e.to_string(),
        })?;
        out.push('\n');
        for (file, digest) in files.into_iter().flatten() {
            out.push_str(digest);
            out.push('\t');
            escape_line(file, &mut out);
            out.push('\n');
        }
        if let Some(parent) = path.parent() {
            // `.devspace/images/p-<profile>`: each level checked for links.
            crate::safe_fs::create_dir(parent, 3).map_err(|source| CacheError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        write_atomically(&path, out.as_bytes())
    }

    fn read_record_meta(&self, profile: &str, key: &str) -> Option<ImageRecord> {
        let path = self.record_path(profile, key);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.warn(format!(
                    "cache {}: unreadable, ignored ({e})",
                    path.display()
                ));
                return None;
            }
        };
        let mut first = String::new();
        let parsed = BufReader::new(file)
            .read_line(&mut first)
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::from_str::<RecordMeta>(&first).map_err(|e| e.to_string()));
        match parsed {
            Ok(meta) if meta.version == RECORD_VERSION => Some(ImageRecord {
                image_config_hash: meta.image_config_hash,
                image_config_fields: meta.image_config_fields,
                tag_fields: meta.tag_fields,
                files_hash: meta.files_hash,
                tags: meta.tags,
                push: meta.push,
                files: None,
            }),
            Ok(_) => None,
            Err(e) => {
                self.drop_corrupt_record(&path, &e);
                None
            }
        }
    }

    /// A corrupt record is removed (said once): without it the image's next build writes a
    /// fresh one, instead of the same warning on every run.
    fn drop_corrupt_record(&self, path: &Path, problem: &dyn std::fmt::Display) {
        let removed = match fs::remove_file(path) {
            Ok(()) => "removed",
            Err(_) => "ignored",
        };
        self.warn(format!(
            "cache {}: corrupt, {removed} ({problem})",
            path.display()
        ));
    }

    fn read_record_files(&self, profile: &str, key: &str) -> Option<FileDigests> {
        let path = self.record_path(profile, key);
        let text = fs::read_to_string(&path).ok()?;
        let mut files = Vec::new();
        for line in text.lines().skip(1) {
            let Some((digest, file)) = line.split_once('\t') else {
                self.drop_corrupt_record(&path, &"corrupt file list");
                return None;
            };
            files.push((unescape_line(file), digest.to_owned()));
        }
        files.sort();
        Some(files)
    }
}

/// First line of a record file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordMeta {
    version: u32,
    image_config_hash: String,
    image_config_fields: IndexMap<String, String>,
    /// Added after version 1 was released: absent in older records (then empty).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    tag_fields: IndexMap<String, String>,
    #[serde(default)]
    files_hash: Option<String>,
    tags: Vec<String>,
    #[serde(default)]
    push: Option<PushRecord>,
}

fn entry_for<'i>(
    inputs: &'i DecisionInputs,
    image_name: &str,
    outcome: &BuildOutcome,
) -> (GeneratedImage, Option<&'i FileDigests>) {
    let mut entry = GeneratedImage {
        image_config_hash: Some(inputs.image_config_hash.clone()),
        image_name: Some(image_name.to_owned()),
        tag: outcome.tags.first().cloned(),
        ..GeneratedImage::default()
    };
    let files = match &inputs.builder {
        decision::BuilderInputs::Dockerfile {
            dockerfile_hash,
            entrypoint_hash,
            context,
        } => {
            entry.dockerfile_hash = Some(dockerfile_hash.clone());
            entry.entrypoint_hash = Some(entrypoint_hash.clone()).filter(|h| !h.is_empty());
            entry.context_hash = Some(context.hash.clone());
            Some(context.files())
        }
        decision::BuilderInputs::Custom { on_change } => {
            entry.custom_files_hash = on_change.as_ref().map(|f| f.hash.clone());
            on_change.as_ref().map(FilesInput::files)
        }
    };
    (entry, files)
}

fn record_matches(record: &ImageRecord, entry: &GeneratedImage) -> bool {
    let files_hash = entry
        .context_hash
        .as_ref()
        .or(entry.custom_files_hash.as_ref());
    entry.image_config_hash.as_ref() == Some(&record.image_config_hash)
        && files_hash == record.files_hash.as_ref()
        && entry.tag.as_ref() == record.tags.first()
}

/// The object at `path` inside `root`, replacing anything in the way that is not an object.
fn object_at<'m>(root: &'m mut Map<String, Value>, path: &[&str]) -> &'m mut Map<String, Value> {
    let mut current = root;
    for segment in path {
        let slot = current
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            unreachable!("made an object just above")
        };
        current = next;
    }
    current
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `bytes` become the content of `path` at once (see [`crate::safe_fs::write`]).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    crate::safe_fs::write(path, bytes).map_err(|source| CacheError::Io {
        path: path.to_owned(),
        source,
    })
}

/// A profile or image key as a file name: `[A-Za-z0-9_-]` kept, every other byte `%XX`.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape_line(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn unescape_line(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Poisoning only means another thread panicked mid-update of plain data; the data is still
/// usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl crate::diagnostic::Diagnostic for CacheError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImageConfig;
    use crate::image::decision::{BuilderInputs, FilesInput};

    fn inputs(files: &[(&str, &str)], tag_in_config: &str) -> DecisionInputs {
        let files: FileDigests = files
            .iter()
            .map(|(p, d)| (p.to_string(), d.to_string()))
            .collect();
        let config = ImageConfig {
            image: "localhost:5000/app".into(),
            tags: vec![tag_in_config.into()],
            dockerfile: "/p/Dockerfile".into(),
            context: "/p".into(),
            ..ImageConfig::default()
        };
        DecisionInputs::new(
            &config,
            Path::new("/p"),
            true,
            BuilderInputs::dockerfile_with(
                "FROM alpine\n",
                None,
                None,
                FilesInput::from_files(files),
            ),
        )
    }

    fn outcome(tag: &str, pushed: bool) -> BuildOutcome {
        BuildOutcome {
            tags: vec![tag.into(), "latest".into()],
            push: pushed.then(|| PushRecord {
                registry: "localhost:5000".into(),
                digest: Some("sha256:00".into()),
            }),
        }
    }

    /// A project whose image `api` was built with tag `v1` and pushed.
    fn committed_api() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path());
        cache
            .commit(
                PendingEntry::new("", "api", "app", inputs(FILES, "v1")),
                outcome("v1", true),
            )
            .unwrap();
        (dir, cache)
    }

    const FILES: &[(&str, &str)] = &[
        ("Dockerfile", "d"),
        ("src/a\nb\\c.rs", "a"),
        ("src/ü.rs", "u"),
    ];

    #[test]
    fn commit_then_reopen_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path());
        assert_eq!(cache.cached("", "api"), None);
        let input = inputs(FILES, "0123");
        cache
            .commit(
                PendingEntry::new("", "api", "localhost:5000/app", input.clone()),
                outcome("0123", true),
            )
            .unwrap();

        let reopened = Cache::open(dir.path());
        assert!(reopened.warnings().is_empty(), "{:?}", reopened.warnings());
        let mut cached = reopened.cached("", "api").unwrap();
        assert_eq!(
            cached.entry.tag.as_deref(),
            Some("0123"),
            "numeric-looking tag stays a string"
        );
        assert_eq!(
            cached.entry.image_name.as_deref(),
            Some("localhost:5000/app")
        );
        assert_eq!(
            cached.entry.entrypoint_hash, None,
            "omitted when empty, as DevSpace"
        );
        let record = cached.record.clone().unwrap();
        assert_eq!(record.tags, ["0123", "latest"]);
        assert_eq!(record.push.unwrap().registry, "localhost:5000");
        assert_eq!(record.files, None, "file list is loaded only on demand");
        reopened.load_files("", "api", &mut cached);
        let mut want: FileDigests = FILES
            .iter()
            .map(|(p, d)| (p.to_string(), d.to_string()))
            .collect();
        want.sort();
        assert_eq!(cached.record.unwrap().files.unwrap(), want);
        assert_eq!(
            reopened.decide("", "api", &input, false).0.to_string(),
            "skip (no change)"
        );

        let text = fs::read_to_string(dir.path().join(".devspace/generated.yaml")).unwrap();
        let yaml: Value = serde_saphyr::from_str(&text).unwrap();
        let entry = &yaml["profiles"][""]["images"]["api"];
        for field in [
            "imageConfigHash",
            "dockerfileHash",
            "contextHash",
            "imageName",
            "tag",
        ] {
            assert!(entry[field].is_string(), "{field} in {text}");
        }
    }

    #[test]
    fn decide_names_changed_files_from_the_record() {
        let (dir, _cache) = committed_api();
        let changed = inputs(
            &[
                ("Dockerfile", "d"),
                ("src/a\nb\\c.rs", "a"),
                ("src/ü.rs", "u2"),
            ],
            "v1",
        );
        let (decision, _) = Cache::open(dir.path()).decide("", "api", &changed, false);
        assert_eq!(decision.to_string(), "rebuild: 1 file changed: src/ü.rs");
        let (decision, _) = Cache::open(dir.path()).decide("", "api", &inputs(FILES, "v2"), false);
        // Tags are not content: the recorded image gets the new tag.
        assert_eq!(decision.to_string(), "retag: tags changed");
        let (decision, _) = Cache::open(dir.path()).decide("other-profile", "api", &changed, false);
        assert_eq!(decision.to_string(), "rebuild: never built");
    }

    #[test]
    fn other_keys_survive_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let devspace = dir.path().join(".devspace");
        fs::create_dir_all(&devspace).unwrap();
        // As DevSpace 4 writes it (yaml.v2, sorted keys).
        fs::write(
            devspace.join("generated.yaml"),
            "activeProfile: staging\nlastOverrideProfile: \"\"\nprofiles:\n  \"\":\n    deployments:\n      web:\n        helmOverridesHash: abc\n    images:\n      api:\n        contextHash: old\n        imageName: john/api\n        tag: AbCdEfG\n        futureField: keep-me\n      worker:\n        imageName: john/worker\n        tag: \"1234\"\n    lastContext:\n      context: minikube\n      namespace: dev\n  staging:\n    images: {}\nvars:\n  PASSWORD_PROMPT: \"yes\"\n",
        )
        .unwrap();
        let cache = Cache::open(dir.path());
        assert_eq!(cache.active_profile().as_deref(), Some("staging"));
        assert_eq!(
            cache.vars().get("PASSWORD_PROMPT").map(String::as_str),
            Some("yes")
        );
        cache
            .commit(
                PendingEntry::new("", "api", "john/api", inputs(FILES, "v1")),
                outcome("v1", false),
            )
            .unwrap();
        let text = fs::read_to_string(devspace.join("generated.yaml")).unwrap();
        let yaml: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(yaml["activeProfile"], "staging");
        assert_eq!(yaml["lastOverrideProfile"], "");
        assert_eq!(yaml["vars"]["PASSWORD_PROMPT"], "yes");
        assert_eq!(
            yaml["profiles"][""]["deployments"]["web"]["helmOverridesHash"],
            "abc"
        );
        assert_eq!(yaml["profiles"][""]["lastContext"]["namespace"], "dev");
        assert_eq!(yaml["profiles"][""]["images"]["worker"]["tag"], "1234");
        assert!(yaml["profiles"]["staging"]["images"].is_object());
        let api = &yaml["profiles"][""]["images"]["api"];
        assert_eq!(api["tag"], "v1");
        assert_eq!(api["futureField"], "keep-me");
        assert_ne!(api["contextHash"], "old");
    }

    #[test]
    fn corrupt_files_are_empty_with_a_warning_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let devspace = dir.path().join(".devspace");
        fs::create_dir_all(&devspace).unwrap();
        for bad in ["profiles: [unclosed\n", "- a list\n- not a mapping\n"] {
            fs::write(devspace.join("generated.yaml"), bad).unwrap();
            let cache = Cache::open(dir.path());
            assert_eq!(cache.cached("", "api"), None);
            let warnings = cache.warnings();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("generated.yaml: corrupt, treated as empty"),
                "{warnings:?}"
            );
            cache
                .commit(
                    PendingEntry::new("", "api", "app", inputs(FILES, "v1")),
                    outcome("v1", true),
                )
                .unwrap();
            assert_eq!(
                fs::read_to_string(devspace.join("generated.yaml.corrupt")).unwrap(),
                bad
            );
            assert!(Cache::open(dir.path()).cached("", "api").is_some());
        }
        // A corrupt record is removed with one warning, the entry still counts.
        let record = fs::read_dir(devspace.join("images/p-"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fs::write(&record, "{not json\n").unwrap();
        let cache = Cache::open(dir.path());
        let cached = cache.cached("", "api").unwrap();
        assert_eq!(cached.record, None);
        assert!(
            cache
                .warnings()
                .iter()
                .any(|w| w.contains("corrupt, removed")),
            "{:?}",
            cache.warnings()
        );
        assert!(!record.exists());
        let again = Cache::open(dir.path());
        assert!(again.cached("", "api").is_some());
        assert!(again.warnings().is_empty(), "{:?}", again.warnings());
    }

    #[test]
    fn a_cache_with_billion_laughs_is_treated_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let devspace = dir.path().join(".devspace");
        fs::create_dir_all(&devspace).unwrap();
        let laughs = crate::yaml::tests::billion_laughs(9);
        fs::write(devspace.join("generated.yaml"), &laughs).unwrap();
        let cache = Cache::open(dir.path());
        assert_eq!(cache.cached("", "api"), None);
        let warnings = cache.warnings();
        assert!(
            warnings[0].contains("corrupt, treated as empty"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("alias"), "{warnings:?}");
        assert!(crate::config::read_cached_vars(dir.path()).is_empty());
    }

    #[test]
    fn a_symlinked_devspace_directory_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join(".devspace")).unwrap();
        let cache = Cache::open(dir.path());
        let err = cache
            .commit(
                PendingEntry::new("", "api", "app", inputs(FILES, "v1")),
                outcome("v1", true),
            )
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(fs::read_dir(elsewhere.path()).unwrap().next().is_none());
    }

    #[test]
    fn retain_images_drops_removed_keys_and_their_records() {
        let (dir, cache) = committed_api();
        cache
            .commit(
                PendingEntry::new("", "worker", "w", inputs(FILES, "v1")),
                outcome("v1", true),
            )
            .unwrap();
        assert_eq!(cache.retain_images("", &["worker"]).unwrap(), ["api"]);
        let reopened = Cache::open(dir.path());
        assert_eq!(reopened.cached("", "api"), None);
        assert!(reopened.cached("", "worker").unwrap().record.is_some());
        assert!(!cache.record_path("", "api").exists());
        assert!(cache.retain_images("", &["worker"]).unwrap().is_empty());
    }

    #[test]
    fn a_dropped_pending_entry_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path());
        let pending = PendingEntry::new("", "api", "app", inputs(FILES, "v1"));
        assert_eq!(pending.key(), "api");
        drop(pending);
        assert!(!dir.path().join(".devspace").exists());
        assert_eq!(cache.cached("", "api"), None);
        assert_eq!(Cache::open(dir.path()).cached("", "api"), None);
    }

    #[test]
    fn a_record_is_stale_once_another_tool_rewrote_the_entry() {
        let (dir, _cache) = committed_api();
        let path = dir.path().join(".devspace/generated.yaml");
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("tag: v1", "tag: GoTag12");
        fs::write(&path, text).unwrap();
        let cached = Cache::open(dir.path()).cached("", "api").unwrap();
        assert_eq!(cached.entry.tag.as_deref(), Some("GoTag12"));
        assert_eq!(cached.record, None);
    }

    #[test]
    fn parallel_commits_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        // Every thread has its own handle (own snapshot, own lock file descriptor), like
        // separate processes.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let root = dir.path().to_owned();
                std::thread::spawn(move || {
                    let cache = Cache::open(&root);
                    for round in 0..5 {
                        let key = format!("image-{i}");
                        cache
                            .commit(
                                PendingEntry::new(
                                    "",
                                    &key,
                                    "app",
                                    inputs(FILES, &format!("r{round}")),
                                ),
                                outcome(&format!("r{round}"), true),
                            )
                            .unwrap();
                        cache
                            .set_vars(&IndexMap::from([(format!("V{i}"), round.to_string())]))
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let cache = Cache::open(dir.path());
        assert!(cache.warnings().is_empty(), "{:?}", cache.warnings());
        for i in 0..8 {
            let cached = cache.cached("", &format!("image-{i}")).unwrap();
            assert_eq!(cached.entry.tag.as_deref(), Some("r4"));
            assert!(cached.record.is_some());
            assert_eq!(
                cache.vars().get(&format!("V{i}")).map(String::as_str),
                Some("4")
            );
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path().join(".devspace"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn custom_builder_entries_and_awkward_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path());
        let files: FileDigests = vec![("build.sh".into(), "x".into())];
        let custom = DecisionInputs::new(
            &ImageConfig::default(),
            dir.path(),
            false,
            BuilderInputs::Custom {
                on_change: Some(FilesInput::from_files(files)),
            },
        );
        for (profile, key) in [("", "../escape"), ("prod/eu", "api.v2"), ("true", "1e5")] {
            cache
                .commit(
                    PendingEntry::new(profile, key, "app", custom.clone()),
                    outcome("yes", false),
                )
                .unwrap();
        }
        let reopened = Cache::open(dir.path());
        for (profile, key) in [("", "../escape"), ("prod/eu", "api.v2"), ("true", "1e5")] {
            let cached = reopened.cached(profile, key).unwrap();
            assert_eq!(cached.entry.tag.as_deref(), Some("yes"));
            assert!(cached.entry.custom_files_hash.is_some());
            assert_eq!(cached.entry.context_hash, None);
            assert!(cached.record.is_some(), "{profile}/{key}");
        }
        assert!(!dir.path().join("escape.rec").exists());
        assert_eq!(encode_name("../a b"), "%2E%2E%2Fa%20b");
    }
}
