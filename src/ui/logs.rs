//! Per-image log files under `.devspace/logs/<image>.log`, plus the last lines kept in memory
//! so a failure can show them without re-reading the file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How many lines of a failed build are shown on the terminal.
pub const TAIL_LINES: usize = 20;

/// One image's log file and its tail. The file is created (truncated) only when the image is
/// built or pushed, so a run that skips the image keeps the log of its last build.
pub struct ImageLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    opened: bool,
    pending: Vec<String>,
    tail: VecDeque<String>,
}

impl ImageLog {
    /// A log for `<dir>/<key>.log`; nothing is written until [`ImageLog::open`].
    pub fn create(dir: &Path, key: &str) -> Self {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        ImageLog {
            path: dir.join(format!("{safe}.log")),
            file: None,
            opened: false,
            pending: Vec::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }

    /// Creates the file (a fresh one replacing the old log, never written through a link, see
    /// [`crate::safe_fs`]) and writes the lines seen so far. A log that cannot be written is
    /// not fatal: the build still runs, the tail is still kept.
    pub fn open(&mut self) {
        if self.opened {
            return;
        }
        self.opened = true;
        // `<root>/.devspace/logs`: both directories checked for links.
        self.file = self
            .path
            .parent()
            .map_or(Ok(()), |dir| crate::safe_fs::create_dir(dir, 2))
            .and_then(|_| crate::safe_fs::replace(&self.path))
            .map(BufWriter::new)
            .ok();
        if let Some(f) = &mut self.file {
            for l in self.pending.drain(..) {
                let _ = writeln!(f, "{l}");
            }
        }
    }

    /// Appends one line.
    pub fn line(&mut self, text: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{text}");
        } else if !self.opened {
            self.pending.push(text.to_string());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_string());
    }

    /// The last lines written.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// Where the log lives (if it could be written).
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|_| self.path.as_path())
    }

    /// Flushes the file.
    pub fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_that_is_a_symlink_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious").unwrap();
        let logs = dir.path().join(".devspace/logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::os::unix::fs::symlink(&victim, logs.join("a.log")).unwrap();
        let mut log = ImageLog::create(&logs, "a");
        log.open();
        log.line("Step 1/2 : FROM busybox");
        log.flush();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(logs.join("a.log")).unwrap(),
            "Step 1/2 : FROM busybox\n"
        );
        assert_eq!(log.path(), Some(logs.join("a.log").as_path()));
    }
}
