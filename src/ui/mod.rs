//! The one printer. Every line a user reads goes through here: live per-image status on a
//! terminal (indicatif), whole prefixed lines otherwise, per-image log files, the summary table
//! and the JSON report. It decides nothing; it shows what the dispatcher tells it.

pub mod logs;
pub mod summary;

use crate::diagnostic::{Described, Diagnostic, escape, escape_lines, split_hints};
use crate::pipeline::events::{Event, ImageEvent, Stage};
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How output is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live status lines (stderr is a terminal).
    Tty,
    /// Whole prefixed lines (CI, pipes).
    Plain,
}

/// User-chosen output settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiOptions {
    pub mode: Mode,
    /// `--debug`: stream every image's full log.
    pub debug: bool,
    /// `--silent`: only errors.
    pub silent: bool,
    /// Colors on.
    pub color: bool,
    /// `--build-sequential`: stream each image's full log live.
    pub stream_logs: bool,
    /// `--output json`: stdout is reserved for the JSON report.
    pub json: bool,
}

impl UiOptions {
    /// Detects the terminal and `NO_COLOR`.
    pub fn detect(debug: bool, silent: bool, no_color: bool, json: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let color = tty && !no_color && std::env::var_os("NO_COLOR").is_none();
        UiOptions {
            mode: if tty { Mode::Tty } else { Mode::Plain },
            debug,
            silent,
            color,
            stream_logs: false,
            json,
        }
    }
}

/// Wraps text in an ANSI color when colors are on.
pub fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Live state of one image line.
struct Line {
    bar: Option<ProgressBar>,
    stage: Stage,
    step: Option<(u32, u32)>,
    started: Instant,
}

/// The printer for one run.
pub struct Ui {
    opts: UiOptions,
    multi: Option<MultiProgress>,
    lines: IndexMap<String, Line>,
    width: usize,
}

impl Ui {
    /// A printer with the given options.
    pub fn new(opts: UiOptions) -> Self {
        let multi = (opts.mode == Mode::Tty && !opts.silent && !opts.stream_logs)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui {
            opts,
            multi,
            lines: IndexMap::new(),
            width: 0,
        }
    }

    /// The options in force.
    pub fn options(&self) -> UiOptions {
        self.opts
    }

    /// Registers the images of a run (fixes the order and width of the live lines).
    pub fn start_images(&mut self, keys: &[String]) {
        self.width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
        for key in keys {
            let bar = self.multi.as_ref().map(|m| {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            self.lines.insert(
                key.clone(),
                Line {
                    bar,
                    stage: Stage::Waiting,
                    step: None,
                    started: Instant::now(),
                },
            );
            self.refresh(key);
        }
    }

    fn prefix(&self, key: &str) -> String {
        let p = format!("[{}]", escape(key));
        paint(self.opts.color, "36", &p)
    }

    /// Prints one whole line to stderr without tearing the live lines.
    fn emit(&self, line: &str) {
        if self.opts.silent {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        }
    }

    fn refresh(&self, key: &str) {
        let Some(line) = self.lines.get(key) else {
            return;
        };
        let Some(bar) = &line.bar else { return };
        let mut msg = format!(
            "{:<w$}  {}",
            escape(key),
            line.stage.label(),
            w = self.width
        );
        if let (Stage::Building, Some((n, m))) = (line.stage, line.step) {
            msg.push_str(&format!(" step {n}/{m}"));
        }
        bar.set_message(msg);
    }

    /// Shows one event.
    pub fn event(&mut self, ev: &Event) {
        let key = ev.image.as_str();
        let plain_or_stream = self.multi.is_none();
        match &ev.kind {
            ImageEvent::Stage(stage) => {
                if let Some(line) = self.lines.get_mut(key) {
                    if line.stage == Stage::Waiting && *stage != Stage::Waiting {
                        line.started = Instant::now();
                        if let Some(bar) = &line.bar {
                            bar.reset_elapsed();
                        }
                    }
                    line.stage = *stage;
                }
                if plain_or_stream && matches!(stage, Stage::Building | Stage::Pushing) {
                    self.emit(&format!("{} {}", self.prefix(key), stage.label()));
                }
            }
            ImageEvent::Decision(decision) => {
                self.emit(&format!(
                    "{} {}",
                    self.prefix(key),
                    escape(&decision.to_string())
                ));
            }
            ImageEvent::Step { n, total, text } => {
                if let Some(line) = self.lines.get_mut(key) {
                    line.step = Some((*n, *total));
                }
                if plain_or_stream && !(self.opts.debug || self.opts.stream_logs) {
                    self.emit(&format!(
                        "{} Step {n}/{total} : {}",
                        self.prefix(key),
                        escape(text)
                    ));
                }
            }
            ImageEvent::Log(text) => {
                if self.opts.debug || self.opts.stream_logs {
                    self.emit(&format!("{} {}", self.prefix(key), escape(text)));
                }
            }
            ImageEvent::Note(text) => {
                self.emit(&format!(
                    "{} {}",
                    self.prefix(key),
                    paint(self.opts.color, "33", &escape(text))
                ));
            }
            ImageEvent::Pushed { tag, digest } => {
                let d = digest
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                self.emit(&format!(
                    "{} pushed {}{}",
                    self.prefix(key),
                    escape(tag),
                    escape(&d)
                ));
            }
            ImageEvent::TaggedInRegistry { tag, digest } => {
                self.emit(&format!(
                    "{} tagged {} in the registry ({})",
                    self.prefix(key),
                    escape(tag),
                    escape(digest)
                ));
            }
            ImageEvent::Finished { .. } => {}
        }
        self.refresh(key);
    }

    /// Ends an image's live line with a final word.
    pub fn finish_image(&mut self, key: &str, word: &str) {
        let width = self.width;
        if let Some(line) = self.lines.get_mut(key)
            && let Some(bar) = line.bar.take()
        {
            bar.finish_with_message(format!("{:<width$}  {word}", escape(key)));
        }
    }

    /// Clears all live lines (before the summary).
    pub fn finish_all(&mut self) {
        let keys: Vec<String> = self.lines.keys().cloned().collect();
        for k in keys {
            if let Some(line) = self.lines.get_mut(&k)
                && let Some(bar) = line.bar.take()
            {
                bar.finish_and_clear();
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    /// A general information line.
    pub fn info(&self, text: &str) {
        self.emit(&escape_lines(text));
    }

    /// A warning line.
    pub fn warn(&self, text: &str) {
        self.emit(&format!(
            "{} {}",
            paint(self.opts.color, "33", "warning:"),
            escape_lines(text)
        ));
    }

    /// Prints a block to stderr, even when silent (errors, failure logs).
    pub fn error_block(&self, text: &str) {
        let text = text.trim_end_matches('\n');
        match &self.multi {
            Some(m) => {
                m.suspend(|| write_stderr(&format!("{text}\n")));
            }
            None => write_stderr(&format!("{text}\n")),
        }
    }

    /// Prints the block of one failure cause (one image, or every image it affected).
    pub fn failure(&self, block: &FailureBlock) {
        self.error_block(&render_failure(self.opts.color, block));
    }

    /// Prints an error that belongs to no image, with `extra_hints` after its own.
    pub fn diagnostic(&self, error: &dyn Diagnostic, extra_hints: &[String]) {
        let mut d = Described::of(error);
        d.hints.extend(extra_hints.iter().cloned());
        self.error_block(&render_described(self.opts.color, None, &d));
    }
}

/// Writes `text` to stderr as is (the one place that does, besides the live lines).
pub fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Writes `text` to stdout as is (reports, rendered manifests, the config).
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints an error with its hints to stderr: `error: ...` then `hint: ...` lines.
pub fn print_error(color: bool, message: &str, hints: &[String]) {
    let (message, mut all) = split_hints(message);
    all.extend(hints.iter().cloned());
    let d = Described {
        message,
        causes: Vec::new(),
        hints: all,
        exit: crate::exit::ExitCode::Failure,
        last_lines: Vec::new(),
        environment: false,
    };
    write_stderr(&render_described(color, None, &d));
}

/// Prints any [`Diagnostic`] to stderr and returns its exit code: the one error path of the
/// commands.
pub fn report(color: bool, error: &dyn Diagnostic) -> crate::exit::ExitCode {
    let d = Described::of(error);
    write_stderr(&render_described(color, None, &d));
    d.exit
}

/// A failure cause and the images it affected, as the dispatcher found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureBlock {
    /// The images that failed with this cause (one, unless the cause is the environment).
    pub images: Vec<String>,
    pub described: Described,
    /// The last log lines (single-image failures only).
    pub tail: Vec<String>,
    /// The images' log files.
    pub log_files: Vec<std::path::PathBuf>,
}

/// `error: [key] message`, `caused by:` lines, the log tail, `full log:`, `hint:` lines.
/// A cause several images share is said once: `error: message` and the images it affected.
pub fn render_failure(color: bool, block: &FailureBlock) -> String {
    let subject = match block.images.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    };
    let mut d = block.described.clone();
    d.last_lines = block.tail.clone();
    let mut out = String::new();
    let head = render_described(
        color,
        subject,
        &Described {
            hints: Vec::new(),
            ..d.clone()
        },
    );
    out.push_str(&head);
    if subject.is_none() {
        let images: Vec<_> = block.images.iter().map(|i| escape(i)).collect();
        out.push_str(&format!("  images: {}\n", images.join(", ")));
        if let Some(dir) = block.log_files.first().and_then(|p| p.parent()) {
            out.push_str(&format!("  logs: {}/\n", dir.display()));
        }
    } else if let Some(p) = block.log_files.first() {
        out.push_str(&format!("  full log: {}\n", p.display()));
    }
    for h in &d.hints {
        out.push_str(&format!(
            "{} {}\n",
            paint(color, "36", "hint:"),
            escape_lines(h)
        ));
    }
    out
}

/// The one renderer of a described failure: `error:` (with `[subject]`), `caused by:`, the
/// last log lines, `hint:`.
pub fn render_described(color: bool, subject: Option<&str>, d: &Described) -> String {
    let label = match subject {
        Some(s) => format!("error: [{}]", escape(s)),
        None => "error:".to_string(),
    };
    let mut out = format!(
        "{} {}\n",
        paint(color, "31", &label),
        escape_lines(&d.message)
    );
    for c in &d.causes {
        out.push_str(&format!(
            "{} {}\n",
            paint(color, "33", "caused by:"),
            escape_lines(c)
        ));
    }
    if !d.last_lines.is_empty() {
        out.push_str(&format!(
            "  last {} lines of the log:\n",
            d.last_lines.len()
        ));
        for l in &d.last_lines {
            out.push_str(&format!("  | {}\n", escape(l)));
        }
    }
    for h in &d.hints {
        out.push_str(&format!(
            "{} {}\n",
            paint(color, "36", "hint:"),
            escape_lines(h)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_colour_without_a_terminal_or_with_no_color() {
        // Test processes have no terminal on stderr.
        assert!(!UiOptions::detect(false, false, false, false).color);
        assert_eq!(paint(false, "31", "x"), "x");
    }
}
