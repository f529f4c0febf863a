//! Deploy without a cluster: manifest loading (files, directories, globs, kustomize), Helm
//! values assembly and merge order, tag replacement through `render`, and round trips proving
//! that only the replaced values change.

use devspace::config::{
    Config, DeploymentConfig, HelmChart, HelmDeployment, ImageConfig, KubectlDeployment,
};
use devspace::deploy::manifests::{ManifestObject, find_kustomize, resolve_manifest_files};
use devspace::deploy::{
    DeployError, ImageTable, ImageTag, RenderedKind, Scope, format_rendered, helm, render,
    replace_tags,
};
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

fn image(repository: &str) -> ImageConfig {
    ImageConfig {
        image: repository.to_owned(),
        ..ImageConfig::default()
    }
}

/// Images `app` = `john/app` (tag `abc12`), `web` = `nginx` (tag `fresh`) and `long`, a long
/// registry path (tag `abc12`).
fn project(deployments: Vec<DeploymentConfig>) -> (Config, ImageTable) {
    let mut images = IndexMap::new();
    images.insert("app".to_owned(), image("john/app"));
    images.insert("web".to_owned(), image("docker.io/library/nginx"));
    images.insert(
        "long".to_owned(),
        image("registry.a-rather-long-company-domain.example.com:5000/group/subgroup/service"),
    );
    let config = Config {
        version: "v1beta9".into(),
        images,
        deployments,
        ..Config::default()
    };
    let mut tags = IndexMap::new();
    tags.insert("app".to_owned(), ImageTag::new("abc12"));
    tags.insert("web".to_owned(), ImageTag::new("fresh"));
    tags.insert("long".to_owned(), ImageTag::new("abc12"));
    let table = ImageTable::new(&config, &tags, false);
    (config, table)
}

fn kubectl(name: &str, manifests: &[&str]) -> DeploymentConfig {
    DeploymentConfig {
        name: name.to_owned(),
        kubectl: Some(KubectlDeployment {
            manifests: manifests.iter().map(|m| (*m).to_owned()).collect(),
            ..KubectlDeployment::default()
        }),
        ..DeploymentConfig::default()
    }
}

fn relative(root: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn manifest_entries_files_dirs_and_globs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for rel in [
        "k8s/b.yaml",
        "k8s/a.yml",
        "k8s/notes.txt",
        "k8s/nested/c.yaml",
        "extra/x.yaml",
        "extra/deep/y.yaml",
        "single.yaml",
    ] {
        write(root, rel, "a: 1\n");
    }
    let cases: &[(&[&str], &[&str])] = &[
        // A directory: its yaml/yml files, sorted, not recursive.
        (&["k8s"], &["k8s/a.yml", "k8s/b.yaml"]),
        (&["k8s/"], &["k8s/a.yml", "k8s/b.yaml"]),
        (&["single.yaml"], &["single.yaml"]),
        // `*` stays within one directory, `**` crosses them.
        (&["extra/*.yaml"], &["extra/x.yaml"]),
        (
            &["**/*.yaml"],
            &[
                "extra/deep/y.yaml",
                "extra/x.yaml",
                "k8s/b.yaml",
                "k8s/nested/c.yaml",
                "single.yaml",
            ],
        ),
        (&["./k8s/*.y*ml"], &["k8s/a.yml", "k8s/b.yaml"]),
        // Entry order is kept, each file once.
        (
            &["single.yaml", "k8s", "k8s/b.yaml"],
            &["single.yaml", "k8s/a.yml", "k8s/b.yaml"],
        ),
    ];
    for (entries, expected) in cases {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        let files = resolve_manifest_files("d", root, &entries).expect("resolves");
        assert_eq!(relative(root, &files), *expected, "{entries:?}");
    }
    let absolute = root.join("single.yaml").to_string_lossy().into_owned();
    let files = resolve_manifest_files("d", root, &[absolute]).expect("absolute path");
    assert_eq!(relative(root, &files), ["single.yaml"]);
}

#[test]
fn manifest_entries_that_match_nothing_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "k8s/readme.txt", "x");
    for entry in ["missing.yaml", "k8s", "k8s/*.yaml", "nowhere/**/*.yaml"] {
        let err = resolve_manifest_files("backend", root, &[entry.to_owned()])
            .expect_err("nothing matches");
        assert!(
            matches!(&err, DeployError::NoManifest { deployment, pattern } if deployment == "backend" && pattern == entry),
            "{entry}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(entry) && message.contains("backend"),
            "{message}"
        );
    }
    let err = resolve_manifest_files("d", root, &["k8s/[.yaml".to_owned()]).expect_err("bad glob");
    assert!(matches!(err, DeployError::BadGlob { .. }), "{err}");
}

const DEPLOYMENT: &str = "# The app, with a comment that must survive.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels:
    image: nginx   # a label, not an image
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: 'nginx:1.25'
      containers:
      - name: app
        image: john/app:old  # replaced
        env:
        - name: UPSTREAM
          value: nginx
        args: [\"john/app\"]
      - name: sidecar
        image: busybox
---
# CRD instance
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
  namespace: other
spec:
  runner:
    image: \"docker.io/john/app\"
";

#[test]
fn render_kubectl_replaces_only_image_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "k8s/app.yaml", DEPLOYMENT);
    write(
        root,
        "k8s/svc.yml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: app\n",
    );
    let (config, table) = project(vec![kubectl("backend", &["k8s"])]);
    let rendered = render(&config, root, &table).expect("renders");
    assert_eq!(rendered.len(), 1);
    let expected_app = DEPLOYMENT
        .replace("image: 'nginx:1.25'", "image: 'nginx:fresh'")
        .replace("image: john/app:old  #", "image: john/app:abc12  #")
        .replace(
            "image: \"docker.io/john/app\"",
            "image: \"docker.io/john/app:abc12\"",
        );
    assert_eq!(
        rendered[0].text,
        format!(
            "# Source: k8s/app.yaml\n{expected_app}---\n# Source: k8s/svc.yml\napiVersion: v1\nkind: Service\nmetadata:\n  name: app\n"
        )
    );
    let RenderedKind::Kubectl { objects } = &rendered[0].kind else {
        panic!("kubectl deployment rendered as helm");
    };
    let seen: Vec<_> = objects.iter().map(ManifestObject::identity).collect();
    assert_eq!(
        seen,
        [
            ("apps/v1", "Deployment", None, "app"),
            ("example.com/v1", "Widget", Some("other"), "w"),
            ("v1", "Service", None, "app"),
        ]
    );
    let pod = &objects[0].body["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "john/app:abc12");
    assert_eq!(pod["containers"][0]["env"][0]["value"], "nginx");
    assert_eq!(pod["initContainers"][0]["image"], "nginx:fresh");
    assert_eq!(objects[0].body["metadata"]["labels"]["image"], "nginx");
    assert_eq!(rendered[0].matched_images(), ["web", "app"]);
    assert_eq!(rendered[0].replacements.len(), 3);
}

/// Round trip: parse input and output; they must be equal once the expected values are set.
#[test]
fn round_trip_changes_only_replaced_values() {
    let (_, table) = project(Vec::new());
    let out = replace_tags(DEPLOYMENT, Scope::Manifest, &table).expect("valid");
    let mut before: Vec<Value> = serde_saphyr::from_multiple(DEPLOYMENT).expect("input");
    let after: Vec<Value> = serde_saphyr::from_multiple(&out.text).expect("output");
    before[0]["spec"]["template"]["spec"]["initContainers"][0]["image"] = json!("nginx:fresh");
    before[0]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("john/app:abc12");
    before[1]["spec"]["runner"]["image"] = json!("docker.io/john/app:abc12");
    assert_eq!(before, after);
    // Every line that was not replaced is byte-identical.
    let changed: Vec<(&str, &str)> = DEPLOYMENT
        .lines()
        .zip(out.text.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 3, "{changed:#?}");
    assert_eq!(DEPLOYMENT.lines().count(), out.text.lines().count());
}

#[test]
fn replace_image_tags_false_leaves_manifests_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "app.yaml", DEPLOYMENT);
    let mut deployment = kubectl("backend", &["app.yaml"]);
    if let Some(k) = deployment.kubectl.as_mut() {
        k.replace_image_tags = Some(false);
    }
    let (config, table) = project(vec![deployment]);
    let rendered = render(&config, root, &table).expect("renders");
    assert_eq!(
        rendered[0].text,
        format!("# Source: app.yaml\n{DEPLOYMENT}")
    );
    assert!(rendered[0].replacements.is_empty());
}

#[test]
fn kustomize_through_kubectl() {
    let Some(_) = find_kustomize(std::env::var_os("PATH").as_deref()) else {
        panic!("this test needs `kustomize` or `kubectl` in PATH (kubectl is installed here)");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "overlay/kustomization.yaml",
        "resources:\n- app.yaml\nnamespace: demo\n",
    );
    write(
        root,
        "overlay/app.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: john/app\n",
    );
    let mut deployment = kubectl("kz", &["overlay"]);
    if let Some(k) = deployment.kubectl.as_mut() {
        k.kustomize = Some(true);
    }
    let (config, table) = project(vec![deployment]);
    let rendered = render(&config, root, &table).expect("kustomize renders");
    let RenderedKind::Kubectl { objects } = &rendered[0].kind else {
        panic!("kubectl deployment rendered as helm");
    };
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].namespace.as_deref(), Some("demo"));
    assert_eq!(
        objects[0].body["spec"]["containers"][0]["image"],
        "john/app:abc12"
    );
    assert!(
        rendered[0].text.starts_with("# Source: overlay\n"),
        "{}",
        rendered[0].text
    );
}

#[test]
fn kustomize_failure_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "broken/kustomization.yaml",
        "resources:\n- missing.yaml\n",
    );
    let mut deployment = kubectl("kz", &["broken"]);
    if let Some(k) = deployment.kubectl.as_mut() {
        k.kustomize = Some(true);
    }
    let (config, table) = project(vec![deployment]);
    let err = render(&config, root, &table).expect_err("missing resource");
    assert!(matches!(err, DeployError::KustomizeFailed { .. }), "{err}");
    assert!(err.to_string().contains("kz"), "{err}");
}

/// Longer than the YAML writer's fold width, so it would be folded if block scalars were on.
const LONG_REF: &str = "registry.a-rather-long-company-domain.example.com:5000/group/subgroup/service:old-tag-that-is-long";

fn helm_deployment(helm: HelmDeployment) -> DeploymentConfig {
    DeploymentConfig {
        name: "chart".into(),
        helm: Some(helm),
        ..DeploymentConfig::default()
    }
}

#[test]
fn helm_values_merge_order_chart_then_files_then_inline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    write(
        root,
        "chart/values.yaml",
        "# chart defaults\nimage:\n  repository: john/app\n  tag: latest\nreplicas: 1\nfrom: chart\nkeep:\n  a: chart\n  b: chart\n  c: chart\n",
    );
    write(
        root,
        "values/one.yaml",
        "from: one\nkeep:\n  b: one\nlist: [1, 2]\n",
    );
    write(
        root,
        "values/two.yaml",
        "from: two\nkeep:\n  c: two\nlist: [3]\n",
    );
    let helm_config = HelmDeployment {
        chart: Some(HelmChart {
            name: "chart".into(),
            ..HelmChart::default()
        }),
        values_files: vec!["values/one.yaml".into(), "values/two.yaml".into()],
        values: Some(json!({"from": "inline", "replicas": null, "keep": {"c": "inline"}})),
        ..HelmDeployment::default()
    };
    assert_eq!(
        relative(root, &helm::values_sources(root, &helm_config)),
        ["chart/values.yaml", "values/one.yaml", "values/two.yaml"]
    );
    let merged = helm::assemble_values("chart", root, &helm_config).expect("merges");
    assert_eq!(
        merged,
        json!({
            "image": {"repository": "john/app", "tag": "latest"},
            "from": "inline",
            "keep": {"a": "chart", "b": "one", "c": "inline"},
            "list": [3],
        })
    );

    let (config, table) = project(vec![helm_deployment(helm_config)]);
    let rendered = render(&config, root, &table).expect("renders");
    let RenderedKind::Helm { values } = &rendered[0].kind else {
        panic!("helm deployment rendered as kubectl");
    };
    // Split repository/tag: the tag is set, the repository stays bare.
    assert_eq!(
        values["image"],
        json!({"repository": "john/app", "tag": "abc12"})
    );
    let reparsed: Value = serde_saphyr::from_str(&rendered[0].text).expect("values yaml");
    assert_eq!(&reparsed, values);
    let printed = format_rendered(&rendered);
    assert!(
        printed.starts_with("# Deployment: chart (helm values)\n"),
        "{printed}"
    );
}

#[test]
fn helm_values_rules_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let helm_config = HelmDeployment {
        component_chart: Some(true),
        values: Some(json!({
            "containers": [{
                "image": "john/app:dev",
                "env": [{"name": "PROXY", "value": "nginx"}],
            }],
            "labels": {"app": "nginx"},
            "annotations": {"built-from": "john/app"},
            "sidecar": "nginx",
            "command": "john/app --serve",
            "john/app": "key is not replaced",
            "helpers": {"repository": "image(app)", "tag": "tag(web)"},
            "long": LONG_REF,
            "multiline": "john/app\nnginx",
        })),
        ..HelmDeployment::default()
    };
    let (config, table) = project(vec![helm_deployment(helm_config)]);
    let rendered = render(&config, root, &table).expect("renders");
    let RenderedKind::Helm { values } = &rendered[0].kind else {
        panic!("helm deployment rendered as kubectl");
    };
    assert_eq!(
        *values,
        json!({
            "containers": [{
                "image": "john/app:abc12",
                "env": [{"name": "PROXY", "value": "nginx"}],
            }],
            "labels": {"app": "nginx"},
            "annotations": {"built-from": "john/app"},
            "sidecar": "nginx:fresh",
            "command": "john/app --serve",
            "john/app": "key is not replaced",
            "helpers": {"repository": "john/app", "tag": "fresh"},
            "long": "registry.a-rather-long-company-domain.example.com:5000/group/subgroup/service:abc12",
            "multiline": "john/app\nnginx",
        })
    );
    assert!(
        rendered[0].warnings.is_empty(),
        "{:?}",
        rendered[0].warnings
    );
}

#[test]
fn remote_and_component_charts_have_no_chart_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "chart/Chart.yaml", "name: c\n");
    write(root, "chart/values.yaml", "a: 1\n");
    let local = HelmDeployment {
        chart: Some(HelmChart {
            name: "chart".into(),
            ..HelmChart::default()
        }),
        ..HelmDeployment::default()
    };
    assert_eq!(helm::values_sources(root, &local).len(), 1);
    let remote = HelmDeployment {
        chart: Some(HelmChart {
            name: "chart".into(),
            repo: Some("https://charts.example.com".into()),
            ..HelmChart::default()
        }),
        ..HelmDeployment::default()
    };
    assert!(helm::values_sources(root, &remote).is_empty());
    let component = HelmDeployment {
        component_chart: Some(true),
        ..local
    };
    assert!(helm::values_sources(root, &component).is_empty());
}

#[test]
fn render_keeps_config_order_and_names_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "a.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - image: nginx\n",
    );
    let (config, table) = project(vec![
        helm_deployment(HelmDeployment {
            values: Some(json!({"image": "nginx"})),
            ..HelmDeployment::default()
        }),
        kubectl("pods", &["a.yaml"]),
    ]);
    let rendered = render(&config, root, &table).expect("renders");
    let names: Vec<&str> = rendered.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["chart", "pods"]);
    let printed = format_rendered(&rendered);
    assert_eq!(
        printed,
        "# Deployment: chart (helm values)\nimage: nginx:fresh\n---\n# Deployment: pods (kubectl manifests)\n# Source: a.yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - image: nginx:fresh\n"
    );

    write(root, "bad.yaml", "a: [unclosed\n");
    let (config, table) = project(vec![kubectl("broken", &["bad.yaml"])]);
    let err = render(&config, root, &table).expect_err("syntax error");
    let message = err.to_string();
    assert!(
        message.contains("broken") && message.contains("bad.yaml") && message.contains("line"),
        "{message}"
    );
}
