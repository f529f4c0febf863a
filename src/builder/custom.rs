//! The custom builder: runs the user's `build.custom.command` instead of a Docker build.
//!
//! Owns the argv DevSpace builds (`args…`, then per tag `[imageFlag] image:tag`, then
//! `appendArgs…`; 5.x `imageTagOnly`/`skipImageArg` honoured), running it without a shell
//! in the project root with the inherited environment, and turning its output and exit
//! status into events and errors. The command pushes by itself if it wants to; this builder
//! never pushes. The process itself (its own process group, killed as a whole on Ctrl-C,
//! merged output lines) is [`crate::process::stream`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::lines::LogTail;
use super::{
    BuildError, BuildEvent, BuildOutcome, BuildRequest, ContextBody, ERROR_TAIL_LINES, EventSink,
    ImageBuilder,
};
use crate::config::model::CustomConfig;
use crate::process::{self, RunError, Spec, Streamed};

/// Runs `build.custom` for one image.
#[derive(Debug, Clone)]
pub struct CustomBuilder {
    config: CustomConfig,
    project_root: PathBuf,
}

impl CustomBuilder {
    /// A builder for `config`, run with `project_root` (the directory of `devspace.yaml`) as cwd.
    pub fn new(config: CustomConfig, project_root: impl Into<PathBuf>) -> Self {
        Self {
            config,
            project_root: project_root.into(),
        }
    }

    /// The program that will be executed (relative paths with a `/` resolved against the
    /// project root; bare names are looked up on `PATH`).
    pub fn program(&self) -> PathBuf {
        resolve_command(&self.config.command, &self.project_root)
    }

    /// The arguments passed for `repository` and `tags` (see [`custom_argv`]).
    pub fn argv(&self, repository: &str, tags: &[String]) -> Vec<String> {
        custom_argv(&self.config, repository, tags)
    }

    /// Runs the command for `request`; output lines become [`BuildEvent::Log`]s.
    pub async fn run(
        &self,
        request: &BuildRequest,
        events: &EventSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let image = &request.image_key;
        let program = self.program();
        let mut args = self.argv(&request.repository, &request.tags);
        // DevSpace 6 runtime variables name this image's new tag (v2beta1 custom commands).
        let own = |key: &str| {
            (key == request.image_key)
                .then(|| (request.repository.clone(), request.tags.first().cloned()))
        };
        for arg in &mut args {
            if arg.contains("${runtime.") {
                *arg = crate::config::v2::runtime::fill(arg, &own).map_err(|message| {
                    BuildError::CommandFailed {
                        image: image.clone(),
                        command: self.config.command.clone(),
                        status: message,
                        last_lines: Vec::new(),
                    }
                })?;
            }
        }
        let mut tail = LogTail::new(ERROR_TAIL_LINES);
        let mut on_line = |line: String| {
            tail.push(&line);
            events.emit(BuildEvent::Log(line));
        };
        let spec = Spec::new(&program).args(&args).cwd(&self.project_root);
        let outcome = process::stream(&spec, None, &mut on_line, cancel).await;
        let command = self.config.command.clone();
        match outcome {
            Ok(Streamed::Exited { status, .. }) if status.success() => Ok(BuildOutcome {
                image_id: None,
                references: request.references(),
                pushed: false,
                digest: None,
            }),
            Ok(Streamed::Exited { status, .. }) => Err(BuildError::CommandFailed {
                image: image.clone(),
                command,
                status: status.to_string(),
                last_lines: tail.to_vec(),
            }),
            Ok(Streamed::Cancelled) => Err(BuildError::Cancelled {
                image: image.clone(),
            }),
            Err(RunError::Missing { .. }) => Err(BuildError::CommandNotFound {
                image: image.clone(),
                command,
            }),
            Err(RunError::Spawn { source, .. } | RunError::Input { source, .. }) => {
                Err(BuildError::Spawn {
                    image: image.clone(),
                    command,
                    source,
                })
            }
            Err(other) => Err(BuildError::Spawn {
                image: image.clone(),
                command,
                source: std::io::Error::other(other.to_string()),
            }),
        }
    }
}

impl ImageBuilder for CustomBuilder {
    fn needs_context(&self) -> bool {
        false
    }

    fn build<'a>(
        &'a self,
        request: &'a BuildRequest,
        _context: Option<ContextBody>,
        events: &'a EventSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<BuildOutcome, BuildError>> {
        self.run(request, events, cancel).boxed()
    }
}

/// DevSpace's custom-builder argv: `args…`, then for each tag `[imageFlag] repository:tag`
/// (`tag` alone with `imageTagOnly`, nothing with `skipImageArg`), then `appendArgs…`.
pub fn custom_argv(config: &CustomConfig, repository: &str, tags: &[String]) -> Vec<String> {
    let mut argv = config.args.clone();
    if config.skip_image_arg != Some(true) {
        for tag in tags {
            if let Some(flag) = config.image_flag.as_deref().filter(|f| !f.is_empty()) {
                argv.push(flag.to_string());
            }
            argv.push(if config.image_tag_only == Some(true) {
                tag.clone()
            } else {
                format!("{repository}:{tag}")
            });
        }
    }
    argv.extend(config.append_args.iter().cloned());
    argv
}

/// A command containing a `/` is a path: relative ones are taken from the project root (the
/// cwd DevSpace runs them in); a bare name is left for the `PATH` lookup.
pub fn resolve_command(command: &str, project_root: &Path) -> PathBuf {
    let path = Path::new(command);
    if command.contains('/') && path.is_relative() {
        project_root.join(path)
    } else {
        PathBuf::from(OsString::from(command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        args: &[&str],
        flag: Option<&str>,
        append: &[&str],
        tag_only: Option<bool>,
        skip: Option<bool>,
    ) -> CustomConfig {
        CustomConfig {
            command: "build.sh".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            append_args: append.iter().map(|s| s.to_string()).collect(),
            image_flag: flag.map(str::to_string),
            image_tag_only: tag_only,
            skip_image_arg: skip,
            on_change: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn argv_table() {
        let tags = vec!["a".to_string(), "b".to_string()];
        let cases: Vec<(CustomConfig, Vec<&str>)> = vec![
            // The example from DevSpace's own source.
            (
                cfg(&["--x"], Some("-t"), &["--y"], None, None),
                vec!["--x", "-t", "img:a", "-t", "img:b", "--y"],
            ),
            (cfg(&[], None, &[], None, None), vec!["img:a", "img:b"]),
            (cfg(&[], Some(""), &[], None, None), vec!["img:a", "img:b"]),
            (
                cfg(&["build"], Some("--image"), &[], Some(true), None),
                vec!["build", "--image", "a", "--image", "b"],
            ),
            (
                cfg(&["build"], Some("--image"), &["."], None, Some(true)),
                vec!["build", "."],
            ),
            (
                cfg(&["has space", "$HOME"], None, &[], Some(false), Some(false)),
                vec!["has space", "$HOME", "img:a", "img:b"],
            ),
        ];
        for (config, want) in cases {
            assert_eq!(custom_argv(&config, "img", &tags), want, "{config:?}");
        }
    }

    #[test]
    fn command_resolution() {
        let root = Path::new("/proj");
        assert_eq!(
            resolve_command("./build.sh", root),
            Path::new("/proj/./build.sh")
        );
        assert_eq!(
            resolve_command("scripts/b", root),
            Path::new("/proj/scripts/b")
        );
        assert_eq!(
            resolve_command("/usr/bin/make", root),
            Path::new("/usr/bin/make")
        );
        assert_eq!(resolve_command("make", root), Path::new("make"));
    }
}
