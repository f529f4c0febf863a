//! The fake Kubernetes API server (`tests/it/support/kube_fake`) seen through kube-rs, the way
//! the devspace code will talk to it: a `kube::Client` from the generated kubeconfig
//! creates, gets, lists, watches, patches (merge, strategic, server-side apply) and deletes
//! objects, execs with stdin upload through `AttachParams`, and reads (followed) logs. Raw
//! HTTP (reqwest) covers what kube-rs does not expose: JSON patch and a wrong token.

use crate::support::kube_fake::patch::{self as fake_patch, Owners};
use crate::support::kube_fake::{
    ExecReply, FakeKube, FakeOptions, PodScript, PodStatus, StdinMode,
};
use futures_util::{AsyncBufReadExt as _, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::discovery::{self, Discovery};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

/// Generous bound for anything awaited: a hang fails the test instead of CI.
const LIMIT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API error status, got {other:?}"),
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "devspace-test"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    }))
    .expect("pod")
}

fn build_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"devspace-build": "true"}},
        "spec": {
            "initContainers": [{"name": "context", "image": "busybox"}],
            "containers": [{"name": "kaniko", "image": "gcr.io/kaniko-project/executor"}],
            "restartPolicy": "Never"
        }
    }))
    .expect("pod")
}

#[tokio::test]
async fn kubeconfig_points_kube_rs_at_the_fake() {
    let fake = FakeKube::start();
    let text = std::fs::read_to_string(fake.kubeconfig()).expect("kubeconfig");
    assert!(text.contains(&fake.url()), "{text}");
    let client = fake.client().await;
    assert_eq!(client.default_namespace(), "default");
    let version = within("version", client.apiserver_version())
        .await
        .expect("version");
    assert_eq!(version.major, "1");
    // The token from the kubeconfig was sent on every request (the server rejects others).
    assert!(!fake.requests().is_empty());
}

#[tokio::test]
async fn discovery_resolves_core_and_apps_kinds() {
    let fake = FakeKube::start();
    let client = fake.client().await;
    let discovery = within("discovery", Discovery::new(client.clone()).run())
        .await
        .expect("discovery");
    let gvk = kube::api::GroupVersionKind::gvk("apps", "v1", "Deployment");
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .expect("Deployment is discoverable");
    assert_eq!(resource.plural, "deployments");
    assert_eq!(caps.scope, discovery::Scope::Namespaced);
    let aggregated = within(
        "aggregated discovery",
        Discovery::new(client.clone()).run_aggregated(),
    )
    .await
    .expect("aggregated discovery");
    let (resource, _) = aggregated
        .resolve_gvk(&gvk)
        .expect("Deployment (aggregated)");
    assert_eq!(resource.plural, "deployments");
    let pod_gvk = kube::api::GroupVersionKind::gvk("", "v1", "Pod");
    let (_, caps) = aggregated.resolve_gvk(&pod_gvk).expect("Pod (aggregated)");
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "pods/exec" || r.plural == "exec")
    );
    let (ns, caps) = discovery::pinned_kind(
        &client,
        &kube::api::GroupVersionKind::gvk("", "v1", "Namespace"),
    )
    .await
    .expect("pinned Namespace");
    assert_eq!(ns.plural, "namespaces");
    assert_eq!(caps.scope, discovery::Scope::Cluster);
}

#[tokio::test]
async fn create_get_list_replace_delete_with_api_semantics() {
    let fake = FakeKube::start();
    let client = fake.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-a"}})).expect("ns");
    within("create ns", namespaces.create(&PostParams::default(), &ns))
        .await
        .expect("create ns");
    // Like the controller manager, the fake gives every new namespace its default account.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    within("get sa", accounts.get("default"))
        .await
        .expect("default service account");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s1", "labels": {"owner": "devspace"}},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": "{\"auths\":{}}"}
    }))
    .expect("secret");
    let created = within("create", secrets.create(&PostParams::default(), &secret))
        .await
        .expect("create");
    let rv1 = created
        .metadata
        .resource_version
        .clone()
        .expect("resourceVersion");
    // stringData is turned into base64 data, as the real API does.
    let data = created.data.expect("data");
    assert_eq!(data[".dockerconfigjson"].0, b"{\"auths\":{}}");

    let again = within(
        "create again",
        secrets.create(&PostParams::default(), &secret),
    )
    .await;
    assert_eq!(
        api_error(again.expect_err("duplicate")),
        (409, "AlreadyExists".into())
    );
    let missing = within("get missing", secrets.get("nope")).await;
    assert_eq!(
        api_error(missing.expect_err("missing")),
        (404, "NotFound".into())
    );
    let no_ns: Api<Secret> = Api::namespaced(client.clone(), "no-such-namespace");
    let err = within(
        "create in missing ns",
        no_ns.create(&PostParams::default(), &secret),
    )
    .await;
    assert_eq!(api_error(err.expect_err("no namespace")).0, 404);

    let mut changed = secrets.get("s1").await.expect("get");
    changed
        .metadata
        .labels
        .get_or_insert_default()
        .insert("v".into(), "2".into());
    let replaced = within(
        "replace",
        secrets.replace("s1", &PostParams::default(), &changed),
    )
    .await
    .expect("replace");
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    // Replacing with the stale resourceVersion is a conflict.
    let stale = within(
        "stale replace",
        secrets.replace("s1", &PostParams::default(), &changed),
    )
    .await;
    assert_eq!(
        api_error(stale.expect_err("stale")),
        (409, "Conflict".into())
    );

    let other: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s2"}})).expect("secret");
    secrets
        .create(&PostParams::default(), &other)
        .await
        .expect("create s2");
    let labelled = secrets
        .list(&ListParams::default().labels("owner=devspace"))
        .await
        .expect("list");
    let names: Vec<_> = labelled
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["s1"]);
    let all = secrets
        .list(&ListParams::default())
        .await
        .expect("list all");
    assert_eq!(all.items.len(), 2);

    within("delete", secrets.delete("s1", &DeleteParams::default()))
        .await
        .expect("delete");
    assert!(fake.get("v1", "Secret", "team-a", "s1").is_none());
    let twice = secrets.delete("s1", &DeleteParams::default()).await;
    assert_eq!(api_error(twice.expect_err("deleted twice")).0, 404);
}

#[tokio::test]
async fn service_account_patches_merge_strategic_and_conflicts() {
    let fake = FakeKube::start();
    let client = fake.client().await;
    let accounts: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    let params = PatchParams::default();
    let merged = within(
        "merge patch",
        accounts.patch(
            "default",
            &params,
            &Patch::Merge(json!({"imagePullSecrets": [{"name": "a"}]})),
        ),
    )
    .await
    .expect("merge patch");
    assert_eq!(merged.image_pull_secrets.expect("secrets").len(), 1);
    // Strategic merge merges the list by name: appends b, keeps a, does not duplicate a.
    let patch = json!({"imagePullSecrets": [{"name": "a"}, {"name": "b"}]});
    let merged = accounts
        .patch("default", &params, &Patch::Strategic(patch))
        .await
        .expect("strategic");
    let names: Vec<_> = merged
        .image_pull_secrets
        .expect("secrets")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    // A merge patch carrying an old resourceVersion is refused (conflict-safe updates).
    let stale = json!({"metadata": {"resourceVersion": "1"}, "imagePullSecrets": []});
    let err = accounts
        .patch("default", &params, &Patch::Merge(stale))
        .await;
    assert_eq!(
        api_error(err.expect_err("stale patch")),
        (409, "Conflict".into())
    );
}

#[tokio::test]
async fn json_patch_over_raw_http_with_test_op() {
    let fake = FakeKube::start();
    let url = format!(
        "{}/api/v1/namespaces/default/serviceaccounts/default",
        fake.url()
    );
    let http = reqwest::Client::new();
    let sa: Value = http
        .get(&url)
        .bearer_auth(fake.token())
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let rv = sa["metadata"]["resourceVersion"].clone();
    let patch = |rv: &Value| {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/imagePullSecrets", "value": [{"name": "devspace-auth-x"}]}
        ])
    };
    let send = |body: Value| {
        http.patch(&url)
            .bearer_auth(fake.token())
            .header("content-type", "application/json-patch+json")
            .body(body.to_string())
            .send()
    };
    let ok = send(patch(&rv)).await.expect("patch");
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(
        body["imagePullSecrets"],
        json!([{"name": "devspace-auth-x"}])
    );
    // Same test op again: the resourceVersion moved on, the patch is rejected.
    let stale = send(patch(&rv)).await.expect("patch");
    assert_eq!(stale.status(), 422);
    // force is only for server-side apply (kube-rs refuses it client-side too).
    let forced = http
        .patch(format!("{url}?fieldManager=devspace&force=true"))
        .bearer_auth(fake.token())
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .expect("patch");
    assert_eq!(forced.status(), 400);
    // A wrong token is refused before anything else.
    let denied = http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(denied.status(), 401);
}

#[tokio::test]
async fn server_side_apply_creates_updates_reports_conflicts_and_forces() {
    let fake = FakeKube::start();
    let client = fake.client().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let manifest = |replicas: i32, image: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": {"app": "api"}},
                             "spec": {"containers": [{"name": "api", "image": image}]}}
            }
        })
    };
    let devspace = PatchParams::apply("devspace");
    let created = within(
        "apply create",
        deployments.patch("api", &devspace, &Patch::Apply(manifest(1, "a:1"))),
    )
    .await
    .expect("apply creates");
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["devspace"]);
    let updated = deployments
        .patch("api", &devspace, &Patch::Apply(manifest(1, "a:2")))
        .await
        .expect("apply update");
    let spec = updated.spec.expect("spec");
    assert_eq!(
        spec.template.spec.expect("pod spec").containers[0]
            .image
            .as_deref(),
        Some("a:2")
    );
    assert_eq!(updated.metadata.generation, Some(2));

    let other = PatchParams::apply("someone-else");
    let conflict = deployments
        .patch("api", &other, &Patch::Apply(manifest(3, "a:2")))
        .await;
    let (code, reason) = api_error(conflict.expect_err("conflict"));
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let forced = deployments
        .patch(
            "api",
            &other.clone().force(),
            &Patch::Apply(manifest(3, "a:2")),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.spec.expect("spec").replicas, Some(3));

    // Any served kind through discovery, as a kubectl-style deployer does it.
    let (resource, _) = discovery::pinned_kind(
        &client,
        &kube::api::GroupVersionKind::gvk("", "v1", "Service"),
    )
    .await
    .expect("Service");
    let services: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let svc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}
    }))
    .expect("service");
    services
        .patch("api", &devspace, &Patch::Apply(&svc))
        .await
        .expect("apply service");
    let stored = fake
        .get("v1", "Service", "default", "api")
        .expect("service stored");
    assert_eq!(stored["spec"]["ports"][0]["port"], 80);
    // Applying without a field manager is refused, as by the real server.
    let raw = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/namespaces/default/services/api",
            fake.url()
        ))
        .bearer_auth(fake.token())
        .header("content-type", "application/apply-patch+yaml")
        .body("apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n")
        .send()
        .await
        .expect("raw apply");
    assert_eq!(raw.status(), 400);
}

/// Collects watch events (type, phase) until `stop` says so.
async fn collect_events(
    stream: impl futures_util::Stream<Item = Result<WatchEvent<Pod>, kube::Error>>,
    stop: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut stream = std::pin::pin!(stream);
    let mut seen = Vec::new();
    while let Some(event) = within("watch event", stream.try_next())
        .await
        .expect("watch stream")
    {
        let (kind, pod) = match event {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        };
        let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
        seen.push((kind.to_string(), phase));
        if stop(&seen) {
            break;
        }
    }
    seen
}

#[tokio::test]
async fn watch_follows_a_pod_from_pending_to_succeeded_and_deletion() {
    let fake = FakeKube::start();
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let created = pods
        .create(&PostParams::default(), &pod("p1"))
        .await
        .expect("create");
    pods.create(&PostParams::default(), &pod("other"))
        .await
        .expect("create other");
    let rv = created.metadata.resource_version.expect("rv");
    let params = WatchParams::default()
        .fields("metadata.name=p1")
        .timeout(60);
    let stream = within("watch", pods.watch(&params, &rv))
        .await
        .expect("watch");
    fake.set_pod_status("default", "p1", &PodStatus::Running)
        .expect("running");
    fake.set_pod_status("default", "other", &PodStatus::Running)
        .expect("other running");
    fake.set_pod_status("default", "p1", &PodStatus::Succeeded)
        .expect("succeeded");
    fake.delete("v1", "Pod", "default", "p1").expect("delete");
    let seen = collect_events(stream, |s| s.iter().any(|(k, _)| k == "DELETED")).await;
    let expected = [
        ("MODIFIED", "Running"),
        ("MODIFIED", "Succeeded"),
        ("DELETED", "Succeeded"),
    ];
    assert_eq!(seen, expected.map(|(k, p)| (k.to_string(), p.to_string())));

    // Without a resourceVersion a watch starts with the current objects as ADDED.
    let stream = pods
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .expect("watch");
    let seen = collect_events(stream, |s| !s.is_empty()).await;
    assert_eq!(seen, [("ADDED".to_string(), "Running".to_string())]);
}

#[tokio::test]
async fn scripted_pods_show_image_pull_errors_unschedulable_and_slow_starts() {
    let fake = FakeKube::start();
    fake.on_pod_created(|pod| {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        Some(match name {
            "pull" => {
                PodScript::new()
                    .status(PodStatus::Pending)
                    .status(PodStatus::ImagePullError {
                        container: None,
                        reason: "ErrImagePull".into(),
                        message: "pull access denied for busybox".into(),
                    })
            }
            "nowhere" => PodScript::new().status(PodStatus::Unschedulable(
                "0/1 nodes are available: 1 Insufficient memory.".into(),
            )),
            _ => PodScript::running()
                .sleep(Duration::from_millis(200))
                .status(PodStatus::Succeeded),
        })
    });
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    for name in ["pull", "nowhere", "slow"] {
        pods.create(&PostParams::default(), &pod(name))
            .await
            .expect("create");
    }
    fake.wait_until("scripts to settle", LIMIT, |f| {
        let phase = |n| {
            f.get("v1", "Pod", "default", n)
                .map(|p| p["status"].clone())
        };
        phase("pull").is_some_and(|s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
        }) && phase("nowhere").is_some_and(|s| s["conditions"][0]["reason"] == "Unschedulable")
            && phase("slow").is_some_and(|s| s["phase"] == "Succeeded")
    })
    .await;
    let pulled = pods.get("pull").await.expect("pull pod");
    let waiting = pulled
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0]
        .state
        .clone()
        .expect("state")
        .waiting
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
    let unscheduled = pods
        .get("nowhere")
        .await
        .expect("pod")
        .status
        .expect("status");
    let cond = &unscheduled.conditions.expect("conditions")[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("PodScheduled", "False")
    );
    // The slow pod went through Pending and Running before it succeeded.
    let phases: Vec<String> = fake
        .history("v1", "Pod")
        .into_iter()
        .filter(|(_, p)| p["metadata"]["name"] == "slow")
        .map(|(_, p)| {
            p["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(phases, ["Pending", "Pending", "Running", "Succeeded"]);
}

#[tokio::test]
async fn logs_refuse_waiting_containers_and_follow_until_the_container_ends() {
    let fake = FakeKube::start();
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("app"))
        .await
        .expect("create");
    fake.set_pod_status("default", "app", &PodStatus::Pending)
        .expect("pending");
    let waiting = pods.logs("app", &LogParams::default()).await;
    assert_eq!(api_error(waiting.expect_err("waiting container")).0, 400);

    fake.set_pod_status("default", "app", &PodStatus::Running)
        .expect("running");
    fake.append_log("default", "app", None, "line 1\n");
    assert_eq!(
        pods.logs("app", &LogParams::default()).await.expect("logs"),
        "line 1\n"
    );

    let follow = LogParams {
        follow: true,
        container: Some("main".into()),
        ..LogParams::default()
    };
    let stream = within("log stream", pods.log_stream("app", &follow))
        .await
        .expect("log stream");
    let mut lines = stream.lines();
    assert_eq!(
        within("first line", lines.next())
            .await
            .expect("line")
            .expect("io"),
        "line 1"
    );
    fake.append_log("default", "app", None, "line 2\n");
    assert_eq!(
        within("second line", lines.next())
            .await
            .expect("line")
            .expect("io"),
        "line 2"
    );
    fake.append_log("default", "app", None, "last\n");
    fake.set_pod_status("default", "app", &PodStatus::Succeeded)
        .expect("done");
    let rest: Vec<String> = within("end of stream", lines.try_collect())
        .await
        .expect("rest");
    assert_eq!(rest, ["last"]);
}

/// Creates a kaniko-style pod whose `context` init container runs, ready for an upload.
async fn running_build_pod(fake: &FakeKube, pods: &Api<Pod>, name: &str) {
    pods.create(&PostParams::default(), &build_pod(name))
        .await
        .expect("create");
    fake.set_pod_status("default", name, &PodStatus::InitRunning("context".into()))
        .expect("init running");
}

/// Exec parameters of a context upload into the `context` init container.
fn upload_params() -> AttachParams {
    AttachParams::default()
        .container("context")
        .stdin(true)
        .stdout(true)
        .stderr(true)
}

/// A small tar with two files, like a build context.
fn context_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, body) in [
        ("Dockerfile", "FROM busybox\n"),
        ("src/main.sh", "echo hi\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, body.as_bytes())
            .expect("tar entry");
    }
    builder.into_inner().expect("tar")
}

fn tar_paths(bytes: &[u8]) -> Vec<String> {
    tar::Archive::new(bytes)
        .entries()
        .expect("tar entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn exec_v5_uploads_stdin_and_reports_exit_status() {
    let fake = FakeKube::start();
    fake.on_exec(|req| match req.command.first().map(String::as_str) {
        Some("tar") => ExecReply::ok().with_stdout("extracted\n"),
        _ => ExecReply::ok()
            .with_stdin(StdinMode::Ignore)
            .with_stderr("boom\n")
            .with_exit_code(3),
    });
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &build_pod("b1"))
        .await
        .expect("create");
    let params = upload_params();
    // Exec into a container that is not running is refused.
    let refused = pods.exec("b1", ["tar", "xf", "-"], &params).await;
    assert!(refused.is_err(), "exec into a pending pod must fail");

    fake.set_pod_status("default", "b1", &PodStatus::InitRunning("context".into()))
        .expect("init running");
    let mut proc = within(
        "exec",
        pods.exec("b1", ["tar", "xf", "-", "-C", "/context"], &params),
    )
    .await
    .expect("exec");
    let tar = context_tar();
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(&tar).await.expect("write stdin");
    // Dropping the writer is not enough: only shutdown ends kube's stdin stream.
    stdin.shutdown().await.expect("close stdin");
    drop(stdin);
    let mut stdout = proc.stdout().expect("stdout");
    let status = proc.take_status().expect("status");
    let mut out = String::new();
    within(
        "stdout",
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out),
    )
    .await
    .expect("read");
    let status = within("status", status).await.expect("status sent");
    assert_eq!(status.status.as_deref(), Some("Success"));
    assert_eq!(out, "extracted\n");
    within("join", proc.join()).await.expect("join");

    // The server records an exec when its connection is over, which may trail the status.
    fake.wait_until("exec recorded", LIMIT, |f| f.execs().len() == 1)
        .await;
    let record = fake.execs().pop().expect("exec recorded");
    assert_eq!(record.request.protocol, "v5.channel.k8s.io");
    assert_eq!(record.request.container, "context");
    assert_eq!(record.request.command, ["tar", "xf", "-", "-C", "/context"]);
    assert!(record.stdin_closed);
    assert_eq!(record.stdin, tar);
    assert_eq!(tar_paths(&record.stdin), ["Dockerfile", "src/main.sh"]);

    let quiet = AttachParams::default()
        .container("context")
        .stderr(true)
        .stdout(true)
        .stdin(false);
    let mut failing = pods.exec("b1", ["false"], &quiet).await.expect("exec");
    let status = within("status", failing.take_status().expect("status"))
        .await
        .expect("status");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.expect("details").causes.expect("causes")[0];
    assert_eq!(cause.message.as_deref(), Some("3"));
}

#[tokio::test]
async fn exec_v4_needs_a_byte_count_because_closing_stdin_closes_everything() {
    let options = FakeOptions {
        exec_protocols: vec!["v4.channel.k8s.io"],
        ..FakeOptions::default()
    };
    let fake = FakeKube::start_with(options);
    let tar = context_tar();
    let size = tar.len();
    fake.on_exec(move |req| {
        if req.command.iter().any(|a| a.contains("head -c")) {
            ExecReply::ok().with_stdin(StdinMode::Bytes(size))
        } else {
            ExecReply::ok()
        }
    });
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    running_build_pod(&fake, &pods, "b2").await;
    let params = upload_params();

    // With a byte count the command answers while the socket is open: the status arrives.
    let command = ["sh", "-c", "head -c 2048 | tar xf - -C /context"];
    let mut proc = pods.exec("b2", command, &params).await.expect("exec");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(&tar).await.expect("write");
    let status = within("status", proc.take_status().expect("status"))
        .await
        .expect("status sent");
    assert_eq!(status.status.as_deref(), Some("Success"));
    // Dropping the writer is not enough: only shutdown ends kube's stdin stream.
    stdin.shutdown().await.expect("close stdin");
    drop(stdin);
    let _ = within("join", proc.join()).await;

    // Relying on end of stdin: v4 can only close the socket, and the status is lost.
    let mut proc = pods
        .exec("b2", ["tar", "xf", "-"], &params)
        .await
        .expect("exec");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(&tar).await.expect("write");
    // Dropping the writer is not enough: only shutdown ends kube's stdin stream.
    stdin.shutdown().await.expect("close stdin");
    drop(stdin);
    let status = within("status", proc.take_status().expect("status")).await;
    assert!(
        status.is_none(),
        "v4 cannot deliver a status after stdin closed: {status:?}"
    );
    let _ = within("join", proc.join()).await;
    fake.wait_until("both execs recorded", LIMIT, |f| f.execs().len() == 2)
        .await;
    let records = fake.execs();
    assert!(
        records
            .iter()
            .all(|r| r.request.protocol == "v4.channel.k8s.io")
    );
    assert!(records[0].status_sent && !records[1].status_sent);
    assert!(records.iter().all(|r| r.stdin == tar));
}

#[tokio::test]
async fn kaniko_style_pod_runs_after_the_context_upload() {
    let fake = FakeKube::start();
    fake.on_pod_created(|pod| {
        (pod["metadata"]["labels"]["devspace-build"] == "true")
            .then(|| PodScript::kaniko_build("context", "INFO[0001] Pushed image\n", 0))
    });
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let created = pods
        .create(&PostParams::default(), &build_pod("kaniko-1"))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.expect("rv");
    let stream = pods
        .watch(
            &WatchParams::default()
                .fields("metadata.name=kaniko-1")
                .timeout(60),
            &rv,
        )
        .await
        .expect("watch");
    let mut stream = std::pin::pin!(stream);
    // Wait for the init container to run, as the builder does before uploading.
    loop {
        let event = within("init running", stream.try_next())
            .await
            .expect("watch")
            .expect("event");
        if let WatchEvent::Modified(p) = event {
            let init = p
                .status
                .and_then(|s| s.init_container_statuses)
                .unwrap_or_default();
            if init
                .first()
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some())
            {
                break;
            }
        }
    }
    let params = upload_params();
    let mut proc = pods
        .exec("kaniko-1", ["tar", "xf", "-"], &params)
        .await
        .expect("exec");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(&context_tar()).await.expect("upload");
    // Dropping the writer is not enough: only shutdown ends kube's stdin stream.
    stdin.shutdown().await.expect("close stdin");
    drop(stdin);
    within("upload status", proc.take_status().expect("status"))
        .await
        .expect("status");
    // The script continues after the upload: the executor runs, logs and succeeds.
    loop {
        let event = within("pod done", stream.try_next())
            .await
            .expect("watch")
            .expect("event");
        if let WatchEvent::Modified(p) = event
            && p.status.and_then(|s| s.phase).as_deref() == Some("Succeeded")
        {
            break;
        }
    }
    let logs = pods
        .logs(
            "kaniko-1",
            &LogParams {
                container: Some("kaniko".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect("logs");
    assert_eq!(logs, "INFO[0001] Pushed image\n");
    // Deleting by label removes only the build pods.
    pods.create(&PostParams::default(), &pod("bystander"))
        .await
        .expect("bystander");
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("devspace-build=true"),
    )
    .await
    .expect("delete collection");
    let left: Vec<_> = fake
        .list("v1", "Pod", Some("default"))
        .into_iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(left, ["bystander"]);
}

#[tokio::test]
async fn https_with_the_ca_from_the_kubeconfig_including_exec() {
    require_services!();
    let fake = FakeKube::start_with(FakeOptions {
        tls: true,
        ..FakeOptions::default()
    });
    assert!(
        fake.url().starts_with("https://127.0.0.1:"),
        "{}",
        fake.url()
    );
    let kubeconfig = std::fs::read_to_string(fake.kubeconfig()).expect("kubeconfig");
    assert!(
        kubeconfig.contains("certificate-authority-data: "),
        "{kubeconfig}"
    );
    let client = fake.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    running_build_pod(&fake, &pods, "tls").await;
    let params = upload_params();
    let mut proc = within(
        "exec over https",
        pods.exec("tls", ["tar", "xf", "-"], &params),
    )
    .await
    .expect("exec over https");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(&context_tar()).await.expect("upload");
    stdin.shutdown().await.expect("close stdin");
    let status = within("status", proc.take_status().expect("status"))
        .await
        .expect("status");
    assert_eq!(status.status.as_deref(), Some("Success"));
    fake.wait_until("exec recorded", LIMIT, |f| f.execs().len() == 1)
        .await;
    assert_eq!(
        tar_paths(&fake.execs()[0].stdin),
        ["Dockerfile", "src/main.sh"]
    );
    // Without the CA the server is not trusted.
    let untrusted = reqwest::Client::new()
        .get(format!("{}/version", fake.url()))
        .send()
        .await;
    assert!(
        untrusted.is_err(),
        "a client without the CA must refuse the certificate"
    );
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let fake = FakeKube::start_with(FakeOptions {
        token: "right".into(),
        ..FakeOptions::default()
    });
    let wrong = fake
        .kubeconfig_yaml()
        .replace("token: right", "token: wrong");
    let path = fake.dir().join("wrong-kubeconfig");
    std::fs::write(&path, wrong).expect("write");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client);
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("unauthorized");
    assert_eq!(api_error(err).0, 401);
}

#[test]
fn merge_and_strategic_patches() {
    let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [{"name": "x", "v": 1}]});
    fake_patch::merge_patch(
        &mut target,
        &json!({"b": {"c": null, "e": 4}, "l": [{"name": "y"}]}),
    );
    assert_eq!(
        target,
        json!({"a": 1, "b": {"d": 3, "e": 4}, "l": [{"name": "y"}]})
    );
    let mut target = json!({"l": [{"name": "x", "v": 1}], "s": [1, 2]});
    fake_patch::strategic_merge_patch(
        &mut target,
        &json!({"l": [{"name": "x", "v": 2}, {"name": "y"}], "s": [3]}),
    );
    assert_eq!(
        target,
        json!({"l": [{"name": "x", "v": 2}, {"name": "y"}], "s": [3]})
    );
}

#[test]
fn json_patch_operations() {
    let cases = [
        (
            json!({"a": [1]}),
            json!([{"op": "add", "path": "/a/-", "value": 2}]),
            Some(json!({"a": [1, 2]})),
        ),
        (
            json!({"a": [1, 2]}),
            json!([{"op": "remove", "path": "/a/0"}]),
            Some(json!({"a": [2]})),
        ),
        (
            json!({"a/b": 1}),
            json!([{"op": "replace", "path": "/a~1b", "value": 5}]),
            Some(json!({"a/b": 5})),
        ),
        (
            json!({"a": 1}),
            json!([{"op": "move", "from": "/a", "path": "/b"}]),
            Some(json!({"b": 1})),
        ),
        (
            json!({"a": 1}),
            json!([{"op": "copy", "from": "/a", "path": "/b"}]),
            Some(json!({"a": 1, "b": 1})),
        ),
        (
            json!({"a": 1}),
            json!([{"op": "test", "path": "/a", "value": 2}]),
            None,
        ),
        (
            json!({"a": 1}),
            json!([{"op": "replace", "path": "/missing", "value": 2}]),
            None,
        ),
    ];
    for (mut target, patch, expected) in cases {
        let result = fake_patch::json_patch(&mut target, &patch);
        match expected {
            Some(want) => {
                assert_eq!(result, Ok(()), "{patch}");
                assert_eq!(target, want, "{patch}");
            }
            None => assert!(result.is_err(), "{patch} should fail"),
        }
    }
}

#[test]
fn server_side_apply_ownership() {
    let mut owners = Owners::new();
    let v1 = json!({"kind": "X", "metadata": {"name": "n", "labels": {"a": "1"}}, "spec": {"x": 1, "y": 1}});
    let obj = fake_patch::server_side_apply(None, &v1, "m1", false, &mut owners).expect("create");
    // m1 drops spec.y: it is pruned; m2 sets spec.x differently: conflict unless forced.
    let v2 = json!({"kind": "X", "metadata": {"name": "n"}, "spec": {"x": 1}});
    let obj =
        fake_patch::server_side_apply(Some(&obj), &v2, "m1", false, &mut owners).expect("update");
    assert_eq!(obj["spec"], json!({"x": 1}));
    assert_eq!(
        obj["metadata"]["labels"].get("a"),
        None,
        "dropped label pruned: {obj}"
    );
    let m2 = json!({"kind": "X", "metadata": {"name": "n"}, "spec": {"x": 2, "z": 1}});
    let conflicts = fake_patch::server_side_apply(Some(&obj), &m2, "m2", false, &mut owners)
        .expect_err("conflict");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0].manager.as_str(), conflicts[0].path.as_str()),
        ("m1", "spec.x")
    );
    let obj =
        fake_patch::server_side_apply(Some(&obj), &m2, "m2", true, &mut owners).expect("forced");
    assert_eq!(obj["spec"], json!({"x": 2, "z": 1}));
    assert!(
        !owners.contains_key("m1"),
        "m1 lost its only field: {owners:?}"
    );
}

#[test]
fn selectors_and_query_parsing() {
    use crate::support::kube_fake::store::Selectors;
    let obj = json!({"metadata": {"name": "p", "labels": {"app": "x", "tier": "web"}}, "status": {"phase": "Running"}});
    let matches =
        |l: Option<&str>, f: Option<&str>| Selectors::parse(l, f).expect("parse").matches(&obj);
    assert!(matches(Some("app=x,tier in (web,db)"), None));
    assert!(matches(
        Some("app,!missing"),
        Some("metadata.name=p,status.phase!=Pending")
    ));
    assert!(!matches(Some("app=y"), None));
    assert!(!matches(Some("tier notin (web)"), None));
    assert!(!matches(None, Some("metadata.name=q")));
    let q = crate::support::kube_fake::parse_query(
        "command=sh&command=-c&command=echo%20a%2Bb+c&stdin=true",
    );
    assert_eq!(
        q,
        [
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo a+b c"),
            ("stdin", "true")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}
