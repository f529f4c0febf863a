//! Finding and reading the manifests of a kubectl deployment: files, directories, globs, and
//! `kustomize build` output, plus the per-object list deploy applies.
//!
//! `kubectl.manifests` entries resolve against the project root: an existing file is used as is,
//! a directory contributes its `*.yaml`/`*.yml` files (not recursive, like `kubectl apply -f
//! DIR`), anything else with `*`, `?`, `[` or `{` is a glob over files under the root. Files come
//! in entry order, sorted by path within an entry, each once. With `kustomize: true` every entry
//! is a kustomization directory (or a file inside one) built by `kustomize build DIR`, or
//! `kubectl kustomize DIR` when only kubectl is installed.

use crate::deploy::DeployError;
use crate::process::{self, Spec, Tools};
use globset::GlobBuilder;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One manifest source and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSource {
    /// The file read, or the kustomization directory built.
    pub path: PathBuf,
    /// Its YAML text (possibly several documents).
    pub text: String,
}

/// One Kubernetes object of a rendered manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    pub api_version: String,
    pub kind: String,
    /// `metadata.namespace` as written; `None` means the deployment's (or the client's) namespace.
    pub namespace: Option<String>,
    pub name: String,
    /// The file (or kustomization directory) it came from.
    pub source: PathBuf,
    /// The whole object, tags already replaced.
    pub body: Value,
}

impl ManifestObject {
    /// `(apiVersion, kind, namespace, name)`, for messages and reports.
    pub fn identity(&self) -> (&str, &str, Option<&str>, &str) {
        (
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// The manifest files an entry list names, in order, each once.
pub fn resolve_manifest_files(
    deployment: &str,
    root: &Path,
    entries: &[String],
) -> Result<Vec<PathBuf>, DeployError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = root.join(entry);
        let mut found = if path.is_file() {
            vec![path]
        } else if path.is_dir() {
            yaml_files_in(deployment, &path)?
        } else if entry.contains(['*', '?', '[', '{']) {
            glob_files(deployment, root, entry)?
        } else {
            Vec::new()
        };
        if found.is_empty() {
            return Err(DeployError::NoManifest {
                deployment: deployment.to_owned(),
                pattern: entry.clone(),
            });
        }
        found.sort();
        for file in found {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

fn yaml_files_in(deployment: &str, dir: &Path) -> Result<Vec<PathBuf>, DeployError> {
    let read_error = |source| DeployError::Read {
        deployment: deployment.to_owned(),
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir).map_err(read_error)? {
        let path = item.map_err(read_error)?.path();
        let yaml = matches!(
            path.extension().and_then(OsStr::to_str),
            Some("yaml" | "yml")
        );
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

/// Files under `root` matching `pattern` (relative to `root`; `*` does not cross `/`, `**` does).
fn glob_files(deployment: &str, root: &Path, pattern: &str) -> Result<Vec<PathBuf>, DeployError> {
    let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| DeployError::BadGlob {
            deployment: deployment.to_owned(),
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })?
        .compile_matcher();
    // Walk only below the pattern's literal prefix; a pattern may be absolute.
    let literal: PathBuf = Path::new(pattern)
        .components()
        .take_while(|c| {
            !c.as_os_str()
                .to_string_lossy()
                .contains(['*', '?', '[', '{'])
        })
        .collect();
    let start = root.join(&literal);
    let absolute = Path::new(pattern).is_absolute();
    let mut files = Vec::new();
    for item in walkdir::WalkDir::new(&start).follow_links(true) {
        let Ok(item) = item else { continue };
        if !item.file_type().is_file() {
            continue;
        }
        let candidate = if absolute {
            item.path()
        } else {
            item.path().strip_prefix(root).unwrap_or(item.path())
        };
        if matcher.is_match(candidate) {
            files.push(item.path().to_owned());
        }
    }
    Ok(files)
}

/// Reads the manifests of a kubectl deployment (building kustomizations when asked, with the
/// tools found in `PATH`).
pub fn load_manifests(
    deployment: &str,
    root: &Path,
    entries: &[String],
    kustomize: bool,
) -> Result<Vec<ManifestSource>, DeployError> {
    load_manifests_with_args(deployment, root, entries, kustomize, &[])
}

/// [`load_manifests`] passing `kustomize_args` to every `kustomize build`.
pub fn load_manifests_with_args(
    deployment: &str,
    root: &Path,
    entries: &[String],
    kustomize: bool,
    kustomize_args: &[String],
) -> Result<Vec<ManifestSource>, DeployError> {
    let path_var = std::env::var_os("PATH");
    let kustomize = kustomize.then_some(kustomize_args);
    load_manifests_with_path(deployment, root, entries, kustomize, path_var.as_deref())
}

/// [`load_manifests`] looking for kustomize tools in `path_var` instead of the process `PATH`.
/// `kustomize`: `Some(extra kustomize build args)` when entries are kustomizations.
fn load_manifests_with_path(
    deployment: &str,
    root: &Path,
    entries: &[String],
    kustomize: Option<&[String]>,
    path_var: Option<&OsStr>,
) -> Result<Vec<ManifestSource>, DeployError> {
    if let Some(kustomize_args) = kustomize {
        let tool = find_kustomize(path_var).ok_or_else(|| DeployError::KustomizeMissing {
            deployment: deployment.to_owned(),
        })?;
        return entries
            .iter()
            .map(|entry| {
                let mut dir = root.join(entry);
                if dir.is_file()
                    && let Some(parent) = dir.parent()
                {
                    dir = parent.to_owned();
                }
                let text = run_kustomize(deployment, &tool, &dir, kustomize_args)?;
                Ok(ManifestSource { path: dir, text })
            })
            .collect();
    }
    resolve_manifest_files(deployment, root, entries)?
        .into_iter()
        .map(|path| {
            let text =
                crate::yaml::limits::read_file(&path).map_err(|source| DeployError::Read {
                    deployment: deployment.to_owned(),
                    path: path.clone(),
                    source,
                })?;
            Ok(ManifestSource { path, text })
        })
        .collect()
}

/// The program that builds kustomizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KustomizeTool {
    /// `kustomize build DIR`.
    Kustomize(PathBuf),
    /// `kubectl kustomize DIR`.
    Kubectl(PathBuf),
}

impl KustomizeTool {
    fn spec(&self, dir: &Path) -> Spec {
        let (program, verb) = match self {
            KustomizeTool::Kustomize(p) => (p, "build"),
            KustomizeTool::Kubectl(p) => (p, "kustomize"),
        };
        Spec::new(program).arg(verb).arg(dir)
    }
}

/// `kustomize` if it is in `path_var` (a `PATH` value), else `kubectl`, else `None`.
pub fn find_kustomize(path_var: Option<&OsStr>) -> Option<KustomizeTool> {
    let tools = Tools::with_path(path_var?);
    tools
        .find("kustomize")
        .map(KustomizeTool::Kustomize)
        .or_else(|| tools.find("kubectl").map(KustomizeTool::Kubectl))
}

fn run_kustomize(
    deployment: &str,
    tool: &KustomizeTool,
    dir: &Path,
    args: &[String],
) -> Result<String, DeployError> {
    let spec = tool.spec(dir).args(args);
    let failed = |message: String| DeployError::KustomizeFailed {
        deployment: deployment.to_owned(),
        command: spec.command(),
        message,
    };
    let output = process::run(&spec).map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{}: {}",
            output.status,
            output.stderr_text()
        )));
    }
    String::from_utf8(output.stdout).map_err(|_| failed("output is not UTF-8".to_owned()))
}

/// The objects of one manifest text; `kind: List` (or `*List` with `items`) is expanded.
pub fn manifest_objects(
    deployment: &str,
    source: &Path,
    text: &str,
) -> Result<Vec<ManifestObject>, DeployError> {
    let invalid = |message: String| DeployError::Invalid {
        deployment: deployment.to_owned(),
        path: source.to_owned(),
        message,
    };
    let documents: Vec<Value> = crate::yaml::from_multiple(text).map_err(invalid)?;
    let mut objects = Vec::new();
    let mut pending: Vec<Value> = documents.into_iter().rev().collect();
    while let Some(document) = pending.pop() {
        if document.is_null() {
            continue;
        }
        let field = |name: &str| {
            document
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let kind = field("kind")
            .ok_or_else(|| invalid("a document has no `kind` (not a Kubernetes object)".into()))?;
        if kind.ends_with("List")
            && let Some(items) = document.get("items").and_then(Value::as_array)
        {
            pending.extend(items.iter().rev().cloned());
            continue;
        }
        let api_version =
            field("apiVersion").ok_or_else(|| invalid(format!("a {kind} has no `apiVersion`")))?;
        let metadata = document.get("metadata");
        let meta = |name: &str| {
            metadata
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let name =
            meta("name").ok_or_else(|| invalid(format!("a {kind} has no `metadata.name`")))?;
        objects.push(ManifestObject {
            api_version,
            kind,
            namespace: meta("namespace"),
            name,
            source: source.to_owned(),
            body: document,
        });
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_from_multi_doc_and_lists() {
        let text = "# c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: b\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: c\n";
        let objects = manifest_objects("d", Path::new("m.yaml"), text).expect("valid");
        let seen: Vec<_> = objects.iter().map(ManifestObject::identity).collect();
        assert_eq!(
            seen,
            [
                ("v1", "ConfigMap", Some("ns"), "a"),
                ("v1", "Service", None, "b"),
                ("apps/v1", "Deployment", None, "c"),
            ]
        );
        assert_eq!(objects[2].body["metadata"]["name"], "c");
    }

    #[test]
    fn objects_need_kind_api_version_and_name() {
        for (text, needle) in [
            ("a: b\n", "no `kind`"),
            ("kind: Pod\nmetadata:\n  name: x\n", "no `apiVersion`"),
            ("apiVersion: v1\nkind: Pod\n", "no `metadata.name`"),
        ] {
            let err = manifest_objects("d", Path::new("m.yaml"), text).expect_err(text);
            let message = err.to_string();
            assert!(message.contains(needle), "{message}");
            assert!(message.contains("m.yaml"), "{message}");
            assert!(message.contains("`d`"), "{message}");
        }
    }

    #[test]
    fn kustomize_without_tools_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = ["overlay".to_owned()];
        let err = load_manifests_with_path(
            "kz",
            dir.path(),
            &entries,
            Some(&[]),
            Some(dir.path().as_os_str()),
        )
        .expect_err("no tools in PATH");
        assert!(matches!(err, DeployError::KustomizeMissing { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("`kz`") && message.contains("neither `kustomize` nor `kubectl`"),
            "{message}"
        );
    }

    #[test]
    fn kustomize_preferred_over_kubectl() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let only_kubectl = dir.path().join("a");
        let both = dir.path().join("b");
        for (d, names) in [
            (&only_kubectl, &["kubectl"][..]),
            (&both, &["kubectl", "kustomize"][..]),
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
            for name in names {
                let file = d.join(name);
                std::fs::write(&file, "").expect("write");
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
        }
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).expect("mkdir");
        assert_eq!(
            find_kustomize(Some(only_kubectl.as_os_str())),
            Some(KustomizeTool::Kubectl(only_kubectl.join("kubectl")))
        );
        let path = std::env::join_paths([&empty, &only_kubectl, &both]).expect("join");
        assert_eq!(
            find_kustomize(Some(&path)),
            Some(KustomizeTool::Kustomize(both.join("kustomize")))
        );
        assert_eq!(find_kustomize(Some(empty.as_os_str())), None);
        assert_eq!(find_kustomize(None), None);
    }
}
