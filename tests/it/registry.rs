//! Registry integration tests against a real `docker-registry` (htpasswd or plain), the real
//! Docker CLI as an oracle, and Debian's `docker-credential-pass` as a real credential helper:
//! `devspace login` (storage, permissions, exit codes, no secret in output), credential
//! resolution through `config.json` and helpers, and the v2 client (manifest HEAD, tag list).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use crate::support::credhelper::PassStore;
use crate::support::registry::{TestRegistry, free_port, require_tool, run};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use devspace::exit::ExitCode;
use devspace::registry::{
    ClientOptions, Credential, DockerConfig, Reference, Registry, RegistryClient, RegistryError,
    client::Ping,
};
use serde_json::{Value, json};

const USER: &str = "devspace";
const PASSWORD: &str = "devspace-test-pw-7Qx";
const WRONG_PASSWORD: &str = "wrong-pw-Zk93-not-it";

/// Runs the real binary with `DOCKER_CONFIG` set, extra env and optional stdin.
fn devspace(
    args: &[&str],
    docker_config: &Path,
    env: &[(String, PathBuf)],
    stdin: Option<&str>,
) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_devspace"))
            .args(args)
            .env("DOCKER_CONFIG", docker_config)
            .envs(env.iter().map(|(k, v)| (k, v))),
        stdin.map(str::as_bytes),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_secret(out: &Output, secret: &str) {
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !text(stream).contains(secret),
            "the password appears on {name}: {}",
            text(stream)
        );
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read json")).expect("valid json")
}

fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions::default()).expect("registry client")
}

fn host_registry(registry: &TestRegistry) -> Registry {
    Registry::Host(registry.host())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn login_stores_credentials_like_docker_login() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let home = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: login creates it.
    let config_dir = home.path().join("docker-config");
    let out = devspace(
        &["login", &registry.host(), "-u", USER, "--password-stdin"],
        &config_dir,
        &[],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Login Succeeded"));
    assert_no_secret(&out, PASSWORD);

    let config_file = config_dir.join("config.json");
    #[cfg(unix)]
    assert_eq!(mode(&config_file), 0o600);
    let config = read_json(&config_file);
    assert_eq!(
        config["auths"][registry.host()]["auth"],
        json!(STANDARD.encode(format!("{USER}:{PASSWORD}")))
    );

    // Docker itself reads what we stored: it can push with it.
    if let Err(e) = registry.push_busybox_with("login-check:v1", &config_dir, &[]) {
        panic!("docker cannot push with the credentials we stored: {e}");
    }

    // Without flags, the stored credentials are verified and used (no prompt needed).
    let again = devspace(&["login", &registry.host()], &config_dir, &[], None);
    assert!(again.status.success(), "stderr: {}", text(&again.stderr));
    assert!(text(&again.stderr).contains("existing credentials"));
    assert!(text(&again.stdout).contains("Login Succeeded"));
    assert_no_secret(&again, PASSWORD);
}

#[test]
fn login_keeps_every_other_key_of_config_json() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let config_dir = tempfile::tempdir().unwrap();
    let original = json!({
        "auths": {"other.example:5000": {"auth": STANDARD.encode("x:y")}},
        "psFormat": "table {{.ID}}",
        "proxies": {"default": {"noProxy": "localhost"}}
    });
    std::fs::write(config_dir.path().join("config.json"), original.to_string()).unwrap();
    let out = devspace(
        &["login", &registry.host(), "-u", USER, "--password-stdin"],
        config_dir.path(),
        &[],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let config = read_json(&config_dir.path().join("config.json"));
    assert_eq!(config["psFormat"], original["psFormat"]);
    assert_eq!(config["proxies"], original["proxies"]);
    assert_eq!(
        config["auths"]["other.example:5000"],
        original["auths"]["other.example:5000"]
    );
    assert!(config["auths"][registry.host()]["auth"].is_string());
}

#[test]
fn login_with_wrong_password_fails_with_exit_5_and_no_secret() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let config_dir = tempfile::tempdir().unwrap();
    let out = devspace(
        &["login", &registry.host(), "-u", USER, "--password-stdin"],
        config_dir.path(),
        &[],
        Some(&format!("{WRONG_PASSWORD}\n")),
    );
    assert_eq!(out.status.code(), Some(ExitCode::Auth as i32));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "registry {} refused the credentials of user `{USER}`",
            registry.host()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "hint: check the user name and password for {}",
            registry.host()
        )),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains("Login Succeeded"));
    assert_no_secret(&out, WRONG_PASSWORD);
    assert!(
        !config_dir.path().join("config.json").exists(),
        "a failed login must not store anything"
    );
}

#[test]
fn login_to_an_unreachable_registry_fails_with_exit_4() {
    let config_dir = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", free_port());
    let out = devspace(
        &["login", &host, "-u", USER, "--password-stdin"],
        config_dir.path(),
        &[],
        Some(PASSWORD),
    );
    assert_eq!(out.status.code(), Some(ExitCode::Unreachable as i32));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach registry {host}")),
        "{stderr}"
    );
    assert_no_secret(&out, PASSWORD);
}

#[test]
fn login_without_terminal_or_flags_is_a_usage_error() {
    let config_dir = tempfile::tempdir().unwrap();
    let out = devspace(&["login", "127.0.0.1:1"], config_dir.path(), &[], None);
    assert_eq!(out.status.code(), Some(ExitCode::Usage as i32));
    assert!(text(&out.stderr).contains("without a terminal"));

    let out = devspace(
        &["login", "127.0.0.1:1", "--password-stdin"],
        config_dir.path(),
        &[],
        Some("x"),
    );
    assert_eq!(out.status.code(), Some(ExitCode::Usage as i32));
    assert!(text(&out.stderr).contains("--username"));
}

#[test]
fn login_stores_in_the_configured_credential_helper() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let pass = PassStore::new();
    let config_dir = tempfile::tempdir().unwrap();
    let config_file = config_dir.path().join("config.json");
    std::fs::write(&config_file, r#"{"credsStore": "pass"}"#).unwrap();

    let out = devspace(
        &["login", &registry.host(), "-u", USER, "--password-stdin"],
        config_dir.path(),
        &pass.env(),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Login Succeeded"));
    assert!(!text(&out.stderr).contains("unencrypted"));
    assert_no_secret(&out, PASSWORD);

    // The secret went to the helper; the file keeps only an empty entry, like Docker.
    let config = read_json(&config_file);
    assert_eq!(config["credsStore"], json!("pass"));
    assert_eq!(config["auths"][registry.host()], json!({}));
    assert!(
        !std::fs::read_to_string(&config_file)
            .unwrap()
            .contains(PASSWORD)
    );
    assert_eq!(pass.list()[&registry.host()], json!(USER));
    assert_eq!(pass.get_secret(&registry.host()), PASSWORD);

    // And Docker finds it there too.
    if let Err(e) = registry.push_busybox_with("helper-check:v1", config_dir.path(), &pass.env()) {
        panic!("docker cannot push with the credentials our login put in the helper: {e}");
    }
}

#[tokio::test]
async fn credentials_resolve_through_a_real_helper() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let (image, digest) = registry.push_busybox("through-helper:v1");
    let pass = PassStore::new();
    let config_dir = tempfile::tempdir().unwrap();
    let target = host_registry(&registry);

    // credsStore: the helper answers for the host.
    pass.store(&registry.host(), USER, PASSWORD);
    std::fs::write(
        config_dir.path().join("config.json"),
        r#"{"credsStore": "pass"}"#,
    )
    .unwrap();
    let config = DockerConfig::load_from_dir(config_dir.path())
        .unwrap()
        .with_helper_env(pass.env());
    let credential = config
        .resolve_async(&target)
        .await
        .unwrap()
        .expect("helper has credentials");
    assert_eq!(credential, Credential::new(USER, PASSWORD));
    let reference = Reference::parse(&image).unwrap();
    let found = client()
        .manifest_exists(&reference, Some(&credential))
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(digest.as_str()));

    // Other hosts: the helper has nothing, so there is no credential.
    assert_eq!(
        config
            .resolve(&Registry::Host("127.0.0.1:1".into()))
            .unwrap(),
        None
    );

    // credHelpers for one registry, keyed with a scheme, stored under https://HOST.
    let other = PassStore::new();
    other.store(&format!("https://{}", registry.host()), "helper-user", "s3");
    std::fs::write(
        config_dir.path().join("config.json"),
        json!({"credHelpers": {format!("https://{}", registry.host()): "pass"}}).to_string(),
    )
    .unwrap();
    let config = DockerConfig::load_from_dir(config_dir.path())
        .unwrap()
        .with_helper_env(other.env());
    assert_eq!(
        config.resolve(&target).unwrap(),
        Some(Credential::new("helper-user", "s3"))
    );
}

#[test]
fn helper_without_the_entry_falls_back_to_auths() {
    require_services!();
    let pass = PassStore::new();
    let config_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        config_dir.path().join("config.json"),
        json!({
            "credsStore": "pass",
            "auths": {"https://old.example:5000/v2/": {"auth": STANDARD.encode("old:pw")}}
        })
        .to_string(),
    )
    .unwrap();
    let config = DockerConfig::load_from_dir(config_dir.path())
        .unwrap()
        .with_helper_env(pass.env());
    assert_eq!(
        config
            .resolve(&Registry::Host("old.example:5000".into()))
            .unwrap(),
        Some(Credential::new("old", "pw"))
    );
}

#[tokio::test]
async fn manifest_exists_and_tags_on_an_htpasswd_registry() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let (image, digest) = registry.push_busybox("app:one");
    let (_, digest_two) = registry.push_busybox("app:two");
    assert_eq!(digest, digest_two, "same image, same digest");
    let account = registry.account();
    let credential = Credential::new(&account.user, &account.password);
    let client = client();
    let reference = Reference::parse(&image).unwrap();

    let found = client
        .manifest_exists(&reference, Some(&credential))
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(digest.as_str()));
    // By digest too.
    let by_digest = Reference::parse(&format!("{}/app@{digest}", registry.host())).unwrap();
    assert_eq!(
        client
            .manifest_exists(&by_digest, Some(&credential))
            .await
            .unwrap()
            .as_deref(),
        Some(digest.as_str())
    );

    for missing in ["app:nope", "never-pushed:one"] {
        let r = Reference::parse(&format!("{}/{missing}", registry.host())).unwrap();
        assert_eq!(
            client.manifest_exists(&r, Some(&credential)).await.unwrap(),
            None,
            "{missing}"
        );
    }

    let mut tags = client
        .list_tags(&reference, Some(&credential))
        .await
        .unwrap();
    tags.sort();
    assert_eq!(tags, ["one", "two"]);

    // Without or with wrong credentials: an auth error naming the registry, exit code 5.
    let wrong = Credential::new(USER, WRONG_PASSWORD);
    for credential in [None, Some(&wrong)] {
        let err = client
            .manifest_exists(&reference, credential)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::Auth);
        let message = format!("{err} {}", err.hint().unwrap_or_default());
        assert!(message.contains(&registry.host()), "{message}");
        assert!(!message.contains(WRONG_PASSWORD), "{message}");
    }

    assert_eq!(
        client.ping(&host_registry(&registry)).await.unwrap(),
        Ping::AuthRequired
    );
    client
        .verify_login(&host_registry(&registry), &credential)
        .await
        .unwrap();
    let err = client
        .verify_login(&host_registry(&registry), &wrong)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
}

#[tokio::test]
async fn plain_registry_needs_no_credentials() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let (image, digest) = registry.push_busybox("team/plain:v1");
    let client = client();
    assert_eq!(
        client.ping(&host_registry(&registry)).await.unwrap(),
        Ping::Open
    );
    let reference = Reference::parse(&image).unwrap();
    assert_eq!(
        client.manifest_exists(&reference, None).await.unwrap(),
        Some(digest)
    );
    assert_eq!(
        client
            .manifest_exists(&reference.with_tag("v2"), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(client.list_tags(&reference, None).await.unwrap(), ["v1"]);
}

#[tokio::test]
async fn unreachable_registry_names_the_host() {
    let host = format!("127.0.0.1:{}", free_port());
    let reference = Reference::parse(&format!("{host}/x:t")).unwrap();
    let err = client()
        .manifest_exists(&reference, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Unreachable);
    assert!(err.to_string().contains(&host), "{err}");
}

#[tokio::test]
async fn bearer_token_registry_with_password_and_identity_token() {
    require_services!();
    let registry = TestRegistry::start_token(USER, PASSWORD);
    let (image, digest) = registry.push_busybox("bearer/app:v1");
    let tokens = registry.token_server();
    let grants = tokens.grants();
    let reference = Reference::parse(&image).unwrap();
    let target = host_registry(&registry);
    let client = client();

    // Basic credentials are exchanged for a token (GET realm with basic auth).
    let before = grants.basic.load(Ordering::SeqCst);
    let password = Credential::new(USER, PASSWORD);
    assert_eq!(
        client
            .manifest_exists(&reference, Some(&password))
            .await
            .unwrap()
            .as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        client.list_tags(&reference, Some(&password)).await.unwrap(),
        ["v1"]
    );
    client.verify_login(&target, &password).await.unwrap();
    assert!(grants.basic.load(Ordering::SeqCst) > before);

    // An identity token is refreshed through the OAuth POST.
    let before = grants.refresh.load(Ordering::SeqCst);
    let identity = Credential::identity_token(tokens.refresh_token());
    assert_eq!(
        client
            .manifest_exists(&reference, Some(&identity))
            .await
            .unwrap()
            .as_deref(),
        Some(digest.as_str())
    );
    assert!(grants.refresh.load(Ordering::SeqCst) > before);

    // Wrong password, wrong token, nothing: refused, naming the registry.
    let wrong_token = Credential::identity_token("not-the-token-Q1");
    let wrong_password = Credential::new(USER, WRONG_PASSWORD);
    for credential in [Some(&wrong_password), Some(&wrong_token), None] {
        let err = client
            .manifest_exists(&reference, credential)
            .await
            .unwrap_err();
        assert!(err.is_unauthorized(), "{err}");
        let message = err.to_string();
        assert!(message.contains(&registry.host()), "{message}");
        assert!(
            !message.contains(WRONG_PASSWORD) && !message.contains("not-the-token"),
            "{message}"
        );
    }
    assert_eq!(client.ping(&target).await.unwrap(), Ping::AuthRequired);
}

#[test]
fn login_against_a_bearer_token_registry() {
    require_services!();
    let registry = TestRegistry::start_token(USER, PASSWORD);
    let config_dir = tempfile::tempdir().unwrap();
    let login = |password: &str| {
        devspace(
            &["login", &registry.host(), "-u", USER, "--password-stdin"],
            config_dir.path(),
            &[],
            Some(password),
        )
    };
    let out = login(WRONG_PASSWORD);
    assert_eq!(
        out.status.code(),
        Some(ExitCode::Auth as i32),
        "{}",
        text(&out.stderr)
    );
    assert_no_secret(&out, WRONG_PASSWORD);

    let out = login(PASSWORD);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_no_secret(&out, PASSWORD);
    let stored = DockerConfig::load_from_dir(config_dir.path())
        .unwrap()
        .resolve(&host_registry(&registry))
        .unwrap();
    assert_eq!(stored, Some(Credential::new(USER, PASSWORD)));
}

/// Runs `devspace ARGS` on a pseudo-terminal (util-linux `script`), answering each prompt
/// once it appears; stdin stays open until the process ends, as on a real terminal.
/// Returns the exit status and everything the terminal showed.
fn devspace_on_terminal(
    args: &[&str],
    docker_config: &Path,
    answers: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    require_tool("script");
    let command = std::iter::once(env!("CARGO_BIN_EXE_devspace"))
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("DOCKER_CONFIG", docker_config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script");
    let screen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let screen = screen.clone();
        let mut stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().expect("stdin");
    // Bounds only, so a broken prompt fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    for (prompt, answer) in answers {
        loop {
            let text = screen.lock().unwrap().clone();
            if let Some(at) = text[seen..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            assert!(
                Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                "no prompt {prompt:?}; terminal showed: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("type answer");
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "devspace did not finish; terminal showed: {}",
                screen.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    reader.join().expect("reader");
    let text = screen.lock().unwrap().clone();
    (status, text)
}

#[test]
fn login_prompts_on_a_terminal_without_echo() {
    require_services!();
    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let config_dir = tempfile::tempdir().unwrap();

    let (status, screen) = devspace_on_terminal(
        &["login", &registry.host()],
        config_dir.path(),
        &[("Username: ", USER), ("Password: ", WRONG_PASSWORD)],
    );
    assert_eq!(status.code(), Some(ExitCode::Auth as i32), "{screen}");
    assert!(
        !screen.contains(WRONG_PASSWORD),
        "password echoed: {screen}"
    );

    let (status, screen) = devspace_on_terminal(
        &["login", &registry.host()],
        config_dir.path(),
        &[("Username: ", USER), ("Password: ", PASSWORD)],
    );
    assert!(status.success(), "{screen}");
    assert!(screen.contains("Login Succeeded"), "{screen}");
    assert!(!screen.contains(PASSWORD), "password echoed: {screen}");
    assert_eq!(
        DockerConfig::load_from_dir(config_dir.path())
            .unwrap()
            .resolve(&host_registry(&registry))
            .unwrap(),
        Some(Credential::new(USER, PASSWORD))
    );
}

#[test]
fn services_are_installed() {
    require_services!();
    for tool in std::iter::once("docker").chain(crate::support::services::TOOLS) {
        require_tool(tool);
    }
}

#[tokio::test]
async fn docker_credentials_push_through_the_engine_api() {
    require_services!();
    use bollard::Docker;
    use bollard::query_parameters::{
        PushImageOptionsBuilder, RemoveImageOptions, TagImageOptionsBuilder,
    };
    use futures_util::StreamExt;

    let registry = TestRegistry::start_htpasswd(USER, PASSWORD);
    let docker = Docker::connect_with_defaults()
        .expect("docker client")
        .negotiate_version()
        .await
        .expect("the Docker daemon answers (run scripts/services.sh)");
    let repo = format!("{}/engine/app", registry.host());
    docker
        .tag_image(
            "busybox:latest",
            Some(TagImageOptionsBuilder::new().repo(&repo).tag("v1").build()),
        )
        .await
        .expect("tag busybox");
    let credential = Credential::new(USER, PASSWORD);
    assert!(credential.survives_bollard_encoding(&host_registry(&registry)));
    let mut push = docker.push_image(
        &repo,
        Some(PushImageOptionsBuilder::new().tag("v1").build()),
        Some(credential.to_docker_credentials(&host_registry(&registry))),
    );
    let mut error = None;
    while let Some(item) = push.next().await {
        if let Err(e) = item {
            error = Some(e.to_string());
        }
    }
    let _ = docker
        .remove_image(&format!("{repo}:v1"), None::<RemoveImageOptions>, None)
        .await;
    assert_eq!(error, None, "push through the Engine API failed");
    let reference = Reference::parse(&format!("{repo}:v1")).unwrap();
    assert!(
        client()
            .manifest_exists(&reference, Some(&credential))
            .await
            .unwrap()
            .is_some()
    );
}

/// A registry that stops answering gives the same documented exit code (4) whether a run
/// verifies a skipped image there or pushes a rebuilt one (as `devspace login` above).
#[test]
fn a_registry_that_went_away_exits_4_when_verifying_and_when_pushing() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let host = registry.host();
    let q = crate::support::harness::Project::quickstart(&host);
    q.build(&[]).assert_success();
    drop(registry);

    // Nothing changed: the skipped tags are verified in the registry, which is gone.
    let verify = q.build(&[]);
    verify
        .assert_code(ExitCode::Unreachable as i32)
        .assert_stderr_contains(&host);

    // One image changed: it is rebuilt, and its push cannot reach the registry.
    q.edit("api/run.sh", "#!/bin/sh", "#!/bin/sh\n# edited");
    let push = q.build(&[]);
    push.assert_code(ExitCode::Unreachable as i32)
        .assert_stderr_contains(&host);
    assert!(
        push.stderr.contains("cannot be reached while pushing")
            || push.stderr.contains("cannot reach registry"),
        "{}",
        push.describe()
    );
}
