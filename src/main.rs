//! The `devspace` binary: parse arguments, run the command, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = devspace::cli::Cli::parse();
    devspace::commands::run(cli).into()
}
