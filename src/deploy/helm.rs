//! Assembling the values of a Helm deployment: the chart's own `values.yaml` (local charts
//! only), then every `valuesFiles` entry, then the inline `values`, merged in that order.
//!
//! Merging is Helm's: maps merge key by key at every depth, anything else (lists included)
//! is replaced by the later value, and a later `null` removes the key (as `helm --set k=null`).

use crate::config::HelmDeployment;
use crate::deploy::DeployError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The local chart directory `chart.name` names (relative to the project root), if it is one.
pub fn local_chart_dir(root: &Path, helm: &HelmDeployment) -> Option<PathBuf> {
    if helm.component_chart == Some(true) {
        return None;
    }
    let chart = helm.chart.as_ref()?;
    if chart.repo.is_some() {
        return None;
    }
    let dir = root.join(&chart.name);
    dir.join("Chart.yaml").is_file().then_some(dir)
}

/// The files whose values are merged, in merge order (chart defaults first).
pub fn values_sources(root: &Path, helm: &HelmDeployment) -> Vec<PathBuf> {
    let chart_values = local_chart_dir(root, helm)
        .map(|dir| dir.join("values.yaml"))
        .filter(|p| p.is_file());
    chart_values
        .into_iter()
        .chain(helm.values_files.iter().map(|f| root.join(f)))
        .collect()
}

/// The merged values of a Helm deployment.
pub fn assemble_values(
    deployment: &str,
    root: &Path,
    helm: &HelmDeployment,
) -> Result<Value, DeployError> {
    let mut merged = Value::Object(Map::new());
    for path in values_sources(root, helm) {
        let text = crate::yaml::limits::read_file(&path).map_err(|source| DeployError::Read {
            deployment: deployment.to_owned(),
            path: path.clone(),
            source,
        })?;
        let values = parse_values(&text).map_err(|message| DeployError::Invalid {
            deployment: deployment.to_owned(),
            path: path.clone(),
            message,
        })?;
        merge_values(&mut merged, values);
    }
    match &helm.values {
        None | Some(Value::Null) => {}
        Some(inline @ Value::Object(_)) => merge_values(&mut merged, inline.clone()),
        Some(_) => {
            return Err(DeployError::Invalid {
                deployment: deployment.to_owned(),
                path: PathBuf::from("devspace.yaml"),
                message: "`helm.values` must be a map".to_owned(),
            });
        }
    }
    Ok(merged)
}

/// One values document: a map, or empty (no values).
fn parse_values(text: &str) -> Result<Value, String> {
    let documents: Vec<Value> = crate::yaml::from_multiple(text)?;
    let mut documents = documents.into_iter().filter(|d| !d.is_null());
    let values = documents.next().unwrap_or(Value::Object(Map::new()));
    if documents.next().is_some() {
        return Err("a values file must hold one YAML document".to_owned());
    }
    if !values.is_object() {
        return Err("values must be a map at the top level".to_owned());
    }
    Ok(values)
}

/// Merges `overlay` into `base` (see the module documentation).
pub fn merge_values(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.shift_remove(&key);
                    continue;
                }
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_values(existing, value);
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_table() {
        let cases = [
            (json!({"a": 1}), json!({"b": 2}), json!({"a": 1, "b": 2})),
            (json!({"a": 1}), json!({"a": "x"}), json!({"a": "x"})),
            (
                json!({"m": {"a": 1, "b": {"c": 1}}}),
                json!({"m": {"b": {"d": 2}}}),
                json!({"m": {"a": 1, "b": {"c": 1, "d": 2}}}),
            ),
            (json!({"l": [1, 2]}), json!({"l": [3]}), json!({"l": [3]})),
            (
                json!({"m": {"a": 1}}),
                json!({"m": "flat"}),
                json!({"m": "flat"}),
            ),
            (json!({"a": 1, "b": 2}), json!({"a": null}), json!({"b": 2})),
        ];
        for (mut base, overlay, expected) in cases {
            let shown = format!("{base} + {overlay}");
            merge_values(&mut base, overlay);
            assert_eq!(base, expected, "{shown}");
        }
    }

    #[test]
    fn inline_values_must_be_a_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let helm = HelmDeployment {
            values: Some(json!(["not", "a", "map"])),
            ..HelmDeployment::default()
        };
        let err = assemble_values("web", dir.path(), &helm).expect_err("list values");
        assert!(
            err.to_string().contains("`helm.values` must be a map"),
            "{err}"
        );
        let helm = HelmDeployment {
            values: Some(Value::Null),
            ..HelmDeployment::default()
        };
        assert_eq!(
            assemble_values("web", dir.path(), &helm).expect("null is empty"),
            json!({})
        );
    }

    #[test]
    fn values_documents() {
        assert_eq!(parse_values("").expect("empty ok"), json!({}));
        assert_eq!(parse_values("# only\n").expect("comment ok"), json!({}));
        assert_eq!(parse_values("a: 1\n").expect("map"), json!({"a": 1}));
        assert!(parse_values("- a\n").is_err());
        assert!(parse_values("a: 1\n---\nb: 2\n").is_err());
    }
}
