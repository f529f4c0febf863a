//! Tokenizer and parser of the pipeline-script subset (see the module doc of
//! [`crate::pipeline_script`]). Constructs outside the subset are errors with their line.

use super::{AndOr, Command, Op, Part, Script, Stmt, Word};

/// Why a script cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A construct outside the subset, at a line.
    Unsupported { line: usize, message: String },
    /// Broken syntax (unterminated quote, `if` without `fi`, ...).
    Syntax { message: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word, usize),
    And,
    Or,
    Sep,
}

const RESERVED_UNSUPPORTED: &[&str] = &[
    "for", "while", "until", "case", "do", "done", "esac", "function", "select", "[[", "]]", "!",
    "{", "}",
];

fn unsupported(line: usize, message: impl Into<String>) -> ParseError {
    ParseError::Unsupported {
        line,
        message: message.into(),
    }
}

// The last `flush!` resets `in_word` for a loop iteration that never comes.
#[allow(unused_assignments)]
fn lex(src: &str) -> Result<Vec<Tok>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let mut parts: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let mut in_word = false;
    let mut word_line = 1;

    macro_rules! flush {
        () => {
            if in_word {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                toks.push(Tok::Word(Word(std::mem::take(&mut parts)), word_line));
                in_word = false;
            }
        };
    }
    macro_rules! start {
        () => {
            if !in_word {
                in_word = true;
                word_line = line;
            }
        };
    }

    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => {
                flush!();
                i += 1;
            }
            '\n' => {
                flush!();
                toks.push(Tok::Sep);
                line += 1;
                i += 1;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    line += 1;
                    i += 2;
                } else if let Some(&n) = chars.get(i + 1) {
                    start!();
                    lit.push(n);
                    i += 2;
                } else {
                    i += 1;
                }
            }
            ';' => {
                flush!();
                toks.push(Tok::Sep);
                i += 1;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                flush!();
                toks.push(Tok::And);
                i += 2;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                flush!();
                toks.push(Tok::Or);
                i += 2;
            }
            '|' => return Err(unsupported(line, "pipes (`|`) are not supported")),
            '&' => return Err(unsupported(line, "background jobs (`&`) are not supported")),
            '>' | '<' => {
                return Err(unsupported(
                    line,
                    "redirections (`>`, `<`) are not supported",
                ));
            }
            '(' | ')' => {
                return Err(unsupported(
                    line,
                    "subshells and functions (`( )`) are not supported",
                ));
            }
            '`' => {
                return Err(unsupported(
                    line,
                    "command substitution (`` `…` ``) is not supported",
                ));
            }
            '\'' => {
                start!();
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    lit.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(ParseError::Syntax {
                        message: format!("unterminated single quote (line {word_line})"),
                    });
                }
                i += 1;
            }
            '"' => {
                start!();
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(ParseError::Syntax {
                            message: format!("unterminated double quote (line {word_line})"),
                        });
                    };
                    match d {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            lit.push(chars[i + 1]);
                            i += 2;
                        }
                        '\\' if chars.get(i + 1) == Some(&'\n') => {
                            line += 1;
                            i += 2;
                        }
                        '`' => {
                            return Err(unsupported(
                                line,
                                "command substitution (`` `…` ``) is not supported",
                            ));
                        }
                        '$' => {
                            i = dollar(&chars, i, line, &mut lit, &mut parts)?;
                        }
                        _ => {
                            if d == '\n' {
                                line += 1;
                            }
                            lit.push(d);
                            i += 1;
                        }
                    }
                }
            }
            '$' => {
                start!();
                i = dollar(&chars, i, line, &mut lit, &mut parts)?;
            }
            _ => {
                start!();
                lit.push(c);
                i += 1;
            }
        }
    }
    flush!();
    Ok(toks)
}

/// `$NAME`, `${NAME}`; `$(…)` and other expansions are refused. Returns the next index.
fn dollar(
    chars: &[char],
    i: usize,
    line: usize,
    lit: &mut String,
    parts: &mut Vec<Part>,
) -> Result<usize, ParseError> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(i + 1) {
        Some('(') => {
            let inner: String = chars[i + 2..]
                .iter()
                .take_while(|c| **c != ')' && **c != '\n')
                .collect();
            let command = inner.split_whitespace().next().unwrap_or_default();
            Err(unsupported(
                line,
                format!(
                    "`{command}` (in the command substitution `$({inner})`) is not supported; nothing was run"
                ),
            ))
        }
        Some('{') => {
            let close = chars[i + 2..]
                .iter()
                .position(|c| *c == '}')
                .ok_or_else(|| ParseError::Syntax {
                    message: format!("unterminated `${{` (line {line})"),
                })?;
            let name: String = chars[i + 2..i + 2 + close].iter().collect();
            if name.is_empty() || !name.chars().all(|c| is_name(c) || c == '.') {
                return Err(unsupported(
                    line,
                    format!("the expansion `${{{name}}}` is not supported (only ${{NAME}})"),
                ));
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(lit)));
            }
            parts.push(Part::Var(name));
            Ok(i + 3 + close)
        }
        Some(c) if is_name(*c) && !c.is_ascii_digit() => {
            let name: String = chars[i + 1..].iter().take_while(|c| is_name(**c)).collect();
            let len = name.len();
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(lit)));
            }
            parts.push(Part::Var(name));
            Ok(i + 1 + len)
        }
        Some(&c) if matches!(c, '@' | '*' | '#' | '?' | '!' | '$' | '-') || c.is_ascii_digit() => {
            Err(unsupported(
                line,
                format!("the special parameter `${c}` is not supported"),
            ))
        }
        _ => {
            lit.push('$');
            Ok(i + 1)
        }
    }
}

fn word_text(w: &Word) -> Option<&str> {
    match w.0.as_slice() {
        [Part::Lit(s)] => Some(s),
        _ => None,
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn skip_seps(&mut self) {
        while matches!(self.peek(), Some(Tok::Sep)) {
            self.pos += 1;
        }
    }

    fn at_reserved(&self, words: &[&str]) -> Option<String> {
        match self.peek() {
            Some(Tok::Word(w, _)) => word_text(w)
                .filter(|t| words.contains(t))
                .map(str::to_string),
            _ => None,
        }
    }

    /// Statements until one of `until` (a reserved word at command position) or the end.
    fn list(&mut self, until: &[&str]) -> Result<Vec<AndOr>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_seps();
            if self.peek().is_none() || self.at_reserved(until).is_some() {
                return Ok(out);
            }
            out.push(self.and_or()?);
        }
    }

    fn and_or(&mut self) -> Result<AndOr, ParseError> {
        let first = self.stmt()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Tok::And) => Op::And,
                Some(Tok::Or) => Op::Or,
                _ => break,
            };
            self.pos += 1;
            self.skip_seps();
            rest.push((op, self.stmt()?));
        }
        Ok(AndOr { first, rest })
    }

    fn stmt(&mut self) -> Result<Stmt, ParseError> {
        let (first, line) = match self.peek() {
            Some(Tok::Word(w, line)) => (w.clone(), *line),
            Some(Tok::And | Tok::Or) => {
                return Err(ParseError::Syntax {
                    message: "`&&`/`||` without a command before it".into(),
                });
            }
            _ => {
                return Err(ParseError::Syntax {
                    message: "a command was expected".into(),
                });
            }
        };
        if let Some(t) = word_text(&first) {
            if t == "if" {
                self.pos += 1;
                return self.if_stmt(line);
            }
            if RESERVED_UNSUPPORTED.contains(&t) {
                return Err(unsupported(line, format!("`{t}` is not supported")));
            }
            if matches!(t, "then" | "elif" | "else" | "fi") {
                return Err(ParseError::Syntax {
                    message: format!("unexpected `{t}` (line {line})"),
                });
            }
            if t.contains('=') && !t.starts_with('-') && !t.starts_with('=') {
                return Err(unsupported(
                    line,
                    format!("variable assignments (`{t}`) are not supported"),
                ));
            }
        }
        let mut words = Vec::new();
        while let Some(Tok::Word(w, _)) = self.peek() {
            words.push(w.clone());
            self.pos += 1;
        }
        Ok(Stmt::Simple(Command { words, line }))
    }

    fn expect(&mut self, word: &str, opened: usize) -> Result<(), ParseError> {
        self.skip_seps();
        if self.at_reserved(&[word]).is_some() {
            self.pos += 1;
            Ok(())
        } else {
            Err(ParseError::Syntax {
                message: format!("`if` on line {opened} has no matching `{word}`"),
            })
        }
    }

    fn if_stmt(&mut self, line: usize) -> Result<Stmt, ParseError> {
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let cond = self.list(&["then"])?;
            if cond.is_empty() {
                return Err(ParseError::Syntax {
                    message: format!("`if` on line {line} has no condition"),
                });
            }
            self.expect("then", line)?;
            let body = self.list(&["elif", "else", "fi"])?;
            branches.push((cond, body));
            match self.at_reserved(&["elif", "else", "fi"]).as_deref() {
                Some("elif") => {
                    self.pos += 1;
                }
                Some("else") => {
                    self.pos += 1;
                    otherwise = Some(self.list(&["fi"])?);
                    self.expect("fi", line)?;
                    break;
                }
                Some(_) => {
                    self.pos += 1;
                    break;
                }
                None => {
                    return Err(ParseError::Syntax {
                        message: format!("`if` on line {line} has no matching `fi`"),
                    });
                }
            }
        }
        Ok(Stmt::If {
            branches,
            otherwise,
        })
    }
}

/// Parses a pipeline script.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    let body = p.list(&[])?;
    if p.peek().is_some() {
        let what = match p.peek() {
            Some(Tok::Word(w, line)) => format!(
                "unexpected `{}` (line {line})",
                word_text(w).unwrap_or("word")
            ),
            _ => "unexpected token".into(),
        };
        return Err(ParseError::Syntax { message: what });
    }
    Ok(Script { body })
}
