//! `devspace` against a real Kubernetes API server: the control plane `scripts/kube-up.sh`
//! builds from the published Go modules and starts on loopback (see `support::kube_real`).
//! Real validation, server-side apply with its field managers, discovery of a CRD applied a
//! moment before, the controller manager's `default` ServiceAccount and RBAC answer here, which
//! the fake (`support::kube_fake`) only imitates.
//!
//! Every test has its own namespace (deleted afterwards) and quickstart copy, so tests run in
//! parallel. Without the cluster every test fails with one line saying how to start it.

use crate::support::harness::{Project as Quickstart, SERVICES};
use crate::support::kube_real::RealKube;
use crate::support::project::{Devspace, Output, TempProject};
use crate::support::stand_in::{HELM_COPYING_VALUES, StandIns};
use base64::Engine as _;
use devspace::builder::BuildRequest;
use devspace::builder::kaniko::pod::{PodPlan, build_pod};
use devspace::config::model::KanikoConfig;
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::time::Duration;

/// The htpasswd registry of `scripts/services.sh` and its test-only account.
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
const USER: &str = "devspace";
const PASSWORD: &str = "devspace-test";
const SECRET: &str = "devspace-auth-127-0-0-1-5001";

fn deploy(q: &Quickstart, kube: &RealKube, args: &[&str]) -> Output {
    q.devspace()
        .kubeconfig(kube.kubeconfig())
        .arg("deploy")
        .args(args)
        .run()
}

/// A project of a test's own (not the quickstart) with its own empty `HOME`.
struct Project {
    files: TempProject,
    home: TempProject,
}

impl Project {
    fn new() -> Self {
        Project {
            files: TempProject::new(),
            home: TempProject::new(),
        }
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> &Self {
        self.files.write(rel, text);
        self
    }

    /// `devspace` in the project against `kube` (its namespace).
    fn devspace(&self, kube: &RealKube) -> Devspace {
        self.files
            .devspace()
            .home(self.home.path())
            .kubeconfig(kube.kubeconfig())
    }
}

fn deployment(kube: &RealKube, namespace: &str, name: &str) -> Value {
    kube.get("apps/v1", "Deployment", namespace, name)
        .unwrap_or_else(|| panic!("deployment {namespace}/{name} is not stored"))
}

fn image_of(deployment: &Value) -> String {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned()
}

fn pull_secret_names(kube: &RealKube, namespace: &str) -> Vec<String> {
    let sa = kube
        .get("v1", "ServiceAccount", namespace, "default")
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

/// The managed-fields entry of our field manager (its time changes with every write).
fn our_fields(object: &Value) -> Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["manager"] == "devspace"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The field managers that own parts of `object`.
fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f["manager"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn quickstart_deploy_creates_then_leaves_unchanged_then_configures() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    let q = Quickstart::quickstart(AUTH_REGISTRY).with_auths(USER, PASSWORD);
    assert!(pull_secret_names(&kube, &ns).is_empty());

    let first = deploy(&q, &kube, &[]);
    first.assert_success().assert_output_lacks(PASSWORD);
    for service in SERVICES {
        first.assert_stderr_contains(&format!("[quickstart] deployment.apps/{service} created"));
        if service != "worker" {
            first.assert_stderr_contains(&format!("[quickstart] service/{service} created"));
        }
        let stored = deployment(&kube, &ns, service);
        assert_eq!(image_of(&stored), q.image(service), "{}", first.describe());
        assert!(
            managers(&stored).iter().any(|m| m == "devspace"),
            "not applied by the devspace field manager: {:?}",
            managers(&stored)
        );
    }

    // The pull secret, exactly as kubectl create secret docker-registry would make it.
    let secret = kube
        .get("v1", "Secret", &ns, SECRET)
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
    assert_eq!(pull_secret_names(&kube, &ns), [SECRET]);
    let secret_version = resource_version(&secret);

    // Nothing changed: every object unchanged, nothing written. (resourceVersions are no
    // measure here: the deployment controller writes status meanwhile.)
    let written = || -> Vec<Value> {
        SERVICES
            .iter()
            .flat_map(|s| {
                let d = deployment(&kube, &ns, s);
                let mut marks = vec![d["metadata"]["generation"].clone(), our_fields(&d)];
                if *s != "worker" {
                    let svc = kube.get("v1", "Service", &ns, s).expect("service");
                    marks.push(Value::from(resource_version(&svc)));
                }
                marks
            })
            .collect()
    };
    let before = written();
    let second = deploy(&q, &kube, &[]);
    second.assert_success();
    for service in SERVICES {
        second.assert_stderr_contains(&format!("[quickstart] deployment.apps/{service} unchanged"));
        if service != "worker" {
            second.assert_stderr_contains(&format!("[quickstart] service/{service} unchanged"));
        }
        second.assert_stderr_contains(&format!("[{service}] skip"));
    }
    assert_eq!(written(), before, "an unchanged apply wrote the objects");
    assert_eq!(pull_secret_names(&kube, &ns), [SECRET], "patched twice");
    let secret = kube.get("v1", "Secret", &ns, SECRET).expect("secret");
    assert_eq!(
        resource_version(&secret),
        secret_version,
        "secret rewritten"
    );

    // An edit: a manifest changes and the production profile retags api.
    let worker = q.project.read("k8s/worker.yaml");
    assert!(worker.contains("replicas: 1"), "{worker}");
    q.project.write(
        "k8s/worker.yaml",
        worker.replace("replicas: 1", "replicas: 2"),
    );
    let third = deploy(&q, &kube, &["-p", "production"]);
    third.assert_success();
    third.assert_stderr_contains("[quickstart] deployment.apps/api configured");
    third.assert_stderr_contains("[quickstart] deployment.apps/worker configured");
    third.assert_stderr_contains("[quickstart] deployment.apps/web unchanged");
    let api = deployment(&kube, &ns, "api");
    assert_eq!(image_of(&api), format!("{}-production", q.image("api")));
    assert_eq!(deployment(&kube, &ns, "worker")["spec"]["replicas"], 2);
    assert_eq!(image_of(&deployment(&kube, &ns, "web")), q.image("web"));

    // --skip-build deploys the tags recorded by the last build.
    kube.delete("apps/v1", "Deployment", &ns, "api");
    kube.wait_for("api deleted", Duration::from_secs(30), || {
        kube.get("apps/v1", "Deployment", &ns, "api")
            .is_none()
            .then_some(())
    });
    let skipped = deploy(&q, &kube, &["--skip-build", "-p", "production"]);
    skipped.assert_success();
    assert!(
        !skipped.stderr.contains("building"),
        "--skip-build ran the build\n{}",
        skipped.describe()
    );
    skipped.assert_stderr_contains("[quickstart] deployment.apps/api created");
    assert_eq!(
        image_of(&deployment(&kube, &ns, "api")),
        format!("{}-production", q.image("api"))
    );
}

#[test]
fn namespace_flag_with_a_namespace_that_does_not_exist_yet() {
    let kube = RealKube::start();
    let fresh = format!("{}-new", kube.namespace());
    kube.forget_later(&fresh);
    assert!(kube.get("v1", "Namespace", "", &fresh).is_none());
    let q = Quickstart::quickstart("127.0.0.1:5000");
    let out = deploy(&q, &kube, &["-n", &fresh, "--skip-push"]);
    out.assert_success();
    assert!(
        kube.get("v1", "Namespace", "", &fresh).is_some(),
        "namespace {fresh} was not created\n{}",
        out.describe()
    );
    for service in SERVICES {
        assert_eq!(
            image_of(&deployment(&kube, &fresh, service)),
            q.image(service)
        );
        out.assert_stderr_contains(&format!("[quickstart] deployment.apps/{service} created"));
    }
    assert!(
        kube.list("apps/v1", "Deployment", kube.namespace())
            .is_empty(),
        "deployed into the context's namespace despite -n"
    );
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.NS.devspace.test
spec:
  group: NS.devspace.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                image: {type: string}
                size: {type: integer}
";

const WIDGET: &str = "apiVersion: NS.devspace.test/v1
kind: Widget
metadata:
  name: gadget
spec:
  image: 127.0.0.1:5000/widget
  size: 3
";

#[test]
fn crd_and_an_instance_of_it_in_one_deploy() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    // A group of its own per test: CRDs are cluster-wide.
    let crd_name = format!("widgets.{ns}.devspace.test");
    let project = Project::new();
    project
        .write("devspace.yaml", "version: v1beta9\ndeployments:\n  - name: widgets\n    kubectl:\n      manifests:\n        - crd.yaml\n        - widget.yaml\n")
        .write("crd.yaml", CRD.replace("NS", &ns))
        .write("widget.yaml", WIDGET.replace("NS", &ns));
    let run = || project.devspace(&kube).arg("deploy").run();
    let out = run();
    let cleanup = CrdCleanup(&kube, &crd_name);
    out.assert_success();
    out.assert_stderr_contains(&format!(
        "customresourcedefinition.apiextensions.k8s.io/{crd_name} created"
    ));
    out.assert_stderr_contains(&format!("widget.{ns}.devspace.test/gadget created"));
    let widget = kube
        .get(&format!("{ns}.devspace.test/v1"), "Widget", &ns, "gadget")
        .expect("widget stored");
    assert_eq!(widget["spec"]["size"], 3);

    let again = run();
    again.assert_success();
    again.assert_stderr_contains(&format!("widget.{ns}.devspace.test/gadget unchanged"));
    drop(cleanup);
}

#[test]
fn unknown_kind_fails_alone_with_a_hint() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    let project = Project::new();
    project
        .write(
            "devspace.yaml",
            "version: v1beta9\ndeployments:\n  - name: mixed\n    kubectl:\n      manifests: [k8s.yaml]\n",
        )
        .write(
            "k8s.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        );
    let out = project.devspace(&kube).arg("deploy").run();
    out.assert_failure();
    out.assert_stderr_contains("the cluster does not serve kind `Widget` in `example.com/v1`");
    out.assert_stderr_contains("hint: is the CRD installed");
    out.assert_stderr_contains("[mixed] configmap/c created");
    assert_eq!(
        kube.get("v1", "ConfigMap", &ns, "c").expect("configmap")["data"]["a"],
        "b"
    );
}

/// Deletes a cluster-scoped CRD when the test ends, passed or not.
struct CrdCleanup<'a>(&'a RealKube, &'a str);

impl Drop for CrdCleanup<'_> {
    fn drop(&mut self) {
        self.0.delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            self.1,
        );
    }
}

/// Adds a Helm deployment of a local chart whose values name the api image.
fn add_helm_deployment(q: &Quickstart) {
    q.project.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: api-chart\nversion: 0.1.0\n",
    );
    let config = q.project.read("devspace.yaml");
    let helm = format!(
        "  - name: api-chart\n    helm:\n      chart:\n        name: ./chart\n      values:\n        image: {repository}\n        env:\n          UPSTREAM: see {repository} docs\n",
        repository = q.repository("api")
    );
    let config = config.replacen("\nprofiles:", &format!("{helm}\nprofiles:"), 1);
    q.project.write("devspace.yaml", config);
}

#[test]
fn helm_deployment_through_a_stand_in_helm_next_to_real_objects() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    let stand_ins = StandIns::new();
    stand_ins.install("helm", HELM_COPYING_VALUES);
    let q = Quickstart::quickstart("127.0.0.1:5000").with_path(stand_ins.dir(), true);
    add_helm_deployment(&q);

    let out = deploy(&q, &kube, &["--skip-push"]);
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
    let at = argv
        .iter()
        .position(|a| a == "--namespace")
        .expect("--namespace");
    assert_eq!(argv[at + 1], ns);
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
    assert_eq!(image_of(&deployment(&kube, &ns, "api")), q.image("api"));
}

#[test]
fn user_without_rights_gets_forbidden_naming_verb_resource_and_namespace() {
    let kube = RealKube::start();
    let own = kube.namespace().to_owned();
    let other = format!("{own}-other");
    kube.extra_namespace(&other);
    // A ServiceAccount that may edit its own namespace only.
    kube.create(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "limited", "namespace": own},
    }))
    .expect("service account");
    kube.create(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "limited-edit", "namespace": own},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": own}],
    }))
    .expect("role binding");
    let kubeconfig = kube.service_account_kubeconfig("limited", &own);
    let q = Quickstart::quickstart("127.0.0.1:5000");

    // In its own namespace the user deploys.
    let ok = q
        .devspace()
        .kubeconfig(&kubeconfig)
        .args(["deploy", "--skip-push"])
        .run();
    ok.assert_success();
    assert_eq!(image_of(&deployment(&kube, &own, "api")), q.image("api"));

    // In the other one the server refuses, and the error says what was refused where.
    let denied = q
        .devspace()
        .kubeconfig(&kubeconfig)
        .args(["deploy", "--skip-build", "-n", &other])
        .run();
    denied.assert_failure();
    let text = denied.stderr.clone();
    for needle in [
        "forbidden",
        &format!("resource \"deployments\" in API group \"apps\" in the namespace \"{other}\""),
        &format!("system:serviceaccount:{own}:limited"),
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` missing\n{}",
            denied.describe()
        );
    }
    // The verb: the read before the apply is what is refused first.
    assert!(
        text.contains("cannot get resource") || text.contains("cannot patch resource"),
        "{}",
        denied.describe()
    );
    assert!(kube.list("apps/v1", "Deployment", &other).is_empty());
}

fn kaniko_request() -> BuildRequest {
    BuildRequest {
        image_key: "api".into(),
        repository: "127.0.0.1:5000/app".into(),
        tags: vec!["v1".into(), "latest".into()],
        dockerfile: "Dockerfile".into(),
        build_args: IndexMap::from([("A".to_string(), Some("1".to_string()))]),
        target: Some("prod".into()),
        ..BuildRequest::default()
    }
}

/// Every field of `sent` is in `stored` with the same value. The server adds defaults, and
/// admission appends the ServiceAccount token volume (and its mounts) and the not-ready /
/// unreachable tolerations, so those lists may gain entries at their end.
fn assert_contained(sent: &Value, stored: &Value, path: &str) {
    match (sent, stored) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let inner = format!("{path}.{k}");
                let other = b
                    .get(k)
                    .unwrap_or_else(|| panic!("{inner} dropped by the server"));
                assert_contained(v, other, &inner);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let appended = ["volumes", "volumeMounts", "tolerations"]
                .iter()
                .any(|list| path.ends_with(list));
            if appended {
                assert!(a.len() <= b.len(), "{path}: {sent} became {stored}");
            } else {
                assert_eq!(a.len(), b.len(), "{path}: {sent} became {stored}");
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_contained(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(sent, stored, "{path}"),
    }
}

#[test]
fn kaniko_pod_passes_real_validation_unchanged() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    let config: KanikoConfig = serde_json::from_value(json!({
        "cache": true,
        "snapshotMode": "redo",
        "args": ["--verbosity=debug"],
        "insecure": true,
        "additionalMounts": [
            {"secret": {"name": "extra", "items": [{"key": "a", "path": "b"}]},
             "mountPath": "/extra", "readOnly": true},
            {"configMap": {"name": "settings"}, "mountPath": "/settings"}
        ],
        "resources": {"limits": {"memory": "2Gi", "cpu": "2"}, "requests": {"memory": "256Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "annotations": {"example.com/who": "devspace"},
        "labels": {"team": "a"},
        "initEnv": {"INIT": "1"},
        "env": {"GODEBUG": "x=1"},
        "envFrom": {"configMapRef": {"name": "settings"}},
        "tolerations": [{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}],
    }))
    .expect("kaniko config");
    let request = kaniko_request();
    let pod = build_pod(&PodPlan {
        name: "devspace-build-api-abcde".into(),
        namespace: ns.clone(),
        build_id: "0123456789ab".into(),
        request: &request,
        config: &config,
        pull_secret: Some("devspace-auth-127-0-0-1-5000".into()),
    })
    .expect("pod");
    let sent = serde_json::to_value(&pod).expect("pod JSON");
    let mut body = sent.clone();
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("Pod");
    let created = kube
        .create(body)
        .unwrap_or_else(|status| panic!("the API server rejected the build pod: {status:?}"));
    let stored = kube
        .get("v1", "Pod", &ns, "devspace-build-api-abcde")
        .expect("pod read back");
    assert_eq!(created["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_contained(
        &sent["metadata"]["labels"],
        &stored["metadata"]["labels"],
        "labels",
    );
    assert_contained(
        &sent["metadata"]["annotations"],
        &stored["metadata"]["annotations"],
        "annotations",
    );
    assert_contained(&sent["spec"], &stored["spec"], "spec");
    kube.delete("v1", "Pod", &ns, "devspace-build-api-abcde");
}

/// A project whose one image is built by kaniko; `nodeSelector` names a node that never
/// exists, so the pod cannot start whether or not the cluster has a node.
fn kaniko_project() -> Project {
    let p = Project::new();
    p.write("Dockerfile", "FROM busybox\nCMD [\"true\"]\n").write(
        "devspace.yaml",
        "version: v1beta9\nimages:\n  app:\n    image: 127.0.0.1:5000/app\n    tags: [v1]\n    build:\n      kaniko:\n        nodeSelector:\n          devspace.test/no-such-node: \"true\"\n",
    );
    p
}

#[test]
fn kaniko_pod_that_cannot_start_times_out_clearly_and_is_deleted() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    let project = kaniko_project();
    let out = project
        .devspace(&kube)
        .env("DEVSPACE_KANIKO_TIMEOUT", "8s")
        .arg("build")
        .run();
    out.assert_failure();
    let text = out.combined();
    // Without a scheduler the pod stays Pending until the timeout; with one (Level 2) the
    // scheduler reports it unschedulable first.
    assert!(
        (text.contains("did not finish within 8s") && text.contains("Pending"))
            || text.contains("cannot be scheduled"),
        "{}",
        out.describe()
    );
    if text.contains("did not finish within") {
        assert!(
            text.contains("DEVSPACE_KANIKO_TIMEOUT"),
            "{}",
            out.describe()
        );
    }
    assert!(
        text.contains("kaniko: building in pod"),
        "the pod was never created\n{}",
        out.describe()
    );
    // Deleted: an unscheduled pod goes at once.
    let left = kube.wait_for("the build pod deleted", Duration::from_secs(30), || {
        let pods = kube.list("v1", "Pod", &ns);
        pods.is_empty().then_some(pods)
    });
    assert!(left.is_empty());
}

const NON_CANONICAL: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: sized
spec:
  selector:
    matchLabels: {app: sized}
  template:
    metadata:
      labels: {app: sized}
    spec:
      containers:
        - name: main
          image: 127.0.0.1:5000/sized:v1
          resources:
            limits: {memory: 2048Mi, cpu: \"0.5\"}
---
apiVersion: v1
kind: Service
metadata:
  name: sized
spec:
  selector: {app: sized}
  ports:
    - port: 80
";

/// A manifest the server normalises (quantities stored canonically, defaults filled in) is
/// still `unchanged` on the next deploy.
#[test]
fn normalised_and_defaulted_fields_stay_unchanged() {
    let kube = RealKube::start();
    let ns = kube.namespace().to_owned();
    let project = Project::new();
    project
        .write("devspace.yaml", "version: v1beta9\ndeployments:\n  - name: sized\n    kubectl:\n      manifests: [sized.yaml]\n")
        .write("sized.yaml", NON_CANONICAL);
    let run = || project.devspace(&kube).arg("deploy").run();
    let first = run();
    first.assert_success();
    first.assert_stderr_contains("[sized] deployment.apps/sized created");
    let stored = deployment(&kube, &ns, "sized");
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"],
        json!({"cpu": "500m", "memory": "2Gi"}),
        "the server stores quantities canonically"
    );
    let marks = |d: &Value| (d["metadata"]["generation"].clone(), our_fields(d));
    let before = marks(&stored);
    let second = run();
    second.assert_success();
    second.assert_stderr_contains("[sized] deployment.apps/sized unchanged");
    second.assert_stderr_contains("[sized] service/sized unchanged");
    assert_eq!(marks(&deployment(&kube, &ns, "sized")), before);
}

// --- Level 2: a node (scheduler + kubelet on containerd) ------------------------------------
// These need `DEVSPACE_KUBE_NODE=1 bash scripts/kube-up.sh` and run with `--ignored`; see the
// README for how far a node gets on the test machines.

/// Waits until deployment `name` has all its replicas ready and up to date with `image`.
fn wait_rolled_out(kube: &RealKube, namespace: &str, name: &str, image: &str) {
    kube.wait_for(
        &format!("deployment {name} running {image}"),
        Duration::from_secs(180),
        || {
            let d = kube.get("apps/v1", "Deployment", namespace, name)?;
            let status = &d["status"];
            let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
            (image_of(&d) == image
                && status["observedGeneration"] == d["metadata"]["generation"]
                && status["updatedReplicas"].as_i64() == Some(want)
                && status["readyReplicas"].as_i64() == Some(want)
                && status["replicas"].as_i64() == Some(want))
            .then_some(())
        },
    );
}

#[test]
#[ignore = "needs a node: DEVSPACE_KUBE_NODE=1 bash scripts/kube-up.sh, then --ignored"]
fn node_runs_the_quickstart_from_the_local_registry() {
    let kube = RealKube::start();
    kube.require_node();
    let ns = kube.namespace().to_owned();
    let q = Quickstart::quickstart("127.0.0.1:5000");
    deploy(&q, &kube, &[]).assert_success();
    for service in SERVICES {
        wait_rolled_out(&kube, &ns, service, &q.image(service));
    }
    let pods = kube.list("v1", "Pod", &ns);
    assert_eq!(pods.len(), SERVICES.len(), "{pods:#?}");
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], "Running", "{pod:#}");
    }
}

#[test]
#[ignore = "needs a node: DEVSPACE_KUBE_NODE=1 bash scripts/kube-up.sh, then --ignored"]
fn node_dev_rolls_the_deployment_to_the_new_tag() {
    let kube = RealKube::start();
    kube.require_node();
    let ns = kube.namespace().to_owned();
    let q = Quickstart::quickstart("127.0.0.1:5000").without_tags();
    let mut dev = q
        .devspace()
        .kubeconfig(kube.kubeconfig())
        .arg("dev")
        .spawn();
    dev.wait_for_output("[dev] watching 3 image(s)", Duration::from_secs(300));
    let first = image_of(&deployment(&kube, &ns, "api"));
    wait_rolled_out(&kube, &ns, "api", &first);

    let run_sh = q.project.read("api/run.sh");
    q.project
        .write("api/run.sh", format!("{run_sh}# edited by the node test\n"));
    dev.wait_for_output("[dev] cycle 2:", Duration::from_secs(300));
    let second = image_of(&deployment(&kube, &ns, "api"));
    assert_ne!(first, second, "{}", dev.stderr_so_far());
    wait_rolled_out(&kube, &ns, "api", &second);
    let images: Vec<String> = kube
        .list("v1", "Pod", &ns)
        .iter()
        .filter(|p| p["metadata"]["labels"]["app.kubernetes.io/name"] == "api")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(images, [second], "the old pod still runs");
    dev.interrupt();
    dev.wait().assert_success();
}

/// The kaniko executor image `DEVSPACE_KUBE_NODE=1 scripts/kube-up.sh` builds from the Go module
/// and imports into the node's containerd.
const EXECUTOR_IMAGE: &str = "devspace.local/kaniko-executor:v1.24.0";
/// The plain registry's storage as pods reach it (they cannot reach the host's 127.0.0.1).
const NODE_REGISTRY: &str = "10.255.255.1:5000";

fn docker(args: &[&str]) {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs a node: DEVSPACE_KUBE_NODE=1 bash scripts/kube-up.sh, then --ignored"]
fn node_kaniko_builds_and_pushes_end_to_end() {
    let kube = RealKube::start();
    kube.require_node();
    let ns = kube.namespace().to_owned();
    let unique = format!("{:08x}", rand::random::<u32>());
    // The base image, in the registry the pod reaches (nothing can be pulled from Docker Hub).
    let base = format!("127.0.0.1:5000/kaniko-base-{unique}/busybox:1");
    docker(&["tag", "busybox:latest", &base]);
    docker(&["push", "-q", &base]);
    docker(&["rmi", "--no-prune", &base]);
    let repository = format!("{NODE_REGISTRY}/kaniko-{unique}/app");
    let project = Project::new();
    project
        .write(
            "Dockerfile",
            format!(
                "FROM {NODE_REGISTRY}/kaniko-base-{unique}/busybox:1\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt && echo built-by-kaniko > /built\n"
            ),
        )
        .write("hello.txt", format!("hello {unique}\n"))
        .write("ignored.log", "left out by .dockerignore\n")
        .write(".dockerignore", "*.log\n")
        .write(
            "devspace.yaml",
            format!(
                "version: v1beta9\nimages:\n  app:\n    image: {repository}\n    tags: [v1]\n    build:\n      kaniko:\n        image: {EXECUTOR_IMAGE}\n        initImage: busybox\n        insecure: true\n        cache: false\n        args: [\"--insecure-pull\"]\n"
            ),
        );
    let out = project
        .devspace(&kube)
        .env("DEVSPACE_KANIKO_TIMEOUT", "5m")
        .args(["build", "--debug"])
        .run();
    out.assert_success();
    let text = out.combined();
    assert!(
        text.contains(&format!("kaniko: building in pod {ns}/devspace-build-app-")),
        "{}",
        out.describe()
    );
    // The executor's own log, forwarded: it ran the RUN step on the uploaded file.
    assert!(
        text.contains(&format!("hello {unique}")),
        "{}",
        out.describe()
    );
    // Pushed: the manifest is in the registry (same storage on 127.0.0.1:5000).
    let manifest = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://127.0.0.1:5000/v2/kaniko-{unique}/app/manifests/v1"),
        ])
        .output()
        .expect("curl");
    assert!(
        manifest.status.success(),
        "v1 not pushed\n{}",
        out.describe()
    );
    // The pod is gone.
    kube.wait_for("the build pod deleted", Duration::from_secs(60), || {
        kube.list("v1", "Pod", &ns).is_empty().then_some(())
    });
}
