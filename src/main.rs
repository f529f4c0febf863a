use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = devspace::cli::Cli::parse();
    let _ = cli;
    devspace::exit::ExitCode::Usage.into()
}
