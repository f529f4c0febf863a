//! `devspace deploy`: flags → deploy settings → [`crate::deploy::run::deploy_once`] (build
//! unless `--skip-build`, pull secrets, tag replacement, apply / helm) → exit code.

use super::common::{deploy_options, run_with_cluster};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::exit::ExitCode;
use crate::ui::{paint, write_stderr};

/// Runs `devspace deploy`.
pub fn run(global: &GlobalArgs, args: &BuildArgs, skip_build: bool, use_digests: bool) -> ExitCode {
    let opts = deploy_options(global, args, skip_build, use_digests);
    run_with_cluster(global, opts, async |loaded, client, opts, cancel| {
        let (code, _) = crate::deploy::run::deploy_once(&loaded, &client, &opts, cancel).await;
        if code == ExitCode::Success && !global.silent {
            write_stderr(&format!("{}\n", paint(opts.ui.color, "32", "deployed")));
        }
        code
    })
}
