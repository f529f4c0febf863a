//! Running external programs: the one runner every caller goes through.
//!
//! Who runs what: the builders (`docker build`, a custom build command) stream lines
//! ([`stream`]); `helm`, `kind` and `minikube` are looked up in a [`Tools`] search path and their
//! output captured ([`run_async`], [`Tools::run`]); credential helpers, kustomize, config
//! command variables, `$(cmd)` expressions, `git` and `stty` run synchronously ([`run`]).
//!
//! What every run gets:
//! - **No shell** unless asked ([`Spec::shell`] is `sh -c`, for the places DevSpace uses one).
//! - **Program lookup** in a given `PATH` ([`Tools`]), so tests and callers can point at
//!   stand-in scripts without touching the process environment; a missing program is an error
//!   that names it and the `PATH` searched ([`RunError::Missing`]).
//! - **Its own process group** whenever the runner may have to stop it (a timeout, a
//!   cancellation token, every async run): stopping kills the whole group, so a script and the
//!   programs it started go together. A synchronous run without timeout or token stays in the
//!   caller's group instead, so the terminal's Ctrl-C reaches it (and everything it started) the
//!   way it reaches a program started by a shell, and a program that talks to the terminal
//!   (`stty`, a password prompt) is not stopped as a background job.
//! - **Ctrl-C**: [`interrupt`] (called by `signals` on the first Ctrl-C) stops every run that
//!   is in its own group.
//! - **Bounded output**: captured stdout and stderr are each capped ([`Spec::output_cap`],
//!   [`DEFAULT_OUTPUT_CAP`]); a program that writes more is killed and the error says so.
//!   Streamed lines are cut at [`lines::MAX_LINE`].
//! - **stdin**: none (`/dev/null`) unless bytes are fed ([`Spec::stdin_bytes`]), the terminal is
//!   inherited ([`Spec::inherit_stdin`]) or, for builders, a body is streamed ([`Body`]).
//! - **Errors with the command line** as the caller shows it ([`Spec::shown`], so a password
//!   can be masked), for the diagnostic path.
//!
//! Written on `std::process`/`tokio::process` and `libc::kill` rather than a crate: the
//! process-group handling, the output cap and the shared error type are the point, and no
//! crate in the tree provides them together.

mod blocking;
pub mod lines;
mod stream;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use blocking::run;
pub use stream::{Body, Streamed, run_async, stream};

/// The most a captured stream (stdout or stderr) may hold unless a [`Spec`] says otherwise.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024 * 1024;

/// Cancelled by the first Ctrl-C ([`interrupt`]).
static INTERRUPT: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);

/// Stops every running program that is in its own process group (the first Ctrl-C).
pub fn interrupt() {
    INTERRUPT.cancel();
}

/// Where external programs are looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tools {
    path: Option<OsString>,
}

impl Tools {
    /// Searches the process `PATH`.
    pub fn from_env() -> Self {
        Self {
            path: std::env::var_os("PATH"),
        }
    }

    /// Searches `path` (a `PATH`-style list) instead of the process `PATH`.
    pub fn with_path(path: impl Into<OsString>) -> Self {
        Self {
            path: Some(path.into()),
        }
    }

    /// The first executable file called `name` in the search path.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(self.path.as_deref()?)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    /// Runs `tool` (looked up in the search path) with `args`, captures its output and fails
    /// unless it exits successfully; `shown` is the command line used in messages (with
    /// secrets masked by the caller).
    pub async fn run(
        &self,
        tool: &str,
        args: &[OsString],
        shown: &str,
    ) -> Result<Output, RunError> {
        let spec = Spec::new(tool).lookup(self).args(args).shown(shown);
        run_async(&spec).await?.checked()
    }

    fn path_text(&self) -> String {
        self.path
            .as_deref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// What to feed the program on stdin.
#[derive(Debug, Clone, Default)]
enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// These bytes, then end of input.
    Bytes(Vec<u8>),
    /// The caller's stdin (the terminal).
    Inherit,
}

/// One program to run: what, where, with which input, and how long at most.
#[derive(Debug, Clone)]
pub struct Spec {
    program: OsString,
    args: Vec<OsString>,
    shown: Option<String>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    tools: Option<Tools>,
    stdin: Stdin,
    timeout: Option<Duration>,
    cancel: Option<CancellationToken>,
    output_cap: usize,
}

impl Spec {
    /// Runs `program` directly (no shell); a bare name is found like `execvp` does, in the
    /// child's `PATH`, unless [`Spec::lookup`] names the search path.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            shown: None,
            cwd: None,
            env: Vec::new(),
            tools: None,
            stdin: Stdin::Null,
            timeout: None,
            cancel: None,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    /// Runs `script` with `sh -c`, shown as the script itself.
    pub fn shell(script: &str) -> Self {
        Self::new("sh").arg("-c").arg(script).shown(script)
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The command line used in messages (default: program and arguments, see
    /// [`command_line`]); give it when an argument is a secret.
    pub fn shown(mut self, shown: impl Into<String>) -> Self {
        self.shown = Some(shown.into());
        self
    }

    /// The working directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets one environment variable for the program (the rest is inherited).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Looks the program up in `tools`' search path (and gives the program that `PATH`).
    pub fn lookup(mut self, tools: &Tools) -> Self {
        self.tools = Some(tools.clone());
        self
    }

    /// Feeds `bytes` on stdin, then closes it.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Gives the program the caller's stdin (a terminal it may configure or read from). Such
    /// a run stays in the caller's process group, so it cannot have a timeout.
    pub fn inherit_stdin(mut self) -> Self {
        self.stdin = Stdin::Inherit;
        self
    }

    /// Kills the program (and its process group) when it runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Kills the program (and its process group) when `cancel` fires.
    pub fn cancel(mut self, cancel: &CancellationToken) -> Self {
        self.cancel = Some(cancel.clone());
        self
    }

    /// The most each captured stream may hold before the program is killed.
    pub fn output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes;
        self
    }

    /// The command line for messages.
    pub fn command(&self) -> String {
        self.shown
            .clone()
            .unwrap_or_else(|| command_line(&self.program.to_string_lossy(), &self.args))
    }

    /// Whether the runner may stop this run, so it gets a process group of its own.
    fn stoppable(&self) -> bool {
        !matches!(self.stdin, Stdin::Inherit) && (self.timeout.is_some() || self.cancel.is_some())
    }

    /// Whether the run was asked to stop (its token, or Ctrl-C for runs in their own group).
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
            || INTERRUPT.is_cancelled()
    }

    /// The program to start: looked up in the search path when one is given.
    fn resolve(&self) -> Result<OsString, RunError> {
        let Some(tools) = &self.tools else {
            return Ok(self.program.clone());
        };
        let name = self.program.to_string_lossy();
        tools
            .find(&name)
            .map(PathBuf::into_os_string)
            .ok_or_else(|| RunError::Missing {
                program: name.into_owned(),
                path: tools.path_text(),
            })
    }

    /// The command to spawn (stdout and stderr piped; the process group is the caller's).
    fn command_for(&self, program: &OsStr) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(match self.stdin {
                Stdin::Null => Stdio::null(),
                Stdin::Bytes(_) => Stdio::piped(),
                Stdin::Inherit => Stdio::inherit(),
            });
        if let Some(path) = self.tools.as_ref().and_then(|t| t.path.as_ref()) {
            command.env("PATH", path);
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command
    }

    /// The error for a failed spawn: a missing program is named with the `PATH` searched.
    fn spawn_error(&self, source: std::io::Error) -> RunError {
        let cwd_missing = self.cwd.as_ref().is_some_and(|d| !d.is_dir());
        if source.kind() == std::io::ErrorKind::NotFound && !cwd_missing {
            let path = self
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .or_else(|| self.tools.as_ref().map(Tools::path_text))
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_default();
            return RunError::Missing {
                program: self.program.to_string_lossy().into_owned(),
                path,
            };
        }
        RunError::Spawn {
            command: self.command(),
            source,
        }
    }
}

/// What a program printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line as shown in messages.
    pub command: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// `Ok(self)` when the program exited successfully, else [`RunError::Failed`].
    pub fn checked(self) -> Result<Self, RunError> {
        if self.status.success() {
            return Ok(self);
        }
        Err(RunError::Failed {
            command: self.command,
            status: self.status,
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
        })
    }

    /// Standard output as text (invalid UTF-8 replaced), trimmed.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced), trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

/// Why running an external program failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It is not in `PATH` (or, given as a path, does not exist).
    #[error("{}", missing_message(program))]
    Missing {
        /// The program's name.
        program: String,
        /// The `PATH` that was searched.
        path: String,
    },
    /// It could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line as shown.
        command: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// It exited unsuccessfully (only from [`Output::checked`]).
    #[error("`{command}` failed ({status}){}", output_tail(stderr, stdout))]
    Failed {
        /// The command line as shown.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
        /// What it wrote to stdout.
        stdout: String,
    },
    /// It ran longer than its timeout and was killed with its process group.
    #[error("`{command}` did not finish within {timeout:?} and was stopped")]
    TimedOut {
        /// The command line as shown.
        command: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Its cancellation token fired (or Ctrl-C); it was killed with its process group.
    #[error("`{command}` was interrupted")]
    Interrupted {
        /// The command line as shown.
        command: String,
    },
    /// It wrote more than the output cap and was killed.
    #[error("`{command}` wrote more than {limit} bytes of output and was stopped")]
    OutputTooLarge {
        /// The command line as shown.
        command: String,
        /// The cap, per stream.
        limit: usize,
    },
    /// The stream fed on stdin failed; the program was killed before it saw the end of input.
    #[error("cannot feed the input of `{command}`: {source}")]
    Input {
        /// The command line as shown.
        command: String,
        /// The producer's error.
        source: std::io::Error,
    },
}

fn missing_message(program: &str) -> String {
    if program.contains('/') {
        format!("`{program}` does not exist")
    } else {
        format!("`{program}` is not installed (not found in PATH)")
    }
}

/// The last lines of what a failed program said (stderr, else stdout).
fn output_tail(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(20);
    format!(":\n{}", lines[start..].join("\n"))
}

impl crate::diagnostic::Diagnostic for RunError {
    fn hints(&self) -> Vec<String> {
        match self {
            RunError::Missing { program, path } => vec![format!(
                "install `{program}` or add its directory to PATH (searched: {})",
                if path.is_empty() {
                    "PATH is empty"
                } else {
                    path
                }
            )],
            _ => Vec::new(),
        }
    }
}

/// `tool a b` for messages (arguments with spaces quoted).
pub fn command_line(tool: &str, args: &[impl AsRef<OsStr>]) -> String {
    let mut line = tool.to_owned();
    for arg in args {
        let arg = arg.as_ref().to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            line.push_str(&format!("'{arg}'"));
        } else {
            line.push_str(&arg);
        }
    }
    line
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Kills the process group `pid` leads (a script and everything it started).
///
/// Only for a child spawned with `process_group(0)`: its pid is the group id. Call it before
/// the child is reaped, or while something of the group still holds its pipes open (a group id
/// is not reused while the group has members).
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the caller guarantees the group
        // is the child's own (see above).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
