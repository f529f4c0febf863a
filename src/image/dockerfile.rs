//! The Dockerfile as text: its stages, the in-memory entrypoint/cmd/appended-instructions
//! override, the external base images it references, and the rewrite of `FROM`/`COPY --from`
//! references to images built in the same run. Pure functions; nothing here reads files.
//!
//! Parsing is done by `parse-dockerfile` (line continuations, the `# escape=` directive,
//! heredocs, `--platform=` flags). Text is never re-serialised from the syntax tree: every
//! change is a splice at a byte position the parser reported, so everything else in the file
//! stays byte-for-byte as the user wrote it.
//!
//! Stage names are matched case-insensitively as Docker does (the parser's own lookup is
//! case-sensitive), and two stages whose names differ only in case are a duplicate, as in Docker.

use crate::registry::reference::repository_key;
use indexmap::IndexMap;
use parse_dockerfile::{Dockerfile, Instruction};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One `FROM` stage of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position among the stages, from 0 (what `COPY --from=0` refers to).
    pub index: usize,
    /// The image after `FROM` as written (variables not expanded, flags excluded).
    pub base_image: String,
    /// The name after `AS`, as written.
    pub name: Option<String>,
    /// From the start of the `FROM` line to the start of the next stage's `FROM` line (or the
    /// end of the text).
    pub byte_range: Range<usize>,
    /// 1-based line of the `FROM` keyword.
    pub line: usize,
}

/// What the image config asks to change in the Dockerfile, applied in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Written as `ENTRYPOINT [...]` (exec form) when set; `Some(vec![])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// Written as `CMD [...]` (exec form) when set, after the entrypoint.
    pub cmd: Option<Vec<String>>,
    /// Raw Dockerfile lines (`appendDockerfileInstructions`), written before ENTRYPOINT/CMD.
    pub append_instructions: Vec<String>,
    /// The build target stage (`options.target`); the text goes at its end. `None`: the end of
    /// the last stage.
    pub target: Option<String>,
}

impl Overrides {
    /// DevSpace rewrites only when there is a non-empty entrypoint, cmd or appended
    /// instruction; an override made only of empty lists leaves the file untouched.
    pub fn is_noop(&self) -> bool {
        self.entrypoint.as_ref().is_none_or(Vec::is_empty)
            && self.cmd.as_ref().is_none_or(Vec::is_empty)
            && self.append_instructions.is_empty()
    }
}

/// Why a Dockerfile could not be read or rewritten; every variant names the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DockerfileError {
    #[error("Dockerfile {path}: line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "Dockerfile {path}: line {second_line}: duplicate stage name '{name}' (first defined on line {first_line}; stage names are case-insensitive)"
    )]
    DuplicateStage {
        path: PathBuf,
        name: String,
        first_line: usize,
        second_line: usize,
    },
    #[error("Dockerfile {path}: build target '{target}' not found (stages: {available})")]
    TargetNotFound {
        path: PathBuf,
        target: String,
        /// The stage names that exist, comma-separated, or `none named`.
        available: String,
    },
    #[error(
        "Dockerfile {path}: appendDockerfileInstructions[{index}] is not a valid instruction: {message}"
    )]
    AppendedInstruction {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error(
        "Dockerfile {path}: line {line}: the stage ends with an unfinished line continuation, so appended instructions would become part of it"
    )]
    Swallowed { path: PathBuf, line: usize },
}

/// The stages of `text`, in order.
pub fn stages(path: &Path, text: &str) -> Result<Vec<Stage>, DockerfileError> {
    Ok(Parsed::new(path, text)?.stages)
}

/// Applies entrypoint, cmd and appended instructions at the end of the target stage (or of the
/// file), returning the new text; `text` itself is returned when `overrides` is a no-op.
pub fn apply_overrides(
    path: &Path,
    text: &str,
    overrides: &Overrides,
) -> Result<String, DockerfileError> {
    if overrides.is_noop() {
        return Ok(text.to_owned());
    }
    let parsed = Parsed::new(path, text)?;
    let index = match &overrides.target {
        Some(target) => parsed.stage_index(target)?,
        None => parsed.stages.len() - 1,
    };
    let appended = appended_instruction_count(path, &parsed, &overrides.append_instructions)?;
    let at = insertion_point(text, parsed.stages[index].byte_range.end);
    let splice = |insertion: String| {
        let mut out = String::with_capacity(text.len() + insertion.len() + 1);
        out.push_str(&text[..at]);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&insertion);
        out.push_str(&text[at..]);
        out
    };
    let result = splice(render_overrides(overrides, false));

    // The parser rejects `ENTRYPOINT []` (Docker accepts it), so the check runs on a copy with
    // placeholders in empty lists.
    let expected = parsed.stage_instruction_count(index)
        + appended
        + usize::from(overrides.entrypoint.is_some())
        + usize::from(overrides.cmd.is_some());
    let check_text = splice(render_overrides(overrides, true));
    let check = Parsed::new(path, &check_text)?;
    if check.stages.len() != parsed.stages.len() || check.stage_instruction_count(index) != expected
    {
        return Err(DockerfileError::Swallowed {
            path: path.to_owned(),
            line: line_of(text, at.saturating_sub(1)),
        });
    }
    Ok(result)
}

/// External images the Dockerfile builds on: every `FROM` that is not an earlier stage (nor
/// `scratch`) and every `COPY --from=` that is not a stage, in order of appearance, without
/// duplicates. `${ARG}`s declared before the first `FROM` are expanded with their defaults,
/// overridden by `build_args`.
pub fn from_references(
    path: &Path,
    text: &str,
    build_args: &IndexMap<String, Option<String>>,
) -> Result<Vec<String>, DockerfileError> {
    let parsed = Parsed::new(path, text)?;
    let mut seen = HashSet::new();
    Ok(parsed
        .external_references(build_args)
        .into_iter()
        .filter_map(|site| seen.insert(site.value.clone()).then_some(site.value))
        .collect())
}

/// Replaces external `FROM` and `COPY --from=` references whose repository (tag or digest
/// ignored, Docker Hub names normalised) is a key of `fresh` by the value (`image:tag`).
/// Used so an image built `FROM` another image of the same config uses its fresh tag.
pub fn rewrite_from(
    path: &Path,
    text: &str,
    build_args: &IndexMap<String, Option<String>>,
    fresh: &HashMap<String, String>,
) -> Result<String, DockerfileError> {
    if fresh.is_empty() {
        return Ok(text.to_owned());
    }
    let by_repo: HashMap<String, &str> = fresh
        .iter()
        .map(|(repo, tagged)| (repository_key(repo), tagged.as_str()))
        .collect();
    let parsed = Parsed::new(path, text)?;
    let mut out = text.to_owned();
    // Back to front, so earlier spans stay valid.
    let mut sites = parsed.external_references(build_args);
    sites.sort_by_key(|site| std::cmp::Reverse(site.span.start));
    for site in sites {
        let repo = repository_key(&site.value);
        if let Some(tagged) = by_repo.get(&repo) {
            out.replace_range(site.span, tagged);
        }
    }
    Ok(out)
}

/// An image reference inside the text and where it is.
#[derive(Debug)]
struct ReferenceSite {
    span: Range<usize>,
    /// After ARG expansion.
    value: String,
}

/// A parsed Dockerfile with its stages computed once.
struct Parsed<'t> {
    path: &'t Path,
    file: Dockerfile<'t>,
    stages: Vec<Stage>,
}

impl<'t> Parsed<'t> {
    fn new(path: &'t Path, text: &'t str) -> Result<Self, DockerfileError> {
        let file = parse_dockerfile::parse(text).map_err(|e| DockerfileError::Parse {
            path: path.to_owned(),
            line: e.line(),
            // `{:#}` is the message without the parser's own "at line .. column .." suffix.
            message: format!("{e:#}"),
        })?;
        let froms: Vec<_> = file.stages().map(|s| s.from).collect();
        let mut stages = Vec::with_capacity(froms.len());
        for (index, from) in froms.iter().enumerate() {
            let start = line_start(text, from.from.span.start);
            let end = froms
                .get(index + 1)
                .map_or(text.len(), |next| line_start(text, next.from.span.start));
            stages.push(Stage {
                index,
                base_image: from.image.value.to_string(),
                name: from.as_.as_ref().map(|(_, name)| name.value.to_string()),
                byte_range: start..end,
                line: line_of(text, from.from.span.start),
            });
        }
        let mut first_by_name: HashMap<String, usize> = HashMap::new();
        for stage in &stages {
            if let Some(name) = &stage.name
                && let Some(first_line) = first_by_name.insert(name.to_lowercase(), stage.line)
            {
                return Err(DockerfileError::DuplicateStage {
                    path: path.to_owned(),
                    name: name.clone(),
                    first_line,
                    second_line: stage.line,
                });
            }
        }
        Ok(Self { path, file, stages })
    }

    fn stage_index(&self, target: &str) -> Result<usize, DockerfileError> {
        self.stages
            .iter()
            .position(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(target))
            })
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .stages
                    .iter()
                    .filter_map(|s| s.name.as_deref())
                    .collect();
                DockerfileError::TargetNotFound {
                    path: self.path.to_owned(),
                    target: target.to_owned(),
                    available: if names.is_empty() {
                        "none named".to_owned()
                    } else {
                        names.join(", ")
                    },
                }
            })
    }

    fn stage_instruction_count(&self, index: usize) -> usize {
        self.file
            .stages()
            .nth(index)
            .map_or(0, |stage| stage.instructions.len())
    }

    /// Values of the `ARG`s declared before the first `FROM` (the only ones `FROM` may use).
    fn global_args(
        &self,
        build_args: &IndexMap<String, Option<String>>,
    ) -> HashMap<String, String> {
        let mut vars = HashMap::new();
        for arg in self.file.global_args() {
            for (name, default) in arg_declarations(&arg.arguments.value) {
                let value = match build_args.get(&name) {
                    Some(Some(given)) => Some(given.clone()),
                    _ => default.map(|d| expand(&d, &vars)),
                };
                match value {
                    Some(v) => vars.insert(name, v),
                    None => vars.remove(&name),
                };
            }
        }
        vars
    }

    fn external_references(
        &self,
        build_args: &IndexMap<String, Option<String>>,
    ) -> Vec<ReferenceSite> {
        let vars = self.global_args(build_args);
        let all_names: HashSet<String> = self
            .stages
            .iter()
            .filter_map(|s| s.name.as_ref().map(|n| n.to_lowercase()))
            .collect();
        let mut earlier_names = HashSet::new();
        let mut sites = Vec::new();
        for stage in self.file.stages() {
            let from = stage.from;
            let value = expand(&from.image.value, &vars);
            let lower = value.to_lowercase();
            // An ARG that expands to nothing names no image (Docker fails the build itself).
            if !lower.is_empty() && lower != "scratch" && !earlier_names.contains(&lower) {
                sites.push(ReferenceSite {
                    span: from.image.span.clone(),
                    value,
                });
            }
            if let Some((_, name)) = &from.as_ {
                earlier_names.insert(name.value.to_lowercase());
            }
            for instruction in stage.instructions {
                let Instruction::Copy(copy) = instruction else {
                    continue;
                };
                for flag in &copy.options {
                    let Some(from_value) =
                        flag.value.as_ref().filter(|_| flag.name.value == "from")
                    else {
                        continue;
                    };
                    let value = expand(&from_value.value, &vars);
                    let lower = value.to_lowercase();
                    let is_stage = all_names.contains(&lower)
                        || lower.parse::<usize>().is_ok_and(|i| i < self.stages.len());
                    if !is_stage && !value.is_empty() {
                        sites.push(ReferenceSite {
                            span: from_value.span.clone(),
                            value,
                        });
                    }
                }
            }
        }
        sites
    }
}

/// How many instructions `appendDockerfileInstructions` adds, found by parsing them under the
/// same escape character as the file.
fn appended_instruction_count(
    path: &Path,
    parsed: &Parsed<'_>,
    lines: &[String],
) -> Result<usize, DockerfileError> {
    let prologue = match &parsed.file.parser_directives.escape {
        Some(escape) => format!("# escape={}\nFROM scratch\n", escape.value.value),
        None => "FROM scratch\n".to_owned(),
    };
    if lines.is_empty() {
        return Ok(0);
    }
    // Joined as they will be written: one item may continue the previous one with `\`.
    let body = render_overrides(
        &Overrides {
            append_instructions: lines.to_vec(),
            ..Overrides::default()
        },
        false,
    );
    let snippet = format!("{prologue}{body}");
    let file = parse_dockerfile::parse(&snippet).map_err(|e| {
        // Map the snippet line back to the list item that holds it.
        let mut line = e.line().saturating_sub(prologue.lines().count());
        let mut index = 0;
        for (i, item) in lines.iter().enumerate() {
            index = i;
            let item_lines = item.trim_end_matches(['\n', '\r']).lines().count().max(1);
            if line <= item_lines {
                break;
            }
            line -= item_lines;
        }
        DockerfileError::AppendedInstruction {
            path: path.to_owned(),
            index,
            message: format!("{e:#}"),
        }
    })?;
    Ok(file.instructions.len() - 1)
}

/// The text written at the end of the stage. With `placeholders`, empty lists get one
/// element so the parser used for checking accepts them.
fn render_overrides(overrides: &Overrides, placeholders: bool) -> String {
    let mut out = String::new();
    for line in &overrides.append_instructions {
        out.push_str(line.trim_end_matches(['\n', '\r']));
        out.push('\n');
    }
    let lists = [
        ("ENTRYPOINT", &overrides.entrypoint),
        ("CMD", &overrides.cmd),
    ];
    for (keyword, list) in lists {
        if let Some(items) = list {
            let items = if placeholders && items.is_empty() {
                vec!["-".to_owned()]
            } else {
                items.clone()
            };
            out.push_str(keyword);
            out.push(' ');
            out.push_str(&serde_json::Value::from(items).to_string());
            out.push('\n');
        }
    }
    out
}

/// Where to insert at the end of a stage whose next stage starts at `end`: before the blank
/// and comment lines that lead into the next stage, so a comment introducing the next stage
/// stays next to its `FROM`.
fn insertion_point(text: &str, end: usize) -> usize {
    let mut at = end;
    while at > 0 {
        let prev_line_start = line_start(text, at - 1);
        let line = text[prev_line_start..at].trim();
        if line.is_empty() || line.starts_with('#') {
            at = prev_line_start;
        } else {
            break;
        }
    }
    // Never move into the directive block or before the stage's own FROM line.
    if at == 0 { end } else { at }
}

/// Start of the line holding byte `pos` (bytes: `pos` need not be a char boundary).
fn line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `ARG A=1 B="two" C` → `[(A, Some(1)), (B, Some(two)), (C, None)]`.
fn arg_declarations(arguments: &str) -> Vec<(String, Option<String>)> {
    split_words(arguments)
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (word, None),
        })
        .collect()
}

/// Whitespace-separated words with `"..."`/`'...'` quoting and `\` escapes removed.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (_, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Expands `$X`, `${X}`, `${X:-default}`, `${X-default}`, `${X:+alt}` and `${X+alt}` as
/// Docker's shell lexer does for `FROM`; unknown names expand to nothing.
fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    if !s.contains('$') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < s.len() && bytes[i + 1] == b'$' {
            out.push('$');
            i += 2;
        } else if c == b'$' && i + 1 < s.len() && bytes[i + 1] == b'{' {
            let Some(close) = s[i + 2..].find('}') else {
                out.push_str(&s[i..]);
                break;
            };
            out.push_str(&expand_braced(&s[i + 2..i + 2 + close], vars));
            i += close + 3;
        } else if c == b'$' {
            let name_len = s[i + 1..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(s.len() - i - 1);
            if name_len == 0 {
                out.push('$');
            } else {
                out.push_str(
                    vars.get(&s[i + 1..i + 1 + name_len])
                        .map_or("", String::as_str),
                );
            }
            i += 1 + name_len;
        } else {
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
    }
    out
}

fn expand_braced(inner: &str, vars: &HashMap<String, String>) -> String {
    let name_len = inner
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .unwrap_or(inner.len());
    let (name, modifier) = inner.split_at(name_len);
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    if let Some(word) = modifier.strip_prefix(":-") {
        return if set_nonempty {
            value.cloned().unwrap_or_default()
        } else {
            expand(word, vars)
        };
    }
    if let Some(word) = modifier.strip_prefix('-') {
        return value.cloned().unwrap_or_else(|| expand(word, vars));
    }
    if let Some(word) = modifier.strip_prefix(":+") {
        return if set_nonempty {
            expand(word, vars)
        } else {
            String::new()
        };
    }
    if let Some(word) = modifier.strip_prefix('+') {
        return if value.is_some() {
            expand(word, vars)
        } else {
            String::new()
        };
    }
    value.cloned().unwrap_or_default()
}

impl crate::diagnostic::Diagnostic for DockerfileError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/proj/Dockerfile")
    }

    fn ov(
        entrypoint: Option<&[&str]>,
        cmd: Option<&[&str]>,
        append: &[&str],
        target: Option<&str>,
    ) -> Overrides {
        let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        Overrides {
            entrypoint: list(entrypoint),
            cmd: list(cmd),
            append_instructions: append.iter().map(|s| s.to_string()).collect(),
            target: target.map(str::to_owned),
        }
    }

    #[test]
    fn stages_are_listed_with_names_ranges_and_lines() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE=alpine\nFROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nRUN go build \\\n  ./...\n\nfrom ${BASE}\nCOPY --from=build /app /app\n";
        let stages = stages(p(), text).unwrap();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].index, 0);
        assert_eq!(stages[0].base_image, "golang:1.22");
        assert_eq!(stages[0].name.as_deref(), Some("Build"));
        assert_eq!(stages[0].line, 3);
        assert_eq!(
            &text[stages[0].byte_range.clone()],
            "FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nRUN go build \\\n  ./...\n\n"
        );
        assert_eq!(stages[1].base_image, "${BASE}");
        assert_eq!(stages[1].name, None);
        assert_eq!(stages[1].line, 7);
        assert_eq!(stages[1].byte_range.end, text.len());
    }

    #[test]
    fn stage_names_differing_only_in_case_are_duplicates() {
        let text = "FROM a AS build\nRUN x\nFROM b AS BUILD\n";
        assert_eq!(
            stages(p(), text),
            Err(DockerfileError::DuplicateStage {
                path: p().to_owned(),
                name: "BUILD".into(),
                first_line: 1,
                second_line: 3
            })
        );
    }

    #[test]
    fn parse_errors_name_path_and_line() {
        let err = stages(p(), "FROM alpine\nRUN echo\nBOGUS x\n").unwrap_err();
        let DockerfileError::Parse {
            path,
            line,
            message,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((path.as_path(), *line), (p(), 3));
        assert!(message.contains("BOGUS"), "{message}");
        assert!(
            err.to_string()
                .starts_with("Dockerfile /proj/Dockerfile: line 3: ")
        );
        assert!(matches!(
            stages(p(), "# only a comment\n"),
            Err(DockerfileError::Parse { .. })
        ));
    }

    #[test]
    fn overrides_table() {
        // Found by the fuzzer: the last line ends in a multi-byte character.
        let out = apply_overrides(
            p(),
            "FROM a AS final\nONBUILD RUN \u{563}",
            &Overrides {
                cmd: Some(vec!["x".into()]),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(out.contains("ONBUILD RUN \u{563}"), "{out}");
        let multi = "FROM golang AS build\nRUN make\n\n# runtime image\nFROM alpine AS run\nCOPY --from=build /a /a\n";
        let cases: &[(&str, &str, Overrides, &str)] = &[
            (
                "nothing to do keeps the text",
                "FROM alpine",
                ov(Some(&[]), None, &[], None),
                "FROM alpine",
            ),
            (
                "entrypoint and cmd at the end, newline added",
                "FROM alpine\nRUN true",
                ov(Some(&["sleep"]), Some(&["999999999"]), &[], None),
                "FROM alpine\nRUN true\nENTRYPOINT [\"sleep\"]\nCMD [\"999999999\"]\n",
            ),
            (
                "JSON escaping of quotes, backslashes, newlines",
                "FROM alpine\n",
                ov(
                    Some(&["sh", "-c", "echo \"hi\" \\ \n done"]),
                    None,
                    &[],
                    None,
                ),
                "FROM alpine\nENTRYPOINT [\"sh\",\"-c\",\"echo \\\"hi\\\" \\\\ \\n done\"]\n",
            ),
            (
                "appended instructions come before ENTRYPOINT",
                "FROM alpine\n",
                ov(Some(&["/run"]), None, &["ENV A=1", "RUN echo hi"], None),
                "FROM alpine\nENV A=1\nRUN echo hi\nENTRYPOINT [\"/run\"]\n",
            ),
            (
                "empty entrypoint clears it when cmd is set",
                "FROM alpine\n",
                ov(Some(&[]), Some(&["x"]), &[], None),
                "FROM alpine\nENTRYPOINT []\nCMD [\"x\"]\n",
            ),
            (
                "target stage, case-insensitive, before the comment leading to the next stage",
                multi,
                ov(None, Some(&["make", "test"]), &[], Some("BUILD")),
                "FROM golang AS build\nRUN make\nCMD [\"make\",\"test\"]\n\n# runtime image\nFROM alpine AS run\nCOPY --from=build /a /a\n",
            ),
            (
                "last stage as target",
                multi,
                ov(None, Some(&["x"]), &[], Some("run")),
                "FROM golang AS build\nRUN make\n\n# runtime image\nFROM alpine AS run\nCOPY --from=build /a /a\nCMD [\"x\"]\n",
            ),
            (
                "escape directive and continuations",
                "# escape=`\nFROM mcr.microsoft.com/windows AS w\nRUN dir `\n  c:\\\nFROM alpine\n",
                ov(None, None, &["RUN echo a `", "  b"], Some("w")),
                "# escape=`\nFROM mcr.microsoft.com/windows AS w\nRUN dir `\n  c:\\\nRUN echo a `\n  b\nFROM alpine\n",
            ),
            (
                "heredoc at the end of the file",
                "FROM alpine\nRUN <<EOF\necho hi\nEOF",
                ov(Some(&["a"]), None, &[], None),
                "FROM alpine\nRUN <<EOF\necho hi\nEOF\nENTRYPOINT [\"a\"]\n",
            ),
        ];
        for (name, text, overrides, want) in cases {
            let got = apply_overrides(p(), text, overrides);
            assert_eq!(got.as_deref(), Ok(*want), "case: {name}");
        }
    }

    #[test]
    fn override_errors_table() {
        let text = "FROM a AS one\nFROM b AS two\n";
        let cases: &[(&str, &str, Overrides, DockerfileError)] = &[
            (
                "missing target lists the stages",
                text,
                ov(Some(&["x"]), None, &[], Some("three")),
                DockerfileError::TargetNotFound {
                    path: p().to_owned(),
                    target: "three".into(),
                    available: "one, two".into(),
                },
            ),
            (
                "missing target without named stages",
                "FROM a\n",
                ov(Some(&["x"]), None, &[], Some("x")),
                DockerfileError::TargetNotFound {
                    path: p().to_owned(),
                    target: "x".into(),
                    available: "none named".into(),
                },
            ),
            (
                "duplicate target",
                "FROM a AS t\nFROM b AS T\n",
                ov(Some(&["x"]), None, &[], Some("t")),
                DockerfileError::DuplicateStage {
                    path: p().to_owned(),
                    name: "T".into(),
                    first_line: 1,
                    second_line: 2,
                },
            ),
            (
                "unfinished continuation at end of file",
                "FROM a\nRUN echo \\",
                ov(Some(&["x"]), None, &[], None),
                DockerfileError::Swallowed {
                    path: p().to_owned(),
                    line: 2,
                },
            ),
        ];
        for (name, text, overrides, want) in cases {
            assert_eq!(
                apply_overrides(p(), text, overrides).as_ref(),
                Err(want),
                "case: {name}"
            );
        }
        let err = apply_overrides(p(), "FROM a\n", &ov(None, None, &["NOPE x"], None)).unwrap_err();
        assert!(
            matches!(&err, DockerfileError::AppendedInstruction { index: 0, message, .. } if message.contains("NOPE")),
            "{err:?}"
        );
        let err = apply_overrides(
            p(),
            "FROM a\n",
            &ov(None, None, &["ENV A=1", "NOPE x"], None),
        )
        .unwrap_err();
        assert!(
            matches!(&err, DockerfileError::AppendedInstruction { index: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn from_references_table() {
        let none = IndexMap::new();
        let cases: &[(&str, &str, &[&str])] = &[
            ("single", "FROM alpine:3.19\n", &["alpine:3.19"]),
            ("scratch is no image", "FROM scratch\nCOPY a /\n", &[]),
            (
                "earlier stages excluded case-insensitively, later same name is external",
                "FROM node AS Deps\nFROM deps AS app\nFROM golang\nFROM App\n",
                &["node", "golang"],
            ),
            (
                "stage named after a later stage is external when used earlier",
                "FROM builder\nFROM x AS builder\n",
                &["builder", "x"],
            ),
            (
                "platform flag and digest",
                "FROM --platform=linux/amd64 localhost:5000/base@sha256:abc AS b\n",
                &["localhost:5000/base@sha256:abc"],
            ),
            (
                "COPY --from image, stage name and index",
                "FROM a AS s\nFROM b\nCOPY --from=s /x /x\nCOPY --from=0 /y /y\nCOPY --from=tools/lint:1 /z /z\n",
                &["a", "b", "tools/lint:1"],
            ),
            (
                "unset ARG names nothing",
                "ARG BASE\nFROM ${BASE}\nFROM b\n",
                &["b"],
            ),
            (
                "global ARG defaults expanded, duplicates removed",
                "ARG REG=my.reg\nARG TAG\nFROM ${REG}/base:${TAG:-latest}\nFROM $REG/base:latest\n",
                &["my.reg/base:latest"],
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                from_references(p(), text, &none).unwrap(),
                *want,
                "case: {name}"
            );
        }
        let args = IndexMap::from([("TAG".to_owned(), Some("v2".to_owned()))]);
        assert_eq!(
            from_references(p(), "ARG TAG=v1\nFROM base:$TAG\n", &args).unwrap(),
            ["base:v2"]
        );
    }

    #[test]
    fn rewrite_from_table() {
        let fresh = HashMap::from([
            ("john/base".to_owned(), "john/base:abcde".to_owned()),
            (
                "localhost:5000/tools".to_owned(),
                "localhost:5000/tools:xyz12".to_owned(),
            ),
        ]);
        let none = IndexMap::new();
        let cases: &[(&str, &str, &str)] = &[
            ("plain", "FROM john/base\n", "FROM john/base:abcde\n"),
            (
                "any tag, platform flag and stage name kept",
                "FROM --platform=linux/amd64 john/base:old AS b\nRUN x\n",
                "FROM --platform=linux/amd64 john/base:abcde AS b\nRUN x\n",
            ),
            (
                "docker hub spelling normalised, digest replaced",
                "FROM docker.io/john/base@sha256:00\n",
                "FROM john/base:abcde\n",
            ),
            (
                "registry port is not a tag; COPY --from rewritten",
                "FROM alpine\nCOPY --from=localhost:5000/tools:1 /t /t\n",
                "FROM alpine\nCOPY --from=localhost:5000/tools:xyz12 /t /t\n",
            ),
            (
                "other images and stage references untouched",
                "FROM john/base2\nFROM john/basement AS john/base\nFROM john/base\n",
                "FROM john/base2\nFROM john/basement AS john/base\nFROM john/base\n",
            ),
            (
                "ARG-built reference replaced by the literal",
                "ARG R=john\nFROM ${R}/base:1 AS a\nFROM $R/base\n",
                "ARG R=john\nFROM john/base:abcde AS a\nFROM john/base:abcde\n",
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                rewrite_from(p(), text, &none, &fresh).unwrap(),
                *want,
                "case: {name}"
            );
        }
    }

    #[test]
    fn expansion_table() {
        let vars = HashMap::from([
            ("A".to_owned(), "x".to_owned()),
            ("E".to_owned(), String::new()),
        ]);
        for (input, want) in [
            ("$A", "x"),
            ("${A}y", "xy"),
            ("$A/b", "x/b"),
            ("${B:-d}", "d"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${A:+alt}", "alt"),
            ("${B:+alt}", ""),
            ("\\$A", "$A"),
            ("no vars", "no vars"),
            ("$", "$"),
        ] {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }
}
