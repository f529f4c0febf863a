//! What the commands share (a helper, not a command): turning the global and build flags into
//! settings, loading the config with cached variable answers, the async runtime (created only
//! by commands that need it, so `print` stays light) and the frames that run a command body.

use crate::cli::{BuildArgs, GlobalArgs, OutputFormat};
use crate::config::{self, ConfigError, LoadOptions, Loaded};
use crate::deploy::run::DeployOptions;
use crate::exit::ExitCode;
use crate::image::cache::Cache;
use crate::kube::KubeSettings;
use crate::kube::client::KubeClient;
use crate::pipeline::dispatch::BuildOptions;
use crate::ui::{UiOptions, print_error, write_stderr};
use std::io::IsTerminal;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Builds the loader options from the global flags.
pub fn load_options(global: &GlobalArgs) -> Result<LoadOptions, ConfigError> {
    let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    let mut opts = LoadOptions {
        config_path: global.config.clone(),
        cwd,
        profiles: global.profiles.clone(),
        vars: global.vars.clone(),
        interactive: std::io::stdin().is_terminal(),
        cached_vars: Default::default(),
        kube_context: global.kube_context.clone(),
        namespace: global.namespace.clone(),
        no_commands: false,
    };
    // Answers cached by earlier runs count like DevSpace's; a missing config is reported by
    // the load itself.
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Ok(path) = config::find_config(&opts, home.as_deref())
        && let Some(root) = path.parent()
    {
        opts.cached_vars = config::read_cached_vars(root);
    }
    Ok(opts)
}

/// Loads the config for `global`, using and then saving variable answers in
/// `.devspace/generated.yaml` like DevSpace; prints errors and returns their exit code.
pub fn load_config(global: &GlobalArgs) -> Result<Loaded, ExitCode> {
    let color = false;
    let mut opts = load_options(global).map_err(|e| crate::ui::report(color, &e))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    // DevSpace 6 configs keep their answers in `.devspace/cache.yaml`.
    let cache = config::find_config(&opts, home.as_deref())
        .ok()
        .and_then(|p| {
            let v2 = config::v2::is_v2_file(&p);
            p.parent().map(|root| Cache::open_for(root, v2))
        });
    if let Some(cache) = &cache {
        opts.cached_vars = cache.vars().into_iter().collect();
    }
    let loaded = config::load(&opts).map_err(|e| crate::ui::report(color, &e))?;
    if !loaded.new_var_answers.is_empty()
        && let Some(cache) = &cache
        && let Err(e) = cache.set_vars(&loaded.new_var_answers.clone().into_iter().collect())
    {
        write_stderr(&format!("warning: cannot remember variable answers: {e}\n"));
    }
    if !global.silent {
        for w in &loaded.warnings {
            write_stderr(&format!("warning: {w}\n"));
        }
    }
    if !loaded.unused_sections.is_empty() {
        tracing::debug!(
            "sections not used by this tool: {}",
            loaded.unused_sections.join(", ")
        );
    }
    Ok(loaded)
}

/// The tokio runtime for commands that talk to Docker, registries or Kubernetes.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            print_error(false, &format!("cannot start the async runtime: {e}"), &[]);
            ExitCode::Failure
        })
}

/// Sets up `tracing` for `--debug` (debug level) or warnings only.
pub fn init_tracing(global: &GlobalArgs) {
    let level = if global.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEVSPACE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("devspace={level}")));
    // Same colour rule as the printer: a terminal, no `--no-color`, no NO_COLOR.
    let color = crate::ui::UiOptions::detect(false, false, global.no_color, false).color;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// The cluster the global flags select (kaniko builds, pull secrets, deploy).
pub fn kube_settings(global: &GlobalArgs) -> KubeSettings {
    KubeSettings {
        kube_context: global.kube_context.clone(),
        namespace: global.namespace.clone(),
        kubeconfig: None,
    }
}

/// The build settings the flags select (`local` is filled in by deploy and dev).
pub fn build_options(global: &GlobalArgs, args: &BuildArgs, dry_run: bool) -> BuildOptions {
    BuildOptions {
        tags: args.tags.clone(),
        force_build: args.force_build,
        skip_push: args.skip_push,
        dry_run,
        max_concurrent: if args.build_sequential {
            Some(1)
        } else {
            args.max_concurrent_builds.map(|n| n as usize)
        },
        kube: kube_settings(global),
        local: None,
        registry_cache: !args.no_registry_cache,
    }
}

/// The printer settings: terminal detection, `--debug`, `--silent`, colors; `json` reserves
/// stdout for a report.
pub fn ui_options(global: &GlobalArgs, args: &BuildArgs, json: bool) -> UiOptions {
    let mut ui = UiOptions::detect(global.debug, global.silent, global.no_color, json);
    ui.stream_logs = args.build_sequential;
    ui
}

/// The options of a deploy pass from the flags.
pub fn deploy_options(
    global: &GlobalArgs,
    args: &BuildArgs,
    skip_build: bool,
    use_digests: bool,
) -> DeployOptions {
    DeployOptions {
        build: build_options(global, args, false),
        skip_build,
        use_digests,
        ui: ui_options(global, args, args.output == OutputFormat::Json),
        kube_context: global.kube_context.clone(),
    }
}

/// Loads the config, starts the runtime and the Ctrl-C watcher, and runs `f` on them: the
/// common frame of every command that builds or deploys.
pub fn run_with_config<F, Fut>(global: &GlobalArgs, f: F) -> ExitCode
where
    F: FnOnce(Loaded, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let loaded = match load_config(global) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let cancel = crate::signals::install();
        f(loaded, cancel).await
    })
}

/// What deploy and dev do before their first build: load the config, start the runtime and
/// the Ctrl-C watcher, connect to the cluster (exit 4 when unreachable) and create the pull
/// secrets; then runs `body`.
pub fn run_with_cluster(
    global: &GlobalArgs,
    opts: DeployOptions,
    body: impl AsyncFnOnce(Loaded, KubeClient, DeployOptions, CancellationToken) -> ExitCode,
) -> ExitCode {
    run_with_config(global, async |loaded, cancel| {
        let client = match crate::deploy::run::connect(&kube_settings(global)).await {
            Ok(c) => c,
            Err(e) => return crate::ui::report(false, &e),
        };
        crate::deploy::run::ensure_secrets(&loaded, &client, opts.ui.silent).await;
        body(loaded, client, opts, cancel).await
    })
}
