//! A fake Kubernetes API server for tests (no cluster can run on these machines).
//!
//! [`FakeKube::start`] serves real HTTP on a free 127.0.0.1 port from its own thread and
//! runtime (so it keeps answering while a test blocks on the `devspace` binary) and writes a
//! kubeconfig (cluster, user with a bearer token, context, namespace) that kube-rs — or the
//! binary, through `KUBECONFIG` — uses exactly as for a real cluster.
//!
//! What it serves: discovery (`/version`, `/api`, `/apis`, resource lists), an in-memory store
//! with resourceVersions and the API's 404/409/422 semantics for the kinds in
//! [`discovery::RESOURCES`] (namespaces, pods, secrets, serviceaccounts, configmaps, services,
//! deployments, ...), list and `?watch=true` streams, merge / strategic / JSON patches,
//! server-side apply with field managers, pod logs (followed or not), and the exec websocket
//! (v4/v5 channel protocols) recording what arrives on stdin.
//!
//! Tests drive pods with [`PodStatus`] and [`PodScript`] (Pending → Running →
//! Succeeded/Failed, image-pull errors, unschedulable, slow starts), decide what execs answer
//! with [`FakeKube::on_exec`], and inspect objects, execs and the request log afterwards.

pub mod discovery;
pub mod exec;
mod http;
pub mod patch;
pub mod pods;
pub mod store;
mod tls;

pub use exec::{ExecRecord, ExecReply, ExecRequest, StdinMode};
pub use http::parse_query;
pub use pods::{PodScript, PodStatus, Step};
pub use store::{ApiError, EventType};

use discovery::ResourceType;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::Store;
use tokio::sync::{oneshot, watch};

/// One HTTP request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// URL path.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// `Content-Type` header (empty when absent).
    pub content_type: String,
}

impl RequestRecord {
    /// The value of a query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decides which script a newly created pod plays (`None`: it stays as created, Pending).
pub type PodHook = Arc<dyn Fn(&Value) -> Option<PodScript> + Send + Sync>;

/// Shared state of the server and the test-side handle.
pub(crate) struct State {
    store: Mutex<Store>,
    logs: Mutex<HashMap<(String, String, String), Vec<u8>>>,
    execs: Mutex<Vec<ExecRecord>>,
    requests: Mutex<Vec<RequestRecord>>,
    exec_handler: Mutex<exec::ExecHandler>,
    pod_hook: Mutex<Option<PodHook>>,
    /// Bumped after every change (objects, logs, execs): log followers and waiters wake up.
    changes: watch::Sender<u64>,
    token: String,
    exec_protocols: Vec<&'static str>,
    addr: SocketAddr,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock must not hide the original failure.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pods_rt() -> &'static ResourceType {
    discovery::find("", "v1", "pods").expect("pods are served")
}

impl State {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Runs a change on the store, wakes waiters and starts the scripts of created pods.
    pub(crate) fn mutate<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (result, created) = {
            let mut store = self.store();
            let before = store.resource_version();
            let result = f(&mut store);
            let created: Vec<Value> = store
                .history_since(pods_rt(), before)
                .into_iter()
                .filter(|e| e.kind == EventType::Added)
                .map(|e| e.object)
                .collect();
            (result, created)
        };
        self.bump();
        let hook = lock(&self.pod_hook).clone();
        if let Some(hook) = hook {
            for pod in created {
                if let Some(script) = hook(&pod) {
                    let state = self.clone();
                    self.runtime.spawn(run_script(state, pod, script));
                }
            }
        }
        result
    }

    pub(crate) fn log_request(&self, record: RequestRecord) {
        lock(&self.requests).push(record);
    }

    pub(crate) fn exec_handler(&self) -> exec::ExecHandler {
        lock(&self.exec_handler).clone()
    }

    pub(crate) fn finish_exec(&self, record: ExecRecord) {
        lock(&self.execs).push(record);
        self.bump();
    }

    pub(crate) fn log_text(&self, namespace: &str, pod: &str, container: &str) -> Vec<u8> {
        lock(&self.logs)
            .get(&(namespace.into(), pod.into(), container.into()))
            .cloned()
            .unwrap_or_default()
    }

    fn append_log(&self, namespace: &str, pod: &str, container: &str, text: &[u8]) {
        lock(&self.logs)
            .entry((namespace.into(), pod.into(), container.into()))
            .or_default()
            .extend_from_slice(text);
        self.bump();
    }

    fn finished_execs(&self, namespace: &str, pod: &str, container: &str) -> usize {
        lock(&self.execs)
            .iter()
            .filter(|e| {
                e.request.namespace == namespace
                    && e.request.pod == pod
                    && e.request.container == container
            })
            .count()
    }
}

fn first_container(pod: &Value) -> String {
    pods::container_names(pod)
        .1
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Plays `script` on `pod`; stops when the pod is deleted (or replaced by a namesake).
async fn run_script(state: Arc<State>, pod: Value, script: PodScript) {
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = pod["metadata"]["uid"].clone();
    let container_or_first =
        |c: &Option<String>| c.clone().unwrap_or_else(|| first_container(&pod));
    let alive = |state: &State| {
        state
            .store()
            .get(pods_rt(), &namespace, &name)
            .is_ok_and(|p| p["metadata"]["uid"] == uid)
    };
    // Execs into a namesake pod created earlier do not count for this one.
    let mut exec_base: HashMap<String, usize> = HashMap::new();
    for step in script.steps {
        if !alive(&state) {
            return;
        }
        match step {
            Step::Status(status) => {
                let changed = state.mutate(|s| {
                    s.update_with(pods_rt(), &namespace, &name, |p| {
                        p["status"] = status.render(p)
                    })
                });
                if changed.is_err() {
                    return;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Log { container, text } => {
                state.append_log(
                    &namespace,
                    &name,
                    &container_or_first(&container),
                    text.as_bytes(),
                );
            }
            Step::WaitExec { container, count } => {
                let container = container_or_first(&container);
                let base = *exec_base.entry(container.clone()).or_insert(0);
                let mut changes = state.changes.subscribe();
                loop {
                    changes.mark_unchanged();
                    if state.finished_execs(&namespace, &name, &container) >= base + count {
                        break;
                    }
                    if !alive(&state) || changes.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// How to start a [`FakeKube`].
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Bearer token the kubeconfig carries and the server requires.
    pub token: String,
    /// Namespace of the kubeconfig's context.
    pub namespace: String,
    /// Name of the kubeconfig's context (and cluster).
    pub context: String,
    /// Exec subprotocols the server accepts, in its order of preference.
    pub exec_protocols: Vec<&'static str>,
    /// Serve https with a throw-away CA (in the kubeconfig) instead of plain http.
    pub tls: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            token: "fake-token-not-a-secret".into(),
            namespace: "default".into(),
            context: "fake".into(),
            exec_protocols: exec::PROTOCOLS.to_vec(),
            tls: false,
        }
    }
}

/// A running fake API server; stopped when dropped.
pub struct FakeKube {
    state: Arc<State>,
    options: FakeOptions,
    ca_pem: Option<Vec<u8>>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKube {
    /// Starts a server with the default options (namespace `default`, context `fake`).
    pub fn start() -> Self {
        Self::start_with(FakeOptions::default())
    }

    /// Starts a server.
    pub fn start_with(options: FakeOptions) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-fake")
            .enable_all()
            .build()
            .expect("fake API server runtime");
        let (changes, _) = watch::channel(0);
        let state = Arc::new(State {
            store: Mutex::new(Store::new()),
            logs: Mutex::default(),
            execs: Mutex::default(),
            requests: Mutex::default(),
            exec_handler: Mutex::new(Arc::new(|_: &ExecRequest| ExecReply::ok())),
            pod_hook: Mutex::new(None),
            changes,
            token: options.token.clone(),
            exec_protocols: options.exec_protocols.clone(),
            addr,
            runtime: runtime.handle().clone(),
        });
        let router = http::router(state.clone());
        let dir = tempfile::Builder::new()
            .prefix("kube-fake-")
            .tempdir()
            .expect("kubeconfig directory");
        let tls = options.tls.then(|| tls::make(dir.path()));
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kube-fake".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let serve = async move {
                        match tls {
                            Some(tls) => {
                                let listener = tls::TlsListener {
                                    tcp: listener,
                                    acceptor: tls.acceptor,
                                };
                                axum::serve(listener, router).await
                            }
                            None => axum::serve(listener, router).await,
                        }
                    };
                    tokio::select! {
                        result = serve => result.expect("fake API server"),
                        _ = stopped => {}
                    }
                });
                // Open watches and log streams are cut, as when a cluster goes away.
                runtime.shutdown_background();
            })
            .expect("spawn fake API server thread");
        let kubeconfig = dir.path().join("kubeconfig");
        let fake = Self {
            state,
            options,
            ca_pem,
            dir,
            kubeconfig,
            stop: Some(stop),
            thread: Some(thread),
        };
        std::fs::write(&fake.kubeconfig, fake.kubeconfig_yaml()).expect("write kubeconfig");
        fake
    }

    /// `http://127.0.0.1:<port>` (`https://` with [`FakeOptions::tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.state.addr)
    }

    /// PEM of the CA behind the https certificate (`None` for plain http).
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// Path of the generated kubeconfig (for `KUBECONFIG`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A directory that lives as long as the server (for further kubeconfigs, say).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The kubeconfig's context name.
    pub fn context(&self) -> &str {
        &self.options.context
    }

    /// The kubeconfig's namespace.
    pub fn namespace(&self) -> &str {
        &self.options.namespace
    }

    /// The bearer token the server accepts (a test value, not a secret).
    pub fn token(&self) -> &str {
        &self.options.token
    }

    /// The kubeconfig document: one cluster, one user with a token, one context.
    pub fn kubeconfig_yaml(&self) -> String {
        use base64::Engine as _;
        let ca = match &self.ca_pem {
            Some(pem) => format!(
                "\n      certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
            None => String::new(),
        };
        let FakeOptions {
            token,
            namespace,
            context,
            ..
        } = &self.options;
        format!(
            "apiVersion: v1
kind: Config
clusters:
  - name: {context}
    cluster:
      server: {url}{ca}
users:
  - name: {context}-user
    user:
      token: {token}
contexts:
  - name: {context}
    context:
      cluster: {context}
      user: {context}-user
      namespace: {namespace}
current-context: {context}
preferences: {{}}
",
            url = self.url()
        )
    }

    /// A kube-rs client built from the kubeconfig file, as a user's program would.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kubeconfig to client config");
        kube::Client::try_from(config).expect("kube client")
    }

    fn resource(api_version: &str, kind: &str) -> &'static ResourceType {
        discovery::find_kind(api_version, kind)
            .unwrap_or_else(|| panic!("the fake does not serve {api_version} {kind}"))
    }

    /// One object (`("v1", "Pod", "default", "p")`); `None` when absent.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .store()
            .get(Self::resource(api_version, kind), namespace, name)
            .ok()
    }

    /// Objects of a kind, in one namespace or (`None`) all, sorted by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.state.store().list(
            Self::resource(api_version, kind),
            namespace,
            &store::Selectors::default(),
        )
    }

    /// Creates an object as a client would (its `apiVersion`, `kind` and
    /// `metadata.namespace`, default `default`).
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let rt = Self::resource(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        );
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        self.state.mutate(|s| s.create(rt, &namespace, object))
    }

    /// Changes an object in place (anything, status included) and records MODIFIED.
    pub fn update(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let rt = Self::resource(api_version, kind);
        self.state.mutate(|s| s.update_with(rt, namespace, name, f))
    }

    /// Deletes an object.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let rt = Self::resource(api_version, kind);
        self.state.mutate(|s| s.delete(rt, namespace, name))
    }

    /// Puts a pod into `status` (as its kubelet would).
    pub fn set_pod_status(
        &self,
        namespace: &str,
        pod: &str,
        status: &PodStatus,
    ) -> Result<Value, ApiError> {
        self.state.mutate(|s| {
            s.update_with(pods_rt(), namespace, pod, |p| {
                p["status"] = status.render(p)
            })
        })
    }

    /// Appends to a container's log (`None` = the pod's first container).
    pub fn append_log(&self, namespace: &str, pod: &str, container: Option<&str>, text: &str) {
        let container = match container {
            Some(c) => c.to_string(),
            None => self
                .get("v1", "Pod", namespace, pod)
                .map(|p| first_container(&p))
                .unwrap_or_default(),
        };
        self.state
            .append_log(namespace, pod, &container, text.as_bytes());
    }

    /// Runs `script` on every pod created from now on for which `hook` returns one.
    pub fn on_pod_created(
        &self,
        hook: impl Fn(&Value) -> Option<PodScript> + Send + Sync + 'static,
    ) {
        *lock(&self.state.pod_hook) = Some(Arc::new(hook));
    }

    /// Decides what execs do from now on (default: read stdin to its end, exit 0).
    pub fn on_exec(&self, handler: impl Fn(&ExecRequest) -> ExecReply + Send + Sync + 'static) {
        *lock(&self.state.exec_handler) = Arc::new(handler);
    }

    /// Every finished exec, oldest first.
    pub fn execs(&self) -> Vec<ExecRecord> {
        lock(&self.state.execs).clone()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.requests).clone()
    }

    /// The change history of a kind: (event type, object) pairs, oldest first.
    pub fn history(&self, api_version: &str, kind: &str) -> Vec<(EventType, Value)> {
        self.state
            .store()
            .history_since(Self::resource(api_version, kind), 0)
            .into_iter()
            .map(|e| (e.kind, e.object))
            .collect()
    }

    /// Waits until `done(self)` holds, re-checking after every change; panics after `within`
    /// naming `what` (a safety net against hangs, not a timing assertion).
    pub async fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Self) -> bool) {
        let mut changes = self.state.changes.subscribe();
        let until = tokio::time::Instant::now() + within;
        loop {
            changes.mark_unchanged();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(until, changes.changed())
                .await
                .is_err()
            {
                panic!("fake API server: waited {within:?} in vain for {what}");
            }
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
