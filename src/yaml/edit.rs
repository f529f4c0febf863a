//! The edit step of tag replacement: rewrites chosen scalars of a YAML text in place.
//!
//! Tag replacement must leave everything it does not replace byte-for-byte intact (comments,
//! document separators, key order, indentation, quoting), so it never re-serialises a document:
//! it parses into the positioned tree ([`super::parse_documents`]), decides on the tree, and
//! splices new scalar text into the original string at the nodes' byte spans.

use super::ScalarStyle;
use std::ops::Range;

/// A new value for the scalar at `span`, written in `style` where that is safe.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub span: Range<usize>,
    pub style: ScalarStyle,
    pub value: String,
}

/// Splices the edits into `text`. Edits must not overlap; their order does not matter.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.span.start);
    let mut out = String::with_capacity(text.len() + edits.len() * 16);
    let mut at = 0;
    for edit in sorted {
        if edit.span.start < at {
            continue;
        }
        out.push_str(&text[at..edit.span.start]);
        out.push_str(&render_scalar(&edit.value, edit.style));
        at = edit.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The scalar's source text in the original style; a plain scalar that would read back as
/// something else (a number, `true`, text with `: `) is double-quoted instead.
pub fn render_scalar(value: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        ScalarStyle::Plain if plain_safe(value) => value.to_owned(),
        _ => double_quoted(value),
    }
}

fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Conservative: only reference-like characters, starting alphanumeric, not all digits and
/// punctuation (YAML 1.1 reads `1:20` as a number), and read back as this very string.
fn plain_safe(value: &str) -> bool {
    let charset_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ':' | '@' | '-'));
    let has_letter = value.chars().any(|c| c.is_ascii_alphabetic());
    charset_ok
        && has_letter
        && matches!(
            serde_saphyr::from_str::<serde_json::Value>(value),
            Ok(serde_json::Value::String(s)) if s == value
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Node, parse_documents};

    #[test]
    fn spans_cover_scalars_with_quotes() {
        let text = "a: 'x'\nb: \"y\"\nc: [z, {d: e}]\n---\n# only a comment\n---\nf: g\n";
        let docs = parse_documents(text).expect("parses");
        assert_eq!(docs.len(), 3);
        let a = docs[0].get("a").expect("a");
        assert_eq!(&text[a.span.clone()], "'x'");
        let b = docs[0].get("b").expect("b");
        assert_eq!(&text[b.span.clone()], "\"y\"");
        assert!(docs[1].is_null());
        assert_eq!(docs[2].get("f").and_then(Node::as_str), Some("g"));
        assert_eq!(docs[2].get("f").map(|n| n.pos.line), Some(7));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_documents("a: [b\nc: d\n").expect_err("unclosed flow sequence");
        assert!(err.pos.line >= 1, "{err}");
    }

    #[test]
    fn render_keeps_style_or_quotes_when_needed() {
        let cases: &[(&str, ScalarStyle, &str)] = &[
            ("john/app:abc", ScalarStyle::Plain, "john/app:abc"),
            ("john/app:abc", ScalarStyle::SingleQuoted, "'john/app:abc'"),
            (
                "john/app:abc",
                ScalarStyle::DoubleQuoted,
                "\"john/app:abc\"",
            ),
            ("it's", ScalarStyle::SingleQuoted, "'it''s'"),
            ("1.0", ScalarStyle::Plain, "\"1.0\""),
            ("123", ScalarStyle::Plain, "\"123\""),
            ("yes", ScalarStyle::Plain, "\"yes\""),
            ("true", ScalarStyle::Plain, "\"true\""),
            ("null", ScalarStyle::Plain, "\"null\""),
            ("12:30", ScalarStyle::Plain, "\"12:30\""),
            ("1e3", ScalarStyle::Plain, "\"1e3\""),
            ("a: b", ScalarStyle::Plain, "\"a: b\""),
            ("v1.2.3", ScalarStyle::Plain, "v1.2.3"),
            ("q\"\\", ScalarStyle::DoubleQuoted, "\"q\\\"\\\\\""),
            ("x", ScalarStyle::Literal, "\"x\""),
        ];
        for (value, style, expected) in cases {
            assert_eq!(render_scalar(value, *style), *expected, "{value} {style:?}");
            let back: serde_json::Value =
                serde_saphyr::from_str(expected).expect("rendered scalar parses");
            assert_eq!(back, serde_json::Value::String((*value).to_owned()));
        }
    }

    #[test]
    fn edits_splice_in_place() {
        let text = "a: one # keep\nb: 'two'\n";
        let docs = parse_documents(text).expect("parses");
        let a = docs[0].get("a").expect("a");
        let b = docs[0].get("b").expect("b");
        let edits = [
            Edit {
                span: b.span.clone(),
                style: ScalarStyle::SingleQuoted,
                value: "2".into(),
            },
            Edit {
                span: a.span.clone(),
                style: ScalarStyle::Plain,
                value: "uno".into(),
            },
        ];
        assert_eq!(apply_edits(text, &edits), "a: uno # keep\nb: '2'\n");
    }
}
