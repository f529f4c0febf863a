//! Deploying against the fake API server and a stand-in `helm`: rendered kubectl objects applied
//! by server-side apply (created, then unchanged, then configured; namespace defaulting; field
//! manager `devspace`; an unknown kind failing alone), and Helm deployments run as `helm upgrade
//! --install` with the rendered values file.

use crate::support::kube_fake::FakeKube;
use crate::support::project::TempProject;
use crate::support::stand_in::{HELM_COPYING_VALUES, StandIns};
use devspace::config::{
    Config, DeploymentConfig, HelmChart, HelmDeployment, ImageConfig, KubectlDeployment,
};
use devspace::deploy::apply::{
    ApplyAction, ApplyResult, FIELD_MANAGER, apply_objects, apply_rendered,
};
use devspace::deploy::helm_run::{HelmRelease, HelmRunError, run_helm};
use devspace::deploy::{ImageTable, ImageTag, RenderedDeployment, RenderedKind, render_deployment};
use devspace::kube::{KubeClient, KubeSettings};
use devspace::process::Tools;
use indexmap::IndexMap;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Generous bound for anything awaited: a hang fails the test instead of CI.
const LIMIT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

async fn client(fake: &FakeKube) -> KubeClient {
    KubeClient::from_settings(&KubeSettings {
        kubeconfig: Some(fake.kubeconfig().to_owned()),
        ..KubeSettings::default()
    })
    .await
    .expect("client")
}

const MANIFESTS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels: {team: web}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: localhost:5000/web
";

/// The objects of [`rendered`] (deployment without a namespace).
fn rendered_objects(
    project: &TempProject,
    manifests: &str,
) -> Vec<devspace::deploy::ManifestObject> {
    match rendered(project, manifests, None).kind {
        RenderedKind::Kubectl { objects } => objects,
        RenderedKind::Helm { .. } => panic!("kubectl deployment rendered as helm"),
    }
}

/// A project with one kubectl deployment of `manifests` (in `namespace`) and the image
/// `localhost:5000/web` built with tag `abcde`, rendered.
fn rendered(project: &TempProject, manifests: &str, namespace: Option<&str>) -> RenderedDeployment {
    std::fs::write(project.path().join("k8s.yaml"), manifests).expect("manifest");
    let mut config = Config::default();
    config.images.insert(
        "web".into(),
        ImageConfig {
            image: "localhost:5000/web".into(),
            ..ImageConfig::default()
        },
    );
    let deployment = DeploymentConfig {
        name: "web".into(),
        namespace: namespace.map(Into::into),
        kubectl: Some(KubectlDeployment {
            manifests: vec!["k8s.yaml".into()],
            ..KubectlDeployment::default()
        }),
        ..DeploymentConfig::default()
    };
    let tags: IndexMap<String, ImageTag> = [("web".to_owned(), ImageTag::new("abcde"))].into();
    let table = ImageTable::new(&config, &tags, false);
    render_deployment(&deployment, project.path(), &table).expect("render")
}

fn summary(results: &[ApplyResult]) -> Vec<String> {
    results.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn apply_creates_then_reports_unchanged_then_configured() {
    let fake = FakeKube::start();
    let project = TempProject::new();
    let objects = rendered_objects(&project, MANIFESTS);
    let client = client(&fake).await;

    let first = within("apply", apply_objects(&client, "default", &objects)).await;
    assert_eq!(
        summary(&first),
        vec![
            "namespace/apps created",
            "configmap/settings created (namespace default)",
            "deployment.apps/web created (namespace apps)",
        ]
    );
    let deployment = fake
        .get("apps/v1", "Deployment", "apps", "web")
        .expect("deployment applied");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "localhost:5000/web:abcde",
        "the rendered tag is applied"
    );
    assert_eq!(
        deployment["metadata"]["managedFields"][0]["manager"],
        FIELD_MANAGER
    );
    let apply_requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(apply_requests.len(), 3);
    for request in &apply_requests {
        assert_eq!(request.content_type, "application/apply-patch+yaml");
        assert_eq!(request.param("fieldManager"), Some("devspace"));
        assert_eq!(request.param("force"), Some("true"));
    }

    let second = within("apply again", apply_objects(&client, "default", &objects)).await;
    assert_eq!(
        summary(&second),
        vec![
            "namespace/apps unchanged",
            "configmap/settings unchanged (namespace default)",
            "deployment.apps/web unchanged (namespace apps)",
        ]
    );

    let changed = rendered_objects(&project, &MANIFESTS.replace("mode: fast", "mode: safe"));
    let third = within("apply changed", apply_objects(&client, "default", &changed)).await;
    let actions: Vec<_> = third
        .iter()
        .map(|r| *r.outcome.as_ref().expect("ok"))
        .collect();
    assert_eq!(
        actions,
        vec![
            ApplyAction::Unchanged,
            ApplyAction::Configured,
            ApplyAction::Unchanged
        ]
    );
    let config_map = fake
        .get("v1", "ConfigMap", "default", "settings")
        .expect("configmap");
    assert_eq!(config_map["data"]["mode"], "safe");
}

#[tokio::test]
async fn namespaced_objects_default_to_the_given_namespace() {
    let fake = FakeKube::start();
    fake.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .expect("namespace");
    let project = TempProject::new();
    let objects = rendered_objects(
        &project,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: default}\n",
    );
    let client = client(&fake).await;
    let results = within("apply", apply_objects(&client, "team", &objects)).await;
    assert_eq!(
        summary(&results),
        vec![
            "configmap/a created (namespace team)",
            "configmap/b created (namespace default)",
        ]
    );
    assert!(fake.get("v1", "ConfigMap", "team", "a").is_some());
    assert!(fake.get("v1", "ConfigMap", "default", "a").is_none());
    assert!(fake.get("v1", "ConfigMap", "default", "b").is_some());

    // A rendered deployment goes to its own namespace, else the client's (`default` here).
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let in_team = within(
        "apply",
        apply_rendered(&client, &rendered(&project, text, Some("team"))),
    )
    .await;
    assert_eq!(
        summary(&in_team),
        vec!["configmap/c created (namespace team)"]
    );
    let in_default = within(
        "apply",
        apply_rendered(&client, &rendered(&project, text, None)),
    )
    .await;
    assert_eq!(
        summary(&in_default),
        vec!["configmap/c created (namespace default)"]
    );
}

#[tokio::test]
async fn unreachable_cluster_is_reported_per_object() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let project = TempProject::new();
    let objects = rendered_objects(
        &project,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&format!(
        "current-context: lost\nclusters:\n  - name: lost\n    cluster: {{server: 'http://127.0.0.1:{port}'}}\ncontexts:\n  - name: lost\n    context: {{cluster: lost}}\n"
    ))
    .expect("kubeconfig");
    let client = KubeClient::from_kubeconfig(kubeconfig, &KubeSettings::default())
        .await
        .expect("client");
    let results = within("apply", apply_objects(&client, "default", &objects)).await;
    let error = results[0].to_string();
    assert!(
        error.contains(&format!(
            "cannot reach the Kubernetes API server http://127.0.0.1:{port} (context `lost`)"
        )),
        "{error}"
    );
}

fn helm_deployment(chart: HelmChart, wait: bool) -> DeploymentConfig {
    DeploymentConfig {
        name: "app".into(),
        namespace: Some("apps".into()),
        helm: Some(HelmDeployment {
            chart: Some(chart),
            wait: wait.then_some(true),
            timeout: wait.then(|| json!(90)),
            ..HelmDeployment::default()
        }),
        ..DeploymentConfig::default()
    }
}

#[tokio::test]
async fn helm_runs_upgrade_install_with_the_rendered_values() {
    let stand_ins = StandIns::new();
    stand_ins.install("helm", HELM_COPYING_VALUES);
    let release = HelmRelease::from_config(
        &helm_deployment(
            HelmChart {
                name: "web".into(),
                version: Some("1.2.3".into()),
                repo: Some("https://charts.example.com".into()),
                ..HelmChart::default()
            },
            true,
        ),
        Path::new("/project"),
        "default",
        Some("kind-dev"),
    )
    .expect("release");
    let values = "image:\n  repository: localhost:5000/web\n  tag: abcde\n";
    let output = run_helm(&Tools::with_path(stand_ins.dir()), &release, values)
        .await
        .expect("helm");
    assert!(output.stdout.contains("Happy Helming"));
    let calls = stand_ins.calls("helm");
    assert_eq!(calls.len(), 1);
    let argv = &calls[0];
    let values_path = argv
        .iter()
        .position(|a| a == "--values")
        .map(|i| argv[i + 1].clone())
        .expect("--values");
    assert_eq!(
        argv,
        &vec![
            "upgrade",
            "--install",
            "app",
            "web",
            "--namespace",
            "apps",
            "--values",
            values_path.as_str(),
            "--version",
            "1.2.3",
            "--repo",
            "https://charts.example.com",
            "--timeout",
            "90s",
            "--kube-context",
            "kind-dev",
            "--wait",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(stand_ins.dir().join("values.yaml")).expect("copied values"),
        values
    );
    assert!(
        !Path::new(&values_path).exists(),
        "the temporary values file is removed"
    );
    assert_eq!(output.command, format!("helm {}", argv.join(" ")));
}

#[tokio::test]
async fn helm_missing_or_failing_is_explained() {
    let empty = StandIns::new();
    let release = HelmRelease::from_config(
        &helm_deployment(
            HelmChart {
                name: "web".into(),
                username: Some("u".into()),
                password: Some("hunter2-secret".into()),
                ..HelmChart::default()
            },
            false,
        ),
        Path::new("/project"),
        "default",
        None,
    )
    .expect("release");
    let missing = run_helm(&Tools::with_path(empty.dir()), &release, "{}\n")
        .await
        .expect_err("no helm");
    assert!(matches!(missing, HelmRunError::HelmMissing { .. }));
    assert_eq!(
        missing.to_string(),
        "deployment `app` needs the `helm` binary, which is not in PATH\nhint: install Helm 3 (https://helm.sh/docs/intro/install/)"
    );

    let failing = StandIns::new();
    failing.install(
        "helm",
        r#"prev=""
for a in "$@"; do
  if [ "$prev" = "--password" ]; then pw="$a"; fi
  prev="$a"
done
echo "Error: failed to log in with password $pw" >&2
exit 1"#,
    );
    let error = run_helm(&Tools::with_path(failing.dir()), &release, "{}\n")
        .await
        .expect_err("helm fails")
        .to_string();
    assert!(
        error.starts_with(
            "deployment `app`: `helm upgrade --install app web --namespace apps --values "
        ),
        "{error}"
    );
    assert!(error.contains("--username u --password ***"), "{error}");
    assert!(
        error.contains("Error: failed to log in with password ***"),
        "{error}"
    );
    assert!(!error.contains("hunter2-secret"), "{error}");
    // The real argv did carry the password.
    assert!(failing.calls("helm")[0].contains(&"hunter2-secret".to_owned()));
}
