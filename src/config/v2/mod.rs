//! The DevSpace 6 (`version: v2beta1`) front end: loads a v2beta1 file into the same
//! [`Config`] model as the 4.x/5.x loader, and ([`convert`]) writes any loaded model back as a
//! v2beta1 document (`devspace print` of a v2beta1 config, `devspace print --convert`).
//!
//! Order as DevSpace 6 (`loader.go`): local `imports` are merged, profiles are applied to the
//! raw document (activation by env/vars first, then `-p` in order; each chain parents first;
//! `replace` → `merge` → `patches`), `vars` leave the document and every `${VAR}` outside the
//! runtime locations (pipelines, commands, functions, hooks) is filled, whole-string `$(cmd)`
//! expressions run, then the strict check against the v2beta1 tables ([`schema`]) and the
//! conversion into the model ([`model`]). Positions survive every step, so errors name the
//! line and column (imported nodes say which import brought them).
//!
//! v6 variable rules that differ from 5.x: an undefined `${X}` takes the environment's `X` if
//! set, else stays literal (no question); `${runtime.*}` stays literal at load time and is
//! filled when an image is built (custom command) or a deployment is rendered (Helm values);
//! dotted predefined names (`devspace.git.branch`) alias `DEVSPACE_GIT_BRANCH`.

pub mod convert;
pub mod model;
pub mod runtime;
pub mod schema;

use super::error::{ConfigError, Location};
use super::schema::{Checker, Ty, V2};
use super::yaml::{self, Node, ScalarType, Value};
use super::{ConfigSource, LoadOptions, Loaded, predefined, profiles, vars};
use crate::process::{self, RunError, Spec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The version string of DevSpace 6 configs.
pub const VERSION: &str = "v2beta1";

/// Whether the file at `path` declares `version: v2beta1` (read and parsed, nothing resolved;
/// `false` when it cannot be read or parsed).
pub fn is_v2_file(path: &Path) -> bool {
    crate::yaml::limits::read_file(path)
        .ok()
        .and_then(|text| yaml::parse(&text).ok())
        .is_some_and(|p| p.root.get("version").and_then(Node::as_str) == Some(VERSION))
}

/// Top-level sections of a v2beta1 file this tool keeps (for `print`) but does not run.
pub const NOT_RUN: [&str; 7] = [
    "dev",
    "commands",
    "hooks",
    "localRegistry",
    "dependencies",
    "require",
    "functions",
];

/// Sections an import contributes (map sections: only keys the importer lacks).
const IMPORTED_MAPS: [&str; 11] = [
    "require",
    "vars",
    "dev",
    "deployments",
    "images",
    "pipelines",
    "commands",
    "functions",
    "pullSecrets",
    "dependencies",
    "localRegistry",
];

/// Most nested imports followed before giving up (DevSpace has no limit; a cycle is caught
/// separately).
const MAX_IMPORT_DEPTH: usize = 16;

/// Loads a parsed v2beta1 document (called by [`super::load_with`] after the version check).
pub fn load<'a>(
    opts: &'a LoadOptions,
    env: &'a dyn Fn(&str) -> Option<String>,
    asker: Option<&'a mut dyn vars::Asker>,
    path: PathBuf,
    root: PathBuf,
    src: String,
    parsed: yaml::Parsed,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    // DevSpace 6 users' files repeat top-level keys (the corpus has a second `pipelines:`);
    // the later definition wins, as the YAML decoder keeps the last one, with a warning.
    for (key, at, first) in &parsed.duplicates {
        warnings.push(format!(
            "{}:{}: key `{key}` is defined again (first on line {}); the later definition is used",
            path.display(),
            at.line,
            first.line
        ));
    }
    let mut doc = parsed.root;
    let checker = Checker {
        version: V2,
        file: &path,
        src: &src,
    };
    if !matches!(doc.value, Value::Map(_)) {
        checker.check(&doc, &Ty::Obj(schema::ROOT), "")?;
    }

    // Imports (local paths only), before profiles, the importer winning per key.
    if let Some(imports) = doc.remove("imports") {
        checker.check(&imports, &Ty::ListOf(&Ty::Obj(schema::IMPORT)), "imports")?;
        let flags = vars::parse_var_flags(&opts.vars)?;
        let mut seen = vec![std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())];
        merge_imports(&mut doc, &imports, &root, &path, &flags, env, &mut seen, 0)?;
    }

    // Profiles: activation first (config order), then `-p` in order; the last occurrence counts.
    let profiles_node = doc.remove("profiles");
    if let Some(p) = &profiles_node {
        checker.check(p, &Ty::ListOf(&Ty::Obj(schema::PROFILE)), "profiles")?;
    }
    let profile_list: &[Node] = match profiles_node.as_ref().map(|p| &p.value) {
        Some(Value::Seq(items)) => items,
        _ => &[],
    };
    let flags = vars::parse_var_flags(&opts.vars)?;
    let mut selected: Vec<String> = Vec::new();
    {
        for p in profile_list {
            if activated(p, &doc, &flags, env).map_err(|message| ConfigError::Invalid {
                path: path.clone(),
                at: Some(Location::new(&path, &src, p.pos, None)),
                message,
            })? && let Some(name) = p.get("name").and_then(Node::scalar_text)
            {
                selected.push(name.to_string());
            }
        }
    }
    selected.extend(opts.profiles.iter().cloned());
    let mut ordered: Vec<String> = Vec::new();
    for (i, name) in selected.iter().enumerate() {
        if !selected[i + 1..].contains(name) {
            ordered.push(name.clone());
        }
    }
    let ctx = profiles::Ctx {
        file: &path,
        src: &src,
    };
    for name in &ordered {
        for profile in profiles::chain(profile_list, name, &ctx)? {
            let profile = adjust_patches(profile, &doc);
            profiles::apply(&mut doc, &profile, &ctx)?;
        }
    }

    // Vars leave the document; every string outside the runtime locations is filled.
    let var_defs = match doc.remove("vars") {
        Some(v) => parse_var_defs(&checker, &v, &path, &src, &mut warnings)?,
        None => Vec::new(),
    };
    let name = doc
        .get("name")
        .and_then(Node::scalar_text)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| default_name(&root));
    let predefined = predefined::Predefined {
        root: root.clone(),
        profiles: ordered.clone(),
        kube_context: opts.kube_context.clone(),
        namespace: opts.namespace.clone(),
        env,
    };
    let defined: Vec<String> = var_defs.iter().map(|d| d.name.clone()).collect();
    let mut resolver =
        vars::Resolver::new(flags, var_defs, predefined, env, &opts.cached_vars, asker);
    let extra = Predefined6 {
        name: name.clone(),
        profiles: ordered.join(" "),
        env,
    };
    let locate = |e: ConfigError, node: &Node| ConfigError::Located {
        at: Location::new(&path, &src, node.pos, node.profile.as_deref()),
        source: Box::new(e),
    };
    {
        let mut lookup = |n: &str| lookup6(n, &mut resolver, &defined, &extra);
        let Value::Map(entries) = &mut doc.value else {
            unreachable!("checked above")
        };
        for (key, node) in entries.iter_mut() {
            if RUNTIME_SECTIONS.contains(&key.name.as_str()) {
                continue;
            }
            vars::substitute_tree(node, &mut lookup, &locate)?;
            run_expressions(node, &root, &path, &src)?;
        }
    }
    let new_var_answers = std::mem::take(&mut resolver.answers);
    drop(resolver);

    // Pipelines may be a string (the script) or an object.
    if let Some(pipelines) = doc.get("pipelines") {
        let Value::Map(entries) = &pipelines.value else {
            return Err(checker_wrong(&checker, pipelines, "pipelines", "a mapping"));
        };
        for (k, v) in entries {
            if !matches!(v.value, Value::Scalar { .. }) {
                checker.check(
                    v,
                    &Ty::Obj(schema::PIPELINE),
                    &format!("pipelines.{}", k.name),
                )?;
            }
        }
    }
    let checked = checker.check(&doc, &Ty::Obj(schema::ROOT), "")?;
    let locate_key = |section: &str, key: &str| {
        let (k, v) = doc
            .get(section)?
            .as_map()?
            .iter()
            .find(|(k, _)| k.name == key)?;
        Some(Location::new(&path, &src, k.pos, v.profile.as_deref()))
    };
    let (config, more) = model::to_model(checked, &name, &root, &path, &locate_key)?;
    warnings.extend(more);
    let unused_sections = config
        .other
        .keys()
        .filter(|k| NOT_RUN.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(Loaded {
        config,
        source: ConfigSource {
            path,
            root,
            profiles: ordered,
        },
        new_var_answers,
        unused_sections,
        warnings,
    })
}

/// DevSpace 6's patch rules on top of the 5.x engine: `replace` of a missing dotted path
/// becomes `add`, `remove` of a missing dotted path is skipped (`ParseProfile`).
fn adjust_patches(profile: &Node, doc: &Node) -> Node {
    let mut profile = profile.clone();
    let Some(Value::Seq(patches)) = profile.get_mut("patches").map(|p| &mut p.value) else {
        return profile;
    };
    patches.retain_mut(|patch| {
        let Some(path) = patch.get("path").and_then(Node::scalar_text) else {
            return true;
        };
        // Slash paths keep yaml-patch semantics; selectors (`a.name=x.b`) are not looked up.
        if path.starts_with('/') || path.contains('=') || path.contains('?') {
            return true;
        }
        let exists = exists_at(doc, &profiles::to_pointer(path));
        match patch.get("op").and_then(Node::scalar_text) {
            Some("replace") if !exists => {
                if let Some(op) = patch.get_mut("op") {
                    let mut add = Node::string("add");
                    add.pos = op.pos;
                    add.span = op.span.clone();
                    add.profile = op.profile.clone();
                    *op = add;
                }
                true
            }
            Some("remove") => exists,
            _ => true,
        }
    });
    profile
}

/// Whether the JSON pointer `pointer` names a node of `doc`.
fn exists_at(doc: &Node, pointer: &str) -> bool {
    let mut node = doc;
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        let next = match &node.value {
            Value::Map(_) => node.get(&seg),
            Value::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Scalar { .. } | Value::Alias => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

/// Sections whose text is resolved when it runs, never at load time.
const RUNTIME_SECTIONS: [&str; 4] = ["pipelines", "commands", "functions", "hooks"];

fn checker_wrong(
    checker: &Checker<'_>,
    node: &Node,
    path: &str,
    expected: &'static str,
) -> ConfigError {
    ConfigError::WrongType {
        at: Location::new(checker.file, checker.src, node.pos, node.profile.as_deref()),
        key_path: path.to_string(),
        expected,
        found: node.kind_name(),
    }
}

/// DevSpace's `encoding.Convert`: lower case, `@ / . :` and whitespace become `-`, other
/// characters outside `[a-z0-9-]` are dropped, at most 63 characters.
pub fn convert_name(raw: &str) -> String {
    let mut out: String = raw
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            '@' | '/' | '.' | ':' => Some('-'),
            c if c.is_whitespace() => Some('-'),
            c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' => Some(c),
            _ => None,
        })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

/// The config name DevSpace 6 uses when `name` is missing: the converted directory name
/// (`devspace` for names of 2 characters or less).
pub fn default_name(root: &Path) -> String {
    let name = convert_name(
        &root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    if name.len() <= 2 {
        "devspace".to_string()
    } else {
        name
    }
}

/// Whether a profile's `activation` matches: entries are ORed, the keys inside one are ANDed,
/// each value is a regex anchored at both ends.
fn activated(
    profile: &Node,
    doc: &Node,
    flags: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    let Some(Value::Seq(entries)) = profile.get("activation").map(|a| &a.value) else {
        return Ok(false);
    };
    let var_value = |name: &str| -> Option<String> {
        if let Some(v) = flags.get(name) {
            return Some(v.clone());
        }
        let def = doc.get("vars")?.get(name)?;
        match &def.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            Value::Map(_) => def
                .get("value")
                .or_else(|| def.get("default"))
                .and_then(Node::scalar_text)
                .map(str::to_string)
                .or_else(|| env(name)),
            Value::Seq(_) | Value::Alias => None,
        }
    };
    for entry in entries {
        let mut all = true;
        for (section, get) in [
            (
                "env",
                &(|n: &str| env(n)) as &dyn Fn(&str) -> Option<String>,
            ),
            ("vars", &var_value),
        ] {
            let Some(map) = entry.get(section).and_then(Node::as_map) else {
                continue;
            };
            for (k, v) in map {
                let pattern = v.scalar_text().unwrap_or_default();
                let re = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("activation {section}.{}: invalid regex: {e}", k.name))?;
                all &= re.is_match(&get(&k.name).unwrap_or_default());
            }
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `vars:` of a v2beta1 file: a map of name → string (`value`, or `command` when written
/// `$(…)`) or object.
fn parse_var_defs(
    checker: &Checker<'_>,
    node: &Node,
    path: &Path,
    src: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<vars::VarDef>, ConfigError> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let Value::Map(entries) = &node.value else {
        return Err(checker_wrong(checker, node, "vars", "a mapping"));
    };
    let name_re = regex::Regex::new(r"^[A-Za-z0-9]([A-Za-z0-9\-_]*[A-Za-z0-9])?$").expect("regex");
    let mut out = Vec::new();
    for (k, v) in entries {
        let at = || Some(Location::new(path, src, k.pos, v.profile.as_deref()));
        if !name_re.is_match(&k.name) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                at: at(),
                message: format!(
                    "var name `{}` is invalid: it must match [A-Za-z0-9]([A-Za-z0-9-_]*[A-Za-z0-9])?",
                    k.name
                ),
            });
        }
        if k.name.starts_with("DEVSPACE_") && k.name.ends_with("_FLAGS") {
            warnings.push(format!(
                "{}:{}: vars.{} (extra default flags) is not applied by this tool; pass the flags on the command line",
                path.display(),
                k.pos.line,
                k.name
            ));
        }
        let def = match &v.value {
            Value::Scalar { text, ty, .. } => {
                let mut def = vars::VarDef {
                    name: k.name.clone(),
                    ..Default::default()
                };
                match whole_expression(text) {
                    Some(cmd) if matches!(ty, ScalarType::Str) => {
                        def.command = Some(cmd.to_string())
                    }
                    _ => def.value = Some(v.to_json()),
                }
                def
            }
            _ => {
                let mut checked =
                    checker.check(v, &Ty::Obj(schema::VAR), &format!("vars.{}", k.name))?;
                if let serde_json::Value::Object(m) = &mut checked {
                    m.insert("name".into(), serde_json::Value::String(k.name.clone()));
                }
                let mut def: vars::VarDef =
                    serde_json::from_value(checked).map_err(|e| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        at: at(),
                        message: format!("vars.{}: {e}", k.name),
                    })?;
                def.name = k.name.clone();
                if def.value.as_ref().is_some_and(|v| v.is_null()) {
                    def.value = None;
                }
                def
            }
        };
        out.push(def);
    }
    Ok(out)
}

/// `$(cmd)` when `text` is exactly one expression.
pub fn whole_expression(text: &str) -> Option<&str> {
    let t = text.trim();
    let inner = t.strip_prefix("$(")?.strip_suffix(')')?;
    // `$(a) $(b)` is not one expression.
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then_some(inner)
}

/// The v6 predefined variables the 4.x/5.x resolver does not know.
struct Predefined6<'a> {
    name: String,
    profiles: String,
    env: &'a dyn Fn(&str) -> Option<String>,
}

const PREDEFINED_5: [&str; 8] = [
    "DEVSPACE_RANDOM",
    "DEVSPACE_TIMESTAMP",
    "DEVSPACE_VERSION",
    "DEVSPACE_PROFILE",
    "DEVSPACE_GIT_COMMIT",
    "DEVSPACE_GIT_BRANCH",
    "DEVSPACE_CONTEXT",
    "DEVSPACE_NAMESPACE",
];

/// One variable as DevSpace 6 resolves it at load time.
fn lookup6(
    raw: &str,
    resolver: &mut vars::Resolver<'_>,
    defined: &[String],
    extra: &Predefined6<'_>,
) -> Result<vars::VarValue, ConfigError> {
    use serde_json::Value as J;
    if raw.starts_with("runtime.") {
        return Ok(J::String(format!("${{{raw}}}")));
    }
    // Old dotted names alias the DEVSPACE_* ones.
    let name = match raw.strip_prefix("devspace.") {
        Some(rest) => format!("DEVSPACE_{}", rest.replace('.', "_").to_ascii_uppercase()),
        None => raw.to_string(),
    };
    if resolver.flags.contains_key(&name) || defined.contains(&name) {
        return resolver.get(&name);
    }
    let upper = name.to_ascii_uppercase();
    match upper.as_str() {
        "DEVSPACE_NAME" => return Ok(J::String(extra.name.clone())),
        "DEVSPACE_PROFILES" => return Ok(J::String(extra.profiles.clone())),
        "DEVSPACE_USER_HOME" => {
            return Ok(J::String((extra.env)("HOME").unwrap_or_default()));
        }
        "DEVSPACE_TMPDIR" => {
            return Ok(J::String(std::env::temp_dir().display().to_string()));
        }
        "DEVSPACE_EXECUTABLE" => {
            return Ok(J::String(
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "devspace".into()),
            ));
        }
        "DEVSPACE_KUBECTL_EXECUTABLE" => return Ok(J::String("kubectl".into())),
        "DEVSPACE_SPACE" => return resolver.get("DEVSPACE_NAMESPACE"),
        _ => {}
    }
    if PREDEFINED_5.contains(&upper.as_str()) {
        return resolver.get(&upper);
    }
    // Undefined: the environment, else the reference stays as written.
    match (extra.env)(&name).filter(|v| !v.is_empty()) {
        Some(v) => Ok(J::String(v)),
        None => Ok(J::String(format!("${{{raw}}}"))),
    }
}

/// Runs every whole-string `$(cmd)` scalar below `node` in `sh -c` (cwd = the config
/// directory) and puts its trimmed output in place (typed like DevSpace: empty → `true`).
fn run_expressions(
    node: &mut Node,
    root: &Path,
    path: &Path,
    src: &str,
) -> Result<(), ConfigError> {
    match &mut node.value {
        Value::Scalar {
            text,
            ty: ScalarType::Str,
            ..
        } => {
            // `$$(…)` is an escaped expression: the text `$(…)`.
            if text.trim_start().starts_with("$$(") && whole_expression(&text[1..]).is_some() {
                text.remove(text.find('$').unwrap_or(0));
                return Ok(());
            }
            let Some(cmd) = whole_expression(text).map(str::to_string) else {
                return Ok(());
            };
            // No timeout (DevSpace has none); in our process group, so Ctrl-C stops it.
            let output = process::run(&Spec::shell(&cmd).cwd(root));
            let fail = |message: String| ConfigError::Invalid {
                path: path.to_path_buf(),
                at: Some(Location::new(path, src, node.pos, node.profile.as_deref())),
                message,
            };
            let output = output.map_err(|e| match e {
                RunError::Spawn { source, .. } => fail(format!("cannot run `{cmd}`: {source}")),
                other => fail(format!("cannot run `{cmd}`: {other}")),
            })?;
            let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
            let value = if !output.status.success() {
                if output.status.code() == Some(1) && stdout.is_empty() && output.stderr.is_empty()
                {
                    serde_json::Value::Bool(false)
                } else {
                    return Err(fail(format!(
                        "expression `$({cmd})` failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    )));
                }
            } else if stdout.is_empty() {
                serde_json::Value::Bool(true)
            } else {
                vars::coerce(&stdout)
            };
            let pos = node.pos;
            let profile = node.profile.take();
            *node = Node::from_json(&value, pos);
            node.profile = profile;
        }
        Value::Scalar { .. } | Value::Alias => {}
        Value::Seq(items) => {
            for n in items {
                run_expressions(n, root, path, src)?;
            }
        }
        Value::Map(entries) => {
            for (_, n) in entries {
                run_expressions(n, root, path, src)?;
            }
        }
    }
    Ok(())
}

/// Merges the `imports` of `doc` (recursively): map sections get the keys they lack,
/// `profiles` and `hooks` are appended. Only local paths; `git` imports are refused.
#[allow(clippy::too_many_arguments)]
fn merge_imports(
    doc: &mut Node,
    imports: &Node,
    root: &Path,
    file: &Path,
    flags: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    seen: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), ConfigError> {
    let Value::Seq(entries) = &imports.value else {
        return Ok(());
    };
    let invalid = |message: String| ConfigError::Invalid {
        path: file.to_path_buf(),
        at: None,
        message,
    };
    if depth >= MAX_IMPORT_DEPTH {
        return Err(invalid(format!(
            "imports are nested more than {MAX_IMPORT_DEPTH} levels deep"
        )));
    }
    for (i, entry) in entries.iter().enumerate() {
        if entry.get("enabled").is_some_and(|e| {
            matches!(
                e.value,
                Value::Scalar {
                    ty: ScalarType::Bool(false),
                    ..
                }
            )
        }) {
            continue;
        }
        if entry.get("git").is_some_and(|g| !g.is_null()) {
            return Err(invalid(format!(
                "imports[{i}] (line {}): git imports are not supported; clone the repository and import it with `path:`",
                entry.pos.line
            )));
        }
        let Some(raw) = entry.get("path").and_then(Node::scalar_text) else {
            return Err(invalid(format!(
                "imports[{i}] (line {}): needs `path` (or `git`)",
                entry.pos.line
            )));
        };
        let mut lookup = |n: &str| -> Result<vars::VarValue, ConfigError> {
            Ok(serde_json::Value::String(
                flags
                    .get(n)
                    .cloned()
                    .or_else(|| env(n).filter(|v| !v.is_empty()))
                    .unwrap_or_else(|| format!("${{{n}}}")),
            ))
        };
        let expanded = vars::expand(raw, &mut lookup)?;
        if expanded.contains("://") {
            return Err(invalid(format!(
                "imports[{i}]: `{expanded}`: imports by URL are not supported, only local paths"
            )));
        }
        let mut target = super::upgrade::resolve_path(root, &expanded);
        if target.is_dir() {
            target = target.join(super::CONFIG_FILE);
        }
        let canonical = std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        let text = crate::yaml::limits::read_file(&target).map_err(|source| ConfigError::Read {
            path: target.clone(),
            source,
        })?;
        let parsed = yaml::parse(&text).map_err(|e| ConfigError::Syntax {
            at: Location::new(&target, &text, e.pos, None),
            message: e.message,
        })?;
        let mut imported = parsed.root;
        let version = imported.get("version").and_then(Node::scalar_text);
        if version != Some(VERSION) {
            return Err(invalid(format!(
                "imports[{i}]: {} declares version `{}`, but an imported file must have the importer's version {VERSION}",
                target.display(),
                version.unwrap_or("(none)")
            )));
        }
        let label: Arc<str> = Arc::from(format!("import {}", target.display()));
        imported.mark_profile(&label);
        if let Some(nested) = imported.remove("imports") {
            let dir = target.parent().unwrap_or(root).to_path_buf();
            merge_imports(
                &mut imported,
                &nested,
                &dir,
                &target,
                flags,
                env,
                seen,
                depth + 1,
            )?;
        }
        for section in IMPORTED_MAPS {
            let Some(Value::Map(theirs)) = imported.remove(section).map(|n| n.value) else {
                continue;
            };
            match doc.get_mut(section) {
                Some(mine) if matches!(mine.value, Value::Map(_)) => {
                    let Value::Map(ours) = &mut mine.value else {
                        unreachable!()
                    };
                    for (k, v) in theirs {
                        if !ours.iter().any(|(o, _)| o.name == k.name) {
                            ours.push((k, v));
                        }
                    }
                }
                Some(_) => {}
                None => doc.set(section, Node::new(Value::Map(theirs))),
            }
        }
        for section in ["profiles", "hooks"] {
            let Some(Value::Seq(theirs)) = imported.remove(section).map(|n| n.value) else {
                continue;
            };
            match doc.get_mut(section).map(|n| &mut n.value) {
                Some(Value::Seq(ours)) => ours.extend(theirs),
                _ => doc.set(section, Node::new(Value::Seq(theirs))),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_converted_like_devspace() {
        assert_eq!(convert_name("My Project.v2"), "my-project-v2");
        assert_eq!(default_name(Path::new("/x/ab")), "devspace");
        assert_eq!(convert_name("app@x:y/z"), "app-x-y-z");
    }

    #[test]
    fn whole_expressions() {
        assert_eq!(
            whole_expression("$(git describe --always)"),
            Some("git describe --always")
        );
        assert_eq!(whole_expression("x-$(a)"), None);
        assert_eq!(whole_expression("$(a) $(b)"), None);
    }
}
