//! The exec websocket (`/api/v1/namespaces/<ns>/pods/<pod>/exec`), speaking the
//! `v5.channel.k8s.io` / `v4.channel.k8s.io` channel protocols: every binary frame starts with
//! a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error/status (a `Status` JSON), 4 resize,
//! and (v5 only) 255 "close": `[255, 0]` from the client means end of stdin.
//!
//! A test decides what a command does with an exec handler ([`ExecReply`]: how much stdin to
//! read, what to print, the exit code); everything received is kept in an [`ExecRecord`].
//! With v4 the client can only say "end of stdin" by closing the websocket, after which no
//! status can be sent back — exactly the real behaviour the kaniko upload has to survive.

use super::State;
use super::pods;
use super::store::ApiError;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use std::sync::Arc;

/// What the client asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (the pod's first container when the client named none).
    pub container: String,
    /// argv.
    pub command: Vec<String>,
    /// Whether stdin/stdout/stderr/tty were requested.
    pub stdin: bool,
    /// Whether stdout was requested.
    pub stdout: bool,
    /// Whether stderr was requested.
    pub stderr: bool,
    /// Whether a TTY was requested.
    pub tty: bool,
    /// Negotiated subprotocol (`v5.channel.k8s.io` or `v4.channel.k8s.io`).
    pub protocol: String,
}

/// How much of stdin the command reads before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    /// Until the client signals end of stdin (v5 close frame, or the websocket closing).
    UntilEof,
    /// Exactly this many bytes (like `head -c N`), then answer while the socket is open.
    Bytes(usize),
    /// Nothing: answer at once.
    Ignore,
}

/// What the command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecReply {
    /// How stdin is consumed.
    pub stdin: StdinMode,
    /// Written to stdout after stdin was consumed.
    pub stdout: Vec<u8>,
    /// Written to stderr after stdin was consumed.
    pub stderr: Vec<u8>,
    /// Exit code (non-zero → a `NonZeroExitCode` failure status).
    pub exit_code: i32,
}

impl Default for ExecReply {
    fn default() -> Self {
        Self {
            stdin: StdinMode::UntilEof,
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code: 0,
        }
    }
}

impl ExecReply {
    /// Reads stdin until its end, prints nothing, exits 0.
    pub fn ok() -> Self {
        Self::default()
    }

    /// Sets stdout.
    pub fn with_stdout(mut self, out: impl Into<Vec<u8>>) -> Self {
        self.stdout = out.into();
        self
    }

    /// Sets stderr.
    pub fn with_stderr(mut self, err: impl Into<Vec<u8>>) -> Self {
        self.stderr = err.into();
        self
    }

    /// Sets the exit code.
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = code;
        self
    }

    /// Sets how stdin is consumed.
    pub fn with_stdin(mut self, mode: StdinMode) -> Self {
        self.stdin = mode;
        self
    }
}

/// Decides what an exec does.
pub type ExecHandler = Arc<dyn Fn(&ExecRequest) -> ExecReply + Send + Sync>;

/// One exec, as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    /// The request.
    pub request: ExecRequest,
    /// Every byte received on stdin.
    pub stdin: Vec<u8>,
    /// Whether the client signalled end of stdin (v5 close frame or websocket close).
    pub stdin_closed: bool,
    /// The exit code sent (or that would have been sent when the socket was already closed).
    pub exit_code: i32,
    /// Whether the status frame could be sent (false with v4 after the client closed).
    pub status_sent: bool,
}

/// Protocols in the fake's order of preference.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Validates the exec request and upgrades the connection.
pub(super) fn upgrade(
    state: Arc<State>,
    ws: WebSocketUpgrade,
    namespace: String,
    pod: String,
    query: &[(String, String)],
) -> Result<Response, ApiError> {
    let pods_rt = super::discovery::find("", "v1", "pods").expect("served");
    let object = state.store().get(pods_rt, &namespace, &pod)?;
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let flag = |k: &str| matches!(get(k), Some("true" | "1"));
    let container = pods::pick_container(&object, get("container"))?;
    match pods::container_state(&object, &container) {
        Some((state, _)) if state == "running" => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: container {container} not found in pod {pod} or not running"
            )));
        }
    }
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let preferred = state.exec_protocols.clone();
    let ws = ws.protocols(preferred);
    let Some(protocol) = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .map(String::from)
    else {
        return Err(ApiError::bad_request(
            "unable to upgrade connection: no supported channel protocol (v4/v5.channel.k8s.io)",
        ));
    };
    let request = ExecRequest {
        namespace,
        pod,
        container,
        command,
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
        tty: flag("tty"),
        protocol,
    };
    let reply = (state.exec_handler())(&request);
    Ok(ws
        .on_upgrade(move |socket| run(state, socket, request, reply))
        .into_response())
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn run(state: Arc<State>, socket: WebSocket, request: ExecRequest, reply: ExecReply) {
    let (mut tx, mut rx) = socket.split();
    let mut record = ExecRecord {
        request: request.clone(),
        stdin: Vec::new(),
        stdin_closed: false,
        exit_code: reply.exit_code,
        status_sent: false,
    };
    // The real server announces each channel with a one-byte frame.
    let mut open = true;
    for channel in [1u8, 2, 3] {
        if tx.send(frame(channel, &[])).await.is_err() {
            open = false;
        }
    }
    let wanted = match (request.stdin, reply.stdin) {
        (false, _) | (_, StdinMode::Ignore) => Some(0),
        (true, StdinMode::Bytes(n)) => Some(n),
        (true, StdinMode::UntilEof) => None,
    };
    while open && wanted.is_none_or(|n| record.stdin.len() < n) {
        match rx.next().await {
            Some(Ok(Message::Binary(data))) => match data.first() {
                Some(0) => record.stdin.extend_from_slice(&data[1..]),
                Some(255) if data.get(1) == Some(&0) => {
                    record.stdin_closed = true;
                    if wanted.is_none() {
                        break;
                    }
                }
                _ => {}
            },
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                record.stdin_closed = true;
                open = false;
            }
            Some(Ok(_)) => {}
        }
        if record.stdin_closed && wanted.is_some() {
            // Stdin ended before the command read what it wanted (`head -c` would stop too).
            break;
        }
    }
    if open {
        let mut ok = true;
        if request.stdout && !reply.stdout.is_empty() {
            ok &= tx.send(frame(1, &reply.stdout)).await.is_ok();
        }
        if request.stderr && !reply.stderr.is_empty() {
            ok &= tx.send(frame(2, &reply.stderr)).await.is_ok();
        }
        let status = if reply.exit_code == 0 {
            json!({"metadata": {}, "status": "Success"})
        } else {
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command {:?}, exit code {}",
                    request.command, reply.exit_code
                ),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": reply.exit_code.to_string()}]}
            })
        };
        ok &= tx
            .send(frame(3, status.to_string().as_bytes()))
            .await
            .is_ok();
        record.status_sent = ok;
        let _ = tx.send(Message::Close(None)).await;
        // Drain until the client acknowledges the close, so it reads everything first.
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Binary(data) = msg
                && data.first() == Some(&0)
            {
                record.stdin.extend_from_slice(&data[1..]);
            }
        }
    }
    state.finish_exec(record);
}
