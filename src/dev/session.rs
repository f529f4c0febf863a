//! The `devspace dev` session: build and deploy once (cycle 1, with every build flag as in
//! `devspace deploy`), then watch every image's build context and Dockerfile and run another
//! cycle whenever a file that lands in a build context changes.
//!
//! A later cycle runs the same build decision engine over every image, so only images whose
//! inputs changed are rebuilt (never forced: `-b` applies to cycle 1 only; `--skip-push` and
//! `-t` apply to every cycle), and redeploys with the new tags only when something was built.
//! Images with fixed tags (e.g. the quickstart's `dev`) keep their tag when rebuilt: the
//! deployment is re-applied unchanged and the cluster does not roll out new pods by itself —
//! use images without `tags:` (a fresh random tag per build) when the cluster should pick up
//! every rebuild, as DevSpace documents.

use crate::config::Loaded;
use crate::deploy::run::{DeployOptions, build_for, deploy_built, deploy_once};
use crate::dev::watch::Watcher;
use crate::dev::{
    CycleSummary, DeployStep, affected_images, cycle_line, watch_roots, watch_targets,
};
use crate::exit::ExitCode;
use crate::image::decision::Decision;
use crate::kube::client::KubeClient;
use crate::pipeline::dispatch::{BuildOptions, BuildRun};
use crate::pipeline::events::Status;
use crate::ui::{print_error, summary, write_stderr};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Runs the dev session until Ctrl-C.
///
/// Exit codes: 0 when Ctrl-C stops it while it waits for changes (the normal way to end a dev
/// session; nothing is half done); 130 when Ctrl-C interrupts a cycle (the running builds are
/// aborted and the cache keeps only what finished); a second Ctrl-C exits at once with 130.
/// When cycle 1 fails (build or deploy) it exits with that cycle's code instead of watching;
/// a failing later cycle is reported and watching goes on.
pub async fn run(
    loaded: &Loaded,
    client: &KubeClient,
    opts: &DeployOptions,
    cancel: CancellationToken,
) -> ExitCode {
    let ui = opts.ui;
    // Watch before the first cycle: an edit made while it builds starts cycle 2.
    let targets = watch_targets(&loaded.config);
    let mut watcher = match Watcher::start(&watch_roots(&targets)) {
        Ok(w) => w,
        Err(e) => {
            print_error(
                ui.color,
                &e.to_string(),
                &["on Linux, raise fs.inotify.max_user_watches if the contexts are large".into()],
            );
            return ExitCode::Failure;
        }
    };

    let (code, run) = deploy_once(loaded, client, opts, cancel.clone()).await;
    if cancel.is_cancelled() {
        return ExitCode::Interrupted;
    }
    let deploy = if code == ExitCode::Success {
        DeployStep::Deployed(deployment_names(loaded))
    } else {
        DeployStep::Failed
    };
    say(opts, &cycle_line(&summary(1, run.as_ref(), deploy)));
    if code != ExitCode::Success {
        return code;
    }
    say(
        opts,
        &format!(
            "[dev] watching {} image(s) for changes (Ctrl-C to stop)",
            targets.len()
        ),
    );

    let later = DeployOptions {
        build: BuildOptions {
            force_build: false,
            ..opts.build.clone()
        },
        skip_build: false,
        ..opts.clone()
    };
    let state_dir = canonical(&loaded.source.root).join(".devspace");
    let mut number = 1;
    loop {
        let paths = tokio::select! {
            _ = cancel.cancelled() => {
                say(&later, "[dev] stopped");
                return ExitCode::Success;
            }
            batch = watcher.batches.recv() => match batch {
                Some(paths) => paths,
                None => {
                    print_error(ui.color, "the file watcher stopped", &[]);
                    return ExitCode::Failure;
                }
            },
        };
        let paths = drain(paths, &mut watcher);
        // Reloaded for every batch: an edited `.dockerignore` applies at once.
        let targets = watch_targets(&loaded.config);
        let affected = affected_images(&targets, &paths, &state_dir);
        if affected.is_empty() {
            tracing::debug!("ignored changes: {paths:?}");
            continue;
        }
        tracing::debug!("changes affect {}", affected.join(", "));
        number += 1;
        let cycle = run_cycle(loaded, client, &later, number, &cancel).await;
        if cancel.is_cancelled() {
            return ExitCode::Interrupted;
        }
        say(&later, &cycle_line(&cycle));
    }
}

/// One later cycle: build with the decision engine; redeploy when something was built.
async fn run_cycle(
    loaded: &Loaded,
    client: &KubeClient,
    opts: &DeployOptions,
    number: u32,
    cancel: &CancellationToken,
) -> CycleSummary {
    let run = build_for(loaded, client, opts, cancel.clone()).await;
    if opts.ui.json {
        summary::print_report(&run.report, true, false, opts.ui.silent, true);
    }
    let mut cycle = summary(number, Some(&run), DeployStep::Skipped);
    if run.exit != ExitCode::Success || cycle.built.is_empty() {
        return cycle;
    }
    let code = deploy_built(loaded, client, opts, Some(&run), cancel).await;
    cycle.deploy = if code == ExitCode::Success {
        DeployStep::Deployed(deployment_names(loaded))
    } else {
        DeployStep::Failed
    };
    cycle
}

/// The cycle's images by outcome.
fn summary(number: u32, run: Option<&BuildRun>, deploy: DeployStep) -> CycleSummary {
    let mut built = Vec::new();
    let mut failed = Vec::new();
    for image in run.map(|r| r.report.images.as_slice()).unwrap_or_default() {
        match image.status {
            // A retag and an image found in the registry have new tags to deploy too.
            Status::Built | Status::Pushed | Status::Retagged => {
                built.push((image.key.clone(), image.reason.clone()))
            }
            Status::Skipped
                if image
                    .decision
                    .as_ref()
                    .is_some_and(|d| matches!(d, Decision::FoundInRegistry { .. })) =>
            {
                built.push((image.key.clone(), image.reason.clone()))
            }
            s if s.is_failure() => failed.push(image.key.clone()),
            _ => {}
        }
    }
    CycleSummary {
        number,
        built,
        failed,
        deploy,
    }
}

fn deployment_names(loaded: &Loaded) -> Vec<String> {
    loaded
        .config
        .deployments
        .iter()
        .map(|d| d.name.clone())
        .collect()
}

/// Adds every batch already waiting: changes made during a cycle start one cycle, not many.
fn drain(mut paths: Vec<PathBuf>, watcher: &mut Watcher) -> Vec<PathBuf> {
    while let Ok(more) = watcher.batches.try_recv() {
        paths.extend(more);
    }
    paths
}

fn canonical(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn say(opts: &DeployOptions, line: &str) {
    if !opts.ui.silent {
        write_stderr(&format!("{line}\n"));
    }
}
