//! Upgrading a checked document of any version to the one model, resolving relative paths
//! against the project root, and DevSpace's validation rules.
//!
//! Works on typed JSON (the output of the strict check), so each step is a small pure
//! function with a table test.

use super::error::{ConfigError, Location};
use super::model::{Config, DeploymentConfig, ImageConfig};
use super::schema::{A2, A3, B1, B2, B5, B6, B7, B8, VERSIONS};
use indexmap::IndexMap;
use serde_json::{Map, Value as J, json};
use std::path::{Component, Path, PathBuf};

fn obj(v: &mut J) -> Option<&mut Map<String, J>> {
    v.as_object_mut()
}

fn rename(map: &mut Map<String, J>, from: &str, to: &str) {
    if let Some(v) = map.remove(from) {
        map.insert(to.to_string(), v);
    }
}

/// Applies DevSpace's upgrade steps (surface §1.3) to one image of a `version` document.
/// `registries` is the v1alpha1 top-level `registries` map.
pub fn upgrade_image(
    key: &str,
    image: &mut J,
    version: u8,
    registries: Option<&J>,
) -> Result<(), String> {
    let Some(img) = obj(image) else {
        return Ok(());
    };
    if version < A2 {
        // v1alpha1 → v1alpha2: name (+ registry) becomes image; autoReload is a dev concern.
        img.remove("autoReload");
        if let Some(name) = img.remove("name") {
            let name = name.as_str().unwrap_or_default().to_string();
            let full = match img.remove("registry") {
                Some(J::String(reg)) => {
                    let url = registries
                        .and_then(|r| r.get(&reg))
                        .and_then(|r| r.get("url"))
                        .and_then(J::as_str)
                        .ok_or_else(|| {
                            format!("images.{key}.registry: registry `{reg}` is not defined in `registries`")
                        })?;
                    format!("{}/{name}", url.trim_end_matches('/'))
                }
                _ => name,
            };
            img.insert("image".into(), J::String(full));
        }
        img.remove("registry");
    }
    let build = img.get_mut("build").and_then(obj);
    if version < A3
        && let Some(b) = build
    {
        rename(b, "contextPath", "context");
        rename(b, "dockerfilePath", "dockerfile");
    }
    if version <= B1 {
        // v1beta1 → v1beta2: dockerfile/context move up; insecure/skipPush move down.
        let mut build = img.remove("build").unwrap_or(J::Null);
        if let Some(b) = obj(&mut build) {
            for k in ["dockerfile", "context"] {
                if let Some(v) = b.remove(k) {
                    img.insert(k.into(), v);
                }
            }
            if let Some(options) = b.remove("options") {
                let target = if b.contains_key("kaniko") {
                    "kaniko"
                } else {
                    "docker"
                };
                set_in(b, target, "options", options);
            }
        }
        if let Some(v) = img.remove("insecure") {
            set_in(ensure_obj(&mut build), "kaniko", "insecure", v);
        }
        if let Some(v) = img.remove("skipPush") {
            set_in(ensure_obj(&mut build), "docker", "skipPush", v);
        }
        if build.as_object().is_some_and(|b| !b.is_empty()) {
            img.insert("build".into(), build);
        }
    }
    if version <= B2 && img.get("createPullSecret").is_none_or(J::is_null) {
        img.insert("createPullSecret".into(), J::Bool(false));
    }
    if version <= B5
        && let Some(custom) = img
            .get_mut("build")
            .and_then(|b| b.get_mut("custom"))
            .and_then(obj)
    {
        rename(custom, "flags", "args");
    }
    if version <= B6
        && let Some(J::String(t)) = img.remove("tag")
    {
        img.insert("tags".into(), json!([t]));
    }
    if version <= B7
        && let Some(kaniko) = img
            .get_mut("build")
            .and_then(|b| b.get_mut("kaniko"))
            .and_then(obj)
    {
        rename(kaniko, "flags", "args");
    }
    if version <= B8 {
        img.insert("preferSyncOverRebuild".into(), J::Bool(true));
    }
    Ok(())
}

fn ensure_obj(v: &mut J) -> &mut Map<String, J> {
    if !v.is_object() {
        *v = J::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

fn set_in(map: &mut Map<String, J>, section: &str, key: &str, value: J) {
    let entry = map
        .entry(section.to_string())
        .or_insert_with(|| J::Object(Map::new()));
    ensure_obj(entry).insert(key.to_string(), value);
}

/// `component` → helm component chart (v1beta2 → v1beta3); `kubectl.flags` →
/// `kubectl.applyArgs` (v1beta7 → v1beta8).
pub fn upgrade_deployment(deployment: &mut J, version: u8) {
    if version <= B2
        && let Some(d) = obj(deployment)
        && let Some(component) = d.remove("component")
    {
        d.insert(
            "helm".into(),
            json!({"componentChart": true, "values": component}),
        );
    }
    if version <= B7
        && let Some(k) = deployment.get_mut("kubectl").and_then(obj)
    {
        rename(k, "flags", "applyArgs");
    }
}

/// `dev.overrideImages` → `dev.interactive.images` (v1beta2 → v1beta3): the first entrypoint
/// element stays the entrypoint, the rest becomes `cmd`; dockerfile/context overrides are
/// dropped as DevSpace did.
pub fn upgrade_dev(dev: &mut J, version: u8) {
    if version > B2 {
        return;
    }
    let Some(d) = obj(dev) else {
        return;
    };
    let Some(J::Array(overrides)) = d.remove("overrideImages") else {
        return;
    };
    let images: Vec<J> = overrides
        .into_iter()
        .map(|o| {
            let mut out = Map::new();
            if let Some(name) = o.get("name") {
                out.insert("name".into(), name.clone());
            }
            if let Some(J::Array(ep)) = o.get("entrypoint")
                && let Some((first, rest)) = ep.split_first()
            {
                out.insert("entrypoint".into(), J::Array(vec![first.clone()]));
                if !rest.is_empty() {
                    out.insert("cmd".into(), J::Array(rest.to_vec()));
                }
            }
            J::Object(out)
        })
        .collect();
    let interactive = d
        .entry("interactive")
        .or_insert_with(|| J::Object(Map::new()));
    ensure_obj(interactive).insert("images".into(), J::Array(images));
}

/// Joins `p` to `root` unless absolute, and removes `.`/`..` lexically (files need not exist).
pub fn resolve_path(root: &Path, p: &str) -> PathBuf {
    let joined = if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        root.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Keys of the checked document that this tool does not act on (reported as unused).
pub const OTHER_SECTIONS: [&str; 12] = [
    "name",
    "dev",
    "devSpace",
    "registries",
    "tiller",
    "internalRegistry",
    "cluster",
    "dependencies",
    "hooks",
    "commands",
    "pullSecrets",
    "require",
];

/// Builds the model from a checked document (`version` index into [`VERSIONS`]).
/// `locate_image` finds where an image key is written (for errors about that image).
pub fn to_model(
    doc: J,
    version: u8,
    root: &Path,
    file: &Path,
    locate_image: &dyn Fn(&str) -> Option<Box<Location>>,
) -> Result<Config, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: file.to_path_buf(),
        at: None,
        message,
    };
    let invalid_image = |key: &str, message: String| ConfigError::Invalid {
        path: file.to_path_buf(),
        at: locate_image(key),
        message,
    };
    let J::Object(mut top) = doc else {
        return Err(invalid("the config must be a mapping".into()));
    };
    let registries = top.get("registries").cloned();
    let mut images = IndexMap::new();
    if let Some(J::Object(map)) = top.shift_remove("images") {
        for (key, mut value) in map {
            if key.is_empty() {
                return Err(invalid_image(
                    &key,
                    "images keys cannot be an empty string".into(),
                ));
            }
            if value.is_null() {
                return Err(invalid_image(
                    &key,
                    format!("images.{key} is empty and should at least contain an image name"),
                ));
            }
            upgrade_image(&key, &mut value, version, registries.as_ref())
                .map_err(|m| invalid_image(&key, m))?;
            let img = value
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let image = image_from(&key, img, root).map_err(|m| invalid_image(&key, m))?;
            images.insert(key.clone(), image);
        }
    }
    let mut deployments = Vec::new();
    if let Some(J::Array(list)) = top.shift_remove("deployments") {
        for (i, mut d) in list.into_iter().enumerate() {
            if d.is_null() {
                continue;
            }
            upgrade_deployment(&mut d, version);
            let mut dep: DeploymentConfig =
                serde_json::from_value(d).map_err(|e| invalid(format!("deployments[{i}]: {e}")))?;
            if let Some(k) = &mut dep.kubectl {
                for m in &mut k.manifests {
                    *m = resolve_path(root, m).display().to_string();
                }
            }
            if let Some(h) = &mut dep.helm {
                for f in &mut h.values_files {
                    *f = resolve_path(root, f).display().to_string();
                }
            }
            if dep.name.is_empty() {
                return Err(invalid(format!("deployments[{i}].name is required")));
            }
            if dep.helm.is_none() && dep.kubectl.is_none() {
                return Err(invalid(format!(
                    "Please specify either helm or kubectl as deployment type in deployment {}",
                    dep.name
                )));
            }
            deployments.push(dep);
        }
    }
    if let Some(dev) = top.get_mut("dev") {
        upgrade_dev(dev, version);
    }
    // In file order, as the user wrote them.
    let other: IndexMap<String, J> = top
        .into_iter()
        .filter(|(k, v)| OTHER_SECTIONS.contains(&k.as_str()) && !v.is_null())
        .collect();
    let config = Config {
        version: VERSIONS[version as usize].to_string(),
        images,
        deployments,
        other,
    };
    validate(&config).map_err(|(key, message)| invalid_image(&key, message))?;
    Ok(config)
}

fn image_from(key: &str, mut img: Map<String, J>, root: &Path) -> Result<ImageConfig, String> {
    let dockerfile = img
        .remove("dockerfile")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "./Dockerfile".into());
    let context = img
        .remove("context")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "./".into());
    img.insert(
        "dockerfile".into(),
        J::String(resolve_path(root, &dockerfile).display().to_string()),
    );
    img.insert(
        "context".into(),
        J::String(resolve_path(root, &context).display().to_string()),
    );
    if !img.contains_key("image") {
        img.insert("image".into(), J::String(String::new()));
    }
    serde_json::from_value(J::Object(img)).map_err(|e| format!("images.{key}: {e}"))
}

/// DevSpace's validation (surface §2.7); the error names the image key it is about.
pub fn validate(config: &Config) -> Result<(), (String, String)> {
    let mut seen: IndexMap<&str, &str> = IndexMap::new();
    for (key, img) in &config.images {
        if img.image.is_empty() {
            return Err((key.clone(), format!("images.{key}.image is required")));
        }
        if let Err(e) = crate::registry::reference::Reference::parse(&img.image) {
            return Err((key.clone(), format!("images.{key}.image: {e}")));
        }
        // The whole filesystem is never a build context (it would walk /proc and every mount).
        if img.context.parent().is_none() {
            return Err((
                key.clone(),
                format!(
                    "images.{key}.context is the filesystem root `{}`; point it at the directory with the files the Dockerfile needs",
                    img.context.display()
                ),
            ));
        }
        for tag in &img.tags {
            crate::image::tag::check_written_tag(tag)
                .map_err(|e| (key.clone(), format!("images.{key}.tags: {e}")))?;
        }
        if let Some(c) = &img.build.custom
            && c.command.is_empty()
            && c.commands.is_empty()
        {
            return Err((
                key.clone(),
                format!("images.{key}.build.custom.command is required"),
            ));
        }
        if let Some(first) = seen.insert(&img.image, key) {
            return Err((
                key.clone(),
                format!(
                    "multiple image definitions with the same image name are not allowed (images.{first} and images.{key} are both `{}`)",
                    img.image
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::version_index;

    fn up(version: &str, image: J) -> J {
        let mut image = image;
        let registries = json!({"hub": {"url": "registry.example.com/"}});
        upgrade_image(
            "app",
            &mut image,
            version_index(version).unwrap(),
            Some(&registries),
        )
        .unwrap();
        image
    }

    #[test]
    fn upgrade_table() {
        let cases: &[(&str, J, J)] = &[
            (
                "v1alpha1",
                json!({"name": "app", "registry": "hub", "tag": "t", "autoReload": {"disabled": true}, "build": {"contextPath": "c", "dockerfilePath": "d"}}),
                json!({"image": "registry.example.com/app", "tags": ["t"], "context": "c", "dockerfile": "d", "createPullSecret": false, "preferSyncOverRebuild": true}),
            ),
            (
                "v1beta1",
                json!({"image": "a", "insecure": true, "skipPush": true, "build": {"dockerfile": "D", "options": {"target": "x"}, "kaniko": {"flags": ["--f"]}}}),
                json!({"image": "a", "dockerfile": "D", "createPullSecret": false, "preferSyncOverRebuild": true,
                       "build": {"kaniko": {"options": {"target": "x"}, "args": ["--f"], "insecure": true}, "docker": {"skipPush": true}}}),
            ),
            (
                "v1beta2",
                json!({"image": "a", "createPullSecret": true, "build": {"custom": {"command": "c", "flags": ["x"]}}}),
                json!({"image": "a", "createPullSecret": true, "preferSyncOverRebuild": true, "build": {"custom": {"command": "c", "args": ["x"]}}}),
            ),
            (
                "v1beta6",
                json!({"image": "a", "tag": "v1"}),
                json!({"image": "a", "tags": ["v1"], "preferSyncOverRebuild": true}),
            ),
            (
                "v1beta8",
                json!({"image": "a", "tags": ["x"]}),
                json!({"image": "a", "tags": ["x"], "preferSyncOverRebuild": true}),
            ),
            (
                "v1beta9",
                json!({"image": "a", "build": {"kaniko": {"args": ["x"]}}}),
                json!({"image": "a", "build": {"kaniko": {"args": ["x"]}}}),
            ),
        ];
        for (version, input, want) in cases {
            assert_eq!(&up(version, input.clone()), want, "{version}");
        }
        let mut missing = json!({"name": "a", "registry": "nope"});
        let err = upgrade_image("app", &mut missing, 0, None).unwrap_err();
        assert!(err.contains("registry `nope`"), "{err}");
    }

    #[test]
    fn override_images_become_interactive_images() {
        let mut dev = json!({"overrideImages": [{"name": "default", "entrypoint": ["sleep", "999"], "context": "x"}], "ports": []});
        upgrade_dev(&mut dev, B2);
        assert_eq!(
            dev,
            json!({"ports": [], "interactive": {"images": [{"name": "default", "entrypoint": ["sleep"], "cmd": ["999"]}]}})
        );
        let mut newer = json!({"overrideImages": []});
        upgrade_dev(&mut newer, B2 + 1);
        assert_eq!(newer, json!({"overrideImages": []}));
    }

    #[test]
    fn paths_resolve_against_the_root() {
        let root = Path::new("/p/proj");
        let cases = [
            ("./Dockerfile", "/p/proj/Dockerfile"),
            ("./", "/p/proj"),
            (".", "/p/proj"),
            ("../Dockerfile", "/p/Dockerfile"),
            ("sub/../x", "/p/proj/x"),
            ("/abs/Dockerfile", "/abs/Dockerfile"),
            ("manifests/*.yaml", "/p/proj/manifests/*.yaml"),
        ];
        for (input, want) in cases {
            assert_eq!(resolve_path(root, input), PathBuf::from(want), "{input}");
        }
    }

    #[test]
    fn model_defaults_and_validation() {
        let root = Path::new("/proj");
        let file = Path::new("/proj/devspace.yaml");
        let doc = json!({"version": "v1beta9", "images": {"app": {"image": "a", "tags": ["t"]}},
            "deployments": [{"name": "d", "kubectl": {"manifests": ["k8s/*.yaml"]}}], "dev": {"x": 1}});
        let cfg = to_model(doc, 12, root, file, &|_| None).unwrap();
        let app = &cfg.images["app"];
        assert_eq!(app.dockerfile, PathBuf::from("/proj/Dockerfile"));
        assert_eq!(app.context, PathBuf::from("/proj"));
        assert_eq!(
            cfg.deployments[0].kubectl.as_ref().unwrap().manifests,
            ["/proj/k8s/*.yaml"]
        );
        assert!(cfg.other.contains_key("dev"));

        let cases = [
            (
                json!({"images": {"": {"image": "a"}}}),
                "images keys cannot be an empty string",
            ),
            (
                json!({"images": {"a": null}}),
                "images.a is empty and should at least contain an image name",
            ),
            (
                json!({"images": {"a": {"tags": ["x"]}}}),
                "images.a.image is required",
            ),
            (
                json!({"images": {"a": {"image": "x", "build": {"custom": {"args": []}}}}}),
                "images.a.build.custom.command is required",
            ),
            (
                json!({"images": {"a": {"image": "x"}, "b": {"image": "x"}}}),
                "multiple image definitions with the same image name are not allowed",
            ),
        ];
        for (doc, want) in cases {
            let err = to_model(doc, 12, root, file, &|_| None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
