//! The Kubernetes side of `crate::kube` against the fake API server: the client from a
//! kubeconfig (context and namespace selection, connection errors naming context and server),
//! image pull secrets (exact content, idempotence, updates, the `default` ServiceAccount patched
//! once, 409 conflicts retried), and the local-cluster adapters through stand-in `minikube` and
//! `kind` scripts.

use crate::support::kube_fake::{FakeKube, FakeOptions};
use crate::support::stand_in::StandIns;
use base64::Engine as _;
use devspace::config::{Config, DeploymentConfig, ImageConfig};
use devspace::kube::local::{KindLoad, kind_load, minikube_docker_env};
use devspace::kube::{
    KubeClient, KubeSettings, LazyKubeClient, PullSecretOptions, PullSecretReport, SecretAction,
    ensure_pull_secrets, plan_pull_secrets,
};
use devspace::process::Tools;
use devspace::registry::{Credential, Registry};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Generous bound for anything awaited: a hang fails the test instead of CI.
const LIMIT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

fn settings(kubeconfig: &std::path::Path) -> KubeSettings {
    KubeSettings {
        kubeconfig: Some(kubeconfig.to_owned()),
        ..KubeSettings::default()
    }
}

async fn client(fake: &FakeKube) -> KubeClient {
    KubeClient::from_settings(&settings(fake.kubeconfig()))
        .await
        .expect("client from the fake's kubeconfig")
}

/// Two images on a local registry and one on Docker Hub, deployments in `default` and `apps`.
fn project() -> Config {
    let mut config = Config::default();
    for (key, image) in [
        ("api", "localhost:5000/api"),
        ("web", "localhost:5000/web"),
        ("tool", "john/tool"),
        ("public", "quay.io/public/x"),
    ] {
        config.images.insert(
            key.into(),
            ImageConfig {
                image: image.into(),
                ..ImageConfig::default()
            },
        );
    }
    for (name, namespace) in [("backend", None), ("frontend", Some("apps"))] {
        config.deployments.push(DeploymentConfig {
            name: name.into(),
            namespace: namespace.map(Into::into),
            ..DeploymentConfig::default()
        });
    }
    config
}

const LOCAL_PASSWORD: &str = "s3cr3t-local";
const HUB_PASSWORD: &str = "s3cr3t-hub";

fn credentials(local_password: &str) -> Vec<(Registry, Credential)> {
    vec![
        (
            Registry::from_user_input("localhost:5000").expect("registry"),
            Credential::new("alice", local_password),
        ),
        (
            Registry::from_user_input("https://index.docker.io/v1/").expect("registry"),
            Credential::new("john", HUB_PASSWORD),
        ),
    ]
}

fn create_namespace(fake: &FakeKube, name: &str) {
    fake.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .expect("create namespace");
}

async fn ensure(fake: &FakeKube, local_password: &str) -> PullSecretReport {
    let client = client(fake).await;
    let plan = plan_pull_secrets(&project(), client.namespace(), &credentials(local_password));
    within(
        "ensure pull secrets",
        ensure_pull_secrets(&client, &plan, &PullSecretOptions::default()),
    )
    .await
}

/// Pull secrets for [`project`]'s images only into the client's namespace (no deployments).
async fn ensure_in_client_namespace(
    client: &KubeClient,
    options: &PullSecretOptions,
) -> PullSecretReport {
    let mut config = project();
    config.deployments.clear();
    let plan = plan_pull_secrets(&config, client.namespace(), &credentials(LOCAL_PASSWORD));
    within(
        "ensure pull secrets",
        ensure_pull_secrets(client, &plan, options),
    )
    .await
}

fn actions(report: &PullSecretReport) -> Vec<(String, String, SecretAction)> {
    report
        .secrets
        .iter()
        .map(|s| {
            let action = *s.result.as_ref().unwrap_or_else(|e| panic!("{s}: {e}"));
            (s.namespace.clone(), s.name.clone(), action)
        })
        .collect()
}

fn sa_pull_secrets(fake: &FakeKube, namespace: &str) -> Vec<String> {
    let sa = fake
        .get("v1", "ServiceAccount", namespace, "default")
        .expect("default service account");
    sa["imagePullSecrets"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn docker_config(fake: &FakeKube, namespace: &str, name: &str) -> String {
    let secret = fake
        .get("v1", "Secret", namespace, name)
        .unwrap_or_else(|| panic!("secret {namespace}/{name}"));
    let data = secret["data"][".dockerconfigjson"]
        .as_str()
        .expect(".dockerconfigjson");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64"),
    )
    .expect("utf-8")
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn pull_secrets_are_created_with_exact_content() {
    let fake = FakeKube::start();
    create_namespace(&fake, "apps");
    let report = ensure(&fake, LOCAL_PASSWORD).await;
    assert!(report.is_ok(), "{report:?}");
    let created = |ns: &str, name: &str| (ns.to_owned(), name.to_owned(), SecretAction::Created);
    assert_eq!(
        actions(&report),
        vec![
            created("default", "devspace-auth-localhost-5000"),
            created("apps", "devspace-auth-localhost-5000"),
            created("default", "devspace-auth-docker"),
            created("apps", "devspace-auth-docker"),
        ]
    );
    for namespace in ["default", "apps"] {
        assert_eq!(
            docker_config(&fake, namespace, "devspace-auth-localhost-5000"),
            format!(
                r#"{{"auths":{{"localhost:5000":{{"auth":"{}","email":"noreply@devspace.cloud"}}}}}}"#,
                b64(&format!("alice:{LOCAL_PASSWORD}"))
            )
        );
        assert_eq!(
            docker_config(&fake, namespace, "devspace-auth-docker"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}","email":"noreply@devspace.cloud"}}}}}}"#,
                b64(&format!("john:{HUB_PASSWORD}"))
            )
        );
        let secret = fake
            .get("v1", "Secret", namespace, "devspace-auth-docker")
            .expect("secret");
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(
            secret["data"].as_object().map(|d| d.len()),
            Some(1),
            "only .dockerconfigjson"
        );
        assert_eq!(secret["metadata"].get("labels"), None);
        assert_eq!(
            sa_pull_secrets(&fake, namespace),
            vec!["devspace-auth-localhost-5000", "devspace-auth-docker"]
        );
    }
    // quay.io has no credentials: no secret, and the report says why.
    assert!(
        fake.get("v1", "Secret", "default", "devspace-auth-quay-io")
            .is_none()
    );
    let plan = plan_pull_secrets(&project(), "default", &credentials(LOCAL_PASSWORD));
    assert_eq!(
        plan.skipped
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["no pull secret for registry quay.io: no username and password stored for it"]
    );
    // Nothing secret is ever shown.
    let shown = format!(
        "{report:?}\n{}\n{}",
        report
            .secrets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        report
            .service_accounts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for secret in [
        LOCAL_PASSWORD.to_owned(),
        HUB_PASSWORD.to_owned(),
        b64(&format!("alice:{LOCAL_PASSWORD}")),
    ] {
        assert!(!shown.contains(&secret), "{shown}");
    }
    assert!(
        shown.contains(
            "created image pull secret apps/devspace-auth-docker (registry hub.docker.com)"
        )
    );
}

#[tokio::test]
async fn changed_credentials_update_the_secret() {
    let fake = FakeKube::start();
    create_namespace(&fake, "apps");
    ensure(&fake, LOCAL_PASSWORD).await;
    let report = ensure(&fake, "rotated-password").await;
    let updated: Vec<_> = actions(&report)
        .into_iter()
        .map(|(ns, name, action)| (format!("{ns}/{name}"), action))
        .collect();
    assert_eq!(
        updated,
        vec![
            (
                "default/devspace-auth-localhost-5000".into(),
                SecretAction::Updated
            ),
            (
                "apps/devspace-auth-localhost-5000".into(),
                SecretAction::Updated
            ),
            (
                "default/devspace-auth-docker".into(),
                SecretAction::Unchanged
            ),
            ("apps/devspace-auth-docker".into(), SecretAction::Unchanged),
        ]
    );
    assert!(
        docker_config(&fake, "apps", "devspace-auth-localhost-5000")
            .contains(&b64("alice:rotated-password"))
    );
    assert_eq!(
        sa_pull_secrets(&fake, "apps"),
        vec!["devspace-auth-localhost-5000", "devspace-auth-docker"]
    );
}

#[tokio::test]
async fn service_account_keeps_its_secrets_and_gets_ours_once() {
    let fake = FakeKube::start();
    create_namespace(&fake, "apps");
    fake.update("v1", "ServiceAccount", "default", "default", |sa| {
        sa["imagePullSecrets"] = json!([{"name": "team-secret"}, {"name": "devspace-auth-docker"}]);
    })
    .expect("preset service account");
    let report = ensure(&fake, LOCAL_PASSWORD).await;
    let default_sa = report
        .service_accounts
        .iter()
        .find(|s| s.namespace == "default")
        .expect("default namespace outcome");
    assert_eq!(
        default_sa.result.as_ref().expect("patched"),
        &vec!["devspace-auth-localhost-5000".to_owned()]
    );
    assert_eq!(
        sa_pull_secrets(&fake, "default"),
        vec![
            "team-secret",
            "devspace-auth-docker",
            "devspace-auth-localhost-5000"
        ]
    );
}

#[tokio::test]
async fn missing_namespace_is_reported_per_secret() {
    let fake = FakeKube::start();
    // `apps` does not exist: its secrets fail, `default` ones succeed, nothing panics.
    let report = ensure(&fake, LOCAL_PASSWORD).await;
    assert!(!report.is_ok());
    for outcome in &report.secrets {
        match outcome.namespace.as_str() {
            "default" => assert_eq!(outcome.result.as_ref().ok(), Some(&SecretAction::Created)),
            _ => {
                let error = outcome
                    .result
                    .as_ref()
                    .expect_err("no namespace")
                    .to_string();
                assert!(error.contains("context `fake`"), "{error}");
                assert!(error.contains("404"), "{error}");
            }
        }
    }
    assert_eq!(
        report.service_accounts.len(),
        1,
        "only namespaces with a secret"
    );
}

/// A proxy in front of the fake that, on the first `PUT` of `default`'s ServiceAccount, changes
/// that account behind the client's back (as another writer would), then forwards the request:
/// the client's resourceVersion is stale and the fake answers 409.
async fn conflicting_proxy(fake: Arc<FakeKube>) -> String {
    let fired = Arc::new(AtomicBool::new(false));
    let upstream = fake.url();
    let handler = move |request: axum::extract::Request| {
        let fake = fake.clone();
        let fired = fired.clone();
        let upstream = upstream.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("request body");
            if parts.method == axum::http::Method::PUT
                && parts.uri.path() == "/api/v1/namespaces/default/serviceaccounts/default"
                && !fired.swap(true, Ordering::SeqCst)
            {
                fake.update("v1", "ServiceAccount", "default", "default", |sa| {
                    sa["metadata"]["annotations"] = json!({"other-writer": "was here"});
                })
                .expect("concurrent change");
            }
            let url = format!(
                "{upstream}{}",
                parts.uri.path_and_query().map_or("", |p| p.as_str())
            );
            let method =
                reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("method");
            let mut forward = reqwest::Client::new()
                .request(method, url)
                .body(body.to_vec());
            for (name, value) in &parts.headers {
                if name != axum::http::header::HOST {
                    forward = forward.header(name.as_str(), value.as_bytes());
                }
            }
            let answer = forward.send().await.expect("forward to the fake");
            let status = answer.status().as_u16();
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let bytes = answer.bytes().await.expect("upstream body");
            axum::response::Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(axum::body::Body::from(bytes))
                .expect("response")
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy port");
    let url = format!("http://{}", listener.local_addr().expect("proxy address"));
    let router = axum::Router::new().fallback(handler);
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_conflict_is_retried() {
    let fake = Arc::new(FakeKube::start());
    let proxy = conflicting_proxy(fake.clone()).await;
    let kubeconfig = fake.kubeconfig_yaml().replace(&fake.url(), &proxy);
    let path = fake.dir().join("via-proxy");
    std::fs::write(&path, kubeconfig).expect("kubeconfig");
    let client = KubeClient::from_settings(&settings(&path))
        .await
        .expect("client");
    let report = ensure_in_client_namespace(&client, &PullSecretOptions::default()).await;
    let sa = &report.service_accounts[0];
    assert_eq!(sa.conflicts, 1, "{sa}");
    assert_eq!(
        sa.result.as_ref().expect("patched after the retry"),
        &vec![
            "devspace-auth-localhost-5000".to_owned(),
            "devspace-auth-docker".to_owned()
        ]
    );
    let stored = fake
        .get("v1", "ServiceAccount", "default", "default")
        .expect("sa");
    // Both writes survive: the other writer's annotation and our secrets, each once.
    assert_eq!(
        stored["metadata"]["annotations"]["other-writer"],
        "was here"
    );
    assert_eq!(
        sa_pull_secrets(&fake, "default"),
        vec!["devspace-auth-localhost-5000", "devspace-auth-docker"]
    );
    let puts = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/serviceaccounts/default"))
        .count();
    assert_eq!(puts, 2, "one conflicting update, one retry");
}

#[tokio::test]
async fn unreachable_server_names_context_and_server() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n  - name: gone\n    cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n  - name: u\n    user: {{token: t0ken-value}}\ncontexts:\n  - name: gone\n    context: {{cluster: gone, user: u}}\n"
        ),
    )
    .expect("kubeconfig");
    let lazy = LazyKubeClient::new(settings(&path));
    let client = lazy.get().await.expect("building does not connect");
    let error = within("check", client.check_reachable())
        .await
        .expect_err("nothing listens")
        .to_string();
    assert!(
        error.starts_with(&format!(
            "cannot reach the Kubernetes API server http://127.0.0.1:{port} (context `gone`)"
        )),
        "{error}"
    );
    assert!(error.contains("\nhint: is the cluster running?"), "{error}");
    assert!(!error.contains("t0ken-value"));
    // The same message comes out of the pull-secret step.
    let plan = plan_pull_secrets(&project(), client.namespace(), &credentials(LOCAL_PASSWORD));
    let report = within(
        "ensure",
        ensure_pull_secrets(client, &plan, &PullSecretOptions::default()),
    )
    .await;
    let first = report.secrets[0].to_string();
    assert!(
        first.contains(&format!("http://127.0.0.1:{port} (context `gone`)")),
        "{first}"
    );
}

#[tokio::test]
async fn context_and_namespace_flags_select_the_cluster() {
    let fake = FakeKube::start();
    create_namespace(&fake, "team");
    // A second context pointing at a dead server is the current one; --kube-context picks
    // the fake's, -n the namespace.
    let yaml = fake
        .kubeconfig_yaml()
        .replace("current-context: fake", "current-context: dead");
    let mut kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
    let extra = kube::config::Kubeconfig::from_yaml(
        "clusters:\n  - name: dead\n    cluster: {server: 'http://127.0.0.1:9'}\ncontexts:\n  - name: dead\n    context: {cluster: dead}\n",
    )
    .expect("extra");
    kubeconfig.clusters.extend(extra.clusters);
    kubeconfig.contexts.extend(extra.contexts);
    let path = fake.dir().join("two-contexts");
    std::fs::write(&path, serde_json::to_string(&kubeconfig).expect("json")).expect("write");

    let current = KubeClient::from_settings(&settings(&path))
        .await
        .expect("client");
    assert_eq!(current.context(), "dead");
    assert_eq!(current.namespace(), "default");

    let chosen = KubeClient::from_settings(&KubeSettings {
        kube_context: Some("fake".into()),
        namespace: Some("team".into()),
        kubeconfig: Some(path.clone()),
    })
    .await
    .expect("client");
    assert_eq!(chosen.context(), "fake");
    assert_eq!(chosen.server(), fake.url());
    assert_eq!(chosen.namespace(), "team");
    assert!(
        !within("existing", chosen.ensure_namespace("team"))
            .await
            .expect("exists")
    );
    assert!(
        within("fresh", chosen.ensure_namespace("fresh"))
            .await
            .expect("created")
    );
    assert!(fake.get("v1", "Namespace", "", "fresh").is_some());
    within("reachable", chosen.check_reachable())
        .await
        .expect("the fake answers");
    let report = ensure_in_client_namespace(&chosen, &PullSecretOptions::default()).await;
    assert!(report.is_ok(), "{report:?}");
    assert!(
        fake.get("v1", "Secret", "team", "devspace-auth-docker")
            .is_some()
    );
    assert!(
        fake.get("v1", "Secret", "default", "devspace-auth-docker")
            .is_none()
    );

    let unknown = KubeClient::from_settings(&KubeSettings {
        kube_context: Some("fak".into()),
        namespace: None,
        kubeconfig: Some(path),
    })
    .await
    .expect_err("unknown context")
    .to_string();
    assert!(
        unknown.contains("kube context `fak` does not exist"),
        "{unknown}"
    );
    assert!(unknown.contains("did you mean `fake`?"), "{unknown}");
}

#[tokio::test]
async fn minikube_docker_env_runs_minikube_for_the_profile() {
    let stand_ins = StandIns::new();
    stand_ins.install(
        "minikube",
        "printf 'DOCKER_TLS_VERIFY=1\\nDOCKER_HOST=tcp://192.168.49.2:2376\\nDOCKER_CERT_PATH=/home/u/.minikube/certs\\nMINIKUBE_ACTIVE_DOCKERD=dev2\\n'",
    );
    let tools = Tools::with_path(stand_ins.dir());
    let env = minikube_docker_env(&tools, "dev2")
        .await
        .expect("docker-env");
    assert_eq!(
        stand_ins.calls("minikube"),
        vec![vec!["docker-env", "--shell", "none", "-p", "dev2"]]
    );
    assert_eq!(env["DOCKER_HOST"], "tcp://192.168.49.2:2376");
    assert_eq!(env["DOCKER_CERT_PATH"], "/home/u/.minikube/certs");
    assert_eq!(env["DOCKER_TLS_VERIFY"], "1");

    let failing = StandIns::new();
    failing.install(
        "minikube",
        "echo '* Profile \"dev3\" not found.' >&2; exit 85",
    );
    let error = minikube_docker_env(&Tools::with_path(failing.dir()), "dev3")
        .await
        .expect_err("failing minikube")
        .to_string();
    assert!(
        error.starts_with("cannot use the Docker daemon of minikube profile `dev3`: `minikube docker-env --shell none -p dev3` failed (exit status: 85):\n* Profile \"dev3\" not found."),
        "{error}"
    );

    let silent = StandIns::new();
    silent.install("minikube", "true");
    let error = minikube_docker_env(&Tools::with_path(silent.dir()), "p")
        .await
        .expect_err("no DOCKER_HOST")
        .to_string();
    assert!(error.contains("printed no DOCKER_HOST"), "{error}");
}

#[tokio::test]
async fn kind_load_runs_kind_when_installed() {
    let stand_ins = StandIns::new();
    let images = vec![
        "localhost:5000/app:abcde".to_owned(),
        "localhost:5000/app:latest".to_owned(),
    ];
    assert_eq!(
        kind_load(&Tools::with_path(stand_ins.dir()), &images, "dev")
            .await
            .expect("kind missing is not an error"),
        KindLoad::KindMissing
    );
    stand_ins.install("kind", "echo 'Image loaded'");
    assert_eq!(
        kind_load(&Tools::with_path(stand_ins.dir()), &images, "dev")
            .await
            .expect("kind load"),
        KindLoad::Loaded
    );
    assert_eq!(
        stand_ins.calls("kind"),
        vec![vec![
            "load",
            "docker-image",
            "localhost:5000/app:abcde",
            "localhost:5000/app:latest",
            "--name",
            "dev"
        ]]
    );
    let failing = StandIns::new();
    failing.install(
        "kind",
        "echo 'ERROR: no nodes found for cluster \"dev\"' >&2; exit 1",
    );
    let error = kind_load(&Tools::with_path(failing.dir()), &images[..1], "dev")
        .await
        .expect_err("failing kind")
        .to_string();
    assert!(
        error.starts_with("cannot load localhost:5000/app:abcde into kind cluster `dev`: `kind load docker-image localhost:5000/app:abcde --name dev` failed"),
        "{error}"
    );
    assert!(error.contains("no nodes found"), "{error}");
}

#[tokio::test]
async fn missing_service_account_is_reported_after_the_wait() {
    let fake = FakeKube::start();
    fake.delete("v1", "ServiceAccount", "default", "default")
        .expect("delete the default service account");
    let client = client(&fake).await;
    let options = PullSecretOptions {
        service_account_wait: Duration::ZERO,
        ..PullSecretOptions::default()
    };
    let report = ensure_in_client_namespace(&client, &options).await;
    assert!(
        report.secrets.iter().all(|s| s.result.is_ok()),
        "{report:?}"
    );
    let sa = report.service_accounts[0].to_string();
    assert!(
        sa.starts_with("adding pull secrets to service account default/default failed (context `fake`): service account `default` not found in namespace `default`"),
        "{sa}"
    );
}

#[tokio::test]
async fn https_cluster_and_the_context_namespace() {
    require_services!();
    let fake = FakeKube::start_with(FakeOptions {
        tls: true,
        namespace: "team".into(),
        context: "secure".into(),
        ..FakeOptions::default()
    });
    assert!(fake.url().starts_with("https://"));
    let client = client(&fake).await;
    assert_eq!(client.context(), "secure");
    assert_eq!(
        client.namespace(),
        "team",
        "the context's namespace is the default"
    );
    assert!(
        within("ensure namespace", client.ensure_namespace("team"))
            .await
            .expect("created over https")
    );
    let report = ensure_in_client_namespace(&client, &PullSecretOptions::default()).await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        sa_pull_secrets(&fake, "team"),
        vec!["devspace-auth-localhost-5000", "devspace-auth-docker"]
    );
}
