//! `devspace print`: the resolved config as YAML, or a table of images.

use crate::cli::GlobalArgs;
use crate::exit::ExitCode;

/// Prints the resolved config (or, with `images`, a table of the images).
pub fn run(_global: &GlobalArgs, _images: bool) -> ExitCode {
    eprintln!("error: `devspace print` is not implemented yet");
    ExitCode::Usage
}
