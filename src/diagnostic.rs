//! The one way a failure is described to a user: what failed (the message), why (the chain of
//! causes), what to do (hints) and which documented exit code it ends the run with. Every
//! error type of the crate implements [`Diagnostic`]; `ui::render_diagnostic` is the one
//! renderer ("error:", "caused by:", "hint:").
//!
//! [`escape`] is the one rule for untrusted text on a terminal; it lives here, below `ui`, so
//! the modules that build messages (config errors, tag checks) need not import the printer.
//!
//! Some older error types still carry their hint inside their `Display` text after a
//! `\nhint: ` line; [`split_hints`] separates them so the renderer prints every hint the same
//! way.

use crate::exit::ExitCode;

/// A failure a user can act on.
pub trait Diagnostic: std::error::Error {
    /// `hint:` lines (the next step), beyond those inside the message text.
    fn hints(&self) -> Vec<String> {
        Vec::new()
    }

    /// The documented exit code this failure ends the run with.
    fn exit_code(&self) -> ExitCode {
        ExitCode::Failure
    }

    /// The last output lines of the failed step (builds), shown below the message.
    fn last_lines(&self) -> &[String] {
        &[]
    }

    /// Whether the cause lies in the environment (daemon, cluster, registry credentials)
    /// rather than in one image, so several images failing with it are reported once.
    fn is_environment(&self) -> bool {
        false
    }
}

/// A diagnostic flattened into text: the message (without embedded hints), the causes not
/// already said by the message, and all hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
    pub exit: ExitCode,
    pub last_lines: Vec<String>,
    pub environment: bool,
}

impl Described {
    /// Describes `d`.
    pub fn of(d: &(impl Diagnostic + ?Sized)) -> Self {
        let (message, embedded) = split_hints(&d.to_string());
        // The error's own hints first (they know the order that reads best), then the ones
        // its text carries.
        let mut hints: Vec<String> = Vec::new();
        for h in d.hints().into_iter().chain(embedded) {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
        let mut causes = Vec::new();
        let mut source = d.source();
        while let Some(cause) = source {
            let (text, more) = split_hints(&cause.to_string());
            if !text.is_empty()
                && !message.contains(&text)
                && !causes.iter().any(|c: &String| c.contains(&text))
            {
                causes.push(text);
            }
            for h in more {
                if !hints.contains(&h) {
                    hints.push(h);
                }
            }
            source = cause.source();
        }
        Described {
            message,
            causes,
            hints,
            exit: d.exit_code(),
            last_lines: d.last_lines().to_vec(),
            environment: d.is_environment(),
        }
    }
}

/// Splits `hint: ` lines off a message: (the other lines joined, the hints in order).
pub fn split_hints(text: &str) -> (String, Vec<String>) {
    let mut message = Vec::new();
    let mut hints = Vec::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("hint: ") {
            Some(h) => hints.push(h.to_string()),
            None => message.push(line),
        }
    }
    (message.join("\n"), hints)
}

/// The exit code that tells more: interrupted > unreachable > auth > failure > success.
pub fn worse(a: ExitCode, b: ExitCode) -> ExitCode {
    let rank = |c: ExitCode| match c {
        ExitCode::Success => 0,
        ExitCode::Failure | ExitCode::Usage | ExitCode::Config => 1,
        ExitCode::Auth => 2,
        ExitCode::Unreachable => 3,
        ExitCode::Interrupted => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Implements [`Diagnostic`] for types whose inherent `hint()` / `exit_code()` already say it.
macro_rules! diagnostic_from_inherent {
    ($ty:ty, hint, exit) => {
        impl $crate::diagnostic::Diagnostic for $ty {
            fn hints(&self) -> Vec<String> {
                <$ty>::hint(self).into_iter().collect()
            }
            fn exit_code(&self) -> $crate::exit::ExitCode {
                <$ty>::exit_code(self)
            }
        }
    };
    ($ty:ty, hint) => {
        impl $crate::diagnostic::Diagnostic for $ty {
            fn hints(&self) -> Vec<String> {
                <$ty>::hint(self).into_iter().collect()
            }
        }
    };
}
pub(crate) use diagnostic_from_inherent;

/// Makes untrusted text (file names, image keys, daemon and registry output, error messages)
/// safe for a terminal: control characters (C0 except tab, DEL, C1) and the bidirectional
/// overrides are written as visible escapes (`\n`, `\r`, `\e`, `\x7f`, `\u{202e}`), so they
/// can neither split a line nor inject colours or move the cursor. The one escaping function:
/// every print point (`ui`) applies it to what it did not write itself, before painting;
/// messages that quote a single untrusted value may apply it themselves.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`escape`] for a block of several lines: each line escaped, the line breaks kept.
pub fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed: {inner}\nhint: try again")]
    struct Outer {
        #[source]
        inner: Inner,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("inner broke")]
    struct Inner {
        #[source]
        io: std::io::Error,
    }

    impl Diagnostic for Outer {
        fn hints(&self) -> Vec<String> {
            vec!["try again".into(), "or not".into()]
        }
        fn exit_code(&self) -> ExitCode {
            ExitCode::Auth
        }
    }

    #[test]
    fn causes_not_in_the_message_and_hints_once() {
        let e = Outer {
            inner: Inner {
                io: std::io::Error::other("disk on fire"),
            },
        };
        let d = Described::of(&e);
        assert_eq!(d.message, "outer failed: inner broke");
        assert_eq!(d.causes, ["disk on fire"]);
        assert_eq!(d.hints, ["try again", "or not"]);
        assert_eq!(split_hints("a\nhint: b\nc").0, "a\nc");
        assert_eq!(d.exit, ExitCode::Auth);
    }

    #[test]
    fn worst_exit_code_wins() {
        assert_eq!(worse(ExitCode::Success, ExitCode::Auth), ExitCode::Auth);
        assert_eq!(
            worse(ExitCode::Unreachable, ExitCode::Auth),
            ExitCode::Unreachable
        );
        assert_eq!(
            worse(ExitCode::Failure, ExitCode::Interrupted),
            ExitCode::Interrupted
        );
        assert_eq!(worse(ExitCode::Config, ExitCode::Failure), ExitCode::Config);
    }

    #[test]
    fn escape_makes_control_characters_visible() {
        let cases = [
            ("plain name.txt", "plain name.txt"),
            ("tab\there", "tab\there"),
            ("new\nline", "new\\nline"),
            ("\x1b[31mred\x1b[0m", "\\e[31mred\\e[0m"),
            ("cr\rbell\x07del\x7f", "cr\\rbell\\x07del\\x7f"),
            ("c1\u{9b}31m", "c1\\x9b31m"),
            ("bidi\u{202e}txt.exe", "bidi\\u{202e}txt.exe"),
            ("ünïcödé ok", "ünïcödé ok"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape(raw), want, "{raw:?}");
        }
        assert!(matches!(escape("clean"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(escape_lines("a\x1b\nb"), "a\\e\nb");
    }
}
