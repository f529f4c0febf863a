//! Per-image log files under `.devspace/logs/<image>.log`, plus the last lines kept in memory
//! so a failure can show them without re-reading the file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How many lines of a failed build are shown on the terminal.
pub const TAIL_LINES: usize = 20;

/// One image's log file and its tail.
pub struct ImageLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    tail: VecDeque<String>,
}

impl ImageLog {
    /// Creates (truncates) `<dir>/<key>.log`. A log that cannot be written is not fatal: the
    /// build still runs, the tail is still kept.
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
        let path = dir.join(format!("{safe}.log"));
        let file = std::fs::create_dir_all(dir)
            .and_then(|_| File::create(&path))
            .map(BufWriter::new)
            .ok();
        ImageLog {
            path,
            file,
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }

    /// Appends one line.
    pub fn line(&mut self, text: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{text}");
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
