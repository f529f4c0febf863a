//! `devspace build`: flags → build settings → [`crate::pipeline::dispatch::build_images`] →
//! summary or JSON report → exit code.

use super::common::{build_options, run_with_config, ui_options};
use crate::cli::{BuildArgs, GlobalArgs, OutputFormat};
use crate::exit::ExitCode;
use crate::pipeline::dispatch::build_images;
use crate::ui::summary::print_report;

/// Runs `devspace build`.
pub fn run(global: &GlobalArgs, args: &BuildArgs, dry_run: bool) -> ExitCode {
    let json = args.output == OutputFormat::Json;
    run_with_config(global, |loaded, cancel| async move {
        let opts = build_options(global, args, dry_run);
        let run = build_images(&loaded, &opts, ui_options(global, args, json), cancel).await;
        print_report(&run.report, json, dry_run, global.silent, false);
        run.exit
    })
}
