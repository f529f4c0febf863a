//! The context walk: lists what the docker CLI would send for a context directory, applying
//! the `.dockerignore` rules the way `TarWithOptions` does (`lstat`, symlinks not followed,
//! excluded directories pruned unless an exception could reach inside).
//!
//! On a no-change run the walk's system calls are the whole cost, so it works at that floor:
//! every directory is opened relative to its parent's descriptor (`openat`, no path lookup
//! from the root), listed with `getdents64` into a 64 KiB buffer, and every entry is
//! `statx`-ed relative to the directory descriptor asking only for the fields the stat cache
//! compares (no `stat` at all for excluded files and special files, whose `d_type` says
//! enough). Directories are listed on all cores from a shared queue, like the hashing.

use super::ignore::{IgnoreRules, ParentMatches};
use super::{ContextError, Entry, EntryKind};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, StatxFlags};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use tokio_util::sync::CancellationToken;

/// `getdents64` buffer per walking thread: a directory of ~1,500 entries in one call.
const DIRENT_BUF: usize = 64 * 1024;

/// A directory still to list.
struct DirJob {
    /// The open parent directory (`None`: this is the root, opened by its path).
    parent: Option<Arc<OwnedFd>>,
    /// Relative path (empty for the root); the name to open is the last component.
    rel: String,
    /// Match results of this directory, handed to its children.
    matches: Option<ParentMatches>,
}

/// Work shared by the walking threads.
struct Queue {
    jobs: Vec<DirJob>,
    /// Threads currently listing a directory (which may add jobs).
    busy: usize,
    failure: Option<ContextError>,
    /// What each thread found, handed over when it finishes (no shared growing list: its
    /// reallocations would copy every entry several times).
    found: Vec<Vec<Entry>>,
}

/// Lists the included entries below `root`, sorted by relative path (byte order, `/`
/// separators). The root itself is not listed. Special files (sockets, fifos, devices) are
/// skipped: nothing in an image build needs them.
pub fn walk(root: &Path, rules: &IgnoreRules) -> Result<Vec<Entry>, ContextError> {
    walk_until(root, rules, &CancellationToken::new())
}

/// [`walk`] that stops with [`ContextError::Cancelled`] once `stop` is cancelled (checked
/// before each directory is listed).
pub fn walk_until(
    root: &Path,
    rules: &IgnoreRules,
    stop: &CancellationToken,
) -> Result<Vec<Entry>, ContextError> {
    let meta = std::fs::metadata(root).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ContextError::ContextMissing {
            path: root.to_path_buf(),
        },
        _ => ContextError::Stat {
            path: root.to_path_buf(),
            source,
        },
    })?;
    if !meta.is_dir() {
        return Err(ContextError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let queue = Mutex::new(Queue {
        jobs: vec![DirJob {
            parent: None,
            rel: String::new(),
            matches: None,
        }],
        busy: 0,
        failure: None,
        found: Vec::new(),
    });
    let wake = Condvar::new();
    let walker = Walker { root, rules };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| walker.worker(&queue, &wake, stop));
        }
    });
    let queue = queue.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(failure) = queue.failure {
        return Err(failure);
    }
    Ok(sorted(queue.found))
}

/// All entries in relative-path order. Sorts small (path, position) pairs, then moves
/// every entry into place along the permutation's cycles, instead of swapping whole
/// entries around while sorting; the entries are never held twice.
fn sorted(mut parts: Vec<Vec<Entry>>) -> Vec<Entry> {
    parts.sort_by_key(|part| std::cmp::Reverse(part.len()));
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut parts = parts.into_iter();
    let mut entries = parts.next().unwrap_or_default();
    entries.reserve_exact(total - entries.len());
    for mut part in parts {
        entries.append(&mut part);
    }
    let mut order: Vec<u32> = {
        let mut keys: Vec<(&str, u32)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.rel.as_str(), i as u32))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, i)| i).collect()
    };
    // entries[k] must become the old entries[order[k]]; a done position points to itself.
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at] as usize;
            order[at] = at as u32;
            if from == start {
                break;
            }
            entries.swap(at, from);
            at = from;
        }
    }
    entries
}

/// What every walking thread shares.
struct Walker<'a> {
    root: &'a Path,
    rules: &'a IgnoreRules,
}

/// Scratch space of one walking thread, reused for every directory.
struct Scratch {
    dirents: Vec<u8>,
    matches: ParentMatches,
    link: Vec<u8>,
}

impl Walker<'_> {
    /// The absolute path of `rel` (only built for error messages).
    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(rel)
        }
    }

    /// Takes directories from the queue until there is nothing left anywhere.
    fn worker(&self, queue: &Mutex<Queue>, wake: &Condvar, stop: &CancellationToken) {
        let mut entries = Vec::new();
        let mut found = Vec::new();
        let mut scratch = Scratch {
            dirents: Vec::with_capacity(DIRENT_BUF),
            matches: ParentMatches::default(),
            link: Vec::new(),
        };
        loop {
            let job = {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if q.failure.is_some() {
                        return;
                    }
                    if let Some(job) = q.jobs.pop() {
                        q.busy += 1;
                        break job;
                    }
                    if q.busy == 0 {
                        q.found.push(std::mem::take(&mut entries));
                        wake.notify_all();
                        return;
                    }
                    q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let result = if stop.is_cancelled() {
                Err(ContextError::Cancelled)
            } else {
                self.list_dir(job, &mut scratch, &mut entries, &mut found)
            };
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            q.busy -= 1;
            match result {
                Ok(()) => q.jobs.append(&mut found),
                Err(e) => {
                    q.failure.get_or_insert(e);
                }
            }
            wake.notify_all();
        }
    }

    /// Lists one directory: included children go to `entries`, directories to descend to
    /// `found`.
    fn list_dir(
        &self,
        job: DirJob,
        scratch: &mut Scratch,
        entries: &mut Vec<Entry>,
        found: &mut Vec<DirJob>,
    ) -> Result<(), ContextError> {
        let read_dir_error = |errno: rustix::io::Errno| ContextError::ReadDir {
            path: self.path(&job.rel),
            source: errno.into(),
        };
        let dir = match &job.parent {
            // A directory that turned into a symlink since it was listed fails (ELOOP)
            // instead of being followed.
            Some(parent) => rustix::fs::openat(
                &**parent,
                name_of(&job.rel),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::empty(),
            ),
            None => rustix::fs::openat(
                rustix::fs::CWD,
                self.root,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ),
        }
        .map_err(read_dir_error)?;
        // Shared with the jobs of its subdirectories, closed after the last one opened.
        let dir = Arc::new(dir);
        let mut listing = RawDir::new(&*dir, scratch.dirents.spare_capacity_mut());
        while let Some(item) = listing.next() {
            let item = item.map_err(read_dir_error)?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let child_rel = |name: &str| {
                if job.rel.is_empty() {
                    name.to_owned()
                } else {
                    let mut rel = String::with_capacity(job.rel.len() + 1 + name.len());
                    rel.push_str(&job.rel);
                    rel.push('/');
                    rel.push_str(name);
                    rel
                }
            };
            let Ok(name) = std::str::from_utf8(name) else {
                return Err(ContextError::NonUtf8Path {
                    path: self.path(&job.rel).join(OsStr::from_bytes(name)),
                });
            };
            let rel = child_rel(name);
            let excluded =
                self.rules
                    .matches_in_walk_into(&rel, job.matches.as_ref(), &mut scratch.matches);
            let mut d_type = item.file_type();
            let mut stat = None;
            if d_type == FileType::Unknown {
                // Some file systems do not fill in `d_type`: ask the inode.
                let st = stat_at(&dir, name).map_err(|source| ContextError::Stat {
                    path: self.path(&rel),
                    source,
                })?;
                d_type = st.file_type;
                stat = Some(st);
            }
            if excluded {
                if d_type == FileType::Directory && !self.rules.can_prune_dir(&rel) {
                    found.push(DirJob {
                        parent: Some(dir.clone()),
                        rel,
                        matches: Some(scratch.matches.clone()),
                    });
                }
                continue;
            }
            if !matches!(
                d_type,
                FileType::Directory | FileType::RegularFile | FileType::Symlink
            ) {
                // Sockets, fifos, devices: never sent, no need to look at them.
                continue;
            }
            let st = match stat {
                Some(st) => st,
                None => stat_at(&dir, name).map_err(|source| ContextError::Stat {
                    path: self.path(&rel),
                    source,
                })?,
            };
            // The inode's own type wins over `d_type` (it may have been replaced since).
            let kind = match st.file_type {
                FileType::Directory => EntryKind::Dir,
                FileType::RegularFile => EntryKind::File,
                FileType::Symlink => {
                    let target =
                        rustix::fs::readlinkat(&*dir, name, std::mem::take(&mut scratch.link))
                            .map_err(|errno| ContextError::ReadLink {
                                path: self.path(&rel),
                                source: errno.into(),
                            })?;
                    let kind = match target.to_str() {
                        Ok(target) => EntryKind::Symlink(target.into()),
                        Err(_) => {
                            return Err(ContextError::NonUtf8Path {
                                path: self.path(&rel),
                            });
                        }
                    };
                    scratch.link = target.into_bytes();
                    kind
                }
                _ => continue,
            };
            let is_dir = kind == EntryKind::Dir;
            if is_dir {
                found.push(DirJob {
                    parent: Some(dir.clone()),
                    rel: rel.clone(),
                    matches: Some(scratch.matches.clone()),
                });
            }
            entries.push(Entry {
                rel,
                kind,
                mode: st.mode,
                size: if is_dir { 0 } else { st.size },
                mtime_ns: st.mtime_ns,
                ctime_ns: st.ctime_ns,
                inode: st.inode,
                digest: None,
            });
        }
        Ok(())
    }
}

/// The last component of a relative path.
fn name_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(rel, |(_, name)| name)
}

/// What the walk needs of an inode (`lstat` semantics).
#[derive(Debug, Clone, Copy)]
struct Stat {
    file_type: FileType,
    /// Permission bits (`st_mode & 0o7777`).
    mode: u32,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
}

/// The fields the stat cache compares; nothing else is asked for.
const STATX_WANTED: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::MODE)
    .union(StatxFlags::INO)
    .union(StatxFlags::SIZE)
    .union(StatxFlags::MTIME)
    .union(StatxFlags::CTIME);

/// `statx` of `name` relative to `dir`, symlinks not followed; `fstatat` where `statx` is
/// unavailable (old kernels, seccomp profiles) or does not return every wanted field.
fn stat_at(dir: &OwnedFd, name: &str) -> std::io::Result<Stat> {
    match rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, STATX_WANTED) {
        Ok(st) if StatxFlags::from_bits_retain(st.stx_mask).contains(STATX_WANTED) => {
            let mode = u32::from(st.stx_mode);
            Ok(Stat {
                file_type: FileType::from_raw_mode(mode),
                mode: mode & 0o7777,
                size: st.stx_size,
                mtime_ns: st.stx_mtime.tv_sec * 1_000_000_000 + i64::from(st.stx_mtime.tv_nsec),
                ctime_ns: st.stx_ctime.tv_sec * 1_000_000_000 + i64::from(st.stx_ctime.tv_nsec),
                inode: st.stx_ino,
            })
        }
        Ok(_) | Err(rustix::io::Errno::NOSYS) => {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let mode = st.st_mode as u32;
            Ok(Stat {
                file_type: FileType::from_raw_mode(mode as _),
                mode: mode & 0o7777,
                size: st.st_size as u64,
                mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
                ctime_ns: st.st_ctime as i64 * 1_000_000_000 + st.st_ctime_nsec as i64,
                inode: st.st_ino as u64,
            })
        }
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    /// The entry the walk must produce for `rel`, from `lstat` through std.
    fn expected(root: &Path, rel: &str) -> Entry {
        let path = root.join(rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_symlink() {
            EntryKind::Symlink(fs::read_link(&path).unwrap().to_str().unwrap().into())
        } else {
            EntryKind::File
        };
        Entry {
            rel: rel.to_owned(),
            size: if kind == EntryKind::Dir {
                0
            } else {
                meta.size()
            },
            kind,
            mode: meta.mode() & 0o7777,
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            digest: None,
        }
    }

    #[test]
    fn lists_exactly_what_docker_sends_with_lstat_fields() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "src/deep/er",
            "build/keep",
            "build/drop",
            "node_modules/x",
            "empty",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for (f, content) in [
            ("src/main.rs", "fn main() {}"),
            ("src/deep/er/x.txt", "x"),
            ("build/keep/a.o", "kept by the exception"),
            ("build/drop/b.o", "excluded"),
            ("build/top.o", "excluded"),
            ("node_modules/x/index.js", "pruned"),
            ("a.log", "excluded at the root"),
            ("src/a.log", "kept: patterns are anchored"),
        ] {
            fs::write(root.join(f), content).unwrap();
        }
        fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o751)).unwrap();
        symlink("main.rs", root.join("src/link")).unwrap();
        symlink("../nowhere", root.join("dangling")).unwrap();
        symlink("src", root.join("dirlink")).unwrap();
        // A fifo: special files are skipped.
        let fifo = std::ffi::CString::new(root.join("src/fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        // A socket too.
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

        let rules = IgnoreRules::new(["*.log", "build", "!build/keep", "node_modules"]).unwrap();
        let entries = walk(root, &rules).unwrap();
        // "build" itself is excluded (not sent) but listed for its exception.
        let want: Vec<Entry> = [
            "build/keep",
            "build/keep/a.o",
            "dangling",
            "dirlink",
            "empty",
            "src",
            "src/a.log",
            "src/deep",
            "src/deep/er",
            "src/deep/er/x.txt",
            "src/link",
            "src/main.rs",
        ]
        .iter()
        .map(|rel| expected(root, rel))
        .collect();
        assert_eq!(entries, want);
        let main = entries.iter().find(|e| e.rel == "src/main.rs").unwrap();
        assert_eq!(main.mode, 0o751);
        assert_eq!(main.size, 12);
        let link = entries.iter().find(|e| e.rel == "src/link").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink("main.rs".into()));
        assert_eq!(link.size, 7, "a symlink's size is its target's length");

        // No rules: everything but the special files, symlinks not followed.
        let all = walk(root, &IgnoreRules::default()).unwrap();
        let rels: Vec<&str> = all.iter().map(|e| e.rel.as_str()).collect();
        assert!(rels.contains(&"node_modules/x/index.js"));
        assert!(!rels.iter().any(|r| r.starts_with("dirlink/")));
        assert!(!rels.contains(&"src/fifo") && !rels.contains(&"sock"));
        assert!(rels.windows(2).all(|w| w[0] < w[1]), "sorted: {rels:?}");
    }

    #[test]
    fn many_directories_on_all_threads_give_the_same_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut want = Vec::new();
        for d in 0..40 {
            let sub = format!("d{d:02}");
            for s in 0..3 {
                let subsub = format!("{sub}/s{s}");
                fs::create_dir_all(root.join(&subsub)).unwrap();
                for f in 0..5 {
                    fs::write(root.join(format!("{subsub}/f{f}")), "x").unwrap();
                    want.push(format!("{subsub}/f{f}"));
                }
                want.push(subsub);
            }
            want.push(sub);
        }
        want.sort();
        for _ in 0..5 {
            let got: Vec<String> = walk(root, &IgnoreRules::default())
                .unwrap()
                .into_iter()
                .map(|e| e.rel)
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn non_utf8_names_are_an_error_naming_the_path_unless_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        let bad = root.join("sub").join(OsStr::from_bytes(b"caf\xe9"));
        fs::write(&bad, "x").unwrap();
        let err = walk(root, &IgnoreRules::default()).unwrap_err();
        match &err {
            ContextError::NonUtf8Path { path } => assert_eq!(path, &bad),
            other => panic!("{other}"),
        }
        // An excluded (pruned) directory is never listed.
        let rules = IgnoreRules::new(["sub"]).unwrap();
        assert!(walk(root, &rules).unwrap().is_empty());

        // A symlink whose target is not UTF-8.
        fs::remove_file(&bad).unwrap();
        symlink(OsStr::from_bytes(b"t\xff"), root.join("sub/l")).unwrap();
        let err = walk(root, &IgnoreRules::default()).unwrap_err();
        match &err {
            ContextError::NonUtf8Path { path } => assert_eq!(path, &root.join("sub/l")),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn errors_name_the_path_and_cancel_stops_before_listing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = walk(&missing, &IgnoreRules::default()).unwrap_err();
        assert!(matches!(err, ContextError::ContextMissing { ref path } if *path == missing));
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = walk(&file, &IgnoreRules::default()).unwrap_err();
        assert!(matches!(err, ContextError::NotADirectory { .. }));

        // An unreadable directory (only meaningful when not running as root).
        let locked = dir.path().join("ctx/locked");
        fs::create_dir_all(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let result = walk(&dir.path().join("ctx"), &IgnoreRules::default());
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            // Root reads it anyway.
            assert!(result.is_ok());
        } else {
            match result {
                Err(ContextError::ReadDir { path, .. }) => assert_eq!(path, locked),
                other => panic!("{other:?}"),
            }
        }

        let stop = CancellationToken::new();
        stop.cancel();
        let err = walk_until(dir.path(), &IgnoreRules::default(), &stop).unwrap_err();
        assert!(matches!(err, ContextError::Cancelled));
    }
}
