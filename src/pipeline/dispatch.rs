//! The dispatcher: the run state that image events update, and the report a run ends with.
//!
//! [`RunState::handle`] is synchronous and does no printing: it writes the per-image logs
//! and remembers durations (which arrive as [`ImageEvent::Finished`] events). [`RunState::finish`]
//! turns the scheduler's results into the [`BuildReport`], the exit code (the worst failure
//! wins) and the failure blocks to show — one block per cause: a cause shared by several
//! images (daemon unreachable, cluster unreachable, credentials refused) is one block naming
//! every image it affected. Every failure is written to its image's log, so the log tells the
//! whole story; a failed image always gets this run's log (the previous one is replaced).
//! [`build_images`] runs the scheduler with this state and the `ui` printer.

use crate::config::{BuilderKind, Loaded};
use crate::diagnostic::{Described, worse};
use crate::exit::ExitCode;
use crate::kube::KubeSettings;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{BuildReport, Event, ImageEvent, ImageReport, Stage, Status};
use crate::pipeline::job::{Emitter, ImageSuccess, JobContext, JobSettings, run_image};
use crate::pipeline::plan::{ImagePlan, LocalTarget, PlanSettings, plan};
use crate::pipeline::schedule::{JobResult, Limits, run_jobs};
use crate::pipeline::services::{LiveServices, Services};
use crate::ui::logs::ImageLog;
use crate::ui::{FailureBlock, Ui, UiOptions};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a build run produced, for the commands that go on to deploy.
pub struct BuildRun {
    pub report: BuildReport,
    pub exit: ExitCode,
    /// Successful images by key (tags, digest).
    pub images: IndexMap<String, ImageSuccess>,
}

/// The run state the dispatcher owns.
pub struct RunState {
    plans: Vec<ImagePlan>,
    logs: HashMap<String, ImageLog>,
    durations: HashMap<String, u64>,
    decisions: HashMap<String, crate::image::decision::Decision>,
}

/// How a run ended: the report, the exit code, the successes and what to show of the failures.
pub struct Finished {
    pub run: BuildRun,
    pub failures: Vec<FailureBlock>,
}

impl RunState {
    /// The state for `plans` (disabled images included, for the report); logs are written to
    /// `<log_dir>/<key>.log` (`None`: no logs, as in `--dry-run`).
    pub fn new(plans: Vec<ImagePlan>, log_dir: Option<PathBuf>) -> Self {
        let logs = match &log_dir {
            Some(dir) => plans
                .iter()
                .filter(|p| p.builder != BuilderKind::Disabled)
                .map(|p| (p.key.clone(), ImageLog::create(dir, &p.key)))
                .collect(),
            None => HashMap::new(),
        };
        RunState {
            plans,
            logs,
            durations: HashMap::new(),
            decisions: HashMap::new(),
        }
    }

    /// Takes one event into the state and the image's log.
    pub fn handle(&mut self, ev: &Event) {
        match &ev.kind {
            ImageEvent::Finished { duration_ms } => {
                self.durations.insert(ev.image.clone(), *duration_ms);
            }
            ImageEvent::Decision(d) => {
                self.decisions.insert(ev.image.clone(), d.clone());
            }
            _ => {}
        }
        let Some(log) = self.logs.get_mut(&ev.image) else {
            return;
        };
        match &ev.kind {
            ImageEvent::Log(line) => log.line(line),
            ImageEvent::Decision(d) => log.line(&format!("devspace: {d}")),
            ImageEvent::Note(note) => log.line(&format!("devspace: {note}")),
            ImageEvent::Pushed { tag, digest } => log.line(&format!(
                "devspace: pushed {tag} {}",
                digest.as_deref().unwrap_or("")
            )),
            ImageEvent::TaggedInRegistry { tag, digest } => {
                log.line(&format!("devspace: tagged {tag} in the registry {digest}"))
            }
            ImageEvent::Stage(Stage::Building | Stage::Pushing | Stage::Tagging) => log.open(),
            ImageEvent::Stage(_) | ImageEvent::Step { .. } | ImageEvent::Finished { .. } => {}
        }
    }

    /// The report of the run from the scheduler's results; `interrupted` after Ctrl-C.
    pub fn finish(
        mut self,
        results: &IndexMap<String, JobResult<ImageSuccess, ImageError>>,
        interrupted: bool,
        duration_ms: u64,
    ) -> Finished {
        let mut reports = Vec::new();
        let mut images = IndexMap::new();
        let mut exit = ExitCode::Success;
        let mut failures: Vec<FailureBlock> = Vec::new();
        for p in &self.plans {
            let mut report = ImageReport {
                key: p.key.clone(),
                image: p.config.image.clone(),
                tags: Vec::new(),
                builder: p.builder.to_string(),
                status: Status::Cancelled,
                reason: String::new(),
                decision: self.decisions.get(&p.key).cloned(),
                digest: None,
                pushed: false,
                duration_ms: self.durations.get(&p.key).copied().unwrap_or(0),
                error: None,
                log_file: None,
                context_files: None,
                context_bytes: None,
            };
            if p.builder == BuilderKind::Disabled {
                report.status = Status::Disabled;
                report.reason = "disabled (not built)".into();
                reports.push(report);
                continue;
            }
            let log = self.logs.get_mut(&p.key);
            match results.get(&p.key) {
                Some(JobResult::Succeeded(s)) => {
                    report.tags = s.tags.clone();
                    report.status = s.status;
                    report.reason = s.decision.to_string();
                    report.decision = Some(s.decision.clone());
                    report.digest = s.digest.clone();
                    report.pushed = s.pushed;
                    report.context_files = s.context.map(|c| c.0);
                    report.context_bytes = s.context.map(|c| c.1);
                    images.insert(p.key.clone(), s.clone());
                }
                Some(JobResult::Failed(e)) => {
                    let described = Described::of(e);
                    report.status = if e.is_cancelled() {
                        Status::Cancelled
                    } else {
                        Status::Failed
                    };
                    report.reason = described.message.lines().next().unwrap_or("").to_string();
                    report.error = Some(full_text(&described));
                    let tail = if described.last_lines.is_empty() {
                        log.as_ref().map(|l| l.tail()).unwrap_or_default()
                    } else {
                        described.last_lines.clone()
                    };
                    if let Some(log) = log {
                        // This run's log, with the failure in it, even when it failed early.
                        log.open();
                        for line in full_text(&described).lines() {
                            log.line(&format!("devspace: {line}"));
                        }
                    }
                    let log_file = self
                        .logs
                        .get(&p.key)
                        .and_then(|l| l.path().map(|p| p.to_path_buf()));
                    if report.status == Status::Failed {
                        add_failure(&mut failures, &p.key, described.clone(), tail, log_file);
                    }
                    exit = worse(exit, described.exit);
                }
                Some(JobResult::DependencyFailed(dep)) => {
                    report.status = Status::DependencyFailed;
                    report.reason = format!("builds FROM image {dep}, which failed");
                    exit = worse(exit, ExitCode::Failure);
                }
                Some(JobResult::Cancelled) | None => {
                    report.reason = "cancelled".into();
                    exit = worse(exit, ExitCode::Interrupted);
                }
            }
            report.log_file = self
                .logs
                .get(&p.key)
                .and_then(|l| l.path().map(|p| p.to_path_buf()));
            reports.push(report);
        }
        for l in self.logs.values_mut() {
            l.flush();
        }
        if interrupted {
            exit = ExitCode::Interrupted;
        }
        Finished {
            run: BuildRun {
                report: BuildReport {
                    success: exit == ExitCode::Success,
                    images: reports,
                    duration_ms,
                    interrupted,
                },
                exit,
                images,
            },
            failures,
        }
    }
}

/// Message, causes and hints as plain lines (the log and the JSON report).
fn full_text(d: &Described) -> String {
    let mut text = d.message.clone();
    for c in &d.causes {
        text.push_str(&format!("\ncaused by: {c}"));
    }
    for h in &d.hints {
        text.push_str(&format!("\nhint: {h}"));
    }
    text
}

/// Adds a failure; an environment cause already reported for another image only gains
/// this image's name.
fn add_failure(
    failures: &mut Vec<FailureBlock>,
    key: &str,
    described: Described,
    tail: Vec<String>,
    log_file: Option<PathBuf>,
) {
    if described.environment
        && let Some(block) = failures.iter_mut().find(|b| {
            b.described.environment
                && b.described.message == described.message
                && b.described.hints == described.hints
        })
    {
        block.images.push(key.to_string());
        block.log_files.extend(log_file);
        return;
    }
    let tail = if described.environment {
        Vec::new()
    } else {
        tail
    };
    failures.push(FailureBlock {
        images: vec![key.to_string()],
        described,
        tail,
        log_files: log_file.into_iter().collect(),
    });
}

/// The cache bucket name for the applied profiles (DevSpace: the profile name, "" without).
pub fn profile_key(loaded: &Loaded) -> String {
    loaded.source.profiles.join(",")
}

/// What a build run needs besides the config.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub tags: Vec<String>,
    pub force_build: bool,
    pub skip_push: bool,
    pub dry_run: bool,
    /// `--build-sequential` (one at a time) or `--max-concurrent-builds`.
    pub max_concurrent: Option<usize>,
    /// Kaniko builds (and the Docker → kaniko fallback) use the cluster this selects.
    pub kube: KubeSettings,
    /// deploy and dev only: lets images reach a cluster on this machine without a registry.
    pub local: Option<LocalTarget>,
    /// The registry content cache (on unless `--no-registry-cache`).
    pub registry_cache: bool,
}

/// Builds every image of `loaded` with the real services, showing progress through `ui_opts`.
pub async fn build_images(
    loaded: &Loaded,
    opts: &BuildOptions,
    ui_opts: UiOptions,
    cancel: CancellationToken,
) -> BuildRun {
    let services = LiveServices::new(loaded.source.root.clone(), opts.kube.clone());
    run_build(loaded, opts, ui_opts, Arc::new(services), cancel).await
}

/// Builds every image of `loaded` through `services`.
pub async fn run_build(
    loaded: &Loaded,
    opts: &BuildOptions,
    ui_opts: UiOptions,
    services: Arc<dyn Services>,
    cancel: CancellationToken,
) -> BuildRun {
    let started = Instant::now();
    let root = loaded.source.root.clone();
    let plans = plan(
        &loaded.config,
        &PlanSettings {
            tag_override: opts.tags.clone(),
            skip_push: opts.skip_push,
            local: opts.local.clone(),
            registry_cache: opts.registry_cache,
        },
    );
    let active: Vec<ImagePlan> = plans
        .iter()
        .filter(|p| p.builder != BuilderKind::Disabled)
        .cloned()
        .collect();
    let settings = JobSettings {
        root: root.clone(),
        profile_key: profile_key(loaded),
        force_build: opts.force_build,
        skip_push: opts.skip_push,
        dry_run: opts.dry_run,
    };
    let ctx = Arc::new(JobContext::new(
        settings,
        crate::image::cache::Cache::open_for(
            &root,
            loaded.config.version == crate::config::v2::VERSION,
        ),
        services,
    ));
    let mut ui = Ui::new(ui_opts);
    for w in ctx.cache.warnings() {
        ui.warn(&w);
    }
    let keys: Vec<String> = active.iter().map(|p| p.key.clone()).collect();
    ui.start_images(&keys);
    let log_dir = (!opts.dry_run).then(|| root.join(".devspace").join("logs"));
    let mut state = RunState::new(plans, log_dir);

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let by_key: Arc<HashMap<String, ImagePlan>> =
        Arc::new(active.iter().map(|p| (p.key.clone(), p.clone())).collect());
    let specs = active.iter().map(ImagePlan::job_spec).collect();
    let limits = Limits {
        max_concurrent: opts.max_concurrent,
    };
    let scheduler = run_jobs(
        specs,
        limits,
        cancel.clone(),
        |key: String, deps: IndexMap<String, ImageSuccess>, token| {
            let plan = by_key.get(&key).cloned();
            let deps: IndexMap<String, (String, ImageSuccess)> = deps
                .into_iter()
                .filter_map(|(k, s)| by_key.get(&k).map(|p| (k, (p.config.image.clone(), s))))
                .collect();
            let emit = Emitter::new(&key, tx.clone());
            let ctx = ctx.clone();
            async move {
                let start = Instant::now();
                let Some(plan) = plan else {
                    return Err(ImageError::Internal(format!("image {key}: not planned")));
                };
                let res = run_image(&ctx, &plan, &deps, &emit, &token).await;
                emit.send(ImageEvent::Finished {
                    duration_ms: start.elapsed().as_millis() as u64,
                });
                res
            }
        },
    );
    tokio::pin!(scheduler);
    let results = loop {
        tokio::select! {
            Some(ev) = rx.recv() => { ui.event(&ev); state.handle(&ev); }
            res = &mut scheduler => break res,
        }
    };
    while let Ok(ev) = rx.try_recv() {
        ui.event(&ev);
        state.handle(&ev);
    }
    let results = match results {
        Ok(r) => r,
        Err(cycle) => {
            ui.finish_all();
            ui.diagnostic(&cycle, &[
                "an image's Dockerfile builds FROM another image of this config; remove the loop"
                    .into(),
            ]);
            return BuildRun {
                report: BuildReport {
                    images: Vec::new(),
                    duration_ms: started.elapsed().as_millis() as u64,
                    success: false,
                    interrupted: false,
                },
                exit: ExitCode::Config,
                images: IndexMap::new(),
            };
        }
    };
    for (key, res) in &results {
        let word = match res {
            JobResult::Succeeded(s) => s.status.label(),
            JobResult::Failed(_) => "failed",
            JobResult::DependencyFailed(_) => "not built",
            JobResult::Cancelled => "cancelled",
        };
        ui.finish_image(key, word);
    }
    ui.finish_all();
    let finished = state.finish(
        &results,
        cancel.is_cancelled(),
        started.elapsed().as_millis() as u64,
    );
    for block in &finished.failures {
        ui.failure(block);
    }
    finished.run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::DaemonError;
    use crate::builder::docker::DockerEndpoint;
    use crate::config::{Config, ImageConfig};
    use crate::image::decision::{Decision, PushReason, Reason};
    use crate::pipeline::plan::PlanSettings;

    fn plans(keys: &[&str]) -> Vec<ImagePlan> {
        let mut config = Config::default();
        for k in keys {
            config.images.insert(
                k.to_string(),
                ImageConfig {
                    image: format!("127.0.0.1:5000/{k}"),
                    ..Default::default()
                },
            );
        }
        plan(&config, &PlanSettings::default())
    }

    fn ev(image: &str, kind: ImageEvent) -> Event {
        Event {
            image: image.into(),
            kind,
        }
    }

    fn success(status: Status, decision: Decision) -> JobResult<ImageSuccess, ImageError> {
        JobResult::Succeeded(ImageSuccess {
            status,
            decision,
            tags: vec!["v1".into()],
            digest: None,
            pushed: status != Status::Skipped,
            context: Some((2, 10)),
            content_key: None,
        })
    }

    fn daemon_down() -> ImageError {
        ImageError::Daemon(Arc::new(DaemonError::Unreachable {
            endpoint: Box::new(DockerEndpoint::from_host("tcp://127.0.0.1:1")),
            reason: "connection refused".into(),
        }))
    }

    type Case = (
        &'static str,
        Vec<Event>,
        JobResult<ImageSuccess, ImageError>,
        Status,
        &'static str,
        ExitCode,
    );

    #[test]
    fn one_image_table() {
        let cases: Vec<Case> = vec![
            (
                "skip",
                vec![ev("app", ImageEvent::Decision(Decision::Skip))],
                success(Status::Skipped, Decision::Skip),
                Status::Skipped,
                "skip (no change)",
                ExitCode::Success,
            ),
            (
                "verified: missing in registry, rebuilt",
                vec![
                    ev("app", ImageEvent::Stage(Stage::Verifying)),
                    ev("app", ImageEvent::Decision(Decision::Rebuild(Reason::MissingInRegistry))),
                ],
                success(Status::Built, Decision::Rebuild(Reason::MissingInRegistry)),
                Status::Built,
                "rebuild: image missing in registry",
                ExitCode::Success,
            ),
            (
                "push-only",
                vec![ev(
                    "app",
                    ImageEvent::Decision(Decision::PushOnly(PushReason::NotPushedYet)),
                )],
                success(Status::Pushed, Decision::PushOnly(PushReason::NotPushedYet)),
                Status::Pushed,
                "push: not pushed yet",
                ExitCode::Success,
            ),
            (
                "fallback to kaniko",
                vec![
                    ev("app", ImageEvent::Decision(Decision::Rebuild(Reason::NeverBuilt))),
                    ev("app", ImageEvent::Stage(Stage::Building)),
                    ev("app", ImageEvent::Note("Docker daemon not reachable at tcp://127.0.0.1:1: building with kaniko in namespace default (context k)".into())),
                ],
                success(Status::Built, Decision::Rebuild(Reason::NeverBuilt)),
                Status::Built,
                "rebuild: never built",
                ExitCode::Success,
            ),
            (
                "daemon down",
                vec![],
                JobResult::Failed(daemon_down()),
                Status::Failed,
                "cannot reach the Docker daemon at tcp://127.0.0.1:1: connection refused",
                ExitCode::Unreachable,
            ),
            (
                "dependency failed",
                vec![],
                JobResult::DependencyFailed("base".into()),
                Status::DependencyFailed,
                "builds FROM image base, which failed",
                ExitCode::Failure,
            ),
            (
                "cancelled",
                vec![],
                JobResult::Cancelled,
                Status::Cancelled,
                "cancelled",
                ExitCode::Interrupted,
            ),
        ];
        for (name, events, result, status, reason, exit) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut state = RunState::new(plans(&["app"]), Some(dir.path().to_path_buf()));
            for e in &events {
                state.handle(e);
            }
            state.handle(&ev("app", ImageEvent::Finished { duration_ms: 42 }));
            let results = IndexMap::from([("app".to_string(), result)]);
            let finished = state.finish(&results, false, 50);
            let report = &finished.run.report.images[0];
            assert_eq!(report.status, status, "{name}");
            assert_eq!(report.reason, reason, "{name}");
            assert_eq!(report.duration_ms, 42, "{name}: durations are events");
            assert_eq!(finished.run.exit, exit, "{name}");
            assert_eq!(
                finished.run.report.success,
                exit == ExitCode::Success,
                "{name}"
            );
            if let Some(d) = &report.decision {
                assert_eq!(
                    d.to_string(),
                    reason,
                    "{name}: the typed decision is reported"
                );
            }
            assert_eq!(
                finished.failures.len(),
                usize::from(status == Status::Failed),
                "{name}"
            );
            let log = std::fs::read_to_string(dir.path().join("app.log")).unwrap_or_default();
            if name == "fallback to kaniko" {
                assert!(log.contains("building with kaniko"), "{name}: {log}");
            }
            if status == Status::Failed {
                assert!(
                    log.contains("devspace: cannot reach the Docker daemon"),
                    "{log}"
                );
                assert!(
                    log.contains("devspace: hint: is the Docker daemon running?"),
                    "{log}"
                );
            }
        }
    }

    #[test]
    fn a_shared_cause_is_one_block_naming_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let state = RunState::new(
            plans(&["api", "web", "worker"]),
            Some(dir.path().to_path_buf()),
        );
        let results = IndexMap::from([
            ("api".to_string(), JobResult::Failed(daemon_down())),
            ("web".to_string(), JobResult::Failed(daemon_down())),
            ("worker".to_string(), JobResult::Failed(daemon_down())),
        ]);
        let finished = state.finish(&results, false, 5);
        assert_eq!(finished.failures.len(), 1);
        let block = &finished.failures[0];
        assert_eq!(block.images, ["api", "web", "worker"]);
        let text = crate::ui::render_failure(false, block);
        assert!(text.lines().count() <= 12, "{text}");
        assert_eq!(text.matches("error:").count(), 1, "{text}");
        assert!(text.contains("  images: api, web, worker"), "{text}");
        assert_eq!(finished.run.exit, ExitCode::Unreachable);
        // Every image's log has the failure (this run's log, not an older one).
        for key in ["api", "web", "worker"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{key}.log"))).unwrap();
            assert!(
                log.contains("cannot reach the Docker daemon"),
                "{key}: {log}"
            );
        }
    }

    #[test]
    fn a_failing_run_replaces_the_old_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.log"), "Step 1/1 : FROM old-run\n").unwrap();
        let state = RunState::new(plans(&["app"]), Some(dir.path().to_path_buf()));
        let err = ImageError::Unsupported("build.buildKit.inCluster is not supported".into());
        let results = IndexMap::from([("app".to_string(), JobResult::Failed(err))]);
        let finished = state.finish(&results, false, 5);
        let log = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        assert!(!log.contains("old-run"), "{log}");
        assert!(log.contains("inCluster is not supported"), "{log}");
        assert_eq!(
            finished.run.report.images[0].log_file.as_deref(),
            Some(dir.path().join("app.log").as_path())
        );
    }

    #[test]
    fn a_skipped_image_keeps_its_last_log_and_interrupts_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.log"), "last build\n").unwrap();
        let mut state = RunState::new(plans(&["app"]), Some(dir.path().to_path_buf()));
        state.handle(&ev("app", ImageEvent::Decision(Decision::Skip)));
        let results =
            IndexMap::from([("app".to_string(), success(Status::Skipped, Decision::Skip))]);
        let finished = state.finish(&results, true, 5);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app.log")).unwrap(),
            "last build\n"
        );
        assert_eq!(finished.run.exit, ExitCode::Interrupted);
        assert!(finished.run.report.interrupted);
    }
}
