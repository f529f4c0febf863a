//! The stat cache: remembers, per context, `(path, size, mtime ns, ctime ns, inode, mode) →
//! SHA-256` so a run where nothing changed reads no file contents.
//!
//! One file per context directory under `<cache_dir>/context/`, in a compact binary format
//! (little endian: magic, stamp, context path, count, sorted records, SHA-256 trailer),
//! written atomically (temp file + rename). A file that is truncated, corrupt, from another
//! format version or for another directory is ignored — never an error.
//!
//! Racy-git rule: the cache stores a stamp taken *before* the walk (minus a margin covering
//! coarse file-system clocks); an entry whose mtime is not older than that stamp may have
//! changed again within the same timestamp tick after it was hashed, so it is re-hashed on
//! the next run instead of trusted. (ctime is compared for equality too, which also catches
//! edits whose mtime was restored.)

use super::{Digest, Entry, EntryKind};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"DSCTXv1\n";
/// Safety margin for the racy rule: file systems with coarse timestamps (1-2 s) included.
pub const RACY_MARGIN_NS: i64 = 2_000_000_000;
const FIXED_RECORD: usize = 8 + 8 + 8 + 8 + 4 + 32;

/// A loaded stat cache (the raw file; records are decoded while merging).
pub struct StatCache {
    stamp_ns: i64,
    buf: Vec<u8>,
    records_start: usize,
    records_end: usize,
}

struct Record<'a> {
    rel: &'a str,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    mode: u32,
    digest: [u8; 32],
}

/// Where the stat cache of the context at `root` (canonical path) lives.
pub fn cache_file(cache_dir: &Path, root: &Path) -> PathBuf {
    let id = Sha256::digest(root.as_os_str().as_encoded_bytes());
    cache_dir
        .join("context")
        .join(format!("{}.stat", hex::encode(&id[..8])))
}

impl StatCache {
    /// Loads the cache at `path` written for `root`; `Err` carries why it was ignored.
    pub fn load(path: &Path, root: &Path) -> Result<StatCache, String> {
        let buf =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(buf, root)
    }

    fn parse(buf: Vec<u8>, root: &Path) -> Result<StatCache, String> {
        let min = MAGIC.len() + 8 + 4 + 8 + 32;
        if buf.len() < min || &buf[..MAGIC.len()] != MAGIC {
            return Err("not a stat cache of this version".into());
        }
        let body_len = buf.len() - 32;
        let sum = Sha256::digest(&buf[..body_len]);
        if sum[..] != buf[body_len..] {
            return Err("checksum mismatch (corrupt or truncated)".into());
        }
        let mut pos = MAGIC.len();
        let stamp_ns = i64::from_le_bytes(take::<8>(&buf, &mut pos)?);
        let root_len = u32::from_le_bytes(take::<4>(&buf, &mut pos)?) as usize;
        let stored_root = buf.get(pos..pos + root_len).ok_or("truncated header")?;
        if stored_root != root.as_os_str().as_encoded_bytes() {
            return Err("written for another directory".into());
        }
        pos += root_len;
        let _count = u64::from_le_bytes(take::<8>(&buf, &mut pos)?);
        Ok(StatCache {
            stamp_ns,
            records_start: pos,
            records_end: body_len,
            buf,
        })
    }

    fn records(&self) -> RecordIter<'_> {
        RecordIter {
            buf: &self.buf[..self.records_end],
            pos: self.records_start,
        }
    }

    /// Fills in the digests of unchanged, non-racy files of `entries` (sorted by `rel`) and
    /// returns the indices of the files that still need hashing, plus whether the cached
    /// entry set equals the current one (so the file need not be rewritten).
    pub fn apply(&self, entries: &mut [Entry]) -> (Vec<usize>, bool) {
        let mut todo = Vec::new();
        let mut records = self.records().peekable();
        let mut same = true;
        for (index, entry) in entries.iter_mut().enumerate() {
            if entry.kind != EntryKind::File {
                continue;
            }
            let mut found = None;
            while let Some(record) = records.peek() {
                match record.rel.cmp(entry.rel.as_str()) {
                    std::cmp::Ordering::Less => {
                        same = false;
                        records.next();
                    }
                    std::cmp::Ordering::Equal => {
                        found = records.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            let trusted = found.as_ref().is_some_and(|r| {
                r.size == entry.size
                    && r.mtime_ns == entry.mtime_ns
                    && r.ctime_ns == entry.ctime_ns
                    && r.inode == entry.inode
                    && r.mode == entry.mode
                    && r.mtime_ns < self.stamp_ns
            });
            match (trusted, found) {
                (true, Some(r)) => entry.digest = Some(Digest(r.digest)),
                _ => {
                    same = false;
                    todo.push(index);
                }
            }
        }
        if records.next().is_some() {
            same = false;
        }
        (todo, same)
    }
}

fn take<const N: usize>(buf: &[u8], pos: &mut usize) -> Result<[u8; N], String> {
    let bytes = buf
        .get(*pos..*pos + N)
        .ok_or_else(|| "truncated".to_owned())?;
    *pos += N;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok(out)
}

struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Record<'a>;

    /// Stops at the first malformed record (the checksum makes that practically impossible).
    fn next(&mut self) -> Option<Record<'a>> {
        let buf = self.buf;
        let mut pos = self.pos;
        let rel_len = u32::from_le_bytes(take::<4>(buf, &mut pos).ok()?) as usize;
        let rel = std::str::from_utf8(buf.get(pos..pos + rel_len)?).ok()?;
        pos += rel_len;
        if buf.len() < pos + FIXED_RECORD {
            return None;
        }
        let record = Record {
            rel,
            size: u64::from_le_bytes(take::<8>(buf, &mut pos).ok()?),
            mtime_ns: i64::from_le_bytes(take::<8>(buf, &mut pos).ok()?),
            ctime_ns: i64::from_le_bytes(take::<8>(buf, &mut pos).ok()?),
            inode: u64::from_le_bytes(take::<8>(buf, &mut pos).ok()?),
            mode: u32::from_le_bytes(take::<4>(buf, &mut pos).ok()?),
            digest: take::<32>(buf, &mut pos).ok()?,
        };
        self.pos = pos;
        Some(record)
    }
}

/// Writes the cache for `root` atomically: every hashed file of `entries` (sorted by `rel`)
/// with `stamp_ns` as the racy-rule stamp.
pub fn save(path: &Path, root: &Path, stamp_ns: i64, entries: &[Entry]) -> std::io::Result<()> {
    let files = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.digest.is_some());
    let root_bytes = root.as_os_str().as_encoded_bytes();
    let mut buf = Vec::with_capacity(64 + root_bytes.len() + entries.len() * 100);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&stamp_ns.to_le_bytes());
    buf.extend_from_slice(&(root_bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(root_bytes);
    let count_at = buf.len();
    buf.extend_from_slice(&0u64.to_le_bytes());
    let mut count = 0u64;
    for entry in files {
        let Some(digest) = entry.digest else { continue };
        buf.extend_from_slice(&(entry.rel.len() as u32).to_le_bytes());
        buf.extend_from_slice(entry.rel.as_bytes());
        buf.extend_from_slice(&entry.size.to_le_bytes());
        buf.extend_from_slice(&entry.mtime_ns.to_le_bytes());
        buf.extend_from_slice(&entry.ctime_ns.to_le_bytes());
        buf.extend_from_slice(&entry.inode.to_le_bytes());
        buf.extend_from_slice(&entry.mode.to_le_bytes());
        buf.extend_from_slice(&digest.0);
        count += 1;
    }
    buf[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    let sum = Sha256::digest(&buf);
    buf.extend_from_slice(&sum);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&buf)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
        let cache = StatCache::load(&path, root).unwrap();

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
        let (todo, same) = cache.apply(&mut now);
        assert_eq!(todo, vec![1, 2], "edited and racy files are re-hashed");
        assert!(!same);
        assert_eq!(now[0].digest, saved[0].digest);

        let mut again: Vec<Entry> = saved[..2]
            .iter()
            .cloned()
            .chain([saved[3].clone()])
            .collect();
        again.iter_mut().for_each(|e| e.digest = None);
        let (todo, same) = cache.apply(&mut again);
        assert!(todo.is_empty());
        assert!(!same, "a record without entry means the set changed");
    }

    #[test]
    fn corrupt_foreign_or_truncated_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new("/ctx");
        let path = cache_file(dir.path(), root);
        save(&path, root, 50, &[entry("a", 10)]).unwrap();
        assert!(StatCache::load(&path, Path::new("/other")).is_err());
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
            assert!(StatCache::load(&path, root).is_err());
        }
        assert!(StatCache::load(&dir.path().join("missing"), root).is_err());
    }
}
