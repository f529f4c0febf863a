//! The previous context walk (std `read_dir` + `DirEntry::metadata`, paths joined per
//! entry), kept verbatim as the benchmark's in-run baseline for the no-change scan.

use devspace::image::context::ignore::{IgnoreRules, ParentMatches};
use devspace::image::context::{ContextError, Entry, EntryKind};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use tokio_util::sync::CancellationToken;

/// A directory still to list: absolute path, relative path, its match results.
type DirJob = (PathBuf, String, Option<ParentMatches>);

/// Work shared by the walking threads.
struct Queue {
    jobs: Vec<DirJob>,
    /// Threads currently listing a directory (which may add jobs).
    busy: usize,
    failure: Option<ContextError>,
    /// Everything found so far (one growing list keeps the peak memory low).
    entries: Vec<Entry>,
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
    let meta = fs::metadata(root).map_err(|source| match source.kind() {
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
        jobs: vec![(root.to_path_buf(), String::new(), None)],
        busy: 0,
        failure: None,
        entries: Vec::new(),
    });
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| worker(rules, &queue, &wake, stop));
        }
    });
    let queue = queue.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(failure) = queue.failure {
        return Err(failure);
    }
    let mut entries = queue.entries;
    entries.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    Ok(entries)
}

/// Takes directories from the queue until there is nothing left anywhere.
fn worker(rules: &IgnoreRules, queue: &Mutex<Queue>, wake: &Condvar, stop: &CancellationToken) {
    let mut entries = Vec::new();
    let mut found = Vec::new();
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
                    wake.notify_all();
                    return;
                }
                q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = if stop.is_cancelled() {
            Err(ContextError::Cancelled)
        } else {
            list_dir(rules, job, &mut entries, &mut found)
        };
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        q.busy -= 1;
        match result {
            Ok(()) => {
                q.jobs.append(&mut found);
                q.entries.append(&mut entries);
            }
            Err(e) => {
                q.failure.get_or_insert(e);
            }
        }
        wake.notify_all();
    }
}

/// Lists one directory: included children go to `entries`, directories to descend to `found`.
fn list_dir(
    rules: &IgnoreRules,
    (dir, rel_dir, parent): DirJob,
    entries: &mut Vec<Entry>,
    found: &mut Vec<DirJob>,
) -> Result<(), ContextError> {
    let read_dir_error = |source| ContextError::ReadDir {
        path: dir.clone(),
        source,
    };
    for item in fs::read_dir(&dir).map_err(read_dir_error)? {
        let item = item.map_err(read_dir_error)?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            return Err(ContextError::NonUtf8Path { path: item.path() });
        };
        let rel = if rel_dir.is_empty() {
            name.to_owned()
        } else {
            format!("{rel_dir}/{name}")
        };
        let (excluded, info) = rules.matches_in_walk(&rel, parent.as_ref());
        let file_type = item.file_type().map_err(|source| ContextError::Stat {
            path: item.path(),
            source,
        })?;
        if excluded {
            if file_type.is_dir() && !rules.can_prune_dir(&rel) {
                found.push((item.path(), rel, Some(info)));
            }
            continue;
        }
        // `DirEntry::metadata` is an `lstat` relative to the open directory.
        let meta = item.metadata().map_err(|source| ContextError::Stat {
            path: item.path(),
            source,
        })?;
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            let path = item.path();
            let target = fs::read_link(&path).map_err(|source| ContextError::ReadLink {
                path: path.clone(),
                source,
            })?;
            let Some(target) = target.to_str() else {
                return Err(ContextError::NonUtf8Path { path });
            };
            EntryKind::Symlink(target.into())
        } else {
            continue;
        };
        let is_dir = kind == EntryKind::Dir;
        if is_dir {
            found.push((item.path(), rel.clone(), Some(info)));
        }
        entries.push(Entry {
            rel,
            kind,
            mode: meta.mode() & 0o7777,
            size: if is_dir { 0 } else { meta.size() },
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            digest: None,
        });
    }
    Ok(())
}
