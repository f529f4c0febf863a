//! The project harness of the end-to-end tests: a temporary project whose images live under a
//! unique repository namespace (`<registry>/<namespace>/<key>`) and have content of their own
//! (a unique build arg), with its own `DOCKER_CONFIG`, so tests run in parallel against the
//! same daemon and registries without ever sharing an image: two tests building the same
//! Dockerfile would get one image ID from the daemon, and one test's cleanup could remove the
//! image under the other. The images
//! a project leaves in the daemon (its own repositories only) are removed on drop.
//!
//! Two kinds of projects:
//! - [`Project::quickstart`]: a copy of `examples/quickstart` (images renamed into the
//!   namespace), with an empty `HOME` and `--var TAG_PREFIX=<unique>` on every run;
//! - [`Project::three`] (the `tests/fixtures/build/three` fixture) and [`Project::empty`] (the
//!   test writes the files): `@REGISTRY@` and `@NAME@` in the files are replaced by the registry
//!   and the namespace.

use base64::Engine as _;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use super::kube_fake::FakeKube;
use super::project::{Devspace, Output, TempProject};

/// The quickstart's image keys, in config order.
pub const SERVICES: [&str; 3] = ["api", "worker", "web"];

/// The files of the quickstart that name the images.
const QUICKSTART_IMAGE_FILES: [&str; 4] = [
    "devspace.yaml",
    "k8s/api.yaml",
    "k8s/web.yaml",
    "k8s/worker.yaml",
];

/// The image of the first container of deployment `name` as applied to `fake`.
pub fn container_image(fake: &FakeKube, name: &str) -> String {
    let deployment = fake
        .get("apps/v1", "Deployment", fake.namespace(), name)
        .unwrap_or_else(|| panic!("deployment {name} was not applied"));
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory")
}

fn unique_hex() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A project under test (see the module doc).
pub struct Project {
    pub project: TempProject,
    docker_config: tempfile::TempDir,
    /// The empty `HOME` of quickstart runs (`None`: the test's own `HOME`).
    home: Option<tempfile::TempDir>,
    /// `127.0.0.1:5000`, `127.0.0.1:5001` or a test registry's host.
    pub registry: String,
    /// `quickstart-<hex>` or `e2e-<hex>`: the first path component of every image name.
    pub namespace: String,
    /// The `TAG_PREFIX` quickstart runs get (unused by the other projects).
    pub prefix: String,
    /// Arguments before every command (`--var TAG_PREFIX=...` for the quickstart).
    global_args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Project {
    fn new(project: TempProject, registry: &str, namespace: String, prefix: String) -> Self {
        let docker_config = temp_dir("devspace-test-docker-");
        std::fs::write(docker_config.path().join("config.json"), "{}\n").expect("config.json");
        Project {
            project,
            docker_config,
            home: None,
            registry: registry.to_owned(),
            namespace,
            prefix,
            global_args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A copy of `examples/quickstart` whose images live in `registry`.
    pub fn quickstart(registry: &str) -> Self {
        let unique = unique_hex();
        let mut p = Self::new(
            TempProject::from_fixture("examples/quickstart"),
            registry,
            format!("quickstart-{unique}"),
            format!("t{unique}"),
        );
        for file in QUICKSTART_IMAGE_FILES {
            let text = p.project.read(file);
            p.project.write(
                file,
                text.replace(
                    "127.0.0.1:5000/quickstart/",
                    &format!("{registry}/{}/", p.namespace),
                ),
            );
        }
        p.unique_build_args();
        p.label_after_from();
        p.home = Some(temp_dir("devspace-test-home-"));
        p.global_args = vec!["--var".into(), format!("TAG_PREFIX={}", p.prefix).into()];
        p
    }

    /// A copy of the three-image fixture (`tests/fixtures/build/three`) whose images live in
    /// `registry`.
    pub fn three(registry: &str) -> Self {
        let p = Self::new(
            TempProject::from_fixture("tests/fixtures/build/three"),
            registry,
            format!("e2e-{}", unique_hex()),
            String::new(),
        );
        p.substitute_placeholders();
        p.unique_build_args();
        p
    }

    /// An empty project; the test writes `devspace.yaml` (placeholders `@REGISTRY@`, `@NAME@`)
    /// and Dockerfiles whose content is its own (e.g. a `RUN` naming `@NAME@`).
    pub fn empty(registry: &str) -> Self {
        Self::new(
            TempProject::new(),
            registry,
            format!("e2e-{}", unique_hex()),
            String::new(),
        )
    }

    /// Makes the images of this project its own: the value of every `SERVICE` build arg in
    /// `devspace.yaml` gets the namespace appended. Each fixture Dockerfile consumes `SERVICE` in
    /// a `RUN` step, so no other test's build yields the same image. (A label appended to the
    /// Dockerfiles would do too, but would change the context sizes the snapshots show.)
    fn unique_build_args(&self) {
        let text = self.project.read("devspace.yaml");
        let mut changed = 0;
        let lines: Vec<String> = text
            .lines()
            .map(|line| match line.split_once("SERVICE: ") {
                Some((indent, value)) if indent.trim().is_empty() => {
                    changed += 1;
                    format!("{indent}SERVICE: {value}.{}", self.namespace)
                }
                _ => line.to_owned(),
            })
            .collect();
        assert!(
            changed > 0,
            "no SERVICE build arg in devspace.yaml:\n{text}"
        );
        self.project.write("devspace.yaml", lines.join("\n") + "\n");
    }

    /// Inserts `LABEL dev.devspace.test-project=<namespace>` after the `FROM` line of every
    /// `Dockerfile`, so not even the first cached step of a build is shared with another test:
    /// the classic builder, running many builds with common cached steps at once, now and then
    /// fails with "unable to find image" for such a step. (Only for quickstart copies: the
    /// `three` fixture's context sizes are in snapshots.)
    fn label_after_from(&self) {
        let label = format!("LABEL dev.devspace.test-project={}", self.namespace);
        self.for_each_file(&|path| {
            if path.file_name() != Some(std::ffi::OsStr::new("Dockerfile")) {
                return;
            }
            let text = std::fs::read_to_string(path).expect("read Dockerfile");
            let (from, rest) = text.split_once('\n').expect("a FROM line and more");
            assert!(from.starts_with("FROM "), "{}: {from}", path.display());
            std::fs::write(path, format!("{from}\n{label}\n{rest}")).expect("label Dockerfile");
        });
    }

    fn substitute_placeholders(&self) {
        self.for_each_file(&|path| {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.contains('@')
            {
                std::fs::write(path, self.fill(&text)).expect("rewrite fixture file");
            }
        });
    }

    fn for_each_file(&self, f: &dyn Fn(&Path)) {
        fn walk(dir: &Path, f: &dyn Fn(&Path)) {
            for entry in std::fs::read_dir(dir).expect("read project dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, f);
                } else {
                    f(&path);
                }
            }
        }
        walk(self.project.path(), f);
    }

    /// `text` with `@REGISTRY@` and `@NAME@` filled in.
    pub fn fill(&self, text: &str) -> String {
        text.replace("@REGISTRY@", &self.registry)
            .replace("@NAME@", &self.namespace)
    }

    /// Writes a project file, placeholders filled in.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        self.project.write(rel, self.fill(text));
        self
    }

    /// Replaces `from` (must occur) by `to` in a project file.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.project.read(rel);
        assert!(text.contains(from), "{rel} lacks {from:?}:\n{text}");
        self.project.write(rel, text.replacen(from, to, 1));
    }

    /// Drops every quickstart image's `tags:`, so each build gets a fresh random tag.
    pub fn without_tags(self) -> Self {
        let text = self.project.read("devspace.yaml");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| l.trim() != "tags: [\"${TAG_PREFIX}\"]")
            .collect();
        assert!(kept.len() < text.lines().count(), "no tags: lines found");
        self.project.write("devspace.yaml", kept.join("\n") + "\n");
        self
    }

    /// Another clone of this project: its files (without `.devspace/`) copied to a new folder,
    /// with a new empty `HOME` and a new `DOCKER_CONFIG` holding the same `config.json`, the
    /// same images (namespace, build args) and run arguments. What a teammate, a CI job or a
    /// second laptop has.
    pub fn clone_elsewhere(&self) -> Self {
        let project = TempProject::new();
        super::project::copy_dir(self.path(), project.path()).expect("copy the project");
        let _ = std::fs::remove_dir_all(project.join(".devspace"));
        let docker_config = temp_dir("devspace-test-docker-");
        std::fs::copy(
            self.docker_config.path().join("config.json"),
            docker_config.path().join("config.json"),
        )
        .expect("copy config.json");
        Project {
            project,
            docker_config,
            home: self.home.as_ref().map(|_| temp_dir("devspace-test-home-")),
            registry: self.registry.clone(),
            namespace: self.namespace.clone(),
            prefix: self.prefix.clone(),
            global_args: self.global_args.clone(),
            env: self.env.clone(),
        }
    }

    /// Stores `user`/`password` for the registry in `config.json` `auths`, as `docker login`.
    pub fn with_auths(self, user: &str, password: &str) -> Self {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let config = serde_json::json!({ "auths": { self.registry.clone(): { "auth": auth } } });
        std::fs::write(
            self.docker_config.path().join("config.json"),
            config.to_string(),
        )
        .expect("write config.json");
        self
    }

    /// Sets an environment variable for every run.
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs with `dir` first in `PATH` (stand-in CLIs), followed by the test's own `PATH` or,
    /// without `keep_system_path`, only the system directories.
    pub fn with_path(self, dir: &Path, keep_system_path: bool) -> Self {
        let rest = if keep_system_path {
            std::env::var("PATH").unwrap_or_default()
        } else {
            "/usr/local/bin:/usr/bin:/bin".to_owned()
        };
        self.with_env("PATH", format!("{}:{rest}", dir.display()))
    }

    /// The empty `HOME` of quickstart runs.
    pub fn home(&self) -> &Path {
        self.home
            .as_ref()
            .expect("only quickstart projects have their own HOME")
            .path()
    }

    /// The directory runs get as `DOCKER_CONFIG`.
    pub fn docker_config(&self) -> &Path {
        self.docker_config.path()
    }

    /// The project's root directory.
    pub fn path(&self) -> &Path {
        self.project.path()
    }

    /// A run in the project: its `DOCKER_CONFIG` and environment (quickstart: its empty
    /// `HOME`, no `KUBECONFIG`, `--var TAG_PREFIX`).
    pub fn devspace(&self) -> Devspace {
        self.devspace_in(self.project.path())
    }

    /// [`Project::devspace`] in another directory (e.g. a moved copy of the project).
    pub fn devspace_in(&self, dir: &Path) -> Devspace {
        let mut d = Devspace::new().current_dir(dir);
        if let Some(home) = &self.home {
            d = d.home(home.path());
        }
        d = d
            .env("DOCKER_CONFIG", self.docker_config.path())
            .args(&self.global_args);
        for (k, v) in &self.env {
            d = d.env(k, v);
        }
        d
    }

    /// `devspace COMMAND ARGS` against `fake`.
    pub fn run(&self, fake: &FakeKube, command: &str, args: &[&str]) -> Output {
        self.devspace()
            .kubeconfig(fake.kubeconfig())
            .arg(command)
            .args(args)
            .run()
    }

    /// `devspace build ARGS`.
    pub fn build(&self, args: &[&str]) -> Output {
        self.devspace().arg("build").args(args).run()
    }

    /// `<registry>/<namespace>/<key>` (the repository, without tag).
    pub fn repository(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.registry, self.namespace)
    }

    /// `<namespace>/<key>`, the repository inside the registry.
    pub fn repo(&self, key: &str) -> String {
        format!("{}/{key}", self.namespace)
    }

    /// The reference with the quickstart's configured tag (`TAG_PREFIX`).
    pub fn image(&self, key: &str) -> String {
        format!("{}:{}", self.repository(key), self.prefix)
    }

    /// `text` with the quickstart copy's unique parts replaced by stable words (for snapshots).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.namespace, "quickstart")
            .replace(&self.prefix, "[TAG]")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Only this project's references: the unique namespace is part of each. Removing a
        // reference removes the image only when no other reference names it; no other test's
        // image has this project's content (the unique build arg).
        let Ok(listed) = Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
        else {
            return;
        };
        let prefix = format!("{}/{}/", self.registry, self.namespace);
        for reference in String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|r| r.starts_with(&prefix))
        {
            let _ = Command::new("docker")
                .args(["rmi", "--no-prune", "-f", reference])
                .output();
        }
    }
}

/// What a local run of the quick start leaves in `examples/quickstart`: a cache recording tags
/// for the three images. Present while a [`StrayState`] is held.
pub const STRAY_CACHE: &str = "profiles:\n  \"\":\n    images:\n      api:\n        imageName: 127.0.0.1:5000/quickstart/api\n        tag: strayTag\n      worker:\n        imageName: 127.0.0.1:5000/quickstart/worker\n        tag: strayTag\n      web:\n        imageName: 127.0.0.1:5000/quickstart/web\n        tag: strayTag\n";

/// (holders, whether the holders created the state): the state is shared by concurrent tests.
static STRAY: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

/// Keeps a stray `examples/quickstart/.devspace/generated.yaml` ([`STRAY_CACHE`]) in the
/// working tree, as a user's run of `scripts/quickstart.sh` leaves it, to prove that copies of
/// the example never see it. Created only if there is no `.devspace/` yet, and then removed when
/// the last holder drops it; a user's own `.devspace/` is never touched.
pub struct StrayState(());

impl StrayState {
    pub fn hold() -> Self {
        let mut state = STRAY.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            let dir = super::project::repo_path("examples/quickstart/.devspace");
            state.1 = !dir.exists();
            if state.1 {
                std::fs::create_dir_all(&dir).expect("create the stray .devspace");
                std::fs::write(dir.join("generated.yaml"), STRAY_CACHE)
                    .expect("write the stray cache");
            }
        }
        state.0 += 1;
        StrayState(())
    }
}

impl Drop for StrayState {
    fn drop(&mut self) {
        let mut state = STRAY.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 && state.1 {
            let _ =
                std::fs::remove_dir_all(super::project::repo_path("examples/quickstart/.devspace"));
        }
    }
}
