//! A positioned YAML tree: every node remembers the line and column it was written at (and the
//! profile that put it there), so errors found after profiles and vars still point at the
//! user's text.
//!
//! Plain scalars are resolved like Go's `yaml.v2` (YAML 1.1): `yes`/`no`/`on`/`off`/`y`/`n` are
//! booleans, `0x1F`/`017` are integers. The source text is kept beside the resolved type
//! because `yaml.v2` gives a string field the text as written (`tag: 0123` stays `"0123"`).

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;
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
    /// The profile whose `replace`/`merge`/`patches` put this node here, if any.
    pub profile: Option<Arc<str>>,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `text` is the scalar as written (or as produced by var substitution).
    Scalar {
        text: String,
        ty: ScalarType,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

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
            profile: None,
        }
    }

    /// A string scalar.
    pub fn string(s: impl Into<String>) -> Self {
        Node::new(Value::Scalar {
            text: s.into(),
            ty: ScalarType::Str,
        })
    }

    /// The null scalar.
    pub fn null() -> Self {
        Node::new(Value::Scalar {
            text: String::new(),
            ty: ScalarType::Null,
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
    pub fn as_map(&self) -> Option<&Vec<(Key, Node)>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The entries of a mapping, mutably.
    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(Key, Node)>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Looks a key up in a mapping, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Removes a key from a mapping, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let map = self.as_map_mut()?;
        let i = map.iter().position(|(k, _)| k.name == key)?;
        Some(map.remove(i).1)
    }

    /// Sets a key of a mapping (replacing in place, else appending).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(map) = self.as_map_mut() {
            if let Some(slot) = map.iter_mut().find(|(k, _)| k.name == key) {
                slot.1 = value;
            } else {
                let pos = value.pos;
                map.push((
                    Key {
                        name: key.to_string(),
                        pos,
                    },
                    value,
                ));
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
        }
    }

    /// Marks this node and all its children as coming from `profile` (keeping positions).
    pub fn mark_profile(&mut self, profile: &Arc<str>) {
        self.profile = Some(profile.clone());
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.mark_profile(profile)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, n)| n.mark_profile(profile)),
            Value::Scalar { .. } => {}
        }
    }

    /// Converts to JSON with YAML 1.1 types (used for sections this tool does not interpret).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { text, ty } => match ty {
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
        let value = match value {
            J::Null => Value::Scalar {
                text: String::new(),
                ty: ScalarType::Null,
            },
            J::Bool(b) => Value::Scalar {
                text: b.to_string(),
                ty: ScalarType::Bool(*b),
            },
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Scalar {
                    text: i.to_string(),
                    ty: ScalarType::Int(i),
                },
                None => Value::Scalar {
                    text: n.to_string(),
                    ty: ScalarType::Float(n.as_f64().unwrap_or_default()),
                },
            },
            J::String(s) => Value::Scalar {
                text: s.clone(),
                ty: ScalarType::Str,
            },
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

enum Frame {
    Seq(Vec<Node>, Pos, usize),
    /// Entries, position, anchor, pending key, keys that came from `<<` merges.
    Map(Vec<(Key, Node)>, Pos, usize, Option<Key>, Vec<String>),
}

/// Parses the first document of `src` into a positioned tree.
pub fn parse(src: &str) -> Result<Parsed, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut root: Option<Node> = None;
    let mut in_doc = false;

    for item in Parser::new_from_str(src) {
        let (event, span) = item.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info(),
        })?;
        let pos = pos_of(&span);
        let finished: Option<(Node, usize)> = match event {
            Event::DocumentStart(..) => {
                if root.is_some() {
                    break;
                }
                in_doc = true;
                None
            }
            Event::DocumentEnd => {
                if root.is_some() {
                    break;
                }
                None
            }
            Event::StreamStart | Event::StreamEnd => None,
            Event::Scalar(text, style, anchor, tag) => {
                let ty = match (&tag, style) {
                    (Some(t), _) if t.is_yaml_core_schema_tag("str") => ScalarType::Str,
                    (Some(t), _) if t.is_yaml_core_schema() => resolve_plain(&text),
                    (None, ScalarStyle::Plain) => resolve_plain(&text),
                    _ => ScalarType::Str,
                };
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        ty,
                    },
                    pos,
                    profile: None,
                };
                Some((node, anchor))
            }
            Event::Alias(id) => {
                let node = anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos,
                    message: "unknown anchor".into(),
                })?;
                Some((node, 0))
            }
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), pos, anchor));
                None
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map(Vec::new(), pos, anchor, None, Vec::new()));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, p, anchor)) => Some((
                    Node {
                        value: Value::Seq(items),
                        pos: p,
                        profile: None,
                    },
                    anchor,
                )),
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, p, anchor, _, _)) => Some((
                    Node {
                        value: Value::Map(entries),
                        pos: p,
                        profile: None,
                    },
                    anchor,
                )),
                _ => None,
            },
            _ => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => {
                root = Some(node);
                if !in_doc {
                    break;
                }
            }
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, _, _, pending, merged)) => match pending.take() {
                None => {
                    *pending = Some(Key {
                        name: node.scalar_text().unwrap_or_default().to_string(),
                        pos: node.pos,
                    });
                }
                Some(key) => insert_entry(entries, merged, key, node, &mut duplicates),
            },
        }
    }
    Ok(Parsed {
        root: root.unwrap_or_else(Node::null),
        duplicates,
    })
}

fn insert_entry(
    entries: &mut Vec<(Key, Node)>,
    merged: &mut Vec<String>,
    key: Key,
    node: Node,
    duplicates: &mut Vec<(String, Pos, Pos)>,
) {
    // `<<` merge keys (YAML 1.1, supported by yaml.v2): earlier explicit keys win.
    if key.name == "<<" {
        let sources: Vec<Node> = match node.value {
            Value::Seq(items) => items,
            _ => vec![node],
        };
        for src in sources {
            if let Value::Map(src_entries) = src.value {
                for (k, v) in src_entries {
                    if !entries.iter().any(|(e, _)| e.name == k.name) {
                        merged.push(k.name.clone());
                        entries.push((k, v));
                    }
                }
            }
        }
        return;
    }
    if let Some(slot) = entries.iter_mut().find(|(k, _)| k.name == key.name) {
        // A key written after a `<<` merge overrides the merged value; only real repeats count.
        if let Some(i) = merged.iter().position(|m| *m == key.name) {
            merged.remove(i);
        } else {
            duplicates.push((key.name.clone(), key.pos, slot.0.pos));
        }
        *slot = (key, node);
    } else {
        entries.push((key, node));
    }
}

#[cfg(test)]
mod tests {
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
        let key = &app.as_map().unwrap()[1].0;
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
}
