//! Applying the objects of a kubectl deployment by server-side apply through kube-rs.
//!
//! Each object's kind is looked up by discovery (once per `apiVersion`/`kind`), namespaced
//! objects without a namespace get the deployment's default, and the object is applied with
//! field manager `devspace` and `force` (we own the fields we set, as `kubectl apply
//! --server-side --force-conflicts`). The outcome per object is `created` (absent before),
//! `configured` (the object apart from its status changed) or `unchanged`. Objects are applied in order and one failure does not stop the others. A
//! CustomResourceDefinition is waited for until the API server serves its kind (condition
//! `Established`, bounded by [`CRD_ESTABLISHED_WAIT`]), so instances later in the same deploy
//! find it by discovery (a real API server needs a moment; `kubectl apply` fails there).

use crate::deploy::{ManifestObject, RenderedDeployment, RenderedKind};
use crate::kube::{KubeClient, KubeError};
use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiResource, Scope};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// The field manager our applies use.
pub const FIELD_MANAGER: &str = "devspace";

/// How long an applied CustomResourceDefinition may take to become `Established`.
pub const CRD_ESTABLISHED_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What applying did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyAction {
    /// It did not exist before.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and nothing changed.
    Unchanged,
}

impl std::fmt::Display for ApplyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApplyAction::Created => "created",
            ApplyAction::Configured => "configured",
            ApplyAction::Unchanged => "unchanged",
        })
    }
}

/// Why one object could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The object lacks something every object needs.
    #[error("{object} in {}: {message}", source_file.display())]
    Invalid {
        object: String,
        source_file: PathBuf,
        message: String,
    },
    /// The API server does not serve this kind.
    #[error(
        "{object} in {}: the cluster does not serve kind `{kind}` in `{api_version}`: {message}\nhint: is the CRD installed, and is the apiVersion right?",
        source_file.display()
    )]
    UnknownKind {
        object: String,
        source_file: PathBuf,
        api_version: String,
        kind: String,
        message: String,
    },
    /// The API server refused or could not be reached.
    #[error("{object} in {}: {source}", source_file.display())]
    Kube {
        object: String,
        source_file: PathBuf,
        source: KubeError,
    },
}

/// The outcome for one object.
#[derive(Debug)]
pub struct ApplyResult {
    pub api_version: String,
    pub kind: String,
    /// The namespace it was applied in (`None` for cluster-scoped kinds or when discovery failed).
    pub namespace: Option<String>,
    pub name: String,
    /// The manifest file (or kustomization) it came from.
    pub source: PathBuf,
    pub outcome: Result<ApplyAction, ApplyError>,
}

impl ApplyResult {
    /// `deployment.apps/web` (kubectl's way of naming an object).
    pub fn object_ref(&self) -> String {
        object_ref(&self.api_version, &self.kind, &self.name)
    }
}

impl std::fmt::Display for ApplyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let namespace = self
            .namespace
            .as_deref()
            .map(|n| format!(" (namespace {n})"))
            .unwrap_or_default();
        match &self.outcome {
            Ok(action) => write!(f, "{} {action}{namespace}", self.object_ref()),
            Err(e) => write!(f, "{} failed{namespace}: {e}", self.object_ref()),
        }
    }
}

/// `deployment.apps/web`, `service/web`.
fn object_ref(api_version: &str, kind: &str, name: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// The namespace an object goes to and the body to apply: namespaced objects keep theirs or
/// get `default_namespace`; cluster-scoped ones lose any namespace (the API would reject it).
pub fn prepare_body(
    object: &ManifestObject,
    namespaced: bool,
    default_namespace: &str,
) -> (Option<String>, Value) {
    let mut body = object.body.clone();
    if namespaced {
        let namespace = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_namespace.to_owned());
        body["metadata"]["namespace"] = Value::String(namespace.clone());
        (Some(namespace), body)
    } else {
        if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("namespace");
        }
        (None, body)
    }
}

/// `(group, version)` of an `apiVersion` (`v1` → core group).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Applies `objects` in order, namespaced ones without a namespace into `default_namespace`.
pub async fn apply_objects(
    client: &KubeClient,
    default_namespace: &str,
    objects: &[ManifestObject],
) -> Vec<ApplyResult> {
    let mut kinds: HashMap<(String, String), (ApiResource, bool)> = HashMap::new();
    let mut results = Vec::with_capacity(objects.len());
    for object in objects {
        let mut result = ApplyResult {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: None,
            name: object.name.clone(),
            source: object.source.clone(),
            outcome: Ok(ApplyAction::Unchanged),
        };
        result.outcome =
            apply_one(client, default_namespace, object, &mut kinds, &mut result).await;
        results.push(result);
    }
    results
}

/// Applies a rendered kubectl deployment into its namespace, else the client's; Helm
/// deployments have no objects and give no results.
pub async fn apply_rendered(
    client: &KubeClient,
    deployment: &RenderedDeployment,
) -> Vec<ApplyResult> {
    let RenderedKind::Kubectl { objects } = &deployment.kind else {
        return Vec::new();
    };
    let namespace = deployment
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(client.namespace());
    apply_objects(client, namespace, objects).await
}

async fn apply_one(
    client: &KubeClient,
    default_namespace: &str,
    object: &ManifestObject,
    kinds: &mut HashMap<(String, String), (ApiResource, bool)>,
    result: &mut ApplyResult,
) -> Result<ApplyAction, ApplyError> {
    let shown = object_ref(&object.api_version, &object.kind, &object.name);
    let invalid = |message: &str| ApplyError::Invalid {
        object: shown.clone(),
        source_file: object.source.clone(),
        message: message.to_owned(),
    };
    if object.name.is_empty() {
        return Err(invalid("the object has no metadata.name"));
    }
    if object.api_version.is_empty() || object.kind.is_empty() {
        return Err(invalid("the object needs apiVersion and kind"));
    }
    let key = (object.api_version.clone(), object.kind.clone());
    let (resource, namespaced) = match kinds.get(&key) {
        Some(found) => found.clone(),
        None => {
            let found = discover(client, object, &shown).await?;
            kinds.insert(key, found.clone());
            found
        }
    };
    let (namespace, body) = prepare_body(object, namespaced, default_namespace);
    result.namespace = namespace.clone();
    let api: Api<DynamicObject> = match &namespace {
        Some(namespace) => Api::namespaced_with(client.client().clone(), namespace, &resource),
        None => Api::all_with(client.client().clone(), &resource),
    };
    let at = namespace
        .as_deref()
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    let kube_error = |action: &str, error: ::kube::Error| ApplyError::Kube {
        object: shown.clone(),
        source_file: object.source.clone(),
        source: client.error(format!("{action} {shown}{at}"), error),
    };
    let before = api
        .get_opt(&object.name)
        .await
        .map_err(|e| kube_error("reading", e))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api
        .patch(&object.name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| kube_error("applying", e))?;
    if resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition" {
        wait_established(&api, applied.clone()).await;
    }
    Ok(match before {
        None => ApplyAction::Created,
        Some(before) if content(&before) == content(&applied) => ApplyAction::Unchanged,
        Some(_) => ApplyAction::Configured,
    })
}

/// What an apply can change: the object without `status` and without the bookkeeping every
/// write touches (`resourceVersion`, `managedFields`). Controllers write status between our
/// read and our apply (a Deployment's, right after it was created), so comparing
/// resourceVersions would call a no-op apply `configured`.
fn content(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("resourceVersion");
            metadata.remove("managedFields");
        }
    }
    value
}

/// Whether a CustomResourceDefinition's `Established` condition is `True`.
fn is_established(crd: &DynamicObject) -> bool {
    crd.data["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

/// Polls the CRD until it is established or [`CRD_ESTABLISHED_WAIT`] passed; a CRD that never
/// gets there shows up as the clear unknown-kind error of its first instance.
async fn wait_established(api: &Api<DynamicObject>, mut crd: DynamicObject) {
    let deadline = tokio::time::Instant::now() + CRD_ESTABLISHED_WAIT;
    let name = crd.metadata.name.clone().unwrap_or_default();
    while !is_established(&crd) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        match api.get_opt(&name).await {
            Ok(Some(current)) => crd = current,
            Ok(None) | Err(_) => return,
        }
    }
}

async fn discover(
    client: &KubeClient,
    object: &ManifestObject,
    shown: &str,
) -> Result<(ApiResource, bool), ApplyError> {
    let (group, version) = group_version(&object.api_version);
    let gvk = GroupVersionKind::gvk(group, version, &object.kind);
    let unknown = |message: String| ApplyError::UnknownKind {
        object: shown.to_owned(),
        source_file: object.source.clone(),
        api_version: object.api_version.clone(),
        kind: object.kind.clone(),
        message,
    };
    match ::kube::discovery::pinned_kind(client.client(), &gvk).await {
        Ok((resource, capabilities)) => Ok((resource, capabilities.scope == Scope::Namespaced)),
        Err(::kube::Error::Discovery(e)) => Err(unknown(e.to_string())),
        Err(e) => {
            let error = client.error(
                format!("looking up kind {} {}", object.api_version, object.kind),
                e,
            );
            if error.is_not_found() {
                Err(unknown(format!(
                    "API group version `{}` not found",
                    object.api_version
                )))
            } else {
                Err(ApplyError::Kube {
                    object: shown.to_owned(),
                    source_file: object.source.clone(),
                    source: error,
                })
            }
        }
    }
}

impl crate::diagnostic::Diagnostic for ApplyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: &str, namespace: Option<&str>) -> ManifestObject {
        let mut body = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}});
        if let Some(namespace) = namespace {
            body["metadata"]["namespace"] = json!(namespace);
        }
        ManifestObject {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: "x".into(),
            source: PathBuf::from("k.yaml"),
            body,
        }
    }

    #[test]
    fn namespace_defaulting_table() {
        // (kind, namespaced, written namespace) -> applied namespace
        let cases = [
            ("ConfigMap", true, None, Some("dflt")),
            ("ConfigMap", true, Some("mine"), Some("mine")),
            ("ConfigMap", true, Some(""), Some("dflt")),
            ("Namespace", false, None, None),
            ("ClusterRole", false, Some("ignored"), None),
        ];
        for (kind, namespaced, written, want) in cases {
            let (namespace, body) = prepare_body(&object(kind, written), namespaced, "dflt");
            assert_eq!(namespace.as_deref(), want, "{kind} {written:?}");
            assert_eq!(
                body["metadata"].get("namespace").and_then(Value::as_str),
                want,
                "{kind} {written:?}"
            );
            assert_eq!(body["metadata"]["name"], "x");
        }
    }

    fn dynamic(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("object")
    }

    #[test]
    fn unchanged_ignores_status_and_write_bookkeeping_only() {
        let stored = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "resourceVersion": "10", "generation": 1,
                         "managedFields": [{"manager": "devspace"}]},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 0}
        });
        let mut status_written = stored.clone();
        status_written["metadata"]["resourceVersion"] = json!("11");
        status_written["metadata"]["managedFields"] =
            json!([{"manager": "devspace"}, {"manager": "kube-controller-manager"}]);
        status_written["status"] = json!({"observedGeneration": 1, "replicas": 1});
        assert_eq!(
            content(&dynamic(stored.clone())),
            content(&dynamic(status_written))
        );
        let mut spec_changed = stored.clone();
        spec_changed["spec"]["replicas"] = json!(2);
        spec_changed["metadata"]["generation"] = json!(2);
        assert_ne!(
            content(&dynamic(stored.clone())),
            content(&dynamic(spec_changed))
        );
        let mut labelled = stored.clone();
        labelled["metadata"]["labels"] = json!({"tier": "web"});
        assert_ne!(content(&dynamic(stored)), content(&dynamic(labelled)));
    }

    #[test]
    fn established_crds() {
        let crd = |conditions: Value| {
            dynamic(json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "status": {"conditions": conditions}
            }))
        };
        assert!(is_established(&crd(json!([
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "True"}
        ]))));
        assert!(!is_established(&crd(
            json!([{"type": "Established", "status": "False"}])
        )));
        assert!(!is_established(&crd(json!([]))));
    }

    #[test]
    fn kubectl_style_refs() {
        assert_eq!(
            object_ref("apps/v1", "Deployment", "web"),
            "deployment.apps/web"
        );
        assert_eq!(object_ref("v1", "Service", "web"), "service/web");
        assert_eq!(group_version("apps/v1"), ("apps", "v1"));
        assert_eq!(group_version("v1"), ("", "v1"));
    }
}
