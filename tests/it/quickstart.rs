//! The `examples/quickstart` project: it resolves to the three images the README promises
//! (tags from vars, the production profile's patches), its manifests reference exactly those
//! images, and its Dockerfiles and `.dockerignore` files are what the example documents.
//!
//! Every run works on a copy of the example, so nothing the binary writes (`.devspace/`)
//! lands in the repository.

use crate::support::harness::StrayState;
use crate::support::project::{TempProject, repo_path};
use serde_json::Value;
use std::path::Path;

const SERVICES: [&str; 3] = ["api", "worker", "web"];

fn image_name(service: &str) -> String {
    format!("127.0.0.1:5000/quickstart/{service}")
}

/// `devspace print` (plus `args`) in a fresh copy of the quickstart, parsed as YAML.
fn resolved(project: &TempProject, args: &[&str]) -> Value {
    let out = project.devspace().arg("print").args(args).run();
    out.assert_success();
    serde_saphyr::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`devspace print` output is not YAML: {e}\n{}",
            out.describe()
        )
    })
}

fn quickstart() -> TempProject {
    TempProject::from_fixture("examples/quickstart")
}

fn tags(config: &Value, service: &str) -> Vec<String> {
    let tags = &config["images"][service]["tags"];
    serde_json::from_value(tags.clone())
        .unwrap_or_else(|e| panic!("images.{service}.tags is not a list of strings ({e}): {tags}"))
}

fn build_arg<'a>(config: &'a Value, service: &str, arg: &str) -> &'a Value {
    &config["images"][service]["build"]["docker"]["options"]["buildArgs"][arg]
}

#[test]
fn resolves_three_images_in_file_order_with_default_tags() {
    let project = quickstart();
    let config = resolved(&project, &[]);
    let images = config["images"]
        .as_object()
        .unwrap_or_else(|| panic!("no images map in {config}"));
    let keys: Vec<&str> = images.keys().map(String::as_str).collect();
    assert_eq!(keys, SERVICES);
    for service in SERVICES {
        let image = &config["images"][service];
        assert_eq!(
            image["image"],
            Value::from(image_name(service)),
            "{service}"
        );
        assert_eq!(tags(&config, service), ["dev"], "{service}");
        assert_eq!(
            Path::new(image["context"].as_str().unwrap_or_default()),
            project.join(service),
            "{service}: context is the service directory, made absolute"
        );
        assert_eq!(
            Path::new(image["dockerfile"].as_str().unwrap_or_default()),
            project.join(service).join("Dockerfile"),
            "{service}: dockerfile"
        );
        assert_eq!(
            *build_arg(&config, service, "SERVICE"),
            Value::from(service)
        );
    }
    assert_eq!(
        *build_arg(&config, "web", "MODE"),
        Value::from("development")
    );
}

#[test]
fn production_profile_patches_api_tag_and_web_build_arg() {
    let project = quickstart();
    let config = resolved(&project, &["-p", "production"]);
    assert_eq!(tags(&config, "api"), ["dev-production"]);
    assert_eq!(tags(&config, "worker"), ["dev"]);
    assert_eq!(tags(&config, "web"), ["dev"]);
    assert_eq!(
        *build_arg(&config, "web", "MODE"),
        Value::from("production")
    );
    assert_eq!(*build_arg(&config, "api", "SERVICE"), Value::from("api"));
}

#[test]
fn var_overrides_the_tag_prefix_also_inside_profile_patches() {
    let project = quickstart();
    let config = resolved(&project, &["--var", "TAG_PREFIX=v2"]);
    for service in SERVICES {
        assert_eq!(tags(&config, service), ["v2"], "{service}");
    }
    let config = resolved(&project, &["--var", "TAG_PREFIX=v2", "-p", "production"]);
    assert_eq!(tags(&config, "api"), ["v2-production"]);
    assert_eq!(tags(&config, "worker"), ["v2"]);
}

#[test]
fn deploys_the_kubectl_manifests_under_k8s() {
    let project = quickstart();
    let config = resolved(&project, &[]);
    let deployments = config["deployments"]
        .as_array()
        .unwrap_or_else(|| panic!("no deployments list in {config}"));
    assert_eq!(deployments.len(), 1, "{config}");
    assert_eq!(deployments[0]["name"], "quickstart");
    let manifests = deployments[0]["kubectl"]["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests list in {config}"));
    assert_eq!(manifests.len(), 1, "{config}");
    // Shown as written or resolved against the project root; either way the same glob.
    let glob = manifests[0].as_str().unwrap_or_default();
    assert!(
        glob == "k8s/**" || Path::new(glob) == project.join("k8s/**"),
        "manifests glob {glob:?}"
    );
}

#[test]
fn print_images_lists_every_image() {
    let project = quickstart();
    let out = project.devspace().args(["print", "--images"]).run();
    out.assert_success();
    for service in SERVICES {
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(service))
            .unwrap_or_else(|| panic!("no row for {service}\n{}", out.describe()));
        assert!(line.contains(&image_name(service)), "{line}");
        assert!(line.contains("docker"), "builder column of {line}");
    }
}

/// Every `image:` value in the example's manifests.
fn manifest_images() -> Vec<String> {
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("image", Value::String(s)) => out.push(s.clone()),
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let dir = repo_path("examples/quickstart/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut images = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
        docs.iter().for_each(|d| collect(d, &mut images));
    }
    images
}

#[test]
fn manifests_reference_exactly_the_configured_images() {
    let mut images = manifest_images();
    images.sort();
    let mut expected: Vec<String> = SERVICES.iter().map(|s| image_name(s)).collect();
    expected.sort();
    assert_eq!(images, expected);
}

#[test]
fn services_build_from_the_local_busybox_and_ignore_notes() {
    let root = repo_path("examples/quickstart");
    for service in SERVICES {
        let dockerfile = std::fs::read_to_string(root.join(service).join("Dockerfile"))
            .unwrap_or_else(|e| panic!("{service}/Dockerfile: {e}"));
        assert_eq!(dockerfile.lines().next(), Some("FROM busybox"), "{service}");
        let ignore = std::fs::read_to_string(root.join(service).join(".dockerignore"))
            .unwrap_or_else(|e| panic!("{service}/.dockerignore: {e}"));
        assert!(
            ignore.lines().any(|l| l == "*.md"),
            "{service}/.dockerignore"
        );
        assert!(
            root.join(service).join("run.sh").is_file(),
            "{service}/run.sh"
        );
    }
}

/// The runner every binary test here relies on: exit status, both streams, arguments.
#[test]
fn runner_captures_status_and_streams() {
    let version = crate::support::project::Devspace::new()
        .arg("--version")
        .run();
    version
        .assert_success()
        .assert_stdout_contains(env!("CARGO_PKG_VERSION"));
    let project = quickstart();
    let usage = project.devspace().arg("no-such-command").run();
    usage
        .assert_code(2)
        .assert_stderr_contains("no-such-command")
        .assert_output_lacks("panicked");
}

/// Long-running commands (`devspace dev`) are watched for output and stopped like Ctrl-C.
#[test]
fn runner_feeds_stdin_watches_output_and_interrupts() {
    let echoed = crate::support::project::Devspace::new()
        .program("sh")
        .args(["-c", "cat; echo \"$GREETING\" >&2"])
        .env("GREETING", "hello")
        .stdin("from stdin\n")
        .run();
    echoed
        .assert_success()
        .assert_stdout_contains("from stdin")
        .assert_stderr_contains("hello");

    let script = "trap 'echo interrupted; exit 7' INT; echo ready; while :; do sleep 0.05; done";
    let mut running = crate::support::project::Devspace::new()
        .program("sh")
        .args(["-c", script])
        .spawn();
    running.wait_for_output("ready", std::time::Duration::from_secs(30));
    running.interrupt();
    let out = running.wait();
    out.assert_code(7).assert_stdout_contains("interrupted");
}

/// The README's quick start: `devspace build` builds and pushes the three images to the plain
/// registry on 127.0.0.1:5000; a second run skips all three; `--dry-run` agrees.
#[test]
fn quickstart_builds_pushes_and_then_skips() {
    require_services!();
    let project = quickstart();
    // A local run of the example may have left its cache behind; copies never hold it.
    assert!(!project.exists(".devspace"));
    let prefix = format!("qs{}", std::process::id());
    let var = format!("TAG_PREFIX={prefix}");
    // The example's repositories are the same for every run on this machine, so an earlier
    // run's push is in the registry cache: this first build leaves it out to build for sure
    // (the cache is checked at the end, and in registry_cache.rs).
    let first = project
        .devspace()
        .args(["build", "--no-registry-cache", "--var", &var])
        .run();
    first.assert_success();
    for service in SERVICES {
        assert!(
            first
                .stderr
                .contains(&format!("[{service}] rebuild: never built")),
            "{}",
            first.describe()
        );
        assert!(
            first
                .stdout
                .contains(&format!("{}:{prefix}", image_name(service))),
            "{}",
            first.describe()
        );
    }
    let second = project.devspace().args(["build", "--var", &var]).run();
    second.assert_success();
    for service in SERVICES {
        assert!(
            second
                .stderr
                .contains(&format!("[{service}] skip (no change)")),
            "{}",
            second.describe()
        );
    }
    assert!(
        second.stdout.contains("0 built, 3 skipped, 0 failed"),
        "{}",
        second.describe()
    );
    let dry = project
        .devspace()
        .args(["build", "--dry-run", "--var", &var])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .run();
    dry.assert_success();
    assert_eq!(
        dry.stdout.matches("skip (no change)").count(),
        3,
        "{}",
        dry.describe()
    );
    // Another copy of the example builds nothing: the registry has all three.
    let clone = quickstart();
    let elsewhere = clone.devspace().args(["build", "--var", &var]).run();
    elsewhere.assert_success();
    for service in SERVICES {
        assert!(
            elsewhere.stderr.contains(&format!(
                "[{service}] skip (found in registry: built elsewhere): {}:devspace-cache-",
                image_name(service)
            )),
            "{}",
            elsewhere.describe()
        );
    }
}

/// A copy of the example holds what git sees and nothing a local run left behind: with a stray
/// `.devspace/` (recorded tags) in `examples/quickstart`, the copy has the same files as
/// `git ls-files` lists and no `.devspace/`.
#[test]
fn copies_of_the_example_leave_ignored_state_behind() {
    let _stray = StrayState::hold();
    assert!(repo_path("examples/quickstart/.devspace/generated.yaml").exists());
    let copy = quickstart();
    assert!(!copy.exists(".devspace"), "the stray cache was copied");
    let listed = std::process::Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ])
        .current_dir(repo_path("examples/quickstart"))
        .output()
        .expect("run git");
    assert!(listed.status.success(), "git ls-files failed");
    let mut want: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    want.sort();
    let mut have: Vec<String> = walkdir::WalkDir::new(copy.path())
        .into_iter()
        .map(|e| e.expect("walk the copy"))
        .filter(|e| !e.file_type().is_dir())
        .map(|e| {
            e.path()
                .strip_prefix(copy.path())
                .expect("inside the copy")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    have.sort();
    assert_eq!(have, want);
}
