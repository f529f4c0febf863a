//! The files behind a custom builder's `onChange` globs, with a SHA-256 digest of each, so the
//! custom builder is skipped on content like the Dockerfile builders (DevSpace hashed path,
//! size and mtime in file-system order).
//!
//! Patterns use doublestar syntax relative to the project root (`*` stays within one path
//! segment, `**` crosses any number, `?`, `[...]`, `{a,b}`); a leading `./` is ignored. A
//! match that is a directory brings every file below it, as DevSpace did. Symlinks are not
//! followed: their digest is that of their target path. `.devspace/` at the project root is
//! never included (it changes on every build, so `**` would always rebuild).
//!
//! The walk starts at each pattern's literal prefix (`src/` for `src/**/*.rs`), not at the root.
//! Files are hashed one after another with `image::context`'s streaming hasher and without
//! its stat cache: `onChange` sets are small.

use crate::image::context::hash::hash_file;
use crate::image::decision::FileDigests;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// A pattern that does not compile, or a file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum OnChangeError {
    #[error("onChange pattern '{pattern}': {message}")]
    Pattern { pattern: String, message: String },
    #[error("onChange file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Every file matched by `patterns` under `project_root`: sorted `(relative path, sha256 hex)`.
pub fn on_change_files(
    project_root: &Path,
    patterns: &[String],
) -> Result<FileDigests, OnChangeError> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    for pattern in patterns {
        let pattern = normalize_pattern(pattern, project_root);
        let glob = compile(&pattern)?;
        let base = literal_prefix(&pattern);
        let start = if base.is_empty() {
            project_root.to_owned()
        } else {
            project_root.join(&base)
        };
        // A directory that matched: everything below it is included.
        let mut included_dir: Option<String> = None;
        let mut walk = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e)
                    if e.io_error()
                        .is_some_and(|io| io.kind() == io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => {
                    let path = e.path().map_or_else(|| start.clone(), Path::to_owned);
                    return Err(OnChangeError::Io {
                        path,
                        source: e
                            .into_io_error()
                            .unwrap_or_else(|| io::Error::other("file system loop")),
                    });
                }
            };
            let rel = relative(
                &base,
                entry.path().strip_prefix(&start).unwrap_or(entry.path()),
            );
            if rel == ".devspace" {
                walk.skip_current_dir();
                continue;
            }
            if included_dir
                .as_ref()
                .is_some_and(|dir| !rel.starts_with(dir.as_str()))
            {
                included_dir = None;
            }
            let file_type = entry.file_type();
            let matched = included_dir.is_some() || (!rel.is_empty() && glob.is_match(&rel));
            if file_type.is_dir() {
                if matched && included_dir.is_none() {
                    included_dir = Some(format!("{rel}/"));
                }
                continue;
            }
            if !matched || found.contains_key(&rel) {
                continue;
            }
            let digest = if file_type.is_symlink() {
                let target =
                    std::fs::read_link(entry.path()).map_err(|source| OnChangeError::Io {
                        path: entry.path().to_owned(),
                        source,
                    })?;
                hex::encode(Sha256::digest(target.to_string_lossy().as_bytes()))
            } else if file_type.is_file() {
                file_digest(entry.path(), &mut buf)?
            } else {
                continue;
            };
            found.insert(rel, digest);
        }
    }
    Ok(found.into_iter().collect())
}

fn normalize_pattern(pattern: &str, root: &Path) -> String {
    let pattern = match Path::new(pattern).strip_prefix(root) {
        Ok(inside) if Path::new(pattern).is_absolute() => inside.to_string_lossy().into_owned(),
        _ => pattern.to_owned(),
    };
    let mut p = pattern.as_str();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/').to_owned()
}

fn compile(pattern: &str) -> Result<GlobSet, OnChangeError> {
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| OnChangeError::Pattern {
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })?;
    GlobSetBuilder::new()
        .add(glob)
        .build()
        .map_err(|e| OnChangeError::Pattern {
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })
}

/// The leading path segments without glob syntax: where the walk can start.
fn literal_prefix(pattern: &str) -> String {
    let segments: Vec<&str> = pattern.split('/').collect();
    let literal = segments
        .iter()
        .take_while(|s| !s.contains(['*', '?', '[', '{', '\\']))
        .count();
    // A pattern without any glob syntax names one path; walk from it.
    segments[..literal].join("/")
}

fn relative(base: &str, below: &Path) -> String {
    let below = below
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/");
    match (base.is_empty(), below.is_empty()) {
        (true, _) => below,
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}/{below}"),
    }
}

fn file_digest(path: &Path, buf: &mut [u8]) -> Result<String, OnChangeError> {
    hash_file(path, buf)
        .map(|(digest, _)| digest.to_string())
        .map_err(|source| OnChangeError::Io {
            path: path.to_owned(),
            source,
        })
}

impl crate::diagnostic::Diagnostic for OnChangeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::decision::sha256_hex;
    use std::fs;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in [
            ("build.sh", "#!/bin/sh"),
            ("src/main.rs", "fn main() {}"),
            ("src/lib/mod.rs", "mod x;"),
            ("src/lib/data.json", "{}"),
            ("docs/readme.md", "hi"),
            ("web/a.js", "a"),
            ("web/node_modules/x/index.js", "x"),
            (".devspace/generated.yaml", "changes every build"),
        ] {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn paths(root: &Path, patterns: &[&str]) -> Vec<String> {
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        on_change_files(root, &patterns)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn glob_table() {
        let dir = project();
        let root = dir.path();
        let abs = format!("{}/docs/*.md", root.display());
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("single file", &["build.sh"], &["build.sh"]),
            ("./ prefix", &["./build.sh"], &["build.sh"]),
            ("star stays in a segment", &["src/*.rs"], &["src/main.rs"]),
            (
                "doublestar crosses segments",
                &["src/**/*.rs"],
                &["src/lib/mod.rs", "src/main.rs"],
            ),
            (
                "directory brings its files",
                &["src/lib"],
                &["src/lib/data.json", "src/lib/mod.rs"],
            ),
            (
                "dir glob",
                &["web/*"],
                &["web/a.js", "web/node_modules/x/index.js"],
            ),
            (
                "alternatives, deduplicated, sorted",
                &["{web,docs}/*.{js,md}", "docs/**"],
                &["docs/readme.md", "web/a.js"],
            ),
            (
                "absolute under the root",
                &[abs.as_str()],
                &["docs/readme.md"],
            ),
            ("no match is empty", &["missing/**", "*.none"], &[]),
            (
                "everything but .devspace",
                &["**"],
                &[
                    "build.sh",
                    "docs/readme.md",
                    "src/lib/data.json",
                    "src/lib/mod.rs",
                    "src/main.rs",
                    "web/a.js",
                    "web/node_modules/x/index.js",
                ],
            ),
        ];
        for (name, patterns, want) in cases {
            assert_eq!(paths(root, patterns), *want, "case: {name}");
        }
    }

    #[test]
    fn digests_are_content_based() {
        let dir = project();
        let root = dir.path();
        let files = on_change_files(root, &["build.sh".into()]).unwrap();
        assert_eq!(files, [("build.sh".to_owned(), sha256_hex("#!/bin/sh"))]);
        // Rewriting the same content (new mtime) changes nothing; new content does.
        fs::write(root.join("build.sh"), "#!/bin/sh").unwrap();
        assert_eq!(on_change_files(root, &["build.sh".into()]).unwrap(), files);
        fs::write(root.join("build.sh"), "#!/bin/bash").unwrap();
        assert_ne!(on_change_files(root, &["build.sh".into()]).unwrap(), files);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_recorded_by_target_not_followed() {
        let dir = project();
        let root = dir.path();
        std::os::unix::fs::symlink("../docs", root.join("src/docs-link")).unwrap();
        let files = on_change_files(root, &["src/**".into()]).unwrap();
        assert!(
            files.contains(&("src/docs-link".to_owned(), sha256_hex("../docs"))),
            "{files:?}"
        );
        assert!(
            !files.iter().any(|(p, _)| p.contains("readme")),
            "{files:?}"
        );
    }

    #[test]
    fn bad_patterns_are_named() {
        let dir = project();
        let err = on_change_files(dir.path(), &["src/[a".into()]).unwrap_err();
        assert!(
            err.to_string().starts_with("onChange pattern 'src/[a':"),
            "{err}"
        );
    }
}
