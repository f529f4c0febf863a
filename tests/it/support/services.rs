//! Whether the services `scripts/services.sh` sets up are there: the Docker daemon with the
//! local `busybox:latest` image, the registries on 127.0.0.1:5000 and :5001, and the tools
//! the tests run (`docker-registry`, `htpasswd`, `docker-credential-pass`, `pass`, `gpg`,
//! `openssl`). Checked once per test binary, by the first test that needs them
//! ([`require_services!`]).
//!
//! When something is missing:
//! - with `DEVSPACE_TEST_REQUIRE_SERVICES=1` (set by `scripts/test.sh`, hence CI) the binary
//!   stops at once with one line naming what is missing and `run scripts/services.sh`, instead
//!   of every test failing on its own;
//! - otherwise (plain `cargo test` on a machine without Docker) the test returns early and one
//!   `skipped:` line per module goes to the real stderr (not the captured test output, so it
//!   shows even though a skipped test counts as passed); the pure tests still run.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Set to `1` to make missing services an error (see the module doc).
pub const REQUIRE_ENV: &str = "DEVSPACE_TEST_REQUIRE_SERVICES";

/// The registries of `scripts/services.sh`: plain, and htpasswd.
const REGISTRIES: [&str; 2] = ["127.0.0.1:5000", "127.0.0.1:5001"];

/// Programs the tests run besides `docker`.
pub const TOOLS: [&str; 6] = [
    "docker-registry",
    "htpasswd",
    "docker-credential-pass",
    "pass",
    "gpg",
    "openssl",
];

/// Whether the services are up; on `false` the caller skips (see the module doc). `suite`
/// names the caller in the skip line (`module_path!()`).
pub fn available(suite: &str) -> bool {
    let Some(missing) = missing() else {
        return true;
    };
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    let mut stderr = std::io::stderr().lock();
    if required {
        let _ = writeln!(
            stderr,
            "error: the test services are not up ({missing}): run scripts/services.sh"
        );
        let _ = stderr.flush();
        std::process::exit(2);
    }
    static ANNOUNCED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = ANNOUNCED
        .lock()
        .map(|mut seen| seen.insert(suite.to_owned()))
        .unwrap_or(true);
    if first {
        let _ = writeln!(
            stderr,
            "skipped: {suite} tests that need the test services ({missing}): run \
             scripts/services.sh"
        );
    }
    false
}

/// What is missing, joined with `; ` (checked once).
fn missing() -> Option<&'static str> {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            let found = check();
            (!found.is_empty()).then(|| found.join("; "))
        })
        .as_deref()
}

fn check() -> Vec<String> {
    let mut missing = Vec::new();
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !docker(&["version", "--format", "{{.Server.Version}}"]) {
        missing.push("no Docker daemon answers `docker version`".to_owned());
    } else if !docker(&["image", "inspect", "busybox:latest"]) {
        missing.push("the daemon has no busybox:latest image".to_owned());
    }
    for registry in REGISTRIES {
        let addr: SocketAddr = registry.parse().expect("registry address");
        if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
            missing.push(format!("no registry on {registry}"));
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let absent: Vec<&str> = TOOLS
        .into_iter()
        .filter(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .collect();
    if !absent.is_empty() {
        missing.push(format!("not installed: {}", absent.join(", ")));
    }
    missing
}
