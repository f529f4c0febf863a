//! The kaniko builder against the fake Kubernetes API server: what reaches the cluster (the
//! uploaded tar and Dockerfile, the pod spec and executor args, the registry secret), how the
//! build follows the pod (log lines, image-pull errors, unschedulable pods, non-zero exits,
//! timeout, cancellation) and that only the build's own pod is ever deleted. The CLI tests at
//! the end cover the Docker → kaniko fallback with `DOCKER_HOST` pointing nowhere.

use crate::support::kube_fake::{
    EventType, ExecReply, FakeKube, FakeOptions, PodScript, PodStatus, StdinMode,
};
use crate::support::project::TempProject;
use base64::Engine as _;
use bytes::Bytes;
use devspace::builder::kaniko::pod::{DEFAULT_EXECUTOR_IMAGE, init_command};
use devspace::builder::kaniko::status::PodFailure;
use devspace::builder::kaniko::{KanikoBuilder, KanikoError, KanikoOutcome};
use devspace::builder::{BuildError, BuildEvent, BuildRequest, ContextBody, EventSink};
use devspace::config::model::{KanikoConfig, PodResources};
use devspace::image::context::{
    scan_context,
    tar::{DockerfileEntry, TarOptions, context_tar_stream},
};
use devspace::kube::{KubeClient, KubeSettings};
use devspace::registry::credentials::Credential;
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Bound for anything awaited: a hang fails the test instead of CI.
const LIMIT: Duration = Duration::from_secs(60);
const REPO: &str = "127.0.0.1:5000/app";
const OVERRIDE: &str = "FROM busybox\nENTRYPOINT [\"/bin/sh\", \"-c\", \"echo overridden\"]\n";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

async fn client(fake: &FakeKube) -> KubeClient {
    KubeClient::from_settings(&KubeSettings {
        kubeconfig: Some(fake.kubeconfig().to_path_buf()),
        ..KubeSettings::default()
    })
    .await
    .expect("client from the fake's kubeconfig")
}

fn project() -> TempProject {
    let p = TempProject::new();
    p.write("Dockerfile", "FROM busybox\nCMD [\"true\"]\n")
        .write(".dockerignore", "*.log\n")
        .write("src/a.txt", "a\n")
        .write("debug.log", "ignored\n")
        .write(
            "sub/keep.log",
            "kept: patterns without a slash match at the root only\n",
        );
    p
}

/// The project's context as the pipeline streams it, the Dockerfile replaced by `OVERRIDE`.
fn context(project: &TempProject) -> ContextBody {
    let scan = scan_context(
        project.path(),
        &project.join("Dockerfile"),
        &project.join(".devspace"),
    )
    .expect("scan");
    Box::pin(context_tar_stream(
        scan.root.clone(),
        scan.entries.clone(),
        TarOptions {
            dockerfile: DockerfileEntry::Replace {
                rel_path: "Dockerfile".into(),
                content: Bytes::from_static(OVERRIDE.as_bytes()),
            },
            ..TarOptions::default()
        },
    ))
}

fn request() -> BuildRequest {
    BuildRequest {
        image_key: "api".into(),
        repository: REPO.into(),
        tags: vec!["v1".into(), "latest".into()],
        dockerfile: "Dockerfile".into(),
        build_args: IndexMap::from([
            ("A".to_string(), Some("1".to_string())),
            ("UNSET".to_string(), None),
        ]),
        target: Some("prod".into()),
        ..BuildRequest::default()
    }
}

fn recorder() -> (EventSink, Arc<Mutex<Vec<BuildEvent>>>) {
    let seen: Arc<Mutex<Vec<BuildEvent>>> = Arc::default();
    let sink = {
        let seen = seen.clone();
        EventSink::new(move |e| seen.lock().expect("events").push(e))
    };
    (sink, seen)
}

fn logs(seen: &Arc<Mutex<Vec<BuildEvent>>>) -> Vec<String> {
    seen.lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Log(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// A build pod as a kubelet would run it: init container up, two execs (upload and
/// hand-over), the executor runs, logs `log` and exits with `exit_code`.
fn kaniko_script(log: &str, exit_code: i32) -> PodScript {
    let end = if exit_code == 0 {
        PodStatus::Succeeded
    } else {
        PodStatus::Failed {
            container: Some("kaniko".into()),
            exit_code,
            message: String::new(),
        }
    };
    PodScript::new()
        .status(PodStatus::Pending)
        .status(PodStatus::InitRunning("context".into()))
        .wait_exec(Some("context"), 2)
        .status(PodStatus::Running)
        .log(Some("kaniko"), log)
        .status(end)
}

fn build_pods(fake: &FakeKube) -> Vec<Value> {
    fake.list("v1", "Pod", Some(fake.namespace()))
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["devspace-build"] == "true")
        .collect()
}

/// The first version of every pod ever created (the spec as we sent it).
fn created_pods(fake: &FakeKube) -> Vec<Value> {
    fake.history("v1", "Pod")
        .into_iter()
        .filter(|(t, _)| *t == EventType::Added)
        .map(|(_, p)| p)
        .collect()
}

fn tar_files(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .expect("tar entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").display().to_string();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut body).expect("body");
            (path, body)
        })
        .collect()
}

type Events = Arc<Mutex<Vec<BuildEvent>>>;

/// A builder for `config` talking to `fake`.
async fn builder(fake: &FakeKube, config: KanikoConfig) -> KanikoBuilder {
    KanikoBuilder::new(client(fake).await, config)
}

/// Builds `request()` from the default project's context with `builder`.
async fn build(builder: &KanikoBuilder) -> (Result<KanikoOutcome, BuildError>, Events) {
    let project = project();
    build_from(builder, context(&project)).await
}

/// Builds `request()` from `context` with `builder`.
async fn build_from(
    builder: &KanikoBuilder,
    context: ContextBody,
) -> (Result<KanikoOutcome, BuildError>, Events) {
    let (sink, seen) = recorder();
    let result = within(
        "kaniko build",
        builder.build_image(&request(), context, &sink, &CancellationToken::new()),
    )
    .await;
    (result, seen)
}

fn kaniko_error(e: BuildError) -> KanikoError {
    match e {
        BuildError::Kaniko(k) => *k,
        other => panic!("expected a kaniko error, got {other:?}"),
    }
}

#[tokio::test]
async fn successful_build_uploads_the_context_and_forwards_the_log() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| {
        Some(kaniko_script(
            "INFO[0000] Resolved base name busybox\nINFO[0002] Pushing image to 127.0.0.1:5000/app:v1\n",
            0,
        ))
    });
    let builder = builder(
        &fake,
        KanikoConfig {
            resources: Some(PodResources {
                limits: IndexMap::from([("memory".to_string(), "2Gi".to_string())]),
                ..PodResources::default()
            }),
            ..KanikoConfig::default()
        },
    )
    .await
    .with_credential(Some(Credential::new("builder", "s3cret")));
    let (result, seen) = build(&builder).await;
    let outcome = result.expect("build");
    assert_eq!(
        outcome.references,
        [format!("{REPO}:v1"), format!("{REPO}:latest")]
    );
    assert!(
        outcome.pod.starts_with("devspace-build-api-"),
        "{}",
        outcome.pod
    );

    // The executor's log arrives line by line, and a Pushed event per reference.
    let lines = logs(&seen);
    for want in [
        "INFO[0000] Resolved base name busybox",
        "INFO[0002] Pushing image to 127.0.0.1:5000/app:v1",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want} missing in {lines:#?}"
        );
    }
    let pushed = seen
        .lock()
        .expect("events")
        .iter()
        .filter(|e| matches!(e, BuildEvent::Pushed { .. }))
        .count();
    assert_eq!(pushed, 2);

    // Upload: the first exec carries the tar (ignored files left out, Dockerfile overridden),
    // the second one hands over without stdin.
    let execs = fake.execs();
    assert_eq!(execs.len(), 2, "{execs:#?}");
    assert!(execs.iter().all(|e| e.request.container == "context"));
    assert_eq!(execs[0].request.command[..2], ["sh", "-c"]);
    assert!(execs[0].request.command[2].starts_with("tar -xf - -C /context"));
    assert!(execs[1].request.command[2].ends_with("touch /tmp/done"));
    assert!(execs[1].stdin.is_empty() && !execs[1].request.stdin);
    let files = tar_files(&execs[0].stdin);
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for want in [".dockerignore", "Dockerfile", "src/a.txt", "sub/keep.log"] {
        assert!(names.contains(&want), "{want} not uploaded: {names:?}");
    }
    assert!(!names.contains(&"debug.log"), "{names:?}");
    let dockerfile = files
        .iter()
        .find(|(p, _)| p == "Dockerfile")
        .expect("Dockerfile");
    assert_eq!(String::from_utf8_lossy(&dockerfile.1), OVERRIDE);
    assert!(
        seen.lock()
            .expect("events")
            .contains(&BuildEvent::ContextSent {
                bytes: execs[0].stdin.len() as u64
            })
    );

    // The pod as created.
    let created = created_pods(&fake);
    assert_eq!(created.len(), 1);
    let pod = &created[0];
    let name = pod["metadata"]["name"].as_str().expect("name");
    assert_eq!(name, outcome.pod);
    assert_eq!(name.len(), "devspace-build-api-".len() + 5);
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["devspace-build"], "true");
    assert_eq!(labels["devspace-build-image"], "api");
    assert_eq!(labels["devspace-build-id"].as_str().map(str::len), Some(12));
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "context");
    assert_eq!(init["image"], "alpine");
    assert_eq!(init["command"], json!(init_command()));
    let kaniko = &spec["containers"][0];
    assert_eq!(kaniko["name"], "kaniko");
    assert_eq!(kaniko["image"], DEFAULT_EXECUTOR_IMAGE);
    assert_eq!(
        kaniko["args"],
        json!([
            "--dockerfile=/context/Dockerfile",
            "--context=dir:///context",
            "--destination=127.0.0.1:5000/app:v1",
            "--destination=127.0.0.1:5000/app:latest",
            "--target=prod",
            "--build-arg",
            "A=1",
            "--cache=true",
            "--cache-repo=127.0.0.1:5000/app",
            "--snapshotMode=time",
        ])
    );
    for c in [init, kaniko] {
        assert_eq!(c["resources"]["limits"]["memory"], "2Gi");
    }
    assert_eq!(
        kaniko["volumeMounts"],
        json!([
            {"name": "docker-config", "mountPath": "/kaniko/.docker"},
            {"name": "context", "mountPath": "/context"},
        ])
    );
    assert_eq!(
        spec["volumes"],
        json!([
            {"name": "context", "emptyDir": {}},
            {"name": "docker-config", "secret": {
                "secretName": "devspace-auth-127-0-0-1-5000",
                "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
        ])
    );

    // The registry secret, built from the local credentials.
    let secret = fake
        .get(
            "v1",
            "Secret",
            fake.namespace(),
            "devspace-auth-127-0-0-1-5000",
        )
        .expect("secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().expect("data"))
        .expect("base64");
    let config: Value = serde_json::from_slice(&config).expect("json");
    assert_eq!(
        config["auths"]["127.0.0.1:5000"]["auth"],
        base64::engine::general_purpose::STANDARD.encode("builder:s3cret")
    );
    // Secrets never reach the log.
    assert!(!lines.iter().any(|l| l.contains("s3cret")));

    // The pod is gone afterwards.
    assert!(build_pods(&fake).is_empty());
}

#[tokio::test]
async fn v4_exec_protocol_still_hands_over() {
    // With v4 end-of-stdin closes the socket and tar's exit status is lost; the second exec
    // is what confirms the extraction.
    let fake = FakeKube::start_with(FakeOptions {
        exec_protocols: vec!["v4.channel.k8s.io"],
        ..FakeOptions::default()
    });
    fake.on_pod_created(|_| Some(kaniko_script("built\n", 0)));
    let builder = builder(&fake, KanikoConfig::default()).await;
    let (result, seen) = build(&builder).await;
    result.expect("build over v4");
    let execs = fake.execs();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0].request.protocol, "v4.channel.k8s.io");
    assert!(execs[0].stdin_closed && !execs[0].status_sent);
    assert!(
        tar_files(&execs[0].stdin)
            .iter()
            .any(|(p, _)| p == "src/a.txt")
    );
    assert!(logs(&seen).contains(&"built".to_string()));
    // Without credentials there is no secret and no mount; the log says so.
    assert!(fake.list("v1", "Secret", None).is_empty());
    assert!(
        logs(&seen)
            .iter()
            .any(|l| l.contains("no credentials stored for 127.0.0.1:5000"))
    );
    let pod = &created_pods(&fake)[0];
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "context", "mountPath": "/context"}])
    );
}

#[tokio::test]
async fn given_pull_secret_is_mounted_and_none_is_created() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| Some(kaniko_script("ok\n", 0)));
    let builder = builder(
        &fake,
        KanikoConfig {
            pull_secret: Some("my-registry".into()),
            image: Some("my/executor:debug".into()),
            init_image: Some("busybox".into()),
            command: vec!["/busybox/sh".into()],
            node_selector: IndexMap::from([("pool".to_string(), "builds".to_string())]),
            service_account: Some("builder".into()),
            ..KanikoConfig::default()
        },
    )
    .await
    .with_credential(Some(Credential::new("u", "p")));
    let (result, _) = build(&builder).await;
    result.expect("build");
    assert!(fake.list("v1", "Secret", None).is_empty());
    let pod = &created_pods(&fake)[0];
    let spec = &pod["spec"];
    assert_eq!(spec["volumes"][1]["secret"]["secretName"], "my-registry");
    assert_eq!(spec["containers"][0]["image"], "my/executor:debug");
    assert_eq!(spec["containers"][0]["command"], json!(["/busybox/sh"]));
    assert_eq!(spec["initContainers"][0]["image"], "busybox");
    assert_eq!(spec["nodeSelector"]["pool"], "builds");
    assert_eq!(spec["serviceAccountName"], "builder");
}

#[tokio::test]
async fn image_pull_error_fails_fast_with_the_reason() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| {
        Some(
            PodScript::new()
                .status(PodStatus::Pending)
                .status(PodStatus::ImagePullError {
                    container: Some("context".into()),
                    reason: "ErrImagePull".into(),
                    message: "manifest unknown".into(),
                }),
        )
    });
    let builder = builder(
        &fake,
        KanikoConfig {
            init_image: Some("alpine:nope".into()),
            ..KanikoConfig::default()
        },
    )
    .await;
    let (result, _) = build(&builder).await;
    let err = result.expect_err("pull error");
    let text = err.to_string();
    assert!(
        text.contains("ErrImagePull") && text.contains("manifest unknown"),
        "{text}"
    );
    assert!(err.hint().is_some_and(|h| h.contains("initImage")));
    match kaniko_error(err) {
        KanikoError::Pod {
            failure: PodFailure::ImagePull {
                container, image, ..
            },
            ..
        } => {
            assert_eq!(container, "context");
            assert_eq!(image, "alpine:nope");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        fake.execs().is_empty(),
        "nothing is uploaded into a broken pod"
    );
    assert!(build_pods(&fake).is_empty());
}

#[tokio::test]
async fn unschedulable_pod_fails() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| {
        Some(PodScript::new().status(PodStatus::Unschedulable(
            "0/3 nodes are available: 3 Insufficient memory.".into(),
        )))
    });
    let builder = builder(&fake, KanikoConfig::default()).await;
    let (result, _) = build(&builder).await;
    let err = result.expect_err("unschedulable");
    assert!(err.to_string().contains("cannot be scheduled"), "{err}");
    assert!(err.to_string().contains("Insufficient memory"), "{err}");
    assert!(matches!(
        kaniko_error(err),
        KanikoError::Pod {
            failure: PodFailure::Unschedulable { .. },
            ..
        }
    ));
    assert!(build_pods(&fake).is_empty());
}

#[tokio::test]
async fn non_zero_exit_fails_with_the_code_and_last_lines() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| {
        Some(kaniko_script(
            "INFO[0001] RUN false\nerror building image: error building stage: exit status 1\n",
            1,
        ))
    });
    let builder = builder(&fake, KanikoConfig::default()).await;
    let (result, _) = build(&builder).await;
    let err = result.expect_err("exit 1");
    assert!(err.to_string().contains("exit code 1"), "{err}");
    assert_eq!(
        err.last_lines().last().map(String::as_str),
        Some("error building image: error building stage: exit status 1")
    );
    assert!(build_pods(&fake).is_empty());
}

#[tokio::test]
async fn cancellation_deletes_the_pod_and_only_that_pod() {
    let fake = FakeKube::start();
    // Somebody else's build in the same namespace: must survive.
    fake.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "devspace-build-other-abcde", "namespace": "default",
                     "labels": {"devspace-build": "true", "devspace-build-id": "someoneelse1"}},
        "spec": {"containers": [{"name": "kaniko", "image": "executor"}]}
    }))
    .expect("foreign pod");
    fake.on_pod_created(|pod| {
        (pod["metadata"]["labels"]["devspace-build-image"] == "api").then(|| {
            PodScript::new()
                .status(PodStatus::Pending)
                .status(PodStatus::InitRunning("context".into()))
                .wait_exec(Some("context"), 2)
                .status(PodStatus::Running)
                .log(Some("kaniko"), "INFO[0001] RUN sleep 1000\n")
        })
    });
    let project = project();
    let builder = builder(&fake, KanikoConfig::default()).await;
    let (sink, seen) = recorder();
    let cancel = CancellationToken::new();
    let request = request();
    let build = builder.build_image(&request, context(&project), &sink, &cancel);
    let trigger = async {
        // The line travels fake → log stream → sink: look at what the sink got.
        while !logs(&seen).iter().any(|l| l.contains("RUN sleep 1000")) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
    };
    let (result, ()) = within("cancelled build", async { tokio::join!(build, trigger) }).await;
    assert!(
        matches!(result, Err(BuildError::Cancelled { .. })),
        "{result:?}"
    );
    let left: Vec<String> = build_pods(&fake)
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(left, ["devspace-build-other-abcde"]);
    // Deleted by name only: no collection delete, no label selector.
    let ours = created_pods(&fake)
        .into_iter()
        .find(|p| p["metadata"]["labels"]["devspace-build-image"] == "api")
        .expect("our pod");
    let ours = format!("/pods/{}", ours["metadata"]["name"].as_str().unwrap_or("?"));
    let deletes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert!(!deletes.is_empty());
    for r in deletes {
        assert!(r.param("labelSelector").is_none(), "{r:?}");
        assert!(r.path.ends_with(&ours), "{r:?}");
    }
}

#[tokio::test]
async fn failed_build_leaves_other_build_pods_alone() {
    let fake = FakeKube::start();
    fake.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "devspace-build-web-zzzzz", "namespace": "default",
                     "labels": {"devspace-build": "true"}},
        "spec": {"containers": [{"name": "kaniko", "image": "executor"}]}
    }))
    .expect("foreign pod");
    fake.on_pod_created(|pod| {
        (pod["metadata"]["labels"]["devspace-build-image"] == "api")
            .then(|| kaniko_script("boom\n", 2))
    });
    let builder = builder(&fake, KanikoConfig::default()).await;
    let (result, _) = build(&builder).await;
    let err = result.expect_err("exit 2");
    assert!(err.to_string().contains("exit code 2"), "{err}");
    let left: Vec<Value> = build_pods(&fake);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["metadata"]["name"], "devspace-build-web-zzzzz");
}

#[tokio::test]
async fn failing_extraction_reports_tars_error() {
    let fake = FakeKube::start();
    fake.on_exec(|req| {
        if req
            .command
            .get(2)
            .is_some_and(|c| c.ends_with("touch /tmp/done"))
        {
            ExecReply::ok()
                .with_stdin(StdinMode::Ignore)
                .with_stderr("tar: invalid tar magic\n")
                .with_exit_code(1)
        } else {
            ExecReply::ok()
        }
    });
    fake.on_pod_created(|_| Some(kaniko_script("never\n", 0)));
    let builder = builder(&fake, KanikoConfig::default()).await;
    let (result, _) = build(&builder).await;
    let err = result.expect_err("extraction fails");
    let text = err.to_string();
    assert!(text.contains("uploading the build context"), "{text}");
    assert!(text.contains("tar: invalid tar magic"), "{text}");
    assert!(build_pods(&fake).is_empty());
}

#[tokio::test]
async fn broken_context_never_hands_over() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| Some(kaniko_script("never\n", 0)));
    let builder = builder(&fake, KanikoConfig::default()).await;
    let broken: ContextBody = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from(vec![0u8; 1024])),
        Err(std::io::Error::other("file changed while reading")),
    ]));
    let (result, _) = build_from(&builder, broken).await;
    let err = result.expect_err("context error");
    assert!(matches!(err, BuildError::Context { .. }), "{err:?}");
    // The hand-over exec never ran, so the executor never saw the truncated context.
    fake.wait_until("the aborted upload exec to end", LIMIT, |f| {
        !f.execs().is_empty()
    })
    .await;
    assert!(
        fake.execs()
            .iter()
            .all(|e| !e.request.command[2].ends_with("touch /tmp/done"))
    );
    assert!(build_pods(&fake).is_empty());
}

/// A project whose one image `app` is `127.0.0.1:5000/app:v1`, with `build` (YAML, indented
/// under the image) when given.
fn cli_project(build: &str) -> TempProject {
    let p = project();
    p.write(
        "devspace.yaml",
        format!("version: v1beta9\nimages:\n  app:\n    image: {REPO}\n    tags: [v1]\n{build}"),
    );
    p
}

/// `devspace build` in `project` against `fake`, with the Docker daemon pointing nowhere and
/// a home without credentials.
fn cli_build(
    project: &TempProject,
    fake: &FakeKube,
    args: &[&str],
) -> crate::support::project::Output {
    let home = TempProject::new();
    project
        .devspace()
        .arg("build")
        .args(args)
        .home(home.path())
        .kubeconfig(fake.kubeconfig())
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .run()
}

#[test]
fn cli_falls_back_to_kaniko_when_docker_does_not_answer() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| Some(kaniko_script("INFO[0001] built by kaniko\n", 0)));
    let project = cli_project("");
    let out = cli_build(&project, &fake, &["--debug"]);
    out.assert_success();
    let text = out.combined();
    assert!(
        text.contains(
            "Docker daemon not reachable at tcp://127.0.0.1:1: building with kaniko in namespace default"
        ),
        "{}",
        out.describe()
    );
    assert_eq!(
        text.matches("Docker daemon not reachable").count(),
        1,
        "{}",
        out.describe()
    );
    assert!(text.contains("built by kaniko"), "{}", out.describe());
    let created = created_pods(&fake);
    assert_eq!(created.len(), 1);
    let args = &created[0]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "--dockerfile=/context/Dockerfile");
    assert_eq!(args[2], "--destination=127.0.0.1:5000/app:v1");
    // The fallback's defaults: cache on.
    assert!(
        args.as_array()
            .is_some_and(|a| a.iter().any(|x| x == "--cache=true")),
        "{args}"
    );
    let files = tar_files(&fake.execs()[0].stdin);
    assert!(files.iter().any(|(p, _)| p == "Dockerfile"), "{files:?}");
    assert!(!files.iter().any(|(p, _)| p == "debug.log"), "{files:?}");
    assert!(build_pods(&fake).is_empty());
}

#[test]
fn cli_disable_fallback_is_a_clear_error() {
    let fake = FakeKube::start();
    let project = cli_project("    build:\n      docker:\n        disableFallback: true\n");
    let out = cli_build(&project, &fake, &[]);
    out.assert_code(4);
    let text = out.combined();
    assert!(text.contains("tcp://127.0.0.1:1"), "{}", out.describe());
    assert!(text.contains("disableFallback"), "{}", out.describe());
    assert!(created_pods(&fake).is_empty());
}

#[test]
fn cli_kaniko_image_builds_in_the_namespace_of_the_flag() {
    let fake = FakeKube::start();
    fake.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "builds"}}))
        .expect("namespace");
    fake.on_pod_created(|_| Some(kaniko_script("INFO[0001] done\n", 0)));
    let project = cli_project("    build:\n      kaniko:\n        cache: false\n");
    let out = cli_build(&project, &fake, &["-n", "builds"]);
    out.assert_success();
    assert!(
        !out.combined().contains("not reachable"),
        "{}",
        out.describe()
    );
    let created = created_pods(&fake);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["metadata"]["namespace"], "builds");
    let args = created[0]["spec"]["containers"][0]["args"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!args.iter().any(|a| a == "--cache=true"), "{args:?}");
    assert!(fake.list("v1", "Pod", Some("builds")).is_empty());
}

#[test]
fn cli_failed_kaniko_build_exits_non_zero_with_the_reason() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| {
        Some(PodScript::new().status(PodStatus::ImagePullError {
            container: None,
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image".into(),
        }))
    });
    let project = cli_project("    build:\n      kaniko: {}\n");
    let out = cli_build(&project, &fake, &[]);
    out.assert_code(1);
    assert!(
        out.combined().contains("ImagePullBackOff"),
        "{}",
        out.describe()
    );
    assert!(build_pods(&fake).is_empty());
}

#[test]
fn cli_ctrl_c_deletes_the_build_pod() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| {
        // Runs until deleted.
        Some(
            PodScript::new()
                .status(PodStatus::Pending)
                .status(PodStatus::InitRunning("context".into()))
                .wait_exec(Some("context"), 2)
                .status(PodStatus::Running)
                .log(Some("kaniko"), "INFO[0001] RUN sleep 1000\n"),
        )
    });
    let project = cli_project("    build:\n      kaniko: {}\n");
    let home = TempProject::new();
    let mut running = project
        .devspace()
        .args(["build", "--debug"])
        .home(home.path())
        .kubeconfig(fake.kubeconfig())
        .spawn();
    running.wait_for_output("RUN sleep 1000", LIMIT);
    assert_eq!(build_pods(&fake).len(), 1);
    running.interrupt();
    let out = running.wait();
    out.assert_code(130);
    assert!(build_pods(&fake).is_empty(), "{}", out.describe());
}

#[test]
fn cli_secret_from_local_credentials_is_never_printed() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| Some(kaniko_script("INFO[0001] done\n", 0)));
    let project = cli_project("    build:\n      kaniko: {}\n");
    let home = TempProject::new();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci-user:pa55-word-x");
    home.write(
        ".docker/config.json",
        json!({"auths": {"127.0.0.1:5000": {"auth": auth}}}).to_string(),
    );
    let out = project
        .devspace()
        .args(["build", "--debug"])
        .home(home.path())
        .kubeconfig(fake.kubeconfig())
        .run();
    out.assert_success();
    assert!(
        !out.combined().contains("pa55-word-x"),
        "{}",
        out.describe()
    );
    assert!(!out.combined().contains(&auth), "{}", out.describe());
    let secret = fake
        .get("v1", "Secret", "default", "devspace-auth-127-0-0-1-5000")
        .expect("secret from the local credentials");
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().expect("data"))
        .expect("base64");
    let config: Value = serde_json::from_slice(&config).expect("json");
    assert_eq!(config["auths"]["127.0.0.1:5000"]["auth"], auth);
    let pod = &created_pods(&fake)[0];
    assert_eq!(
        pod["spec"]["volumes"][1]["secret"]["secretName"],
        "devspace-auth-127-0-0-1-5000"
    );
}

#[test]
fn cli_timeout_from_the_environment() {
    let fake = FakeKube::start();
    fake.on_pod_created(|_| Some(PodScript::new().status(PodStatus::Pending)));
    let project = cli_project("    build:\n      kaniko: {}\n");
    let home = TempProject::new();
    let run = |value: &str| {
        project
            .devspace()
            .arg("build")
            .home(home.path())
            .kubeconfig(fake.kubeconfig())
            .env("DEVSPACE_KANIKO_TIMEOUT", value)
            .run()
    };
    let out = run("1s");
    out.assert_code(1);
    assert!(
        out.combined().contains("did not finish within 1s"),
        "{}",
        out.describe()
    );
    assert!(build_pods(&fake).is_empty());
    let out = run("soon");
    out.assert_code(1);
    assert!(
        out.combined().contains("DEVSPACE_KANIKO_TIMEOUT"),
        "{}",
        out.describe()
    );
    assert_eq!(created_pods(&fake).len(), 1, "no pod for a bad timeout");
}

#[test]
fn cli_fallback_without_a_cluster_names_both() {
    let project = cli_project("");
    let home = TempProject::new();
    let out = project
        .devspace()
        .arg("build")
        .home(home.path())
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .run();
    out.assert_code(4);
    let text = out.combined();
    for want in [
        "cannot reach the Docker daemon at tcp://127.0.0.1:1",
        "the kaniko fallback failed too: cannot read the kubeconfig",
        "hint: is the Docker daemon running? (DOCKER_HOST=tcp://127.0.0.1:1)",
        "disableFallback",
    ] {
        assert!(text.contains(want), "{want:?} missing\n{}", out.describe());
    }
}
