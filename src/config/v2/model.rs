//! A checked v2beta1 document → the one [`Config`] model. Where the fields meet follows
//! DevSpace 6's own v1beta11 → v2beta1 conversion read backwards: image-level `target`,
//! `network`, `buildArgs` and `skipPush` live in the options of the builder that runs the image;
//! `updateImageTags` is the 5.x `replaceImageTags`; deployments keep their map order.
//! DevSpace 6's `adjustConfig` applies too: a tag written in `image` moves to the front of
//! `tags`, Docker Hub official names are shortened, map keys must match the name regex.
//! Fields this tool cannot run are refused here, each with one error naming the field.

use crate::config::error::{ConfigError, Location};
use crate::config::model::*;
use crate::config::upgrade::{resolve_path, validate};
use crate::registry::reference::{shorten_official, split_tag};
use indexmap::IndexMap;
use serde_json::{Map, Value as J};
use std::path::Path;

/// Where a key of a top-level section is written (`images`, `app`) for error messages.
pub type LocateKey<'a> = dyn Fn(&str, &str) -> Option<Box<Location>> + 'a;

/// The name regex of map keys (`images`, `deployments`, `pipelines`, `pullSecrets`, ...).
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b {
        [] => false,
        [one] => ok(*one),
        [first, middle @ .., last] => {
            ok(*first) && ok(*last) && middle.iter().all(|&c| ok(c) || c == b'-')
        }
    }
}

/// The component chart DevSpace 6.3 deploys when a Helm deployment names no chart.
pub const COMPONENT_CHART_VERSION: &str = "0.9.1";
/// Where DevSpace publishes the component chart.
pub const COMPONENT_CHART_REPO: &str = "https://charts.devspace.sh";

/// Builds the model; returns warnings the user should see.
pub fn to_model(
    doc: J,
    name: &str,
    root: &Path,
    file: &Path,
    locate: &LocateKey<'_>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let J::Object(mut top) = doc else {
        return Err(invalid(file, None, "the config must be a mapping".into()));
    };
    for section in [
        "images",
        "deployments",
        "pipelines",
        "pullSecrets",
        "dependencies",
        "dev",
    ] {
        if let Some(J::Object(map)) = top.get(section) {
            for key in map.keys() {
                if !valid_name(key) {
                    return Err(invalid(
                        file,
                        locate(section, key),
                        format!(
                            "{section}.{key}: the name must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
                        ),
                    ));
                }
            }
        }
    }
    let mut images = IndexMap::new();
    if let Some(J::Object(map)) = top.shift_remove("images") {
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            let image = image_from(&key, value, root)
                .map_err(|m| invalid(file, locate("images", &key), m))?;
            images.insert(key, image);
        }
    }
    let mut deployments = Vec::new();
    if let Some(J::Object(map)) = top.shift_remove("deployments") {
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            let d = deployment_from(&key, value, root, &mut warnings)
                .map_err(|m| invalid(file, locate("deployments", &key), m))?;
            deployments.push(d);
        }
    }
    if let Some(J::Object(map)) = top.get("pullSecrets") {
        for (key, ps) in map {
            if ps.get("registry").is_none_or(|r| r.is_null()) {
                return Err(invalid(
                    file,
                    locate("pullSecrets", key),
                    format!("pullSecrets.{key}.registry is required"),
                ));
            }
        }
    }
    if let Some(J::Object(lr)) = top.get("localRegistry")
        && lr.get("enabled") == Some(&J::Bool(true))
    {
        warnings.push(
            "localRegistry.enabled: the in-cluster local registry is not implemented; images are built and pushed to their own registries (as with enabled: false)".into(),
        );
    }
    top.shift_remove("version");
    top.insert("name".into(), J::String(name.to_string()));
    let mut other: IndexMap<String, J> = IndexMap::new();
    other.insert("name".into(), J::String(name.to_string()));
    for (k, v) in top {
        if !v.is_null() && k != "name" {
            other.insert(k, v);
        }
    }
    let config = Config {
        version: super::VERSION.to_string(),
        images,
        deployments,
        other,
    };
    validate(&config).map_err(|(key, message)| invalid(file, locate("images", &key), message))?;
    Ok((config, warnings))
}

fn invalid(file: &Path, at: Option<Box<Location>>, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: file.to_path_buf(),
        at,
        message,
    }
}

fn take_str(m: &mut Map<String, J>, k: &str) -> Option<String> {
    m.remove(k).and_then(|v| v.as_str().map(str::to_string))
}

fn take_bool(m: &mut Map<String, J>, k: &str) -> Option<bool> {
    m.remove(k).and_then(|v| v.as_bool())
}

fn take_list(m: &mut Map<String, J>, k: &str) -> Vec<String> {
    match m.remove(k) {
        Some(J::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn from_obj<T: serde::de::DeserializeOwned + Default>(
    m: Map<String, J>,
    what: &str,
) -> Result<T, String> {
    serde_json::from_value(J::Object(m)).map_err(|e| format!("{what}: {e}"))
}

fn image_from(key: &str, value: J, root: &Path) -> Result<ImageConfig, String> {
    let J::Object(mut m) = value else {
        return Err(format!("images.{key} must be a mapping"));
    };
    m.remove("name");
    let written = take_str(&mut m, "image").unwrap_or_default();
    let (image, tag) = split_tag(&written);
    let (image, tag) = (image.to_owned(), tag.map(str::to_owned));
    let mut tags = take_list(&mut m, "tags");
    if let Some(t) = tag {
        tags.insert(0, t);
    }
    let dockerfile = take_str(&mut m, "dockerfile").unwrap_or_else(|| "./Dockerfile".into());
    let context = take_str(&mut m, "context").unwrap_or_else(|| "./".into());
    let target = take_str(&mut m, "target");
    let network = take_str(&mut m, "network");
    let build_args: IndexMap<String, Option<String>> = match m.remove("buildArgs") {
        Some(J::Object(args)) => args
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_string)))
            .collect(),
        _ => IndexMap::new(),
    };
    let options =
        (target.is_some() || network.is_some() || !build_args.is_empty()).then(|| BuildOptions {
            target,
            network,
            build_args,
        });
    let skip_push = take_bool(&mut m, "skipPush").filter(|s| *s);
    let mut build = BuildConfig::default();
    let custom = m.remove("custom");
    let build_kit = m.remove("buildKit");
    let kaniko = m.remove("kaniko");
    let docker = m.remove("docker");
    if let Some(J::Object(mut k)) = kaniko {
        if let Some(name) = k.remove("generateName") {
            let name = name.as_str().unwrap_or_default().to_string();
            return Err(format!(
                "images.{key}.kaniko.generateName ({name}) is not supported: kaniko build pods are named devspace-build-{key}-<random>"
            ));
        }
        let mut cfg: KanikoConfig = from_obj(k, &format!("images.{key}.kaniko"))?;
        // DevSpace 6: the kaniko layer cache is off unless asked for.
        cfg.cache.get_or_insert(false);
        build.kaniko = Some(cfg);
    }
    if let Some(J::Object(d)) = docker {
        build.docker = Some(from_obj(d, &format!("images.{key}.docker"))?);
    }
    if let Some(J::Object(b)) = build_kit {
        build.build_kit = Some(from_obj(b, &format!("images.{key}.buildKit"))?);
    }
    if let Some(J::Object(mut c)) = custom {
        let legacy = c.get("skipImageArg").is_some()
            || c.contains_key("args")
            || c.contains_key("appendArgs")
            || c.contains_key("imageFlag")
            || c.contains_key("commands");
        let mut cfg: CustomConfig = if legacy {
            // A converted 5.x builder: `skipImageArg: false` still appends the image.
            if c.get("skipImageArg") == Some(&J::Bool(false)) {
                c.remove("skipImageArg");
            }
            from_obj(c, &format!("images.{key}.custom"))?
        } else {
            // Native v2beta1: the command is a shell script, no image argument appended.
            let script = take_str(&mut c, "command").unwrap_or_default();
            CustomConfig {
                command: if script.is_empty() {
                    String::new()
                } else {
                    SHELL.into()
                },
                args: if script.is_empty() {
                    Vec::new()
                } else {
                    vec!["-c".into(), script]
                },
                skip_image_arg: Some(true),
                on_change: take_list(&mut c, "onChange"),
                ..Default::default()
            }
        };
        cfg.on_change.retain(|p| !p.is_empty());
        build.custom = Some(cfg);
    }
    // Options and skipPush go to the builder that runs the image.
    let mut img = ImageConfig {
        image: shorten_official(&image).to_owned(),
        tags,
        dockerfile: resolve_path(root, &dockerfile),
        context: resolve_path(root, &context),
        build,
        devspace6: true,
        ..Default::default()
    };
    match img.builder_kind() {
        BuilderKind::Custom | BuilderKind::Disabled => {}
        BuilderKind::BuildKit => {
            let bk = img.build.build_kit.get_or_insert_with(Default::default);
            bk.options = options;
            bk.skip_push = skip_push;
        }
        BuilderKind::Kaniko => {
            if let Some(k) = img.build.kaniko.as_mut() {
                k.options = options;
            }
        }
        BuilderKind::Docker => {
            if options.is_some() || skip_push.is_some() {
                let d = img.build.docker.get_or_insert_with(Default::default);
                d.options = options;
                d.skip_push = skip_push;
            }
        }
    }
    img.entrypoint = m
        .remove("entrypoint")
        .and_then(|v| serde_json::from_value(v).ok());
    img.cmd = m.remove("cmd").and_then(|v| serde_json::from_value(v).ok());
    img.append_dockerfile_instructions = take_list(&mut m, "appendDockerfileInstructions");
    img.rebuild_strategy = take_str(&mut m, "rebuildStrategy").filter(|s| !s.is_empty());
    if let Some(s) = &img.rebuild_strategy
        && !["default", "always", "ignoreContextChanges"].contains(&s.as_str())
    {
        return Err(format!(
            "images.{key}.rebuildStrategy `{s}` is not one of default, always, ignoreContextChanges"
        ));
    }
    img.create_pull_secret = take_bool(&mut m, "createPullSecret");
    let legacy_helper = take_bool(&mut m, "injectLegacyRestartHelper");
    img.inject_restart_helper = take_bool(&mut m, "injectRestartHelper").or(legacy_helper);
    img.restart_helper_path = take_str(&mut m, "restartHelperPath");
    if let Some((field, _)) = m.into_iter().next() {
        return Err(format!("images.{key}.{field}: not handled"));
    }
    Ok(img)
}

/// The program a native v2beta1 custom command runs in (DevSpace runs it in its in-process
/// POSIX shell).
pub const SHELL: &str = "sh";

fn deployment_from(
    key: &str,
    value: J,
    root: &Path,
    warnings: &mut Vec<String>,
) -> Result<DeploymentConfig, String> {
    let J::Object(mut m) = value else {
        return Err(format!("deployments.{key} must be a mapping"));
    };
    let namespace = take_str(&mut m, "namespace").filter(|n| !n.is_empty());
    let update = take_bool(&mut m, "updateImageTags");
    let mut dep = DeploymentConfig {
        name: key.to_string(),
        namespace,
        ..Default::default()
    };
    let helm = m.remove("helm");
    let kubectl = m.remove("kubectl");
    match (helm, kubectl) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(format!(
                "deployments.{key}: exactly one of `helm` and `kubectl` is required"
            ));
        }
        (Some(J::Object(mut h)), None) => {
            let mut helm = HelmDeployment {
                replace_image_tags: update,
                release_name: take_str(&mut h, "releaseName").filter(|r| !r.is_empty()),
                values: h.remove("values").filter(|v| !v.is_null()),
                values_files: take_list(&mut h, "valuesFiles")
                    .iter()
                    .map(|f| resolve_path(root, f).display().to_string())
                    .collect(),
                upgrade_args: take_list(&mut h, "upgradeArgs"),
                template_args: h
                    .remove("templateArgs")
                    .and_then(|v| serde_json::from_value(v).ok()),
                ..Default::default()
            };
            match h.remove("chart") {
                Some(J::Object(c)) => {
                    for field in [
                        "path",
                        "git",
                        "subPath",
                        "branch",
                        "tag",
                        "revision",
                        "cloneArgs",
                        "disableShallow",
                        "disablePull",
                    ] {
                        if c.contains_key(field) {
                            return Err(format!(
                                "deployments.{key}.helm.chart.{field}: charts from an inline source (git clone or path) are not supported; use a local chart directory in `chart.name` or a chart repository"
                            ));
                        }
                    }
                    let chart: HelmChart = from_obj(c, &format!("deployments.{key}.helm.chart"))?;
                    let component = chart.name.is_empty()
                        || (chart.name == "component-chart"
                            && chart
                                .repo
                                .as_deref()
                                .is_some_and(|r| r.contains("charts.devspace.sh")));
                    if component {
                        helm.component_chart = Some(true);
                        helm.chart = Some(HelmChart {
                            name: "component-chart".into(),
                            version: chart
                                .version
                                .or_else(|| Some(COMPONENT_CHART_VERSION.into())),
                            repo: Some(COMPONENT_CHART_REPO.into()),
                            ..Default::default()
                        });
                    } else {
                        helm.chart = Some(chart);
                    }
                }
                _ => {
                    helm.component_chart = Some(true);
                    helm.chart = Some(HelmChart {
                        name: "component-chart".into(),
                        version: Some(COMPONENT_CHART_VERSION.into()),
                        repo: Some(COMPONENT_CHART_REPO.into()),
                        ..Default::default()
                    });
                }
            }
            // Cosmetic or helm-side switches: kept (printed) as written.
            for (k, v) in h {
                helm.other.insert(k, v);
            }
            dep.helm = Some(helm);
        }
        (None, Some(J::Object(mut k))) => {
            for field in ["inlineManifest", "patches", "kustomizeBinaryPath"] {
                if k.contains_key(field) {
                    return Err(format!(
                        "deployments.{key}.kubectl.{field} is not supported by this tool"
                    ));
                }
            }
            let manifests = take_list(&mut k, "manifests");
            if manifests.is_empty() {
                return Err(format!(
                    "deployments.{key}.kubectl.manifests is required (or inlineManifest)"
                ));
            }
            let kustomize = take_bool(&mut k, "kustomize");
            let kubectl = KubectlDeployment {
                // DevSpace deletes every `*`: `k8s/**` → `k8s/`.
                manifests: manifests
                    .iter()
                    .map(|m| m.replace('*', ""))
                    .map(|m| {
                        if kustomize == Some(true) {
                            m.strip_suffix("kustomization.yaml")
                                .map(str::to_string)
                                .unwrap_or(m)
                        } else {
                            m
                        }
                    })
                    .map(|m| resolve_path(root, &m).display().to_string())
                    .collect(),
                kustomize,
                replace_image_tags: update,
                kustomize_args: take_list(&mut k, "kustomizeArgs"),
                create_args: take_list(&mut k, "createArgs"),
                apply_args: take_list(&mut k, "applyArgs"),
                cmd_path: take_str(&mut k, "kubectlBinaryPath"),
                ..Default::default()
            };
            if !kubectl.create_args.is_empty() {
                warnings.push(format!(
                    "deployments.{key}.kubectl.createArgs are not used: manifests are applied server-side as they are"
                ));
            }
            dep.kubectl = Some(kubectl);
        }
        _ => return Err(format!("deployments.{key}: helm/kubectl must be mappings")),
    }
    m.remove("name");
    if let Some((field, _)) = m.into_iter().next() {
        return Err(format!("deployments.{key}.{field}: not handled"));
    }
    Ok(dep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_regex() {
        for ok in ["a", "app", "a-b", "vcluster-k8s", "0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "App"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
