//! Writing under `.devspace/` without following links we did not create.
//!
//! A project directory is untrusted input: `.devspace/logs/app.log` may be a symlink (or a
//! hard link) to a file the user can write, `.devspace` itself may point elsewhere. So the
//! directories we write into are checked link by link, and files are never opened for writing
//! in place: a fresh file is created next to the target (`O_EXCL`, a random name) and renamed
//! over it, which replaces a link instead of writing through it.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Creates `dir` and checks its last `depth` components (e.g. 2 for `.devspace/logs`): each
/// must be a real directory, not a symlink to one.
pub fn create_dir(dir: &Path, depth: usize) -> io::Result<()> {
    let mut chain: Vec<&Path> = dir.ancestors().take(depth.max(1)).collect();
    chain.reverse();
    if let Some(parent) = chain.first().and_then(|d| d.parent())
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    for d in chain {
        match fs::symlink_metadata(d) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "{} is a symbolic link; refusing to write through it",
                    d.display()
                )));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    d.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(d) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A new, empty file that atomically takes the place of `path` (whatever was there, a link
/// included, is replaced, never written through). Mode 0644 like DevSpace's files.
pub fn replace(path: &Path) -> io::Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    temp.persist(path).map_err(|e| e.error)
}

/// Writes `bytes` to a fresh file next to `path` and renames it over `path`: readers see the
/// old content or the new, and a link at `path` is replaced, not written through.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir, 1)?;
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Opens (creating) a file for locking only, refusing a symlink at `path`.
pub fn open_lock(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replace_does_not_write_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep me").unwrap();
        let logs = dir.path().join(".devspace/logs");
        create_dir(&logs, 2).unwrap();
        let sym = logs.join("a.log");
        std::os::unix::fs::symlink(&victim, &sym).unwrap();
        let hard = logs.join("b.log");
        fs::hard_link(&victim, &hard).unwrap();
        for path in [&sym, &hard] {
            let mut f = replace(path).unwrap();
            writeln!(f, "build log").unwrap();
            assert!(fs::symlink_metadata(path).unwrap().is_file());
            assert_eq!(fs::read_to_string(path).unwrap(), "build log\n");
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    }

    #[test]
    fn symlinked_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let project = dir.path().join("project");
        fs::create_dir(&project).unwrap();
        std::os::unix::fs::symlink(&elsewhere, project.join(".devspace")).unwrap();
        let err = create_dir(&project.join(".devspace/logs"), 2).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(fs::read_dir(&elsewhere).unwrap().next().is_none());
        let lock = project.join("lock");
        std::os::unix::fs::symlink(elsewhere.join("created"), &lock).unwrap();
        assert!(open_lock(&lock).is_err());
        assert!(!elsewhere.join("created").exists());
    }
}
