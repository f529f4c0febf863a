//! A registry that misbehaves on demand: an HTTP proxy (axum) in front of a real
//! `docker-registry`, forwarding every request (the Docker daemon pushes through it as usual)
//! except the writes this tool makes itself, told apart by their `User-Agent`
//! (`devspace/…`): those can be refused with a status, or held until released, so a test can
//! interrupt the binary in the middle of a registry-side retag; and our reads of the content
//! cache's `devspace-cache-*` tags can be refused too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

struct ProxyState {
    upstream: String,
    own: String,
    client: reqwest::Client,
    /// Non-zero: the status our PUTs get.
    refuse_puts: AtomicU16,
    /// Non-zero: the status our reads of `devspace-cache-*` manifests get.
    refuse_cache_reads: AtomicU16,
    /// Our PUTs wait while set.
    hold_puts: AtomicBool,
    /// Our PUTs that are waiting (or waited).
    held: AtomicUsize,
}

/// A running proxy; stopped on drop.
pub struct RegistryProxy {
    state: Arc<ProxyState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RegistryProxy {
    /// A proxy on a free 127.0.0.1 port in front of the registry at `upstream` (`host:port`,
    /// plain http).
    pub fn start(upstream: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr: SocketAddr = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            own: addr.to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            refuse_puts: AtomicU16::new(0),
            refuse_cache_reads: AtomicU16::new(0),
            hold_puts: AtomicBool::new(false),
            held: AtomicUsize::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(forward).with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        RegistryProxy {
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT` of the proxy: the registry host images name.
    pub fn host(&self) -> String {
        self.state.own.clone()
    }

    /// Our manifest and blob writes get `status` (0: forwarded again).
    pub fn refuse_puts(&self, status: u16) {
        self.state.refuse_puts.store(status, Ordering::SeqCst);
    }

    /// Our lookups of `devspace-cache-*` tags get `status` (0: forwarded again).
    pub fn refuse_cache_reads(&self, status: u16) {
        self.state
            .refuse_cache_reads
            .store(status, Ordering::SeqCst);
    }

    /// Our writes wait (`true`) until released (`false`).
    pub fn hold_puts(&self, hold: bool) {
        self.state.hold_puts.store(hold, Ordering::SeqCst);
    }

    /// How many of our writes were held so far.
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.state.hold_puts.store(false, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ours = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("devspace/"));
    let cache_read =
        parts.method != Method::PUT && parts.uri.path().contains("/manifests/devspace-cache-");
    let refuse = match (ours, parts.method == Method::PUT, cache_read) {
        (true, true, _) => state.refuse_puts.load(Ordering::SeqCst),
        (true, false, true) => state.refuse_cache_reads.load(Ordering::SeqCst),
        _ => 0,
    };
    if refuse != 0 {
        let status = StatusCode::from_u16(refuse).unwrap_or(StatusCode::FORBIDDEN);
        let body = r#"{"errors":[{"code":"DENIED","message":"refused by the test proxy"}]}"#;
        return (status, body).into_response();
    }
    if ours && parts.method == Method::PUT && state.hold_puts.load(Ordering::SeqCst) {
        state.held.fetch_add(1, Ordering::SeqCst);
        while state.hold_puts.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{}{path}", state.upstream);
    let mut outgoing = state.client.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.body(bytes).send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        match name.as_str() {
            "connection" | "transfer-encoding" => {}
            "content-length" if parts.method != Method::HEAD => {}
            "location" => {
                let rewritten = value
                    .to_str()
                    .unwrap_or_default()
                    .replace(&state.upstream, &state.own);
                if let Ok(v) = HeaderValue::from_str(&rewritten) {
                    response.headers_mut().insert(name, v);
                }
            }
            _ => {
                response.headers_mut().append(name, value.clone());
            }
        }
    }
    response
}
