//! Content hashing: SHA-256 of file contents on all cores and the context hash over the
//! included entries.
//!
//! Files are streamed with `read` (never `mmap`: a file truncated while it is hashed would
//! kill the process with `SIGBUS`). Small files are grouped by directory: the directory is
//! opened once and each file `openat`-ed relative to it, so the kernel does not walk the
//! whole path per file. A large file gets a reader thread that fills big buffers while the
//! hashing thread hashes the previous one, overlapping the copy out of the page cache with
//! SHA-256 (`sha2` uses SHA-NI when the CPU has it).

use super::{ContextError, Digest, Entry, EntryKind};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use tokio_util::sync::CancellationToken;

/// Read buffer per hashing thread for small files: large enough that syscalls do not
/// dominate.
const BUF_SIZE: usize = 256 * 1024;
/// From this size on a file is read by a helper thread while it is hashed.
pub const BIG_FILE: u64 = 8 << 20;
/// Size of each of the buffers passed between the reader and the hasher of a big file.
pub const BIG_CHUNK: usize = 1 << 20;
/// Buffers in flight per big file (one being filled while the others are hashed).
const BIG_BUFFERS: usize = 3;
/// Most small files hashed per directory opening (so one huge directory still spreads
/// over all threads).
const FILES_PER_UNIT: usize = 64;

fn cancelled() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled")
}

/// Hashes one file by streaming it (never the whole file in memory).
pub fn hash_file(path: &Path, buf: &mut [u8]) -> std::io::Result<(Digest, u64)> {
    hash_file_until(path, buf, &CancellationToken::new())
}

/// [`hash_file`] that gives up (an error of kind `Interrupted`) once `stop` is cancelled,
/// checked before every read, so a multi-GiB file does not hold up Ctrl-C. Files of
/// [`BIG_FILE`] bytes or more are read by a helper thread (see [`hash_threaded`]).
pub fn hash_file_until(
    path: &Path,
    buf: &mut [u8],
    stop: &CancellationToken,
) -> std::io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() >= BIG_FILE {
        hash_threaded(file, BIG_CHUNK, stop)
    } else {
        hash_read(&mut file, buf, stop)
    }
}

/// Hashes what is left of `file`, reading it into `buf` on this thread.
pub fn hash_read(
    file: &mut File,
    buf: &mut [u8],
    stop: &CancellationToken,
) -> std::io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        if stop.is_cancelled() {
            return Err(cancelled());
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

/// Fills `buf` from `file` (fewer bytes only at the end of the file).
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Hashes what is left of `file` with a reader thread: it fills buffers of `chunk` bytes
/// while this thread hashes the ones filled before, so copying the data out of the page
/// cache overlaps with SHA-256. Both sides check `stop` before each buffer.
pub fn hash_threaded(
    mut file: File,
    chunk: usize,
    stop: &CancellationToken,
) -> std::io::Result<(Digest, u64)> {
    let chunk = chunk.max(1);
    std::thread::scope(|scope| {
        // Empty buffers go to the reader, filled ones (buffer, bytes) come back.
        let (free_tx, free_rx): (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) =
            sync_channel(BIG_BUFFERS);
        let (full_tx, full_rx) = sync_channel::<std::io::Result<(Vec<u8>, usize)>>(BIG_BUFFERS);
        for _ in 0..BIG_BUFFERS {
            let _ = free_tx.send(vec![0u8; chunk]);
        }
        scope.spawn(move || {
            // Ends when the hasher hangs up (done or failed) or at the end of the file.
            while let Ok(mut buf) = free_rx.recv() {
                let result = if stop.is_cancelled() {
                    Err(cancelled())
                } else {
                    read_full(&mut file, &mut buf).map(|n| (buf, n))
                };
                let last = !matches!(result, Ok((_, n)) if n > 0);
                if full_tx.send(result).is_err() || last {
                    break;
                }
            }
        });
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        loop {
            if stop.is_cancelled() {
                return Err(cancelled());
            }
            let Ok(filled) = full_rx.recv() else {
                // The reader only hangs up after sending its last result.
                return Err(std::io::Error::other("reader thread ended early"));
            };
            let (buf, n) = filled?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            // Fails only once the reader has stopped (end of file): nothing more to read.
            let _ = free_tx.send(buf);
        }
        Ok((Digest(hasher.finalize().into()), total))
    })
}

/// One piece of hashing work.
enum Unit {
    /// A big file (index into the entries), read by a helper thread.
    Big(usize),
    /// Small files of one directory: `(position in todo, entry index)` in `small[range]`.
    Dir(std::ops::Range<usize>),
}

/// The directory part of a relative path (`""` at the root).
fn parent_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last component of a relative path.
fn name_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(rel, |(_, name)| name)
}

/// Fills in the digest of `entries[i]` for every `i` in `todo` (all regular files), using
/// one thread per core. Returns the number of bytes read. On failure the error names the
/// file (the first failing one in `todo` order, so it is deterministic).
///
/// Work is handed out in units: each big file alone (largest first), small files in
/// batches of one directory, which is opened once and its files opened relative to it.
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
    let shared: &[Entry] = entries;
    // Big files first, largest first: they are the long poles.
    let mut big: Vec<(usize, usize)> = Vec::new();
    let mut small: Vec<(usize, usize)> = Vec::new();
    for (pos, &index) in todo.iter().enumerate() {
        if shared[index].size >= BIG_FILE {
            big.push((pos, index));
        } else {
            small.push((pos, index));
        }
    }
    big.sort_by(|a, b| shared[b.1].size.cmp(&shared[a.1].size));
    // Stable: within a directory the files keep their order.
    small.sort_by(|a, b| parent_of(&shared[a.1].rel).cmp(parent_of(&shared[b.1].rel)));
    let mut units: Vec<Unit> = big.iter().map(|&(_, index)| Unit::Big(index)).collect();
    let mut start = 0;
    while start < small.len() {
        let dir = parent_of(&shared[small[start].1].rel);
        let mut end = start + 1;
        while end < small.len()
            && end - start < FILES_PER_UNIT
            && parent_of(&shared[small[end].1].rel) == dir
        {
            end += 1;
        }
        units.push(Unit::Dir(start..end));
        start = end;
    }
    let position_of: std::collections::HashMap<usize, usize> =
        big.iter().map(|&(pos, index)| (index, pos)).collect();

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(units.len())
        .clamp(1, 16);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Digest)>> = Mutex::new(Vec::with_capacity(todo.len()));
    let failure: Mutex<Option<(usize, ContextError)>> = Mutex::new(None);
    let bytes = AtomicUsize::new(0);
    // Position in `todo` of the first failure so far: files after it are skipped, files
    // before it are still hashed, so the error reported is always the first in `todo` order.
    let first_failure = AtomicUsize::new(usize::MAX);
    let fail = |pos: usize, index: usize, source: std::io::Error| {
        let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
        let err = if stop.is_cancelled() {
            ContextError::Cancelled
        } else {
            ContextError::ReadFile {
                path: root.join(&shared[index].rel),
                source,
            }
        };
        if slot.as_ref().is_none_or(|(s, _)| pos < *s) {
            *slot = Some((pos, err));
        }
        first_failure.fetch_min(pos, Ordering::Relaxed);
    };
    let skip = |pos: usize| pos > first_failure.load(Ordering::Relaxed);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = vec![0u8; BUF_SIZE];
                let mut local = Vec::new();
                let mut read = 0u64;
                while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if stop.is_cancelled() {
                        // Every unit left fails the same way: report it once.
                        let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
                        *slot = Some((0, ContextError::Cancelled));
                        first_failure.store(0, Ordering::Relaxed);
                        break;
                    }
                    match unit {
                        Unit::Big(index) => {
                            let pos = position_of[index];
                            if skip(pos) {
                                continue;
                            }
                            let path = root.join(&shared[*index].rel);
                            let hashed = open_no_follow(&path)
                                .and_then(|file| hash_threaded(file, BIG_CHUNK, stop));
                            match hashed {
                                Ok((digest, n)) => {
                                    read += n;
                                    local.push((*index, digest));
                                }
                                Err(source) => fail(pos, *index, source),
                            }
                        }
                        Unit::Dir(range) => {
                            let files = &small[range.clone()];
                            if files.iter().all(|&(pos, _)| skip(pos)) {
                                continue;
                            }
                            let dir_rel = parent_of(&shared[files[0].1].rel);
                            let dir = open_dir(root, dir_rel);
                            for &(pos, index) in files {
                                if skip(pos) {
                                    continue;
                                }
                                let hashed = match &dir {
                                    Ok(dir) => open_in(dir, name_of(&shared[index].rel))
                                        .and_then(|mut file| hash_read(&mut file, &mut buf, stop)),
                                    Err(errno) => Err(std::io::Error::from(*errno)),
                                };
                                match hashed {
                                    Ok((digest, n)) => {
                                        read += n;
                                        local.push((index, digest));
                                    }
                                    Err(source) => fail(pos, index, source),
                                }
                            }
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

/// Opens the directory `dir_rel` of the context (once per batch of its files).
fn open_dir(root: &Path, dir_rel: &str) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if dir_rel.is_empty() {
        rustix::fs::openat(rustix::fs::CWD, root, flags, Mode::empty())
    } else {
        rustix::fs::openat(rustix::fs::CWD, root.join(dir_rel), flags, Mode::empty())
    }
}

/// Opens the file `name` of an open directory for reading. The scan saw a regular file
/// there, so the name is never followed if it has become a symbolic link since
/// ([`became_a_link`]).
fn open_in(dir: &OwnedFd, name: &str) -> std::io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        Err(errno) => Err(became_a_link(errno.into())),
    }
}

/// [`open_in`] for a file opened by its path (big files, hashed on a helper thread).
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(became_a_link)
}

/// `ELOOP` from an `O_NOFOLLOW` open means the scanned file was replaced by a symbolic link:
/// say so instead of "too many levels of symbolic links".
fn became_a_link(error: std::io::Error) -> std::io::Error {
    if error.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::other("it was replaced by a symbolic link during the scan; run again")
    } else {
        error
    }
}

/// Appends `value` in octal without leading zeros (`format!("{:o}")`, without its cost
/// per entry).
fn push_octal(out: &mut Vec<u8>, value: u32) {
    let mut digits = [0u8; 11];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest & 7) as u8;
        rest >>= 3;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
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
        push_octal(&mut record, entry.mode);
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
    fn octal_modes_are_written_like_format() {
        for mode in [0, 1, 7, 8, 0o644, 0o755, 0o4755, 0o7777, u32::MAX] {
            let mut out = Vec::new();
            push_octal(&mut out, mode);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{mode:o}"));
        }
    }

    #[test]
    fn context_hash_format_is_pinned() {
        // Registry content keys and users' caches depend on this exact value.
        let entries = vec![
            Entry {
                kind: EntryKind::Dir,
                digest: None,
                ..file("d", 0o755, b"")
            },
            file("d/f", 0o644, b"content"),
            Entry {
                kind: EntryKind::Symlink("f".into()),
                digest: None,
                ..file("d/l", 0o777, b"")
            },
        ];
        let mut record = Vec::new();
        record.extend_from_slice(b"d\x00d\x00755\x00\n");
        record.extend_from_slice(b"f\x00d/f\x00644\x00");
        record.extend_from_slice(&Sha256::digest(b"content"));
        record.extend_from_slice(b"\nl\x00d/l\x00777\x00f\n");
        assert_eq!(
            context_hash(&entries).0,
            <[u8; 32]>::from(Sha256::digest(&record))
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

    /// Deterministic, incompressible-ish bytes.
    fn bytes(n: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn threaded_reader_equals_a_plain_read_around_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = 4096;
        for size in [
            0,
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            2 * chunk,
            BIG_BUFFERS * chunk - 1,
            BIG_BUFFERS * chunk,
            BIG_BUFFERS * chunk + 1,
            7 * chunk + 13,
        ] {
            let path = dir.path().join(format!("f{size}"));
            let content = bytes(size);
            std::fs::write(&path, &content).unwrap();
            let want = Digest(Sha256::digest(&content).into());
            let stop = CancellationToken::new();
            for chunk in [chunk, 1, 1000] {
                let got = hash_threaded(File::open(&path).unwrap(), chunk, &stop).unwrap();
                assert_eq!(got, (want, size as u64), "size {size}, chunk {chunk}");
            }
            let plain = hash_read(&mut File::open(&path).unwrap(), &mut [0u8; 100], &stop);
            assert_eq!(plain.unwrap(), (want, size as u64));
        }
    }

    #[test]
    fn big_files_are_hashed_like_small_ones_in_hash_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut entries = Vec::new();
        // Over the threshold and not a multiple of the chunk size.
        let big = bytes(BIG_FILE as usize + BIG_CHUNK / 2 + 3);
        let mut add = |rel: &str, content: &[u8]| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            entries.push(Entry {
                size: content.len() as u64,
                digest: None,
                ..file(rel, 0o644, content)
            });
        };
        add("a/big.bin", &big);
        for d in 0..5 {
            for f in 0..(FILES_PER_UNIT + 3) {
                add(&format!("d{d}/f{f:03}"), &bytes(d * 1000 + f));
            }
        }
        add("root.txt", b"at the root");
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        let todo: Vec<usize> = (0..entries.len()).collect();
        let read = hash_entries(root, &mut entries, &todo).unwrap();
        let mut total = 0;
        for entry in &entries {
            let content = std::fs::read(root.join(&entry.rel)).unwrap();
            total += content.len() as u64;
            assert_eq!(
                entry.digest,
                Some(Digest(Sha256::digest(&content).into())),
                "{}",
                entry.rel
            );
        }
        assert_eq!(read, total);
        let (digest, n) = hash_file(&root.join("a/big.bin"), &mut [0u8; 64]).unwrap();
        assert_eq!((Some(digest), n), (entries[0].digest, big.len() as u64));
    }

    #[test]
    fn the_first_failing_file_in_todo_order_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("x")).unwrap();
        std::fs::write(root.join("x/ok"), "fine").unwrap();
        let mut entries: Vec<Entry> = ["a/gone", "x/ok", "y/gone", "z"]
            .iter()
            .map(|rel| file(rel, 0o644, b""))
            .collect();
        for _ in 0..10 {
            // "y/gone" comes first in `todo` although its directory sorts after "a".
            let err = hash_entries(root, &mut entries, &[2, 1, 0, 3]).unwrap_err();
            match err {
                ContextError::ReadFile { path, source } => {
                    assert_eq!(path, root.join("y/gone"));
                    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn files_that_became_links_since_the_scan_are_not_hashed_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctx");
        std::fs::create_dir_all(root.join("d")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, bytes(BIG_FILE as usize + 1)).unwrap();
        // The scan saw regular files; both are links now (one small, one big).
        std::os::unix::fs::symlink(&outside, root.join("d/small")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("big")).unwrap();
        let small = file("d/small", 0o644, b"x");
        let big = Entry {
            size: BIG_FILE + 1,
            ..file("big", 0o644, b"")
        };
        for (entry, name) in [(small, "d/small"), (big, "big")] {
            let mut entries = vec![Entry {
                digest: None,
                ..entry
            }];
            match hash_entries(&root, &mut entries, &[0]).unwrap_err() {
                ContextError::ReadFile { path, source } => {
                    assert_eq!(path, root.join(name));
                    assert!(
                        source.to_string().contains("replaced by a symbolic link"),
                        "{source}"
                    );
                }
                other => panic!("{other}"),
            }
            assert_eq!(entries[0].digest, None, "{name}");
        }
    }

    #[test]
    fn cancel_stops_a_big_file_mid_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge");
        // 64 GiB, sparse: far too long to hash in this test's time.
        File::create(&path).unwrap().set_len(64 << 30).unwrap();
        let stop = CancellationToken::new();
        let canceller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                stop.cancel();
            })
        };
        let start = std::time::Instant::now();
        let err = hash_file_until(&path, &mut [0u8; 1024], &stop).unwrap_err();
        canceller.join().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));

        let mut entries = vec![Entry {
            size: 64 << 30,
            ..file("huge", 0o644, b"")
        }];
        let err = hash_entries_until(dir.path(), &mut entries, &[0], &stop).unwrap_err();
        assert!(matches!(err, ContextError::Cancelled), "{err}");
    }
}
