//! `devspace render`: build (unless `--skip-build`), then print the manifests and Helm values
//! deploy would apply, with image tags replaced. Needs no cluster.

use super::common::{build_options, run_with_config, ui_options};
use crate::cli::{BuildArgs, GlobalArgs, OutputFormat};
use crate::deploy::run::deploy_tags;
use crate::deploy::{ImageTable, format_rendered, render};
use crate::exit::ExitCode;
use crate::pipeline::dispatch::{BuildRun, build_images};
use crate::ui::summary::print_report;
use crate::ui::{print_error, write_stderr, write_stdout};

/// Runs `devspace render`.
pub fn run(global: &GlobalArgs, args: &BuildArgs, skip_build: bool, use_digests: bool) -> ExitCode {
    run_with_config(global, |loaded, cancel| async move {
        let run: Option<BuildRun> = if skip_build {
            None
        } else {
            // stdout carries the manifests: the build reports on stderr.
            let opts = build_options(global, args, false);
            let run = build_images(&loaded, &opts, ui_options(global, args, true), cancel).await;
            let json = args.output == OutputFormat::Json;
            print_report(&run.report, json, false, global.silent, true);
            if run.exit != ExitCode::Success {
                return run.exit;
            }
            Some(run)
        };
        let tags = deploy_tags(&loaded, run.as_ref());
        let table = ImageTable::new(&loaded.config, &tags, use_digests);
        let config = loaded.config.clone();
        let root = loaded.source.root.clone();
        let rendered = tokio::task::spawn_blocking(move || render(&config, &root, &table)).await;
        match rendered {
            Ok(Ok(deployments)) => {
                for d in &deployments {
                    for w in &d.warnings {
                        write_stderr(&format!("warning: deployment {}: {w}\n", d.name));
                    }
                }
                write_stdout(&format_rendered(&deployments));
                ExitCode::Success
            }
            Ok(Err(e)) => crate::ui::report(false, &e),
            Err(e) => {
                print_error(false, &format!("render failed: {e}"), &[]);
                ExitCode::Failure
            }
        }
    })
}
