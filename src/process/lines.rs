//! Reassembling chunks of program output into whole lines (pure).
//!
//! Docker sends build output in arbitrary chunks (`{"stream":"Step 1/3 : FROM busybox\n"}`,
//! partial lines, several lines at once), processes write whatever their buffers hold; both
//! come out of [`LineSplitter`] as whole lines.

/// The longest line kept whole (1 MiB); longer ones are cut.
pub const MAX_LINE: usize = 1024 * 1024;

/// Reassembles chunks of output into whole lines.
///
/// Lines end at `\n`; a trailing `\r` is dropped and text before an inner `\r` is discarded
/// (a terminal would have overwritten it). Invalid UTF-8 is replaced, never an error.
/// A line longer than [`MAX_LINE`] bytes is cut there: the first part is returned as a line
/// of its own, so output without newlines cannot grow memory without bound.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk and returns the lines it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.extend(&rest[..pos], &mut lines);
            lines.push(finish_line(&self.pending));
            self.pending.clear();
            rest = &rest[pos + 1..];
        }
        self.extend(rest, &mut lines);
        lines
    }

    /// Adds bytes of an unfinished line, cutting it at [`MAX_LINE`].
    fn extend(&mut self, mut bytes: &[u8], lines: &mut Vec<String>) {
        while self.pending.len() + bytes.len() > MAX_LINE {
            let room = MAX_LINE - self.pending.len();
            self.pending.extend_from_slice(&bytes[..room]);
            lines.push(finish_line(&self.pending));
            self.pending.clear();
            bytes = &bytes[room..];
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Returns the unterminated last line, if any (call at end of output).
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = finish_line(&self.pending);
        self.pending.clear();
        Some(line)
    }
}

fn finish_line(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let visible = match raw.iter().rposition(|&b| b == b'\r') {
        Some(pos) => &raw[pos + 1..],
        None => raw,
    };
    String::from_utf8_lossy(visible).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| s.push(c)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn splitter_table() {
        let cases: &[(&[&[u8]], &[&str])] = &[
            (&[b"a\nb\n"], &["a", "b"]),
            (&[b"par", b"tial\n"], &["partial"]),
            (&[b"no newline"], &["no newline"]),
            (&[b"crlf\r\n"], &["crlf"]),
            (&[b"10%\r50%\r100%\n"], &["100%"]),
            (&[b"\n"], &[""]),
            (&[b"a", b"", b"\nb"], &["a", "b"]),
            (&[b"bad \xff utf8\n"], &["bad \u{fffd} utf8"]),
            (&[], &[]),
        ];
        for (chunks, want) in cases {
            assert_eq!(split_all(chunks), *want, "chunks {chunks:?}");
        }
    }

    #[test]
    fn long_lines_are_cut_at_the_cap() {
        let mut s = LineSplitter::new();
        let big = vec![b'x'; MAX_LINE + 10];
        let lines = s.push(&big[..MAX_LINE - 1]);
        assert!(lines.is_empty());
        let lines = s.push(&big[MAX_LINE - 1..]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(s.finish().map(|l| l.len()), Some(10));
        let mut s = LineSplitter::new();
        let lines = s.push(&[b'y'; 3 * MAX_LINE + 1]);
        assert_eq!(lines.len(), 3);
        assert_eq!(s.push(b"\n"), vec!["y".to_owned()]);
    }
}
