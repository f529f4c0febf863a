//! `devspace deploy` end to end: the real binary builds a copy of `examples/quickstart` with the
//! real Docker daemon, pushes to the htpasswd registry on 127.0.0.1:5001 (started by
//! `scripts/services.sh`; credentials in a temporary `DOCKER_CONFIG`), creates the pull secret
//! and applies the manifests to the fake Kubernetes API server, which the tests then read back.
//! Helm deployments run through a stand-in `helm` that records its argv and values file.
//!
//! Every test has its own fake API server and quickstart copy (unique repositories and tag,
//! `HOME`, `DOCKER_CONFIG`; see `crate::support::quickstart`), so tests run in parallel.

use crate::support::harness::SERVICES;
use crate::support::harness::{Project, container_image};
use crate::support::kube_fake::FakeKube;
use crate::support::registry::free_port;
use crate::support::stand_in::{HELM_COPYING_VALUES, StandIns};
use base64::Engine as _;
use serde_json::Value;

/// The htpasswd registry of `scripts/services.sh` and its test-only account.
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
const USER: &str = "devspace";
const PASSWORD: &str = "devspace-test";
const SECRET: &str = "devspace-auth-127-0-0-1-5001";

fn resource_version(fake: &FakeKube, name: &str) -> String {
    fake.get("apps/v1", "Deployment", fake.namespace(), name)
        .and_then(|d| d["metadata"]["resourceVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("deployment {name} has no resourceVersion"))
}

fn pull_secret_names(fake: &FakeKube) -> Vec<String> {
    let sa = fake
        .get("v1", "ServiceAccount", fake.namespace(), "default")
        .expect("default service account");
    sa["imagePullSecrets"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn deploy_pushes_applies_the_new_tags_and_creates_the_pull_secret_once() {
    require_services!();
    let fake = FakeKube::start();
    let q = Project::quickstart(AUTH_REGISTRY).with_auths(USER, PASSWORD);

    let first = q.run(&fake, "deploy", &[]);
    first.assert_success().assert_output_lacks(PASSWORD);
    for service in SERVICES {
        assert_eq!(
            container_image(&fake, service),
            q.image(service),
            "{}",
            first.describe()
        );
        first.assert_stderr_contains(&format!("[quickstart] deployment.apps/{service} created"));
        if service != "worker" {
            first.assert_stderr_contains(&format!("[quickstart] service/{service} created"));
        }
    }
    first.assert_stderr_contains("deployed");

    let secret = fake
        .get("v1", "Secret", fake.namespace(), SECRET)
        .unwrap_or_else(|| panic!("pull secret {SECRET} missing\n{}", first.describe()));
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let data = secret["data"][".dockerconfigjson"]
        .as_str()
        .expect(".dockerconfigjson");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(
        String::from_utf8(decoded).expect("utf-8"),
        format!(
            r#"{{"auths":{{"127.0.0.1:5001":{{"auth":"{auth}","email":"noreply@devspace.cloud"}}}}}}"#
        )
    );
    assert_eq!(pull_secret_names(&fake), [SECRET]);

    // Nothing changed: every object is reported unchanged and stays untouched.
    let versions: Vec<String> = SERVICES
        .iter()
        .map(|s| resource_version(&fake, s))
        .collect();
    let second = q.run(&fake, "deploy", &[]);
    second.assert_success();
    for service in SERVICES {
        second.assert_stderr_contains(&format!("[quickstart] deployment.apps/{service} unchanged"));
        if service != "worker" {
            second.assert_stderr_contains(&format!("[quickstart] service/{service} unchanged"));
        }
        second.assert_stderr_contains(&format!("[{service}] skip"));
    }
    let after: Vec<String> = SERVICES
        .iter()
        .map(|s| resource_version(&fake, s))
        .collect();
    assert_eq!(after, versions, "an unchanged apply changed the objects");
    assert_eq!(pull_secret_names(&fake), [SECRET], "{}", second.describe());

    // --skip-build deploys the tags recorded by the first build.
    fake.delete("apps/v1", "Deployment", fake.namespace(), "api")
        .expect("delete api");
    let skipped = q.run(&fake, "deploy", &["--skip-build"]);
    skipped.assert_success();
    assert!(
        !skipped.stderr.contains("[api] skip") && !skipped.stderr.contains("building"),
        "--skip-build ran the build\n{}",
        skipped.describe()
    );
    skipped.assert_stderr_contains("[quickstart] deployment.apps/api created");
    assert_eq!(container_image(&fake, "api"), q.image("api"));
}

/// Adds a Helm deployment of a local chart whose values name the api image (and mention it
/// in an env value, which must stay as written).
fn add_helm_deployment(q: &Project) {
    q.project.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: api-chart\nversion: 0.1.0\n",
    );
    let config = q.project.read("devspace.yaml");
    let helm = format!(
        "  - name: api-chart
    helm:
      chart:
        name: ./chart
      values:
        image: {repository}
        env:
          UPSTREAM: see {repository} docs
",
        repository = q.repository("api")
    );
    let config = config.replacen("\nprofiles:", &format!("{helm}\nprofiles:"), 1);
    q.project.write("devspace.yaml", config);
}

#[test]
fn helm_deployment_gets_the_replaced_image_in_its_values_file() {
    require_services!();
    let fake = FakeKube::start();
    let stand_ins = StandIns::new();
    stand_ins.install("helm", HELM_COPYING_VALUES);
    let q = Project::quickstart("127.0.0.1:5000").with_path(stand_ins.dir(), true);
    add_helm_deployment(&q);

    let out = q.run(&fake, "deploy", &["--skip-push"]);
    out.assert_success();
    let calls = stand_ins.calls("helm");
    assert_eq!(calls.len(), 1, "{}", out.describe());
    let argv = &calls[0];
    assert_eq!(argv[..3], ["upgrade", "--install", "api-chart"], "{argv:?}");
    assert_eq!(
        argv[3],
        q.project.join("chart").display().to_string(),
        "{argv:?}"
    );
    let ns = argv
        .iter()
        .position(|a| a == "--namespace")
        .expect("--namespace");
    assert_eq!(argv[ns + 1], fake.namespace());
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(stand_ins.dir().join("values.yaml")).expect("values file"),
    )
    .expect("values YAML");
    assert_eq!(values["image"], Value::from(q.image("api")), "{values}");
    assert_eq!(
        values["env"]["UPSTREAM"],
        Value::from(format!("see {} docs", q.repository("api"))),
        "an env value that merely mentions the image must not change"
    );
    out.assert_stderr_contains("[api-chart] deployed with helm: helm upgrade --install api-chart");
    // The kubectl deployment before it was applied too.
    assert_eq!(container_image(&fake, "api"), q.image("api"));
}

#[test]
fn missing_helm_is_a_clear_error() {
    let fake = FakeKube::start();
    let empty = StandIns::new();
    let q = Project::quickstart("127.0.0.1:5000").with_path(empty.dir(), false);
    add_helm_deployment(&q);

    let out = q.run(&fake, "deploy", &["--skip-build"]);
    out.assert_code(1)
        .assert_stderr_contains(
            "deployment `api-chart` needs the `helm` binary, which is not in PATH",
        )
        .assert_stderr_contains("install Helm 3");
}

#[test]
fn unreachable_cluster_exits_4_naming_context_and_server() {
    let q = Project::quickstart("127.0.0.1:5000");
    let port = free_port();
    let kubeconfig = q.home().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
  - name: lost
    cluster:
      server: http://127.0.0.1:{port}
users:
  - name: lost
    user:
      token: not-a-secret
contexts:
  - name: lost-context
    context:
      cluster: lost
      user: lost
      namespace: default
current-context: lost-context
"
        ),
    )
    .expect("write kubeconfig");
    let out = q
        .project
        .devspace()
        .home(q.home())
        .kubeconfig(&kubeconfig)
        .arg("deploy")
        .run();
    out.assert_code(4)
        .assert_stderr_contains("lost-context")
        .assert_stderr_contains(&format!("http://127.0.0.1:{port}"));
    assert!(
        !out.stderr.contains("building"),
        "it built before checking the cluster\n{}",
        out.describe()
    );
}
