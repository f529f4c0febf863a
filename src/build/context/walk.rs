//! The context walk: lists what the docker CLI would send for a context directory, applying
//! the `.dockerignore` rules the way `TarWithOptions` does (sorted, `lstat`, symlinks not
//! followed, excluded directories pruned unless an exception could reach inside).

use super::ignore::{IgnoreRules, ParentMatches};
use super::{ContextError, Entry, EntryKind};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Lists the included entries below `root`, sorted by relative path (byte order, `/`
/// separators). The root itself is not listed. Special files (sockets, fifos, devices) are
/// skipped: nothing in an image build needs them.
pub fn walk(root: &Path, rules: &IgnoreRules) -> Result<Vec<Entry>, ContextError> {
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
    let mut entries = Vec::new();
    // (absolute dir, relative dir, the dir's match results)
    let mut stack: Vec<(PathBuf, String, Option<ParentMatches>)> =
        vec![(root.to_path_buf(), String::new(), None)];
    while let Some((dir, rel_dir, parent)) = stack.pop() {
        let read = fs::read_dir(&dir).map_err(|source| ContextError::ReadDir {
            path: dir.clone(),
            source,
        })?;
        for item in read {
            let item = item.map_err(|source| ContextError::ReadDir {
                path: dir.clone(),
                source,
            })?;
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                return Err(ContextError::NonUtf8Path { path: item.path() });
            };
            let rel = if rel_dir.is_empty() {
                name.to_owned()
            } else {
                format!("{rel_dir}/{name}")
            };
            let (excluded, info) = if rules.is_empty() {
                (false, ParentMatches::default())
            } else {
                rules.matches_in_walk(&rel, parent.as_ref())
            };
            let file_type = item.file_type().map_err(|source| ContextError::Stat {
                path: item.path(),
                source,
            })?;
            if excluded {
                if file_type.is_dir() && !rules.can_prune_dir(&rel) {
                    stack.push((item.path(), rel, Some(info)));
                }
                continue;
            }
            let path = item.path();
            let meta = item.metadata().map_err(|source| ContextError::Stat {
                path: path.clone(),
                source,
            })?;
            let kind = if file_type.is_dir() {
                EntryKind::Dir
            } else if file_type.is_file() {
                EntryKind::File
            } else if file_type.is_symlink() {
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
            entries.push(Entry {
                rel: rel.clone(),
                kind,
                mode: meta.mode() & 0o7777,
                size: if is_dir { 0 } else { meta.size() },
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
                inode: meta.ino(),
                digest: None,
            });
            if is_dir {
                stack.push((path, rel, Some(info)));
            }
        }
    }
    entries.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    Ok(entries)
}
