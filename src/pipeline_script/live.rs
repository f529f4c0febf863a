//! The pipeline steps on the real build and deploy code: [`LiveActions`] implements
//! [`Actions`] over [`crate::pipeline::dispatch::build_images`], the pull secrets of
//! [`crate::kube::pull_secrets_v6`], and [`crate::deploy::run`]; [`run_pipeline`] is the one
//! entry point the `build`/`deploy`/`render`/`dev`/`run-pipeline` commands call for a
//! DevSpace 6 config.

use super::{
    Actions, BuildStep, CliDefaults, DeployStep, PipelineError, Runner, StepError, prepare,
};
use crate::config::Loaded;
use crate::deploy::run::{
    DeployOptions, connect, deploy_built, deploy_tags, ensure_v6_pull_secrets, local_target,
};
use crate::deploy::{ImageTable, format_rendered, render};
use crate::diagnostic::Diagnostic;
use crate::exit::ExitCode;
use crate::kube::client::KubeClient;
use crate::pipeline::dispatch::{BuildOptions, BuildRun, build_images};
use crate::ui::summary::print_report;
use crate::ui::{write_stderr, write_stdout};
use tokio_util::sync::CancellationToken;

impl Diagnostic for PipelineError {
    fn hints(&self) -> Vec<String> {
        match self {
            PipelineError::Unsupported { .. } => vec![
                "this tool runs pipelines made of build_images, create_deployments, ensure_pull_secrets, run_dependencies, run_default_pipeline, echo, &&, ||, if/fi; remove the other commands or run them yourself".to_string(),
            ],
            _ => Vec::new(),
        }
    }
    fn exit_code(&self) -> ExitCode {
        match PipelineError::exit_code(self) {
            0 => ExitCode::Success,
            2 => ExitCode::Usage,
            3 => ExitCode::Config,
            4 => ExitCode::Unreachable,
            5 => ExitCode::Auth,
            130 => ExitCode::Interrupted,
            _ => ExitCode::Failure,
        }
    }
}

/// Runs pipeline `name` of a DevSpace 6 config with the `cli` defaults; `render` prints
/// manifests instead of deploying. Errors are printed; returns the exit code.
pub async fn run_pipeline(
    loaded: &Loaded,
    name: &str,
    cli: CliDefaults,
    deploy: DeployOptions,
    cancel: CancellationToken,
) -> ExitCode {
    let dependencies: Vec<String> = loaded
        .config
        .other
        .get("dependencies")
        .and_then(|d| d.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let color = deploy.ui.color;
    let pipeline = match prepare(loaded.config.other.get("pipelines"), name)
        .and_then(|p| p.check_dependencies(&dependencies).map(|()| p))
    {
        Ok(p) => p,
        Err(e) => return crate::ui::report(color, &e),
    };
    let render_mode = cli.render;
    let silent = deploy.ui.silent;
    let mut actions = LiveActions {
        loaded,
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
        actions: &mut actions,
        cli,
        env: &env,
    };
    match runner.run(&pipeline).await {
        Ok(()) => {
            if !silent && !render_mode && name != "build" {
                write_stderr(&format!("pipeline {name}: done\n"));
            }
            ExitCode::Success
        }
        Err(e) => crate::ui::report(color, &e),
    }
}

/// The pipeline steps of one run, on the real services.
struct LiveActions<'a> {
    loaded: &'a Loaded,
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

impl LiveActions<'_> {
    async fn client(&mut self) -> Result<KubeClient, StepError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = connect(&self.deploy.build.kube).await.map_err(|e| {
            crate::ui::report(self.deploy.ui.color, &e);
            step_err("cannot reach the cluster".into(), ExitCode::Unreachable)
        })?;
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

impl Actions for LiveActions<'_> {
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
        let opts = BuildOptions {
            tags: step.tags,
            force_build: step.force_rebuild,
            skip_push: step.skip_push,
            dry_run: false,
            max_concurrent: if step.sequential {
                Some(1)
            } else {
                step.max_concurrent.map(|n| n as usize)
            },
            kube: self.deploy.build.kube.clone(),
            local: self.client.as_ref().and_then(local_target),
            registry_cache: self.deploy.build.registry_cache,
        };
        let mut ui = self.deploy.ui;
        ui.stream_logs = step.sequential;
        let run = build_images(&subset, &opts, ui, self.cancel.clone()).await;
        let to_stderr = self.render || self.client.is_some();
        print_report(&run.report, ui.json, false, ui.silent, to_stderr);
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
                    write_stderr(&format!("warning: deployment {}: {w}\n", d.name));
                }
            }
            write_stdout(&format_rendered(&rendered));
            return Ok(());
        }
        let client = self.client().await?;
        crate::deploy::run::ensure_namespaces(&subset, &client).await;
        let mut opts = self.deploy.clone();
        opts.skip_build = true;
        let code = deploy_built(&subset, &client, &opts, self.run.as_ref(), &self.cancel).await;
        if code != ExitCode::Success {
            return Err(step_err("deployment failed (see above)".into(), code));
        }
        Ok(())
    }

    fn print(&mut self, line: &str) {
        if !self.deploy.ui.silent {
            write_stderr(&format!("{line}\n"));
        }
    }
}
