//! Build inputs → decision → cache, end to end through the public API on real files: the
//! Dockerfile override and `FROM` rewrite, content hashes, the skip decision and its reason,
//! and committed cache entries surviving a reopen, a moved checkout and parallel writers.
//!
//! Contexts are scanned by `image::context` (walk, `.dockerignore`, stat cache) and reach the
//! decision through `FilesInput::from_scan`.

use devspace::config::{BuildConfig, CustomConfig, ImageConfig};
use devspace::image::cache::{BuildOutcome, Cache, PendingEntry, PushRecord};
use devspace::image::context::scan_context;
use devspace::image::decision::{BuilderInputs, DecisionInputs, FilesInput};
use devspace::image::dockerfile::{self, Overrides};
use devspace::image::on_change::on_change_files;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// A project with two images: `base` and `app`, which is built `FROM` base.
fn write_project(root: &Path) {
    for (path, content) in [
        ("base/Dockerfile", "FROM busybox\nRUN echo base\n"),
        (
            "app/Dockerfile",
            "FROM localhost:5000/base:latest AS build\nRUN make\nFROM busybox\nCOPY --from=build /out /out\n",
        ),
        ("app/src/a.rs", "a"),
        ("app/src/b.rs", "b"),
        ("app/notes.md", "n"),
        ("app/.dockerignore", "*.log\n"),
        ("app/debug.log", "ignored"),
        ("tools/gen.sh", "#!/bin/sh\necho gen\n"),
    ] {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

fn app_config(root: &Path) -> ImageConfig {
    ImageConfig {
        image: "localhost:5000/app".into(),
        tags: vec!["dev".into()],
        dockerfile: root.join("app/Dockerfile"),
        context: root.join("app"),
        entrypoint: Some(vec!["/out/app".into(), "--port=\"80\"".into()]),
        ..ImageConfig::default()
    }
}

/// Everything the build stage computes for `app` before deciding.
fn app_inputs(root: &Path, base_tag: &str, push: bool) -> (DecisionInputs, String) {
    let config = app_config(root);
    let text = fs::read_to_string(&config.dockerfile).unwrap();
    let fresh = HashMap::from([(
        "localhost:5000/base".to_owned(),
        format!("localhost:5000/base:{base_tag}"),
    )]);
    let rewritten =
        dockerfile::rewrite_from(&config.dockerfile, &text, &IndexMap::new(), &fresh).unwrap();
    let overrides = Overrides {
        entrypoint: config.entrypoint.clone(),
        target: None,
        ..Overrides::default()
    };
    let final_text =
        dockerfile::apply_overrides(&config.dockerfile, &rewritten, &overrides).unwrap();
    let scan = scan_context(&config.context, &config.dockerfile, &root.join(".devspace")).unwrap();
    let builder = BuilderInputs::dockerfile_with(
        &final_text,
        config.entrypoint.as_deref(),
        config.cmd.as_deref(),
        FilesInput::from_scan(&scan),
    );
    (
        DecisionInputs::new(&config, root, push, builder),
        final_text,
    )
}

fn commit(cache: &Cache, key: &str, inputs: DecisionInputs, pushed: bool) {
    let outcome = BuildOutcome {
        tags: vec!["dev".into()],
        push: pushed.then(|| PushRecord {
            registry: "localhost:5000".into(),
            digest: Some("sha256:1".into()),
        }),
    };
    cache
        .commit(
            PendingEntry::new("", key, "localhost:5000/app", inputs),
            outcome,
        )
        .unwrap();
}

fn reason(root: &Path, base_tag: &str, push: bool) -> String {
    let (inputs, _) = app_inputs(root, base_tag, push);
    Cache::open(root)
        .decide("", "app", &inputs, false)
        .0
        .to_string()
}

#[test]
fn the_final_dockerfile_has_the_fresh_base_and_the_override() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path());
    let (_, text) = app_inputs(dir.path(), "k3j9x", true);
    assert_eq!(
        text,
        "FROM localhost:5000/base:k3j9x AS build\nRUN make\nFROM busybox\nCOPY --from=build /out /out\nENTRYPOINT [\"/out/app\",\"--port=\\\"80\\\"\"]\n"
    );
    let refs =
        dockerfile::from_references(&app_config(dir.path()).dockerfile, &text, &IndexMap::new())
            .unwrap();
    assert_eq!(refs, ["localhost:5000/base:k3j9x", "busybox"]);
}

#[test]
fn decisions_follow_the_project_through_its_life() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_project(root);
    assert_eq!(reason(root, "b1", true), "rebuild: never built");

    let (inputs, _) = app_inputs(root, "b1", false);
    commit(&Cache::open(root), "app", inputs, false);
    assert_eq!(reason(root, "b1", false), "skip (no change)");
    assert_eq!(
        reason(root, "b1", true),
        "push: not pushed yet",
        "--skip-push then a plain build"
    );

    let (inputs, _) = app_inputs(root, "b1", true);
    commit(&Cache::open(root), "app", inputs, true);
    assert_eq!(reason(root, "b1", true), "skip (no change)");

    // Touching (same content) changes nothing; content does.
    fs::write(root.join("app/src/a.rs"), "a").unwrap();
    fs::write(
        root.join("app/Dockerfile"),
        fs::read(root.join("app/Dockerfile")).unwrap(),
    )
    .unwrap();
    assert_eq!(reason(root, "b1", true), "skip (no change)");
    fs::write(root.join("app/debug.log"), "ignored by .dockerignore").unwrap();
    assert_eq!(reason(root, "b1", true), "skip (no change)");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let script = root.join("app/src/b.rs");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            reason(root, "b1", true),
            "rebuild: build context changed",
            "mode only"
        );
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(reason(root, "b1", true), "skip (no change)");
    }
    fs::write(root.join("app/src/a.rs"), "a2").unwrap();
    fs::write(root.join("app/src/c.rs"), "c").unwrap();
    fs::remove_file(root.join("app/notes.md")).unwrap();
    assert_eq!(
        reason(root, "b1", true),
        "rebuild: 3 files changed: notes.md, src/a.rs, +1"
    );

    let (inputs, _) = app_inputs(root, "b1", true);
    commit(&Cache::open(root), "app", inputs, true);
    assert_eq!(
        reason(root, "b2", true),
        "rebuild: Dockerfile changed",
        "base image rebuilt with a new tag"
    );
}

#[test]
fn a_moved_checkout_still_skips() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    write_project(&first);
    let (inputs, _) = app_inputs(&first, "b1", true);
    commit(&Cache::open(&first), "app", inputs, true);

    let moved = dir.path().join("elsewhere/second");
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    fs::rename(&first, &moved).unwrap();
    assert_eq!(reason(&moved, "b1", true), "skip (no change)");
}

#[test]
fn custom_builder_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_project(root);
    let config = ImageConfig {
        image: "localhost:5000/gen".into(),
        dockerfile: root.join("Dockerfile"),
        context: root.to_owned(),
        build: BuildConfig {
            custom: Some(CustomConfig {
                command: "./tools/gen.sh".into(),
                on_change: vec!["tools/**".into()],
                ..CustomConfig::default()
            }),
            ..BuildConfig::default()
        },
        ..ImageConfig::default()
    };
    let inputs = |root: &Path| {
        let patterns = &config.build.custom.as_ref().unwrap().on_change;
        let files = on_change_files(root, patterns).unwrap();
        DecisionInputs::new(
            &config,
            root,
            false,
            BuilderInputs::Custom {
                on_change: Some(FilesInput::from_files(files)),
            },
        )
    };
    let decide = |root: &Path| {
        Cache::open(root)
            .decide("", "gen", &inputs(root), false)
            .0
            .to_string()
    };
    assert_eq!(decide(root), "rebuild: never built");
    Cache::open(root)
        .commit(
            PendingEntry::new("", "gen", "localhost:5000/gen", inputs(root)),
            BuildOutcome {
                tags: vec!["abcde".into()],
                push: None,
            },
        )
        .unwrap();
    assert_eq!(decide(root), "skip (no change)");
    fs::write(root.join("app/src/a.rs"), "not watched").unwrap();
    assert_eq!(decide(root), "skip (no change)");
    fs::write(root.join("tools/gen.sh"), "#!/bin/sh\necho v2\n").unwrap();
    assert_eq!(decide(root), "rebuild: 1 file changed: tools/gen.sh");
}

#[test]
fn parallel_runs_of_several_images_keep_all_entries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    write_project(&root);
    std::thread::scope(|scope| {
        for i in 0..6 {
            let root = &root;
            scope.spawn(move || {
                // Each "run" opens its own cache before any other has written.
                let cache = Cache::open(root);
                let (inputs, _) = app_inputs(root, "b1", true);
                commit(&cache, &format!("app{i}"), inputs, true);
            });
        }
    });
    let cache = Cache::open(&root);
    for i in 0..6 {
        let (inputs, _) = app_inputs(&root, "b1", true);
        assert_eq!(
            cache
                .decide("", &format!("app{i}"), &inputs, false)
                .0
                .to_string(),
            "skip (no change)"
        );
    }
}

/// Set in the child processes of [`separate_processes_never_lose_entries`].
const CHILD_ROOT: &str = "DEVSPACE_TEST_CACHE_CHILD_ROOT";
const CHILD_KEY: &str = "DEVSPACE_TEST_CACHE_CHILD_KEY";

#[test]
fn separate_processes_never_lose_entries() {
    if let (Ok(root), Ok(key)) = (std::env::var(CHILD_ROOT), std::env::var(CHILD_KEY)) {
        // Child: several commits, each a locked read-merge-write against the others.
        let root = Path::new(&root);
        for _ in 0..5 {
            let (inputs, _) = app_inputs(root, "b1", true);
            commit(&Cache::open(root), &key, inputs, true);
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_project(root);
    let exe = std::env::current_exe().unwrap();
    // The test's name in the test binary: its module path without the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let this_test = format!("{module}::separate_processes_never_lose_entries");
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(["--exact", &this_test, "--test-threads=1"])
                .env(CHILD_ROOT, root)
                .env(CHILD_KEY, format!("proc{i}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let cache = Cache::open(root);
    assert!(cache.warnings().is_empty(), "{:?}", cache.warnings());
    let (inputs, _) = app_inputs(root, "b1", true);
    for i in 0..4 {
        let key = format!("proc{i}");
        assert_eq!(
            cache.decide("", &key, &inputs, false).0.to_string(),
            "skip (no change)",
            "{key}"
        );
    }
}

/// Builds `dockerfile` (up to `target`) with the real daemon (classic builder) and returns the
/// image's `[Entrypoint, Cmd, Env]` as Docker recorded them.
fn docker_config_of(dir: &Path, dockerfile: &str, target: Option<&str>) -> serde_json::Value {
    use std::process::Command;
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let tag = format!("devspace-test-override:{}", std::process::id());
    let build = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .args(target.map(|t| format!("--target={t}")))
        .arg(dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "docker build failed:\n{dockerfile}\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let inspect = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "[{{json .Config.Entrypoint}},{{json .Config.Cmd}},{{json .Config.Env}}]",
            &tag,
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        // `--no-prune`: the parent layers may be the cache of a build running right now.
        .args(["image", "rm", "--no-prune", "-f", &tag])
        .output();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    serde_json::from_slice(&inspect.stdout).unwrap()
}

#[test]
fn docker_reads_the_overrides_exactly_as_configured() {
    require_services!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    let awkward: Vec<String> = [
        "/bin/sh",
        "-c",
        "echo \"quoted\" 'single' \\back\\slash $HOME `tick` ü\ttab",
    ]
    .map(str::to_owned)
    .to_vec();
    let cmd = vec!["--flag=[x]".to_owned(), "{\"json\": true}".to_owned()];
    let original = "FROM busybox:latest AS First\nENV STAGE=first\n\n# the second stage\nFROM busybox:latest\nENV STAGE=second\nENTRYPOINT [\"/bin/false\"]\n";

    let overrides = Overrides {
        entrypoint: Some(awkward.clone()),
        cmd: Some(cmd.clone()),
        append_instructions: vec!["ENV MARK=appended".into()],
        target: None,
    };
    let text = dockerfile::apply_overrides(&path, original, &overrides).unwrap();
    let got = docker_config_of(dir.path(), &text, None);
    assert_eq!(got[0], serde_json::json!(awkward), "{text}");
    assert_eq!(got[1], serde_json::json!(cmd), "{text}");
    let env = got[2].to_string();
    assert!(
        env.contains("MARK=appended") && env.contains("STAGE=second"),
        "{env}"
    );

    // With a target the text goes at the end of that stage (matched case-insensitively).
    let overrides = Overrides {
        entrypoint: Some(vec!["/bin/true".into()]),
        cmd: None,
        append_instructions: vec!["ENV MARK=in-first".into()],
        target: Some("first".into()),
    };
    let text = dockerfile::apply_overrides(&path, original, &overrides).unwrap();
    let got = docker_config_of(dir.path(), &text, Some("First"));
    assert_eq!(got[0], serde_json::json!(["/bin/true"]), "{text}");
    let env = got[2].to_string();
    assert!(
        env.contains("MARK=in-first") && env.contains("STAGE=first"),
        "{env}"
    );
    assert!(
        text.ends_with("ENTRYPOINT [\"/bin/false\"]\n"),
        "second stage untouched: {text}"
    );
}
