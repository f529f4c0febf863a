//! Local clusters from the command line: `devspace deploy` against the fake API server under a
//! kubeconfig context named like a kind or minikube cluster. Stand-in `kind` and `minikube`
//! CLIs record their argv; a plain `docker-registry` on a free port shows by its tag lists
//! whether anything was pushed. The images are built by the real Docker daemon.

use crate::support::harness::{Project, SERVICES, container_image};
use crate::support::kube_fake::{FakeKube, FakeOptions};
use crate::support::registry::{TestRegistry, without_cache_tag};
use crate::support::stand_in::StandIns;

fn fake_with_context(context: &str) -> FakeKube {
    FakeKube::start_with(FakeOptions {
        context: context.into(),
        ..FakeOptions::default()
    })
}

/// The registry path of `service` (the repository without the registry host).
fn repo_path(q: &Project, service: &str) -> String {
    format!("{}/{service}", q.namespace)
}

#[test]
fn deploy_to_kind_loads_images_into_the_nodes_instead_of_pushing() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let fake = fake_with_context("kind-dev");
    let stand_ins = StandIns::new();
    stand_ins.install("kind", "exit 0");
    let q = Project::quickstart(&registry.host()).with_path(stand_ins.dir(), true);

    let first = q.run(&fake, "deploy", &[]);
    first.assert_success();
    first.assert_stderr_contains(
        r#"kind cluster "dev": loaded image into the nodes instead of pushing"#,
    );
    let mut calls = stand_ins.calls("kind");
    calls.sort();
    let mut expected: Vec<Vec<String>> = SERVICES
        .iter()
        .map(|s| {
            ["load", "docker-image", &q.image(s), "--name", "dev"]
                .map(str::to_owned)
                .to_vec()
        })
        .collect();
    expected.sort();
    assert_eq!(calls, expected, "{}", first.describe());
    for service in SERVICES {
        assert_eq!(
            registry.tags(&repo_path(&q, service)),
            Vec::<String>::new(),
            "{service} was pushed\n{}",
            first.describe()
        );
        assert_eq!(container_image(&fake, service), q.image(service));
    }

    // Unchanged: verified in the daemon (not the registry, where it never was) and skipped.
    let second = q.run(&fake, "deploy", &[]);
    second.assert_success();
    second.assert_stderr_contains(r#"kind cluster "dev": image unchanged; not pushed"#);
    assert_eq!(
        stand_ins.calls("kind").len(),
        SERVICES.len(),
        "{}",
        second.describe()
    );
    for service in SERVICES {
        assert_eq!(registry.tags(&repo_path(&q, service)), Vec::<String>::new());
    }
}

#[test]
fn build_under_a_kind_context_still_pushes() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let fake = fake_with_context("kind-dev");
    let stand_ins = StandIns::new();
    stand_ins.install("kind", "exit 0");
    let q = Project::quickstart(&registry.host()).with_path(stand_ins.dir(), true);

    let out = q.run(&fake, "build", &[]);
    out.assert_success();
    assert!(stand_ins.calls("kind").is_empty(), "{}", out.describe());
    for service in SERVICES {
        assert_eq!(
            without_cache_tag(service, registry.tags(&repo_path(&q, service))),
            vec![q.prefix.clone()],
            "{service}\n{}",
            out.describe()
        );
    }
}

#[test]
fn deploy_to_minikube_builds_with_its_daemon_and_does_not_push() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let fake = fake_with_context("minikube");
    let stand_ins = StandIns::new();
    // TLS settings are ignored for a unix socket, as by the Docker CLI.
    stand_ins.install(
        "minikube",
        "printf 'DOCKER_TLS_VERIFY=1\\nDOCKER_HOST=unix:///var/run/docker.sock\\nDOCKER_CERT_PATH=/nonexistent/certs\\nMINIKUBE_ACTIVE_DOCKERD=minikube\\n'",
    );
    let q = Project::quickstart(&registry.host()).with_path(stand_ins.dir(), true);
    // Without minikube's daemon the build must fail here, not fall back to kaniko.
    let config = q.project.read("devspace.yaml");
    q.project.write(
        "devspace.yaml",
        config.replace(
            "      docker:\n",
            "      docker:\n        disableFallback: true\n",
        ),
    );

    // The process's own DOCKER_HOST leads nowhere: only minikube's daemon can build.
    let out = q
        .devspace()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .kubeconfig(fake.kubeconfig())
        .arg("deploy")
        .run();
    out.assert_success();
    out.assert_stderr_contains(
        r#"minikube profile "minikube": built with its Docker daemon instead of pushing"#,
    );
    let calls = stand_ins.calls("minikube");
    assert!(!calls.is_empty(), "{}", out.describe());
    for call in &calls {
        assert_eq!(call, &["docker-env", "--shell", "none", "-p", "minikube"]);
    }
    for service in SERVICES {
        assert_eq!(
            registry.tags(&repo_path(&q, service)),
            Vec::<String>::new(),
            "{service} was pushed\n{}",
            out.describe()
        );
        assert_eq!(container_image(&fake, service), q.image(service));
    }
}
