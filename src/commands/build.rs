//! `devspace build`: plan the images, run one job per image (parallel, bounded, dependencies
//! first), show progress, write per-image logs, end with a summary or a JSON report.
//! [`build_images`] is shared with deploy, render and dev.

use crate::cli::{BuildArgs, GlobalArgs, OutputFormat};
use crate::config::{BuilderKind, Loaded};
use crate::exit::ExitCode;
use crate::kube::KubeSettings;
use crate::pipeline::events::{BuildReport, Event, ImageEvent, ImageReport, Stage, Status};
use crate::pipeline::job::{
    Emitter, ImageFailure, ImageSuccess, LocalTarget, RunSettings, Shared, run_image,
};
use crate::pipeline::plan::{ImagePlan, plan};
use crate::pipeline::schedule::{JobResult, Limits, run_jobs};
use crate::ui::logs::ImageLog;
use crate::ui::{Ui, UiOptions, summary};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a build run produced, for the commands that go on to deploy.
pub struct BuildRun {
    pub report: BuildReport,
    pub exit: ExitCode,
    /// Successful images by key (tags, digest).
    pub images: IndexMap<String, ImageSuccess>,
}

/// The cache bucket name for the applied profiles (DevSpace: the profile name, "" without).
pub fn profile_key(loaded: &Loaded) -> String {
    loaded.source.profiles.join(",")
}

/// Runs `devspace build`.
pub fn run(global: &GlobalArgs, args: &BuildArgs, dry_run: bool) -> ExitCode {
    super::common::run_with_config(global, |loaded, cancel| async move {
        let mut ui_opts = UiOptions::detect(
            global.debug,
            global.silent,
            global.no_color,
            args.output == OutputFormat::Json,
        );
        ui_opts.stream_logs = args.build_sequential;
        let run = build_images(
            &loaded,
            args,
            dry_run,
            ui_opts,
            kube_settings(global),
            None,
            cancel,
        )
        .await;
        print_report(&run.report, args.output, dry_run, global.silent, false);
        run.exit
    })
}

/// The cluster the global flags select (kaniko builds, pull secrets).
pub fn kube_settings(global: &GlobalArgs) -> KubeSettings {
    KubeSettings {
        kube_context: global.kube_context.clone(),
        namespace: global.namespace.clone(),
        kubeconfig: None,
    }
}

/// Prints the summary (text) or the JSON report on stdout (on stderr with `to_stderr`, for
/// commands whose stdout carries something else).
pub fn print_report(
    report: &BuildReport,
    output: OutputFormat,
    dry_run: bool,
    silent: bool,
    to_stderr: bool,
) {
    let text = match output {
        OutputFormat::Json => summary::render_json(report) + "\n",
        OutputFormat::Text if silent => return,
        OutputFormat::Text if dry_run => summary::render_dry_run(report),
        OutputFormat::Text => summary::render(report),
    };
    if to_stderr {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// The tag (and digest) deploy uses for every image: the one built in this run, else the one
/// recorded in the cache by an earlier build. Images never built have none.
pub fn deploy_tags(
    loaded: &Loaded,
    run: Option<&BuildRun>,
) -> IndexMap<String, crate::deploy::ImageTag> {
    let cache = crate::build::cache::Cache::open_for(
        &loaded.source.root,
        loaded.config.version == crate::config::v2::VERSION,
    );
    let profile = profile_key(loaded);
    let mut tags = IndexMap::new();
    for key in loaded.config.images.keys() {
        if let Some(s) = run.and_then(|r| r.images.get(key))
            && let Some(tag) = s.tags.first()
        {
            tags.insert(
                key.clone(),
                crate::deploy::ImageTag {
                    tag: tag.clone(),
                    digest: s.digest.clone(),
                },
            );
            continue;
        }
        if let Some(cached) = cache.cached(&profile, key)
            && let Some(tag) = cached.entry.tag.clone().filter(|t| !t.is_empty())
        {
            let digest = cached
                .record
                .as_ref()
                .and_then(|r| r.push.as_ref())
                .and_then(|p| p.digest.clone());
            tags.insert(key.clone(), crate::deploy::ImageTag { tag, digest });
        }
    }
    tags
}

fn disabled_report(plan: &ImagePlan) -> ImageReport {
    ImageReport {
        key: plan.key.clone(),
        image: plan.config.image.clone(),
        tags: Vec::new(),
        builder: plan.builder.to_string(),
        status: Status::Disabled,
        reason: "disabled (not built)".into(),
        digest: None,
        pushed: false,
        duration_ms: 0,
        error: None,
        log_file: None,
        context_files: None,
        context_bytes: None,
    }
}

/// Builds every image of `loaded` as `args` say, showing progress through `ui_opts`;
/// kaniko builds (and the Docker → kaniko fallback) use the cluster `kube` selects; `local`
/// (deploy and dev only) lets images reach a cluster on this machine without a registry.
pub async fn build_images(
    loaded: &Loaded,
    args: &BuildArgs,
    dry_run: bool,
    ui_opts: UiOptions,
    kube: KubeSettings,
    local: Option<LocalTarget>,
    cancel: CancellationToken,
) -> BuildRun {
    let started = Instant::now();
    let root = loaded.source.root.clone();
    let plans = plan(&loaded.config, &args.tags);
    let active: Vec<ImagePlan> = plans
        .iter()
        .filter(|p| p.builder != BuilderKind::Disabled)
        .cloned()
        .collect();
    let shared = Arc::new(Shared::new(RunSettings {
        root: root.clone(),
        profile_key: profile_key(loaded),
        force_build: args.force_build,
        skip_push: args.skip_push,
        dry_run,
        kube,
        local,
        devspace6: loaded.config.version == crate::config::v2::VERSION,
    }));
    for w in shared.cache.warnings() {
        tracing::warn!("{w}");
    }

    let mut ui = Ui::new(ui_opts);
    let keys: Vec<String> = active.iter().map(|p| p.key.clone()).collect();
    ui.start_images(&keys);
    let log_dir = root.join(".devspace").join("logs");
    let mut logs: HashMap<String, ImageLog> = if dry_run {
        HashMap::new()
    } else {
        keys.iter()
            .map(|k| (k.clone(), ImageLog::create(&log_dir, k)))
            .collect()
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let durations: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let by_key: Arc<HashMap<String, ImagePlan>> =
        Arc::new(active.iter().map(|p| (p.key.clone(), p.clone())).collect());
    let limits = Limits {
        max_concurrent: if args.build_sequential {
            Some(1)
        } else {
            args.max_concurrent_builds.map(|n| n as usize)
        },
    };
    let specs = active.iter().map(ImagePlan::job_spec).collect();
    let scheduler = {
        let shared = shared.clone();
        let durations = durations.clone();
        let by_key = by_key.clone();
        run_jobs(
            specs,
            limits,
            cancel.clone(),
            move |key: String, deps: IndexMap<String, ImageSuccess>, token| {
                let shared = shared.clone();
                let durations = durations.clone();
                let plan = by_key.get(&key).cloned();
                let deps = deps
                    .into_iter()
                    .filter_map(|(k, s)| by_key.get(&k).map(|p| (k, (p.config.image.clone(), s))))
                    .collect();
                let emit = Emitter::new(&key, tx.clone());
                async move {
                    let start = Instant::now();
                    let Some(plan) = plan else {
                        return Err(ImageFailure {
                            message: format!("image {key}: not planned"),
                            hints: Vec::new(),
                            last_lines: Vec::new(),
                            exit: ExitCode::Failure,
                        });
                    };
                    let res = run_image(shared, plan, deps, emit, token).await;
                    if let Ok(mut d) = durations.lock() {
                        d.insert(key, start.elapsed());
                    }
                    res
                }
            },
        )
    };
    tokio::pin!(scheduler);

    let results = loop {
        tokio::select! {
            Some(ev) = rx.recv() => dispatch(&mut ui, &mut logs, &ev),
            res = &mut scheduler => break res,
        }
    };
    while let Ok(ev) = rx.try_recv() {
        dispatch(&mut ui, &mut logs, &ev);
    }

    let results = match results {
        Ok(r) => r,
        Err(cycle) => {
            ui.finish_all();
            crate::ui::print_error(ui_opts.color, &cycle.to_string(), &[
                "an image's Dockerfile builds FROM another image of this config; remove the loop".into(),
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

    let durations = durations.lock().map(|d| d.clone()).unwrap_or_default();
    let interrupted = cancel.is_cancelled();
    let mut reports = Vec::new();
    let mut images = IndexMap::new();
    let mut exit = ExitCode::Success;
    for p in &plans {
        if p.builder == BuilderKind::Disabled {
            reports.push(disabled_report(p));
            continue;
        }
        let log = logs.get_mut(&p.key);
        let log_file = log.as_ref().and_then(|l| l.path().map(|p| p.to_path_buf()));
        let duration_ms = durations
            .get(&p.key)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut report = ImageReport {
            key: p.key.clone(),
            image: p.config.image.clone(),
            tags: Vec::new(),
            builder: p.builder.to_string(),
            status: Status::Cancelled,
            reason: String::new(),
            digest: None,
            pushed: false,
            duration_ms,
            error: None,
            log_file: log_file.clone(),
            context_files: None,
            context_bytes: None,
        };
        match results.get(&p.key) {
            Some(JobResult::Succeeded(s)) => {
                report.tags = s.tags.clone();
                report.status = s.status;
                report.reason = s.reason.clone();
                report.digest = s.digest.clone();
                report.pushed = s.pushed;
                report.context_files = s.context.map(|c| c.0);
                report.context_bytes = s.context.map(|c| c.1);
                images.insert(p.key.clone(), s.clone());
            }
            Some(JobResult::Failed(f)) => {
                report.status = if f.exit == ExitCode::Interrupted {
                    Status::Cancelled
                } else {
                    Status::Failed
                };
                report.reason = first_line(&f.message);
                report.error = Some(f.message.clone());
                let tail = if f.last_lines.is_empty() {
                    log.map(|l| l.tail()).unwrap_or_default()
                } else {
                    f.last_lines.clone()
                };
                if report.status == Status::Failed {
                    print_failure(&ui, &p.key, f, &tail, log_file.as_deref());
                }
                exit = worse(exit, f.exit);
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
        reports.push(report);
    }
    for l in logs.values_mut() {
        l.flush();
    }
    if interrupted {
        exit = ExitCode::Interrupted;
    }
    BuildRun {
        report: BuildReport {
            success: exit == ExitCode::Success,
            images: reports,
            duration_ms: started.elapsed().as_millis() as u64,
            interrupted,
        },
        exit,
        images,
    }
}

/// The exit code that tells more: interrupted > unreachable > auth > failure > success.
fn worse(a: ExitCode, b: ExitCode) -> ExitCode {
    let rank = |c: ExitCode| match c {
        ExitCode::Success => 0,
        ExitCode::Failure | ExitCode::Usage | ExitCode::Config => 1,
        ExitCode::Auth => 2,
        ExitCode::Unreachable => 3,
        ExitCode::Interrupted => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn dispatch(ui: &mut Ui, logs: &mut HashMap<String, ImageLog>, ev: &Event) {
    if let Some(log) = logs.get_mut(&ev.image) {
        match &ev.kind {
            ImageEvent::Log(line) => log.line(line),
            ImageEvent::Decision { reason, .. } => log.line(&format!("devspace: {reason}")),
            ImageEvent::Note(note) => log.line(&format!("devspace: {note}")),
            ImageEvent::Pushed { tag, digest } => log.line(&format!(
                "devspace: pushed {tag} {}",
                digest.as_deref().unwrap_or("")
            )),
            ImageEvent::Stage(Stage::Building | Stage::Pushing) => log.open(),
            ImageEvent::Stage(_) | ImageEvent::Step { .. } => {}
        }
    }
    ui.event(ev);
}

fn print_failure(
    ui: &Ui,
    key: &str,
    f: &ImageFailure,
    tail: &[String],
    log_file: Option<&std::path::Path>,
) {
    let color = ui.options().color;
    let mut block = format!(
        "{} {}",
        crate::ui::paint(color, "31", &format!("error: [{}]", crate::ui::escape(key))),
        crate::ui::escape_lines(&f.message)
    );
    if !tail.is_empty() {
        block.push_str(&format!("\n  last {} lines of the log:", tail.len()));
        for l in tail {
            block.push_str(&format!("\n  | {}", crate::ui::escape(l)));
        }
    }
    if let Some(p) = log_file {
        block.push_str(&format!("\n  full log: {}", p.display()));
    }
    for h in &f.hints {
        block.push_str(&format!(
            "\n{} {}",
            crate::ui::paint(color, "36", "hint:"),
            crate::ui::escape_lines(h)
        ));
    }
    ui.error_block(&block);
}
