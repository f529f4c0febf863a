//! Config errors a user can act on: each names the file, the line and column, the key path,
//! and says what to do. Rendering (snippet with a caret) lives here so every caller shows the
//! same text.

use super::yaml::Pos;
use crate::exit::ExitCode;
use std::fmt;
use std::path::{Path, PathBuf};

/// The most characters of a source line an error snippet shows.
pub const SNIPPET_WIDTH: usize = 120;

/// A place in a config file, with the offending line for a snippet.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub file: PathBuf,
    pub pos: Pos,
    /// The source line at `pos` (without its newline), if known.
    pub line_text: Option<String>,
    /// The profile that introduced the node, if it did not come from the base config.
    pub profile: Option<String>,
}

impl Location {
    /// Builds a location, extracting the source line from `src` (boxed: errors stay small).
    pub fn new(file: &Path, src: &str, pos: Pos, profile: Option<&str>) -> Box<Self> {
        let line_text = (pos.line > 0)
            .then(|| src.lines().nth(pos.line - 1).map(str::to_string))
            .flatten();
        Box::new(Location {
            file: file.to_path_buf(),
            pos,
            line_text,
            profile: profile.map(str::to_string),
        })
    }

    /// The `  |` snippet with a caret under the column (empty without a source line). A long
    /// line is cut to [`SNIPPET_WIDTH`] characters around the column (`…` marks the cuts).
    fn snippet(&self) -> String {
        let Some(text) = &self.line_text else {
            return String::new();
        };
        let num = self.pos.line.to_string();
        let pad = " ".repeat(num.len());
        let chars: Vec<char> = text.chars().collect();
        let col = self.pos.col.saturating_sub(1).min(chars.len());
        let (from, to) = if chars.len() <= SNIPPET_WIDTH {
            (0, chars.len())
        } else {
            let from = col.saturating_sub(SNIPPET_WIDTH / 2);
            let to = (from + SNIPPET_WIDTH).min(chars.len());
            (to.saturating_sub(SNIPPET_WIDTH), to)
        };
        let cut_left = if from > 0 { "…" } else { "" };
        let cut_right = if to < chars.len() { "…" } else { "" };
        // Each shown character escaped on its own, so the caret can count the width of each;
        // tabs are kept so the caret lines up under the same characters.
        let mut shown = String::from(cut_left);
        let mut lead = String::from(if from > 0 { " " } else { "" });
        for (i, c) in chars[from..to].iter().enumerate() {
            let piece = crate::diagnostic::escape(c.encode_utf8(&mut [0; 4])).into_owned();
            if from + i < col {
                let blank = if *c == '\t' { '\t' } else { ' ' };
                lead.extend(std::iter::repeat_n(blank, piece.chars().count()));
            }
            shown.push_str(&piece);
        }
        shown.push_str(cut_right);
        format!("\n {pad} |\n {num} | {shown}\n {pad} | {lead}^")
    }

    fn origin(&self) -> String {
        match &self.profile {
            Some(p) => format!(" (introduced by profile `{p}`)"),
            None => String::new(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(
                f,
                "{}:{}:{}",
                self.file.display(),
                self.pos.line,
                self.pos.col
            )
        }
    }
}

/// Everything that can go wrong while finding, parsing and resolving `devspace.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `devspace.yaml` in the cwd or its parents (and no `--config`).
    #[error("cannot find a devspace.yaml in {} or any parent directory", cwd.display())]
    NotFound { cwd: PathBuf },

    /// The file cannot be read (or `--config` names no file).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Broken YAML.
    #[error("{at}: invalid YAML: {message}{}", at.snippet())]
    Syntax { at: Box<Location>, message: String },

    /// Valid YAML over a budget of [`crate::yaml::limits`] (aliases, size).
    #[error("{at}: {message}{}", at.snippet())]
    OverBudget { at: Box<Location>, message: String },

    /// A key repeated in one mapping.
    #[error("{at}: key `{key}` is defined twice in the same mapping (first on line {first_line}){}", at.snippet())]
    DuplicateKey {
        at: Box<Location>,
        key: String,
        first_line: usize,
    },

    /// No `version:` string.
    #[error("{}: version is missing in devspace.yaml (expected e.g. `version: v1beta9`)", path.display())]
    MissingVersion { path: PathBuf },

    /// A `version:` DevSpace 4.x/5.x never had.
    #[error("{at}: unrecognized config version `{version}` (supported: v1alpha1 … v1beta11){}", at.snippet())]
    UnknownVersion { at: Box<Location>, version: String },

    /// A `v2*` version other than DevSpace 6's `v2beta1`.
    #[error("{}: DevSpace 6 config ({version}) is not supported yet", path.display())]
    UnsupportedVersion { path: PathBuf, version: String },

    /// A key the declared version does not know.
    #[error("{at}: unknown key `{key_path}` in a {version} config{suggestion}{}{}", at.origin(), at.snippet())]
    UnknownKey {
        at: Box<Location>,
        key_path: String,
        version: String,
        /// Pre-rendered `(did you mean ...)` text, possibly empty.
        suggestion: String,
    },

    /// A value of the wrong type.
    #[error("{at}: `{key_path}` must be {expected}, found {found}{}{}", at.origin(), at.snippet())]
    WrongType {
        at: Box<Location>,
        key_path: String,
        expected: &'static str,
        found: &'static str,
    },

    /// Profile selection: unknown profile, loop, bad parents.
    #[error("{}: {message}", path.display())]
    Profile { path: PathBuf, message: String },

    /// A profile patch that does not apply.
    #[error("{at}: cannot apply `patches[{index}]` of profile `{profile}`: {message}{}", at.snippet())]
    Patch {
        at: Box<Location>,
        profile: String,
        index: usize,
        message: String,
    },

    /// One undefined variable (from the resolver; `load` reports [`ConfigError::UndefinedVars`]).
    #[error("variable `{name}` is not defined")]
    UndefinedVar { name: String },

    /// Every undefined variable of the config, without a terminal to ask on.
    #[error("{}", undefined_list(names))]
    UndefinedVars { names: Vec<String> },

    /// A variable that cannot be resolved (source, command, type).
    #[error("variable `{name}`: {message}")]
    Var { name: String, message: String },

    /// A malformed `--var`.
    #[error("wrong --var format: `{part}`, expected KEY=VALUE with a non-empty KEY")]
    VarFlag { part: String },

    /// DevSpace validation (surface §2.7) and other semantic errors.
    #[error("{}: {message}{}", place(path, at.as_deref()), at.as_ref().map(|a| a.snippet()).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// Where the offending entry is written, when known.
        at: Option<Box<Location>>,
        message: String,
    },

    /// Another error (a variable that cannot be resolved) at the place it is used.
    #[error("{at}: {source}{}{}", at.origin(), at.snippet())]
    Located {
        at: Box<Location>,
        source: Box<ConfigError>,
    },
}

fn place(path: &Path, at: Option<&Location>) -> String {
    match at {
        Some(at) => at.to_string(),
        None => path.display().to_string(),
    }
}

fn undefined_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [one] => format!("variable {one} is not defined"),
        _ => format!(
            "variables {} are not defined (the first is used here)",
            quoted.join(", ")
        ),
    }
}

impl ConfigError {
    /// The process exit code for any config error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Config
    }

    /// What the user can do about it, if there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => Some(
                "run devspace inside your project, or point at the file with `--config PATH`"
                    .into(),
            ),
            ConfigError::UndefinedVar { name } => Some(format!(
                "set it with `--var {name}=...` or the environment variable {name} (no terminal to ask on)"
            )),
            ConfigError::UndefinedVars { names } if names.len() == 1 => Some(format!(
                "set it with `--var {0}=...` or the environment variable {0} (no terminal to ask on)",
                names[0]
            )),
            ConfigError::UndefinedVars { names } => Some(format!(
                "set them with `--var {}` or environment variables of the same names (no terminal to ask on)",
                names
                    .iter()
                    .map(|n| format!("{n}=..."))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            ConfigError::UnsupportedVersion { .. } => Some(
                "this tool reads DevSpace 4.x/5.x configs (version v1alpha1 … v1beta11) and DevSpace 6 configs (version v2beta1)".into(),
            ),
            ConfigError::UnknownVersion { .. } => {
                Some("supported versions: v1alpha1 … v1alpha4, v1beta1 … v1beta11".into())
            }
            ConfigError::OverBudget { .. } => Some(
                "the limits are listed under \"Limits\" in the README; write the values out \
                 instead of multiplying them through anchors and aliases"
                    .into(),
            ),
            ConfigError::Located { source, .. } => source.hint(),
            _ => None,
        }
    }
}

crate::diagnostic::diagnostic_from_inherent!(ConfigError, hint, exit);
