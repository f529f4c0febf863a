//! A real `docker-registry` (CNCF distribution) for tests: started on a free 127.0.0.1 port in
//! a temporary directory, plain or with htpasswd (bcrypt) authentication, and killed on drop.
//! Also pushes the local `busybox` image into it with the Docker CLI, as a test oracle.

use std::io::Write;

use base64::Engine;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// What to tell people when a tool the tests need is missing.
pub const SERVICES_HINT: &str = "run `sudo scripts/services.sh` to install and start the test services \
(docker.io docker-registry apache2-utils golang-docker-credential-helpers pass gnupg)";

/// Panics with a hint when `program` is not in PATH; never skips.
pub fn require_tool(program: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(found, "`{program}` is not installed: {SERVICES_HINT}");
}

/// Runs a command to completion with optional stdin and captured output.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {SERVICES_HINT}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that fails early exits without reading its input.
        let _ = pipe.write_all(input);
    }
    child.wait_with_output().expect("wait for command")
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// User name and password of a registry started with htpasswd or token auth.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub password: String,
}

impl Account {
    fn new(user: &str, password: &str) -> Self {
        Account {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }
}

pub mod token;

use token::TokenServer;

/// How a test registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    None,
    Htpasswd,
    Token,
}

/// The tags of a pushed image's repository without the registry content cache's
/// `devspace-cache-*` tag, after checking that there is exactly one (every push records one).
pub fn without_cache_tag(what: &str, tags: Vec<String>) -> Vec<String> {
    let (cache, tags): (Vec<String>, Vec<String>) = tags
        .into_iter()
        .partition(|t| t.starts_with("devspace-cache-"));
    assert_eq!(cache.len(), 1, "{what}: one registry cache tag: {cache:?}");
    tags
}

/// Runs `f` to completion on a fresh single-threaded runtime (for sync tests).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// The tag list of `repo` in the registry at `host` (empty when the repository does not
/// exist), sorted; asked with basic auth when `account` is given.
pub fn registry_tags(host: &str, repo: &str, account: Option<&Account>) -> Vec<String> {
    let url = format!("http://{host}/v2/{repo}/tags/list");
    let body: serde_json::Value = block_on(async {
        let mut request = reqwest::Client::new().get(&url);
        if let Some(a) = account {
            request = request.basic_auth(&a.user, Some(&a.password));
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return serde_json::Value::Null;
        }
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.json().await.expect("tag list is JSON")
    });
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

/// A running `docker-registry`, killed (and its storage deleted) on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    account: Option<Account>,
    token: Option<TokenServer>,
    dir: TempDir,
}

impl TestRegistry {
    /// A registry without authentication.
    pub fn start_plain() -> Self {
        Self::start(AuthKind::None, None)
    }

    /// A registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_htpasswd(user: &str, password: &str) -> Self {
        Self::start(AuthKind::Htpasswd, Some(Account::new(user, password)))
    }

    /// A registry with `token` auth: clients get a `Bearer` challenge and fetch tokens from a
    /// [`TokenServer`] that accepts `user`/`password` or its refresh token.
    pub fn start_token(user: &str, password: &str) -> Self {
        Self::start(AuthKind::Token, Some(Account::new(user, password)))
    }

    fn start(kind: AuthKind, account: Option<Account>) -> Self {
        require_tool("docker-registry");
        let mut dir = tempfile::tempdir().expect("temp dir for the registry");
        let mut token = None;
        let auth = match (&account, kind) {
            (Some(account), AuthKind::Token) => {
                let (server, bundle) = TokenServer::start(dir.path(), account.clone());
                let auth = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    bundle.display()
                );
                token = Some(server);
                auth
            }
            (Some(account), _) => {
                require_tool("htpasswd");
                let out = run_ok(
                    Command::new("htpasswd").args(["-Bbn", &account.user, &account.password]),
                    None,
                );
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: devspace-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            (None, _) => String::new(),
        };
        // The port can be taken between choosing and binding; try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, registry_config(dir.path(), port, &auth))
                .expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}; {SERVICES_HINT}"));
            let mut registry = TestRegistry {
                child,
                port,
                account: account.clone(),
                token: None,
                dir,
            };
            if registry.wait_ready() {
                registry.token = token;
                return registry;
            }
            last_log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                .unwrap_or_default();
            let _ = registry.child.kill();
            let _ = registry.child.wait();
            dir = std::mem::replace(&mut registry.dir, tempfile::tempdir().expect("temp dir"));
        }
        panic!("docker-registry did not start: {last_log}\n{SERVICES_HINT}");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The tags of `repo` in this registry (empty when the repository does not exist), sorted.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        registry_tags(&self.host(), repo, self.account.as_ref())
    }

    /// The account, for a registry started with htpasswd or token auth.
    pub fn account(&self) -> &Account {
        self.account
            .as_ref()
            .expect("this registry was started without authentication")
    }

    /// The token service, for a registry started with token auth.
    pub fn token_server(&self) -> &TokenServer {
        self.token
            .as_ref()
            .expect("this registry was started without token auth")
    }

    /// Tags the local `busybox` image as `HOST/<repo_tag>` and pushes it with the Docker CLI,
    /// using a throw-away Docker config that holds this registry's account.
    /// Returns the pushed reference and the digest the CLI reported.
    pub fn push_busybox(&self, repo_tag: &str) -> (String, String) {
        let config = tempfile::tempdir().expect("docker config dir");
        // Written by hand rather than with `docker login`: with an empty config the CLI
        // picks a default credential store (`pass` when installed) that is not set up here.
        let auths = match &self.account {
            Some(account) => serde_json::json!({
                self.host(): {"auth": base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", account.user, account.password))}
            }),
            None => serde_json::json!({"devspace-test.invalid": {}}),
        };
        std::fs::write(
            config.path().join("config.json"),
            serde_json::json!({ "auths": auths }).to_string(),
        )
        .expect("write docker config");
        self.push_busybox_with(repo_tag, config.path(), &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`TestRegistry::push_busybox`], with the Docker config in `config_dir` and extra
    /// environment (e.g. a credential helper's), so tests can check what Docker makes of
    /// credentials we stored. `Err` carries the CLI's output.
    pub fn push_busybox_with(
        &self,
        repo_tag: &str,
        config_dir: &Path,
        env: &[(String, PathBuf)],
    ) -> Result<(String, String), String> {
        require_tool("docker");
        let image = format!("{}/{repo_tag}", self.host());
        run_ok(
            Command::new("docker").args(["tag", "busybox:latest", &image]),
            None,
        );
        let push = run(
            Command::new("docker")
                .arg("--config")
                .arg(config_dir)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .args(["push", &image]),
            None,
        );
        let _ = Command::new("docker").args(["rmi", &image]).output();
        let stdout = String::from_utf8_lossy(&push.stdout);
        if !push.status.success() {
            return Err(format!(
                "docker push {image} failed: {stdout}{}\n(is `busybox:latest` in the daemon? {SERVICES_HINT})",
                String::from_utf8_lossy(&push.stderr)
            ));
        }
        let digest = stdout
            .split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .ok_or_else(|| format!("no digest in docker push output: {stdout}"))?
            .to_owned();
        Ok((image, digest))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_config(dir: &Path, port: u16, auth: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: devspace-test-only\n\
         {auth}",
        data = dir.join("data").display()
    )
}
