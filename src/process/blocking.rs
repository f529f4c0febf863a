//! The synchronous runner: config loading (command variables, `$(cmd)`, `git`, `stty`),
//! kustomize and credential helpers, which run on a thread of their own.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Output, RunError, Spec, Stdin, kill_group};

/// The longest pause between two looks at the child (short ones first: most programs are quick).
const MAX_POLL: Duration = Duration::from_millis(50);

/// Runs `spec` to the end and captures its output. A nonzero exit is not an error here (see
/// [`Output::checked`]); a missing program, a timeout, a cancellation and too much output are.
pub fn run(spec: &Spec) -> Result<Output, RunError> {
    let program = spec.resolve()?;
    let own_group = spec.stoppable();
    let mut command = spec.command_for(&program);
    if own_group {
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(|e| spec.spawn_error(e))?;
    let pid = child.id();

    let overflow = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .map(|r| Capture::start(r, spec.output_cap, &overflow, done_tx.clone()));
    let stderr = child
        .stderr
        .take()
        .map(|r| Capture::start(r, spec.output_cap, &overflow, done_tx.clone()));
    drop(done_tx);
    let mut open = usize::from(stdout.is_some()) + usize::from(stderr.is_some());
    // A program that exits without reading its input is judged by its exit status.
    let feeder: Option<JoinHandle<()>> = match (&spec.stdin, child.stdin.take()) {
        (Stdin::Bytes(bytes), Some(mut stdin)) => {
            let bytes = bytes.clone();
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            }))
        }
        _ => None,
    };

    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let mut status: Option<ExitStatus> = None;
    let mut pause = Duration::from_millis(1);
    loop {
        while done_rx.try_recv().is_ok() {
            open -= 1;
        }
        if status.is_none() {
            status = child.try_wait().map_err(|source| RunError::Spawn {
                command: spec.command(),
                source,
            })?;
        }
        let overflowed = overflow.load(Ordering::Relaxed);
        if status.is_some() && open == 0 && !overflowed {
            break;
        }
        let stop = if overflowed {
            Some(RunError::OutputTooLarge {
                command: spec.command(),
                limit: spec.output_cap,
            })
        } else if own_group && spec.cancelled() {
            Some(RunError::Interrupted {
                command: spec.command(),
            })
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            Some(RunError::TimedOut {
                command: spec.command(),
                timeout: spec.timeout.unwrap_or_default(),
            })
        } else {
            None
        };
        if let Some(error) = stop {
            stop_child(&mut child, pid, own_group, status.is_some());
            return Err(error);
        }
        // Waits for a reader to finish, or for the next look at the child.
        if done_rx.recv_timeout(pause).is_ok() {
            open -= 1;
        }
        pause = (pause * 2).min(MAX_POLL);
    }
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Ok(Output {
        command: spec.command(),
        status: status.expect("the loop ends only after the child exited"),
        stdout: stdout.map(Capture::take).unwrap_or_default(),
        stderr: stderr.map(Capture::take).unwrap_or_default(),
    })
}

/// Kills the child (its whole group when it has one) and reaps it.
fn stop_child(child: &mut Child, pid: u32, own_group: bool, reaped: bool) {
    // After reaping, the group is signalled only because a reader is still open: something
    // of the group holds the pipe, so the group (and its id) still exists.
    if own_group {
        kill_group(pid);
    }
    if !reaped {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One captured stream, read on its own thread so a chatty program never blocks on a full pipe.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Capture {
    fn start(
        mut reader: impl Read + Send + 'static,
        cap: usize,
        overflow: &Arc<AtomicBool>,
        done: mpsc::Sender<()>,
    ) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (shared, overflow) = (Arc::clone(&buf), Arc::clone(overflow));
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut buf = shared.lock().unwrap_or_else(|e| e.into_inner());
                        if buf.len() + n > cap {
                            let room = cap - buf.len();
                            buf.extend_from_slice(&chunk[..room]);
                            overflow.store(true, Ordering::Relaxed);
                            // Dropping the reader closes the pipe: the writer gets EPIPE.
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
            let _ = done.send(());
        });
        Self { buf }
    }

    fn take(self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
