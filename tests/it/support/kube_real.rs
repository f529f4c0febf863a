//! The real Kubernetes control plane `scripts/kube-up.sh` starts on loopback (etcd,
//! kube-apiserver, kube-controller-manager; with `DEVSPACE_KUBE_NODE=1` also a scheduler and a
//! kubelet), for tests that must meet real validation, server-side apply, discovery and RBAC.
//!
//! Its admin kubeconfig is found through `DEVSPACE_TEST_KUBECONFIG`, else at the path kube-up
//! prints ([`DEFAULT_KUBECONFIG`]). When it is missing or the server does not answer, a test
//! fails with one line saying how to start it.
//!
//! Every [`RealKube`] owns a fresh namespace (`devspace-it-<hex>`, with its `default`
//! ServiceAccount already made by the controller manager) and a kubeconfig whose context points
//! at it; the namespace (and with it every object a test left) is deleted on drop. Tests read
//! objects back through [`RealKube::get`] and friends, which use kube-rs directly (no `kubectl`
//! on the machine is assumed).

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope, pinned_kind};
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where `scripts/kube-up.sh` writes the admin kubeconfig (its default state directory).
pub const DEFAULT_KUBECONFIG: &str = "/var/lib/devspace-kube/admin.kubeconfig";

/// The admin kubeconfig of the test cluster: `DEVSPACE_TEST_KUBECONFIG` or [`DEFAULT_KUBECONFIG`].
pub fn admin_kubeconfig() -> PathBuf {
    std::env::var_os("DEVSPACE_TEST_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG), PathBuf::from)
}

/// Fails the test with the one line that says how to get the cluster.
fn missing(why: &str) -> ! {
    panic!(
        "no Kubernetes test cluster ({why}): start it with `bash scripts/kube-up.sh` (or set DEVSPACE_TEST_KUBECONFIG)"
    )
}

/// Runs `fut` to completion on a runtime of its own, on a scoped thread: callable from plain
/// tests and from inside `#[tokio::test]` alike.
pub fn block<T: Send>(fut: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(fut)
        })
        .join()
        .expect("kube helper thread")
    })
}

/// A kube-rs client for `kubeconfig` (its current context).
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let text = std::fs::read_to_string(kubeconfig)
        .unwrap_or_else(|e| missing(&format!("{}: {e}", kubeconfig.display())));
    let config: kube::config::Kubeconfig = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("parse {}: {e}", kubeconfig.display()));
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    kube::Client::try_from(config).expect("kube client")
}

/// `api_version` split into group and version (`v1` is the core group).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// The API of `kind` (namespaced in `namespace` when the kind is), found by discovery.
pub async fn dynamic_api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> (Api<DynamicObject>, ApiResource) {
    let (group, version) = group_version(api_version);
    let (resource, caps) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .unwrap_or_else(|e| panic!("discovery of {api_version} {kind}: {e}"));
    let api = match (caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    (api, resource)
}

fn to_value(object: DynamicObject) -> Value {
    serde_json::to_value(object).expect("object as JSON")
}

/// A fresh namespace on the test cluster and a kubeconfig whose context uses it.
pub struct RealKube {
    admin: PathBuf,
    namespace: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// Further namespaces a test created through [`RealKube::extra_namespace`].
    extra: std::sync::Mutex<Vec<String>>,
}

impl RealKube {
    /// Connects to the test cluster (failing with how to start it when there is none) and
    /// creates this test's namespace.
    pub fn start() -> Self {
        let admin = admin_kubeconfig();
        if !admin.exists() {
            missing(&format!("{} does not exist", admin.display()));
        }
        let unique = format!("{:08x}", rand::random::<u32>());
        let namespace = format!("devspace-it-{unique}");
        let dir = tempfile::Builder::new()
            .prefix("devspace-kube-real-")
            .tempdir()
            .expect("temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        let kube = RealKube {
            admin,
            namespace,
            dir,
            kubeconfig,
            extra: std::sync::Mutex::default(),
        };
        let yaml = kube.kubeconfig_in(&kube.namespace);
        std::fs::write(&kube.kubeconfig, yaml).expect("write kubeconfig");
        let admin = kube.admin.clone();
        block(async move {
            let client = client_for(&admin).await;
            if let Err(e) = client.apiserver_version().await {
                missing(&format!("{} does not answer: {e}", admin.display()));
            }
        });
        kube.create_namespace(&kube.namespace.clone());
        kube
    }

    /// The admin kubeconfig's text with the context's namespace set to `namespace`.
    pub fn kubeconfig_in(&self, namespace: &str) -> String {
        let text = std::fs::read_to_string(&self.admin).expect("read admin kubeconfig");
        let mut config: Value = serde_saphyr::from_str(&text).expect("admin kubeconfig YAML");
        for context in config["contexts"].as_array_mut().expect("contexts") {
            context["context"]["namespace"] = Value::from(namespace);
        }
        // JSON is YAML: every kubeconfig reader takes it.
        serde_json::to_string_pretty(&config).expect("kubeconfig JSON")
    }

    /// Creates namespace `name` (deleted on drop) and waits for its `default` ServiceAccount.
    pub fn extra_namespace(&self, name: &str) {
        self.create_namespace(name);
        self.extra.lock().expect("extra").push(name.to_owned());
    }

    /// Deletes namespace `name` on drop (one the binary is expected to create).
    pub fn forget_later(&self, name: &str) {
        self.extra.lock().expect("extra").push(name.to_owned());
    }

    fn create_namespace(&self, name: &str) {
        let created = self.create(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"devspace-test": "true"}},
        }));
        assert!(created.is_ok(), "create namespace {name}: {created:?}");
        self.wait_for(
            "the default ServiceAccount",
            Duration::from_secs(60),
            || self.get("v1", "ServiceAccount", name, "default"),
        );
    }

    /// Fails the test with one line unless a node is Ready (Level 2 of kube-up).
    pub fn require_node(&self) {
        let admin = self.admin.clone();
        let ready = block(async move {
            let client = client_for(&admin).await;
            let nodes: Api<Node> = Api::all(client);
            let list = nodes.list(&Default::default()).await.expect("list nodes");
            list.items.iter().any(|node| {
                node.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        });
        assert!(
            ready,
            "the test cluster has no Ready node: start one with `DEVSPACE_KUBE_NODE=1 bash scripts/kube-up.sh`"
        );
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kubeconfig (admin user) whose current context uses [`RealKube::namespace`].
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin kubeconfig kube-up wrote.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin
    }

    /// A directory removed on drop, for more kubeconfigs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The object, or `None` when the server answers 404.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let admin = self.admin.clone();
        block(async move {
            let client = client_for(&admin).await;
            let (api, _) = dynamic_api(&client, api_version, kind, Some(namespace)).await;
            api.get_opt(name)
                .await
                .unwrap_or_else(|e| panic!("get {kind} {namespace}/{name}: {e}"))
                .map(to_value)
        })
    }

    /// Every object of `kind` in `namespace`.
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        let admin = self.admin.clone();
        block(async move {
            let client = client_for(&admin).await;
            let (api, _) = dynamic_api(&client, api_version, kind, Some(namespace)).await;
            api.list(&Default::default())
                .await
                .unwrap_or_else(|e| panic!("list {kind} in {namespace}: {e}"))
                .items
                .into_iter()
                .map(to_value)
                .collect()
        })
    }

    /// Creates `object` as the admin; the server's answer or its error status.
    pub fn create(&self, object: Value) -> Result<Value, Box<kube::core::Status>> {
        let admin = self.admin.clone();
        block(async move {
            let client = client_for(&admin).await;
            let api_version = object["apiVersion"].as_str().expect("apiVersion");
            let kind = object["kind"].as_str().expect("kind");
            let namespace = object["metadata"]["namespace"].as_str();
            let (api, _) = dynamic_api(&client, api_version, kind, namespace).await;
            let object: DynamicObject = serde_json::from_value(object.clone()).expect("object");
            match api.create(&PostParams::default(), &object).await {
                Ok(created) => Ok(to_value(created)),
                Err(kube::Error::Api(status)) => Err(status),
                Err(e) => panic!("create {kind}: {e}"),
            }
        })
    }

    /// Deletes the object (no error when it is already gone).
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let admin = self.admin.clone();
        block(async move {
            let client = client_for(&admin).await;
            let (api, _) = dynamic_api(&client, api_version, kind, Some(namespace)).await;
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => panic!("delete {kind} {namespace}/{name}: {e}"),
            }
        });
    }

    /// Polls `probe` until it returns `Some`, failing the test after `limit`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not there within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A kubeconfig for the ServiceAccount `account` of the test namespace (a token from the
    /// TokenRequest API), its context in `namespace`.
    pub fn service_account_kubeconfig(&self, account: &str, namespace: &str) -> PathBuf {
        let admin = self.admin.clone();
        let ns = self.namespace.clone();
        let account_owned = account.to_owned();
        let token = block(async move {
            let client = client_for(&admin).await;
            let api: Api<ServiceAccount> = Api::namespaced(client, &ns);
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            };
            let answer = api
                .create_token_request(&account_owned, &PostParams::default(), &request)
                .await
                .unwrap_or_else(|e| panic!("token for {account_owned}: {e}"));
            answer
                .status
                .expect("token in the TokenRequest answer")
                .token
        });
        let mut config: Value =
            serde_json::from_str(&self.kubeconfig_in(namespace)).expect("kubeconfig JSON");
        config["users"] = json!([{"name": account, "user": {"token": token}}]);
        for context in config["contexts"].as_array_mut().expect("contexts") {
            context["context"]["user"] = Value::from(account);
        }
        let path = self.dir.path().join(format!("{account}.kubeconfig"));
        std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json"))
            .expect("write kubeconfig");
        path
    }
}

impl Drop for RealKube {
    fn drop(&mut self) {
        let mut namespaces = vec![self.namespace.clone()];
        namespaces.extend(self.extra.lock().map(|e| e.clone()).unwrap_or_default());
        let admin = self.admin.clone();
        block(async move {
            let client = client_for(&admin).await;
            let api: Api<Namespace> = Api::all(client);
            for ns in namespaces {
                let _ = api.delete(&ns, &DeleteParams::background()).await;
            }
        });
    }
}
