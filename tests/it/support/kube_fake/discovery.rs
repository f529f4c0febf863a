//! The resource kinds the fake serves and the discovery documents kube-rs reads
//! (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`).
//!
//! Every kind listed here gets the full generic behaviour of the store (create, get, list,
//! watch, replace, patch including server-side apply, delete). Pods additionally have the
//! `log`, `exec` and `attach` subresources.

use serde_json::{Value, json};

/// One served resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// Served version (one per kind).
    pub version: &'static str,
    /// URL segment (`pods`).
    pub plural: &'static str,
    /// `kind` of one object (`Pod`).
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl would accept (`po`).
    pub short_names: &'static [&'static str],
}

impl ResourceType {
    /// `apiVersion` of its objects (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`: the group-qualified name used as store key and in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `kind` of a list of them (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }
}

const fn rt(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version,
        plural,
        kind,
        namespaced,
        short_names,
    }
}

/// Everything the fake serves.
pub const RESOURCES: &[ResourceType] = &[
    rt("", "v1", "namespaces", "Namespace", false, &["ns"]),
    rt("", "v1", "pods", "Pod", true, &["po"]),
    rt("", "v1", "secrets", "Secret", true, &[]),
    rt("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    rt("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    rt("", "v1", "services", "Service", true, &["svc"]),
    rt(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
    ),
    rt("", "v1", "events", "Event", true, &["ev"]),
    rt("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
    rt("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"]),
    rt("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"]),
    rt("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"]),
    rt("batch", "v1", "jobs", "Job", true, &[]),
    rt("batch", "v1", "cronjobs", "CronJob", true, &["cj"]),
    rt(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
];

/// The resource served at `group`/`version`/`plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects have this `apiVersion` and `kind`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-devspace-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// `/apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": g,
        "versions": [gv.clone()], "preferredVersion": gv
    }))
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` when nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
        }));
        if r.plural == "pods" {
            for (sub, kind, verbs) in [
                ("pods/log", "Pod", &["get"][..]),
                ("pods/exec", "PodExecOptions", &["create", "get"][..]),
                ("pods/attach", "PodAttachOptions", &["create", "get"][..]),
                ("pods/status", "Pod", &["get", "patch", "update"][..]),
            ] {
                resources.push(json!({
                    "name": sub, "singularName": "", "namespaced": true, "kind": kind, "verbs": verbs
                }));
            }
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources
    }))
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2`) for `/api` (`core`) or `/apis`, sent when
/// the client asks for `as=APIGroupDiscoveryList` (kube-rs `Discovery::run_aggregated`).
pub fn aggregated(core: bool) -> Value {
    let group_names: Vec<(&str, &str)> = if core { vec![("", "v1")] } else { groups() };
    let items: Vec<Value> = group_names
        .into_iter()
        .map(|(g, v)| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == g && r.version == v)
                .map(|r| {
                    let subresources: Vec<Value> = if r.plural == "pods" {
                        ["log", "exec", "attach", "status"]
                            .iter()
                            .map(|s| json!({"subresource": s, "verbs": ["get"]}))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    json!({
                        "resource": r.plural,
                        "responseKind": {"group": g, "version": v, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular(),
                        "verbs": VERBS,
                        "shortNames": r.short_names,
                        "subresources": subresources,
                    })
                })
                .collect();
            json!({
                "metadata": {"name": g},
                "versions": [{"version": v, "resources": resources, "freshness": "Current"}]
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items
    })
}
