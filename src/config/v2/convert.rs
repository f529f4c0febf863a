//! The one [`Config`] model written as a DevSpace 6 (`v2beta1`) document: what `devspace
//! print` shows for a v2beta1 config, and what `devspace print --convert` shows for a 4.x/5.x
//! one (DevSpace 6's `v1beta11/upgrade.go` rules: map keys through `encoding.Convert`,
//! builder options at image level, `replaceImageTags` → `updateImageTags`, Helm switches
//! appended to `upgradeArgs`, implicit 5.x image pull secrets → `pullSecrets`, and generated
//! `build`/`deploy`/`dev`/`purge` pipelines). Loading the output with our v2beta1 front end
//! gives the same images and deployments (paths are written relative to the config directory).
//!
//! Things without a v2beta1 equivalent are dropped and named in the returned notes.

use super::model::{COMPONENT_CHART_REPO, SHELL};
use super::{convert_name, default_name};
use crate::config::model::*;
use serde_json::{Map, Value as J, json};
use std::path::Path;

/// The v2beta1 document for `config` (loaded from `root`), and notes about what was dropped.
pub fn to_v2(config: &Config, root: &Path) -> (J, Vec<String>) {
    let native = config.version == super::VERSION;
    let mut notes = Vec::new();
    let mut top = Map::new();
    top.insert("version".into(), json!(super::VERSION));
    let name = config
        .other
        .get("name")
        .and_then(J::as_str)
        .filter(|n| !n.is_empty())
        .map(convert_name)
        .unwrap_or_else(|| default_name(root));
    top.insert("name".into(), J::String(name));

    // Keys as DevSpace 6 writes them (5.x keys pass through encoding.Convert).
    let key_of = |k: &str| {
        if native {
            k.to_string()
        } else {
            convert_name(k)
        }
    };
    let mut images = Map::new();
    for (key, img) in &config.images {
        images.insert(key_of(key), image_v2(img, root));
    }
    let mut deployments = Map::new();
    for d in &config.deployments {
        let (key, value) = deployment_v2(d, root, native, &mut notes);
        deployments.insert(key, value);
    }

    if native {
        if let Some(p) = config.other.get("pipelines") {
            top.insert("pipelines".into(), p.clone());
        }
        insert_sections(&mut top, images, deployments);
        for (k, v) in &config.other {
            if k != "name" && k != "pipelines" {
                top.insert(k.clone(), v.clone());
            }
        }
        return (J::Object(top), notes);
    }

    // 4.x/5.x: pull secrets (listed and implicit), then generated pipelines.
    let mut pull_secrets = Map::new();
    if let Some(J::Array(list)) = config.other.get("pullSecrets") {
        for (i, ps) in list.iter().enumerate() {
            let mut ps = ps.clone();
            if let Some(m) = ps.as_object_mut() {
                m.remove("disabled");
            }
            pull_secrets.insert(format!("pull-secret-{i}"), ps);
        }
    }
    let has_registry = |ps: &Map<String, J>, reg: &str| {
        ps.values()
            .any(|v| v.get("registry").and_then(J::as_str) == Some(reg))
    };
    for (key, img) in &config.images {
        if img.create_pull_secret == Some(false) {
            continue;
        }
        let Ok(registry) = crate::registry::reference::Registry::of_image(&img.image) else {
            continue;
        };
        if registry.is_docker_hub() || has_registry(&pull_secrets, registry.host()) {
            continue;
        }
        let host = registry.host().to_string();
        pull_secrets.insert(convert_name(key), json!({ "registry": host }));
    }
    let built: Vec<String> = config
        .images
        .iter()
        .filter(|(_, i)| i.build.disabled != Some(true))
        .map(|(k, _)| convert_name(k))
        .collect();
    let deploy_names: Vec<String> = config
        .deployments
        .iter()
        .map(|d| convert_name(&d.name))
        .collect();
    let mut deploy_lines = Vec::new();
    if !pull_secrets.is_empty() {
        let names: Vec<&str> = pull_secrets.keys().map(String::as_str).collect();
        deploy_lines.push(format!("ensure_pull_secrets {}", names.join(" ")));
    }
    if !built.is_empty() {
        deploy_lines.push(format!("build_images {}", built.join(" ")));
    }
    if !deploy_names.is_empty() {
        // 5.x deploys one after another, in list order.
        deploy_lines.push(format!(
            "create_deployments {} --sequential",
            deploy_names.join(" ")
        ));
    }
    let mut pipelines = Map::new();
    if !built.is_empty() {
        pipelines.insert(
            "build".into(),
            json!({ "run": format!("build_images {}", built.join(" ")) }),
        );
    }
    if !deploy_lines.is_empty() {
        pipelines.insert("deploy".into(), json!({ "run": deploy_lines.join("\n") }));
        let mut dev = deploy_lines.clone();
        dev.push("start_dev --all".into());
        pipelines.insert("dev".into(), json!({ "run": dev.join("\n") }));
    }
    if !pipelines.is_empty() {
        top.insert("pipelines".into(), J::Object(pipelines));
    }
    insert_sections(&mut top, images, deployments);
    if !pull_secrets.is_empty() {
        top.insert("pullSecrets".into(), J::Object(pull_secrets));
    }
    if let Some(J::Array(list)) = config.other.get("commands") {
        let mut commands = Map::new();
        for c in list {
            if let Some(name) = c.get("name").and_then(J::as_str) {
                let mut c = c.clone();
                if let Some(m) = c.as_object_mut() {
                    m.remove("name");
                }
                commands.insert(name.to_string(), c);
            }
        }
        top.insert("commands".into(), J::Object(commands));
    }
    if let Some(h) = config.other.get("hooks") {
        top.insert("hooks".into(), h.clone());
    }
    if let Some(r) = config.other.get("require") {
        top.insert("require".into(), r.clone());
    }
    for section in [
        "dev",
        "dependencies",
        "cluster",
        "devSpace",
        "registries",
        "tiller",
        "internalRegistry",
    ] {
        if config.other.contains_key(section) {
            notes.push(format!(
                "`{section}` is not converted (DevSpace 6 reshaped it; this tool does not run it): rewrite it by hand"
            ));
        }
    }
    (J::Object(top), notes)
}

/// Adds non-empty `images` and `deployments`, with values that read `$(…)` escaped as
/// `$$(…)`: DevSpace 6 would run them (after loading a v2beta1 file they were escaped in it;
/// 4.x/5.x configs keep them as text, like Kubernetes' own `$(VAR)` in env values).
fn insert_sections(top: &mut Map<String, J>, images: Map<String, J>, deployments: Map<String, J>) {
    for (key, section) in [("images", images), ("deployments", deployments)] {
        if section.is_empty() {
            continue;
        }
        let mut section = J::Object(section);
        escape_expressions(&mut section);
        top.insert(key.into(), section);
    }
}

fn escape_expressions(value: &mut J) {
    match value {
        J::String(s) if super::whole_expression(s).is_some() => s.insert(0, '$'),
        J::Array(items) => items.iter_mut().for_each(escape_expressions),
        J::Object(map) => map.values_mut().for_each(escape_expressions),
        _ => {}
    }
}

fn rel(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(r) if r.as_os_str().is_empty() => "./".into(),
        Ok(r) => format!("./{}", r.display()),
        Err(_) => path.display().to_string(),
    }
}

fn rel_str(p: &str, root: &Path) -> String {
    rel(Path::new(p), root)
}

fn put<T: serde::Serialize>(m: &mut Map<String, J>, k: &str, v: &T) {
    if let Ok(v) = serde_json::to_value(v)
        && !v.is_null()
        && v != json!([])
        && v != json!({})
    {
        m.insert(k.into(), v);
    }
}

fn image_v2(img: &ImageConfig, root: &Path) -> J {
    let mut m = Map::new();
    m.insert("image".into(), J::String(img.image.clone()));
    let mut tags = img.tags.clone();
    if img.tags_append_random == Some(true) {
        if tags.is_empty() {
            tags.push("#######".into());
        }
        for t in &mut tags {
            t.push_str("-#####");
        }
    }
    put(&mut m, "tags", &tags);
    m.insert("dockerfile".into(), J::String(rel(&img.dockerfile, root)));
    m.insert("context".into(), J::String(rel(&img.context, root)));
    if let Some(o) = img.options() {
        put(&mut m, "target", &o.target);
        put(&mut m, "network", &o.network);
        put(&mut m, "buildArgs", &o.build_args);
    }
    put(&mut m, "entrypoint", &img.entrypoint);
    put(&mut m, "cmd", &img.cmd);
    put(
        &mut m,
        "appendDockerfileInstructions",
        &img.append_dockerfile_instructions,
    );
    put(&mut m, "rebuildStrategy", &img.rebuild_strategy);
    let skip_push = img.build.docker.as_ref().and_then(|d| d.skip_push) == Some(true)
        || img.build.build_kit.as_ref().and_then(|b| b.skip_push) == Some(true);
    if skip_push {
        m.insert("skipPush".into(), J::Bool(true));
    }
    put(&mut m, "createPullSecret", &img.create_pull_secret);
    put(
        &mut m,
        "injectLegacyRestartHelper",
        &img.inject_restart_helper,
    );
    put(&mut m, "restartHelperPath", &img.restart_helper_path);
    if let Some(d) = &img.build.docker {
        let mut d = d.clone();
        d.options = None;
        d.skip_push = None;
        put(&mut m, "docker", &d);
    }
    if let Some(b) = &img.build.build_kit {
        let mut b = b.clone();
        b.options = None;
        b.skip_push = None;
        if let Ok(v) = serde_json::to_value(&b) {
            m.insert("buildKit".into(), v);
        }
    }
    if let Some(k) = &img.build.kaniko {
        let mut k = k.clone();
        k.options = None;
        // 5.x's kaniko cache was on unless switched off; DevSpace 6 writes it explicitly.
        k.cache.get_or_insert(true);
        if let Ok(v) = serde_json::to_value(&k) {
            m.insert("kaniko".into(), v);
        }
    }
    if let Some(c) = &img.build.custom {
        let native_script = c.command == SHELL
            && c.args.len() == 2
            && c.args[0] == "-c"
            && c.skip_image_arg == Some(true)
            && c.append_args.is_empty()
            && c.commands.is_empty();
        let mut out = Map::new();
        if native_script {
            out.insert("command".into(), J::String(c.args[1].clone()));
            put(&mut out, "onChange", &c.on_change);
        } else {
            let mut c = c.clone();
            // 5.x appended the image unless skipImageArg; v2beta1 says so explicitly.
            c.skip_image_arg = if c.skip_image_arg == Some(true) {
                None
            } else {
                Some(false)
            };
            if let Ok(J::Object(v)) = serde_json::to_value(&c) {
                out = v;
            }
        }
        m.insert("custom".into(), J::Object(out));
    }
    J::Object(m)
}

fn deployment_v2(
    d: &DeploymentConfig,
    root: &Path,
    native: bool,
    notes: &mut Vec<String>,
) -> (String, J) {
    let key = if native {
        d.name.clone()
    } else {
        convert_name(&d.name)
    };
    let mut m = Map::new();
    put(&mut m, "namespace", &d.namespace);
    let mut update = None;
    if let Some(h) = &d.helm {
        let mut out = Map::new();
        let component = h.component_chart == Some(true);
        match (&h.chart, component) {
            (Some(c), true) => {
                let mut chart = Map::new();
                chart.insert("name".into(), json!("component-chart"));
                chart.insert("repo".into(), json!(COMPONENT_CHART_REPO));
                // 5.x used component-chart 0.4.0 unless it named a version.
                let version = c
                    .version
                    .clone()
                    .unwrap_or_else(|| crate::deploy::helm_run::COMPONENT_CHART_VERSION.into());
                chart.insert("version".into(), J::String(version));
                out.insert("chart".into(), J::Object(chart));
            }
            (None, true) => {
                out.insert(
                    "chart".into(),
                    json!({"name": "component-chart", "repo": COMPONENT_CHART_REPO,
                           "version": crate::deploy::helm_run::COMPONENT_CHART_VERSION}),
                );
            }
            (Some(c), false) => {
                let mut c = c.clone();
                if c.repo.is_none() && !c.name.is_empty() && root.join(&c.name).is_dir() {
                    c.name = rel_str(&c.name, root);
                }
                put(&mut out, "chart", &c);
            }
            (None, false) => {}
        }
        put(&mut out, "releaseName", &h.release_name);
        put(&mut out, "values", &h.values);
        let files: Vec<String> = h.values_files.iter().map(|f| rel_str(f, root)).collect();
        put(&mut out, "valuesFiles", &files);
        let mut upgrade = h.upgrade_args.clone();
        if h.wait == Some(true) {
            upgrade.push("--wait".into());
        }
        if let Some(t) = &h.timeout {
            upgrade.push("--timeout".into());
            upgrade.push(match t {
                J::String(s) => s.clone(),
                other => format!("{other}s"),
            });
        }
        if h.atomic == Some(true) {
            upgrade.push("--atomic".into());
        }
        if h.force == Some(true) {
            upgrade.push("--force".into());
        }
        put(&mut out, "upgradeArgs", &upgrade);
        put(&mut out, "templateArgs", &h.template_args);
        if h.driver.is_some() {
            notes.push(format!(
                "deployments.{key}.helm.driver: dropped (no v2beta1 equivalent)"
            ));
        }
        for (k, v) in &h.other {
            if native || ["displayOutput", "disableDependencyUpdate"].contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            } else if !v.is_null() {
                notes.push(format!(
                    "deployments.{key}.helm.{k}: dropped (no v2beta1 equivalent)"
                ));
            }
        }
        update = h.replace_image_tags;
        m.insert("helm".into(), J::Object(out));
    }
    if let Some(k) = &d.kubectl {
        let mut out = Map::new();
        let mut manifests: Vec<String> = k.manifests.iter().map(|f| rel_str(f, root)).collect();
        if !native && manifests.iter().any(|m| m.contains('*')) {
            // What DevSpace 6 would read anyway: it deletes every `*`.
            notes.push(format!(
                "deployments.{key}.kubectl.manifests: DevSpace 6 deletes every `*`, so `k8s/**` is written as the directory `k8s/` (its YAML files, not subdirectories)"
            ));
            for m in &mut manifests {
                let stripped = m.replace('*', "");
                let trimmed = stripped.trim_end_matches('/');
                *m = if trimmed.is_empty() || trimmed == "." {
                    "./".into()
                } else {
                    trimmed.to_string()
                };
            }
        }
        put(&mut out, "manifests", &manifests);
        put(&mut out, "kustomize", &k.kustomize);
        put(&mut out, "kustomizeArgs", &k.kustomize_args);
        put(&mut out, "createArgs", &k.create_args);
        put(&mut out, "applyArgs", &k.apply_args);
        put(&mut out, "kubectlBinaryPath", &k.cmd_path);
        if !k.delete_args.is_empty() {
            notes.push(format!(
                "deployments.{key}.kubectl.deleteArgs: dropped (no v2beta1 equivalent)"
            ));
        }
        update = k.replace_image_tags;
        m.insert("kubectl".into(), J::Object(out));
    }
    if let Some(u) = update {
        m.insert("updateImageTags".into(), J::Bool(u));
    }
    for (k, v) in &d.other {
        if !v.is_null() {
            notes.push(format!(
                "deployments.{key}.{k}: dropped (no v2beta1 equivalent)"
            ));
        }
    }
    (key, J::Object(m))
}
