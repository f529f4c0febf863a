//! `devspace dev`: flags → deploy settings → [`crate::dev::session::run`] (build and deploy,
//! then rebuild and redeploy on changes until Ctrl-C) → exit code.

use super::common::{deploy_options, run_with_cluster};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::exit::ExitCode;

/// Runs `devspace dev` until Ctrl-C (exit codes: see [`crate::dev::session::run`]).
pub fn run(global: &GlobalArgs, args: &BuildArgs, skip_build: bool, use_digests: bool) -> ExitCode {
    let opts = deploy_options(global, args, skip_build, use_digests);
    run_with_cluster(global, opts, async |loaded, client, opts, cancel| {
        crate::dev::session::run(&loaded, &client, &opts, cancel).await
    })
}
