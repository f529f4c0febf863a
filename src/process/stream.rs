//! The async runner: builders stream lines ([`stream`]), the cluster CLIs capture output
//! ([`run_async`]). Every async run is in its own process group, killed as a whole when the run
//! is cancelled, times out, or its future is dropped.
//!
//! [`stream`] merges stdout and stderr into whole lines and can feed stdin from a [`Body`]. If
//! that body fails part-way the process is killed while its stdin is still open, so it never
//! sees a clean end of a truncated context.

use std::io;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::LineSplitter;
use super::{INTERRUPT, Output, RunError, Spec, Stdin, kill_group};

/// A stream of bytes fed to a program's stdin (a build context as a tar).
pub type Body = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send + 'static>>;

/// How long to keep reading output after the process exited, for grandchildren that still
/// hold the pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How a streamed run ended (when it could be started at all).
#[derive(Debug)]
pub enum Streamed {
    /// The process exited by itself.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Bytes written to stdin, when stdin was fed and fully written.
        sent: Option<u64>,
    },
    /// The token fired; the process group was killed.
    Cancelled,
}

enum FeedError {
    /// Keeps stdin open until the process is dead.
    Producer(io::Error, ChildStdin),
    /// The process closed its stdin; its exit status tells what happened.
    Write,
}

/// Kills the process group when dropped before [`GroupGuard::disarm`] (a dropped future).
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid);
        }
    }
}

/// Spawns `spec` in its own process group (stdin piped when `piped_stdin`).
fn spawn(spec: &Spec, piped_stdin: bool) -> Result<(Child, GroupGuard), RunError> {
    let program = spec.resolve()?;
    let mut std_command = spec.command_for(&program);
    if piped_stdin {
        std_command.stdin(std::process::Stdio::piped());
    }
    let mut command = Command::from(std_command);
    command.kill_on_drop(true).process_group(0);
    let child = command.spawn().map_err(|e| spec.spawn_error(e))?;
    let guard = GroupGuard(child.id());
    Ok((child, guard))
}

/// Runs `spec`, calling `on_line` for every line of stdout and stderr, until it exits or
/// `cancel` fires. `body`, when given, is fed on stdin.
pub async fn stream(
    spec: &Spec,
    body: Option<Body>,
    on_line: &mut (dyn FnMut(String) + Send),
    cancel: &CancellationToken,
) -> Result<Streamed, RunError> {
    let (mut child, mut guard) = spawn(spec, body.is_some())?;
    let pid = child.id();

    let (tx, mut rx) = mpsc::channel(256);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(read_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(read_lines(err, tx.clone()));
    }
    drop(tx);
    let mut feeder = match (body, child.stdin.take()) {
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
                kill_and_reap(pid.filter(|_| status.is_none()), &mut child).await;
                guard.disarm();
                return Ok(Streamed::Cancelled);
            }
            fed = async { feeder.as_mut().expect("guarded by the select condition").await },
                if feeder.is_some() =>
            {
                feeder = None;
                match fed {
                    Ok(Ok(n)) => sent = Some(n),
                    Ok(Err(FeedError::Producer(source, stdin))) => {
                        kill_and_reap(pid.filter(|_| status.is_none()), &mut child).await;
                        guard.disarm();
                        drop(stdin);
                        return Err(RunError::Input { command: spec.command(), source });
                    }
                    Ok(Err(FeedError::Write)) => {}
                    Err(join) => {
                        return Err(RunError::Spawn {
                            command: spec.command(),
                            source: io::Error::other(join),
                        });
                    }
                }
            }
            line = rx.recv() => match line {
                Some(line) => on_line(line),
                None => break,
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited.map_err(|source| RunError::Spawn {
                    command: spec.command(),
                    source,
                })?);
                guard.disarm();
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
                kill_and_reap(pid, &mut child).await;
                guard.disarm();
                return Ok(Streamed::Cancelled);
            }
            exited = child.wait() => exited.map_err(|source| RunError::Spawn {
                command: spec.command(),
                source,
            })?,
        },
    };
    guard.disarm();
    if let Some(feeder) = feeder {
        // The process is gone; nobody reads the rest of the input.
        feeder.abort();
    }
    Ok(Streamed::Exited { status, sent })
}

/// Runs `spec` to the end and captures its output, in its own process group: killed with the
/// group on its timeout, its cancellation token, Ctrl-C ([`super::interrupt`]), too much output,
/// or when the future is dropped. A nonzero exit is not an error here (see
/// [`Output::checked`]).
pub async fn run_async(spec: &Spec) -> Result<Output, RunError> {
    let (mut child, mut guard) = spawn(spec, false)?;
    let cap = spec.output_cap;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdin = child.stdin.take();
    let bytes = match &spec.stdin {
        Stdin::Bytes(bytes) => Some(bytes.clone()),
        Stdin::Null | Stdin::Inherit => None,
    };
    let io = async {
        let feed = async {
            if let (Some(mut stdin), Some(bytes)) = (stdin, bytes) {
                // A program that exits without reading its input is judged by its exit status.
                let _ = stdin.write_all(&bytes).await;
            }
            Ok::<(), Stop>(())
        };
        let (out, err, ()) =
            tokio::try_join!(read_capped(stdout, cap), read_capped(stderr, cap), feed)?;
        let status = child.wait().await.map_err(Stop::Io)?;
        Ok::<_, Stop>((status, out, err))
    };
    let cancel = spec.cancel.clone().unwrap_or_default();
    let deadline = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        done = io => done,
        () = cancel.cancelled() => Err(Stop::Interrupted),
        () = INTERRUPT.cancelled() => Err(Stop::Interrupted),
        () = deadline => Err(Stop::TimedOut),
    };
    let command = spec.command();
    match result {
        Ok((status, stdout, stderr)) => {
            guard.disarm();
            Ok(Output {
                command,
                status,
                stdout,
                stderr,
            })
        }
        Err(stop) => {
            // The guard kills the group (the child has not been reaped: `io` was dropped
            // before or without its `wait` completing).
            drop(guard);
            Err(match stop {
                Stop::Io(source) => RunError::Spawn { command, source },
                Stop::Overflow => RunError::OutputTooLarge {
                    command,
                    limit: cap,
                },
                Stop::Interrupted => RunError::Interrupted { command },
                Stop::TimedOut => RunError::TimedOut {
                    command,
                    timeout: spec.timeout.unwrap_or_default(),
                },
            })
        }
    }
}

/// Why [`run_async`] stopped early.
enum Stop {
    Io(io::Error),
    Overflow,
    Interrupted,
    TimedOut,
}

/// Reads `reader` to the end, failing once it holds more than `cap` bytes.
async fn read_capped(reader: Option<impl AsyncRead + Unpin>, cap: usize) -> Result<Vec<u8>, Stop> {
    let Some(reader) = reader else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::new();
    // One byte more than allowed tells "exactly the cap" from "more".
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut buf)
        .await
        .map_err(Stop::Io)?;
    if buf.len() > cap {
        return Err(Stop::Overflow);
    }
    Ok(buf)
}

async fn read_lines(mut reader: impl AsyncRead + Unpin, tx: mpsc::Sender<String>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut splitter = LineSplitter::new();
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for line in splitter.push(&buf[..n]) {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(line) = splitter.finish() {
        let _ = tx.send(line).await;
    }
}

async fn feed_stdin(mut body: Body, mut stdin: ChildStdin) -> Result<u64, FeedError> {
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

/// Kills the whole process group (when `pid` is given: the child is not reaped yet), then
/// reaps the child.
async fn kill_and_reap(pid: Option<u32>, child: &mut Child) {
    if let Some(pid) = pid {
        kill_group(pid);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
