//! DevSpace 6 configs on `devspace build|deploy|render|run-pipeline` (and `dev` with a
//! custom `dev` pipeline): the pipeline of the command (the config's own or DevSpace 6's
//! built-in one) runs through [`crate::pipeline_script`], whose steps call the same build,
//! pull-secret and deploy code as the 4.x/5.x commands. Glue only: flags → [`CliDefaults`],
//! each step → the existing entry point, errors → exit codes.

use super::build::{BuildRun, build_images, deploy_tags, print_report};
use super::deploy::{DeployOptions, connect, deploy_built, local_target};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::config::{self, Loaded};
use crate::deploy::{ImageTable, format_rendered, render};
use crate::exit::ExitCode;
use crate::kube::client::KubeClient;
use crate::kube::pull_secrets_v6;
use crate::pipeline_script::{
    Actions, BuildStep, CliDefaults, DeployStep, PipelineError, Runner, StepError, prepare,
};
use crate::ui::print_error;
use std::io::Write;
use tokio_util::sync::CancellationToken;

/// Whether the config the flags select declares `version: v2beta1` (read without loading it,
/// so nothing runs twice).
pub fn is_v2(global: &GlobalArgs) -> bool {
    let Ok(opts) = super::print::load_options(global) else {
        return false;
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    config::find_config(&opts, home.as_deref()).is_ok_and(|p| config::v2::is_v2_file(&p))
}

/// Whether the v2beta1 config defines its own non-empty pipeline `name` (read raw).
pub fn has_own_pipeline(global: &GlobalArgs, name: &str) -> bool {
    let Ok(opts) = super::print::load_options(global) else {
        return false;
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let Some(text) = config::find_config(&opts, home.as_deref())
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
    else {
        return false;
    };
    let Ok(parsed) = config::yaml::parse(&text) else {
        return false;
    };
    let Some(p) = parsed.root.get("pipelines").and_then(|p| p.get(name)) else {
        return false;
    };
    let run = p.as_str().or_else(|| p.get("run").and_then(|r| r.as_str()));
    run.is_some_and(|r| !r.trim().is_empty())
}

/// The pipeline defaults DevSpace 6 derives from a command's flags.
pub fn cli_defaults(args: &BuildArgs, skip_build: bool, render: bool) -> CliDefaults {
    CliDefaults {
        tags: args.tags.clone(),
        skip_build,
        skip_push: args.skip_push,
        force_build: args.force_build,
        build_sequential: args.build_sequential,
        max_concurrent_builds: args.max_concurrent_builds,
        render,
        skip_deploy: false,
        force_deploy: false,
    }
}

/// Runs pipeline `name` of the config with `cli` defaults.
pub fn run(
    global: &GlobalArgs,
    name: &str,
    cli: CliDefaults,
    args: &BuildArgs,
    use_digests: bool,
) -> ExitCode {
    super::common::run_with_config(global, async |loaded, cancel| {
        let dependencies: Vec<String> = loaded
            .config
            .other
            .get("dependencies")
            .and_then(|d| d.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let pipeline = match prepare(loaded.config.other.get("pipelines"), name)
            .and_then(|p| p.check_dependencies(&dependencies).map(|()| p))
        {
            Ok(p) => p,
            Err(e) => return report(&e),
        };
        let deploy = DeployOptions::new(global, args, cli.skip_build, use_digests);
        let render_mode = cli.render;
        let mut glue = Glue {
            loaded: &loaded,
            global,
            client: None,
            run: None,
            deploy,
            render: render_mode,
            cancel,
        };
        let name_var = loaded
            .config
            .other
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let env = move |k: &str| match k {
            "DEVSPACE_NAME" => Some(name_var.clone()),
            _ => std::env::var(k).ok(),
        };
        let mut runner = Runner {
            actions: &mut glue,
            cli,
            env: &env,
        };
        match runner.run(&pipeline).await {
            Ok(()) => {
                if !global.silent && !render_mode && name != "build" {
                    eprintln!("pipeline {name}: done");
                }
                ExitCode::Success
            }
            Err(e) => report(&e),
        }
    })
}

fn report(e: &PipelineError) -> ExitCode {
    let hint = match e {
        PipelineError::Unsupported { .. } => vec![
            "this tool runs pipelines made of build_images, create_deployments, ensure_pull_secrets, run_dependencies, run_default_pipeline, echo, &&, ||, if/fi; remove the other commands or run them yourself".to_string(),
        ],
        _ => Vec::new(),
    };
    print_error(false, &e.to_string(), &hint);
    match e.exit_code() {
        0 => ExitCode::Success,
        2 => ExitCode::Usage,
        3 => ExitCode::Config,
        4 => ExitCode::Unreachable,
        5 => ExitCode::Auth,
        130 => ExitCode::Interrupted,
        _ => ExitCode::Failure,
    }
}

/// `ensure_pull_secrets` of a DevSpace 6 config (also used by `devspace dev`), printing one
/// line per secret and ServiceAccount; failures only warn, as in DevSpace.
pub async fn ensure_v6_pull_secrets(
    loaded: &Loaded,
    client: &KubeClient,
    names: &[String],
    silent: bool,
) -> Result<(), String> {
    let (reports, skipped) =
        pull_secrets_v6::ensure(client, loaded.config.other.get("pullSecrets"), names).await?;
    for (name, why) in &skipped {
        eprintln!("warning: pull secret {name}: {why}");
    }
    for report in &reports {
        for s in &report.secrets {
            match &s.result {
                Ok(_) if !silent => eprintln!("{s}"),
                Ok(_) => {}
                Err(_) => eprintln!("warning: {s}"),
            }
        }
        for s in &report.service_accounts {
            match &s.result {
                Ok(_) if !silent => eprintln!("{s}"),
                Ok(_) => {}
                Err(_) => eprintln!("warning: {s}"),
            }
        }
    }
    Ok(())
}

struct Glue<'a> {
    loaded: &'a Loaded,
    global: &'a GlobalArgs,
    client: Option<KubeClient>,
    /// Everything built so far in this pipeline (tags for the deployments).
    run: Option<BuildRun>,
    deploy: DeployOptions,
    render: bool,
    cancel: CancellationToken,
}

fn step_err(message: String, exit: ExitCode) -> StepError {
    StepError {
        message,
        exit: exit as i32,
    }
}

impl Glue<'_> {
    async fn client(&mut self) -> Result<KubeClient, StepError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = connect(self.global)
            .await
            .map_err(|code| step_err("cannot reach the cluster".into(), code))?;
        self.client = Some(c.clone());
        Ok(c)
    }

    fn unknown(&self, section: &str, names: &[String]) -> Option<String> {
        let keys = self.keys(section);
        names.iter().find(|n| !keys.contains(n)).map(|n| {
            format!(
                "{section} `{n}` is not defined (defined: {})",
                keys.join(", ")
            )
        })
    }
}

impl Actions for Glue<'_> {
    fn keys(&self, section: &str) -> Vec<String> {
        match section {
            "images" => self.loaded.config.images.keys().cloned().collect(),
            "deployments" => self
                .loaded
                .config
                .deployments
                .iter()
                .map(|d| d.name.clone())
                .collect(),
            other => self
                .loaded
                .config
                .other
                .get(other)
                .and_then(|v| v.as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }

    async fn build_images(&mut self, step: BuildStep) -> Result<(), StepError> {
        if step.skip {
            return Ok(());
        }
        let names = step.images.pick(&self.keys("images"));
        if let Some(m) = self.unknown("images", &names) {
            return Err(step_err(m, ExitCode::Config));
        }
        if names.is_empty() {
            return Ok(());
        }
        let mut subset = self.loaded.clone();
        subset.config.images.retain(|k, _| names.contains(k));
        let args = BuildArgs {
            build_sequential: step.sequential,
            force_build: step.force_rebuild,
            skip_push: step.skip_push,
            tags: step.tags,
            max_concurrent_builds: step.max_concurrent,
            output: self.deploy.build.output,
        };
        let mut ui = self.deploy.ui;
        ui.stream_logs = step.sequential;
        let kube = super::build::kube_settings(self.global);
        let local = self.client.as_ref().and_then(local_target);
        let run = build_images(&subset, &args, false, ui, kube, local, self.cancel.clone()).await;
        let to_stderr = self.render || self.client.is_some();
        print_report(&run.report, args.output, false, ui.silent, to_stderr);
        let exit = run.exit;
        match &mut self.run {
            Some(all) => all.images.extend(run.images),
            None => self.run = Some(run),
        }
        if exit != ExitCode::Success {
            return Err(step_err("images failed to build (see above)".into(), exit));
        }
        Ok(())
    }

    async fn ensure_pull_secrets(&mut self, names: Vec<String>) -> Result<(), StepError> {
        if names.is_empty() {
            return Ok(());
        }
        if self.render {
            self.print("ensure_pull_secrets: skipped while rendering");
            return Ok(());
        }
        let client = self.client().await?;
        let silent = self.deploy.ui.silent;
        ensure_v6_pull_secrets(self.loaded, &client, &names, silent)
            .await
            .map_err(|m| step_err(m, ExitCode::Config))
    }

    async fn create_deployments(&mut self, step: DeployStep) -> Result<(), StepError> {
        if step.skip_deploy {
            return Ok(());
        }
        let names = step.deployments.pick(&self.keys("deployments"));
        if let Some(m) = self.unknown("deployments", &names) {
            return Err(step_err(m, ExitCode::Config));
        }
        let mut subset = self.loaded.clone();
        subset.config.deployments = names
            .iter()
            .filter_map(|n| {
                self.loaded
                    .config
                    .deployments
                    .iter()
                    .find(|d| &d.name == n)
                    .cloned()
            })
            .collect();
        if self.render || step.render {
            let tags = deploy_tags(&subset, self.run.as_ref());
            let table = ImageTable::new(&subset.config, &tags, self.deploy.use_digests);
            let config = subset.config.clone();
            let root = subset.source.root.clone();
            let rendered = tokio::task::spawn_blocking(move || render(&config, &root, &table))
                .await
                .map_err(|e| step_err(format!("render failed: {e}"), ExitCode::Failure))?
                .map_err(|e| step_err(e.to_string(), ExitCode::Failure))?;
            for d in &rendered {
                for w in &d.warnings {
                    eprintln!("warning: deployment {}: {w}", d.name);
                }
            }
            let _ = std::io::stdout()
                .lock()
                .write_all(format_rendered(&rendered).as_bytes());
            return Ok(());
        }
        let client = self.client().await?;
        let mut opts = self.deploy.clone();
        opts.skip_build = true;
        let code = deploy_built(
            &subset,
            self.global,
            &client,
            &opts,
            self.run.as_ref(),
            &self.cancel,
        )
        .await;
        if code != ExitCode::Success {
            return Err(step_err("deployment failed (see above)".into(), code));
        }
        Ok(())
    }

    fn print(&mut self, line: &str) {
        if !self.deploy.ui.silent {
            eprintln!("{line}");
        }
    }
}
