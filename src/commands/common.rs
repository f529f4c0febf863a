//! What several commands share: loading the config with cached variable answers, and the
//! async runtime (created only by commands that need it, so `print` stays light).

use crate::build::cache::Cache;
use crate::cli::GlobalArgs;
use crate::config::{self, Loaded};
use crate::exit::ExitCode;

/// Loads the config for `global`, using and then saving variable answers in
/// `.devspace/generated.yaml` like DevSpace; prints errors and returns their exit code.
pub fn load_config(global: &GlobalArgs) -> Result<Loaded, ExitCode> {
    let mut opts =
        super::print::load_options(global).map_err(|e| super::print::report_error(&e))?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
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
    let loaded = config::load(&opts).map_err(|e| super::print::report_error(&e))?;
    if !loaded.new_var_answers.is_empty()
        && let Some(cache) = &cache
        && let Err(e) = cache.set_vars(&loaded.new_var_answers.clone().into_iter().collect())
    {
        eprintln!("warning: cannot remember variable answers: {e}");
    }
    if !global.silent {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
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
            eprintln!("error: cannot start the async runtime: {e}");
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

/// Loads the config, starts the runtime and the Ctrl-C watcher, and runs `f` on them: the
/// common frame of every command that builds or deploys.
pub fn run_with_config<F, Fut>(global: &GlobalArgs, f: F) -> ExitCode
where
    F: FnOnce(Loaded, tokio_util::sync::CancellationToken) -> Fut,
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
