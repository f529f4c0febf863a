//! `devspace build` end to end: the real binary against the real Docker daemon and real
//! registries (issue 3 "Done when", issue 4 items 8 and 9).
//!
//! Every test works in its own [`Project`]: a temporary copy of `tests/fixtures/build/three` (or
//! a project it writes), with image names under a unique namespace, images with unique content
//! and its own `DOCKER_CONFIG`, so the tests run in parallel against the same daemon. Images a
//! test leaves in the daemon are removed when its project is dropped. Nothing here asserts durations: a run's deadline only guards against
//! a hung binary (and, for Ctrl-C, against a build that was not aborted).

use crate::support::credhelper::PassStore;
use crate::support::harness::Project;
use crate::support::project::{Output, TempProject, copy_dir};
use crate::support::registry::{Account, TestRegistry, block_on, registry_tags, without_cache_tag};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The plain registry `scripts/services.sh` starts (no auth); tests use unique names in it.
const PLAIN_REGISTRY: &str = "127.0.0.1:5000";
/// Image keys of the fixture, in config order.
const KEYS: [&str; 3] = ["api", "worker", "web"];

/// Runs `docker ARGS` and returns its output (the test's own Docker config).
fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run docker {args:?}: {e}"))
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_in_daemon(reference: &str) -> bool {
    docker(&["image", "inspect", reference]).status.success()
}

/// Containers (running or stopped) carrying `label`.
fn containers_with_label(label: &str) -> usize {
    docker_ok(&["ps", "-a", "-q", "--filter", &format!("label={label}")])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// A request to a registry's v2 API, with basic auth when `account` is given.
fn registry_request(
    method: reqwest::Method,
    url: &str,
    account: Option<&Account>,
) -> reqwest::RequestBuilder {
    let req = reqwest::Client::new().request(method, url).header(
        "Accept",
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    match account {
        Some(a) => req.basic_auth(&a.user, Some(&a.password)),
        None => req,
    }
}

/// Deletes `repo:tag` from the registry (by its manifest digest).
fn registry_delete(host: &str, repo: &str, tag: &str, account: Option<&Account>) {
    block_on(async {
        let url = format!("http://{host}/v2/{repo}/manifests/{tag}");
        let head = registry_request(reqwest::Method::HEAD, &url, account)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HEAD {url}: {e}"));
        assert!(head.status().is_success(), "HEAD {url}: {}", head.status());
        let digest = head
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .expect("Docker-Content-Digest header")
            .to_owned();
        let url = format!("http://{host}/v2/{repo}/manifests/{digest}");
        let del = registry_request(reqwest::Method::DELETE, &url, account)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
        assert!(del.status().is_success(), "DELETE {url}: {}", del.status());
    });
}

/// `build_e2e`'s runs of a [`Project`].
trait BuildRuns {
    /// `devspace build ARGS --output json`: the output and the parsed report.
    fn build_json(&self, args: &[&str]) -> (Output, Value);
    /// The cache entries of the default profile in `.devspace/generated.yaml`, by key.
    fn cached_keys(&self) -> Vec<String>;
}

impl BuildRuns for Project {
    fn build_json(&self, args: &[&str]) -> (Output, Value) {
        let out = self
            .devspace()
            .arg("build")
            .args(args)
            .args(["--output", "json"])
            .run();
        let report = parse_report(&out);
        (out, report)
    }

    fn cached_keys(&self) -> Vec<String> {
        let path = self.path().join(".devspace/generated.yaml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Vec::new();
        };
        let doc: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{text}", path.display()));
        let mut keys: Vec<String> = doc["profiles"][""]["images"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }
}

/// The JSON report on stdout; fails unless stdout is exactly one JSON document.
fn parse_report(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not exactly one JSON document: {e}\n{}",
            out.describe()
        )
    })
}

/// The tags of image `key` in the registry that a run gave it, after checking that the
/// registry content cache recorded the image under exactly one `devspace-cache-*` tag too.
fn pushed_tags(b: &Project, key: &str, account: Option<&Account>) -> Vec<String> {
    without_cache_tag(key, registry_tags(&b.registry, &b.repo(key), account))
}

/// The report's entry for image `key`.
fn image_report<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["images"]
        .as_array()
        .and_then(|imgs| imgs.iter().find(|i| i["key"] == key))
        .unwrap_or_else(|| panic!("no image {key} in the report: {report:#}"))
}

fn status_of<'a>(report: &'a Value, key: &str) -> &'a str {
    image_report(report, key)["status"]
        .as_str()
        .unwrap_or_default()
}

fn first_tag(report: &Value, key: &str) -> String {
    image_report(report, key)["tags"][0]
        .as_str()
        .unwrap_or_else(|| panic!("image {key} has no tag: {report:#}"))
        .to_owned()
}

/// Fails unless stderr has the line `[key] text` (the decision line of a plain-output run).
#[track_caller]
fn assert_line(out: &Output, key: &str, text: &str) {
    let line = format!("[{key}] {text}");
    assert!(
        out.stderr.lines().any(|l| l == line),
        "no line {line:?} on stderr\n{}",
        out.describe()
    );
}

/// Position of the first stderr line starting with `prefix`.
#[track_caller]
fn first_line_at(out: &Output, prefix: &str) -> usize {
    out.stderr
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}\n{}", out.describe()))
}

/// Position of the last stderr line starting with `prefix`.
#[track_caller]
fn last_line_at(out: &Output, prefix: &str) -> usize {
    let lines: Vec<&str> = out.stderr.lines().collect();
    lines
        .iter()
        .rposition(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}\n{}", out.describe()))
}

/// Every file under `dir` (recursively) as text, for "no secret in any file" checks.
fn all_files_text(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(all_files_text(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// Builds the fixture with a fresh project, checks all three images were built and pushed to
/// `registry` (tag list), then a second run skips all three.
fn build_push_and_skip(b: &Project, account: Option<&Account>) {
    let (out, report) = b.build_json(&[]);
    out.assert_success();
    for key in KEYS {
        assert_eq!(status_of(&report, key), "built", "{key}: {report:#}");
        assert_eq!(image_report(&report, key)["pushed"], true, "{key}");
        let tag = first_tag(&report, key);
        assert_eq!(
            pushed_tags(b, key, account),
            vec![tag.clone()],
            "{key}: the registry's tag list"
        );
        let digest = image_report(&report, key)["digest"]
            .as_str()
            .unwrap_or_default();
        assert!(digest.starts_with("sha256:"), "{key}: digest {digest:?}");
    }

    let (again, report2) = b.build_json(&[]);
    again.assert_success();
    for key in KEYS {
        assert_line(&again, key, "skip (no change)");
        assert_eq!(status_of(&report2, key), "skipped", "{key}");
        assert_eq!(first_tag(&report2, key), first_tag(&report, key), "{key}");
    }
    assert!(
        !again.stderr.contains("Step 1/"),
        "a skipped run builds nothing\n{}",
        again.describe()
    );
}

// --- 1, 2: push with credentials, second run skips ---------------------------------------------

#[test]
fn pushes_three_images_with_config_json_auths_then_skips() {
    require_services!();
    let registry = TestRegistry::start_htpasswd("e2e-user", "e2e-Pa55-auths");
    let account = registry.account().clone();
    let b = Project::three(&registry.host()).with_auths(&account.user, &account.password);
    build_push_and_skip(&b, Some(&account));
}

#[test]
fn pushes_three_images_with_credentials_from_the_pass_helper() {
    require_services!();
    let registry = TestRegistry::start_htpasswd("e2e-user", "e2e-Pa55-helper");
    let account = registry.account().clone();
    let store = PassStore::new();
    store.store(&registry.host(), &account.user, &account.password);
    let mut b = Project::three(&registry.host());
    std::fs::write(
        b.docker_config().join("config.json"),
        r#"{"credsStore": "pass"}"#,
    )
    .expect("config.json");
    for (k, v) in store.env() {
        b = b.with_env(&k, v);
    }
    build_push_and_skip(&b, Some(&account));
    for (path, text) in all_files_text(&b.path().join(".devspace")) {
        assert!(
            !text.contains(&account.password),
            "{} holds the password",
            path.display()
        );
    }
}

/// A one-shot barrier for builds: each `GET` is held until `parties` requests arrived, then all
/// get `200`; if they never all arrive, the held ones get `503` after a long wait.
fn barrier_server(parties: usize) -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind barrier");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let handle = std::thread::spawn(move || {
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut held: Vec<TcpStream> = Vec::new();
        while held.len() < parties && Instant::now() < give_up {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    held.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let arrived = held.len();
        let answer: &[u8] = if arrived == parties {
            b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
        } else {
            b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        };
        for mut s in held {
            let _ = s.write_all(answer);
        }
        arrived
    });
    (port, handle)
}

#[test]
fn builds_the_three_images_at_the_same_time() {
    require_services!();
    // Each build's RUN step waits at a barrier that opens only when all three builds reached
    // it: built one after another, the first one would fail.
    let (port, barrier) = barrier_server(3);
    let b = Project::three(PLAIN_REGISTRY);
    for key in KEYS {
        b.edit(
            &format!("{key}/Dockerfile"),
            "RUN echo",
            &format!(
                "RUN printf 'GET /$SERVICE HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 {port} | grep -q '^ok'\nRUN echo"
            ),
        );
    }
    let yaml = b.project.read("devspace.yaml");
    b.project.write(
        "devspace.yaml",
        yaml.replace(
            "        options:\n",
            "        options:\n          network: host\n",
        ),
    );
    let (out, report) = b.build_json(&["--skip-push"]);
    assert_eq!(
        barrier.join().expect("barrier thread"),
        3,
        "{}",
        out.describe()
    );
    out.assert_success();
    for key in KEYS {
        assert_eq!(status_of(&report, key), "built", "{key}");
    }
}

// --- 3: decisions from content ---------------------------------------------------------------

#[test]
fn decisions_follow_content_not_timestamps_or_location() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    b.build(&[]).assert_success();

    let touch = Command::new("touch")
        .arg(b.path().join("api/run.sh"))
        .arg(b.path().join("worker/Dockerfile"))
        .status()
        .expect("touch");
    assert!(touch.success());
    let out = b.build(&[]);
    out.assert_success();
    for key in KEYS {
        assert_line(&out, key, "skip (no change)");
    }

    b.edit("api/run.sh", "running", "running, edited");
    let out = b.build(&[]);
    out.assert_success();
    assert_line(&out, "api", "rebuild: 1 file changed: run.sh");
    assert_line(&out, "worker", "skip (no change)");
    assert_line(&out, "web", "skip (no change)");
    assert!(
        !out.stderr.contains("[worker] Step") && !out.stderr.contains("[web] Step"),
        "only api is built\n{}",
        out.describe()
    );

    b.edit("api/NOTES.md", "Not part", "Still not part");
    let out = b.build(&[]);
    out.assert_success();
    for key in KEYS {
        assert_line(&out, key, "skip (no change)");
    }

    let moved = TempProject::new();
    copy_dir(b.path(), &moved.join("checkout")).expect("copy the project");
    let out = b
        .devspace_in(&moved.join("checkout"))
        .args(["build", "--output", "json"])
        .run();
    out.assert_success();
    let report = parse_report(&out);
    for key in KEYS {
        assert_line(&out, key, "skip (no change)");
        assert_eq!(status_of(&report, key), "skipped", "{key}");
    }
}

// --- 4: dry run -------------------------------------------------------------------------------

#[test]
fn dry_run_decides_without_docker() {
    let b = Project::three(PLAIN_REGISTRY).with_env("DOCKER_HOST", "tcp://127.0.0.1:1");
    let out = b.build(&["--dry-run"]);
    out.assert_success();
    for key in KEYS {
        let row = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no row for {key}\n{}", out.describe()));
        assert!(row.contains("rebuild: never built"), "{row}");
        assert!(row.contains(&b.repository(key)), "{row}");
        assert!(row.contains("docker"), "builder in {row}");
        assert!(row.contains(" files, "), "context size in {row}");
    }

    let (out, report) = b.build_json(&["--dry-run"]);
    out.assert_success();
    for key in KEYS {
        let img = image_report(&report, key);
        assert_eq!(img["status"], "would_build", "{img}");
        assert_eq!(img["reason"], "rebuild: never built", "{img}");
        assert_eq!(img["builder"], "docker", "{img}");
        assert!(img["context_files"].as_u64().unwrap_or(0) >= 3, "{img}");
        assert!(img["context_bytes"].as_u64().unwrap_or(0) > 0, "{img}");
    }
    assert!(
        !b.path().join(".devspace/generated.yaml").exists(),
        "a dry run records nothing"
    );
}

// --- 5: -b, --build-sequential ---------------------------------------------------------------

#[test]
fn force_build_and_sequential_builds() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    b.build(&[]).assert_success();

    let (out, report) = b.build_json(&["-b"]);
    out.assert_success();
    for key in KEYS {
        assert_line(&out, key, "rebuild: --force-build");
        assert_eq!(status_of(&report, key), "built", "{key}");
    }

    let out = b.build(&["-b", "--build-sequential"]);
    out.assert_success();
    // Config order, one after another, each with its full log streamed live.
    let api_step = first_line_at(&out, "[api] Step 1/");
    let api_last = last_line_at(&out, "[api] ");
    let worker_first = first_line_at(&out, "[worker] ");
    let worker_last = last_line_at(&out, "[worker] ");
    let web_first = first_line_at(&out, "[web] ");
    assert!(
        api_step < worker_first && api_last < worker_first && worker_last < web_first,
        "images not built one after another in config order\n{}",
        out.describe()
    );
    for key in KEYS {
        first_line_at(&out, &format!("[{key}] Successfully built "));
    }
    assert!(
        out.stderr.lines().any(|l| l.starts_with("[api]  ---> ")),
        "the full build log is streamed\n{}",
        out.describe()
    );
}

// --- 6, 7: push later, missing images -------------------------------------------------------

#[test]
fn skip_push_then_plain_build_pushes_without_rebuilding() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    let (out, report) = b.build_json(&["--skip-push"]);
    out.assert_success();
    for key in KEYS {
        assert_eq!(image_report(&report, key)["pushed"], false, "{key}");
        assert!(registry_tags(&b.registry, &b.repo(key), None).is_empty());
    }

    let (out, report2) = b.build_json(&[]);
    out.assert_success();
    for key in KEYS {
        assert_line(&out, key, "push: not pushed yet");
        assert_eq!(status_of(&report2, key), "pushed", "{key}");
        let tag = first_tag(&report, key);
        assert_eq!(first_tag(&report2, key), tag, "{key}: same image");
        assert_eq!(pushed_tags(&b, key, None), vec![tag]);
    }
    assert!(!out.stderr.contains("Step 1/"), "{}", out.describe());

    let out = b.build(&[]);
    out.assert_success();
    for key in KEYS {
        assert_line(&out, key, "skip (no change)");
    }
}

#[test]
fn images_missing_in_registry_or_daemon_are_pushed_or_rebuilt() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    let (out, report) = b.build_json(&[]);
    out.assert_success();
    let tag = |key: &str| first_tag(&report, key);

    // api: gone from the registry, still in the daemon → pushed again.
    registry_delete(&b.registry, &b.repo("api"), &tag("api"), None);
    // worker: gone from both → rebuilt.
    registry_delete(&b.registry, &b.repo("worker"), &tag("worker"), None);
    let worker = format!("{}:{}", b.repository("worker"), tag("worker"));
    // `--no-prune`: the untagged parent layers may be another build's cache right now.
    docker_ok(&["rmi", "--no-prune", "-f", &worker]);
    assert!(!image_in_daemon(&worker));
    assert!(registry_tags(&b.registry, &b.repo("api"), None).is_empty());

    let (out, report2) = b.build_json(&[]);
    out.assert_success();
    assert_line(&out, "api", "push: image missing in registry");
    assert_eq!(status_of(&report2, "api"), "pushed");
    assert_eq!(pushed_tags(&b, "api", None), vec![tag("api")]);
    assert_line(&out, "worker", "rebuild: image missing in registry");
    assert_eq!(status_of(&report2, "worker"), "built");
    assert_eq!(
        pushed_tags(&b, "worker", None),
        vec![first_tag(&report2, "worker")]
    );
    assert_line(&out, "web", "skip (no change)");

    // Not pushing: the local daemon is what must have it.
    let (out, report3) = b.build_json(&["--skip-push"]);
    out.assert_success();
    for key in KEYS {
        assert_line(&out, key, "skip (no change)");
    }
    let web = format!("{}:{}", b.repository("web"), first_tag(&report3, "web"));
    docker_ok(&["rmi", "--no-prune", "-f", &web]);
    let out = b.build(&["--skip-push"]);
    out.assert_success();
    assert_line(&out, "web", "rebuild: image missing in local daemon");
    assert_line(&out, "api", "skip (no change)");
}

// --- 8, 9: credentials and daemon errors -----------------------------------------------------

#[test]
fn wrong_password_is_a_clear_auth_error_without_the_password() {
    require_services!();
    let registry = TestRegistry::start_htpasswd("e2e-user", "e2e-Right-Pa55");
    let wrong = "e2e-Wrong-Pa55-9f3k";
    let b = Project::three(&registry.host()).with_auths("e2e-user", wrong);
    let out = b.build(&[]);
    out.assert_code(5);
    out.assert_stderr_contains(&registry.host());
    out.assert_stderr_contains("devspace login");
    out.assert_output_lacks(wrong);
    out.assert_output_lacks("e2e-Right-Pa55");
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("e2e-user:{wrong}"));
    out.assert_output_lacks(&auth);
    for (path, text) in all_files_text(&b.path().join(".devspace")) {
        assert!(
            !text.contains(wrong) && !text.contains(&auth),
            "{} holds the password",
            path.display()
        );
    }
    assert!(
        b.cached_keys().is_empty(),
        "nothing is recorded when the push failed: {:?}",
        b.cached_keys()
    );
}

#[test]
fn unreachable_daemon_is_a_clear_error() {
    let b = Project::three(PLAIN_REGISTRY).with_env("DOCKER_HOST", "tcp://127.0.0.1:1");
    let out = b.build(&[]);
    out.assert_code(4);
    out.assert_stderr_contains("127.0.0.1:1");
    out.assert_stderr_contains("hint:");
    assert!(b.cached_keys().is_empty());
}

// --- 10: one failure among three -------------------------------------------------------------

#[test]
fn a_failing_image_does_not_stop_the_others() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    b.edit(
        "web/Dockerfile",
        "RUN echo",
        "RUN echo e2e-failure-marker && exit 3\nRUN echo",
    );
    let (out, report) = b.build_json(&[]);
    out.assert_code(1);
    assert_eq!(status_of(&report, "api"), "built");
    assert_eq!(status_of(&report, "worker"), "built");
    assert_eq!(status_of(&report, "web"), "failed");
    out.assert_stderr_contains("error: [web]");
    out.assert_stderr_contains("| e2e-failure-marker");
    let log = b.path().join(".devspace/logs/web.log");
    out.assert_stderr_contains(&format!("full log: {}", log.display()));
    let log_text = std::fs::read_to_string(&log).expect("the failed image's log exists");
    assert!(log_text.contains("e2e-failure-marker"), "{log_text}");
    assert_eq!(b.cached_keys(), ["api", "worker"]);

    let out = b.build(&[]);
    out.assert_code(1);
    assert_line(&out, "api", "skip (no change)");
    assert_line(&out, "worker", "skip (no change)");
    assert_line(&out, "web", "rebuild: never built");
    out.assert_stderr_contains("[web] Step");
}

// --- 11: an image FROM another ---------------------------------------------------------------

#[test]
fn an_image_from_another_is_built_after_it_from_the_fresh_tag() {
    require_services!();
    let b = Project::empty(PLAIN_REGISTRY);
    // `app` comes first in the config: the order comes from the FROM line.
    b.write(
        "devspace.yaml",
        "version: v1beta9\nimages:\n  app:\n    image: @REGISTRY@/@NAME@/app\n    dockerfile: ./app/Dockerfile\n    context: ./app\n  base:\n    image: @REGISTRY@/@NAME@/base\n    dockerfile: ./base/Dockerfile\n    context: ./base\n",
    )
    .write(
        "base/Dockerfile",
        "FROM busybox\nRUN echo from-base-@NAME@ > /base.txt\n",
    )
    .write(
        "app/Dockerfile",
        "FROM @REGISTRY@/@NAME@/base\nRUN cat /base.txt > /app.txt\n",
    );
    let (out, report) = b.build_json(&["--skip-push"]);
    out.assert_success();
    let base_tag = first_tag(&report, "base");
    assert!(
        last_line_at(&out, "[base] ") < first_line_at(&out, "[app] "),
        "app starts after base ended\n{}",
        out.describe()
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("[app] Step 1/")
            && l.ends_with(&format!("FROM {}:{base_tag}", b.repository("base")))),
        "app is built from base's fresh tag {base_tag}\n{}",
        out.describe()
    );
    let app = format!("{}:{}", b.repository("app"), first_tag(&report, "app"));
    let inside = docker_ok(&["run", "--rm", &app, "cat", "/base.txt", "/app.txt"]);
    let expected = format!("from-base-{}\n", b.namespace);
    assert_eq!(inside, expected.repeat(2));
}

// --- 12: Ctrl-C ------------------------------------------------------------------------------

#[test]
fn ctrl_c_stops_the_build_and_leaves_nothing_behind() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    let mark = format!("e2e.mark={}", b.namespace);
    b.edit(
        "api/Dockerfile",
        "RUN echo",
        &format!("LABEL {mark}\nRUN sleep 300\nRUN echo"),
    );
    // `--debug` streams the build log: the interrupt comes after the daemon said which
    // container runs the step (before that line, see the report: the daemon removes it
    // shortly after the run ends, but not before).
    let mut run = b
        .devspace()
        .args(["build", "--skip-push", "--debug"])
        .spawn();
    run.wait_for_output("RUN sleep 300", Duration::from_secs(120));
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let err = run.stderr_so_far();
        let step = err.find("RUN sleep 300").unwrap_or(err.len());
        if err[step..].contains("[api]  ---> Running in ") {
            break;
        }
        assert!(
            Instant::now() < until,
            "the RUN sleep step never started\n{err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(containers_with_label(&mark), 1, "the step's container runs");
    run.interrupt();
    // Far less than the 300 s sleep: the build was aborted, not waited for.
    let out = run.wait_deadline(Duration::from_secs(150));
    out.assert_code(130);
    assert_eq!(
        containers_with_label(&mark),
        0,
        "containers left behind\n{}",
        out.describe()
    );
    assert!(
        !b.cached_keys().contains(&"api".to_owned()),
        "the interrupted image is not recorded"
    );

    b.edit("api/Dockerfile", "RUN sleep 300", "RUN sleep 0");
    let out = b.build(&["--skip-push"]);
    out.assert_success();
    assert_eq!(containers_with_label(&mark), 0);
}

// --- 13, 14: custom builder, disabled images -------------------------------------------------

#[test]
fn custom_builder_runs_the_configured_argv_and_skips_with_on_change() {
    require_services!();
    let b = Project::empty(PLAIN_REGISTRY);
    b.write(
        "devspace.yaml",
        r#"version: v1beta9
images:
  gen:
    image: @REGISTRY@/@NAME@/gen
    tags: ["t1"]
    build:
      custom:
        command: ./build.sh
        args: ["--from", "two words"]
        imageFlag: --image
        appendArgs: ["--done"]
        onChange: ["src/**", "build.sh"]
  always:
    image: @REGISTRY@/@NAME@/always
    tags: ["t1"]
    build:
      custom:
        command: ./build.sh
"#,
    )
    .write("src/a.txt", "a\n")
    .write("other.txt", "o\n");
    b.project.write_mode(
        "build.sh",
        "#!/bin/sh\n# one line per call, each argument in brackets, appended in one write (two\n# images build in parallel)\nline=$(for a in \"$@\"; do printf '[%s]' \"$a\"; done)\nprintf '%s\\n' \"$line\" >> calls.log\necho custom builder ran\n",
        0o755,
    );
    let calls = |b: &Project| -> Vec<String> {
        std::fs::read_to_string(b.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let gen_call = b.fill("[--from][two words][--image][@REGISTRY@/@NAME@/gen:t1][--done]");
    let always_call = b.fill("[@REGISTRY@/@NAME@/always:t1]");

    let (out, report) = b.build_json(&[]);
    out.assert_success();
    assert_eq!(status_of(&report, "gen"), "built");
    assert_eq!(status_of(&report, "always"), "built");
    let mut first = calls(&b);
    first.sort();
    let mut expected = vec![gen_call.clone(), always_call.clone()];
    expected.sort();
    assert_eq!(first, expected);

    b.project.write("other.txt", "not watched\n");
    let (out, report) = b.build_json(&[]);
    out.assert_success();
    assert_line(&out, "gen", "skip (no change)");
    assert_line(&out, "always", "rebuild: custom builder without onChange");
    assert_eq!(status_of(&report, "gen"), "skipped");
    assert_eq!(status_of(&report, "always"), "built");
    assert_eq!(calls(&b)[2..], [always_call]);

    b.project.write("src/a.txt", "a2\n");
    let out = b.build(&[]);
    out.assert_success();
    assert_line(&out, "gen", "rebuild: 1 file changed: src/a.txt");
    assert_eq!(calls(&b).len(), 5);
}

#[test]
fn disabled_images_are_not_built_and_listed_as_disabled() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    b.edit(
        "devspace.yaml",
        "context: ./web\n    build:\n",
        "context: ./web\n    build:\n      disabled: true\n",
    );
    let (out, report) = b.build_json(&[]);
    out.assert_success();
    assert_eq!(status_of(&report, "web"), "disabled");
    assert_eq!(status_of(&report, "api"), "built");
    assert!(
        !out.stderr.contains("[web]"),
        "nothing happens to web\n{}",
        out.describe()
    );
    assert!(registry_tags(&b.registry, &b.repo("web"), None).is_empty());

    let out = b.build(&[]);
    out.assert_success();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("no summary row for web\n{}", out.describe()));
    assert!(row.contains("disabled"), "{row}");
}

// --- 15: concurrency bound, tags -------------------------------------------------------------

#[test]
fn max_concurrent_builds_and_several_tags() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    let (out, report) =
        b.build_json(&["--max-concurrent-builds", "1", "-t", "e2e-a", "-t", "e2e-b"]);
    out.assert_success();
    for key in KEYS {
        assert_eq!(status_of(&report, key), "built", "{key}");
        assert_eq!(
            image_report(&report, key)["tags"],
            serde_json::json!(["e2e-a", "e2e-b"])
        );
        assert_eq!(pushed_tags(&b, key, None), ["e2e-a", "e2e-b"], "{key}");
    }
    assert!(
        last_line_at(&out, "[api] ") < first_line_at(&out, "[worker] ")
            && last_line_at(&out, "[worker] ") < first_line_at(&out, "[web] "),
        "one image at a time\n{}",
        out.describe()
    );
}

// --- 16: output ------------------------------------------------------------------------------

/// What a user reads, with the random and time-dependent parts replaced, and column padding
/// (which depends on their widths) collapsed.
fn redact(b: &Project, text: &str) -> String {
    let text = text
        .replace(b.path().to_string_lossy().as_ref(), "[PROJECT]")
        .replace(&b.namespace, "[NAME]")
        .replace(&b.registry, "[REGISTRY]");
    let rules = [
        (r"sha256:[0-9a-f]{12,64}", "sha256:[DIGEST]"),
        (r"(/[a-z]+):[a-z][a-z0-9]{4}\b", "$1:[TAG]"),
        (r"\b\d+m\d\ds\b|\b\d+(\.\d+)?m?s\b", "[TIME]"),
        (r"(\S) {2,}", "$1  "),
    ];
    rules.iter().fold(text, |t, (re, with)| {
        regex::Regex::new(re)
            .expect("redaction regex")
            .replace_all(&t, *with)
            .into_owned()
    })
}

#[test]
fn plain_output_is_whole_prefixed_lines_and_a_summary() {
    require_services!();
    let b = Project::three(PLAIN_REGISTRY);
    let out = b.devspace().args(["build", "--dry-run"]).run();
    out.assert_success();
    insta::assert_snapshot!("dry_run_table", redact(&b, &out.stdout));

    let out = b.build(&[]);
    out.assert_success();
    for line in out.stderr.lines() {
        assert!(
            KEYS.iter().any(|k| line.starts_with(&format!("[{k}] "))),
            "stderr line without an image prefix: {line:?}\n{}",
            out.describe()
        );
    }
    assert!(
        out.stderr.lines().any(|l| l.starts_with("[api] Step 2/")),
        "{}",
        out.describe()
    );
    insta::assert_snapshot!("build_summary", redact(&b, &out.stdout));

    let out = b.build(&[]);
    out.assert_success();
    insta::assert_snapshot!("skip_summary", redact(&b, &out.stdout));

    let (out, mut report) = b.build_json(&["--dry-run"]);
    out.assert_success();
    assert!(report["success"].as_bool().unwrap_or(false), "{report:#}");
    // Tags are random and durations vary: fixed values, the rest as printed.
    report["duration_ms"] = 0.into();
    for img in report["images"].as_array_mut().into_iter().flatten() {
        img["tags"] = serde_json::json!(["[TAG]"]);
        img["duration_ms"] = 0.into();
    }
    let json = serde_json::to_string_pretty(&report).expect("JSON");
    insta::assert_snapshot!("dry_run_json", redact(&b, &json));
}
