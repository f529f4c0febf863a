//! The in-memory object store behind the fake API server: objects keyed by resource,
//! namespace and name, one global `resourceVersion` counter, a history of watch events, and
//! the API's error semantics (404 NotFound, 409 AlreadyExists / Conflict, 400 BadRequest,
//! 422 Invalid) as [`ApiError`]s that render as Kubernetes `Status` objects.
//!
//! Everything here is synchronous and runs under one lock; the HTTP layer and the test
//! helpers call it. New namespaces get a `default` ServiceAccount, as the real controller
//! manager would create; secrets turn `stringData` into base64 `data` like the real API.

use super::discovery::{self, ResourceType};
use super::patch::{self, Owners};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tokio::sync::broadcast;

/// An API error, rendered as a `Status` object with the HTTP code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `BadRequest`, `Invalid`, ...).
    pub reason: &'static str,
    /// Human-readable message, worded like the real API server's.
    pub message: String,
    /// `details.name` / `details.kind` / `details.group`.
    pub details: Option<(String, String, String)>,
}

impl ApiError {
    /// A 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, rt: &ResourceType, name: &str) -> Self {
        self.details = Some((
            name.to_string(),
            rt.plural.to_string(),
            rt.group.to_string(),
        ));
        self
    }

    /// `<resource> "<name>" not found`.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", rt.group_resource()),
            details: None,
        }
        .with_details(rt, name)
    }

    /// A 404 for a path nobody serves.
    pub fn no_route(path: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
            details: None,
        }
    }

    fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", rt.group_resource()),
            details: None,
        }
        .with_details(rt, name)
    }

    fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                rt.group_resource()
            ),
            details: None,
        }
        .with_details(rt, name)
    }

    fn invalid(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {why}", rt.kind),
            details: None,
        }
        .with_details(rt, name)
    }

    /// The `Status` object the API server sends.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some((name, kind, group)) = &self.details {
            status["details"] = json!({"name": name, "group": group, "kind": kind});
        }
        status
    }
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created (or present when a watch starts without a resourceVersion).
    Added,
    /// Changed.
    Modified,
    /// Removed; the object is its last state.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change in the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion after the change.
    pub rv: u64,
    /// Kind of the object.
    pub resource: &'static ResourceType,
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub kind: EventType,
    /// The object after the change.
    pub object: Value,
}

impl Event {
    /// The watch stream line (without the newline).
    pub fn to_json(&self) -> Value {
        json!({"type": self.kind.as_str(), "object": self.object})
    }
}

/// The patch types of `PATCH` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    resource: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        let namespace = if rt.namespaced { namespace } else { "" };
        Self {
            resource: rt.group_resource(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

struct Entry {
    object: Value,
    owners: Owners,
}

/// Label and field selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

#[derive(Debug, Clone)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` query values.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        Ok(Self {
            labels: parse_requirements(labels.unwrap_or_default())?,
            fields: parse_requirements(fields.unwrap_or_default())?,
        })
    }

    /// Whether `object` matches every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str).map(str::to_string);
        let field = |key: &str| {
            key.split('.')
                .try_fold(object, |v, k| v.get(k))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
        };
        self.labels.iter().all(|r| r.matches(&label))
            && self.fields.iter().all(|r| r.matches(&field))
    }
}

impl Requirement {
    fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Equals(k, v) => get(k).as_deref() == Some(v.as_str()),
            Self::NotEquals(k, v) => get(k).as_deref() != Some(v.as_str()),
            Self::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Self::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Self::Exists(k) => get(k).is_some(),
            Self::NotExists(k) => get(k).is_none(),
        }
    }
}

fn parse_requirements(selector: &str) -> Result<Vec<Requirement>, ApiError> {
    // Split on commas outside parentheses (`env in (a,b),tier=web`).
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    let bad = |p: &str| ApiError::bad_request(format!("unable to parse requirement: {p:?}"));
    let set = |s: &str| -> Vec<String> {
        s.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().to_string())
            .collect()
    };
    let mut out = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let req = if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once(" notin ") {
            Requirement::NotIn(k.trim().into(), set(v))
        } else if let Some((k, v)) = part.split_once(" in ") {
            Requirement::In(k.trim().into(), set(v))
        } else if let Some(k) = part.strip_prefix('!') {
            Requirement::NotExists(k.trim().into())
        } else if part.contains(|c: char| c.is_whitespace() || "()".contains(c)) {
            return Err(bad(part));
        } else {
            Requirement::Exists(part.into())
        };
        out.push(req);
    }
    Ok(out)
}

/// Seconds-precision RFC 3339 time, as the API server writes timestamps.
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

fn random_uid() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn random_suffix() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// All objects and their history.
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Entry>,
    history: Vec<Event>,
    events: broadcast::Sender<Event>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store holding the namespaces `default`, `kube-system`, `kube-public` (each with its
    /// `default` ServiceAccount).
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(16 * 1024);
        let mut store = Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            events,
        };
        let namespaces = discovery::find("", "v1", "namespaces").expect("namespaces are served");
        for ns in ["default", "kube-system", "kube-public"] {
            store
                .create(namespaces, "", json!({"metadata": {"name": ns}}))
                .expect("fresh store");
        }
        store
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Subscribes to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Events of `rt` after resourceVersion `after` (oldest first).
    pub fn history_since(&self, rt: &ResourceType, after: u64) -> Vec<Event> {
        self.history
            .iter()
            .filter(|e| e.rv > after && e.resource == rt)
            .cloned()
            .collect()
    }

    fn record(&mut self, rt: &'static ResourceType, kind: EventType, object: Value) {
        let event = Event {
            rv: self.rv,
            resource: rt,
            kind,
            object,
        };
        self.history.push(event.clone());
        let _ = self.events.send(event);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&Key {
            resource: "namespaces".into(),
            namespace: String::new(),
            name: namespace.into(),
        })
    }

    fn check_namespace(&self, rt: &ResourceType, namespace: &str) -> Result<(), ApiError> {
        if rt.namespaced && !self.namespace_exists(namespace) {
            let namespaces = discovery::find("", "v1", "namespaces").expect("served");
            return Err(ApiError::not_found(namespaces, namespace));
        }
        Ok(())
    }

    /// Checks `apiVersion`/`kind` and the namespace of a request body against the URL and
    /// fills them in when missing.
    fn check_body(
        rt: &ResourceType,
        namespace: &str,
        name: Option<&str>,
        body: &mut Value,
    ) -> Result<(), ApiError> {
        let Value::Object(map) = body else {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        };
        let api_version = rt.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
            _ => {}
        }
        match map.get("kind").and_then(Value::as_str) {
            Some(k) if k != rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
            _ => {}
        }
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), rt.kind.into());
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return Err(ApiError::bad_request("metadata is not an object"));
        };
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), namespace.into());
                }
            }
        } else {
            meta.remove("namespace");
        }
        if let Some(name) = name {
            match meta.get("name").and_then(Value::as_str) {
                Some(n) if n != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                _ => {
                    meta.insert("name".into(), name.into());
                }
            }
        }
        Ok(())
    }

    /// What the API server does to every stored object of some kinds.
    fn normalize(rt: &ResourceType, object: &mut Value) {
        if rt.plural == "secrets" {
            if let Some(Value::Object(string_data)) =
                object.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let data = object
                    .as_object_mut()
                    .expect("checked object")
                    .entry("data")
                    .or_insert_with(|| Value::Object(Map::new()));
                for (k, v) in string_data {
                    let text = v.as_str().unwrap_or_default().as_bytes().to_vec();
                    data[&k] = base64::engine::general_purpose::STANDARD
                        .encode(text)
                        .into();
                }
            }
            if object.get("type").is_none() {
                object["type"] = "Opaque".into();
            }
        }
    }

    /// `POST` to a collection.
    pub fn create(
        &mut self,
        rt: &'static ResourceType,
        namespace: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        Self::check_body(rt, namespace, None, &mut body)?;
        self.check_namespace(rt, namespace)?;
        let meta = &mut body["metadata"];
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        rt,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        let key = Key::new(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        let rv = self.next_rv();
        let meta = &mut body["metadata"];
        meta["name"] = name.clone().into();
        meta["uid"] = random_uid().into();
        meta["resourceVersion"] = rv.to_string().into();
        meta["creationTimestamp"] = now_rfc3339().into();
        if meta.get("generation").is_none() {
            meta["generation"] = 1.into();
        }
        Self::normalize(rt, &mut body);
        match rt.plural {
            "pods" if body.get("status").is_none() => {
                body["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            "namespaces" => body["status"] = json!({"phase": "Active"}),
            _ => {}
        }
        self.objects.insert(
            key,
            Entry {
                object: body.clone(),
                owners: Owners::new(),
            },
        );
        self.record(rt, EventType::Added, body.clone());
        if rt.plural == "namespaces" {
            let sa = discovery::find("", "v1", "serviceaccounts").expect("served");
            self.create(sa, &name, json!({"metadata": {"name": "default"}}))?;
        }
        Ok(body)
    }

    /// `GET` one object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Key::new(rt, namespace, name))
            .map(|e| e.object.clone())
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Objects of `rt` (in `namespace`, or all namespaces when `None`) matching `selectors`.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        selectors: &Selectors,
    ) -> Vec<Value> {
        let resource = rt.group_resource();
        self.objects
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .filter(|(k, _)| namespace.is_none_or(|ns| !rt.namespaced || k.namespace == ns))
            .map(|(_, e)| &e.object)
            .filter(|o| selectors.matches(o))
            .cloned()
            .collect()
    }

    /// Stores `object` as the new state of an existing object and records MODIFIED.
    fn commit(&mut self, rt: &'static ResourceType, key: &Key, mut object: Value) -> Value {
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let entry = self.objects.get_mut(key).expect("caller checked existence");
        let spec_changed = entry.object.get("spec") != object.get("spec");
        if spec_changed {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = (generation + 1).into();
        }
        entry.object = object.clone();
        self.record(rt, EventType::Modified, object.clone());
        object
    }

    fn existing(&self, rt: &ResourceType, key: &Key) -> Result<&Entry, ApiError> {
        self.objects
            .get(key)
            .ok_or_else(|| ApiError::not_found(rt, &key.name))
    }

    /// Fails with 409 Conflict when `body` names a resourceVersion other than the stored one.
    fn check_rv(
        rt: &ResourceType,
        name: &str,
        stored: &Value,
        body: &Value,
    ) -> Result<(), ApiError> {
        match body["metadata"]["resourceVersion"].as_str() {
            Some(rv)
                if !rv.is_empty() && Some(rv) != stored["metadata"]["resourceVersion"].as_str() =>
            {
                Err(ApiError::conflict(
                    rt,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Server-managed metadata a client cannot change by replace or patch.
    fn keep_system_fields(rt: &ResourceType, stored: &Value, object: &mut Value) {
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            match stored["metadata"].get(field) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        // Kinds with a status subresource ignore status on the main resource.
        if matches!(
            rt.plural,
            "pods" | "deployments" | "statefulsets" | "daemonsets" | "replicasets" | "jobs"
        ) {
            match stored.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    if let Some(o) = object.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
    }

    /// `PUT`: replaces an existing object.
    pub fn replace(
        &mut self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        Self::check_body(rt, namespace, Some(name), &mut body)?;
        let key = Key::new(rt, namespace, name);
        let stored = self.existing(rt, &key)?.object.clone();
        Self::check_rv(rt, name, &stored, &body)?;
        Self::keep_system_fields(rt, &stored, &mut body);
        Self::normalize(rt, &mut body);
        Ok(self.commit(rt, &key, body))
    }

    /// `PATCH` of any type; server-side apply creates the object when missing.
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the PATCH request's parts"
    )]
    pub fn patch(
        &mut self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: Value,
        field_manager: Option<&str>,
        force: bool,
    ) -> Result<Value, ApiError> {
        if force && patch_type != PatchType::Apply {
            return Err(ApiError::bad_request(
                "force is only allowed for apply patch",
            ));
        }
        let key = Key::new(rt, namespace, name);
        if patch_type == PatchType::Apply {
            return self.apply(rt, namespace, name, body, field_manager, force);
        }
        let stored = self.existing(rt, &key)?.object.clone();
        let mut object = stored.clone();
        match patch_type {
            PatchType::Merge => patch::merge_patch(&mut object, &body),
            PatchType::Strategic => patch::strategic_merge_patch(&mut object, &body),
            PatchType::Json => patch::json_patch(&mut object, &body).map_err(|e| match e {
                patch::JsonPatchError::Invalid(m) => ApiError::bad_request(m),
                patch::JsonPatchError::Failed(m) => ApiError::invalid(rt, name, &m),
            })?,
            PatchType::Apply => unreachable!("handled above"),
        }
        if patch_type != PatchType::Json {
            Self::check_rv(rt, name, &stored, &body)?;
        } else {
            Self::check_rv(rt, name, &stored, &object)?;
        }
        Self::check_body(rt, namespace, Some(name), &mut object)?;
        Self::keep_system_fields(rt, &stored, &mut object);
        Self::normalize(rt, &mut object);
        Ok(self.commit(rt, &key, object))
    }

    fn apply(
        &mut self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        mut body: Value,
        field_manager: Option<&str>,
        force: bool,
    ) -> Result<Value, ApiError> {
        let manager = field_manager.filter(|m| !m.is_empty()).ok_or_else(|| {
            ApiError::bad_request("PATCH request with apply content type requires fieldManager")
        })?;
        Self::check_body(rt, namespace, Some(name), &mut body)?;
        if body.get("apiVersion").is_none() || body.get("kind").is_none() {
            return Err(ApiError::bad_request("apply requires apiVersion and kind"));
        }
        let key = Key::new(rt, namespace, name);
        let time = now_rfc3339();
        let Some(entry) = self.objects.get_mut(&key) else {
            let mut owners = Owners::new();
            let mut created = patch::server_side_apply(None, &body, manager, force, &mut owners)
                .expect("creating cannot conflict");
            created["metadata"]["managedFields"] =
                patch::managed_fields(&owners, &rt.api_version(), &time);
            let object = self.create(rt, namespace, created)?;
            self.objects.get_mut(&key).expect("just created").owners = owners;
            return Ok(object);
        };
        let stored = entry.object.clone();
        let mut owners = entry.owners.clone();
        let mut object =
            patch::server_side_apply(Some(&stored), &body, manager, force, &mut owners).map_err(
                |conflicts| {
                    let list: Vec<String> = conflicts
                        .iter()
                        .map(|c| format!("conflict with \"{}\": .{}", c.manager, c.path))
                        .collect();
                    ApiError {
                        code: 409,
                        reason: "Conflict",
                        message: format!(
                            "Apply failed with {} conflicts: {}",
                            list.len(),
                            list.join(", ")
                        ),
                        details: None,
                    }
                    .with_details(rt, name)
                },
            )?;
        Self::check_rv(rt, name, &stored, &body)?;
        Self::keep_system_fields(rt, &stored, &mut object);
        Self::normalize(rt, &mut object);
        // A no-op apply changes nothing, not even the resourceVersion or the managedFields
        // timestamps (the API server compares without them, and the owners did not change).
        let owners_changed = entry.owners != owners;
        if let Some(meta) = object["metadata"].as_object_mut() {
            match stored["metadata"].get("managedFields") {
                Some(fields) => meta.insert("managedFields".into(), fields.clone()),
                None => meta.remove("managedFields"),
            };
        }
        if object == stored && !owners_changed {
            return Ok(stored);
        }
        object["metadata"]["managedFields"] =
            patch::managed_fields(&owners, &rt.api_version(), &time);
        self.objects.get_mut(&key).expect("exists").owners = owners;
        Ok(self.commit(rt, &key, object))
    }

    /// Changes an object in place (tests driving pod status, for instance) and records
    /// MODIFIED; metadata and status may be changed freely.
    pub fn update_with(
        &mut self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let key = Key::new(rt, namespace, name);
        let mut object = self.existing(rt, &key)?.object.clone();
        f(&mut object);
        Ok(self.commit(rt, &key, object))
    }

    /// `DELETE` one object; returns its last state. Deleting a namespace deletes its objects.
    pub fn delete(
        &mut self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = Key::new(rt, namespace, name);
        let entry = self
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if rt.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.namespace == name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(e) = self.objects.remove(&k) {
                    let krt = discovery::find_kind(
                        e.object["apiVersion"].as_str().unwrap_or_default(),
                        e.object["kind"].as_str().unwrap_or_default(),
                    )
                    .expect("stored objects are of served kinds");
                    self.next_rv();
                    self.record(krt, EventType::Deleted, e.object);
                }
            }
        }
        let rv = self.next_rv();
        let mut object = entry.object;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        object["metadata"]["deletionTimestamp"] = now_rfc3339().into();
        self.record(rt, EventType::Deleted, object.clone());
        Ok(object)
    }
}
