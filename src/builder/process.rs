//! Running one external program for a builder (the `docker` CLI, a custom build command).
//!
//! Owns the process mechanics both builders share: no shell, its own process group (so
//! cancelling kills a script *and* the programs it started), stdout and stderr merged into
//! whole lines, and an optional stdin fed from a [`ContextBody`]. If that body fails part-way
//! the process is killed while its stdin is still open, so it never sees a clean end of a
//! truncated context.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ContextBody;
use super::lines::LineSplitter;

/// How long to keep reading output after the process exited, for grandchildren that still
/// hold the pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What to run.
pub(crate) struct ProcessSpec<'a> {
    pub program: &'a OsStr,
    pub args: &'a [String],
    pub cwd: Option<&'a Path>,
    pub env: &'a [(&'a str, &'a str)],
    pub stdin: Option<ContextBody>,
}

/// How a run ended (when it could be started at all).
pub(crate) enum ProcessOutcome {
    /// The process exited by itself.
    Exited {
        status: ExitStatus,
        /// Bytes written to stdin, when stdin was fed and fully written.
        sent: Option<u64>,
    },
    /// The token fired; the process group was killed.
    Cancelled,
}

/// Why a run could not complete.
pub(crate) enum ProcessError {
    /// The program does not exist.
    NotFound,
    /// Starting or waiting for the program failed.
    Io(io::Error),
    /// The stdin producer failed; the process was killed before it saw end of input.
    Producer(io::Error),
}

enum FeedError {
    /// Keeps stdin open until the process is dead.
    Producer(io::Error, ChildStdin),
    /// The process closed its stdin; its exit status tells what happened.
    Write,
}

/// Runs `spec`, calling `on_line` for every output line, until it exits or `cancel` fires.
pub(crate) async fn run(
    spec: ProcessSpec<'_>,
    on_line: &mut (dyn FnMut(String) + Send),
    cancel: &CancellationToken,
) -> Result<ProcessOutcome, ProcessError> {
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args)
        .envs(spec.env.iter().copied())
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cwd) = spec.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ProcessError::NotFound,
        _ => ProcessError::Io(e),
    })?;
    let pid = child.id();

    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(read_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(read_lines(err, tx.clone()));
    }
    drop(tx);
    let mut feeder = match (spec.stdin, child.stdin.take()) {
        (Some(body), Some(stdin)) => Some(tokio::spawn(feed_stdin(body, stdin))),
        _ => None,
    };

    let mut sent = None;
    let mut status: Option<ExitStatus> = None;
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                // Once reaped, the pid may be reused: only signal a group we know is ours.
                kill_group(pid.filter(|_| status.is_none()), &mut child).await;
                return Ok(ProcessOutcome::Cancelled);
            }
            fed = async { feeder.as_mut().expect("guarded by the select condition").await },
                if feeder.is_some() =>
            {
                feeder = None;
                match fed {
                    Ok(Ok(n)) => sent = Some(n),
                    Ok(Err(FeedError::Producer(e, stdin))) => {
                        kill_group(pid, &mut child).await;
                        drop(stdin);
                        return Err(ProcessError::Producer(e));
                    }
                    Ok(Err(FeedError::Write)) => {}
                    Err(join) => return Err(ProcessError::Io(io::Error::other(join))),
                }
            }
            line = rx.recv() => match line {
                Some(line) => on_line(line),
                None => break,
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited.map_err(ProcessError::Io)?);
                grace.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            () = &mut grace => break,
        }
    }
    let status = match status {
        Some(status) => status,
        None => tokio::select! {
            biased;
            () = cancel.cancelled() => {
                kill_group(pid, &mut child).await;
                return Ok(ProcessOutcome::Cancelled);
            }
            exited = child.wait() => exited.map_err(ProcessError::Io)?,
        },
    };
    if let Some(feeder) = feeder {
        // The process is gone; nobody reads the rest of the input.
        feeder.abort();
    }
    Ok(ProcessOutcome::Exited { status, sent })
}

async fn read_lines(mut reader: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<String>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut splitter = LineSplitter::new();
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for line in splitter.push(&buf[..n]) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(line) = splitter.finish() {
        let _ = tx.send(line);
    }
}

async fn feed_stdin(mut body: ContextBody, mut stdin: ChildStdin) -> Result<u64, FeedError> {
    let mut sent = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return Err(FeedError::Producer(e, stdin)),
        };
        stdin
            .write_all(&chunk)
            .await
            .map_err(|_| FeedError::Write)?;
        sent += chunk.len() as u64;
    }
    stdin.shutdown().await.map_err(|_| FeedError::Write)?;
    Ok(sent)
}

/// Kills the whole process group (a script and everything it started), then reaps the child.
async fn kill_group(pid: Option<u32>, child: &mut Child) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) has no memory-safety preconditions; the group id is the child's
        // pid because it was spawned with process_group(0), and it cannot have been reused
        // yet since the child is not reaped before this call.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
