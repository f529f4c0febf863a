//! Reading the daemon's JSON message streams (pure).
//!
//! Owns what a build stream's messages mean — `stream` text split into whole lines, step
//! lines, `status` lines, `aux.ID`, the step containers the classic builder starts and removes
//! — and what a push stream's messages mean: the manifest digest and whether an error is an
//! authentication failure. No I/O here; the adapters feed messages in and emit the events.

use std::collections::BTreeSet;

use bollard::models::BuildInfo;

use crate::builder::BuildEvent;
use crate::builder::lines::{
    LogTail, parse_buildkit_step, parse_removed_container, parse_running_container, parse_step,
};
use crate::process::lines::LineSplitter;

/// Running state of one build's output.
#[derive(Debug)]
pub struct BuildStreamState {
    splitter: LineSplitter,
    tail: LogTail,
    live_containers: BTreeSet<String>,
    image_id: Option<String>,
}

impl BuildStreamState {
    /// A fresh state keeping `tail_lines` lines for error reports.
    pub fn new(tail_lines: usize) -> Self {
        Self {
            splitter: LineSplitter::new(),
            tail: LogTail::new(tail_lines),
            live_containers: BTreeSet::new(),
            image_id: None,
        }
    }

    /// Interprets one message; returns the events it produced.
    pub fn on_message(&mut self, info: &BuildInfo) -> Vec<BuildEvent> {
        let mut events = Vec::new();
        if let Some(text) = &info.stream {
            for line in self.splitter.push(text.as_bytes()) {
                self.on_line(line, &mut events);
            }
        }
        if let Some(status) = info.status.as_deref().filter(|s| !s.is_empty()) {
            // Per-chunk download progress would flood the log; the status changes are enough.
            let is_progress = info
                .progress_detail
                .as_ref()
                .is_some_and(|p| p.current.is_some());
            if !is_progress {
                let line = match info.id.as_deref().filter(|s| !s.is_empty()) {
                    Some(id) => format!("{id}: {status}"),
                    None => status.to_string(),
                };
                self.on_line(line, &mut events);
            }
        }
        if let Some(id) = info.aux.as_ref().and_then(|aux| aux.id.as_ref()) {
            self.image_id = Some(id.clone());
        }
        events
    }

    /// Output of a line-oriented source (the docker CLI).
    pub fn on_text_line(&mut self, line: String) -> Vec<BuildEvent> {
        let mut events = Vec::new();
        self.on_line(line, &mut events);
        events
    }

    /// Flushes an unterminated last line.
    pub fn finish(&mut self) -> Vec<BuildEvent> {
        let mut events = Vec::new();
        if let Some(line) = self.splitter.finish() {
            self.on_line(line, &mut events);
        }
        events
    }

    fn on_line(&mut self, line: String, events: &mut Vec<BuildEvent>) {
        self.tail.push(&line);
        if let Some(id) = parse_running_container(&line) {
            self.live_containers.insert(id.to_string());
        } else if let Some(id) = parse_removed_container(&line) {
            self.live_containers.remove(id);
        }
        let step = parse_step(&line)
            .or_else(|| parse_buildkit_step(&line))
            .map(|(n, m, text)| BuildEvent::Step {
                n,
                m,
                text: text.to_string(),
            });
        events.push(BuildEvent::Log(line));
        events.extend(step);
    }

    /// The image ID from `aux.ID`, if the daemon sent one.
    pub fn image_id(&self) -> Option<&str> {
        self.image_id.as_deref()
    }

    /// The last lines seen, oldest first.
    pub fn last_lines(&self) -> Vec<String> {
        self.tail.to_vec()
    }

    /// Step containers started and not (yet) reported removed.
    pub fn live_containers(&self) -> Vec<String> {
        self.live_containers.iter().cloned().collect()
    }
}

/// The manifest digest in a push status line (`v1: digest: sha256:ab… size: 527`).
pub fn parse_push_digest(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    crate::registry::reference::is_digest(digest).then(|| digest.to_string())
}

/// Whether a registry error message means the credentials were missing, wrong, or not
/// allowed to push (HTTP 401/403 as the daemon words them).
pub fn is_auth_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
        "forbidden",
        "incorrect username or password",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ImageId, ProgressDetail};

    fn stream(text: &str) -> BuildInfo {
        BuildInfo {
            stream: Some(text.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn build_stream_lines_steps_and_containers() {
        let mut s = BuildStreamState::new(3);
        let mut events = Vec::new();
        for msg in [
            stream("Step 1/2 : FROM busybox\n"),
            stream(" ---> 8f227a6a91cc\nStep 2/2 : RUN "),
            stream("echo hi\n"),
            stream(" ---> Running in 0123abcd\n"),
            stream("hi\n"),
            BuildInfo {
                aux: Some(ImageId {
                    id: Some("sha256:feed".into()),
                }),
                ..Default::default()
            },
        ] {
            events.extend(s.on_message(&msg));
        }
        assert_eq!(s.live_containers(), ["0123abcd"]);
        events.extend(s.on_message(&stream("Removing intermediate container 0123abcd\n")));
        events.extend(s.on_message(&stream("tail without newline")));
        events.extend(s.finish());
        assert_eq!(
            events,
            vec![
                BuildEvent::Log("Step 1/2 : FROM busybox".into()),
                BuildEvent::Step {
                    n: 1,
                    m: 2,
                    text: "FROM busybox".into()
                },
                BuildEvent::Log(" ---> 8f227a6a91cc".into()),
                BuildEvent::Log("Step 2/2 : RUN echo hi".into()),
                BuildEvent::Step {
                    n: 2,
                    m: 2,
                    text: "RUN echo hi".into()
                },
                BuildEvent::Log(" ---> Running in 0123abcd".into()),
                BuildEvent::Log("hi".into()),
                BuildEvent::Log("Removing intermediate container 0123abcd".into()),
                BuildEvent::Log("tail without newline".into()),
            ]
        );
        assert!(s.live_containers().is_empty());
        assert_eq!(s.image_id(), Some("sha256:feed"));
        assert_eq!(
            s.last_lines(),
            [
                "hi",
                "Removing intermediate container 0123abcd",
                "tail without newline"
            ]
        );
    }

    #[test]
    fn build_stream_status_lines_skip_progress() {
        let mut s = BuildStreamState::new(10);
        let pulling = BuildInfo {
            status: Some("Pulling fs layer".into()),
            id: Some("abc".into()),
            ..Default::default()
        };
        let progress = BuildInfo {
            status: Some("Downloading".into()),
            id: Some("abc".into()),
            progress_detail: Some(ProgressDetail {
                current: Some(10),
                total: Some(100),
            }),
            ..Default::default()
        };
        assert_eq!(
            s.on_message(&pulling),
            [BuildEvent::Log("abc: Pulling fs layer".into())]
        );
        assert!(s.on_message(&progress).is_empty());
    }

    #[test]
    fn push_digest_table() {
        let d = format!("sha256:{}", "a".repeat(64));
        let cases = [
            (format!("v1: digest: {d} size: 527"), Some(d.clone())),
            (format!("latest: digest: {d}"), Some(d.clone())),
            ("Pushed".to_string(), None),
            ("x: digest: sha256:zz size: 1".to_string(), None),
            ("x: digest: ".to_string(), None),
        ];
        for (status, want) in cases {
            assert_eq!(parse_push_digest(&status), want, "{status}");
        }
    }

    #[test]
    fn auth_error_table() {
        let cases = [
            ("unauthorized: authentication required", true),
            ("no basic auth credentials", true),
            ("denied: requested access to the resource is denied", true),
            (
                "errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required\n",
                true,
            ),
            ("received unexpected HTTP status: 403 Forbidden", true),
            ("Get \"https://x/v2/\": dial tcp: connection refused", false),
            ("An image does not exist locally with the tag: x", false),
            ("blob upload unknown", false),
        ];
        for (msg, want) in cases {
            assert_eq!(is_auth_error(msg), want, "{msg}");
        }
    }
}
