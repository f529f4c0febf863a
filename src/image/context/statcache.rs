//! The stat cache: remembers, per context, `(path, size, mtime ns, ctime ns, inode, mode) →
//! SHA-256` so a run where nothing changed reads no file contents.
//!
//! One file per context directory under `<cache_dir>/context/`, in a compact binary format
//! (little endian: magic, stamp, context path, count, records sorted by path, SHA-256
//! trailer), written atomically (temp file + rename). Both directions stream through a small
//! buffer, so a 100k-file cache costs no extra memory. A file that is truncated, corrupt,
//! from another format version or for another directory is ignored — never an error.
//!
//! Racy-git rule: the cache stores a stamp taken *before* the walk (minus a margin covering
//! coarse file-system clocks); an entry whose mtime is not older than that stamp may have
//! changed again within the same timestamp tick after it was hashed, so it is re-hashed on
//! the next run instead of trusted. (ctime is compared for equality too, which also catches
//! edits whose mtime was restored.)

use super::{Digest, Entry, EntryKind};
use sha2::{Digest as _, Sha256};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"DSCTXv1\n";
/// Safety margin for the racy rule: file systems with coarse timestamps (1-2 s) included.
pub const RACY_MARGIN_NS: i64 = 2_000_000_000;
/// Longest relative path accepted in a record (anything longer means corruption).
const MAX_REL: usize = 64 * 1024;
const IO_BUF: usize = 64 * 1024;

/// Where the stat cache of the context at `root` (canonical path) lives.
pub fn cache_file(cache_dir: &Path, root: &Path) -> PathBuf {
    let id = Sha256::digest(root.as_os_str().as_encoded_bytes());
    cache_dir
        .join("context")
        .join(format!("{}.stat", hex::encode(&id[..8])))
}

/// What [`apply`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Indices of the files of `entries` that still need hashing.
    pub todo: Vec<usize>,
    /// Whether the cached file set equals the current one and every file was trusted (then
    /// the cache need not be rewritten).
    pub unchanged: bool,
}

/// Reads `path` for `root` and fills in the digests of unchanged, non-racy files of
/// `entries` (sorted by `rel`). `Err` says why the cache was ignored; then no digest is set.
pub fn apply(path: &Path, root: &Path, entries: &mut [Entry]) -> Result<Applied, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < 32 {
        return Err("truncated".into());
    }
    let mut reader = BodyReader {
        buf: vec![0; IO_BUF],
        pos: 0,
        end: 0,
        body_left: len - 32,
        hasher: Sha256::new(),
        file,
    };
    let verified = merge(&mut reader, root, entries).and_then(|applied| {
        if reader.body_left != 0 || reader.pos != reader.end {
            return Err("trailing data (corrupt)".to_owned());
        }
        let computed: [u8; 32] = reader.hasher.finalize().into();
        let mut trailer = [0u8; 32];
        reader
            .file
            .read_exact(&mut trailer)
            .map_err(|_| "truncated".to_owned())?;
        if trailer != computed {
            return Err("checksum mismatch (corrupt)".to_owned());
        }
        Ok(applied)
    });
    if verified.is_err() {
        // Digests were filled in while reading; none may survive an unverified file.
        entries.iter_mut().for_each(|e| e.digest = None);
    }
    verified
}

/// Reads the body (everything before the 32-byte trailer) in large blocks, hashing each
/// block once.
struct BodyReader {
    file: std::fs::File,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    body_left: u64,
    hasher: Sha256,
}

impl BodyReader {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<(), String> {
        let mut done = 0;
        while done < out.len() {
            if self.pos == self.end {
                self.refill()?;
            }
            let n = (self.end - self.pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
        }
        Ok(())
    }

    fn refill(&mut self) -> Result<(), String> {
        let want = (self.buf.len() as u64).min(self.body_left) as usize;
        if want == 0 {
            return Err("truncated".into());
        }
        self.file
            .read_exact(&mut self.buf[..want])
            .map_err(|_| "truncated".to_owned())?;
        self.hasher.update(&self.buf[..want]);
        self.body_left -= want as u64;
        self.pos = 0;
        self.end = want;
        Ok(())
    }
}

/// Header check, then a merge join of the sorted records with the sorted entries.
fn merge(reader: &mut BodyReader, root: &Path, entries: &mut [Entry]) -> Result<Applied, String> {
    if &reader.bytes::<8>()? != MAGIC {
        return Err("not a stat cache of this version".into());
    }
    let stamp_ns = i64::from_le_bytes(reader.bytes()?);
    let root_len = u32::from_le_bytes(reader.bytes()?) as usize;
    if root_len > MAX_REL {
        return Err("corrupt header".into());
    }
    let mut stored_root = vec![0u8; root_len];
    reader.fill(&mut stored_root)?;
    if stored_root != root.as_os_str().as_encoded_bytes() {
        return Err("written for another directory".into());
    }
    let count = u64::from_le_bytes(reader.bytes()?);

    let mut todo = Vec::new();
    let mut unchanged = true;
    let mut rel = Vec::new();
    let mut remaining = count;
    // The record read last and not yet matched: (rel is in `rel`, fields).
    let mut pending: Option<Record> = None;
    for (index, entry) in entries.iter_mut().enumerate() {
        if entry.kind != EntryKind::File {
            continue;
        }
        let mut found = None;
        loop {
            if pending.is_none() {
                if remaining == 0 {
                    break;
                }
                remaining -= 1;
                pending = Some(read_record(reader, &mut rel)?);
            }
            match rel.as_slice().cmp(entry.rel.as_bytes()) {
                std::cmp::Ordering::Less => {
                    unchanged = false;
                    pending = None;
                }
                std::cmp::Ordering::Equal => {
                    found = pending.take();
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        let trusted = found.filter(|r| {
            r.size == entry.size
                && r.mtime_ns == entry.mtime_ns
                && r.ctime_ns == entry.ctime_ns
                && r.inode == entry.inode
                && r.mode == entry.mode
                && r.mtime_ns < stamp_ns
        });
        match trusted {
            Some(r) => entry.digest = Some(Digest(r.digest)),
            None => {
                unchanged = false;
                todo.push(index);
            }
        }
    }
    if pending.is_some() || remaining > 0 {
        unchanged = false;
    }
    // Read the rest so the checksum covers the whole body.
    while remaining > 0 {
        remaining -= 1;
        read_record(reader, &mut rel)?;
    }
    Ok(Applied { todo, unchanged })
}

struct Record {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    mode: u32,
    digest: [u8; 32],
}

/// Bytes of a record after its path: size, mtime, ctime, inode, mode, digest.
const RECORD_TAIL: usize = 8 + 8 + 8 + 8 + 4 + 32;

fn read_record(reader: &mut BodyReader, rel: &mut Vec<u8>) -> Result<Record, String> {
    let len = u32::from_le_bytes(reader.bytes()?) as usize;
    if len > MAX_REL {
        return Err("corrupt record".into());
    }
    // Fast path: the whole record is in the buffer (all but a few per 64 KiB block).
    if reader.end - reader.pos >= len + RECORD_TAIL {
        let bytes = &reader.buf[reader.pos..reader.pos + len + RECORD_TAIL];
        reader.pos += len + RECORD_TAIL;
        rel.clear();
        rel.extend_from_slice(&bytes[..len]);
        let tail = &bytes[len..];
        let u64_at =
            |at: usize| u64::from_le_bytes(tail[at..at + 8].try_into().unwrap_or_default());
        return Ok(Record {
            size: u64_at(0),
            mtime_ns: u64_at(8) as i64,
            ctime_ns: u64_at(16) as i64,
            inode: u64_at(24),
            mode: u32::from_le_bytes(tail[32..36].try_into().unwrap_or_default()),
            digest: tail[36..68].try_into().unwrap_or_default(),
        });
    }
    rel.resize(len, 0);
    reader.fill(rel)?;
    Ok(Record {
        size: u64::from_le_bytes(reader.bytes()?),
        mtime_ns: i64::from_le_bytes(reader.bytes()?),
        ctime_ns: i64::from_le_bytes(reader.bytes()?),
        inode: u64::from_le_bytes(reader.bytes()?),
        mode: u32::from_le_bytes(reader.bytes()?),
        digest: reader.bytes()?,
    })
}

/// Writes the cache for `root` atomically: every hashed file of `entries` (sorted by `rel`)
/// with `stamp_ns` as the racy-rule stamp.
pub fn save(path: &Path, root: &Path, stamp_ns: i64, entries: &[Entry]) -> std::io::Result<()> {
    let files = || {
        entries.iter().filter_map(|e| match (&e.kind, e.digest) {
            (EntryKind::File, Some(d)) => Some((e, d)),
            _ => None,
        })
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(IO_BUF, tmp),
        hasher: Sha256::new(),
    };
    let root_bytes = root.as_os_str().as_encoded_bytes();
    out.put(MAGIC)?;
    out.put(&stamp_ns.to_le_bytes())?;
    out.put(&(root_bytes.len() as u32).to_le_bytes())?;
    out.put(root_bytes)?;
    out.put(&(files().count() as u64).to_le_bytes())?;
    for (entry, digest) in files() {
        out.put(&(entry.rel.len() as u32).to_le_bytes())?;
        out.put(entry.rel.as_bytes())?;
        out.put(&entry.size.to_le_bytes())?;
        out.put(&entry.mtime_ns.to_le_bytes())?;
        out.put(&entry.ctime_ns.to_le_bytes())?;
        out.put(&entry.inode.to_le_bytes())?;
        out.put(&entry.mode.to_le_bytes())?;
        out.put(&digest.0)?;
    }
    let sum: [u8; 32] = out.hasher.finalize().into();
    let mut inner = out.inner;
    inner.write_all(&sum)?;
    let tmp = inner.into_inner().map_err(|e| e.into_error())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, mtime_ns: i64) -> Entry {
        Entry {
            rel: rel.into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            inode: 7,
            digest: Some(Digest([rel.len() as u8; 32])),
        }
    }

    #[test]
    fn round_trip_trusts_only_unchanged_non_racy_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let path = cache_file(dir.path(), root);
        let saved = vec![
            entry("a", 10),
            entry("b/c", 10),
            entry("racy", 100),
            entry("z", 10),
        ];
        save(&path, root, 50, &saved).unwrap();

        let mut now: Vec<Entry> = saved
            .iter()
            .cloned()
            .map(|mut e| {
                e.digest = None;
                e
            })
            .collect();
        now[1].size = 4; // edited
        now.remove(3); // deleted
        let applied = apply(&path, root, &mut now).unwrap();
        assert_eq!(
            applied.todo,
            vec![1, 2],
            "edited and racy files are re-hashed"
        );
        assert!(!applied.unchanged);
        assert_eq!(now[0].digest, saved[0].digest);

        let mut again: Vec<Entry> = saved[..2]
            .iter()
            .cloned()
            .chain([saved[3].clone()])
            .collect();
        again.iter_mut().for_each(|e| e.digest = None);
        let applied = apply(&path, root, &mut again).unwrap();
        assert!(applied.todo.is_empty());
        assert!(
            !applied.unchanged,
            "a record without entry means the set changed"
        );
        assert_eq!(
            again[2].digest, saved[3].digest,
            "records after a gap still match"
        );

        let mut same: Vec<Entry> = saved[..2].to_vec();
        same.iter_mut().for_each(|e| e.digest = None);
        save(&path, root, 50, &saved[..2]).unwrap();
        let applied = apply(&path, root, &mut same).unwrap();
        assert_eq!(
            applied,
            Applied {
                todo: vec![],
                unchanged: true
            }
        );
    }

    #[test]
    fn records_across_buffer_boundaries_round_trip() {
        // ~5,000 records of varying length: many straddle the 64 KiB read blocks.
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let path = cache_file(dir.path(), root);
        let mut saved: Vec<Entry> = (0..5000)
            .map(|i| Entry {
                size: i as u64 * 7,
                inode: i as u64,
                mode: 0o600 + (i % 64) as u32,
                digest: Some(Digest([(i % 251) as u8; 32])),
                ..entry(
                    &format!("dir{}/{}{i}", i % 13, "x".repeat(i % 97)),
                    10 + i as i64,
                )
            })
            .collect();
        saved.sort_by(|a, b| a.rel.cmp(&b.rel));
        save(&path, root, 1 << 40, &saved).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 4 * IO_BUF as u64);
        let mut again = saved.clone();
        again.iter_mut().for_each(|e| e.digest = None);
        let applied = apply(&path, root, &mut again).unwrap();
        assert_eq!(
            applied,
            Applied {
                todo: vec![],
                unchanged: true
            }
        );
        assert_eq!(again, saved);
    }

    #[test]
    fn corrupt_foreign_or_truncated_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let path = cache_file(dir.path(), root);
        save(&path, root, 50, &[entry("a", 10), entry("b", 10)]).unwrap();
        let fresh = || {
            vec![
                Entry {
                    digest: None,
                    ..entry("a", 10)
                },
                Entry {
                    digest: None,
                    ..entry("b", 10)
                },
            ]
        };
        assert!(apply(&path, Path::new("/other"), &mut fresh()).is_err());
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        for bad in [
            flipped,
            good[..good.len() - 5].to_vec(),
            b"garbage".to_vec(),
            Vec::new(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let mut entries = fresh();
            assert!(apply(&path, root, &mut entries).is_err());
            assert!(
                entries.iter().all(|e| e.digest.is_none()),
                "nothing trusted"
            );
        }
        assert!(apply(&dir.path().join("missing"), root, &mut fresh()).is_err());
    }
}
