//! Command runners: glue between parsed CLI arguments and the pipeline modules.
//!
//! Each command lives in its own file and returns an [`ExitCode`]; user-facing failures are
//! printed here (through `ui`) so `main` stays a thin shell.

pub mod build;
pub mod common;
pub mod deploy;
pub mod dev;
pub mod login;
pub mod print;
pub mod render;
pub mod v6;

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    common::init_tracing(&cli.global);
    match &cli.command {
        Command::Print { images, convert } => print::run(&cli.global, *images, *convert),
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "devspace", &mut std::io::stdout());
            ExitCode::Success
        }
        // DevSpace 6 configs run the command's pipeline (their own or the built-in one).
        Command::Build { build, dry_run } if !*dry_run && v6::is_v2(&cli.global) => {
            let cli_defaults = v6::cli_defaults(build, false, false);
            v6::run(&cli.global, "build", cli_defaults, build, false)
        }
        Command::Deploy {
            build,
            skip_build,
            use_digests,
        } if v6::is_v2(&cli.global) => {
            let cli_defaults = v6::cli_defaults(build, *skip_build, false);
            v6::run(&cli.global, "deploy", cli_defaults, build, *use_digests)
        }
        Command::Render {
            build,
            skip_build,
            use_digests,
        } if v6::is_v2(&cli.global) => {
            let cli_defaults = v6::cli_defaults(build, *skip_build, true);
            v6::run(&cli.global, "deploy", cli_defaults, build, *use_digests)
        }
        Command::Dev {
            build,
            skip_build,
            use_digests,
        } if v6::is_v2(&cli.global) && v6::has_own_pipeline(&cli.global, "dev") => {
            let cli_defaults = v6::cli_defaults(build, *skip_build, false);
            v6::run(&cli.global, "dev", cli_defaults, build, *use_digests)
        }
        Command::RunPipeline {
            name,
            build,
            skip_build,
            use_digests,
        } => {
            let cli_defaults = v6::cli_defaults(build, *skip_build, false);
            v6::run(&cli.global, name, cli_defaults, build, *use_digests)
        }
        Command::Build { build, dry_run } => build::run(&cli.global, build, *dry_run),
        Command::Deploy {
            build,
            skip_build,
            use_digests,
        } => deploy::run(&cli.global, build, *skip_build, *use_digests),
        Command::Dev {
            build,
            skip_build,
            use_digests,
        } => dev::run(&cli.global, build, *skip_build, *use_digests),
        Command::Render {
            build,
            skip_build,
            use_digests,
        } => render::run(&cli.global, build, *skip_build, *use_digests),
        Command::Login {
            registry,
            username,
            password_stdin,
        } => login::run(registry.as_deref(), username.as_deref(), *password_stdin),
    }
}
