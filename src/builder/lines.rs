//! Turning build output into whole lines and structured facts (pure).
//!
//! Docker sends build output in arbitrary chunks (`{"stream":"Step 1/3 : FROM busybox\n"}`,
//! partial lines, several lines at once), processes write whatever their buffers hold. This
//! module recognises the classic builder's step lines ([`parse_step`]) and keeps the last lines
//! for error reports ([`LogTail`]); the reassembly into whole lines is
//! [`crate::process::lines::LineSplitter`], shared with every streamed process.

use std::collections::VecDeque;

/// A classic-builder step line: `Step 2/5 : RUN make` → `(2, 5, "RUN make")`.
pub fn parse_step(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (counts, text) = rest.split_once(" : ")?;
    let (n, m) = counts.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?, text))
}

/// A BuildKit plain-progress step line: `#5 [2/3] RUN make` or `#7 [builder 2/5] RUN make`
/// → `(2, 3, "RUN make")`. Internal vertices (`[internal] load ...`) have no counts.
pub fn parse_buildkit_step(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix('#')?;
    let (vertex, rest) = rest.split_once(' ')?;
    if vertex.is_empty() || !vertex.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let rest = rest.strip_prefix('[')?;
    let (inside, text) = rest.split_once("] ")?;
    let counts = inside.rsplit(' ').next()?;
    let (n, m) = counts.split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?, text))
}

/// The container a classic-builder step runs in: ` ---> Running in 3f2a9c1d` → `3f2a9c1d`.
pub fn parse_running_container(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> Running in ")?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// The classic builder removed a step container: `Removing intermediate container 3f2a9c1d`.
pub fn parse_removed_container(line: &str) -> Option<&str> {
    let id = line
        .trim()
        .strip_prefix("Removing intermediate container ")?
        .trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// The last `capacity` lines seen.
#[derive(Debug, Clone)]
pub struct LogTail {
    lines: VecDeque<String>,
    capacity: usize,
}

impl LogTail {
    /// Keeps at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records a line, dropping the oldest when full.
    pub fn push(&mut self, line: &str) {
        if self.capacity == 0 {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
    }

    /// The kept lines, oldest first.
    pub fn to_vec(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_table() {
        let cases = [
            ("Step 1/3 : FROM busybox", Some((1, 3, "FROM busybox"))),
            ("Step 12/40 : RUN a : b", Some((12, 40, "RUN a : b"))),
            ("Step x/3 : FROM busybox", None),
            ("Step 1/3: FROM busybox", None),
            (" ---> Running in abc", None),
            ("#5 [2/3] RUN make", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_step(line), want, "{line}");
        }
    }

    #[test]
    fn buildkit_step_table() {
        let cases = [
            ("#5 [2/3] RUN make", Some((2, 3, "RUN make"))),
            (
                "#7 [builder 2/5] RUN go build",
                Some((2, 5, "RUN go build")),
            ),
            (
                "#4 [1/2] FROM docker.io/library/busybox",
                Some((1, 2, "FROM docker.io/library/busybox")),
            ),
            ("#1 [internal] load build definition from Dockerfile", None),
            ("#5 0.749 [2/3] not a step", None),
            ("#5 DONE 1.1s", None),
            ("Step 1/3 : FROM busybox", None),
            ("# [1/2] FROM x", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_buildkit_step(line), want, "{line}");
        }
    }

    #[test]
    fn container_lines() {
        assert_eq!(
            parse_running_container(" ---> Running in 3f2a9c1d0b7e"),
            Some("3f2a9c1d0b7e")
        );
        assert_eq!(parse_running_container(" ---> 3f2a9c1d0b7e"), None);
        assert_eq!(parse_running_container(" ---> Running in ../x"), None);
        assert_eq!(
            parse_removed_container("Removing intermediate container 3f2a9c1d0b7e"),
            Some("3f2a9c1d0b7e")
        );
        assert_eq!(
            parse_removed_container("Removing intermediate container "),
            None
        );
    }

    #[test]
    fn tail_keeps_last_lines() {
        let mut t = LogTail::new(2);
        for l in ["a", "b", "c"] {
            t.push(l);
        }
        assert_eq!(t.to_vec(), ["b", "c"]);
        let mut z = LogTail::new(0);
        z.push("a");
        assert!(z.to_vec().is_empty());
    }
}
