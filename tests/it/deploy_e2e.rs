//! `devspace deploy` end to end against the fake Kubernetes API server, for what a real cluster
//! does not produce on demand: a missing `helm`, an unreachable server. The deploy itself (new
//! tags applied, the pull secret, Helm values, a second run unchanged) runs against the real API
//! server in `kube_real`.
//!
//! Every test has its own fake API server and quickstart copy (unique repositories and tag,
//! `HOME`, `DOCKER_CONFIG`; see `crate::support::quickstart`), so tests run in parallel.

use crate::support::harness::Project;
use crate::support::kube_fake::FakeKube;
use crate::support::registry::free_port;
use crate::support::stand_in::StandIns;

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
