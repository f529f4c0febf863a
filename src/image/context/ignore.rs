//! `.dockerignore` parsing and matching with the exact semantics of the docker CLI
//! (moby `patternmatcher` + the `dockerignore` reader + the walk rules of `TarWithOptions`).
//!
//! Docker does **not** use gitignore semantics. The differences that bite:
//! - a pattern is matched against the whole cleaned relative path (Go `filepath.Match`
//!   syntax turned into an anchored regex), so `*.log` only matches at the context root and
//!   keeps `sub/a.log`; `**` matches any number of directories (also zero);
//! - a pattern also matches when it matches any parent directory of the path (`foo` excludes
//!   `foo/bar/baz`, but never `x/foo`);
//! - `!` exceptions are evaluated in file order, the last matching pattern wins, and an
//!   exception can re-include a file inside an excluded directory (`*` then `!src` keeps all
//!   of `src/`);
//! - a trailing `/` is cleaned away, so `dir/` also matches a *file* named `dir`; `./x`,
//!   `/x` and `a/../x` are all cleaned to `x`;
//! - character classes are regex classes: `[!a]` is the set `{!, a}`, negation is `[^a]`;
//!   `\` escapes the next character; `{a,b}` is literal;
//! - `#` starts a comment only in column 0; leading and trailing white space is trimmed;
//!   a UTF-8 BOM on the first line is dropped;
//! - a directory is pruned (not descended) when it is excluded and no exception pattern
//!   *starts with* `dir/`: an exception with a wildcard that could reach inside
//!   (`build` + `!*/keep`) does **not** prevent pruning — Docker does the same.
//!
//! [`IgnoreRules::matches`] answers like `patternmatcher.MatchesOrParentMatches`;
//! [`IgnoreRules::matches_in_walk`] like `MatchesUsingParentResults`, which the docker CLI uses
//! while walking (they differ in rare cases; the walker uses the latter to agree with Docker).

use regex::Regex;
use std::fmt::Write as _;

/// A pattern that Docker would reject; Docker fails the build on it, and so do we.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A line consisting of `!` only.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// Go's `filepath.Match` or `regexp` would reject the pattern.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    Syntax {
        /// The cleaned pattern as Docker sees it.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How one pattern is matched (mirrors patternmatcher's fast paths, which are not always
/// equivalent to the regex: `**.txt` is a plain suffix test).
#[derive(Debug, Clone)]
enum Matcher {
    Exact,
    /// Everything starting with this (pattern minus a trailing `**`).
    Prefix(String),
    /// Everything ending with this (pattern minus a leading `**`).
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern text without the leading `!`.
    text: String,
    exclusion: bool,
    matcher: Matcher,
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// Per-pattern match results of a directory, handed down to its children while walking
/// (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct ParentMatches(Vec<bool>);

/// A compiled `.dockerignore` pattern list.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
}

/// Reads `.dockerignore` content into pattern lines exactly like docker's `ReadAll`:
/// BOM stripped on line 1, `#` comments in column 0, white space trimmed, empty lines
/// dropped, patterns cleaned and a leading `/` removed (keeping the `!` marker).
pub fn parse_dockerignore(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (index, raw) in content.split('\n').enumerate() {
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        if index == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

impl IgnoreRules {
    /// Compiles pattern lines (as [`parse_dockerignore`] returns them, `!` marks an exception)
    /// like `patternmatcher.New`.
    pub fn new<I, S>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut rules = IgnoreRules::default();
        for pattern in patterns {
            rules.push(pattern.as_ref())?;
        }
        Ok(rules)
    }

    /// Parses and compiles `.dockerignore` content.
    pub fn from_dockerignore(content: &str) -> Result<Self, PatternError> {
        Self::new(parse_dockerignore(content))
    }

    /// Appends one pattern line (e.g. the `!Dockerfile` the docker CLI adds).
    pub fn push(&mut self, pattern: &str) -> Result<(), PatternError> {
        let trimmed = pattern.trim();
        if trimmed.is_empty() {
            return Ok(());
        }
        let mut text = go_clean(trimmed);
        let exclusion = text.starts_with('!');
        if exclusion {
            if text.len() == 1 {
                return Err(PatternError::LoneExclamation);
            }
            // Not re-cleaned after the `!`, exactly like patternmatcher.
            text.remove(0);
        }
        validate_go_glob(&text).map_err(|reason| PatternError::Syntax {
            pattern: text.clone(),
            reason: reason.to_owned(),
        })?;
        let matcher = compile(&text).map_err(|reason| PatternError::Syntax {
            pattern: text.clone(),
            reason,
        })?;
        self.has_exclusions |= exclusion;
        self.patterns.push(Pattern {
            text,
            exclusion,
            matcher,
        });
        Ok(())
    }

    /// True when no pattern is present.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when at least one `!` exception exists.
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// Whether `path` (relative, `/`-separated) is excluded: patternmatcher's
    /// `MatchesOrParentMatches` after cleaning; the context root `.` is never excluded.
    pub fn matches(&self, path: &str) -> bool {
        let file = go_clean(path);
        if file == "." {
            return false;
        }
        let parent_dirs: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&file);
            if !hit && !parent_dirs.is_empty() {
                let mut prefix_len = 0;
                for (i, dir) in parent_dirs.iter().enumerate() {
                    prefix_len += dir.len() + usize::from(i > 0);
                    if pattern.matches(&file[..prefix_len]) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether `path` is excluded, given the results of its parent directory (`None` at the
    /// context root): patternmatcher's `MatchesUsingParentResults`, which the docker CLI uses
    /// while walking. Returns the results to hand to the children of `path`.
    pub fn matches_in_walk(
        &self,
        path: &str,
        parent: Option<&ParentMatches>,
    ) -> (bool, ParentMatches) {
        let mut info = ParentMatches::default();
        let matched = self.matches_in_walk_into(path, parent, &mut info);
        (matched, info)
    }

    /// [`IgnoreRules::matches_in_walk`] writing the results for the children into `info`
    /// (its previous content is replaced), so a walk can reuse one buffer for every entry
    /// and copy it only for the directories it descends into.
    pub fn matches_in_walk_into(
        &self,
        path: &str,
        parent: Option<&ParentMatches>,
        info: &mut ParentMatches,
    ) -> bool {
        let parent = parent.filter(|p| p.0.len() == self.patterns.len());
        info.0.clear();
        info.0.resize(self.patterns.len(), false);
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.is_some_and(|p| p.0[i]);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && parent.is_none() {
                    // No parent information: fall back to checking every parent directory.
                    let mut end = 0;
                    while let Some(pos) = path[end..].find('/') {
                        end += pos;
                        if pattern.matches(&path[..end]) {
                            hit = true;
                            break;
                        }
                        end += 1;
                    }
                }
            }
            info.0[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether an excluded directory can be skipped without looking inside: true unless
    /// some exception pattern starts with `dir/` (Docker's rule; see the module comment).
    pub fn can_prune_dir(&self, dir: &str) -> bool {
        if !self.has_exclusions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }
}

/// Go's `path.Clean` (lexical: `.` and empty elements dropped, `..` resolved, a trailing
/// `/` removed; empty input gives `.`).
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Characters patternmatcher escapes because they are regex syntax but not glob syntax.
fn should_escape(ch: char) -> bool {
    matches!(ch, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// patternmatcher's `compile`: the pattern becomes an exact, prefix, suffix or regex test.
/// The regex is first written in Go syntax (exactly as Docker builds it), then translated.
fn compile(pattern: &str) -> Result<Matcher, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut go = String::from("^");
    let mut kind = Kind::Exact;
    // Go's text/scanner silently drops a leading byte order mark.
    let body = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let chars: Vec<char> = body.chars().collect();
    let mut pos = 0;
    let mut i = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        if ch == '*' {
            if chars.get(pos) == Some(&'*') {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        go.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    go.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if i == 0 {
                    kind = Kind::Suffix;
                }
            } else {
                go.push_str("[^/]*");
                kind = Kind::Regex;
            }
        } else if ch == '?' {
            go.push_str("[^/]");
            kind = Kind::Regex;
        } else if should_escape(ch) {
            go.push('\\');
            go.push(ch);
        } else if ch == '\\' {
            if let Some(&next) = chars.get(pos) {
                pos += 1;
                go.push('\\');
                go.push(next);
                kind = Kind::Regex;
            } else {
                go.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            go.push(ch);
            kind = Kind::Regex;
        } else {
            go.push(ch);
        }
        i += 1;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(body[..body.len() - 2].to_owned()),
        Kind::Suffix => Matcher::Suffix(body[2..].to_owned()),
        Kind::Regex => {
            go.push('$');
            let rust = go_regex_to_rust(&go)?;
            Matcher::Regex(Regex::new(&rust).map_err(|e| e.to_string())?)
        }
    })
}

/// Translates the Go (RE2) regex produced by [`compile`] into an equivalent Rust regex:
/// Go's `\d`/`\w`/`\s`/`\b` are ASCII-only, and Rust gives `[`, `&&`, `--`, `~~` meaning
/// inside classes where Go takes them literally.
fn go_regex_to_rust(go: &str) -> Result<String, String> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut pos = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        match ch {
            '\\' => {
                let Some(&next) = chars.get(pos) else {
                    return Err("trailing backslash at end of expression".into());
                };
                pos += 1;
                push_escape(&mut out, next, false)?;
            }
            '[' => pos = translate_class(&chars, pos, &mut out)?,
            '^' | '$' | '.' | '|' | '(' | ')' | '*' | '+' | '?' | '{' | '}' => out.push(ch),
            other => push_literal(&mut out, other),
        }
    }
    Ok(out)
}

/// Writes a literal character, escaped if Rust could read it as syntax.
fn push_literal(out: &mut String, ch: char) {
    if ch.is_ascii_punctuation() {
        out.push('\\');
    }
    out.push(ch);
}

/// Writes Go escape `\c`; `in_class` selects the form usable inside `[...]`.
fn push_escape(out: &mut String, c: char, in_class: bool) -> Result<(), String> {
    let class = match c {
        'd' => Some("[0-9]"),
        'D' => Some("[^0-9]"),
        'w' => Some("[0-9A-Za-z_]"),
        'W' => Some("[^0-9A-Za-z_]"),
        's' => Some("[\\t\\n\\x0C\\r ]"),
        'S' => Some("[^\\t\\n\\x0C\\r ]"),
        _ => None,
    };
    if let Some(class) = class {
        // Rust accepts nested classes, so the same form works inside and outside.
        out.push_str(class);
        return Ok(());
    }
    match c {
        'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
            out.push('\\');
            out.push(c);
        }
        'b' | 'B' | 'A' | 'z' if !in_class => {
            let _ = write!(out, "(?-u:\\{c})");
        }
        c if c.is_ascii_punctuation() => {
            out.push('\\');
            out.push(c);
        }
        c => return Err(format!("invalid escape sequence: \\{c}")),
    }
    Ok(())
}

/// Translates a Go character class whose `[` was just consumed; returns the position after
/// its closing `]`.
fn translate_class(chars: &[char], mut pos: usize, out: &mut String) -> Result<usize, String> {
    out.push('[');
    if chars.get(pos) == Some(&'^') {
        out.push('^');
        pos += 1;
    }
    let mut first = true;
    loop {
        let Some(&ch) = chars.get(pos) else {
            return Err("missing closing ]".into());
        };
        if ch == ']' && !first {
            out.push(']');
            return Ok(pos + 1);
        }
        first = false;
        // POSIX class `[:name:]` (Go and Rust share the names).
        if ch == '['
            && chars.get(pos + 1) == Some(&':')
            && let Some(end) = find_seq(chars, pos + 2, ':', ']')
        {
            out.extend(&chars[pos..end + 2]);
            pos = end + 2;
            continue;
        }
        let (lo, next) = class_char(chars, pos, out)?;
        pos = next;
        let Some(lo) = lo else { continue };
        if chars.get(pos) == Some(&'-') && chars.get(pos + 1).is_some_and(|c| *c != ']') {
            let mut scratch = String::new();
            let (hi, next) = class_char(chars, pos + 1, &mut scratch)?;
            let Some(hi) = hi else {
                return Err("invalid character class range".into());
            };
            if hi < lo {
                return Err(format!("invalid character class range: {lo}-{hi}"));
            }
            pos = next;
            push_literal(out, lo);
            out.push('-');
            push_literal(out, hi);
        } else {
            push_literal(out, lo);
        }
    }
}

/// One class member at `pos`: `Some(char)` for a single character (caller writes it), `None`
/// when an escape class like `\d` was written directly.
fn class_char(
    chars: &[char],
    pos: usize,
    out: &mut String,
) -> Result<(Option<char>, usize), String> {
    let ch = chars[pos];
    if ch != '\\' {
        return Ok((Some(ch), pos + 1));
    }
    let Some(&c) = chars.get(pos + 1) else {
        return Err("trailing backslash at end of expression".into());
    };
    let literal = match c {
        'a' => Some('\u{7}'),
        'f' => Some('\u{c}'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        'v' => Some('\u{b}'),
        c if c.is_ascii_punctuation() => Some(c),
        _ => None,
    };
    if let Some(lit) = literal {
        return Ok((Some(lit), pos + 2));
    }
    push_escape(out, c, true)?;
    Ok((None, pos + 2))
}

fn find_seq(chars: &[char], from: usize, a: char, b: char) -> Option<usize> {
    (from..chars.len().saturating_sub(1)).find(|&i| chars[i] == a && chars[i + 1] == b)
}

/// The syntax check patternmatcher runs through Go's `filepath.Match(pattern, ".")`:
/// every star-separated chunk must be well formed (closed classes, complete ranges, no
/// trailing `\`).
fn validate_go_glob(pattern: &str) -> Result<(), &'static str> {
    let bytes = pattern.as_bytes();
    let mut rest = bytes;
    while !rest.is_empty() {
        while let [b'*', tail @ ..] = rest {
            rest = tail;
        }
        // scanChunk: up to the next star outside brackets.
        let mut in_range = false;
        let mut end = 0;
        while end < rest.len() {
            match rest[end] {
                b'\\' if end + 1 < rest.len() => end += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => break,
                _ => {}
            }
            end += 1;
        }
        validate_chunk(&rest[..end])?;
        rest = &rest[end..];
    }
    Ok(())
}

/// matchChunk's syntax rules for one chunk.
fn validate_chunk(mut chunk: &[u8]) -> Result<(), &'static str> {
    const BAD: &str = "bad pattern (Go filepath.Match syntax)";
    while let Some((&first, tail)) = chunk.split_first() {
        match first {
            b'[' => {
                chunk = tail;
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    chunk = class_esc(chunk).ok_or(BAD)?;
                    if chunk.first() == Some(&b'-') {
                        chunk = class_esc(&chunk[1..]).ok_or(BAD)?;
                    }
                    ranges += 1;
                }
            }
            b'\\' => {
                if tail.is_empty() {
                    return Err(BAD);
                }
                chunk = &tail[1..];
            }
            _ => chunk = tail,
        }
    }
    Ok(())
}

/// Go's `getEsc`: one (possibly escaped) class character; the chunk must go on after it.
fn class_esc(chunk: &[u8]) -> Option<&[u8]> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return None,
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return None;
            }
        }
        _ => {}
    }
    let width = utf8_width(chunk[0]);
    if chunk.len() <= width {
        return None;
    }
    Some(&chunk[width..])
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean_table() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./x", "x"),
            ("/x", "/x"),
            ("a/../b", "b"),
            ("a/", "a"),
            ("../a", "../a"),
            ("/..", "/"),
            ("a//b/./c/", "a/b/c"),
            ("!./x", "!./x"),
        ] {
            assert_eq!(go_clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn reader_table() {
        let content =
            "\u{feff}# comment\n  *.log  \r\n # not a comment\n\n!./keep\n/abs/\n! spaced \n/\n!";
        assert_eq!(
            parse_dockerignore(content),
            vec![
                "*.log",
                "# not a comment",
                "!keep",
                "abs",
                "!spaced",
                "/",
                "!"
            ]
        );
    }

    #[test]
    fn lone_exclamation_is_an_error() {
        assert_eq!(
            IgnoreRules::from_dockerignore("!\n").unwrap_err(),
            PatternError::LoneExclamation
        );
    }

    #[test]
    fn syntax_errors_like_go() {
        for bad in ["[", "a[", "[]", "[a-]", "[-a]", "a\\", "x/[^]", "[]a]x"] {
            assert!(IgnoreRules::new([bad]).is_err(), "{bad:?} must be rejected");
        }
        for good in ["[a]", "[^a]*", "a\\*b", "**", "{a,b}", "[a-c]x", "x/[a[b]"] {
            assert!(IgnoreRules::new([good]).is_ok(), "{good:?} must compile");
        }
    }

    #[test]
    fn match_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["**.txt"], "a/b.txt", true),
            (&["**.txt"], "x.txt", true),
            (&["a/**"], "a/x/y", true),
            (&["a/**"], "a", false),
            (&["a**"], "abc/d", true),
            (&["a+b"], "aab", false),
            (&["a+b"], "a+b", true),
            (&["(a|b)"], "a", false),
            (&["x/[a[b]"], "x/[", true),
            (&["\\d"], "d", false),
            (&["\\d"], "5", true),
            (&["a\\.b"], "a.b", true),
            (&["[a-c]?"], "bz", true),
            (&["[a-c]?"], "b/", false),
            (&["dir/"], "dir", true),
            // Only the .dockerignore reader strips a leading `/`; the matcher itself does not.
            (&["/abs"], "abs", false),
            (&["*"], ".", false),
        ];
        for (patterns, path, want) in cases {
            let rules = IgnoreRules::new(*patterns).unwrap();
            assert_eq!(rules.matches(path), *want, "{patterns:?} on {path:?}");
        }
    }

    #[test]
    fn walk_matching_differs_from_or_parent_matching_like_docker() {
        // `!a` only matches the parent; MatchesUsingParentResults never evaluated it for "a"
        // because nothing was excluded at that point, so the walk keeps "a/x" excluded.
        let rules = IgnoreRules::new(["a/x", "!a"]).unwrap();
        assert!(!rules.matches("a/x"));
        let (dir, info) = rules.matches_in_walk("a", None);
        assert!(!dir);
        assert!(rules.matches_in_walk("a/x", Some(&info)).0);
    }

    #[test]
    fn prune_rule() {
        let rules = IgnoreRules::new(["build", "!build/keep", "!*/other"]).unwrap();
        assert!(!rules.can_prune_dir("build"));
        assert!(rules.can_prune_dir("dist"));
        let rules = IgnoreRules::new(["build"]).unwrap();
        assert!(rules.can_prune_dir("build"));
        let rules = IgnoreRules::new(["a", "!a"]).unwrap();
        assert!(!rules.can_prune_dir("a"));
    }
}

#[cfg(test)]
mod vector_tests {
    use super::*;

    /// Answers of Docker's own matcher (moby/patternmatcher) for tricky patterns.
    const VECTORS: &str = include_str!("../../../tests/fixtures/dockerignore/vectors.json");

    #[test]
    fn all_docker_vectors() {
        let cases: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(VECTORS).unwrap();
        let mut checked = 0;
        for (name, case) in &cases {
            let case = case.as_object().unwrap();
            let patterns: Vec<&str> = case["__patterns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            let rules = IgnoreRules::new(&patterns).unwrap();
            for (path, want) in case.iter().filter(|(k, _)| *k != "__patterns") {
                let want = want.as_bool().unwrap();
                assert_eq!(
                    rules.matches(path),
                    want,
                    "case {name} {patterns:?}: {path}"
                );
                // The walk-time evaluation (parents first) gives the same answers here.
                let mut info: Option<ParentMatches> = None;
                let mut got;
                let mut end = 0;
                loop {
                    let next = path[end..].find('/').map(|i| end + i);
                    let prefix = &path[..next.unwrap_or(path.len())];
                    let (hit, child) = rules.matches_in_walk(prefix, info.as_ref());
                    got = hit;
                    info = Some(child);
                    match next {
                        Some(i) => end = i + 1,
                        None => break,
                    }
                }
                assert_eq!(got, want, "walk: case {name} {patterns:?}: {path}");
                checked += 1;
            }
        }
        assert_eq!(checked, 66, "every vector is checked");
    }
}
