//! Finding and running the external CLIs some steps need (`helm`, `kind`, `minikube`).
//!
//! [`Tools`] carries the `PATH` to search, so tests (and callers) can point it at stand-in
//! scripts without changing the process environment; children get the same `PATH`. Output is
//! captured, and the command shown in errors is given by the caller so it can hide secrets.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};

/// Where external programs are looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tools {
    path: Option<OsString>,
}

/// Why running an external program failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// It is not in `PATH`.
    #[error("`{tool}` is not installed (not found in PATH)")]
    Missing { tool: String },
    /// It could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("`{command}` failed ({status}){}", output_tail(stderr, stdout))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
        stdout: String,
    },
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

    /// Runs `tool` (looked up in the search path) with `args` and captures its output;
    /// `shown` is the command line used in messages (with secrets masked by the caller).
    pub async fn run(
        &self,
        tool: &str,
        args: &[OsString],
        shown: &str,
    ) -> Result<Output, ToolError> {
        let program = self.find(tool).ok_or_else(|| ToolError::Missing {
            tool: tool.to_owned(),
        })?;
        let mut command = tokio::process::Command::new(&program);
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(path) = &self.path {
            command.env("PATH", path);
        }
        let output = command.output().await.map_err(|source| ToolError::Spawn {
            command: shown.to_owned(),
            source,
        })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(ToolError::Failed {
                command: shown.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            })
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

impl crate::diagnostic::Diagnostic for ToolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_spaces() {
        assert_eq!(
            command_line("helm", &["upgrade", "my release", ""]),
            "helm upgrade 'my release' ''"
        );
    }

    #[test]
    fn find_skips_non_executables_and_empty_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").expect("write");
        let tools = Tools::with_path(format!(":{}", dir.path().display()));
        assert_eq!(tools.find("plain"), None);
        assert_eq!(tools.find("absent"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            assert_eq!(tools.find("plain"), Some(plain));
        }
    }

    #[tokio::test]
    async fn missing_tool_is_named() {
        let tools = Tools::with_path("/nonexistent-dir");
        let error = tools
            .run("helm", &[], "helm version")
            .await
            .expect_err("missing");
        assert_eq!(
            error.to_string(),
            "`helm` is not installed (not found in PATH)"
        );
    }

    #[test]
    fn failure_shows_the_tail_of_stderr() {
        let failed = ToolError::Failed {
            command: "kind load".into(),
            status: std::process::Command::new("false")
                .status()
                .expect("run false"),
            stderr: "line1\nERROR: no nodes\n".into(),
            stdout: String::new(),
        };
        let text = failed.to_string();
        assert!(text.starts_with("`kind load` failed (exit status: 1):\nline1\nERROR: no nodes"));
    }
}
