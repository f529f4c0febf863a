//! Loading `devspace.yaml`: find it (upward search or `--config`), parse it into a positioned
//! tree, check the declared version, apply profiles, substitute vars, check strictly against
//! the declared version's schema, upgrade to the one model, resolve paths, validate.
//!
//! Order follows DevSpace (surface §1.2): profiles before vars (so patch values may use
//! `${VAR}`), vars before the strict check (so coerced values are type-checked). Every node
//! keeps its source position through all steps, so errors point at the user's line even
//! when a profile introduced the value.

pub mod error;
pub mod model;
pub mod predefined;
pub mod profiles;
pub mod schema;
pub mod upgrade;
pub mod v2;
pub mod vars;
/// The positioned YAML tree lives in [`crate::yaml`]; re-exported for config code.
pub use crate::yaml;

pub use error::{ConfigError, Location};
pub use model::*;

use schema::{Checker, PROFILE, ROOT, Ty, VAR};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml::{Node, Value};

/// The config file name searched for.
pub const CONFIG_FILE: &str = "devspace.yaml";

/// What the caller knows before loading.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config PATH` (relative to `cwd`); disables the upward search.
    pub config_path: Option<PathBuf>,
    /// The directory the command runs in (absolute).
    pub cwd: PathBuf,
    /// `-p` values in command-line order.
    pub profiles: Vec<String>,
    /// Raw `--var` values (each may hold several `K=V` separated by commas, like DevSpace).
    pub vars: Vec<String>,
    /// Whether undefined variables may be asked for on the terminal.
    pub interactive: bool,
    /// Answers remembered from earlier runs (`.devspace/generated.yaml` `vars`).
    pub cached_vars: BTreeMap<String, String>,
    /// `--kube-context`, for `DEVSPACE_CONTEXT` (else the kubeconfig's current context).
    pub kube_context: Option<String>,
    /// `-n/--namespace`, for `DEVSPACE_NAMESPACE` (else the context's namespace).
    pub namespace: Option<String>,
    /// Vars defined by a command fail instead of running it (the fuzz target loads
    /// arbitrary configs).
    pub no_commands: bool,
}

/// A loaded config and what the caller should know about the load.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: ConfigSource,
    /// Variables answered on the terminal during this load (to be cached by the caller).
    pub new_var_answers: BTreeMap<String, String>,
    /// Top-level sections present but not acted on by this tool (log them at debug level).
    pub unused_sections: Vec<String>,
    /// Things the user should see (e.g. config expressions that were not evaluated).
    pub warnings: Vec<String>,
}

/// Loads the config with the process environment and, when `opts.interactive`, questions on
/// the terminal.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let env = |k: &str| std::env::var(k).ok();
    let mut terminal = vars::TerminalAsker;
    let asker: Option<&mut dyn vars::Asker> = if opts.interactive {
        Some(&mut terminal)
    } else {
        None
    };
    load_with(opts, &env, asker)
}

/// Variable answers remembered by earlier runs: `vars:` of `<root>/.devspace/generated.yaml`
/// and of DevSpace 6's `cache.yaml` (empty when missing or unreadable; it is a cache, never an
/// error).
pub fn read_cached_vars(root: &Path) -> BTreeMap<String, String> {
    let mut vars = read_cached_vars_in(&root.join(".devspace/cache.yaml"));
    vars.extend(read_cached_vars_in(&root.join(".devspace/generated.yaml")));
    vars
}

fn read_cached_vars_in(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = yaml::limits::read_file(path) else {
        return BTreeMap::new();
    };
    let Ok(parsed) = yaml::parse(&text) else {
        return BTreeMap::new();
    };
    parsed
        .root
        .get("vars")
        .and_then(Node::as_map)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.name.clone(), v.scalar_text()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Finds `devspace.yaml`: `--config`, else the cwd and its parents (skipping `$HOME` itself).
pub fn find_config(opts: &LoadOptions, home: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = &opts.config_path {
        let path = opts.cwd.join(p);
        if !path.is_file() {
            let why = if path.is_dir() {
                "is a directory, expected the config file"
            } else if path.exists() {
                "not a regular file (a FIFO or device cannot be the config file)"
            } else {
                "no such file"
            };
            return Err(ConfigError::Read {
                source: std::io::Error::new(std::io::ErrorKind::NotFound, why),
                path,
            });
        }
        return Ok(path);
    }
    opts.cwd
        .ancestors()
        .filter(|dir| home != Some(*dir))
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|p| p.is_file())
        .ok_or_else(|| ConfigError::NotFound {
            cwd: opts.cwd.clone(),
        })
}

/// [`load`] with an injected environment and question asker (for tests).
pub fn load_with<'a>(
    opts: &'a LoadOptions,
    env: &'a dyn Fn(&str) -> Option<String>,
    asker: Option<&'a mut dyn vars::Asker>,
) -> Result<Loaded, ConfigError> {
    let home = env("HOME").map(PathBuf::from);
    let path = find_config(opts, home.as_deref())?;
    let src = yaml::limits::read_file(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    load_source(opts, path, &src, env, asker)
}

/// [`load_with`] on config text already read from `path` (the fuzz target's entry point).
pub fn load_source<'a>(
    opts: &'a LoadOptions,
    path: PathBuf,
    src: &str,
    env: &'a dyn Fn(&str) -> Option<String>,
    asker: Option<&'a mut dyn vars::Asker>,
) -> Result<Loaded, ConfigError> {
    let root = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| opts.cwd.clone());
    let src = src.to_owned();
    let parsed = yaml::parse(&src).map_err(|e| {
        let at = Location::new(&path, &src, e.pos, None);
        if e.over_budget {
            ConfigError::OverBudget {
                at,
                message: e.message,
            }
        } else {
            ConfigError::Syntax {
                at,
                message: e.message,
            }
        }
    })?;
    // DevSpace 6 files have their own front end (`v2`), into the same model.
    if parsed.root.get("version").and_then(Node::as_str) == Some(v2::VERSION) {
        return v2::load(opts, env, asker, path, root, src, parsed);
    }
    let mut doc = parsed.root;
    let version = declared_version(&doc, &path, &src)?;
    if let Some((key, pos, first)) = parsed.duplicates.first() {
        return Err(ConfigError::DuplicateKey {
            at: Location::new(&path, &src, *pos, None),
            key: key.clone(),
            first_line: first.line,
        });
    }
    let checker = Checker {
        version,
        file: &path,
        src: &src,
    };
    if !matches!(doc.value, Value::Map(_)) {
        checker.check(&doc, &Ty::Obj(ROOT), "")?;
    }

    // Profiles: checked as written, applied to the document without `profiles`/`commands`.
    let profiles_node = doc.remove("profiles");
    let commands = doc.remove("commands");
    if let Some(p) = &profiles_node {
        checker.check(p, &Ty::ListOf(&Ty::Obj(PROFILE)), "profiles")?;
    }
    let profile_list: &[Node] = match profiles_node.as_ref().map(|p| &p.value) {
        Some(Value::Seq(items)) => items,
        _ => &[],
    };
    let ctx = profiles::Ctx {
        file: &path,
        src: &src,
    };
    for selected in &opts.profiles {
        for profile in profiles::chain(profile_list, selected, &ctx)? {
            profiles::apply(&mut doc, profile, &ctx)?;
        }
    }

    // Vars: definitions leave the document, then every string in it is substituted.
    let var_defs = match doc.remove("vars") {
        Some(v) => {
            let checked = checker.check(&v, &Ty::ListOf(&Ty::Obj(VAR)), "vars")?;
            parse_var_defs(checked, &path)?
        }
        None => Vec::new(),
    };
    let warnings = take_expressions(&mut doc);
    let predefined = predefined::Predefined {
        root: root.clone(),
        profiles: opts.profiles.clone(),
        kube_context: opts.kube_context.clone(),
        namespace: opts.namespace.clone(),
        env,
    };
    let mut resolver = vars::Resolver::new(
        vars::parse_var_flags(&opts.vars)?,
        var_defs,
        predefined,
        env,
        &opts.cached_vars,
        asker,
    );
    resolver.no_commands = opts.no_commands;
    let locate = |e: ConfigError, node: &Node| {
        let pos = match &e {
            ConfigError::UndefinedVar { name } | ConfigError::Var { name, .. } => {
                var_pos(&src, node.pos, name)
            }
            _ => node.pos,
        };
        ConfigError::Located {
            at: Location::new(&path, &src, pos, node.profile.as_deref()),
            source: Box::new(e),
        }
    };
    if let Err(e) = vars::substitute_tree(&mut doc, &mut |n| resolver.get(n), &locate) {
        return Err(all_undefined(e, &doc, &mut resolver));
    }
    let new_var_answers = std::mem::take(&mut resolver.answers);
    drop(resolver);
    if let Some(c) = commands {
        doc.set("commands", c);
    }

    let checked = checker.check(&doc, &Ty::Obj(ROOT), "")?;
    let images_node = doc.get("images");
    let locate_image = |key: &str| {
        let (k, v) = images_node?.as_map()?.get_entry(key)?;
        Some(Location::new(&path, &src, k.pos, v.profile.as_deref()))
    };
    let config = upgrade::to_model(checked, version, &root, &path, &locate_image)?;
    let unused_sections = config.other.keys().cloned().collect();
    Ok(Loaded {
        config,
        source: ConfigSource {
            path,
            root,
            profiles: opts.profiles.clone(),
        },
        new_var_answers,
        unused_sections,
        warnings,
    })
}

/// Turns the first undefined variable into one error naming every undefined variable, so the
/// user can give them all at once.
fn all_undefined(err: ConfigError, doc: &Node, resolver: &mut vars::Resolver<'_>) -> ConfigError {
    let ConfigError::Located { at, source } = err else {
        return err;
    };
    let ConfigError::UndefinedVar { name } = *source else {
        return ConfigError::Located { at, source };
    };
    let mut names = vec![name];
    let mut probe = doc.clone();
    let mut lookup = |n: &str| match resolver.get(n) {
        Err(ConfigError::UndefinedVar { name }) => {
            if !names.contains(&name) {
                names.push(name);
            }
            Ok(serde_json::Value::String(String::new()))
        }
        other => other,
    };
    // Other errors in this probe are reported once the variables are given.
    let _ = vars::substitute_tree(&mut probe, &mut lookup, &|e, _| e);
    ConfigError::Located {
        at,
        source: Box::new(ConfigError::UndefinedVars { names }),
    }
}

/// Where `${name}` starts inside the scalar at `pos` (the scalar itself when not on its line).
fn var_pos(src: &str, pos: yaml::Pos, name: &str) -> yaml::Pos {
    let Some(line) = pos.line.checked_sub(1).and_then(|i| src.lines().nth(i)) else {
        return pos;
    };
    let start: usize = line
        .char_indices()
        .nth(pos.col.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    let rest = &line[start..];
    [format!("${{{name}}}"), format!("$!{{{name}}}")]
        .iter()
        .filter_map(|pat| rest.find(pat.as_str()))
        .min()
        .map_or(pos, |off| yaml::Pos {
            line: pos.line,
            col: pos.col + rest[..off].chars().count(),
        })
}

/// Reads and checks `version:` (before anything else, so DevSpace 6 files get one error).
fn declared_version(doc: &Node, path: &Path, src: &str) -> Result<u8, ConfigError> {
    let Some(node) = doc.get("version") else {
        return Err(ConfigError::MissingVersion {
            path: path.to_path_buf(),
        });
    };
    // `version: 1` is there but not a version string: say what was found.
    let Some(v) = node.as_str().or_else(|| node.scalar_text()) else {
        return Err(ConfigError::MissingVersion {
            path: path.to_path_buf(),
        });
    };
    if v.starts_with("v2") {
        return Err(ConfigError::UnsupportedVersion {
            path: path.to_path_buf(),
            version: v.to_string(),
        });
    }
    schema::version_index(v).ok_or_else(|| ConfigError::UnknownVersion {
        at: Location::new(path, src, node.pos, None),
        version: v.to_string(),
    })
}

fn parse_var_defs(
    checked: serde_json::Value,
    path: &Path,
) -> Result<Vec<vars::VarDef>, ConfigError> {
    let serde_json::Value::Array(items) = checked else {
        return Ok(Vec::new());
    };
    items
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                at: None,
                message: format!("vars[{i}]: {e}"),
            })
        })
        .collect()
}

/// 5.x config expressions (`$(command)`) that stand for whole deployments are not evaluated
/// (this tool runs no commands while loading); they are dropped with a warning.
fn take_expressions(doc: &mut Node) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(Value::Seq(items)) = doc.get_mut("deployments").map(|d| &mut d.value) {
        items.retain(|item| match item.as_str() {
            Some(s) if s.trim_start().starts_with("$(") => {
                warnings.push(format!(
                    "line {}: deployment given as a config expression `{s}` is not evaluated and is ignored",
                    item.pos.line
                ));
                false
            }
            _ => true,
        });
    }
    warnings
}
