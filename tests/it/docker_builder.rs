//! Builders against the real Docker daemon (Engine 20.10 here), a real `docker-registry`
//! started per test, and real processes: Engine API builds, the `docker build` CLI path
//! (classic and BuildKit), pushes with credentials, the custom builder, cancellation and
//! cleanup, and a streamed context whose size does not show up in our memory.
#![allow(clippy::print_stdout, clippy::print_stderr)] // reports measurements

use std::collections::HashMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveImageOptionsBuilder};
use bytes::Bytes;
use devspace::builder::docker::{
    ConnectOptions, DockerEndpoint, DockerEnv, EndpointSource, resolve_endpoint,
};
use devspace::builder::{
    BuildError, BuildEvent, BuildOutcome, BuildRequest, ContextBody, CustomBuilder, DaemonError,
    DockerApiBuilder, DockerCliBuilder, DockerDaemon, EventSink, ImageBuilder, PushError,
    PushRequest,
};
use devspace::config::model::CustomConfig;
use devspace::exit::ExitCode;
use futures_util::StreamExt as _;
use indexmap::IndexMap;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;

/// Bound for waits that must end long before it if the feature works (a hang guard, not a
/// speed assertion).
const HANG_GUARD: Duration = Duration::from_secs(180);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test run, usable as image name and label value.
fn unique(prefix: &str) -> String {
    format!(
        "devspace-test-{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

async fn daemon() -> DockerDaemon {
    DockerDaemon::connect()
        .await
        .expect("the Docker daemon of this machine answers")
}

/// An in-memory tar of `files` (path, content, mode), handed out in small chunks so the
/// builders see a real stream.
fn tar_context(files: &[(&str, &[u8], u32)]) -> ContextBody {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, path, *content)
            .expect("tar entry");
    }
    let bytes = builder.into_inner().expect("tar finish");
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(700)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

fn request(key: &str, repository: &str, tags: &[&str]) -> BuildRequest {
    BuildRequest {
        image_key: key.to_string(),
        repository: repository.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        dockerfile: "Dockerfile".to_string(),
        ..Default::default()
    }
}

fn drain(rx: &mut UnboundedReceiver<BuildEvent>) -> Vec<BuildEvent> {
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events
}

/// Runs builds to the end without cancelling them.
trait RunToEnd: ImageBuilder {
    /// The build's result and every event it sent.
    async fn run_to_end(
        &self,
        request: &BuildRequest,
        context: Option<ContextBody>,
    ) -> (Result<BuildOutcome, BuildError>, Vec<BuildEvent>) {
        let (tx, mut rx) = unbounded_channel();
        let result = self
            .build(
                request,
                context,
                &EventSink::channel(tx),
                &CancellationToken::new(),
            )
            .await;
        (result, drain(&mut rx))
    }
}

impl<T: ImageBuilder + ?Sized> RunToEnd for T {}

fn logs(events: &[BuildEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Log(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// Containers (running or not) carrying `label=value`.
async fn labeled_containers(daemon: &DockerDaemon, label: &str, value: &str) -> usize {
    let filters = HashMap::from([("label", vec![format!("{label}={value}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    daemon
        .client()
        .list_containers(Some(options))
        .await
        .expect("list containers")
        .len()
}

/// Containers with the label after the daemon has had a moment to finish its own cleanup: when
/// the docker CLI is killed, the daemon removes the step container asynchronously, so the
/// property is "none left", not "none at this instant".
async fn labeled_containers_settled(daemon: &DockerDaemon, label: &str, value: &str) -> usize {
    let mut n = labeled_containers(daemon, label, value).await;
    for _ in 0..60 {
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        n = labeled_containers(daemon, label, value).await;
    }
    n
}

async fn remove_images(daemon: &DockerDaemon, references: &[String]) {
    let options = RemoveImageOptionsBuilder::new().force(true).build();
    for r in references {
        let _ = daemon
            .client()
            .remove_image(r, Some(options.clone()), None)
            .await;
    }
}

async fn image_labels(daemon: &DockerDaemon, reference: &str) -> HashMap<String, String> {
    daemon
        .client()
        .inspect_image(reference)
        .await
        .expect("inspect image")
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default()
}

/// A Dockerfile whose every container carries `devspace-test=<mark>`, so leftovers of this
/// test (and only this test) can be counted.
fn labeled_dockerfile(mark: &str, body: &str) -> String {
    format!("FROM busybox:latest\nLABEL devspace-test={mark}\n{body}")
}

#[tokio::test]
async fn api_build_applies_every_tag_and_reports_steps() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("api-tags");
    let mark = unique("mark");
    let dockerfile = labeled_dockerfile(
        &mark,
        "COPY hello.txt /hello.txt\nRUN grep -q 'hello context' /hello.txt && echo built-ok\n",
    );
    let context = tar_context(&[
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("hello.txt", b"hello context\n", 0o644),
    ]);
    let req = request("api", &repo, &["v1", "second"]);
    let before = labeled_containers(&daemon, "devspace-test", &mark).await;
    let (outcome, events) = DockerApiBuilder::new(daemon.clone())
        .run_to_end(&req, Some(context))
        .await;
    let outcome = outcome.expect("build succeeds");

    let refs = [format!("{repo}:v1"), format!("{repo}:second")];
    assert_eq!(outcome.references, refs);
    let id = outcome.image_id.clone().expect("aux.ID reported");
    assert!(id.starts_with("sha256:"), "{id}");
    for r in &refs {
        assert!(daemon.image_exists(r).await.unwrap(), "{r} exists");
    }
    let steps: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Step { n, m, .. } => Some((*n, *m)),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    assert!(logs(&events).iter().any(|l| l == "built-ok"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, BuildEvent::ContextSent { bytes } if *bytes > 1024))
    );
    assert_eq!(
        labeled_containers(&daemon, "devspace-test", &mark).await,
        before,
        "rm/forcerm leave no step containers"
    );
    remove_images(&daemon, &refs).await;
    assert!(!daemon.image_exists(&refs[0]).await.unwrap());
}

#[tokio::test]
async fn api_build_failure_carries_last_lines_and_leaves_no_containers() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("api-fail");
    let mark = unique("mark");
    let dockerfile = labeled_dockerfile(
        &mark,
        "RUN echo line-before-failure && echo the-last-words && exit 3\n",
    );
    let context = tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)]);
    let err = DockerApiBuilder::new(daemon.clone())
        .run_to_end(&request("failing", &repo, &["v1"]), Some(context))
        .await
        .0
        .expect_err("RUN exits 3");
    let BuildError::Failed {
        image,
        message,
        last_lines,
    } = &err
    else {
        panic!("expected Failed, got {err:?}");
    };
    assert_eq!(image, "failing");
    assert!(message.contains("non-zero code: 3"), "{message}");
    assert!(
        last_lines.iter().any(|l| l == "the-last-words"),
        "{last_lines:?}"
    );
    assert!(err.to_string().contains("failing"));
    assert_eq!(
        labeled_containers(&daemon, "devspace-test", &mark).await,
        0,
        "forcerm removes the failed step's container"
    );
    assert!(!daemon.image_exists(&format!("{repo}:v1")).await.unwrap());
}

#[tokio::test]
async fn api_build_honours_build_args_target_network_and_labels() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("api-args");
    // The unique label keeps the step cache from hiding the RUN output on reruns.
    let dockerfile = format!(
        "\
FROM busybox:latest AS base
LABEL run={}
ARG GREETING=default-greeting
ARG UNSET_ARG=kept-default
LABEL greeting=$GREETING unset=$UNSET_ARG
RUN test \"$(ls /sys/class/net)\" = \"lo\" && echo only-loopback

FROM base AS broken
RUN echo this stage must not run && exit 1
",
        unique("run")
    );
    let mut req = request("args", &repo, &["v1"]);
    req.build_args = IndexMap::from([
        ("GREETING".to_string(), Some("hello-from-arg".to_string())),
        ("UNSET_ARG".to_string(), None),
    ]);
    req.target = Some("base".to_string());
    req.network = Some("none".to_string());
    req.labels = IndexMap::from([("org.example.built-by".to_string(), "devspace".to_string())]);
    let (outcome, events) = DockerApiBuilder::new(daemon.clone())
        .run_to_end(
            &req,
            Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        )
        .await;
    outcome.expect("target `base` builds; the broken stage is never reached");
    let reference = format!("{repo}:v1");
    let labels = image_labels(&daemon, &reference).await;
    assert_eq!(
        labels.get("greeting").map(String::as_str),
        Some("hello-from-arg")
    );
    assert_eq!(
        labels.get("unset").map(String::as_str),
        Some("kept-default")
    );
    assert_eq!(
        labels.get("org.example.built-by").map(String::as_str),
        Some("devspace")
    );
    let lines = logs(&events);
    assert!(lines.iter().any(|l| l == "only-loopback"), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("must not run")),
        "{lines:?}"
    );
    remove_images(&daemon, &[reference]).await;
}

/// Runs `builder` and cancels it once a log line contains `marker`; checks that the build
/// came back as cancelled (long before the hang guard) after that line was seen.
async fn build_and_cancel_on(
    builder: &dyn ImageBuilder,
    request: &BuildRequest,
    context: Option<ContextBody>,
    marker: &'static str,
) {
    let cancel = CancellationToken::new();
    let (tx, mut rx) = unbounded_channel();
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            while let Some(event) = rx.recv().await {
                if matches!(&event, BuildEvent::Log(l) if l.contains(marker)) {
                    cancel.cancel();
                    return true;
                }
            }
            false
        }
    });
    let started = Instant::now();
    let result = tokio::time::timeout(
        HANG_GUARD,
        builder.build(request, context, &EventSink::channel(tx), &cancel),
    )
    .await
    .expect("a cancelled build returns instead of waiting for its `sleep 600`");
    eprintln!("cancelled build returned after {:?}", started.elapsed());
    assert!(
        watcher.await.unwrap(),
        "`{marker}` arrived before the cancel"
    );
    let err = result.expect_err("cancelled");
    assert!(matches!(err, BuildError::Cancelled { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Interrupted);
}

#[tokio::test]
async fn api_build_cancelled_mid_run_stops_and_leaves_no_containers() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("api-cancel");
    let mark = unique("mark");
    let dockerfile = labeled_dockerfile(&mark, "RUN echo now-sleeping && sleep 600\n");
    build_and_cancel_on(
        &DockerApiBuilder::new(daemon.clone()),
        &request("sleepy", &repo, &["v1"]),
        Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        "now-sleeping",
    )
    .await;
    // The builder removes the step container it saw before returning; once (of many runs, on
    // a machine at load 12) the daemon still listed one at that instant, so the property
    // checked is "none left" after the daemon's own asynchronous teardown, as for the CLI.
    let at_return = labeled_containers(&daemon, "devspace-test", &mark).await;
    if at_return > 0 {
        eprintln!("{at_return} labelled container(s) still listed when the build returned");
    }
    assert_eq!(
        labeled_containers_settled(&daemon, "devspace-test", &mark).await,
        0,
        "no container of the cancelled build is left"
    );
    assert!(!daemon.image_exists(&format!("{repo}:v1")).await.unwrap());
}

/// Counts what the daemon has read of an endless context and notices when the body is dropped.
struct EndlessBody {
    read: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl Drop for EndlessBody {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A tar context that never ends: a Dockerfile, then a file header claiming 1 TiB followed
/// by zeros for as long as anyone reads.
fn endless_context(dockerfile: &str) -> (ContextBody, Arc<AtomicU64>, Arc<AtomicBool>) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    let mut big = tar::Header::new_gnu();
    big.set_path("big.bin").unwrap();
    big.set_size(1 << 40);
    big.set_mode(0o644);
    big.set_cksum();
    let mut head = builder.get_ref().clone();
    head.extend_from_slice(big.as_bytes());
    let read = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let state = EndlessBody {
        read: read.clone(),
        dropped: dropped.clone(),
    };
    let zeros = Bytes::from(vec![0u8; 1 << 20]);
    let body = futures_util::stream::iter(std::iter::once(Ok(Bytes::from(head)))).chain(
        futures_util::stream::unfold(state, move |state| {
            let chunk = zeros.clone();
            async move {
                state.read.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                Some((Ok(chunk), state))
            }
        }),
    );
    (Box::pin(body), read, dropped)
}

/// Ctrl-C while the context is still being sent (a huge context): the build returns as
/// cancelled and the body is dropped, so nothing goes on reading the context.
#[tokio::test]
async fn api_build_cancelled_while_sending_the_context_stops_reading_it() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("api-cancel-send");
    let (context, read, dropped) = endless_context("FROM busybox:latest\n");
    let cancel = CancellationToken::new();
    let canceller = tokio::spawn({
        let cancel = cancel.clone();
        let read = read.clone();
        async move {
            while read.load(Ordering::SeqCst) < 64 << 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel();
        }
    });
    let (tx, _rx) = unbounded_channel();
    let started = Instant::now();
    let result = tokio::time::timeout(
        HANG_GUARD,
        DockerApiBuilder::new(daemon.clone()).build(
            &request("big", &repo, &["v1"]),
            Some(context),
            &EventSink::channel(tx),
            &cancel,
        ),
    )
    .await
    .expect("a build cancelled while sending its context returns");
    canceller.await.unwrap();
    eprintln!(
        "returned {:?} after start, {} MiB of the context read",
        started.elapsed(),
        read.load(Ordering::SeqCst) >> 20
    );
    let err = result.expect_err("cancelled");
    assert!(matches!(err, BuildError::Cancelled { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Interrupted);
    let returned = Instant::now();
    let at_return = read.load(Ordering::SeqCst);
    while !dropped.load(Ordering::SeqCst) && returned.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "dropped: {} after {:?}, {} MiB read after return",
        dropped.load(Ordering::SeqCst),
        returned.elapsed(),
        (read.load(Ordering::SeqCst) - at_return) >> 20
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the context body is dropped once the build returns: nothing reads it any more"
    );
    assert!(!daemon.image_exists(&format!("{repo}:v1")).await.unwrap());
}

/// A context whose producer fails after a first valid entry: the build must fail with the
/// producer's error instead of building what arrived.
fn failing_context(dockerfile: &str) -> ContextBody {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    // Only the entry, without the end-of-archive blocks a clean finish would add.
    let entry = builder.get_ref().clone();
    Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from(entry)),
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "open src/secret.txt: permission denied",
        )),
    ]))
}

#[tokio::test]
async fn builds_abort_when_the_context_producer_fails() {
    require_services!();
    let daemon = daemon().await;
    let api = DockerApiBuilder::new(daemon.clone());
    let cli = DockerCliBuilder::new(false, vec![]).with_daemon(daemon.clone());
    for (name, builder) in [("api", &api as &dyn ImageBuilder), ("cli", &cli)] {
        let repo = unique(&format!("{name}-ctx-err"));
        let err = builder
            .run_to_end(
                &request("ctx", &repo, &["v1"]),
                Some(failing_context(
                    "FROM busybox:latest\nRUN echo should-not-build\n",
                )),
            )
            .await
            .0
            .expect_err("a broken context must not build");
        let BuildError::Context { source, .. } = &err else {
            panic!("{name}: expected Context, got {err:?}");
        };
        assert!(source.to_string().contains("secret.txt"), "{source}");
        assert!(!daemon.image_exists(&format!("{repo}:v1")).await.unwrap());
    }
}

#[tokio::test]
async fn builders_without_a_context_say_so() {
    require_services!();
    let daemon = daemon().await;
    let req = request("noctx", "x", &["v1"]);
    let builder = DockerApiBuilder::new(daemon);
    assert!(builder.needs_context());
    let err = builder
        .build(&req, None, &EventSink::discard(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::MissingContext { .. }), "{err:?}");
}

#[tokio::test]
async fn image_exists_is_false_for_unknown_images() {
    require_services!();
    let daemon = daemon().await;
    assert!(daemon.image_exists("busybox:latest").await.unwrap());
    assert!(
        !daemon
            .image_exists(&format!("{}:nope", unique("missing")))
            .await
            .unwrap()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn unreachable_daemon_is_a_typed_error_with_a_hint() {
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let err = DockerDaemon::connect_to(
        DockerEndpoint::from_host(host.clone()),
        ConnectOptions::default(),
    )
    .await
    .expect_err("nothing listens there");
    assert!(matches!(err, DaemonError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&host), "{err}");
    assert_eq!(
        err.hint().as_deref(),
        Some(format!("is the Docker daemon running? (DOCKER_HOST={host})").as_str())
    );
    assert_eq!(err.exit_code(), ExitCode::Unreachable);

    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix://{}/docker.sock", dir.path().display());
    let err = DockerDaemon::connect_to(
        DockerEndpoint::from_host(socket.clone()),
        ConnectOptions::default(),
    )
    .await
    .expect_err("no socket there");
    assert!(matches!(err, DaemonError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&socket), "{err}");
}

#[tokio::test]
async fn connects_through_docker_host_tcp_and_unix() {
    require_services!();
    // The local daemon through an explicit unix:// DOCKER_HOST value.
    let daemon = DockerDaemon::connect_to(
        DockerEndpoint::from_host("unix:///var/run/docker.sock"),
        ConnectOptions::default(),
    )
    .await
    .expect("unix socket");
    assert!(daemon.image_exists("busybox:latest").await.unwrap());
    let version = daemon.client().client_version();
    assert_eq!(
        (version.major_version, version.minor_version),
        (1, 41),
        "negotiated down to this daemon's API"
    );

    // tcp:// to a forwarder in front of the same socket.
    let port = tcp_forwarder().await;
    let daemon = DockerDaemon::connect_to(
        DockerEndpoint::from_host(format!("tcp://127.0.0.1:{port}")),
        ConnectOptions::default(),
    )
    .await
    .expect("tcp forwarder");
    assert!(daemon.image_exists("busybox:latest").await.unwrap());
}

/// A TCP port forwarding to the local daemon's unix socket.
async fn tcp_forwarder() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect("/var/run/docker.sock").await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    port
}

/// Like [`tcp_forwarder`], and records the request line of every HTTP request the client sends
/// (`POST /v1.41/build?... HTTP/1.1`); body bytes never look like one.
async fn recording_forwarder() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = lines.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let lines = recorded.clone();
            tokio::spawn(async move {
                let Ok(unix) = tokio::net::UnixStream::connect("/var/run/docker.sock").await else {
                    return;
                };
                let (mut tcp_read, mut tcp_write) = tcp.into_split();
                let (mut unix_read, mut unix_write) = unix.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut unix_read, &mut tcp_write).await;
                });
                let mut line = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = tcp_read.read(&mut buf).await {
                    if n == 0 || unix_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    for &b in &buf[..n] {
                        if b != b'\n' {
                            if line.len() < 8192 {
                                line.push(b);
                            }
                            continue;
                        }
                        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                        line.clear();
                        let method = ["GET /", "POST /", "DELETE /", "HEAD /", "PUT /"]
                            .iter()
                            .any(|m| text.starts_with(m));
                        if method && text.ends_with(" HTTP/1.1") {
                            lines.lock().unwrap().push(text);
                        }
                    }
                }
                let _ = unix_write.shutdown().await;
            });
        }
    });
    (port, lines)
}

/// The daemon applies all tags as part of the one `/build` request (`t` repeated), so there is
/// no moment after the build in which the image lacks a tag: no separate tag request is made.
#[tokio::test]
async fn api_build_sends_every_tag_in_the_build_request() {
    require_services!();
    let (port, requests) = recording_forwarder().await;
    let daemon = DockerDaemon::connect_to(
        DockerEndpoint::from_host(format!("tcp://127.0.0.1:{port}")),
        ConnectOptions::default(),
    )
    .await
    .expect("the daemon through the recording forwarder");
    let repo = unique("api-one-request");
    let mark = unique("mark");
    let dockerfile = labeled_dockerfile(&mark, "");
    let context = tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)]);
    let req = request("api", &repo, &["v1", "second", "third"]);
    let (outcome, _) = DockerApiBuilder::new(daemon.clone())
        .run_to_end(&req, Some(context))
        .await;
    let outcome = outcome.expect("build succeeds");
    let refs = req.references();
    assert_eq!(outcome.references, refs);

    let lines = requests.lock().unwrap().clone();
    let builds: Vec<&String> = lines.iter().filter(|l| l.contains("/build?")).collect();
    assert_eq!(builds.len(), 1, "one build request: {lines:#?}");
    let target = builds[0].split(' ').nth(1).unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://daemon{target}")).expect("request target");
    let tags: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "t")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(tags, refs, "{target}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("/tag?") || l.contains("/tag ")),
        "no tag request after the build: {lines:#?}"
    );
    for r in &refs {
        assert!(daemon.image_exists(r).await.unwrap(), "{r} exists");
    }
    remove_images(&daemon, &refs).await;
}

/// The docker CLI itself creates and selects a context; we find and use its endpoint.
#[tokio::test]
async fn follows_the_current_docker_cli_context() {
    require_services!();
    let port = tcp_forwarder().await;
    let config = tempfile::tempdir().unwrap();
    let host = format!("tcp://127.0.0.1:{port}");
    for args in [
        vec![
            "context",
            "create",
            "devspace-test-ctx",
            "--docker",
            &format!("host={host}"),
        ],
        vec!["context", "use", "devspace-test-ctx"],
    ] {
        let output = Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(&args)
            .output()
            .expect("docker CLI");
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let env = DockerEnv {
        docker_config: Some(config.path().to_string_lossy().into_owned()),
        ..Default::default()
    };
    let endpoint = resolve_endpoint(&env).expect("context resolves");
    assert_eq!(endpoint.host, host);
    assert_eq!(
        endpoint.source,
        EndpointSource::Context("devspace-test-ctx".into())
    );
    let daemon = DockerDaemon::connect_to(endpoint, ConnectOptions::default())
        .await
        .expect("the context's daemon answers");
    assert!(daemon.image_exists("busybox:latest").await.unwrap());

    // DOCKER_HOST still wins over the context.
    let env = DockerEnv {
        docker_host: Some("unix:///var/run/docker.sock".into()),
        ..env
    };
    assert_eq!(
        resolve_endpoint(&env).unwrap(),
        DockerEndpoint::from_host("unix:///var/run/docker.sock")
    );
}

#[tokio::test]
async fn a_cancelled_push_stops_before_sending() {
    require_services!();
    let daemon = daemon().await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = daemon
        .push(
            &PushRequest {
                image_key: "p".into(),
                repository: "busybox".into(),
                tags: vec!["latest".into()],
                credentials: None,
            },
            &EventSink::discard(),
            &cancel,
        )
        .await
        .expect_err("cancelled");
    assert!(matches!(err, PushError::Cancelled { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Interrupted);
}

/// A `docker-registry` with htpasswd auth on a free port, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

const REGISTRY_USER: &str = "devspace";
const REGISTRY_PASSWORD: &str = "s3cret-Pa55word";

impl Registry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let status = Command::new("htpasswd")
            .arg("-Bbc")
            .arg(&htpasswd)
            .arg(REGISTRY_USER)
            .arg(REGISTRY_PASSWORD)
            .stderr(Stdio::null())
            .status()
            .expect("htpasswd is installed");
        assert!(status.success());
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: devspace-test\n    path: {}\n",
                dir.path().join("data").display(),
                htpasswd.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let registry = Self {
            child: Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("docker-registry is installed"),
            port,
            _dir: dir,
        };
        // Readiness wait: the registry listens within a moment of starting.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not start listening on {port}");
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn credentials(&self, password: &str) -> DockerCredentials {
        DockerCredentials {
            username: Some(REGISTRY_USER.to_string()),
            password: Some(password.to_string()),
            serveraddress: Some(self.host()),
            ..Default::default()
        }
    }

    async fn tags(&self, name: &str) -> Vec<String> {
        let url = format!("http://{}/v2/{name}/tags/list", self.host());
        let body: serde_json::Value = reqwest::Client::new()
            .get(url)
            .basic_auth(REGISTRY_USER, Some(REGISTRY_PASSWORD))
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("tags json");
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn build_small(daemon: &DockerDaemon, repository: &str, tags: &[&str]) -> Vec<String> {
    let dockerfile = format!(
        "FROM busybox:latest\nRUN echo {} > /id\n",
        unique("content")
    );
    DockerApiBuilder::new(daemon.clone())
        .run_to_end(
            &request("push", repository, tags),
            Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        )
        .await
        .0
        .expect("build")
        .references
}

#[tokio::test]
async fn push_with_credentials_reports_digests() {
    require_services!();
    let registry = Registry::start();
    let daemon = daemon().await;
    let name = unique("push");
    let repository = format!("{}/{name}", registry.host());
    let refs = build_small(&daemon, &repository, &["v1", "latest"]).await;
    let (tx, mut rx) = unbounded_channel();
    let pushed = daemon
        .push(
            &PushRequest {
                image_key: "push".into(),
                repository: repository.clone(),
                tags: vec!["v1".into(), "latest".into()],
                credentials: Some(registry.credentials(REGISTRY_PASSWORD)),
            },
            &EventSink::channel(tx),
            &CancellationToken::new(),
        )
        .await
        .expect("push with the right password");
    assert_eq!(
        pushed
            .iter()
            .map(|p| p.reference.clone())
            .collect::<Vec<_>>(),
        refs
    );
    for p in &pushed {
        let digest = p.digest.as_deref().expect("digest captured");
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
    }
    assert_eq!(
        pushed[0].digest, pushed[1].digest,
        "both tags name the same manifest"
    );
    assert_eq!(registry.tags(&name).await, ["latest", "v1"]);
    let events = drain(&mut rx);
    assert!(matches!(&events[0], BuildEvent::Pushing { tag } if *tag == refs[0]));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, BuildEvent::PushProgress { .. }))
    );
    let pushed_events: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Pushed { tag, digest } => Some((tag.clone(), digest.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        pushed_events,
        pushed
            .iter()
            .map(|p| (p.reference.clone(), p.digest.clone()))
            .collect::<Vec<_>>()
    );
    remove_images(&daemon, &refs).await;
}

#[tokio::test]
async fn push_with_a_wrong_or_missing_password_is_an_auth_error() {
    require_services!();
    let registry = Registry::start();
    let daemon = daemon().await;
    let name = unique("push-auth");
    let repository = format!("{}/{name}", registry.host());
    let refs = build_small(&daemon, &repository, &["v1"]).await;
    let wrong = "wrong-Password-123";
    for credentials in [Some(registry.credentials(wrong)), None] {
        let request = PushRequest {
            image_key: "auth".into(),
            repository: repository.clone(),
            tags: vec!["v1".into()],
            credentials,
        };
        let err = daemon
            .push(&request, &EventSink::discard(), &CancellationToken::new())
            .await
            .expect_err("the registry refuses");
        let PushError::Auth { registry: host, .. } = &err else {
            panic!("expected an auth error, got {err:?}");
        };
        assert_eq!(*host, registry.host());
        assert_eq!(err.exit_code(), ExitCode::Auth);
        let hint = err.hint().unwrap();
        assert!(
            hint.contains(&format!("devspace login {}", registry.host())),
            "{hint}"
        );
        let shown = format!("{err} {err:?} {hint} {request:?}");
        assert!(!shown.contains(wrong), "the password leaked: {shown}");
        assert!(!shown.contains(REGISTRY_PASSWORD));
    }
    assert!(registry.tags(&name).await.is_empty());
    remove_images(&daemon, &refs).await;
}

#[tokio::test]
async fn cli_build_classic_applies_tags_args_and_user_args() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("cli");
    let dockerfile = "\
FROM busybox:latest
ARG GREETING
LABEL greeting=$GREETING
COPY data.txt /data.txt
RUN cat /data.txt
";
    // Unique content so the step cache cannot hide the RUN output.
    let data = format!("{}\n", unique("data-from-context"));
    let mut req = request("cli", &repo, &["v1", "v2"]);
    req.build_args = IndexMap::from([("GREETING".to_string(), Some("cli-arg".to_string()))]);
    let builder = DockerCliBuilder::new(false, vec!["--label".into(), "from-args=yes".into()])
        .with_daemon(daemon.clone());
    let (outcome, events) = builder
        .run_to_end(
            &req,
            Some(tar_context(&[
                ("Dockerfile", dockerfile.as_bytes(), 0o644),
                ("data.txt", data.as_bytes(), 0o644),
            ])),
        )
        .await;
    let outcome = outcome.expect("docker build via the CLI");
    assert!(outcome.image_id.is_some());
    for r in &outcome.references {
        assert!(daemon.image_exists(r).await.unwrap(), "{r}");
    }
    let labels = image_labels(&daemon, &outcome.references[0]).await;
    assert_eq!(labels.get("greeting").map(String::as_str), Some("cli-arg"));
    assert_eq!(labels.get("from-args").map(String::as_str), Some("yes"));
    let lines = logs(&events);
    assert!(lines.iter().any(|l| l == data.trim()), "{lines:?}");
    // FROM, ARG, LABEL, COPY, RUN and the LABEL the CLI adds for `--label`.
    assert!(
        events.iter().any(
            |e| matches!(e, BuildEvent::Step { n: 5, m: 6, text } if text == "RUN cat /data.txt")
        ),
        "{events:?}"
    );
    remove_images(&daemon, &outcome.references).await;
}

/// BuildKit through the CLI works offline against this 20.10 daemon with the 20.10 CLI
/// (Debian's docker.io, which has BuildKit built in). Newer CLIs need the buildx plugin.
#[tokio::test]
async fn cli_build_with_buildkit() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("buildkit");
    let dockerfile = format!(
        "FROM busybox:latest\nRUN echo {} > /out\n",
        unique("buildkit-ran")
    );
    let (outcome, events) = DockerCliBuilder::new(true, vec!["--progress=plain".into()])
        .with_program("/usr/bin/docker")
        .with_daemon(daemon.clone())
        .run_to_end(
            &request("bk", &repo, &["v1"]),
            Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        )
        .await;
    let outcome = outcome.expect("BuildKit build");
    assert!(daemon.image_exists(&outcome.references[0]).await.unwrap());
    let lines = logs(&events);
    // BuildKit's plain progress (`#5 [2/2] RUN ...`), not the classic `Step n/m`.
    assert!(lines.iter().any(|l| l.contains("[2/2] RUN")), "{lines:?}");
    assert!(
        events.iter().any(
            |e| matches!(e, BuildEvent::Step { n: 2, m: 2, text } if text.starts_with("RUN echo"))
        ),
        "{events:?}"
    );
    remove_images(&daemon, &outcome.references).await;
}

#[tokio::test]
async fn cli_build_failure_and_missing_cli() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("cli-fail");
    let mark = unique("mark");
    let dockerfile = labeled_dockerfile(&mark, "RUN echo cli-last-words && exit 4\n");
    let err = DockerCliBuilder::new(false, vec![])
        .with_daemon(daemon.clone())
        .run_to_end(
            &request("clifail", &repo, &["v1"]),
            Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        )
        .await
        .0
        .expect_err("RUN fails");
    let BuildError::CommandFailed { last_lines, .. } = &err else {
        panic!("expected CommandFailed, got {err:?}");
    };
    assert!(
        last_lines.iter().any(|l| l == "cli-last-words"),
        "{last_lines:?}"
    );
    assert_eq!(
        labeled_containers(&daemon, "devspace-test", &mark).await,
        0,
        "--force-rm removes the failed step's container"
    );

    let err = DockerCliBuilder::new(false, vec![])
        .with_program("/nonexistent/bin/docker")
        .run_to_end(
            &request("nocli", &repo, &["v1"]),
            Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        )
        .await
        .0
        .expect_err("no such CLI");
    assert!(
        matches!(err, BuildError::DockerCliNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/bin/docker"), "{err}");
    assert!(err.hint().unwrap().contains("Docker CLI"));
}

#[tokio::test]
async fn cli_build_cancelled_mid_run_leaves_no_containers() {
    require_services!();
    let daemon = daemon().await;
    let repo = unique("cli-cancel");
    let mark = unique("mark");
    let dockerfile = labeled_dockerfile(&mark, "RUN echo cli-now-sleeping && sleep 600\n");
    build_and_cancel_on(
        &DockerCliBuilder::new(false, vec![]).with_daemon(daemon.clone()),
        &request("clisleepy", &repo, &["v1"]),
        Some(tar_context(&[("Dockerfile", dockerfile.as_bytes(), 0o644)])),
        "cli-now-sleeping",
    )
    .await;
    assert_eq!(
        labeled_containers_settled(&daemon, "devspace-test", &mark).await,
        0
    );
}

/// A script that records its argv (one per line) and cwd, prints to both streams, and exits
/// with `$EXIT_WITH` (default 0).
fn recording_script(dir: &Path) -> PathBuf {
    let script = dir.join("record.sh");
    let mut f = std::fs::File::create(&script).unwrap();
    writeln!(
        f,
        "#!/bin/sh\n\
         out=\"$(dirname \"$0\")/argv.txt\"\n\
         : > \"$out\"\n\
         for a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$out\"; done\n\
         pwd > \"$(dirname \"$0\")/cwd.txt\"\n\
         echo custom-stdout-line\n\
         echo custom-stderr-line >&2\n\
         exit \"${{EXIT_WITH:-0}}\""
    )
    .unwrap();
    drop(f);
    make_executable(&script);
    script
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A custom builder running `command` with no extra args.
fn command_builder(command: impl Into<String>, project_root: &Path) -> CustomBuilder {
    CustomBuilder::new(
        CustomConfig {
            command: command.into(),
            ..Default::default()
        },
        project_root,
    )
}

#[tokio::test]
async fn custom_builder_runs_the_exact_argv_without_a_shell() {
    let project = tempfile::tempdir().unwrap();
    let scripts = project.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    recording_script(&scripts);
    let config = CustomConfig {
        // Relative to the project root, like in devspace.yaml.
        command: "scripts/record.sh".into(),
        args: vec!["build".into(), "two words".into(), "$HOME".into()],
        image_flag: Some("--image".into()),
        append_args: vec!["--push".into(), "*".into()],
        ..Default::default()
    };
    let builder = CustomBuilder::new(config, project.path());
    assert!(!builder.needs_context());
    let (tx, mut rx) = unbounded_channel();
    let outcome = builder
        .build(
            &request("custom", "registry.example/app", &["v1", "v2"]),
            None,
            &EventSink::channel(tx),
            &CancellationToken::new(),
        )
        .await
        .expect("script exits 0");
    assert_eq!(
        outcome.references,
        ["registry.example/app:v1", "registry.example/app:v2"]
    );
    let argv = std::fs::read_to_string(scripts.join("argv.txt")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "build",
            "two words",
            "$HOME",
            "--image",
            "registry.example/app:v1",
            "--image",
            "registry.example/app:v2",
            "--push",
            "*"
        ]
    );
    let cwd = std::fs::read_to_string(scripts.join("cwd.txt")).unwrap();
    assert_eq!(
        Path::new(cwd.trim()).canonicalize().unwrap(),
        project.path().canonicalize().unwrap()
    );
    let mut lines = logs(&drain(&mut rx));
    lines.sort();
    assert_eq!(lines, ["custom-stderr-line", "custom-stdout-line"]);
}

#[tokio::test]
async fn custom_builder_failures_are_clear() {
    let project = tempfile::tempdir().unwrap();
    let script = project.path().join("fail.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor i in $(seq 1 30); do echo line-$i; done\necho custom-last-words >&2\nexit 7\n",
    )
    .unwrap();
    make_executable(&script);
    let failing = command_builder("./fail.sh", project.path());
    let err = failing
        .run_to_end(&request("cfail", "app", &["v1"]), None)
        .await
        .0
        .expect_err("exit 7");
    let BuildError::CommandFailed {
        status, last_lines, ..
    } = &err
    else {
        panic!("expected CommandFailed, got {err:?}");
    };
    assert!(status.contains('7'), "{status}");
    assert_eq!(last_lines.len(), devspace::builder::ERROR_TAIL_LINES);
    assert_eq!(
        last_lines.last().map(String::as_str),
        Some("custom-last-words")
    );
    assert!(err.to_string().contains("./fail.sh"), "{err}");

    let missing = command_builder("devspace-no-such-build-command", project.path());
    let err = missing
        .run_to_end(&request("cmissing", "app", &["v1"]), None)
        .await
        .0
        .expect_err("not on PATH");
    assert!(matches!(err, BuildError::CommandNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("devspace-no-such-build-command"),
        "{err}"
    );
}

fn process_alive(pid: u32) -> bool {
    // A zombie waiting for its reaper is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn custom_builder_cancel_kills_the_script_and_its_children() {
    let project = tempfile::tempdir().unwrap();
    let script = project.path().join("slow.sh");
    let pid_file = project.path().join("sleep.pid");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 600 &\necho $! > {}\necho custom-now-sleeping\nwait\n",
            pid_file.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    build_and_cancel_on(
        &command_builder(script.to_string_lossy().into_owned(), project.path()),
        &request("cslow", "app", &["v1"]),
        None,
        "custom-now-sleeping",
    )
    .await;
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered asynchronously: give the kernel a moment to finish the process.
    for _ in 0..100 {
        if !process_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the script's `sleep` child (pid {pid}) survived the cancel");
}

/// Size of the generated context in the memory test; far above the asserted peak.
const BIG_CONTEXT: u64 = 256 * 1024 * 1024;
const PEAK_RSS_LIMIT_KB: u64 = 96 * 1024;

/// A tar with a Dockerfile and one `BIG_CONTEXT`-byte file, generated chunk by chunk and
/// never held in memory as a whole.
fn generated_big_context() -> ContextBody {
    let dockerfile = b"FROM busybox:latest\nCOPY Dockerfile /Dockerfile\n";
    let mut head = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    head.append_data(&mut header, "Dockerfile", &dockerfile[..])
        .unwrap();
    let mut big = tar::Header::new_gnu();
    big.set_path("big.bin").unwrap();
    big.set_size(BIG_CONTEXT);
    big.set_mode(0o644);
    big.set_cksum();
    let mut first = head.get_ref().clone();
    first.extend_from_slice(big.as_bytes());
    const CHUNK: u64 = 1024 * 1024;
    let body = futures_util::stream::iter(0..BIG_CONTEXT / CHUNK)
        .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; CHUNK as usize])));
    let end = futures_util::stream::iter([Ok(Bytes::from(vec![0u8; 1024]))]);
    Box::pin(
        futures_util::stream::iter([Ok(Bytes::from(first))])
            .chain(body)
            .chain(end),
    )
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Runs in a child process of its own (this test binary, filtered to this test) so the
/// other tests' allocations do not count towards the measured peak.
#[test]
fn streaming_context_memory_stays_flat() {
    require_services!();
    const CHILD_ENV: &str = "DEVSPACE_TEST_STREAM_CHILD";
    if std::env::var_os(CHILD_ENV).is_some() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let daemon = daemon().await;
            let repo = unique("big");
            let (outcome, events) = DockerApiBuilder::new(daemon.clone())
                .run_to_end(
                    &request("big", &repo, &["v1"]),
                    Some(generated_big_context()),
                )
                .await;
            let outcome = outcome.expect("big build");
            let sent = events.into_iter().find_map(|e| match e {
                BuildEvent::ContextSent { bytes } => Some(bytes),
                _ => None,
            });
            remove_images(&daemon, &outcome.references).await;
            println!("CONTEXT_SENT={}", sent.unwrap_or(0));
            println!("PEAK_RSS_KB={}", peak_rss_kb());
        });
        return;
    }
    // The test's name in the test binary: its module path without the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let this_test = format!("{module}::streaming_context_memory_stays_flat");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &this_test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |key: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.split_once(key).map(|(_, v)| v))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} missing in {stdout}"))
    };
    let sent = value("CONTEXT_SENT=");
    let peak = value("PEAK_RSS_KB=");
    eprintln!("sent {sent} bytes with a peak RSS of {peak} kB");
    assert!(sent > BIG_CONTEXT, "the whole context was sent ({sent})");
    assert!(
        peak < PEAK_RSS_LIMIT_KB,
        "peak RSS {peak} kB for a {BIG_CONTEXT}-byte context: the body is buffered"
    );
}
