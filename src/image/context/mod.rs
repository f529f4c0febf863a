//! The build context: which files Docker would receive (`.dockerignore` with Docker's exact
//! semantics, [`ignore`]), the walk that lists them ([`walk`]), their content hashes on all
//! cores ([`hash`]) short-circuited by a stat cache ([`statcache`]), and the streaming tar
//! that sends them ([`tar`]). It knows nothing about images: callers pass a context
//! directory, a Dockerfile path and the `.devspace/` directory.
//!
//! [`scan_context`] is the entry point of the build pipeline; [`tar::context_tar_stream`]
//! turns its entries into the request body of `POST /build`.

pub mod hash;
pub mod ignore;
pub mod statcache;
pub mod tar;
pub mod walk;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

pub use ignore::{IgnoreRules, PatternError};

/// A SHA-256 digest (shown as lowercase hex).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed), with its target as written.
    Symlink(Box<str>),
}

/// One included entry of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context directory, `/`-separated, no trailing `/`.
    pub rel: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes (0 for directories; the target length for symlinks).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// SHA-256 of the content, for regular files after a scan.
    pub digest: Option<Digest>,
}

/// Why a context could not be scanned or sent. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Ctrl-C while walking, hashing or sending the context.
    #[error("cancelled")]
    Cancelled,
    /// The context directory does not exist.
    #[error("build context {path} does not exist")]
    ContextMissing {
        /// The context directory as given.
        path: PathBuf,
    },
    /// The context path is not a directory.
    #[error("build context {path} is not a directory")]
    NotADirectory {
        /// The context path.
        path: PathBuf,
    },
    /// A directory could not be listed.
    #[error("cannot list directory {path}: {source}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An entry could not be stat'ed.
    #[error("cannot stat {path}: {source}")]
    Stat {
        /// The entry.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A symlink could not be read.
    #[error("cannot read symlink {path}: {source}")]
    ReadLink {
        /// The symlink.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could not be read (hashing or sending).
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file or link name is not valid UTF-8 (not supported).
    #[error("path {path} is not valid UTF-8; rename it or add it to .dockerignore")]
    NonUtf8Path {
        /// The offending path (lossy).
        path: PathBuf,
    },
    /// `.dockerignore` holds a pattern Docker rejects.
    #[error("{path}: {source}")]
    Pattern {
        /// The `.dockerignore` file.
        path: PathBuf,
        /// What is wrong.
        source: PatternError,
    },
}

/// How a scan went (for logs, tests and the benchmark).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Files whose content was read and hashed in this scan.
    pub hashed_files: usize,
    /// Bytes read for hashing.
    pub hashed_bytes: u64,
    /// Files whose digest came from the stat cache.
    pub cached_files: usize,
    /// Why the stat cache was not used, when it was not (missing, corrupt, foreign...).
    pub cache_ignored: Option<String>,
    /// Whether the stat cache file was (re)written.
    pub cache_written: bool,
}

/// The result of scanning a context: what would be sent and what it hashes to.
#[derive(Debug, Clone)]
pub struct ContextScan {
    /// The canonical context directory.
    pub root: PathBuf,
    /// The Dockerfile path relative to the context (`/`-separated), `None` when the
    /// Dockerfile lies outside the context.
    pub dockerfile_rel: Option<String>,
    /// Included entries, sorted by relative path.
    pub entries: Arc<Vec<Entry>>,
    /// Hash over all entries (see [`hash::context_hash`]).
    pub hash: Digest,
    /// Number of regular files.
    pub file_count: usize,
    /// Sum of the sizes of the regular files.
    pub total_bytes: u64,
    /// How the scan went.
    pub stats: ScanStats,
}

impl ContextScan {
    /// Relative path and content digest of every regular file, in path order (so a caller
    /// can name the files that changed between two scans).
    pub fn file_digests(&self) -> impl Iterator<Item = (&str, Digest)> + '_ {
        self.entries
            .iter()
            .filter_map(|e| match (&e.kind, e.digest) {
                (EntryKind::File, Some(d)) => Some((e.rel.as_str(), d)),
                _ => None,
            })
    }

    /// The context as a streaming tar (see [`tar::context_tar_stream`]) with the Dockerfile
    /// handled as `dockerfile` says.
    pub fn tar_stream(
        &self,
        dockerfile: tar::DockerfileEntry,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
    {
        let options = tar::TarOptions {
            dockerfile,
            ..tar::TarOptions::default()
        };
        tar::context_tar_stream(self.root.clone(), self.entries.clone(), options)
    }
}

/// Scans the context of one image: reads `.dockerignore`, always includes it and the
/// Dockerfile (like the docker CLI), excludes `.devspace/` (like DevSpace), walks, and
/// hashes every included file, reusing digests from the stat cache under `cache_dir`
/// (usually the project's `.devspace/`) for files whose metadata did not change.
pub fn scan_context(
    context_dir: &Path,
    dockerfile: &Path,
    cache_dir: &Path,
) -> Result<ContextScan, ContextError> {
    scan_context_until(
        context_dir,
        dockerfile,
        cache_dir,
        &CancellationToken::new(),
    )
}

/// [`scan_context`] that stops with [`ContextError::Cancelled`] soon after `stop` is
/// cancelled (checked per directory listed and per read of a file being hashed).
pub fn scan_context_until(
    context_dir: &Path,
    dockerfile: &Path,
    cache_dir: &Path,
    stop: &CancellationToken,
) -> Result<ContextScan, ContextError> {
    let root = canonical_context(context_dir)?;
    let dockerfile_rel = dockerfile_in_context(&root, dockerfile);
    let rules = context_rules(&root, dockerfile_rel.as_deref())?;
    let stamp_ns = now_ns() - statcache::RACY_MARGIN_NS;
    let mut entries = walk::walk_until(&root, &rules, stop)?;
    let mut stats = ScanStats::default();

    let cache_path = statcache::cache_file(cache_dir, &root);
    let (todo, unchanged) = match statcache::apply(&cache_path, &root, &mut entries) {
        Ok(applied) => (applied.todo, applied.unchanged),
        Err(reason) => {
            tracing::debug!(cache = %cache_path.display(), %reason, "stat cache not used");
            stats.cache_ignored = Some(reason);
            let todo = (0..entries.len())
                .filter(|&i| entries[i].kind == EntryKind::File)
                .collect();
            (todo, false)
        }
    };
    stats.hashed_files = todo.len();
    stats.hashed_bytes = hash::hash_entries_until(&root, &mut entries, &todo, stop)?;

    let file_count = entries.iter().filter(|e| e.kind == EntryKind::File).count();
    stats.cached_files = file_count - todo.len();
    if !unchanged || !todo.is_empty() {
        match statcache::save(&cache_path, &root, stamp_ns, &entries) {
            Ok(()) => stats.cache_written = true,
            // A cache that cannot be written only costs time on the next run.
            Err(e) => tracing::warn!(cache = %cache_path.display(), "cannot write stat cache: {e}"),
        }
    }
    let total_bytes = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.size)
        .sum();
    Ok(ContextScan {
        hash: hash::context_hash(&entries),
        root,
        dockerfile_rel,
        entries: Arc::new(entries),
        file_count,
        total_bytes,
        stats,
    })
}

/// Canonical (symlink-free, absolute) context directory, with errors naming the path.
pub fn canonical_context(context_dir: &Path) -> Result<PathBuf, ContextError> {
    let root = std::fs::canonicalize(context_dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ContextError::ContextMissing {
            path: context_dir.to_path_buf(),
        },
        _ => ContextError::Stat {
            path: context_dir.to_path_buf(),
            source,
        },
    })?;
    if !root.is_dir() {
        return Err(ContextError::NotADirectory {
            path: context_dir.to_path_buf(),
        });
    }
    Ok(root)
}

/// The Dockerfile's path relative to the (canonical) context root with `/` separators, or
/// `None` when it lies outside (then it is sent as an extra entry, see [`tar`]).
pub fn dockerfile_in_context(root: &Path, dockerfile: &Path) -> Option<String> {
    let absolute = std::fs::canonicalize(dockerfile)
        .or_else(|_| std::path::absolute(dockerfile))
        .ok()?;
    let rel = absolute.strip_prefix(root).ok()?;
    let rel = rel.to_str()?;
    let cleaned = ignore::go_clean(rel);
    (cleaned != "." && !cleaned.starts_with("../")).then_some(cleaned)
}

/// The exclude rules Docker applies to this context: `.dockerignore`, then exceptions for
/// `.dockerignore` and the Dockerfile when they are excluded (docker CLI), then `.devspace`
/// (DevSpace).
pub fn context_rules(
    root: &Path,
    dockerfile_rel: Option<&str>,
) -> Result<IgnoreRules, ContextError> {
    let path = root.join(".dockerignore");
    let content = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ContextError::ReadFile { path, source }),
    };
    let pattern_error = |source| ContextError::Pattern {
        path: path.clone(),
        source,
    };
    let mut rules = IgnoreRules::from_dockerignore(&content).map_err(pattern_error)?;
    for keep in [Some(".dockerignore"), dockerfile_rel]
        .into_iter()
        .flatten()
    {
        if rules.matches(keep) {
            rules.push(&format!("!{keep}")).map_err(pattern_error)?;
        }
    }
    rules.push(".devspace").map_err(pattern_error)?;
    Ok(rules)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl crate::diagnostic::Diagnostic for ContextError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    /// Writes `files` (path → content; a trailing `/` makes a directory) below `root`,
    /// with mtimes an hour in the past so the racy rule does not apply.
    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (path, content) in files {
            let full = root.join(path);
            if path.ends_with('/') {
                fs::create_dir_all(&full).unwrap();
                continue;
            }
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, content).unwrap();
            age(&full);
        }
    }

    fn age(path: &Path) {
        let past = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }

    /// A temporary copy of [`PROJECT`]: (guard, context dir, cache dir).
    fn project() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        tree(&ctx, PROJECT);
        let cache = ctx.join(".devspace");
        (dir, ctx, cache)
    }

    fn rels(scan: &ContextScan) -> Vec<&str> {
        scan.entries.iter().map(|e| e.rel.as_str()).collect()
    }

    const PROJECT: &[(&str, &str)] = &[
        ("Dockerfile", "FROM busybox\n"),
        (
            ".dockerignore",
            "*.log\nDockerfile\n.dockerignore\nbuild\n!build/keep\n",
        ),
        ("a.log", "x"),
        ("sub/a.log", "kept: patterns are anchored at the root"),
        ("src/main.rs", "fn main() {}\n"),
        ("build/out.o", "o"),
        ("build/keep", "k"),
        (".devspace/generated.yaml", "x"),
        ("empty/", ""),
    ];

    #[test]
    fn scan_applies_dockerignore_and_always_sends_build_files() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        tree(&ctx, PROJECT);
        std::os::unix::fs::symlink("src/main.rs", ctx.join("link")).unwrap();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        assert_eq!(
            rels(&scan),
            [
                ".dockerignore",
                "Dockerfile",
                "build/keep",
                "empty",
                "link",
                "src",
                "src/main.rs",
                "sub",
                "sub/a.log"
            ]
        );
        assert_eq!(scan.dockerfile_rel.as_deref(), Some("Dockerfile"));
        let link = scan.entries.iter().find(|e| e.rel == "link").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink("src/main.rs".into()));
        assert_eq!(scan.file_count, 5);
        assert_eq!(scan.stats.hashed_files, 5);
        let digests: Vec<(&str, String)> = scan
            .file_digests()
            .map(|(rel, d)| (rel, d.to_string()))
            .collect();
        assert_eq!(digests[1].0, "Dockerfile");
        assert_eq!(
            digests[2],
            (
                "build/keep",
                // sha256("k")
                "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a".to_owned()
            )
        );
    }

    #[test]
    fn hash_is_independent_of_location_and_sensitive_to_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("elsewhere/two"));
        tree(&one, PROJECT);
        tree(&two, PROJECT);
        let cache = dir.path().join("cache");
        let scan = |ctx: &Path| scan_context(ctx, &ctx.join("Dockerfile"), &cache).unwrap();
        let first = scan(&one);
        assert_eq!(first.hash, scan(&two).hash);

        fs::write(two.join("a.log"), "ignored files do not count").unwrap();
        assert_eq!(first.hash, scan(&two).hash);

        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(two.join("src/main.rs"), fs::Permissions::from_mode(0o755)).unwrap();
        let chmod = scan(&two);
        assert_ne!(first.hash, chmod.hash);

        fs::write(two.join("src/main.rs"), "fn main() { }\n").unwrap();
        assert_ne!(chmod.hash, scan(&two).hash);
    }

    #[test]
    fn unchanged_run_reads_no_file_and_edits_are_seen() {
        let (_dir, ctx, cache) = project();
        let scan = || scan_context(&ctx, &ctx.join("Dockerfile"), &cache).unwrap();
        let first = scan();
        assert_eq!(first.stats.hashed_files, 5);
        assert!(first.stats.cache_written);

        let second = scan();
        assert_eq!(
            second.stats.hashed_files, 0,
            "no-change run must not read files"
        );
        assert_eq!(second.stats.hashed_bytes, 0);
        assert_eq!(second.stats.cached_files, 5);
        assert!(!second.stats.cache_written, "nothing to rewrite");
        assert_eq!(second.hash, first.hash);

        // Same size, mtime restored: only ctime tells; the edit must still be seen.
        let main = ctx.join("src/main.rs");
        let before = fs::metadata(&main).unwrap().modified().unwrap();
        fs::write(&main, "fn main() {x}\n").unwrap();
        fs::File::options()
            .write(true)
            .open(&main)
            .unwrap()
            .set_modified(before)
            .unwrap();
        let third = scan();
        assert_eq!(third.stats.hashed_files, 1);
        assert_ne!(third.hash, first.hash);
    }

    #[test]
    fn racy_files_are_rehashed_until_older_than_the_cache() {
        let (_dir, ctx, cache) = project();
        fs::write(ctx.join("src/fresh.rs"), "just written").unwrap();
        let scan = || scan_context(&ctx, &ctx.join("Dockerfile"), &cache).unwrap();
        scan();
        let again = scan();
        assert_eq!(
            again.stats.hashed_files, 1,
            "a file as new as the cache is re-hashed"
        );
        assert_eq!(again.stats.cached_files, 5);
    }

    #[test]
    fn corrupt_or_foreign_stat_cache_is_ignored() {
        let (dir, ctx, cache) = project();
        let first = scan_context(&ctx, &ctx.join("Dockerfile"), &cache).unwrap();
        let file = statcache::cache_file(&cache, &first.root);
        for junk in [&b"not a cache"[..], &[0u8; 4096][..], b""] {
            fs::write(&file, junk).unwrap();
            let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &cache).unwrap();
            assert!(scan.stats.cache_ignored.is_some());
            assert_eq!(scan.stats.hashed_files, 5);
            assert_eq!(scan.hash, first.hash);
        }
        // A cache written for another directory, copied over ours.
        let other = dir.path().join("other");
        tree(&other, PROJECT);
        let other_scan = scan_context(&other, &other.join("Dockerfile"), &cache).unwrap();
        fs::copy(statcache::cache_file(&cache, &other_scan.root), &file).unwrap();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &cache).unwrap();
        assert_eq!(
            scan.stats.cache_ignored.as_deref(),
            Some("written for another directory")
        );
        assert_eq!(scan.hash, first.hash);
    }

    #[test]
    fn cancel_stops_the_walk_and_the_hashing_of_a_huge_file() {
        let (_dir, ctx, cache) = project();
        // 16 GiB, sparse: minutes to hash, nothing on disk.
        let big = fs::File::create(ctx.join("big.img")).unwrap();
        big.set_len(16 << 30).unwrap();
        drop(big);
        let stop = CancellationToken::new();
        let canceller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                stop.cancel();
            })
        };
        let result = scan_context_until(&ctx, &ctx.join("Dockerfile"), &cache, &stop);
        canceller.join().unwrap();
        assert!(matches!(result, Err(ContextError::Cancelled)), "{result:?}");
        // Already cancelled: the walk does not list anything.
        let err = walk::walk_until(&ctx, &IgnoreRules::default(), &stop).unwrap_err();
        assert!(matches!(err, ContextError::Cancelled), "{err}");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = scan_context(&missing, &missing.join("Dockerfile"), dir.path()).unwrap_err();
        assert!(matches!(err, ContextError::ContextMissing { .. }));
        assert!(
            err.to_string().contains(&*missing.to_string_lossy()),
            "{err}"
        );

        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = scan_context(&file, &file, dir.path()).unwrap_err();
        assert!(matches!(err, ContextError::NotADirectory { .. }), "{err}");

        let ctx = dir.path().join("ctx");
        tree(&ctx, &[(".dockerignore", "ok\n!\n")]);
        let err = scan_context(&ctx, &ctx.join("Dockerfile"), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(".dockerignore") && text.contains("illegal exclusion"),
            "{text}"
        );

        let mut entries = vec![Entry {
            rel: "gone".into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 1,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            digest: None,
        }];
        let err = hash::hash_entries(&ctx, &mut entries, &[0]).unwrap_err();
        assert!(
            err.to_string()
                .contains(&*ctx.join("gone").to_string_lossy()),
            "{err}"
        );
    }

    #[test]
    fn dockerfile_outside_the_context_is_not_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        tree(&ctx, &[("sub/Dockerfile", "FROM x"), ("a", "")]);
        fs::write(dir.path().join("Dockerfile"), "FROM y").unwrap();
        let root = canonical_context(&ctx).unwrap();
        assert_eq!(
            dockerfile_in_context(&root, &dir.path().join("Dockerfile")),
            None
        );
        assert_eq!(
            dockerfile_in_context(&root, &ctx.join("sub/../sub/Dockerfile")).as_deref(),
            Some("sub/Dockerfile")
        );
    }
}
