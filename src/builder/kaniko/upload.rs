//! Uploading the build context into the init container through the exec websocket.
//!
//! Two execs, so the upload never depends on the end-of-stdin signal delivering the exit
//! status (it does not with the v4 channel protocol, where closing stdin closes the socket):
//! 1. `tar -xf - -C /context` reads the streamed tar; its exit code is written (atomically,
//!    by rename) to `/tmp/upload.status`, its stderr to `/tmp/upload.err`;
//! 2. a second exec without stdin waits for that status file, reports tar's failure with its
//!    stderr, and on success touches `/tmp/done`, which ends the init container.
//!
//! A context producer that fails part-way aborts the exec and the second exec never runs: the
//! init container keeps waiting and the pod is deleted, so a truncated context is never built.

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::pod::{CONTEXT_DIR, DONE_MARKER, INIT_CONTAINER};
use crate::builder::ContextBody;

/// Bytes handed to the websocket per stdin frame.
const STDIN_CHUNK: usize = 256 * 1024;
/// Most stderr kept for an error message.
const STDERR_LIMIT: usize = 16 * 1024;
/// How long stderr may still arrive after the exec ended.
const STDERR_GRACE: Duration = Duration::from_secs(2);

/// Why the upload failed.
#[derive(Debug)]
pub(super) enum UploadError {
    /// The context producer failed (nothing was finished in the pod).
    Context(std::io::Error),
    /// The exec could not be started.
    Api(kube::Error),
    /// Extraction or the hand-over failed in the pod.
    Failed(String),
}

/// The extraction command (first exec).
pub fn extract_command() -> Vec<String> {
    vec![
        "sh".to_string(),
        "-c".to_string(),
        format!(
            "tar -xf - -C {CONTEXT_DIR} 2>/tmp/upload.err; s=$?; echo $s >/tmp/upload.tmp && mv /tmp/upload.tmp /tmp/upload.status; cat /tmp/upload.err >&2; exit $s"
        ),
    ]
}

/// The hand-over command (second exec): waits up to 5 minutes for the extraction to end.
pub fn finish_command() -> Vec<String> {
    vec![
        "sh".to_string(),
        "-c".to_string(),
        format!(
            "i=0; while [ ! -f /tmp/upload.status ]; do i=$((i+1)); if [ $i -gt 300 ]; then echo 'the context extraction did not finish' >&2; exit 1; fi; sleep 1; done; s=$(cat /tmp/upload.status); if [ \"$s\" != 0 ]; then cat /tmp/upload.err >&2; exit $s; fi; touch {DONE_MARKER}"
        ),
    ]
}

fn params(stdin: bool) -> AttachParams {
    AttachParams {
        container: Some(INIT_CONTAINER.to_string()),
        stdin,
        stdout: false,
        stderr: true,
        tty: false,
        max_stdin_buf_size: Some(STDIN_CHUNK),
        ..AttachParams::default()
    }
}

/// The process's stderr, read in the background so it never blocks the socket.
struct Stderr {
    text: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stderr {
    fn collect(process: &mut AttachedProcess) -> Self {
        let stderr = process.stderr();
        let text: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = text.clone();
        let task = tokio::spawn(async move {
            let Some(mut stderr) = stderr else { return };
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut text = sink.lock().unwrap_or_else(PoisonError::into_inner);
                let room = STDERR_LIMIT.saturating_sub(text.len());
                text.extend_from_slice(&buf[..n.min(room)]);
            }
        });
        Self { text, task }
    }

    /// What arrived. kube closes the stream only when the exec ended cleanly, so the reader
    /// gets a moment to finish and is then stopped.
    async fn text(mut self) -> String {
        if tokio::time::timeout(STDERR_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        let text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&text).trim().to_string()
    }
}

/// `None` for success, else the failure text (exit code and message).
fn failure(status: &Status) -> Option<String> {
    if status.status.as_deref() != Some("Failure") {
        return None;
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.clone());
    Some(match code {
        Some(code) => format!("exit code {code}"),
        None => status
            .message
            .clone()
            .unwrap_or_else(|| "failed".to_string()),
    })
}

fn with_stderr(what: String, stderr: &str) -> String {
    if stderr.is_empty() {
        what
    } else {
        format!("{what}: {stderr}")
    }
}

/// Streams `context` into the init container of `pod` and hands over to the executor.
/// Returns the number of tar bytes sent.
pub(super) async fn upload(
    api: &Api<Pod>,
    pod: &str,
    mut context: ContextBody,
) -> Result<u64, UploadError> {
    let mut process = api
        .exec(pod, extract_command(), &params(true))
        .await
        .map_err(UploadError::Api)?;
    let stderr = Stderr::collect(&mut process);
    let status = process.take_status();
    let Some(mut stdin) = process.stdin() else {
        return Err(UploadError::Failed("exec has no stdin".to_string()));
    };
    let mut sent = 0u64;
    while let Some(chunk) = context.next().await {
        match chunk {
            Ok(bytes) => {
                if let Err(e) = stdin.write_all(&bytes).await {
                    let text = stderr.text().await;
                    return Err(UploadError::Failed(with_stderr(
                        format!("the upload stream broke after {sent} bytes ({e})"),
                        &text,
                    )));
                }
                sent += bytes.len() as u64;
            }
            Err(e) => {
                // Never signal end of stdin: tar must not see a clean end of a truncated
                // archive. Aborting drops the socket; the hand-over never happens.
                process.abort();
                return Err(UploadError::Context(e));
            }
        }
    }
    // End of stdin: a close frame with v5, closing the socket with v4 (status then lost).
    let _ = stdin.shutdown().await;
    drop(stdin);

    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let _ = process.join().await;
    let text = stderr.text().await;
    if let Some(fail) = status.as_ref().and_then(failure) {
        return Err(UploadError::Failed(with_stderr(
            format!("tar in the init container failed ({fail})"),
            &text,
        )));
    }

    let mut process = api
        .exec(pod, finish_command(), &params(false))
        .await
        .map_err(UploadError::Api)?;
    let stderr = Stderr::collect(&mut process);
    let status = match process.take_status() {
        Some(s) => s.await,
        None => None,
    };
    let _ = process.join().await;
    let text = stderr.text().await;
    match status {
        Some(s) => match failure(&s) {
            None => Ok(sent),
            Some(fail) => Err(UploadError::Failed(with_stderr(
                format!("extracting the context failed ({fail})"),
                &text,
            ))),
        },
        None => Err(UploadError::Failed(
            "the hand-over exec ended without an exit status".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exec_status_table() {
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(failure(&ok), None);
        let code = Status {
            status: Some("Failure".into()),
            message: Some("command terminated with non-zero exit code".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("2".into()),
                    field: None,
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(failure(&code).as_deref(), Some("exit code 2"));
        let message = Status {
            status: Some("Failure".into()),
            message: Some("container not found".into()),
            ..Status::default()
        };
        assert_eq!(failure(&message).as_deref(), Some("container not found"));
    }

    #[test]
    fn commands_hand_over_through_the_status_file() {
        let extract = extract_command().join(" ");
        assert!(extract.contains("tar -xf - -C /context"), "{extract}");
        assert!(extract.contains("mv /tmp/upload.tmp /tmp/upload.status"));
        let finish = finish_command().join(" ");
        assert!(finish.contains("/tmp/upload.status") && finish.ends_with("touch /tmp/done"));
    }
}
