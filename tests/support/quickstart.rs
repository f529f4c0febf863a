//! A copy of `examples/quickstart` for end-to-end tests of render, deploy and dev: its images
//! moved to a unique repository namespace (`<registry>/quickstart-<hex>/<service>`) with a
//! unique `TAG_PREFIX`, its own empty `HOME` and `DOCKER_CONFIG`, so tests run in parallel
//! against the same daemon and registries. The images it leaves in the daemon are removed on
//! drop.

use base64::Engine as _;
use std::path::Path;

use super::kube_fake::FakeKube;
use super::project::{Devspace, Output, TempProject};

/// The quickstart's image keys, in config order.
pub const SERVICES: [&str; 3] = ["api", "worker", "web"];

/// The files of the quickstart that name the images.
const IMAGE_FILES: [&str; 4] = [
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

/// A quickstart copy (see the module doc).
pub struct Quickstart {
    pub project: TempProject,
    home: tempfile::TempDir,
    docker_config: tempfile::TempDir,
    /// `127.0.0.1:5000` or `127.0.0.1:5001`.
    pub registry: String,
    /// `quickstart-<hex>`: replaces `quickstart` in every image name.
    pub namespace: String,
    /// The `TAG_PREFIX` every run gets.
    pub prefix: String,
    path_env: Option<String>,
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory")
}

impl Quickstart {
    /// A copy whose images live in `registry`.
    pub fn new(registry: &str) -> Self {
        let project = TempProject::from_fixture("examples/quickstart");
        let unique = format!("{:08x}", rand::random::<u32>());
        let namespace = format!("quickstart-{unique}");
        for file in IMAGE_FILES {
            let text = project.read(file);
            project.write(
                file,
                text.replace(
                    "127.0.0.1:5000/quickstart/",
                    &format!("{registry}/{namespace}/"),
                ),
            );
        }
        let docker_config = temp_dir("devspace-qs-docker-");
        std::fs::write(docker_config.path().join("config.json"), "{}\n").expect("config.json");
        Quickstart {
            project,
            home: temp_dir("devspace-qs-home-"),
            docker_config,
            registry: registry.to_owned(),
            namespace,
            prefix: format!("t{unique}"),
            path_env: None,
        }
    }

    /// Drops every image's `tags:`, so each build gets a fresh random tag.
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

    /// Runs with `dir` first in `PATH` (stand-in CLIs), followed by the test's own `PATH` or,
    /// without `keep_system_path`, only the system directories.
    pub fn with_path(mut self, dir: &Path, keep_system_path: bool) -> Self {
        let rest = if keep_system_path {
            std::env::var("PATH").unwrap_or_default()
        } else {
            "/usr/local/bin:/usr/bin:/bin".to_owned()
        };
        self.path_env = Some(format!("{}:{rest}", dir.display()));
        self
    }

    /// The empty `HOME` every run gets.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A run in the project: its HOME and DOCKER_CONFIG, no KUBECONFIG, `--var TAG_PREFIX`.
    pub fn devspace(&self) -> Devspace {
        let mut d = self
            .project
            .devspace()
            .home(self.home.path())
            .env("DOCKER_CONFIG", self.docker_config.path())
            .arg("--var")
            .arg(format!("TAG_PREFIX={}", self.prefix));
        if let Some(path) = &self.path_env {
            d = d.env("PATH", path);
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

    /// `<registry>/<namespace>/<service>` (the repository, without tag).
    pub fn repository(&self, service: &str) -> String {
        format!("{}/{}/{service}", self.registry, self.namespace)
    }

    /// The reference with the configured tag (`TAG_PREFIX`).
    pub fn image(&self, service: &str) -> String {
        format!("{}:{}", self.repository(service), self.prefix)
    }

    /// `text` with this copy's unique parts replaced by stable words (for snapshots).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.namespace, "quickstart")
            .replace(&self.prefix, "[TAG]")
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let Ok(listed) = std::process::Command::new("docker")
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
            let _ = std::process::Command::new("docker")
                .args(["rmi", "--no-prune", "-f", reference])
                .output();
        }
    }
}
