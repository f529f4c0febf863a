//! Content hashing: SHA-256 of file contents on all cores (streamed with a large buffer,
//! SHA-NI used by `sha2` when the CPU has it) and the context hash over the included entries.

use super::{ContextError, Digest, Entry, EntryKind};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{Read, Write as _};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

/// Read buffer per hashing thread: large enough that syscalls do not dominate.
const BUF_SIZE: usize = 256 * 1024;

/// Hashes one file by streaming it (never the whole file in memory).
pub fn hash_file(path: &Path, buf: &mut [u8]) -> std::io::Result<(Digest, u64)> {
    hash_file_until(path, buf, &CancellationToken::new())
}

/// [`hash_file`] that gives up (an error of kind `Interrupted`) once `stop` is cancelled,
/// checked before every read, so a multi-GiB file does not hold up Ctrl-C.
pub fn hash_file_until(
    path: &Path,
    buf: &mut [u8],
    stop: &CancellationToken,
) -> std::io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        if stop.is_cancelled() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "cancelled",
            ));
        }
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Digest(hasher.finalize().into()), total))
}

/// Fills in the digest of `entries[i]` for every `i` in `todo` (all regular files), using
/// one thread per core. Returns the number of bytes read. On failure the error names the
/// file (the first failing one in `todo` order, so it is deterministic).
pub fn hash_entries(
    root: &Path,
    entries: &mut [Entry],
    todo: &[usize],
) -> Result<u64, ContextError> {
    hash_entries_until(root, entries, todo, &CancellationToken::new())
}

/// [`hash_entries`] that stops with [`ContextError::Cancelled`] soon after `stop` is
/// cancelled.
pub fn hash_entries_until(
    root: &Path,
    entries: &mut [Entry],
    todo: &[usize],
    stop: &CancellationToken,
) -> Result<u64, ContextError> {
    if todo.is_empty() {
        return Ok(0);
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(todo.len())
        .clamp(1, 16);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Digest)>> = Mutex::new(Vec::with_capacity(todo.len()));
    let failure: Mutex<Option<(usize, ContextError)>> = Mutex::new(None);
    let bytes = AtomicUsize::new(0);
    let shared: &[Entry] = entries;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = vec![0u8; BUF_SIZE];
                let mut local = Vec::new();
                let mut read = 0u64;
                loop {
                    let slot = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = todo.get(slot) else { break };
                    let path = root.join(&shared[index].rel);
                    match hash_file_until(&path, &mut buf, stop) {
                        Ok((digest, n)) => {
                            read += n;
                            local.push((index, digest));
                        }
                        Err(source) => {
                            let mut slot_failure =
                                failure.lock().unwrap_or_else(|e| e.into_inner());
                            let err = if stop.is_cancelled() {
                                ContextError::Cancelled
                            } else {
                                ContextError::ReadFile { path, source }
                            };
                            if slot_failure.as_ref().is_none_or(|(s, _)| slot < *s) {
                                *slot_failure = Some((slot, err));
                            }
                            // Stop handing out work: the scan fails anyway.
                            next.store(todo.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                }
                bytes.fetch_add(read as usize, Ordering::Relaxed);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(local);
            });
        }
    });
    if let Some((_, err)) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(err);
    }
    for (index, digest) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        entries[index].digest = Some(digest);
    }
    Ok(bytes.into_inner() as u64)
}

/// The context hash: SHA-256 over every entry's kind, relative path, permission bits and
/// content identity (file digest or symlink target), in path order. Absolute locations,
/// owners and timestamps are not part of it, so a moved or fresh checkout hashes the same.
///
/// `entries` must be sorted by `rel` (as [`super::walk::walk`] returns them) and every file
/// must carry its digest.
pub fn context_hash(entries: &[Entry]) -> Digest {
    let mut hasher = Sha256::new();
    let mut record = Vec::with_capacity(80 * 1024);
    for entry in entries {
        // NUL cannot occur in paths or link targets, so the encoding is unambiguous.
        record.extend_from_slice(match entry.kind {
            EntryKind::Dir => b"d\0",
            EntryKind::File => b"f\0",
            EntryKind::Symlink(_) => b"l\0",
        });
        record.extend_from_slice(entry.rel.as_bytes());
        record.push(0);
        let _ = write!(record, "{:o}", entry.mode);
        record.push(0);
        match &entry.kind {
            EntryKind::Dir => {}
            EntryKind::File => {
                record.extend_from_slice(&entry.digest.map(|d| d.0).unwrap_or_default())
            }
            EntryKind::Symlink(target) => record.extend_from_slice(target.as_bytes()),
        }
        record.push(b'\n');
        // Feeding SHA-256 in large blocks is markedly faster than one call per entry.
        if record.len() >= 64 * 1024 {
            hasher.update(&record);
            record.clear();
        }
    }
    hasher.update(&record);
    Digest(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, mode: u32, content: &[u8]) -> Entry {
        Entry {
            rel: rel.into(),
            kind: EntryKind::File,
            mode,
            size: content.len() as u64,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
            digest: Some(Digest(Sha256::digest(content).into())),
        }
    }

    #[test]
    fn hash_changes_with_each_input_and_nothing_else() {
        let base = vec![file("a", 0o644, b"x"), file("b/c", 0o644, b"y")];
        let h = context_hash(&base);
        let mut moved = base.clone();
        moved[0].mtime_ns = 99;
        moved[0].inode = 42;
        assert_eq!(
            context_hash(&moved),
            h,
            "timestamps and inodes do not count"
        );
        let mut chmod = base.clone();
        chmod[0].mode = 0o755;
        assert_ne!(context_hash(&chmod), h, "mode counts");
        let mut edited = base.clone();
        edited[1] = file("b/c", 0o644, b"z");
        assert_ne!(context_hash(&edited), h, "content counts");
        let mut renamed = base.clone();
        renamed[1].rel = "b/d".into();
        assert_ne!(context_hash(&renamed), h, "paths count");
        let mut link = base.clone();
        link.push(Entry {
            kind: EntryKind::Symlink("x".into()),
            digest: None,
            ..file("l", 0o777, b"")
        });
        let mut link2 = link.clone();
        link2[2].kind = EntryKind::Symlink("y".into());
        assert_ne!(
            context_hash(&link),
            context_hash(&link2),
            "link targets count"
        );
    }

    #[test]
    fn known_empty_file_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let (digest, n) = hash_file(&path, &mut [0u8; 16]).unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            digest.to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
