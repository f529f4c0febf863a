//! The kaniko build pod as data (pure): its name and labels, the executor arguments in
//! DevSpace's order, the init container that waits for the uploaded context, the volumes
//! (context, registry secret, additional mounts) and the user's scheduling/metadata knobs.
//!
//! Nothing here talks to the cluster; [`build_pod`] turns a [`PodPlan`] into the
//! `k8s_openapi` object the adapter creates, so every field is table-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, KeyToPath, Pod,
    PodSpec, ResourceRequirements, SecretVolumeSource, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use rand::Rng;

use crate::builder::BuildRequest;
use crate::config::model::{KanikoConfig, KanikoMountSource, PodResources};

/// Executor image when `kaniko.image` is not set (DevSpace 5's default).
pub const DEFAULT_EXECUTOR_IMAGE: &str = "gcr.io/kaniko-project/executor:v1.3.0";
/// Init container image when `kaniko.initImage` is not set.
pub const DEFAULT_INIT_IMAGE: &str = "alpine";
/// Name of the init container that receives the context.
pub const INIT_CONTAINER: &str = "context";
/// Name of the executor container.
pub const KANIKO_CONTAINER: &str = "kaniko";
/// Where the context is unpacked (an emptyDir shared by both containers).
pub const CONTEXT_DIR: &str = "/context";
/// The file whose appearance ends the init container (written after the upload).
pub const DONE_MARKER: &str = "/tmp/done";
/// Label every build pod carries (DevSpace's).
pub const BUILD_LABEL: &str = "devspace-build";
/// Label with the random id of one build.
pub const BUILD_ID_LABEL: &str = "devspace-build-id";
/// Label with the image key (sanitised to a label value).
pub const IMAGE_LABEL: &str = "devspace-build-image";
/// Prefix of every build pod name.
pub const POD_NAME_PREFIX: &str = "devspace-build-";

const CONTEXT_VOLUME: &str = "context";
const SECRET_VOLUME: &str = "docker-config";
const DOCKER_CONFIG_DIR: &str = "/kaniko/.docker";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Longest image-key part of a pod name: keeps the name a valid DNS label (63 characters).
const MAX_KEY_IN_NAME: usize = 63 - POD_NAME_PREFIX.len() - 6;

/// Everything the pod is made of.
#[derive(Debug, Clone)]
pub struct PodPlan<'a> {
    /// Pod name (see [`pod_name`]).
    pub name: String,
    /// Namespace of the pod.
    pub namespace: String,
    /// Random id of this build (see [`build_id`]).
    pub build_id: String,
    /// The image to build.
    pub request: &'a BuildRequest,
    /// The image's kaniko block (or the fallback's).
    pub config: &'a KanikoConfig,
    /// Secret mounted as `/kaniko/.docker/config.json` (`None`: no mount).
    pub pull_secret: Option<String>,
}

/// Why a pod cannot be made from the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PodSpecError {
    /// The config key (`kaniko.tolerations[0]`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// `s` lower-cased with every run of characters outside `[a-z0-9]` turned into one `-`, no
/// leading or trailing `-`, cut to `max` characters.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

fn random_lower_alnum<R: Rng + ?Sized>(rng: &mut R, n: usize) -> String {
    (0..n)
        .map(|_| LOWER_ALNUM[rng.random_range(0..LOWER_ALNUM.len())] as char)
        .collect()
}

/// `devspace-build-<image key sanitised>-<5 random [a-z0-9]>`.
pub fn pod_name<R: Rng + ?Sized>(image_key: &str, rng: &mut R) -> String {
    let key = sanitize(image_key, MAX_KEY_IN_NAME);
    let key = if key.is_empty() { "image" } else { &key };
    format!("{POD_NAME_PREFIX}{key}-{}", random_lower_alnum(rng, 5))
}

/// 12 random lower-case alphanumerics (DevSpace's `devspace-build-id`).
pub fn build_id<R: Rng + ?Sized>(rng: &mut R) -> String {
    random_lower_alnum(rng, 12)
}

/// The executor's arguments: `--dockerfile`, `--context`, one `--destination` per tag,
/// `--target`, build args (null values skipped), cache, snapshot mode, insecure flags, then
/// the user's `args` verbatim.
pub fn executor_args(request: &BuildRequest, config: &KanikoConfig) -> Vec<String> {
    let mut args = vec![
        format!("--dockerfile={CONTEXT_DIR}/{}", request.dockerfile),
        format!("--context=dir://{CONTEXT_DIR}"),
    ];
    args.extend(
        request
            .references()
            .iter()
            .map(|r| format!("--destination={r}")),
    );
    if let Some(target) = request.target.as_deref().filter(|t| !t.is_empty()) {
        args.push(format!("--target={target}"));
    }
    for (key, value) in &request.build_args {
        if let Some(value) = value {
            args.push("--build-arg".to_string());
            args.push(format!("{key}={value}"));
        }
    }
    if config.cache != Some(false) {
        args.push("--cache=true".to_string());
        args.push(format!("--cache-repo={}", cache_repo(&request.repository)));
    }
    args.push(format!(
        "--snapshotMode={}",
        config.snapshot_mode.as_deref().unwrap_or("time")
    ));
    if config.insecure == Some(true) {
        args.push("--insecure".to_string());
        args.push("--skip-tls-verify".to_string());
    }
    args.extend(config.args.iter().cloned());
    args
}

/// The fully normalised repository (`docker.io/john/app`), as DevSpace passes `--cache-repo`.
fn cache_repo(repository: &str) -> String {
    crate::registry::reference::Reference::parse(repository)
        .map(|r| r.name())
        .unwrap_or_else(|_| repository.to_string())
}

/// The init container's command: wait until the upload says it is done.
pub fn init_command() -> Vec<String> {
    vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("until [ -f {DONE_MARKER} ]; do sleep 1; done"),
    ]
}

fn env(vars: &indexmap::IndexMap<String, String>) -> Option<Vec<EnvVar>> {
    (!vars.is_empty()).then(|| {
        vars.iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                ..EnvVar::default()
            })
            .collect()
    })
}

fn resources(resources: Option<&PodResources>) -> Option<ResourceRequirements> {
    let r = resources?;
    let quantities = |m: &indexmap::IndexMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    Some(ResourceRequirements {
        limits: quantities(&r.limits),
        requests: quantities(&r.requests),
        ..ResourceRequirements::default()
    })
}

fn items(source: &KanikoMountSource) -> Option<Vec<KeyToPath>> {
    (!source.items.is_empty()).then(|| {
        source
            .items
            .iter()
            .map(|i| KeyToPath {
                key: i.key.clone(),
                path: i.path.clone(),
                mode: i.mode,
            })
            .collect()
    })
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        ..VolumeMount::default()
    }
}

fn map(m: &indexmap::IndexMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The build pod.
pub fn build_pod(plan: &PodPlan<'_>) -> Result<Pod, PodSpecError> {
    let config = plan.config;
    let mut labels = map(&config.labels);
    labels.insert(BUILD_LABEL.to_string(), "true".to_string());
    labels.insert(BUILD_ID_LABEL.to_string(), plan.build_id.clone());
    let image_label = sanitize(&plan.request.image_key, 63);
    if !image_label.is_empty() {
        labels.insert(IMAGE_LABEL.to_string(), image_label);
    }

    let mut volumes = vec![Volume {
        name: CONTEXT_VOLUME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut kaniko_mounts = Vec::new();
    if let Some(secret) = &plan.pull_secret {
        volumes.push(Volume {
            name: SECRET_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(vec![KeyToPath {
                    key: ".dockerconfigjson".to_string(),
                    path: "config.json".to_string(),
                    mode: None,
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        kaniko_mounts.push(mount(SECRET_VOLUME, DOCKER_CONFIG_DIR));
    }
    kaniko_mounts.push(mount(CONTEXT_VOLUME, CONTEXT_DIR));
    for (i, m) in config.additional_mounts.iter().enumerate() {
        let name = format!("additional-volume-{i}");
        let volume = if let Some(s) = &m.secret {
            Volume {
                name: name.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(s.name.clone()),
                    items: items(s),
                    default_mode: s.default_mode,
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }
        } else if let Some(c) = &m.config_map {
            Volume {
                name: name.clone(),
                config_map: Some(ConfigMapVolumeSource {
                    name: c.name.clone(),
                    items: items(c),
                    default_mode: c.default_mode,
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }
        } else {
            // DevSpace ignores entries with neither source.
            continue;
        };
        volumes.push(volume);
        kaniko_mounts.push(VolumeMount {
            name,
            mount_path: m.mount_path.clone().unwrap_or_default(),
            read_only: m.read_only,
            sub_path: m.sub_path.clone(),
            ..VolumeMount::default()
        });
    }

    let tolerations = config
        .tolerations
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::from_value::<Toleration>(t.clone()).map_err(|e| PodSpecError {
                field: format!("kaniko.tolerations[{i}]"),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let env_from = if config.env_from.is_empty() {
        None
    } else {
        let value = serde_json::to_value(&config.env_from).unwrap_or_default();
        let source = serde_json::from_value::<EnvFromSource>(value).map_err(|e| PodSpecError {
            field: "kaniko.envFrom".to_string(),
            message: e.to_string(),
        })?;
        Some(vec![source])
    };
    let resources = resources(config.resources.as_ref());

    let init = Container {
        name: INIT_CONTAINER.to_string(),
        image: Some(
            config
                .init_image
                .clone()
                .unwrap_or_else(|| DEFAULT_INIT_IMAGE.to_string()),
        ),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(init_command()),
        env: env(&config.init_env),
        resources: resources.clone(),
        volume_mounts: Some(vec![mount(CONTEXT_VOLUME, CONTEXT_DIR)]),
        ..Container::default()
    };
    let kaniko = Container {
        name: KANIKO_CONTAINER.to_string(),
        image: Some(
            config
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_EXECUTOR_IMAGE.to_string()),
        ),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: (!config.command.is_empty()).then(|| config.command.clone()),
        args: Some(executor_args(plan.request, config)),
        env: env(&config.env),
        env_from,
        resources,
        volume_mounts: Some(kaniko_mounts),
        ..Container::default()
    };
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            namespace: Some(plan.namespace.clone()),
            labels: Some(labels),
            annotations: (!config.annotations.is_empty()).then(|| map(&config.annotations)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            init_containers: Some(vec![init]),
            containers: vec![kaniko],
            volumes: Some(volumes),
            node_selector: (!config.node_selector.is_empty()).then(|| map(&config.node_selector)),
            service_account_name: config.service_account.clone().filter(|s| !s.is_empty()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            ..PodSpec::default()
        }),
        ..Pod::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{KanikoAdditionalMount, KeyToPath as CfgKeyToPath};
    use indexmap::IndexMap;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn request() -> BuildRequest {
        BuildRequest {
            image_key: "api".into(),
            repository: "john/app".into(),
            tags: vec!["v1".into(), "latest".into()],
            dockerfile: "sub/Dockerfile".into(),
            build_args: IndexMap::from([
                ("A".to_string(), Some("1".to_string())),
                ("NULL".to_string(), None),
                ("B".to_string(), Some("x y".to_string())),
            ]),
            target: Some("prod".into()),
            ..BuildRequest::default()
        }
    }

    #[test]
    fn sanitize_table() {
        let cases = [
            ("api", 63, "api"),
            ("My_Image.v2", 63, "my-image-v2"),
            ("--a__b--", 63, "a-b"),
            // Non-ASCII letters are not valid in names: they become separators.
            ("ÄÖx", 63, "x"),
            ("abcdef", 3, "abc"),
            ("ab-cdef", 3, "ab"),
            ("", 63, ""),
            ("___", 63, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(sanitize(input, max), want, "{input}");
        }
    }

    #[test]
    fn pod_names_are_dns_labels() {
        let mut rng = StdRng::seed_from_u64(1);
        for key in ["api", "My_Image", "", &"x".repeat(200)] {
            let name = pod_name(key, &mut rng);
            assert!(name.starts_with(POD_NAME_PREFIX), "{name}");
            assert!(name.len() <= 63, "{name}");
            let suffix = name.rsplit('-').next().unwrap_or_default();
            assert_eq!(suffix.len(), 5, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
        }
        assert!(pod_name("My_Image", &mut rng).starts_with("devspace-build-my-image-"));
        let id = build_id(&mut rng);
        assert_eq!(id.len(), 12);
    }

    #[test]
    fn executor_args_in_devspace_order() {
        let config = KanikoConfig {
            args: vec!["--verbosity=debug".into()],
            insecure: Some(true),
            snapshot_mode: Some("redo".into()),
            ..KanikoConfig::default()
        };
        assert_eq!(
            executor_args(&request(), &config),
            [
                "--dockerfile=/context/sub/Dockerfile",
                "--context=dir:///context",
                "--destination=john/app:v1",
                "--destination=john/app:latest",
                "--target=prod",
                "--build-arg",
                "A=1",
                "--build-arg",
                "B=x y",
                "--cache=true",
                "--cache-repo=docker.io/john/app",
                "--snapshotMode=redo",
                "--insecure",
                "--skip-tls-verify",
                "--verbosity=debug",
            ]
        );
        let plain = BuildRequest {
            target: None,
            build_args: IndexMap::new(),
            tags: vec!["t".into()],
            repository: "127.0.0.1:5000/app".into(),
            dockerfile: "Dockerfile".into(),
            ..request()
        };
        let no_cache = KanikoConfig {
            cache: Some(false),
            ..KanikoConfig::default()
        };
        assert_eq!(
            executor_args(&plain, &no_cache),
            [
                "--dockerfile=/context/Dockerfile",
                "--context=dir:///context",
                "--destination=127.0.0.1:5000/app:t",
                "--snapshotMode=time",
            ]
        );
    }

    fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
        items.iter().map(|i| name(i).to_string()).collect()
    }

    #[test]
    fn default_pod() {
        let request = request();
        let config = KanikoConfig::default();
        let pod = build_pod(&PodPlan {
            name: "devspace-build-api-abcde".into(),
            namespace: "ns".into(),
            build_id: "0123456789ab".into(),
            request: &request,
            config: &config,
            pull_secret: Some("devspace-auth-docker".into()),
        })
        .expect("pod");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["devspace-build"], "true");
        assert_eq!(labels["devspace-build-id"], "0123456789ab");
        assert_eq!(labels["devspace-build-image"], "api");
        assert_eq!(pod.metadata.annotations, None);
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let init = &spec.init_containers.expect("init")[0];
        assert_eq!(init.name, "context");
        assert_eq!(init.image.as_deref(), Some("alpine"));
        assert_eq!(init.command.as_deref(), Some(&init_command()[..]));
        let kaniko = &spec.containers[0];
        assert_eq!(kaniko.image.as_deref(), Some(DEFAULT_EXECUTOR_IMAGE));
        assert_eq!(kaniko.command, None);
        let mounts = kaniko.volume_mounts.clone().expect("mounts");
        assert_eq!(
            names(&mounts, |m| &m.mount_path),
            ["/kaniko/.docker", "/context"]
        );
        let volumes = spec.volumes.expect("volumes");
        assert_eq!(names(&volumes, |v| &v.name), ["context", "docker-config"]);
        let secret = volumes[1].secret.clone().expect("secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("devspace-auth-docker"));
        let item = &secret.items.expect("items")[0];
        assert_eq!(
            (item.key.as_str(), item.path.as_str()),
            (".dockerconfigjson", "config.json")
        );
        assert_eq!(kaniko.resources, None);
        assert_eq!(spec.node_selector, None);
        assert_eq!(spec.service_account_name, None);
    }

    #[test]
    fn configured_pod() {
        let request = request();
        let secret_source = KanikoMountSource {
            name: "extra".into(),
            items: vec![CfgKeyToPath {
                key: "k".into(),
                path: "p".into(),
                mode: Some(0o400),
            }],
            default_mode: Some(0o644),
        };
        let config = KanikoConfig {
            image: Some("my/executor:1".into()),
            init_image: Some("busybox".into()),
            command: vec!["/kaniko/executor".into()],
            node_selector: IndexMap::from([("disk".to_string(), "ssd".to_string())]),
            service_account: Some("builder".into()),
            annotations: IndexMap::from([("a".to_string(), "b".to_string())]),
            labels: IndexMap::from([
                ("team".to_string(), "x".to_string()),
                // The build labels win over user labels of the same name.
                ("devspace-build".to_string(), "no".to_string()),
            ]),
            env: IndexMap::from([("E".to_string(), "1".to_string())]),
            init_env: IndexMap::from([("I".to_string(), "2".to_string())]),
            resources: Some(PodResources {
                limits: IndexMap::from([("memory".to_string(), "1Gi".to_string())]),
                requests: IndexMap::from([("cpu".to_string(), "500m".to_string())]),
            }),
            tolerations: vec![serde_json::json!({"key": "k", "operator": "Exists"})],
            additional_mounts: vec![
                KanikoAdditionalMount {
                    secret: Some(secret_source.clone()),
                    read_only: Some(true),
                    mount_path: Some("/s".into()),
                    sub_path: Some("sub".into()),
                    ..KanikoAdditionalMount::default()
                },
                // Neither source: skipped, its index is not reused.
                KanikoAdditionalMount {
                    mount_path: Some("/none".into()),
                    ..KanikoAdditionalMount::default()
                },
                KanikoAdditionalMount {
                    config_map: Some(secret_source),
                    mount_path: Some("/c".into()),
                    ..KanikoAdditionalMount::default()
                },
            ],
            ..KanikoConfig::default()
        };
        let pod = build_pod(&PodPlan {
            name: "n".into(),
            namespace: "ns".into(),
            build_id: "id".into(),
            request: &request,
            config: &config,
            pull_secret: None,
        })
        .expect("pod");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["devspace-build"], "true");
        assert_eq!(labels["team"], "x");
        assert_eq!(
            pod.metadata.annotations.clone().unwrap_or_default()["a"],
            "b"
        );
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
        assert_eq!(
            spec.node_selector.clone().unwrap_or_default()["disk"],
            "ssd"
        );
        assert_eq!(spec.tolerations.clone().unwrap_or_default().len(), 1);
        let init = &spec.init_containers.clone().expect("init")[0];
        assert_eq!(init.image.as_deref(), Some("busybox"));
        assert_eq!(init.env.clone().unwrap_or_default()[0].name, "I");
        let kaniko = &spec.containers[0];
        assert_eq!(kaniko.image.as_deref(), Some("my/executor:1"));
        assert_eq!(
            kaniko.command.as_deref(),
            Some(&["/kaniko/executor".to_string()][..])
        );
        assert_eq!(kaniko.env.clone().unwrap_or_default()[0].name, "E");
        for c in [init, kaniko] {
            let r = c.resources.clone().expect("resources");
            assert_eq!(
                r.limits.unwrap_or_default()["memory"],
                Quantity("1Gi".into())
            );
            assert_eq!(
                r.requests.unwrap_or_default()["cpu"],
                Quantity("500m".into())
            );
        }
        let volumes = spec.volumes.expect("volumes");
        assert_eq!(
            names(&volumes, |v| &v.name),
            ["context", "additional-volume-0", "additional-volume-2"]
        );
        assert_eq!(
            volumes[1].secret.as_ref().and_then(|s| s.default_mode),
            Some(0o644)
        );
        assert_eq!(
            volumes[2].config_map.as_ref().map(|c| c.name.as_str()),
            Some("extra")
        );
        let mounts = kaniko.volume_mounts.clone().expect("mounts");
        assert_eq!(names(&mounts, |m| &m.mount_path), ["/context", "/s", "/c"]);
        assert_eq!(mounts[1].read_only, Some(true));
        assert_eq!(mounts[1].sub_path.as_deref(), Some("sub"));
    }

    #[test]
    fn bad_toleration_names_the_field() {
        let request = request();
        let config = KanikoConfig {
            tolerations: vec![serde_json::json!({"tolerationSeconds": "soon"})],
            ..KanikoConfig::default()
        };
        let err = build_pod(&PodPlan {
            name: "n".into(),
            namespace: "ns".into(),
            build_id: "id".into(),
            request: &request,
            config: &config,
            pull_secret: None,
        })
        .expect_err("invalid toleration");
        assert_eq!(err.field, "kaniko.tolerations[0]");
    }
}
