//! `devspace render`: build (unless `--skip-build`), then print the manifests and Helm values
//! deploy would apply, with image tags replaced. Needs no cluster.

use super::build::{BuildRun, build_images, deploy_tags, print_report};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::deploy::{ImageTable, format_rendered, render};
use crate::exit::ExitCode;
use crate::ui::UiOptions;
use std::io::Write;

/// Runs `devspace render`.
pub fn run(global: &GlobalArgs, args: &BuildArgs, skip_build: bool, use_digests: bool) -> ExitCode {
    super::common::run_with_config(global, |loaded, cancel| async move {
        let run: Option<BuildRun> = if skip_build {
            None
        } else {
            let mut ui_opts = UiOptions::detect(global.debug, global.silent, global.no_color, true);
            ui_opts.stream_logs = args.build_sequential;
            let kube = super::build::kube_settings(global);
            let run = build_images(&loaded, args, false, ui_opts, kube, None, cancel).await;
            print_report(&run.report, args.output, false, global.silent, true);
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
                        eprintln!("warning: deployment {}: {w}", d.name);
                    }
                }
                let _ = std::io::stdout()
                    .lock()
                    .write_all(format_rendered(&deployments).as_bytes());
                ExitCode::Success
            }
            Ok(Err(e)) => {
                crate::ui::print_error(false, &e.to_string(), &[]);
                ExitCode::Failure
            }
            Err(e) => {
                crate::ui::print_error(false, &format!("render failed: {e}"), &[]);
                ExitCode::Failure
            }
        }
    })
}
