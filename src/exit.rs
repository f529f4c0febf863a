//! Process exit codes (documented in the README's table).

/// Every run ends with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything asked for succeeded.
    Success = 0,
    /// At least one image failed to build or push, or a deploy step failed.
    Failure = 1,
    /// Bad command-line usage.
    Usage = 2,
    /// The config could not be found, parsed, resolved or validated.
    Config = 3,
    /// The Docker daemon or Kubernetes cluster could not be reached.
    Unreachable = 4,
    /// A registry refused the credentials.
    Auth = 5,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}
