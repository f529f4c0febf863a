//! DevSpace 6 pipelines (`pipelines:` of a v2beta1 config and the built-in defaults): the
//! subset of their shell language this tool runs, and the interpreter that drives the build,
//! pull-secret and deploy steps through [`Actions`].
//!
//! DevSpace runs pipeline scripts in an in-process POSIX shell (mvdan.cc/sh) where any program
//! may be called. We run only what we can do faithfully: the commands `run_dependencies`,
//! `ensure_pull_secrets`, `build_images`, `create_deployments`, `run_default_pipeline`,
//! `echo`, `true`, `false`; `&&`, `||`, `;`, `if … then … elif … else … fi` on exit status,
//! `# comments`, quotes, line continuations and `$VAR`/`${VAR}` from the environment. Anything
//! else (another command, `$(…)`, pipes, redirections, loops, functions) is found by
//! [`Script::check`] before anything runs, and refused with one error naming the command, the
//! pipeline and the line. The shell is written by hand because no maintained crate parses
//! POSIX shell into a tree we could restrict this way (and running `/bin/sh` would run
//! whatever the script says).

pub mod live;
mod parse;

pub use parse::{ParseError, parse};

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// A simple command: its words and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub words: Vec<Word>,
    /// 1-based line in the script.
    pub line: usize,
}

/// A word: literal text and `$VAR` references, concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct Word(pub Vec<Part>);

/// Part of a word.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Var(String),
}

/// `a && b || c`: the first command, then each operator with the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct AndOr {
    pub first: Stmt,
    pub rest: Vec<(Op, Stmt)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    And,
    Or,
}

/// One statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Simple(Command),
    /// `if c1; then b1; elif c2; then b2; else b3; fi`.
    If {
        branches: Vec<(Vec<AndOr>, Vec<AndOr>)>,
        otherwise: Option<Vec<AndOr>>,
    },
}

/// A parsed pipeline script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub body: Vec<AndOr>,
}

/// The built-in scripts of DevSpace 6 (`pl/types/default.go`, identical in 6.0–6.3).
pub fn default_script(pipeline: &str) -> Option<&'static str> {
    Some(match pipeline {
        "build" => "run_dependencies --all --pipeline build\nbuild_images --all",
        "deploy" => {
            "run_dependencies --all\nensure_pull_secrets --all\nbuild_images --all\ncreate_deployments --all"
        }
        "dev" => {
            "run_dependencies --all\nensure_pull_secrets --all\nbuild_images --all\ncreate_deployments --all\nstart_dev --all"
        }
        "purge" => {
            "stop_dev --all\npurge_deployments --all\nrun_dependencies --all --pipeline purge"
        }
        _ => return None,
    })
}

/// Which names a command acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub all: bool,
    pub names: Vec<String>,
    pub except: Vec<String>,
}

impl Selection {
    /// The selected keys of `keys` (in `keys` order for `--all`, else in the given order).
    pub fn pick(&self, keys: &[String]) -> Vec<String> {
        let picked: Vec<String> = if self.all {
            keys.to_vec()
        } else {
            self.names.clone()
        };
        picked
            .into_iter()
            .filter(|k| !self.except.contains(k))
            .collect()
    }
}

/// `build_images` as called (script flags over the command line's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStep {
    pub images: Selection,
    pub skip_push: bool,
    pub force_rebuild: bool,
    pub sequential: bool,
    pub max_concurrent: Option<u32>,
    pub tags: Vec<String>,
    /// `--skip` (the CLI's `--skip-build`): nothing is built.
    pub skip: bool,
}

/// `create_deployments` as called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployStep {
    pub deployments: Selection,
    pub sequential: bool,
    pub render: bool,
    pub skip_deploy: bool,
    pub force_redeploy: bool,
}

/// The defaults the command line gives to pipeline commands (DevSpace 6 `BuildOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliDefaults {
    /// `-t/--tag`.
    pub tags: Vec<String>,
    /// `--skip-build`.
    pub skip_build: bool,
    pub skip_push: bool,
    /// `-b/--force-build`.
    pub force_build: bool,
    /// `--build-sequential`.
    pub build_sequential: bool,
    /// `--max-concurrent-builds`.
    pub max_concurrent_builds: Option<u32>,
    /// `--render` (devspace render).
    pub render: bool,
    /// `--skip-deploy`.
    pub skip_deploy: bool,
    /// `-d/--force-deploy`.
    pub force_deploy: bool,
}

/// An error from a step; the pipeline stops unless the status is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    /// The process exit code this failure maps to.
    pub exit: i32,
}

/// What the interpreter drives: the library's build, pull-secret and deploy steps.
pub trait Actions {
    /// Keys of `images` / `deployments` / `pullSecrets`, in config order.
    fn keys(&self, section: &str) -> Vec<String>;
    fn build_images(&mut self, step: BuildStep) -> impl Future<Output = Result<(), StepError>>;
    fn ensure_pull_secrets(
        &mut self,
        names: Vec<String>,
    ) -> impl Future<Output = Result<(), StepError>>;
    fn create_deployments(
        &mut self,
        step: DeployStep,
    ) -> impl Future<Output = Result<(), StepError>>;
    /// `echo` output and notes (one line each).
    fn print(&mut self, line: &str);
}

/// Why a pipeline cannot run (found before anything runs) or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline `{pipeline}` line {line}: {message}")]
    Unsupported {
        pipeline: String,
        line: usize,
        message: String,
    },
    #[error("pipeline `{pipeline}`: {message}")]
    Syntax { pipeline: String, message: String },
    #[error("pipeline `{pipeline}` is not defined (pipelines: {known})")]
    Unknown { pipeline: String, known: String },
    #[error("pipeline `{pipeline}` line {line}: `{command}` failed: {message}")]
    Failed {
        pipeline: String,
        line: usize,
        command: String,
        message: String,
        exit: i32,
    },
}

impl PipelineError {
    /// The process exit code: usage/config errors 3 (`Config`), a failed step its own.
    pub fn exit_code(&self) -> i32 {
        match self {
            PipelineError::Failed { exit, .. } => *exit,
            _ => 3,
        }
    }
}

const SUPPORTED: &[&str] = &[
    "run_dependencies",
    "run_dependency_pipelines",
    "ensure_pull_secrets",
    "build_images",
    "create_deployments",
    "run_default_pipeline",
    "echo",
    "true",
    "false",
];

/// A pipeline ready to run: its name, script, and `continueOnError`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub name: String,
    pub script: Script,
    pub continue_on_error: bool,
}

/// The script of pipeline `name` from a config's `pipelines` section (string or object form);
/// the built-in one when missing or empty.
pub fn pipeline_text(pipelines: Option<&serde_json::Value>, name: &str) -> Option<(String, bool)> {
    let entry = pipelines.and_then(|p| p.get(name));
    let (run, continue_on_error) = match entry {
        Some(serde_json::Value::String(s)) => (Some(s.clone()), false),
        Some(serde_json::Value::Object(m)) => (
            m.get("run").and_then(|r| r.as_str()).map(str::to_string),
            m.get("continueOnError").and_then(|c| c.as_bool()) == Some(true),
        ),
        _ => (None, false),
    };
    match run.filter(|r| !r.trim().is_empty()) {
        Some(r) => Some((r, continue_on_error)),
        None => default_script(name).map(|s| (s.to_string(), continue_on_error)),
    }
}

/// Parses and checks pipeline `name` of `pipelines`, refusing anything outside the subset.
pub fn prepare(
    pipelines: Option<&serde_json::Value>,
    name: &str,
) -> Result<Pipeline, PipelineError> {
    let Some((text, continue_on_error)) = pipeline_text(pipelines, name) else {
        let mut known: Vec<String> = pipelines
            .and_then(|p| p.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for d in ["build", "deploy", "dev", "purge"] {
            if !known.iter().any(|k| k == d) {
                known.push(d.into());
            }
        }
        return Err(PipelineError::Unknown {
            pipeline: name.to_string(),
            known: known.join(", "),
        });
    };
    let script = parse(&text).map_err(|e| match e {
        ParseError::Unsupported { line, message } => PipelineError::Unsupported {
            pipeline: name.to_string(),
            line,
            message,
        },
        ParseError::Syntax { message } => PipelineError::Syntax {
            pipeline: name.to_string(),
            message,
        },
    })?;
    script.check(name)?;
    Ok(Pipeline {
        name: name.to_string(),
        script,
        continue_on_error,
    })
}

impl Pipeline {
    /// Refuses, before anything runs, a pipeline that would run dependencies when the config
    /// defines some (this tool does not run other projects; without dependencies
    /// `run_dependencies` is a no-op). Built-in pipelines called by `run_default_pipeline`
    /// count too.
    pub fn check_dependencies(&self, dependencies: &[String]) -> Result<(), PipelineError> {
        if dependencies.is_empty() {
            return Ok(());
        }
        let mut found = None;
        self.script.visit(&mut |cmd| {
            if found.is_some() {
                return;
            }
            let name = cmd.words.first().and_then(literal).unwrap_or_default();
            let nested = (name == "run_default_pipeline")
                .then(|| cmd.words.get(1).and_then(literal))
                .flatten()
                .and_then(|t| default_script(&t))
                .is_some_and(|s| s.contains("run_dependencies"));
            if matches!(
                name.as_str(),
                "run_dependencies" | "run_dependency_pipelines"
            ) || nested
            {
                found = Some(cmd.line);
            }
        });
        match found {
            Some(line) => Err(PipelineError::Unsupported {
                pipeline: self.name.clone(),
                line,
                message: format!(
                    "`run_dependencies` would run the dependencies {} of this config, which this tool does not support; nothing was run",
                    dependencies.join(", ")
                ),
            }),
            None => Ok(()),
        }
    }
}

impl Script {
    /// Every command is one we run, with flags we understand; `run_default_pipeline` targets
    /// are checked too.
    pub fn check(&self, pipeline: &str) -> Result<(), PipelineError> {
        let mut result = Ok(());
        self.visit(&mut |cmd| {
            if result.is_ok() {
                result = check_command(cmd, pipeline);
            }
        });
        result
    }

    fn visit(&self, f: &mut dyn FnMut(&Command)) {
        fn stmts(list: &[AndOr], f: &mut dyn FnMut(&Command)) {
            for a in list {
                stmt(&a.first, f);
                for (_, s) in &a.rest {
                    stmt(s, f);
                }
            }
        }
        fn stmt(s: &Stmt, f: &mut dyn FnMut(&Command)) {
            match s {
                Stmt::Simple(c) => f(c),
                Stmt::If {
                    branches,
                    otherwise,
                } => {
                    for (c, b) in branches {
                        stmts(c, f);
                        stmts(b, f);
                    }
                    if let Some(o) = otherwise {
                        stmts(o, f);
                    }
                }
            }
        }
        stmts(&self.body, f);
    }
}

/// The literal text of a word (no variables), for checking command names and flags.
fn literal(w: &Word) -> Option<String> {
    let mut out = String::new();
    for p in &w.0 {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Var(_) => return None,
        }
    }
    Some(out)
}

fn check_command(cmd: &Command, pipeline: &str) -> Result<(), PipelineError> {
    let unsupported = |message: String| PipelineError::Unsupported {
        pipeline: pipeline.to_string(),
        line: cmd.line,
        message,
    };
    let Some(name) = cmd.words.first().and_then(literal) else {
        return Err(unsupported(
            "a command name made of variables is not supported".into(),
        ));
    };
    if !SUPPORTED.contains(&name.as_str()) {
        return Err(unsupported(format!(
            "`{name}` is not supported by this tool (supported: build_images, create_deployments, ensure_pull_secrets, run_dependencies, run_default_pipeline, echo, true, false); nothing was run"
        )));
    }
    let args: Vec<String> = cmd.words[1..]
        .iter()
        .map(|w| literal(w).unwrap_or_else(|| "$var".into()))
        .collect();
    if name == "run_default_pipeline" {
        let target = args.first().map(String::as_str).unwrap_or_default();
        if args.len() != 1 || default_script(target).is_none() {
            return Err(unsupported(format!(
                "`run_default_pipeline` takes one of build, deploy, dev, purge (got `{}`)",
                args.join(" ")
            )));
        }
        let nested = parse(default_script(target).unwrap_or_default())
            .map_err(|_| unsupported("the built-in pipeline cannot be parsed".into()))?;
        return nested
            .check(&format!("{pipeline} → run_default_pipeline {target}"))
            .map_err(|e| match e {
                PipelineError::Unsupported { message, .. } => unsupported(format!(
                    "the built-in `{target}` pipeline needs something unsupported: {message}"
                )),
                other => other,
            });
    }
    parse_flags(&name, &args).map(|_| ()).map_err(unsupported)
}

/// A parsed pipeline command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    RunDependencies,
    EnsurePullSecrets(Selection),
    BuildImages {
        sel: Selection,
        skip_push: bool,
        force: bool,
        sequential: bool,
        max_concurrent: Option<u32>,
        tags: Vec<String>,
        skip: bool,
    },
    CreateDeployments {
        sel: Selection,
        sequential: bool,
        render: bool,
        skip_deploy: bool,
        force: bool,
    },
    RunDefault(String),
    Echo(Vec<String>),
    Status(i32),
}

/// Parses the arguments of a supported command (go-flags style: `--flag`, `--flag=v`,
/// `--flag v`, `-t v`).
fn parse_flags(name: &str, args: &[String]) -> Result<Parsed, String> {
    let mut sel = Selection::default();
    let mut bools: BTreeMap<&'static str, bool> = BTreeMap::new();
    let mut tags = Vec::new();
    let mut max_concurrent = None;
    let mut i = 0;
    let takes: &[(&str, &'static str, bool)] = match name {
        // (spelling, canonical, takes a value)
        "build_images" => &[
            ("--all", "all", false),
            ("--skip-push", "skip-push", false),
            ("--force-rebuild", "force-rebuild", false),
            ("--sequential", "sequential", false),
            ("--skip", "skip", false),
            ("--max-concurrent", "max-concurrent", true),
            ("--tag", "tag", true),
            ("-t", "tag", true),
            ("--except", "except", true),
        ],
        "create_deployments" => &[
            ("--all", "all", false),
            ("--sequential", "sequential", false),
            ("--render", "render", false),
            ("--skip-deploy", "skip-deploy", false),
            ("--force-redeploy", "force-redeploy", false),
            ("--except", "except", true),
        ],
        "ensure_pull_secrets" => &[("--all", "all", false), ("--except", "except", true)],
        "run_dependencies" | "run_dependency_pipelines" => &[
            ("--all", "all", false),
            ("--sequential", "sequential", false),
            ("--pipeline", "pipeline", true),
        ],
        "echo" => return Ok(Parsed::Echo(args.to_vec())),
        "true" => return Ok(Parsed::Status(0)),
        "false" => return Ok(Parsed::Status(1)),
        "run_default_pipeline" => {
            return Ok(Parsed::RunDefault(
                args.first().cloned().unwrap_or_default(),
            ));
        }
        other => return Err(format!("`{other}` is not supported")),
    };
    while i < args.len() {
        let arg = &args[i];
        if !arg.starts_with('-') || arg == "-" {
            sel.names.push(arg.clone());
            i += 1;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let Some((_, canonical, value)) = takes.iter().find(|(s, ..)| *s == flag) else {
            return Err(format!(
                "`{name} {flag}` is not supported (supported flags: {})",
                takes
                    .iter()
                    .map(|(s, ..)| *s)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if *value {
            let v = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| format!("`{name} {flag}` needs a value"))?
                }
            };
            match *canonical {
                "tag" => tags.push(v),
                "except" => sel.except.push(v),
                "max-concurrent" => {
                    max_concurrent =
                        Some(v.parse::<u32>().map_err(|_| {
                            format!("`{name} --max-concurrent {v}`: expected a number")
                        })?)
                }
                _ => {}
            }
        } else {
            let on = match inline.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(format!("`{name} {flag}={other}`: expected true or false"));
                }
            };
            if *canonical == "all" {
                sel.all = on;
            } else {
                bools.insert(canonical, on);
            }
        }
        i += 1;
    }
    let b = |k: &str| bools.get(k).copied().unwrap_or(false);
    if matches!(
        name,
        "build_images" | "create_deployments" | "ensure_pull_secrets"
    ) && !sel.all
        && sel.names.is_empty()
    {
        return Err(format!("`{name}` needs --all or at least one name"));
    }
    Ok(match name {
        "build_images" => Parsed::BuildImages {
            sel,
            skip_push: b("skip-push"),
            force: b("force-rebuild"),
            sequential: b("sequential"),
            max_concurrent,
            tags,
            skip: b("skip"),
        },
        "create_deployments" => Parsed::CreateDeployments {
            sel,
            sequential: b("sequential"),
            render: b("render"),
            skip_deploy: b("skip-deploy"),
            force: b("force-redeploy"),
        },
        "ensure_pull_secrets" => Parsed::EnsurePullSecrets(sel),
        _ => Parsed::RunDependencies,
    })
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs a checked pipeline.
pub struct Runner<'a, A: Actions> {
    pub actions: &'a mut A,
    pub cli: CliDefaults,
    /// `$VAR` values (the environment plus the config's variables).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl<A: Actions> Runner<'_, A> {
    /// Runs `pipeline`; `Ok(())` when its last status is 0 (or `continueOnError`).
    pub async fn run(&mut self, pipeline: &Pipeline) -> Result<(), PipelineError> {
        let status = self.list(&pipeline.script.body, pipeline, false).await?;
        if status != 0 && !pipeline.continue_on_error {
            return Err(PipelineError::Failed {
                pipeline: pipeline.name.clone(),
                line: 0,
                command: "(last command)".into(),
                message: format!("exit status {status}"),
                exit: 1,
            });
        }
        Ok(())
    }

    /// Runs statements; `tested` = inside a condition or before `&&`/`||` (no `set -e` stop).
    fn list<'s>(
        &'s mut self,
        list: &'s [AndOr],
        pipeline: &'s Pipeline,
        tested: bool,
    ) -> Boxed<'s, Result<i32, PipelineError>> {
        Box::pin(async move {
            let mut status = 0;
            for and_or in list {
                status = self.and_or(and_or, pipeline, tested).await?;
            }
            Ok(status)
        })
    }

    async fn and_or(
        &mut self,
        and_or: &AndOr,
        pipeline: &Pipeline,
        tested: bool,
    ) -> Result<i32, PipelineError> {
        let has_rest = !and_or.rest.is_empty();
        let mut status = self
            .stmt(&and_or.first, pipeline, tested || has_rest)
            .await?;
        for (i, (op, s)) in and_or.rest.iter().enumerate() {
            let run = match op {
                Op::And => status == 0,
                Op::Or => status != 0,
            };
            if run {
                let last = i + 1 == and_or.rest.len();
                status = self.stmt(s, pipeline, tested || !last).await?;
            }
        }
        Ok(status)
    }

    fn stmt<'s>(
        &'s mut self,
        stmt: &'s Stmt,
        pipeline: &'s Pipeline,
        tested: bool,
    ) -> Boxed<'s, Result<i32, PipelineError>> {
        Box::pin(async move {
            match stmt {
                Stmt::Simple(cmd) => self.simple(cmd, pipeline, tested).await,
                Stmt::If {
                    branches,
                    otherwise,
                } => {
                    for (cond, body) in branches {
                        if self.list(cond, pipeline, true).await? == 0 {
                            return self.list(body, pipeline, tested).await;
                        }
                    }
                    match otherwise {
                        Some(body) => self.list(body, pipeline, tested).await,
                        None => Ok(0),
                    }
                }
            }
        })
    }

    fn expand(&self, w: &Word) -> String {
        w.0.iter()
            .map(|p| match p {
                Part::Lit(s) => s.clone(),
                Part::Var(v) => (self.env)(v).unwrap_or_default(),
            })
            .collect()
    }

    async fn simple(
        &mut self,
        cmd: &Command,
        pipeline: &Pipeline,
        tested: bool,
    ) -> Result<i32, PipelineError> {
        let words: Vec<String> = cmd.words.iter().map(|w| self.expand(w)).collect();
        let name = words[0].clone();
        let failed = |message: String, exit: i32| PipelineError::Failed {
            pipeline: pipeline.name.clone(),
            line: cmd.line,
            command: words.join(" "),
            message,
            exit,
        };
        let parsed = parse_flags(&name, &words[1..]).map_err(|m| PipelineError::Unsupported {
            pipeline: pipeline.name.clone(),
            line: cmd.line,
            message: m,
        })?;
        let result = match parsed {
            Parsed::Status(s) => return Ok(s),
            Parsed::Echo(args) => {
                self.actions.print(&args.join(" "));
                return Ok(0);
            }
            Parsed::RunDependencies => {
                self.actions.print(
                    "run_dependencies: this config has no dependencies this tool runs (skipped)",
                );
                return Ok(0);
            }
            Parsed::RunDefault(target) => {
                let nested = prepare(None, &target)?;
                return self
                    .list(&nested.script.body, &nested, tested)
                    .await
                    .map_err(|e| match e {
                        PipelineError::Failed {
                            command,
                            message,
                            exit,
                            ..
                        } => failed(format!("{command}: {message}"), exit),
                        other => other,
                    });
            }
            Parsed::EnsurePullSecrets(sel) => {
                let names = sel.pick(&self.actions.keys("pullSecrets"));
                self.actions.ensure_pull_secrets(names).await
            }
            Parsed::BuildImages {
                sel,
                skip_push,
                force,
                sequential,
                max_concurrent,
                tags,
                skip,
            } => {
                let step = BuildStep {
                    images: sel,
                    skip_push: skip_push || self.cli.skip_push,
                    force_rebuild: force || self.cli.force_build,
                    sequential: sequential || self.cli.build_sequential,
                    max_concurrent: max_concurrent.or(self.cli.max_concurrent_builds),
                    tags: if tags.is_empty() {
                        self.cli.tags.clone()
                    } else {
                        tags
                    },
                    skip: skip || self.cli.skip_build,
                };
                self.actions.build_images(step).await
            }
            Parsed::CreateDeployments {
                sel,
                sequential,
                render,
                skip_deploy,
                force,
            } => {
                let step = DeployStep {
                    deployments: sel,
                    sequential,
                    render: render || self.cli.render,
                    skip_deploy: skip_deploy || self.cli.skip_deploy,
                    force_redeploy: force || self.cli.force_deploy,
                };
                self.actions.create_deployments(step).await
            }
        };
        match result {
            Ok(()) => Ok(0),
            Err(e) if tested || pipeline.continue_on_error => {
                self.actions
                    .print(&format!("{}: {}", words.join(" "), e.message));
                Ok(1)
            }
            Err(e) => Err(failed(e.message, e.exit)),
        }
    }
}

#[cfg(test)]
mod tests;
