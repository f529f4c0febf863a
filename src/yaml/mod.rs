//! The one positioned YAML tree of this crate: every node remembers the line and column it was
//! written at, its byte span in the source (so tag replacement can splice new text in place),
//! and the profile that put it there, so errors found after profiles and vars still point at
//! the user's text. Config, the build cache, manifests and Helm values all load through here,
//! and so do the limits every loader enforces ([`limits`]).
//!
//! Plain scalars are resolved like Go's `yaml.v2` (YAML 1.1): `yes`/`no`/`on`/`off`/`y`/`n` are
//! booleans, `0x1F`/`017` are integers. The source text is kept beside the resolved type
//! because `yaml.v2` gives a string field the text as written (`tag: 0123` stays `"0123"`).
//!
//! Events come from `granit-parser` (the parser under `serde-saphyr`); the tree is assembled
//! here because no maintained crate keeps positions, byte spans and YAML 1.1 typing together.

mod edit;
pub mod limits;
mod map;

pub use edit::{Edit, apply_edits, render_scalar};
pub use limits::Budget;
pub use map::Map;
pub use serde_saphyr::granit_parser::ScalarStyle;

use serde_saphyr::granit_parser::{Event, Parser, Span};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

/// A 1-based source position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, starting at 1 (0 = synthetic node without a position).
    pub line: usize,
    /// Column, starting at 1.
    pub col: usize,
}

/// What a scalar resolved to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarType {
    /// `~`, `null`, empty.
    Null,
    /// YAML 1.1 booleans (`yes`, `off`, `True`, ...).
    Bool(bool),
    /// Go `ParseInt(s, 0, 64)` integers (`017` octal, `0x1F`).
    Int(i64),
    /// Floats, `.inf`, `.nan`.
    Float(f64),
    /// Everything else, and every quoted or block scalar.
    Str,
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// Byte range in the source (for quoted scalars, including the quotes; `0..0` for
    /// synthetic nodes). An alias copy keeps the span of the anchored node.
    pub span: Range<usize>,
    /// The profile whose `replace`/`merge`/`patches` put this node here, if any.
    pub profile: Option<Arc<str>>,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `text` is the scalar as written (or as produced by var substitution); `style` is how
    /// it was written (plain for synthetic scalars).
    Scalar {
        text: String,
        ty: ScalarType,
        style: ScalarStyle,
    },
    Seq(Vec<Node>),
    Map(Map),
    /// `*name` left unexpanded ([`parse_documents`] only: an edit goes to the anchored node,
    /// never through an alias).
    Alias,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// A YAML error with its position: broken syntax, or a document over a [`limits`] budget.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {}, column {}: {message}", pos.line, pos.col)]
pub struct Error {
    pub pos: Pos,
    pub message: String,
    /// The document is valid YAML but exceeds a budget (`message` names the limit).
    pub over_budget: bool,
}

/// The name config code knows the error by.
pub type SyntaxError = Error;

/// The result of parsing: the first document plus keys that were defined twice in one mapping
/// (reported only after the version check, so a DevSpace 6 file still gets its one error).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub root: Node,
    /// (key, position of the repeat, position of the first definition).
    pub duplicates: Vec<(String, Pos, Pos)>,
}

impl Node {
    /// A synthetic node (no source position).
    pub fn new(value: Value) -> Self {
        Node {
            value,
            pos: Pos::default(),
            span: 0..0,
            profile: None,
        }
    }

    /// A string scalar.
    pub fn string(s: impl Into<String>) -> Self {
        Node::new(Value::Scalar {
            text: s.into(),
            ty: ScalarType::Str,
            style: ScalarStyle::Plain,
        })
    }

    /// The null scalar.
    pub fn null() -> Self {
        Node::new(Value::Scalar {
            text: String::new(),
            ty: ScalarType::Null,
            style: ScalarStyle::Plain,
        })
    }

    /// Whether this is a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Scalar {
                ty: ScalarType::Null,
                ..
            }
        )
    }

    /// The text of a string scalar (`None` for other nodes).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar {
                text,
                ty: ScalarType::Str,
                ..
            } => Some(text),
            _ => None,
        }
    }

    /// The text of any non-null scalar, as `yaml.v2` would give it to a string field.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar {
                ty: ScalarType::Null,
                ..
            } => None,
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The entries of a mapping, mutably.
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key)
    }

    /// Looks a key up in a mapping, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?.get_mut(key)
    }

    /// Removes a key from a mapping, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        self.as_map_mut()?.remove(key)
    }

    /// Sets a key of a mapping (replacing in place, else appending).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(map) = self.as_map_mut() {
            if let Some(slot) = map.get_mut(key) {
                *slot = value;
            } else {
                let pos = value.pos;
                map.insert(
                    Key {
                        name: key.to_string(),
                        pos,
                    },
                    value,
                );
            }
        }
    }

    /// A short name of the node's kind for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { ty, .. } => match ty {
                ScalarType::Null => "null",
                ScalarType::Bool(_) => "a boolean",
                ScalarType::Int(_) => "an integer",
                ScalarType::Float(_) => "a number",
                ScalarType::Str => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Alias => "an alias",
        }
    }

    /// Marks this node and all its children as coming from `profile` (keeping positions).
    pub fn mark_profile(&mut self, profile: &Arc<str>) {
        self.profile = Some(profile.clone());
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.mark_profile(profile)),
            Value::Map(entries) => entries.values_mut().for_each(|n| n.mark_profile(profile)),
            Value::Scalar { .. } | Value::Alias => {}
        }
    }

    /// Converts to JSON with YAML 1.1 types (used for sections this tool does not interpret).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Alias => J::Null,
            Value::Scalar { text, ty, .. } => match ty {
                ScalarType::Null => J::Null,
                ScalarType::Bool(b) => J::Bool(*b),
                ScalarType::Int(i) => J::from(*i),
                ScalarType::Float(f) => serde_json::Number::from_f64(*f)
                    .map(J::Number)
                    .unwrap_or_else(|| J::String(text.clone())),
                ScalarType::Str => J::String(text.clone()),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Builds a synthetic tree from JSON (used for values computed by vars of non-string type).
    pub fn from_json(value: &serde_json::Value, pos: Pos) -> Node {
        use serde_json::Value as J;
        let scalar = |text: String, ty: ScalarType| Value::Scalar {
            text,
            ty,
            style: ScalarStyle::Plain,
        };
        let value = match value {
            J::Null => scalar(String::new(), ScalarType::Null),
            J::Bool(b) => scalar(b.to_string(), ScalarType::Bool(*b)),
            J::Number(n) => match n.as_i64() {
                Some(i) => scalar(i.to_string(), ScalarType::Int(i)),
                None => scalar(
                    n.to_string(),
                    ScalarType::Float(n.as_f64().unwrap_or_default()),
                ),
            },
            J::String(s) => scalar(s.clone(), ScalarType::Str),
            J::Array(items) => Value::Seq(items.iter().map(|v| Node::from_json(v, pos)).collect()),
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.clone(),
                                pos,
                            },
                            Node::from_json(v, pos),
                        )
                    })
                    .collect(),
            ),
        };
        Node {
            value,
            pos,
            span: 0..0,
            profile: None,
        }
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Resolves a plain scalar the way `yaml.v2` does (YAML 1.1 core types).
pub fn resolve_plain(text: &str) -> ScalarType {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarType::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return ScalarType::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return ScalarType::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return ScalarType::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return ScalarType::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return ScalarType::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return ScalarType::Str;
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(i) = parse_go_int(&plain) {
        return ScalarType::Int(i);
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return ScalarType::Float(f);
    }
    ScalarType::Str
}

/// `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b` prefixes, leading `0` = octal.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let (radix, body) = if let Some(r) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, r)
    } else if let Some(r) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, r)
    } else if let Some(r) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, r)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

fn is_yaml_float(s: &str) -> bool {
    // yaml.v2: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()),
        Some((int, frac)) => {
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exp_ok
}

/// How a parse treats aliases and documents.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The first document, aliases expanded (and `<<` merged), repeated keys reported.
    Config,
    /// Every document, aliases left as [`Value::Alias`] (tag replacement edits in place).
    Documents,
}

enum FrameKind {
    Seq(Vec<Node>),
    /// Entries, pending key, keys that came from `<<` merges.
    Map(Map, Option<Key>, HashSet<String>),
}

struct Frame {
    kind: FrameKind,
    pos: Pos,
    start: usize,
    anchor: usize,
    /// Size of the subtree so far (what a copy of it through an alias costs).
    cost: limits::Cost,
}

fn error_at(e: &serde_saphyr::granit_parser::ScanError) -> Error {
    Error {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_string(),
        over_budget: false,
    }
}

/// Parses the first document of `src` into a positioned tree, expanding aliases within the
/// [`limits`] budget.
pub fn parse(src: &str) -> Result<Parsed, Error> {
    let (mut roots, duplicates) = build(src, Mode::Config)?;
    Ok(Parsed {
        root: roots.pop().unwrap_or_else(Node::null),
        duplicates,
    })
}

/// Parses every document of `src` (one root per document, empty ones included), leaving
/// aliases unexpanded.
pub fn parse_documents(src: &str) -> Result<Vec<Node>, Error> {
    build(src, Mode::Documents).map(|(roots, _)| roots)
}

/// Checks `src` against the [`limits`] budget without building a tree: the gate in front of
/// loaders that deserialise with `serde-saphyr` ([`from_str`], [`from_multiple`]).
pub fn check_budget(src: &str) -> Result<(), Error> {
    let mut budget = Budget::default();
    let mut anchors: HashMap<usize, limits::Cost> = HashMap::new();
    let mut stack: Vec<(limits::Cost, usize)> = Vec::new();
    for item in Parser::new_from_str(src) {
        let (event, span) = item.map_err(|e| error_at(&e))?;
        let pos = pos_of(&span);
        let done = match event {
            Event::Scalar(text, _, anchor, _) => {
                budget.node(pos)?;
                Some((
                    limits::Cost {
                        nodes: 1,
                        bytes: text.len(),
                    },
                    anchor,
                ))
            }
            Event::Alias(id) => {
                let cost = anchors.get(&id).copied().unwrap_or_default();
                budget.copy(cost, pos)?;
                Some((cost, 0))
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                budget.node(pos)?;
                stack.push((limits::Cost { nodes: 1, bytes: 0 }, anchor));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => stack.pop(),
            _ => None,
        };
        if let Some((cost, anchor)) = done {
            if anchor != 0 {
                anchors.insert(anchor, cost);
            }
            if let Some((parent, _)) = stack.last_mut() {
                parent.add(cost);
            }
        }
    }
    Ok(())
}

/// `serde_saphyr::from_str` behind [`check_budget`]; errors carry the YAML position.
pub fn from_str<T: serde::de::DeserializeOwned>(src: &str) -> Result<T, String> {
    check_budget(src).map_err(|e| e.to_string())?;
    serde_saphyr::from_str(src).map_err(|e| e.to_string())
}

/// `serde_saphyr::from_multiple` behind [`check_budget`].
pub fn from_multiple<T: serde::de::DeserializeOwned>(src: &str) -> Result<Vec<T>, String> {
    check_budget(src).map_err(|e| e.to_string())?;
    serde_saphyr::from_multiple(src).map_err(|e| e.to_string())
}

type Duplicates = Vec<(String, Pos, Pos)>;

fn build(src: &str, mode: Mode) -> Result<(Vec<Node>, Duplicates), Error> {
    let mut budget = Budget::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, limits::Cost)> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut roots: Vec<Node> = Vec::new();
    let mut in_doc = false;

    for item in Parser::new_from_str(src) {
        let (event, span) = item.map_err(|e| error_at(&e))?;
        let pos = pos_of(&span);
        let range = span.byte_range().unwrap_or(0..0);
        let finished: Option<(Node, usize, limits::Cost)> = match event {
            Event::DocumentStart(..) => {
                if mode == Mode::Config && !roots.is_empty() {
                    break;
                }
                in_doc = true;
                None
            }
            Event::DocumentEnd => {
                if mode == Mode::Config && !roots.is_empty() {
                    break;
                }
                None
            }
            Event::Scalar(text, style, anchor, tag) => {
                budget.node(pos)?;
                let ty = match (&tag, style) {
                    (Some(t), _) if t.is_yaml_core_schema_tag("str") => ScalarType::Str,
                    (Some(t), _) if t.is_yaml_core_schema() => resolve_plain(&text),
                    (None, ScalarStyle::Plain) => resolve_plain(&text),
                    _ => ScalarType::Str,
                };
                let cost = limits::Cost {
                    nodes: 1,
                    bytes: text.len(),
                };
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        ty,
                        style,
                    },
                    pos,
                    span: range,
                    profile: None,
                };
                Some((node, anchor, cost))
            }
            Event::Alias(id) if mode == Mode::Config => {
                let (node, cost) = anchors.get(&id).ok_or_else(|| Error {
                    pos,
                    message: "unknown anchor".into(),
                    over_budget: false,
                })?;
                budget.copy(*cost, pos)?;
                Some((node.clone(), 0, *cost))
            }
            Event::UnresolvedAlias(_) if mode == Mode::Config => {
                return Err(Error {
                    pos,
                    message: "unknown anchor".into(),
                    over_budget: false,
                });
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                budget.node(pos)?;
                let node = Node {
                    value: Value::Alias,
                    pos,
                    span: range,
                    profile: None,
                };
                Some((node, 0, limits::Cost { nodes: 1, bytes: 0 }))
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                budget.node(pos)?;
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Seq(Vec::new())
                } else {
                    FrameKind::Map(Map::new(), None, HashSet::new())
                };
                stack.push(Frame {
                    kind,
                    pos,
                    start: range.start,
                    anchor,
                    cost: limits::Cost { nodes: 1, bytes: 0 },
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => stack.pop().map(|frame| {
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map(entries, ..) => Value::Map(entries),
                };
                let node = Node {
                    value,
                    pos: frame.pos,
                    span: frame.start..range.end.max(frame.start),
                    profile: None,
                };
                (node, frame.anchor, frame.cost)
            }),
            _ => None,
        };
        let Some((node, anchor, cost)) = finished else {
            continue;
        };
        if anchor != 0 && mode == Mode::Config {
            // The kept copy costs as much as the subtree it copies.
            budget.keep(cost, pos)?;
            anchors.insert(anchor, (node.clone(), cost));
        }
        let Some(parent) = stack.last_mut() else {
            roots.push(node);
            if mode == Mode::Config && !in_doc {
                break;
            }
            continue;
        };
        parent.cost.add(cost);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map(entries, pending, merged) => match pending.take() {
                None => {
                    *pending = Some(Key {
                        name: node.scalar_text().unwrap_or_default().to_string(),
                        pos: node.pos,
                    });
                }
                Some(key) if key.name == "<<" && mode == Mode::Config => {
                    merge_into(entries, merged, node)
                }
                Some(key) => {
                    if let Some((first, _)) = entries.get_entry(&key.name) {
                        // A key written after a `<<` merge overrides the merged value; only
                        // real repeats count.
                        if !merged.remove(&key.name) && mode == Mode::Config {
                            duplicates.push((key.name.clone(), key.pos, first.pos));
                        }
                    }
                    entries.insert(key, node);
                }
            },
        }
    }
    Ok((roots, duplicates))
}

/// `<<` merge keys (YAML 1.1, supported by yaml.v2): earlier explicit keys win.
fn merge_into(entries: &mut Map, merged: &mut HashSet<String>, node: Node) {
    let sources: Vec<Node> = match node.value {
        Value::Seq(items) => items,
        _ => vec![node],
    };
    for src in sources {
        if let Value::Map(src_entries) = src.value {
            for (k, v) in src_entries {
                if !entries.contains_key(&k.name) {
                    merged.insert(k.name.clone());
                    entries.insert(k, v);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_yaml_v2() {
        let cases: &[(&str, ScalarType)] = &[
            ("", ScalarType::Null),
            ("~", ScalarType::Null),
            ("yes", ScalarType::Bool(true)),
            ("Off", ScalarType::Bool(false)),
            ("True", ScalarType::Bool(true)),
            ("y", ScalarType::Bool(true)),
            ("12", ScalarType::Int(12)),
            ("0123", ScalarType::Int(83)),
            ("0x1F", ScalarType::Int(31)),
            ("-7", ScalarType::Int(-7)),
            ("1_000", ScalarType::Int(1000)),
            ("1.5", ScalarType::Float(1.5)),
            ("1e3", ScalarType::Float(1000.0)),
            ("v1beta9", ScalarType::Str),
            ("1.2.3", ScalarType::Str),
            ("./Dockerfile", ScalarType::Str),
            ("08", ScalarType::Float(8.0)),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_plain(text), *want, "{text:?}");
        }
    }

    #[test]
    fn positions_are_one_based_and_quoted_scalars_stay_strings() {
        let p = parse("version: v1beta9\nimages:\n  app:\n    image: 'yes'\n    tags: [1, no]\n")
            .unwrap();
        let app = p.root.get("images").unwrap().get("app").unwrap();
        let image = app.get("image").unwrap();
        assert_eq!(image.as_str(), Some("yes"));
        assert_eq!(image.pos, Pos { line: 4, col: 12 });
        let tags = app.get("tags").unwrap().to_json();
        assert_eq!(tags, serde_json::json!([1, false]));
        let key = app.as_map().unwrap().get_index(1).unwrap().0;
        assert_eq!(
            (key.name.as_str(), key.pos),
            ("tags", Pos { line: 5, col: 5 })
        );
    }

    #[test]
    fn anchors_merge_keys_and_duplicates() {
        let p = parse("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  j: 3\nb: 4\n").unwrap();
        assert_eq!(p.root.get("b").unwrap().to_json(), serde_json::json!(4));
        assert_eq!(
            p.duplicates,
            vec![(
                "b".to_string(),
                Pos { line: 5, col: 1 },
                Pos { line: 2, col: 1 }
            )]
        );
        let p = parse("a: &x {k: 1, j: 2}\nb:\n  j: 3\n  <<: *x\n").unwrap();
        assert_eq!(
            p.root.get("b").unwrap().to_json(),
            serde_json::json!({"j": 3, "k": 1})
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("images:\n  app:\n    image: [a\n  b: c\n").unwrap_err();
        assert!(err.pos.line >= 3, "{err:?}");
        let empty = parse("").unwrap();
        assert!(empty.root.is_null());
    }

    /// `a0: &a0 [lol x10]`, `aN: &aN [*a(N-1) x10]`: 10^levels nodes from a few hundred bytes.
    pub(crate) fn billion_laughs(levels: usize) -> String {
        let mut doc = format!("a0: &a0 [{}]\n", ["lol"; 10].join(", "));
        for n in 1..=levels {
            let prev = format!("*a{}", n - 1);
            doc.push_str(&format!("a{n}: &a{n} [{}]\n", vec![prev; 10].join(", ")));
        }
        doc
    }

    #[test]
    fn billion_laughs_stop_at_the_alias_budget() {
        let doc = billion_laughs(9);
        for err in [
            parse(&doc).map(|_| ()).unwrap_err(),
            check_budget(&doc).unwrap_err(),
        ] {
            assert!(err.over_budget, "{err:?}");
            assert!(err.message.contains("alias"), "{err}");
            assert!(err.pos.line > 1, "{err:?}");
        }
        let from_serde = from_str::<serde_json::Value>(&doc).unwrap_err();
        assert!(from_serde.contains("alias"), "{from_serde}");
        // Modest reuse stays fine.
        let ok = billion_laughs(2);
        assert!(parse(&ok).is_ok());
        assert!(check_budget(&ok).is_ok());
    }

    #[test]
    fn one_large_anchor_copied_often_hits_the_node_or_byte_budget() {
        let big = "x".repeat(1 << 20);
        let mut doc = format!("a: &a \"{big}\"\nb:\n");
        for _ in 0..40 {
            doc.push_str("  - *a\n");
        }
        let err = parse(&doc).map(|_| ()).unwrap_err();
        assert!(err.over_budget && err.message.contains("MiB"), "{err}");
        assert_eq!(check_budget(&doc).unwrap_err().message, err.message);
    }

    #[test]
    fn unexpanded_aliases_keep_their_place() {
        let docs = parse_documents("a: &x 1\nb: *x\n---\nc: &y [2]\nd: *y\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].get("b").map(|n| &n.value), Some(&Value::Alias));
        assert_eq!(docs[1].get("d").map(|n| &n.value), Some(&Value::Alias));
        assert!(parse("c: *y\n").is_err());
        assert!(parse_documents("c: *y\n").is_err());
    }

    #[test]
    fn many_keys_keep_order_and_report_repeats() {
        let mut doc = String::new();
        for i in 0..50_000 {
            doc.push_str(&format!("k{i}: {i}\n"));
        }
        doc.push_str("k7: again\n");
        let p = parse(&doc).unwrap();
        let map = p.root.as_map().unwrap();
        assert_eq!(map.len(), 50_000);
        assert_eq!(map.get_index(49_999).unwrap().0.name, "k49999");
        assert_eq!(map.get_index(7).unwrap().1.as_str(), Some("again"));
        assert_eq!(p.duplicates.len(), 1);
    }
}
