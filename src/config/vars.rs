//! Config variables: the `${VAR}` / `$!{VAR}` / `$${X}` syntax, DevSpace's type coercion, and
//! resolving a name from `--var`, predefined `DEVSPACE_*` values, `vars:` definitions, the
//! environment, cached answers, commands, or a question on the terminal.
//!
//! The substitution itself is pure (it takes a lookup function); [`Resolver`] is the adapter
//! that reads the environment, runs commands and asks questions, each only for names that are
//! actually used.

use super::error::ConfigError;
use super::predefined::Predefined;
use super::yaml::limits::{MAX_VAR_STRING_BYTES, MAX_VAR_TOTAL_BYTES};
use super::yaml::{Node, ScalarType, Value};
use crate::process::{self, RunError, Spec};
use std::collections::{BTreeMap, HashMap};

/// One `${...}` occurrence inside a string.
#[derive(Debug, Clone, PartialEq)]
struct Ref {
    start: usize,
    end: usize,
    /// `$${X}`: an escape, not a reference.
    escaped: bool,
    /// `$!{X}`: no type coercion of the result.
    no_convert: bool,
    name: String,
}

/// Finds references with DevSpace's pattern `\$+!?\{[^}]+\}`.
fn scan(s: &str) -> Vec<Ref> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i;
        while j < b.len() && b[j] == b'$' {
            j += 1;
        }
        let dollars = j - start;
        let no_convert = j < b.len() && b[j] == b'!';
        if no_convert {
            j += 1;
        }
        if j < b.len()
            && b[j] == b'{'
            && let Some(close) = s[j + 1..].find('}').filter(|&c| c > 0)
        {
            let end = j + 1 + close + 1;
            out.push(Ref {
                start,
                end,
                escaped: dollars > 1,
                no_convert,
                name: s[j + 1..end - 1].to_string(),
            });
            i = end;
            continue;
        }
        i = j.max(start + 1);
    }
    out
}

/// The names referenced (not escaped) anywhere in `s`.
pub fn names_in(s: &str) -> impl Iterator<Item = String> {
    scan(s).into_iter().filter(|r| !r.escaped).map(|r| r.name)
}

/// A resolved variable value: a string, or a typed value from a `default`/`value` in YAML.
pub type VarValue = serde_json::Value;

/// Substitutes references in one string. `Ok(None)` = no reference (leave it untouched).
pub fn substitute_str(
    s: &str,
    lookup: &mut dyn FnMut(&str) -> Result<VarValue, ConfigError>,
) -> Result<Option<serde_json::Value>, ConfigError> {
    let refs = scan(s);
    if refs.is_empty() {
        return Ok(None);
    }
    // A string that is exactly one reference keeps the variable's type.
    if refs.len() == 1 && !refs[0].escaped && refs[0].start == 0 && refs[0].end == s.len() {
        let value = lookup(&refs[0].name)?;
        return Ok(Some(match value {
            serde_json::Value::String(text) if !refs[0].no_convert => coerce(&text),
            other => other,
        }));
    }
    let (out, convert) = render(s, &refs, lookup)?;
    Ok(Some(if convert {
        coerce(&out)
    } else {
        serde_json::Value::String(out)
    }))
}

/// Substitutes references as text, without type conversion (command arguments).
pub fn expand(
    s: &str,
    lookup: &mut dyn FnMut(&str) -> Result<VarValue, ConfigError>,
) -> Result<String, ConfigError> {
    render(s, &scan(s), lookup).map(|(out, _)| out)
}

/// The substituted text, and whether DevSpace would convert its type (no `$!{}` used).
fn render(
    s: &str,
    refs: &[Ref],
    lookup: &mut dyn FnMut(&str) -> Result<VarValue, ConfigError>,
) -> Result<(String, bool), ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut convert = true;
    for r in refs {
        out.push_str(&s[last..r.start]);
        last = r.end;
        if r.escaped {
            out.push_str(&s[r.start + 1..r.end]);
            continue;
        }
        convert &= !r.no_convert;
        let value = lookup(&r.name)?;
        let piece = match &value {
            serde_json::Value::String(text) => text.as_str(),
            serde_json::Value::Number(n) => &n.to_string(),
            serde_json::Value::Bool(b) => &b.to_string(),
            other => {
                return Err(ConfigError::Var {
                    name: r.name.clone(),
                    message: format!(
                        "value `{other}` is not a string, however it is used as part of the string `{s}`"
                    ),
                });
            }
        };
        if out.len() + piece.len() + (s.len() - last) > MAX_VAR_STRING_BYTES {
            return Err(too_long(&r.name));
        }
        out.push_str(piece);
    }
    out.push_str(&s[last..]);
    Ok((out, convert))
}

fn too_long(name: &str) -> ConfigError {
    ConfigError::Var {
        name: name.to_string(),
        message: format!(
            "the string it is used in grows over {} MiB (the var size limit)",
            MAX_VAR_STRING_BYTES >> 20
        ),
    }
}

/// DevSpace's conversion of a substituted string: Go integer, else Go bool, else string.
pub fn coerce(s: &str) -> serde_json::Value {
    // strconv.Atoi: base 10, optional sign (so `0123` becomes 123).
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = s.parse::<i64>()
    {
        return serde_json::Value::from(i);
    }
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => serde_json::Value::Bool(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => serde_json::Value::Bool(false),
        _ => serde_json::Value::String(s.to_string()),
    }
}

/// Substitutes every string scalar in the tree (map keys are left alone); `locate` attaches
/// the position of the string to an error.
pub fn substitute_tree(
    node: &mut Node,
    lookup: &mut dyn FnMut(&str) -> Result<VarValue, ConfigError>,
    locate: &dyn Fn(ConfigError, &Node) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut remaining = MAX_VAR_TOTAL_BYTES;
    substitute_within(node, lookup, locate, &mut remaining)
}

/// [`substitute_tree`] with `remaining` bytes left of the load's total var budget.
fn substitute_within(
    node: &mut Node,
    lookup: &mut dyn FnMut(&str) -> Result<VarValue, ConfigError>,
    locate: &dyn Fn(ConfigError, &Node) -> ConfigError,
    remaining: &mut usize,
) -> Result<(), ConfigError> {
    match &mut node.value {
        Value::Scalar {
            text,
            ty: ScalarType::Str,
            ..
        } => {
            let text = text.clone();
            let substituted = substitute_str(&text, lookup).map_err(|e| locate(e, node))?;
            if let Some(v) = substituted {
                let size = v.as_str().map_or(0, str::len);
                *remaining = remaining.checked_sub(size).ok_or_else(|| {
                    let name = names_in(&text).next().unwrap_or_default();
                    let e = ConfigError::Var {
                        name,
                        message: format!(
                            "substituted values of the config add up to more than {} MiB \
                             (the var size limit)",
                            MAX_VAR_TOTAL_BYTES >> 20
                        ),
                    };
                    locate(e, node)
                })?;
                let pos = node.pos;
                let span = node.span.clone();
                let profile = node.profile.take();
                *node = Node::from_json(&v, pos);
                node.span = span;
                node.profile = profile;
            }
        }
        Value::Scalar { .. } | Value::Alias => {}
        Value::Seq(items) => {
            for n in items {
                substitute_within(n, lookup, locate, remaining)?;
            }
        }
        Value::Map(entries) => {
            for (_, n) in entries {
                substitute_within(n, lookup, locate, remaining)?;
            }
        }
    }
    Ok(())
}

/// A `vars[]` definition (already checked against the schema).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VarDef {
    pub name: String,
    pub question: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
    pub password: Option<bool>,
    pub validation_pattern: Option<String>,
    pub validation_message: Option<String>,
    pub default: Option<serde_json::Value>,
    pub source: Option<String>,
    pub value: Option<serde_json::Value>,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub commands: Vec<VarCommand>,
}

/// `vars[].commands[]` (5.x): a command per OS.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct VarCommand {
    pub command: String,
    pub os: Option<String>,
}

/// Parses raw `--var` values (each may hold several `K=V` separated by commas).
pub fn parse_var_flags(raw: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in raw.iter().flat_map(|r| r.split(',')) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(ConfigError::VarFlag {
                part: part.to_string(),
            });
        };
        let k = k.trim();
        if !valid_var_name(k) {
            return Err(ConfigError::VarFlag {
                part: part.to_string(),
            });
        }
        out.insert(k.to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// A name `${NAME}` can refer to: not empty, no whitespace, control characters, `$`, `{`,
/// `}` or `=`.
pub fn valid_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '$' | '{' | '}' | '='))
}

/// The `--var` value parser: the flag is checked while the command line is parsed (exit 2,
/// before any work), with the same rules the loader applies.
pub fn check_var_flag(raw: &str) -> Result<String, String> {
    parse_var_flags(&[raw.to_string()])
        .map(|_| raw.to_string())
        .map_err(|e| e.to_string())
}

/// A question for the user.
#[derive(Debug, Clone, Copy)]
pub struct Question<'q> {
    pub text: &'q str,
    /// Pre-filled answer (empty = none).
    pub default: &'q str,
    /// Allowed answers (empty = any).
    pub options: &'q [String],
    /// Hide the input.
    pub password: bool,
}

/// Asks the user for a value (a terminal adapter in production, a script in tests).
pub trait Asker {
    /// Returns the answer (the default when the user just presses enter).
    fn ask(&mut self, q: Question<'_>) -> std::io::Result<String>;
}

/// Reads answers from stdin, printing the question on stderr.
pub struct TerminalAsker;

impl Asker for TerminalAsker {
    fn ask(&mut self, q: Question<'_>) -> std::io::Result<String> {
        use std::io::Write;
        let mut err = std::io::stderr();
        write!(err, "? {}", q.text)?;
        if !q.options.is_empty() {
            write!(err, " [{}]", q.options.join("/"))?;
        }
        if !q.default.is_empty() && !q.password {
            write!(err, " ({})", q.default)?;
        }
        write!(err, " ")?;
        err.flush()?;
        // Hide a password while it is typed; `stty` acts on the terminal behind stdin.
        let hidden = q.password && stty("-echo");
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line);
        if hidden {
            stty("echo");
            writeln!(err)?;
        }
        if read? == 0 {
            // End of input: asking again would loop forever.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no answer (end of input)",
            ));
        }
        let answer = line.trim_end_matches(['\r', '\n']).to_string();
        Ok(if answer.is_empty() {
            q.default.to_string()
        } else {
            answer
        })
    }
}

/// `stty` works on the terminal it gets as stdin, in the foreground (no timeout).
fn stty(arg: &str) -> bool {
    crate::process::run(&crate::process::Spec::new("stty").arg(arg).inherit_stdin())
        .is_ok_and(|o| o.status.success())
}

/// Resolves variable names, each once per load.
pub struct Resolver<'a> {
    pub flags: BTreeMap<String, String>,
    pub defs: Vec<VarDef>,
    pub predefined: Predefined<'a>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub cached: &'a BTreeMap<String, String>,
    pub asker: Option<&'a mut dyn Asker>,
    pub answers: BTreeMap<String, String>,
    resolved: HashMap<String, VarValue>,
    resolving: Vec<String>,
    /// Refuse vars that would run a command (the fuzz target sets it).
    pub no_commands: bool,
}

impl<'a> Resolver<'a> {
    /// A resolver over the given sources; `asker` is `None` without a terminal.
    pub fn new(
        flags: BTreeMap<String, String>,
        defs: Vec<VarDef>,
        predefined: Predefined<'a>,
        env: &'a dyn Fn(&str) -> Option<String>,
        cached: &'a BTreeMap<String, String>,
        asker: Option<&'a mut dyn Asker>,
    ) -> Self {
        Resolver {
            flags,
            defs,
            predefined,
            env,
            cached,
            asker,
            answers: BTreeMap::new(),
            resolved: HashMap::new(),
            resolving: Vec::new(),
            no_commands: false,
        }
    }

    /// The value of `name`, computed on first use.
    pub fn get(&mut self, name: &str) -> Result<VarValue, ConfigError> {
        if let Some(v) = self.resolved.get(name) {
            return Ok(v.clone());
        }
        if self.resolving.iter().any(|n| n == name) {
            return Err(ConfigError::Var {
                name: name.to_string(),
                message: format!(
                    "refers to itself ({} -> {name})",
                    self.resolving.join(" -> ")
                ),
            });
        }
        self.resolving.push(name.to_string());
        let result = self.compute(name);
        self.resolving.pop();
        let value = result?;
        self.resolved.insert(name.to_string(), value.clone());
        Ok(value)
    }

    fn compute(&mut self, name: &str) -> Result<VarValue, ConfigError> {
        if let Some(v) = self.flags.get(name) {
            return Ok(VarValue::String(v.clone()));
        }
        if let Some(v) = self.predefined.get(name)? {
            return Ok(VarValue::String(v));
        }
        let Some(def) = self.defs.iter().find(|d| d.name == name).cloned() else {
            return self.env_cache_or_ask(name, &VarDef::default(), true);
        };
        if let Some(value) = &def.value {
            return self.nested(value);
        }
        if def.command.is_some() || !def.commands.is_empty() {
            return self.run_command(&def).map(VarValue::String);
        }
        match def.source.as_deref().unwrap_or("all") {
            "all" | "" => self.env_cache_or_ask(name, &def, true),
            "input" => self.env_cache_or_ask(name, &def, false),
            "env" => match self.env_value(name) {
                Some(v) => Ok(VarValue::String(v)),
                None => def.default.clone().map(|d| self.nested(&d)).unwrap_or_else(|| {
                    Err(ConfigError::Var {
                        name: name.to_string(),
                        message: format!(
                            "couldn't find environment variable {name}, but is needed for loading the config"
                        ),
                    })
                }),
            },
            "none" => def.default.clone().map(|d| self.nested(&d)).unwrap_or_else(|| {
                Err(ConfigError::Var {
                    name: name.to_string(),
                    message: "source is 'none' but the default value is empty".into(),
                })
            }),
            "command" => Err(ConfigError::Var {
                name: name.to_string(),
                message: "source is 'command' but no `command` is given".into(),
            }),
            other => Err(ConfigError::Var {
                name: name.to_string(),
                message: format!(
                    "unrecognized variable source '{other}' (expected all, input, env, none or command)"
                ),
            }),
        }
    }

    /// A `value`/`default` may itself contain references.
    fn nested(&mut self, value: &VarValue) -> Result<VarValue, ConfigError> {
        match value {
            VarValue::String(s) => {
                let mut lookup = |n: &str| self.get(n);
                Ok(substitute_str(s, &mut lookup)?.unwrap_or_else(|| value.clone()))
            }
            other => Ok(other.clone()),
        }
    }

    fn env_value(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    fn env_cache_or_ask(
        &mut self,
        name: &str,
        def: &VarDef,
        use_env: bool,
    ) -> Result<VarValue, ConfigError> {
        if use_env && let Some(v) = self.env_value(name) {
            return Ok(VarValue::String(v));
        }
        if let Some(v) = self.cached.get(name) {
            return Ok(VarValue::String(v.clone()));
        }
        let default = match (&def.default, def.options.first()) {
            (Some(VarValue::String(s)), _) => s.clone(),
            (Some(VarValue::Null) | None, Some(first)) => first.clone(),
            (Some(VarValue::Null) | None, None) => String::new(),
            (Some(other), _) => other.to_string(),
        };
        let Some(asker) = self.asker.as_deref_mut() else {
            // Without a terminal a given default is the answer DevSpace would pre-fill.
            if def.default.is_some() || !def.options.is_empty() {
                return Ok(VarValue::String(default));
            }
            return Err(ConfigError::UndefinedVar {
                name: name.to_string(),
            });
        };
        let question = def
            .question
            .clone()
            .unwrap_or_else(|| format!("Please enter a value for {name}"));
        let pattern = match &def.validation_pattern {
            Some(p) => Some(regex::Regex::new(p).map_err(|e| ConfigError::Var {
                name: name.to_string(),
                message: format!("invalid validationPattern: {e}"),
            })?),
            None => None,
        };
        loop {
            let answer = asker
                .ask(Question {
                    text: &question,
                    default: &default,
                    options: &def.options,
                    password: def.password == Some(true),
                })
                .map_err(|e| ConfigError::Var {
                    name: name.to_string(),
                    message: format!("cannot read an answer: {e}"),
                })?;
            if !def.options.is_empty() && !def.options.contains(&answer) {
                crate::ui::write_stderr(&format!(
                    "please answer one of: {}\n",
                    def.options.join(", ")
                ));
                continue;
            }
            if let Some(re) = &pattern
                && !re.is_match(&answer)
            {
                crate::ui::write_stderr(&format!(
                    "{}\n",
                    def.validation_message
                        .clone()
                        .unwrap_or_else(|| format!("answer must match {re}"))
                ));
                continue;
            }
            self.answers.insert(name.to_string(), answer.clone());
            return Ok(VarValue::String(answer));
        }
    }

    fn run_command(&mut self, def: &VarDef) -> Result<String, ConfigError> {
        let err = |message: String| ConfigError::Var {
            name: def.name.clone(),
            message,
        };
        if self.no_commands {
            return Err(err("commands are not run in this load".into()));
        }
        let command = def
            .commands
            .iter()
            .find(|c| {
                c.os.as_deref()
                    .is_none_or(|os| os.split(',').any(|o| o.trim() == std::env::consts::OS))
            })
            .map(|c| c.command.clone())
            .or_else(|| def.command.clone())
            .ok_or_else(|| err(format!("no command for this OS ({})", std::env::consts::OS)))?;
        let mut args = Vec::with_capacity(def.args.len());
        for a in &def.args {
            let mut lookup = |n: &str| self.get(n);
            args.push(expand(a, &mut lookup)?);
        }
        // Like DevSpace: a bare command string runs in a shell, with args it runs directly.
        // No timeout (DevSpace has none; a command may legitimately take long): it stays in
        // our process group, so Ctrl-C at the terminal stops it and what it started.
        let spec = if args.is_empty() {
            Spec::shell(&command)
        } else {
            Spec::new(&command).args(&args)
        };
        let output = process::run(&spec).map_err(|e| match e {
            RunError::Spawn { source, .. } => err(format!("cannot run `{command}`: {source}")),
            other => err(format!("cannot run `{command}`: {other}")),
        })?;
        if !output.status.success() {
            return Err(err(format!(
                "command `{command}` failed ({}): {}",
                output.status,
                output.stderr_text()
            )));
        }
        Ok(output.stdout_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(s: &str, vars: &[(&str, serde_json::Value)]) -> Result<Option<VarValue>, ConfigError> {
        let map: HashMap<_, _> = vars.iter().cloned().collect();
        let mut lookup = |n: &str| {
            map.get(n)
                .cloned()
                .ok_or_else(|| ConfigError::UndefinedVar {
                    name: n.to_string(),
                })
        };
        substitute_str(s, &mut lookup)
    }

    #[test]
    fn substitution_table() {
        let vars = [
            ("A", json!("x")),
            ("N", json!("0123")),
            ("T", json!("t")),
            ("I", json!(5)),
            ("L", json!(["a"])),
        ];
        let cases: &[(&str, Option<VarValue>)] = &[
            ("plain", None),
            ("${A}", Some(json!("x"))),
            ("pre-${A}-post", Some(json!("pre-x-post"))),
            ("${N}", Some(json!(123))),
            ("$!{N}", Some(json!("0123"))),
            ("${T}", Some(json!(true))),
            ("v${N}", Some(json!("v0123"))),
            ("${I}", Some(json!(5))),
            ("n${I}", Some(json!("n5"))),
            ("$${A}", Some(json!("${A}"))),
            ("$${A}-${A}", Some(json!("${A}-x"))),
            ("${A}$!{A}", Some(json!("xx"))),
            ("${L}", Some(json!(["a"]))),
            ("$ {A}", None),
            ("${}", None),
        ];
        for (input, want) in cases {
            assert_eq!(&sub(input, &vars).unwrap(), want, "{input}");
        }
        let err = sub("x${L}", &vars).unwrap_err().to_string();
        assert!(err.contains("is not a string"), "{err}");
        assert!(matches!(
            sub("${MISSING}", &vars),
            Err(ConfigError::UndefinedVar { .. })
        ));
    }

    #[test]
    fn coercion_follows_go_rules() {
        assert_eq!(coerce("0123"), json!(123));
        assert_eq!(coerce("-5"), json!(-5));
        assert_eq!(coerce("F"), json!(false));
        assert_eq!(coerce("1.5"), json!("1.5"));
        assert_eq!(coerce("yes"), json!("yes"));
        assert_eq!(coerce("0x10"), json!("0x10"));
    }

    #[test]
    fn var_flags_split_on_commas() {
        let got = parse_var_flags(&["A=1,B= 2 ".into(), "C=x=y".into()]).unwrap();
        assert_eq!(got["A"], "1");
        assert_eq!(got["B"], "2");
        assert_eq!(got["C"], "x=y");
        let err = parse_var_flags(&["A=1,b".into()]).unwrap_err().to_string();
        assert_eq!(
            err,
            "wrong --var format: `b`, expected KEY=VALUE with a non-empty KEY"
        );
        for bad in ["=x", " =x", "A=1,=2", "a b=1", "${A}=1"] {
            assert!(parse_var_flags(&[bad.into()]).is_err(), "{bad}");
            assert!(check_var_flag(bad).is_err(), "{bad}");
        }
        assert_eq!(check_var_flag("A=,B=x").as_deref(), Ok("A=,B=x"));
    }

    struct Script(Vec<String>);
    impl Asker for Script {
        fn ask(&mut self, _q: Question<'_>) -> std::io::Result<String> {
            Ok(self.0.remove(0))
        }
    }

    fn resolver<'a>(
        defs: Vec<VarDef>,
        env: &'a dyn Fn(&str) -> Option<String>,
        cached: &'a BTreeMap<String, String>,
        asker: Option<&'a mut dyn Asker>,
    ) -> Resolver<'a> {
        let flags = parse_var_flags(&["FLAG=f,DEVSPACE_RANDOM=fixed".into()]).unwrap();
        Resolver::new(flags, defs, Predefined::for_tests(), env, cached, asker)
    }

    fn def(name: &str, source: Option<&str>, default: Option<VarValue>) -> VarDef {
        VarDef {
            name: name.into(),
            source: source.map(str::to_string),
            default,
            ..VarDef::default()
        }
    }

    #[test]
    fn resolution_order_and_sources() {
        let env = |n: &str| match n {
            "FROM_ENV" | "ENV_SRC" | "INPUT_SRC" => Some("env".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cached: BTreeMap<String, String> = [
            ("CACHED".to_string(), "c".to_string()),
            ("INPUT_SRC".into(), "ci".into()),
        ]
        .into();
        let defs = vec![
            def("ENV_SRC", Some("env"), None),
            def("ENV_DEFAULT", Some("env"), Some(json!(7))),
            def("NONE", Some("none"), Some(json!("d"))),
            def("NONE_EMPTY", Some("none"), None),
            def("INPUT_SRC", Some("input"), None),
            def("BAD", Some("vault"), None),
            def("WITH_DEFAULT", None, Some(json!("dflt"))),
            VarDef {
                name: "VALUE".into(),
                value: Some(json!("v-${FLAG}")),
                ..VarDef::default()
            },
            VarDef {
                name: "CMD".into(),
                command: Some("echo hi".into()),
                ..VarDef::default()
            },
            VarDef {
                name: "CMD_ARGS".into(),
                command: Some("echo".into()),
                args: vec!["a".into(), "${FLAG}".into()],
                ..VarDef::default()
            },
        ];
        let mut r = resolver(defs, &env, &cached, None);
        assert_eq!(r.get("FLAG").unwrap(), json!("f"));
        assert_eq!(r.get("DEVSPACE_RANDOM").unwrap(), json!("fixed"));
        assert_eq!(r.get("FROM_ENV").unwrap(), json!("env"));
        assert_eq!(r.get("CACHED").unwrap(), json!("c"));
        assert_eq!(r.get("ENV_SRC").unwrap(), json!("env"));
        assert_eq!(r.get("ENV_DEFAULT").unwrap(), json!(7));
        assert_eq!(r.get("NONE").unwrap(), json!("d"));
        assert_eq!(r.get("INPUT_SRC").unwrap(), json!("ci"));
        assert_eq!(r.get("WITH_DEFAULT").unwrap(), json!("dflt"));
        assert_eq!(r.get("VALUE").unwrap(), json!("v-f"));
        assert_eq!(r.get("CMD").unwrap(), json!("hi"));
        assert_eq!(r.get("CMD_ARGS").unwrap(), json!("a f"));
        assert!(matches!(
            r.get("EMPTY"),
            Err(ConfigError::UndefinedVar { .. })
        ));
        assert!(
            r.get("NONE_EMPTY")
                .unwrap_err()
                .to_string()
                .contains("none")
        );
        assert!(
            r.get("BAD")
                .unwrap_err()
                .to_string()
                .contains("unrecognized")
        );
        assert!(r.answers.is_empty());
    }

    #[test]
    fn questions_are_asked_once_and_validated() {
        let env = |_: &str| None;
        let cached = BTreeMap::new();
        let mut script = Script(vec!["bad".into(), "42".into()]);
        let defs = vec![VarDef {
            name: "PORT".into(),
            validation_pattern: Some("^[0-9]+$".into()),
            ..VarDef::default()
        }];
        let mut r = resolver(defs, &env, &cached, Some(&mut script));
        assert_eq!(r.get("PORT").unwrap(), json!("42"));
        assert_eq!(r.get("PORT").unwrap(), json!("42"));
        assert_eq!(r.answers.get("PORT").map(String::as_str), Some("42"));
    }

    #[test]
    fn self_reference_is_an_error() {
        let env = |_: &str| None;
        let cached = BTreeMap::new();
        let defs = vec![VarDef {
            name: "X".into(),
            value: Some(json!("${X}")),
            ..VarDef::default()
        }];
        let mut r = resolver(defs, &env, &cached, None);
        assert!(
            r.get("X")
                .unwrap_err()
                .to_string()
                .contains("refers to itself")
        );
    }
}
