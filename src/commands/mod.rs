//! Command runners: glue between parsed CLI arguments and the pipeline modules.
//!
//! Each command lives in its own file and returns an [`ExitCode`]; user-facing failures are
//! printed here (through `ui`) so `main` stays a thin shell.

pub mod build;
pub mod common;
pub mod deploy;
pub mod login;
pub mod print;
pub mod render;

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    common::init_tracing(&cli.global);
    match &cli.command {
        Command::Print { images } => print::run(&cli.global, *images),
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "devspace", &mut std::io::stdout());
            ExitCode::Success
        }
        Command::Build { build, dry_run } => build::run(&cli.global, build, *dry_run),
        Command::Deploy {
            build,
            skip_build,
            use_digests,
        } => deploy::run(&cli.global, build, *skip_build, *use_digests),
        Command::Dev { .. } => not_implemented("dev"),
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

/// Commands whose issue has not landed say so plainly instead of pretending.
fn not_implemented(name: &str) -> ExitCode {
    eprintln!("error: `devspace {name}` is not implemented yet");
    ExitCode::Usage
}
