//! Stand-in programs for external CLIs (`helm`, `kind`, `minikube`): small shell scripts in a
//! temporary directory that record every call's argv and then run a test-given body. Point
//! `devspace::process::Tools::with_path` (or `PATH`) at [`StandIns::dir`].

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// A directory of stand-in programs.
pub struct StandIns {
    dir: tempfile::TempDir,
}

impl Default for StandIns {
    fn default() -> Self {
        Self::new()
    }
}

impl StandIns {
    /// An empty directory (a `PATH` where nothing is installed).
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("stand-ins-")
                .tempdir()
                .expect("stand-in directory"),
        }
    }

    /// The directory to use as `PATH`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Installs `name`: it records its argv (one argument per line) in `<dir>/<name>.call.<n>`
    /// (`n` claimed with an atomic `mkdir`, so parallel calls never share a number),
    /// then runs `body` (POSIX sh; `$STAND_INS` is the directory, `"$@"` the arguments). The
    /// system directories are appended to `PATH`, which may hold only the stand-ins.
    pub fn install(&self, name: &str, body: &str) -> PathBuf {
        let dir = self.dir.path().display();
        let script = format!(
            "#!/bin/sh\nPATH=\"$PATH:/usr/local/bin:/usr/bin:/bin\"\nSTAND_INS='{dir}'\nn=0\nwhile ! mkdir \"$STAND_INS/.{name}.claim.$n\" 2>/dev/null; do n=$((n+1)); done\nprintf '%s\\n' \"$@\" > \"$STAND_INS/{name}.call.$n\"\n{body}\n"
        );
        let path = self.dir.path().join(name);
        std::fs::write(&path, script).expect("write stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// The argv of every call of `name`, oldest first.
    pub fn calls(&self, name: &str) -> Vec<Vec<String>> {
        (0..)
            .map(|n| self.dir.path().join(format!("{name}.call.{n}")))
            .take_while(|p| p.exists())
            .map(|p| {
                std::fs::read_to_string(&p)
                    .expect("read call record")
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }
}

/// A body for a stand-in `helm` that copies the `--values` file to `<dir>/values.yaml`.
pub const HELM_COPYING_VALUES: &str = r#"prev=""
for a in "$@"; do
  if [ "$prev" = "--values" ]; then cp "$a" "$STAND_INS/values.yaml"; fi
  prev="$a"
done
echo 'Release has been upgraded. Happy Helming!'"#;
