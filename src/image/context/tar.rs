//! The streaming context tar: the scanned entries as an uncompressed tar, produced on a
//! blocking thread while it is consumed (bounded channel, so memory stays flat whatever the
//! context size), optionally with the Dockerfile replaced or added in memory.
//!
//! Headers follow the docker CLI: uid/gid 0, permission bits and mtimes (whole seconds) kept,
//! directories with a trailing `/`, symlinks stored as links, no sparse entries (the daemon
//! rejects them). Any read error — or a file that changed since it was scanned — is sent as
//! an `Err` item and the stream ends there, *without* an end-of-archive marker: a truncated
//! archive must never look complete to the daemon.

use super::{Entry, EntryKind};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How the Dockerfile enters the archive.
#[derive(Debug, Clone, Default)]
pub enum DockerfileEntry {
    /// Send the context as scanned.
    #[default]
    AsIs,
    /// Replace the content of the entry at `rel_path` (the Dockerfile after overrides),
    /// keeping its position, mode and mtime; appended (mode 0600) if the context lacks it.
    Replace {
        /// Path of the Dockerfile relative to the context.
        rel_path: String,
        /// The content to send.
        content: Bytes,
    },
    /// Add the Dockerfile as an extra entry `name` (a Dockerfile outside the context) and
    /// list it in the archive's `.dockerignore`, like the docker CLI, so the daemon drops it
    /// from the context after reading it. Use [`random_dockerfile_name`] for `name` and pass
    /// it as the build's `dockerfile` parameter.
    Extra {
        /// Entry name, e.g. `.dockerfile.0123456789abcdef0123`.
        name: String,
        /// The content to send.
        content: Bytes,
    },
}

/// Options of [`context_tar_stream`].
#[derive(Debug, Clone)]
pub struct TarOptions {
    /// How the Dockerfile enters the archive.
    pub dockerfile: DockerfileEntry,
    /// Size of the chunks the stream yields.
    pub chunk_size: usize,
    /// Chunks buffered between the reading thread and the consumer.
    pub channel_capacity: usize,
}

impl Default for TarOptions {
    fn default() -> Self {
        TarOptions {
            dockerfile: DockerfileEntry::AsIs,
            chunk_size: 64 * 1024,
            channel_capacity: 8,
        }
    }
}

/// A name for a Dockerfile sent from outside the context: `.dockerfile.` + 20 random hex
/// digits, as the docker CLI does.
pub fn random_dockerfile_name() -> String {
    let bytes: [u8; 10] = rand::random();
    format!(".dockerfile.{}", hex::encode(bytes))
}

/// Streams `entries` (from a scan of `root`) as a tar archive. Files are read on a
/// dedicated thread into a bounded channel; dropping the stream stops the thread.
pub fn context_tar_stream(
    root: PathBuf,
    entries: Arc<Vec<Entry>>,
    options: TarOptions,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(options.channel_capacity.max(1));
    let error_tx = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("context-tar".into())
        .spawn(move || produce(&root, &entries, &options, tx));
    if let Err(e) = spawned {
        // The receiver is alive here, so try_send into the empty channel succeeds.
        let _ = error_tx.try_send(Err(e));
    }
    drop(error_tx);
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Chunks the archive into `Bytes` and sends them; after a failure it refuses all writes,
/// so the end-of-archive that `tar::Builder` writes when dropped never reaches the consumer.
struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: BytesMut,
    chunk_size: usize,
    failed: bool,
}

impl ChunkWriter {
    fn send(&mut self, item: Result<Bytes, io::Error>) -> io::Result<()> {
        self.tx
            .blocking_send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "context stream dropped"))
    }

    fn fail(&mut self, error: io::Error) {
        if !self.failed {
            self.failed = true;
            self.buf.clear();
            let _ = self.send(Err(error));
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("context archive aborted"));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.chunk_size {
            let chunk = self.buf.split().freeze();
            self.send(Ok(chunk))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("context archive aborted"));
        }
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.send(Ok(chunk))?;
        }
        Ok(())
    }
}

fn produce(
    root: &std::path::Path,
    entries: &[Entry],
    options: &TarOptions,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
) {
    let writer = ChunkWriter {
        tx,
        buf: BytesMut::with_capacity(options.chunk_size * 2),
        chunk_size: options.chunk_size.max(512),
        failed: false,
    };
    let mut builder = tar::Builder::new(writer);
    builder.sparse(false);
    let result = write_archive(&mut builder, root, entries, &options.dockerfile)
        .and_then(|()| builder.finish())
        .and_then(|()| builder.get_mut().flush());
    if let Err(error) = result {
        // BrokenPipe: the consumer is gone, nobody to tell.
        if error.kind() != io::ErrorKind::BrokenPipe {
            builder.get_mut().fail(error);
        } else {
            builder.get_mut().failed = true;
        }
    }
}

fn write_archive<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &std::path::Path,
    entries: &[Entry],
    dockerfile: &DockerfileEntry,
) -> io::Result<()> {
    let mut replaced = false;
    let mut ignore_seen = false;
    for entry in entries {
        let mut header = base_header(entry.mode, entry.mtime_ns.div_euclid(1_000_000_000));
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", entry.rel), io::empty())?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &entry.rel, &**target)?;
            }
            EntryKind::File => {
                let override_content = match dockerfile {
                    DockerfileEntry::Replace { rel_path, content } if *rel_path == entry.rel => {
                        replaced = true;
                        Some(content.clone())
                    }
                    DockerfileEntry::Extra { name, .. } if entry.rel == ".dockerignore" => {
                        ignore_seen = true;
                        let mut existing = Vec::new();
                        open_unchanged(root, entry)?.read_to_end(&mut existing)?;
                        existing.extend_from_slice(format!("\n{name}\n").as_bytes());
                        Some(Bytes::from(existing))
                    }
                    _ => None,
                };
                header.set_entry_type(tar::EntryType::Regular);
                if let Some(content) = override_content {
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, &entry.rel, &content[..])?;
                } else {
                    header.set_size(entry.size);
                    let file = open_unchanged(root, entry)?;
                    // BufReader: `io::copy` then moves 64 KiB per read instead of 8 KiB.
                    let reader = io::BufReader::with_capacity(
                        64 * 1024,
                        ExactReader {
                            inner: file,
                            remaining: entry.size,
                            path: root.join(&entry.rel),
                        },
                    );
                    builder.append_data(&mut header, &entry.rel, reader)?;
                }
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut append_new = |name: &str, content: &[u8]| -> io::Result<()> {
        let mut header = base_header(0o600, now);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        builder.append_data(&mut header, name, content)
    };
    match dockerfile {
        DockerfileEntry::AsIs => {}
        DockerfileEntry::Replace { rel_path, content } => {
            if !replaced {
                append_new(rel_path, content)?;
            }
        }
        DockerfileEntry::Extra { name, content } => {
            if !ignore_seen {
                append_new(
                    ".dockerignore",
                    format!(".dockerignore\n{name}\n").as_bytes(),
                )?;
            }
            append_new(name, content)?;
        }
    }
    Ok(())
}

fn base_header(mode: u32, mtime_secs: i64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime_secs.max(0) as u64);
    header
}

/// Opens a file and checks it is still what the scan saw: sending other bytes than the
/// ones that were hashed would record a wrong cache entry for the built image. "The same
/// file" means the same inode, still a regular file, with the scanned size and mtime; the
/// last component is opened with `O_NOFOLLOW`. So a file (or a directory above it) swapped
/// for a symbolic link after the scan — to a file outside the context with a forged size and
/// mtime — is refused instead of being sent to the daemon.
fn open_unchanged(root: &std::path::Path, entry: &Entry) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(&entry.rel);
    let named =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()));
    let changed = || {
        io::Error::other(format!(
            "{} changed while the build context was being sent; run the build again",
            path.display()
        ))
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(file) => file,
        // ELOOP: the last component became a symbolic link since the scan.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(changed()),
        Err(e) => return Err(named(e)),
    };
    let meta = file.metadata().map_err(named)?;
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    if !meta.is_file()
        || meta.ino() != entry.inode
        || meta.size() != entry.size
        || mtime_ns != entry.mtime_ns
    {
        return Err(changed());
    }
    Ok(file)
}

/// Yields exactly `remaining` bytes or fails: a file that shrank must not be padded.
struct ExactReader {
    inner: File,
    remaining: u64,
    path: PathBuf,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max]).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", self.path.display()),
            )
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while the build context was being sent",
                    self.path.display()
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::context::scan_context;
    use futures_util::StreamExt;

    /// Collects the stream; returns the bytes before the first error and that error.
    async fn collect(
        stream: impl Stream<Item = Result<Bytes, io::Error>>,
    ) -> (Vec<u8>, Option<io::Error>, usize) {
        let mut stream = std::pin::pin!(stream);
        let mut bytes = Vec::new();
        let mut error = None;
        let mut items_after_error = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) if error.is_none() => bytes.extend_from_slice(&chunk),
                Ok(_) => items_after_error += 1,
                Err(e) => {
                    if error.is_some() {
                        items_after_error += 1;
                    }
                    error.get_or_insert(e);
                }
            }
        }
        (bytes, error, items_after_error)
    }

    /// (name, type byte, mode, uid, content or link target)
    fn list(archive: &[u8]) -> Vec<(String, u8, u32, u64, String)> {
        let mut out = Vec::new();
        let mut archive = ::tar::Archive::new(archive);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut body = String::new();
            if let Some(link) = entry.link_name().unwrap() {
                body = link.to_string_lossy().into_owned();
            } else {
                entry.read_to_string(&mut body).unwrap();
            }
            out.push((
                name,
                header.entry_type().as_byte(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                body,
            ));
        }
        out
    }

    async fn send_raw(
        scan: &super::super::ContextScan,
        options: TarOptions,
    ) -> (Vec<u8>, Option<io::Error>, usize) {
        collect(context_tar_stream(
            scan.root.clone(),
            scan.entries.clone(),
            options,
        ))
        .await
    }

    /// Sends the scan with `dockerfile` handling and lists the archive (no error allowed).
    async fn send(
        scan: &super::super::ContextScan,
        dockerfile: DockerfileEntry,
    ) -> Vec<(String, u8, u32, u64, String)> {
        let (bytes, error, _) = collect(scan.tar_stream(dockerfile)).await;
        assert!(error.is_none(), "{error:?}");
        list(&bytes)
    }

    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(ctx.join("src")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(ctx.join(".dockerignore"), "*.tmp\n").unwrap();
        std::fs::write(ctx.join("x.tmp"), "ignored").unwrap();
        std::fs::write(ctx.join("src/big.bin"), vec![7u8; 300_000]).unwrap();
        std::fs::write(ctx.join("run.sh"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(ctx.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("../outside/target", ctx.join("src/link")).unwrap();
        (dir, ctx)
    }

    #[tokio::test]
    async fn archive_holds_the_scanned_entries_with_docker_headers() {
        let (_dir, ctx) = project();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        let options = TarOptions {
            chunk_size: 4096,
            channel_capacity: 2,
            ..TarOptions::default()
        };
        let (bytes, error, _) = send_raw(&scan, options).await;
        assert!(error.is_none(), "{error:?}");
        let entries = list(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "run.sh",
                "src/",
                "src/big.bin",
                "src/link"
            ]
        );
        let run = &entries[2];
        assert_eq!((run.1, run.2, run.3), (b'0', 0o755, 0));
        assert_eq!(entries[3].1, b'5');
        assert_eq!(entries[4].4.len(), 300_000);
        assert_eq!(
            (entries[5].1, entries[5].4.as_str()),
            (b'2', "../outside/target")
        );
    }

    #[tokio::test]
    async fn dockerfile_can_be_replaced_or_added() {
        let (_dir, ctx) = project();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        let replace = DockerfileEntry::Replace {
            rel_path: "Dockerfile".into(),
            content: Bytes::from_static(b"FROM busybox\nCMD [\"x\"]\n"),
        };
        let entries = send(&scan, replace).await;
        assert_eq!(entries[1].0, "Dockerfile", "keeps its position");
        assert_eq!(entries[1].4, "FROM busybox\nCMD [\"x\"]\n");

        let name = random_dockerfile_name();
        assert_eq!(name.len(), ".dockerfile.".len() + 20);
        let extra = DockerfileEntry::Extra {
            name: name.clone(),
            content: Bytes::from_static(b"FROM outside\n"),
        };
        let entries = send(&scan, extra).await;
        assert_eq!(
            entries[0].4,
            format!("*.tmp\n\n{name}\n"),
            "listed in .dockerignore"
        );
        let last = entries.last().unwrap();
        assert_eq!(
            (last.0.as_str(), last.2, last.4.as_str()),
            (name.as_str(), 0o600, "FROM outside\n")
        );
    }

    #[tokio::test]
    async fn read_errors_end_the_stream_with_an_error_not_an_archive() {
        let (_dir, ctx) = project();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        std::fs::remove_file(ctx.join("src/big.bin")).unwrap();
        let options = TarOptions {
            chunk_size: 512,
            ..TarOptions::default()
        };
        let (bytes, error, after) = send_raw(&scan, options).await;
        let error = error.expect("a vanished file must surface as an error");
        assert!(error.to_string().contains("src/big.bin"), "{error}");
        assert_eq!(after, 0, "nothing follows the error");
        assert!(
            !bytes.ends_with(&[0u8; 1024]),
            "no end-of-archive marker may be sent after a failure"
        );

        // A file that shrank after the scan fails the same way.
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        std::fs::write(ctx.join("run.sh"), "#!").unwrap();
        let (_, error, _) = send_raw(&scan, TarOptions::default()).await;
        assert!(error.expect("changed file").to_string().contains("run.sh"));
    }

    /// Sends the scan and returns the error it must end with, checking `secret` was not sent.
    async fn refused(scan: &super::super::ContextScan, secret: &[u8]) -> io::Error {
        let (bytes, error, _) = send_raw(scan, TarOptions::default()).await;
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "content from outside the context was sent"
        );
        error.expect("a swapped file must end the stream with an error")
    }

    /// Makes `outside` look like the scanned `entry` (same size, same mtime), the way a
    /// hostile swap would, so only the identity of the file can tell them apart.
    fn forge(outside: &std::path::Path, entry: &Entry, secret: &[u8]) {
        assert_eq!(secret.len() as u64, entry.size);
        std::fs::write(outside, secret).unwrap();
        let mtime = UNIX_EPOCH + std::time::Duration::from_nanos(entry.mtime_ns as u64);
        File::options()
            .write(true)
            .open(outside)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    #[tokio::test]
    async fn a_file_swapped_for_a_link_after_the_scan_is_refused_not_followed() {
        let (dir, ctx) = project();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        let entry = scan.entries.iter().find(|e| e.rel == "run.sh").unwrap();
        let secret = b"SECRET!!!!"; // the size of "#!/bin/sh\n"
        let outside = dir.path().join("secret");
        forge(&outside, entry, secret);

        // The file itself becomes a link to the forged file.
        std::fs::remove_file(ctx.join("run.sh")).unwrap();
        std::os::unix::fs::symlink(&outside, ctx.join("run.sh")).unwrap();
        let error = refused(&scan, secret).await;
        assert!(
            error
                .to_string()
                .contains("run.sh changed while the build context"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_directory_swapped_for_a_link_after_the_scan_is_refused_not_followed() {
        let (dir, ctx) = project();
        std::fs::write(ctx.join("src/app.txt"), "application\n").unwrap();
        let scan = scan_context(&ctx, &ctx.join("Dockerfile"), &ctx.join(".devspace")).unwrap();
        let entry = scan
            .entries
            .iter()
            .find(|e| e.rel == "src/app.txt")
            .unwrap();
        let secret = b"SECRET-DATA\n";
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        forge(&elsewhere.join("app.txt"), entry, secret);
        let big = scan
            .entries
            .iter()
            .find(|e| e.rel == "src/big.bin")
            .unwrap();
        forge(&elsewhere.join("big.bin"), big, &vec![7u8; 300_000]);

        // A directory above the file becomes a link: O_NOFOLLOW alone would not see it.
        std::fs::rename(ctx.join("src"), dir.path().join("src.moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, ctx.join("src")).unwrap();
        let error = refused(&scan, secret).await;
        assert!(
            error
                .to_string()
                .contains("changed while the build context"),
            "{error}"
        );
    }
}
