//! DevSpace 6 configs on `devspace build|deploy|render|run-pipeline` (and `dev` with a
//! custom `dev` pipeline): flags → [`CliDefaults`] and deploy settings →
//! [`crate::pipeline_script::live::run_pipeline`] (the config's own pipeline or DevSpace 6's
//! built-in one, on the same build, pull-secret and deploy code as 4.x/5.x) → exit code.

use super::common::{deploy_options, load_options, run_with_config};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::config;
use crate::exit::ExitCode;
use crate::pipeline_script::CliDefaults;

/// Whether the config the flags select declares `version: v2beta1` (read without loading it,
/// so nothing runs twice).
pub fn is_v2(global: &GlobalArgs) -> bool {
    let Ok(opts) = load_options(global) else {
        return false;
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    config::find_config(&opts, home.as_deref()).is_ok_and(|p| config::v2::is_v2_file(&p))
}

/// Whether the v2beta1 config defines its own non-empty pipeline `name` (read raw).
pub fn has_own_pipeline(global: &GlobalArgs, name: &str) -> bool {
    let Ok(opts) = load_options(global) else {
        return false;
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let Some(text) = config::find_config(&opts, home.as_deref())
        .ok()
        .and_then(|p| crate::yaml::limits::read_file(&p).ok())
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
    let deploy = deploy_options(global, args, cli.skip_build, use_digests);
    run_with_config(global, async |loaded, cancel| {
        crate::pipeline_script::live::run_pipeline(&loaded, name, cli, deploy, cancel).await
    })
}
