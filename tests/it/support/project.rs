//! Temporary projects and a fluent runner for the real `devspace` binary.
//!
//! [`TempProject`] owns a temporary directory that tests fill with files (or a copy of a fixture
//! directory) and removes on drop. A fixture copy holds what git sees in the repository (tracked
//! and not-ignored files), never ignored state such as the `.devspace/` a local run of the
//! quick start leaves in `examples/quickstart`: what a test sees does not depend on what a user
//! did in the working tree. [`Devspace`] runs the binary built by Cargo
//! (`CARGO_BIN_EXE_devspace`) with arguments, environment, working directory and stdin, and
//! returns an [`Output`] whose assertion helpers print the whole command, exit status, stdout and
//! stderr when they fail. [`Devspace::spawn`] starts a long-running command (`dev`) that tests can
//! watch for output and interrupt like Ctrl-C.
//!
//! Every run has a generous deadline after which the child is killed and the test fails: a hung
//! binary must not hang CI. This is a safety net, not a timing assertion.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one run of the binary may take before it is killed and the test fails.
pub const DEFAULT_RUN_DEADLINE: Duration = Duration::from_secs(600);

/// Path of a file or directory inside this repository (e.g. `examples/quickstart`).
pub fn repo_path(rel: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Copies the directory tree `src` into `dst` (created if missing) as it is, ignored state
/// included (a project moved with its cache); fixtures from the repository go through
/// [`copy_fixture`] instead.
pub fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    copy_filtered(src, dst, &|_| true)
}

/// Copies the fixture directory `src` (inside this repository) into `dst`: the files git
/// tracks or would track (`git ls-files --cached --others --exclude-standard`), so ignored
/// state (`.devspace/`, `target/`, ...) stays behind. Outside a git work tree (a source archive)
/// it copies everything except directories named `.devspace` or `target`. Files keep their
/// permission bits and symlinks stay symlinks.
pub fn copy_fixture(src: &Path, dst: &Path) -> std::io::Result<()> {
    let Some(files) = git_visible_files(src) else {
        return copy_filtered(src, dst, &|name| name != ".devspace" && name != "target");
    };
    std::fs::create_dir_all(dst)?;
    for rel in files {
        let from = src.join(&rel);
        // A tracked file deleted in the working tree is listed but absent.
        let Ok(meta) = std::fs::symlink_metadata(&from) else {
            continue;
        };
        let to = dst.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// The paths below `dir` (relative to it) that git tracks or does not ignore; `None` when `git`
/// cannot tell (not installed, not a work tree).
fn git_visible_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    use std::os::unix::ffi::OsStrExt as _;
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
        .collect();
    // `--cached` and `--others` can both list a path (e.g. during a merge).
    files.sort();
    files.dedup();
    Some(files)
}

/// Copies the directory tree `src` into `dst` (created if missing): files with their
/// permissions, symlinks as symlinks, empty directories included, skipping every entry whose
/// name `keep` rejects.
fn copy_filtered(src: &Path, dst: &Path, keep: &dyn Fn(&OsStr) -> bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if !keep(&entry.file_name()) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ty.is_dir() {
            copy_filtered(&from, &to, keep)?;
        } else {
            // std::fs::copy keeps the permission bits (executable scripts stay executable).
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// A project in a temporary directory, removed when dropped.
pub struct TempProject {
    dir: tempfile::TempDir,
}

impl Default for TempProject {
    fn default() -> Self {
        Self::new()
    }
}

impl TempProject {
    /// An empty project directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("devspace-test-")
            .tempdir()
            .expect("create temporary project directory");
        Self { dir }
    }

    /// A project holding a copy of `fixture` (absolute, or relative to the repository root):
    /// what git sees, see [`copy_fixture`].
    pub fn from_fixture(fixture: impl AsRef<Path>) -> Self {
        let src = repo_path(fixture);
        let project = Self::new();
        copy_fixture(&src, project.path())
            .unwrap_or_else(|e| panic!("copy fixture {} into a project: {e}", src.display()));
        project
    }

    /// The project's root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` inside the project.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path().join(rel)
    }

    /// Writes `contents` to `rel`, creating parent directories.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    /// Writes `contents` to `rel` and sets its Unix permission bits (e.g. `0o755`).
    pub fn write_mode(
        &self,
        rel: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
        mode: u32,
    ) -> &Self {
        use std::os::unix::fs::PermissionsExt as _;
        let rel = rel.as_ref();
        self.write(rel, contents);
        let path = self.join(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        self
    }

    /// Creates an (empty) directory `rel` with its parents.
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> &Self {
        let path = self.join(rel);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        self
    }

    /// Creates a symlink at `rel` pointing to `target` (taken verbatim, may be relative).
    pub fn symlink(&self, rel: impl AsRef<Path>, target: impl AsRef<Path>) -> &Self {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::os::unix::fs::symlink(target.as_ref(), &path)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
        self
    }

    /// Copies a fixture directory (absolute, or relative to the repository root) to `rel` in
    /// the project (what git sees, see [`copy_fixture`]).
    pub fn copy_in(&self, src: impl AsRef<Path>, rel: impl AsRef<Path>) -> &Self {
        let src = repo_path(src);
        let dst = self.join(rel);
        copy_fixture(&src, &dst)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        self
    }

    /// Removes the file, symlink or directory tree at `rel`.
    pub fn remove(&self, rel: impl AsRef<Path>) -> &Self {
        let path = self.join(rel);
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        let result = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        self
    }

    /// Contents of `rel` as UTF-8 text.
    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Whether `rel` exists (a dangling symlink counts).
    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        std::fs::symlink_metadata(self.join(rel)).is_ok()
    }

    /// A runner for the binary with the project as working directory.
    pub fn devspace(&self) -> Devspace {
        Devspace::new().current_dir(self.path())
    }
}

/// A fluent builder for one run of the real `devspace` binary.
///
/// By default the child gets `NO_COLOR=1`, no `DEVSPACE_*` variables from the test's own
/// environment (`DEVSPACE_FLAGS` would change what runs), and an empty stdin.
#[derive(Debug, Clone)]
pub struct Devspace {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    stdin: Vec<u8>,
    deadline: Duration,
}

impl Default for Devspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Devspace {
    /// A run of `devspace` with no arguments yet.
    pub fn new() -> Self {
        Self {
            program: PathBuf::from(env!("CARGO_BIN_EXE_devspace")),
            args: Vec::new(),
            // Hermetic: no colour, and nothing from the environment the tests run in that
            // changes behaviour (`.ci/run` sets `CI=true`, which activates DevSpace 6 profiles
            // with `activation: env: CI`; a developer may have turned the registry cache off).
            env: vec![
                ("NO_COLOR".into(), Some("1".into())),
                ("CI".into(), None),
                ("DEVSPACE_NO_REGISTRY_CACHE".into(), None),
            ],
            cwd: None,
            stdin: Vec::new(),
            deadline: DEFAULT_RUN_DEADLINE,
        }
    }

    /// Runs another program instead of `devspace` (to test this runner, or to drive a
    /// helper tool with the same assertions).
    pub fn program(mut self, program: impl AsRef<Path>) -> Self {
        self.program = program.as_ref().to_owned();
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Points the binary at this kubeconfig (e.g. `FakeKube::kubeconfig()`), never the
    /// user's.
    pub fn kubeconfig(self, path: impl AsRef<Path>) -> Self {
        self.env("KUBECONFIG", path.as_ref())
    }

    /// Runs with `dir` as `HOME`, and `DOCKER_CONFIG` / `KUBECONFIG` unset so that the
    /// defaults (`~/.docker/config.json`, `~/.kube/config`) resolve inside it: the test's own
    /// credentials and clusters stay out of reach.
    pub fn home(self, dir: impl AsRef<Path>) -> Self {
        self.env("HOME", dir.as_ref())
            .env_remove("DOCKER_CONFIG")
            .env_remove("KUBECONFIG")
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Feeds `input` to the child's stdin (then closes it).
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Self {
        self.stdin = input.as_ref().to_vec();
        self
    }

    /// Kills the child and fails the test if it runs longer than `deadline`.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The command line as a user would type it (for failure messages).
    pub fn command_line(&self) -> String {
        let mut line = self
            .program
            .file_name()
            .map_or_else(|| "devspace".into(), |n| n.to_string_lossy().into_owned());
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                let _ = write!(line, " '{}'", arg.replace('\'', r"'\''"));
            } else {
                let _ = write!(line, " {arg}");
            }
        }
        if let Some(cwd) = &self.cwd {
            let _ = write!(line, "  (in {})", cwd.display());
        }
        line
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DEVSPACE_") {
                cmd.env_remove(&key);
            }
        }
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        default_interrupt_signals(&mut cmd);
        cmd
    }

    /// Starts the child and returns a handle to watch and stop it.
    pub fn spawn(self) -> Running {
        let mut child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.command_line()));
        let stdin = child.stdin.take().expect("piped stdin");
        let input = self.stdin.clone();
        // A separate thread: a child that does not read stdin must not block us.
        let stdin_thread = std::thread::spawn(move || {
            let mut stdin = stdin;
            let _ = stdin.write_all(&input);
        });
        let captured = Arc::new(Captured::default());
        let readers = vec![
            spawn_reader(
                child.stdout.take().expect("piped stdout"),
                captured.clone(),
                Stream::Stdout,
            ),
            spawn_reader(
                child.stderr.take().expect("piped stderr"),
                captured.clone(),
                Stream::Stderr,
            ),
        ];
        Running {
            started: Instant::now(),
            spec: self,
            child,
            captured,
            threads: readers.into_iter().chain([stdin_thread]).collect(),
        }
    }

    /// Runs the child to completion and returns what it did.
    pub fn run(self) -> Output {
        let deadline = self.deadline;
        self.spawn().wait_deadline(deadline)
    }

    /// [`Devspace::run`] on a blocking thread, for tests inside a tokio runtime (e.g. next to
    /// the fake Kubernetes API server, which must keep serving while the binary runs).
    pub async fn run_async(self) -> Output {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("devspace runner thread panicked")
    }
}

/// Starts the child with the default SIGINT and SIGQUIT dispositions. A test run started in the
/// background by a non-interactive shell (`cmd &`, as some CI runners and `nohup` wrappers do)
/// inherits both as ignored, and an ignored SIGINT cannot even be trapped by a shell script:
/// [`Running::interrupt`] would then go unnoticed and the run hang until its deadline.
fn default_interrupt_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec and only calls `signal(2)`,
    // which is async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Output collected so far, shared with the reader threads.
#[derive(Default)]
struct Captured {
    data: Mutex<(Vec<u8>, Vec<u8>)>,
    changed: Condvar,
}

fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    captured: Arc<Captured>,
    stream: Stream,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut data = captured.data.lock().expect("capture lock");
                    match stream {
                        Stream::Stdout => data.0.extend_from_slice(&buf[..n]),
                        Stream::Stderr => data.1.extend_from_slice(&buf[..n]),
                    }
                    captured.changed.notify_all();
                }
            }
        }
    })
}

/// A running `devspace` child (from [`Devspace::spawn`]). Killed if dropped while running.
pub struct Running {
    spec: Devspace,
    started: Instant,
    child: Child,
    captured: Arc<Captured>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stdout so far (lossy UTF-8).
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.captured.data.lock().expect("capture lock").0).into_owned()
    }

    /// Stderr so far (lossy UTF-8).
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.captured.data.lock().expect("capture lock").1).into_owned()
    }

    /// Blocks until stdout or stderr contains `needle`; fails the test (killing the child) if
    /// that does not happen within `within` or the child exits first.
    pub fn wait_for_output(&mut self, needle: &str, within: Duration) {
        let until = Instant::now() + within;
        let mut data = self.captured.data.lock().expect("capture lock");
        loop {
            let seen = String::from_utf8_lossy(&data.0).contains(needle)
                || String::from_utf8_lossy(&data.1).contains(needle);
            if seen {
                return;
            }
            let now = Instant::now();
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if now >= until || exited {
                drop(data);
                let _ = self.child.kill();
                // The readers may still hold the last bytes of an exited child: collect first.
                let out = self.collect();
                if exited && out.combined().contains(needle) {
                    return;
                }
                panic!(
                    "waited for {needle:?} in the output of `{}`, {}\n{}",
                    self.spec.command_line(),
                    if exited { "but it exited" } else { "in vain" },
                    out.describe()
                );
            }
            // Short waits: a child exit does not signal the condvar.
            let step = (until - now).min(Duration::from_millis(100));
            data = self
                .captured
                .changed
                .wait_timeout(data, step)
                .expect("capture lock")
                .0;
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal would.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends a signal by name (`INT`, `TERM`, ...) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// Waits for the child to exit (at most `deadline` since it started) and returns its output.
    pub fn wait_deadline(mut self, deadline: Duration) -> Output {
        let until = self.started + deadline;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.collect(),
                Ok(None) if Instant::now() >= until => {
                    let _ = self.child.kill();
                    let out = self.collect();
                    panic!(
                        "`{}` still running after {deadline:?}, killed\n{}",
                        self.spec.command_line(),
                        out.describe()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("wait for `{}`: {e}", self.spec.command_line()),
            }
        }
    }

    /// Waits for the child to exit (within the run's deadline) and returns its output.
    pub fn wait(self) -> Output {
        let deadline = self.spec.deadline;
        self.wait_deadline(deadline)
    }

    /// Reaps the child, joins the reader threads and packs everything into an [`Output`].
    fn collect(&mut self) -> Output {
        let status = self.child.wait().expect("wait for child");
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let data = self.captured.data.lock().expect("capture lock");
        Output {
            command: self.spec.command_line(),
            status,
            stdout: String::from_utf8_lossy(&data.0).into_owned(),
            stderr: String::from_utf8_lossy(&data.1).into_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one run of the binary did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Command, status and both streams, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// Fails unless the exit code is 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success\n{}",
            self.describe()
        );
        self
    }

    /// Fails unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self
    }

    /// Fails unless the run failed (non-zero exit or killed by a signal).
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success(),
            "expected failure\n{}",
            self.describe()
        );
        self
    }

    /// Fails unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Fails unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Fails if stdout or stderr contains `needle` (e.g. a password).
    #[track_caller]
    pub fn assert_output_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "output contains {needle:?}\n{}",
            self.describe()
        );
        self
    }
}
