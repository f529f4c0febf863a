//! Patch semantics of the fake API server, as pure functions over `serde_json::Value`:
//! JSON merge patch (RFC 7386), a strategic merge patch that merges lists of objects by
//! `name` (what Kubernetes does for containers, env, imagePullSecrets, ...), JSON patch
//! (RFC 6902), and server-side apply with per-manager field ownership and conflicts.
//!
//! Server-side apply is simplified: ownership is tracked per leaf path (maps are walked, lists
//! are leaves) and only for `Apply` managers; that is enough to see conflicts between two
//! managers, `force`, and fields removed from a manager's config being pruned.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// JSON merge patch (RFC 7386): maps merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Strategic merge patch, approximated: like [`merge_patch`], except that a list whose items
/// are all objects with a `name` merges item by item on `name` (new names are appended).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    strategic_merge_patch(existing, value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (target @ Value::Array(_), Value::Array(patch))
            if named_items(patch) && named_items(target.as_array().expect("matched")) =>
        {
            let items = target.as_array_mut().expect("matched");
            for item in patch {
                let name = &item["name"];
                match items.iter_mut().find(|i| &i["name"] == name) {
                    Some(existing) => strategic_merge_patch(existing, item),
                    None => items.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn named_items(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.get("name").is_some_and(Value::is_string))
}

/// Why a JSON patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPatchError {
    /// The patch document is not a list of operations, or an operation is malformed.
    Invalid(String),
    /// A `test` operation did not match, or a path does not exist.
    Failed(String),
}

/// JSON patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy`, `test`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError::Invalid("a JSON patch is a list of operations".into()))?;
    for op in ops {
        let name = op["op"]
            .as_str()
            .ok_or_else(|| JsonPatchError::Invalid(format!("operation without op: {op}")))?;
        let path = op["path"]
            .as_str()
            .ok_or_else(|| JsonPatchError::Invalid(format!("operation without path: {op}")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| JsonPatchError::Invalid(format!("{name} without value: {op}")))
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| JsonPatchError::Invalid(format!("{name} without from: {op}")))
        };
        match name {
            "add" => pointer_add(target, path, value()?)?,
            "remove" => {
                pointer_remove(target, path)?;
            }
            "replace" => {
                let slot = target.pointer_mut(path).ok_or_else(|| {
                    JsonPatchError::Failed(format!("replace: missing path {path}"))
                })?;
                *slot = value()?;
            }
            "move" => {
                let moved = pointer_remove(target, from()?)?;
                pointer_add(target, path, moved)?;
            }
            "copy" => {
                let copied = target
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| JsonPatchError::Failed(format!("copy: missing from {op}")))?;
                pointer_add(target, path, copied)?;
            }
            "test" => {
                let expected = value()?;
                if target.pointer(path) != Some(&expected) {
                    return Err(JsonPatchError::Failed(format!(
                        "test failed: {path} is not {expected}"
                    )));
                }
            }
            other => return Err(JsonPatchError::Invalid(format!("unknown op {other:?}"))),
        }
    }
    Ok(())
}

/// Splits a JSON pointer into its parent pointer and unescaped last token.
fn split_pointer(path: &str) -> Result<(&str, String), JsonPatchError> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| JsonPatchError::Invalid(format!("bad JSON pointer {path:?}")))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..idx], last))
}

fn pointer_add(target: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchError> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let parent = target
        .pointer_mut(parent)
        .ok_or_else(|| JsonPatchError::Failed(format!("add: missing parent of {path}")))?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            let idx = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| JsonPatchError::Failed(format!("add: bad index in {path}")))?
            };
            items.insert(idx, value);
        }
        _ => {
            return Err(JsonPatchError::Failed(format!(
                "add: parent of {path} is a scalar"
            )));
        }
    }
    Ok(())
}

fn pointer_remove(target: &mut Value, path: &str) -> Result<Value, JsonPatchError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || JsonPatchError::Failed(format!("remove: missing path {path}"));
    match target.pointer_mut(parent).ok_or_else(missing)? {
        Value::Object(map) => map.remove(&last).ok_or_else(missing),
        Value::Array(items) => {
            let idx = last.parse::<usize>().ok().filter(|i| *i < items.len());
            Ok(items.remove(idx.ok_or_else(missing)?))
        }
        _ => Err(missing()),
    }
}

/// Field owners of one object: manager name → owned leaf paths (`spec.replicas`).
pub type Owners = BTreeMap<String, BTreeSet<String>>;

/// Fields another manager owns with a different value (`manager`, `path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// Who owns the field.
    pub manager: String,
    /// Dotted path of the field.
    pub path: String,
}

/// Server-side apply of `applied` by `manager` onto `existing` (`None` → create).
/// Returns the new object, or the conflicts when `force` is false.
pub fn server_side_apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    owners: &mut Owners,
) -> Result<Value, Vec<ApplyConflict>> {
    let new_paths = leaf_paths(applied);
    let Some(existing) = existing else {
        owners.clear();
        owners.insert(manager.to_string(), new_paths);
        return Ok(applied.clone());
    };
    let mut conflicts = Vec::new();
    for (other, paths) in owners.iter().filter(|(m, _)| m.as_str() != manager) {
        for path in paths.intersection(&new_paths) {
            if get_path(existing, path) != get_path(applied, path) {
                conflicts.push(ApplyConflict {
                    manager: other.clone(),
                    path: path.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for conflict in &conflicts {
        if let Some(paths) = owners.get_mut(&conflict.manager) {
            paths.remove(&conflict.path);
        }
    }
    let mut merged = existing.clone();
    // Fields this manager applied before and dropped now are removed, unless someone else
    // still owns them.
    let previous = owners.get(manager).cloned().unwrap_or_default();
    for path in previous.difference(&new_paths) {
        let owned_elsewhere = owners
            .iter()
            .any(|(m, paths)| m != manager && paths.contains(path));
        if !owned_elsewhere {
            remove_path(&mut merged, path);
        }
    }
    deep_merge(&mut merged, applied);
    owners.insert(manager.to_string(), new_paths);
    owners.retain(|_, paths| !paths.is_empty());
    Ok(merged)
}

/// Maps merge recursively; everything else (lists too) replaces.
fn deep_merge(target: &mut Value, src: &Value) {
    match (target, src) {
        (Value::Object(t), Value::Object(s)) => {
            for (k, v) in s {
                match t.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, s) => *t = s.clone(),
    }
}

/// Leaf paths of an applied object, without the identity fields (`apiVersion`, `kind`,
/// `metadata.name`, `metadata.namespace`) nobody owns.
pub fn leaf_paths(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &path, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    for identity in [
        "apiVersion",
        "kind",
        "metadata.name",
        "metadata.namespace",
        "",
    ] {
        out.remove(identity);
    }
    out
}

fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn remove_path(value: &mut Value, path: &str) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, path),
    };
    let parent = match parent {
        Some(p) => p.split('.').try_fold(value, |v, key| v.get_mut(key)),
        None => Some(value),
    };
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

/// `metadata.managedFields` for the owners, in the `FieldsV1` format.
pub fn managed_fields(owners: &Owners, api_version: &str, time: &str) -> Value {
    let entries: Vec<Value> = owners
        .iter()
        .map(|(manager, paths)| {
            let mut fields = Map::new();
            for path in paths {
                let mut node = &mut fields;
                for key in path.split('.') {
                    node = node
                        .entry(format!("f:{key}"))
                        .or_insert_with(|| Value::Object(Map::new()))
                        .as_object_mut()
                        .expect("only objects are inserted");
                }
            }
            serde_json::json!({
                "manager": manager,
                "operation": "Apply",
                "apiVersion": api_version,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            })
        })
        .collect();
    Value::Array(entries)
}
