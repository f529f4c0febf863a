//! The resolved, typed configuration every pipeline step works from.
//!
//! All declared versions (`v1alpha1` … `v1beta11`) are upgraded into this one model. Paths are
//! absolute (resolved against the directory of `devspace.yaml`). Serialising it gives the
//! `devspace print` output and (minus fields that do not change the image) the image config hash.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The fully resolved project configuration (after profiles, vars, upgrade and validation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The version the file declared (`v1beta9`, ...), kept for messages.
    pub version: String,
    /// Images in file order; the key is the image key (`images.<key>`).
    #[serde(default)]
    pub images: IndexMap<String, ImageConfig>,
    /// Deployments in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentConfig>,
    /// Sections this tool parses loosely and does not act on (`dev`, `hooks`, ...), kept
    /// verbatim so `print` can show them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty", flatten)]
    pub other: IndexMap<String, serde_json::Value>,
}

/// Where a config came from; not part of the config itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSource {
    /// Absolute path of the `devspace.yaml` that was loaded.
    pub path: PathBuf,
    /// Its directory: every relative path resolves against it, `.devspace/` lives in it.
    pub root: PathBuf,
    /// Profiles applied, in the order given on the command line.
    pub profiles: Vec<String>,
}

/// `images.<key>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    /// Repository without tag, as written (`john/app`, `localhost:5000/app`).
    pub image: String,
    /// Tags to build and push; empty → one random tag. The first is recorded for deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Absolute path of the Dockerfile (default `<root>/Dockerfile`).
    pub dockerfile: PathBuf,
    /// Absolute path of the build context (default `<root>`).
    pub context: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `None` means the DevSpace default (true); upgraded ≤v1beta2 files carry `Some(false)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_pull_secret: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_sync_over_rebuild: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_restart_helper: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_helper_path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub append_dockerfile_instructions: Vec<String>,
    /// 5.x: append `-` + 5 random letters to every tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_append_random: Option<bool>,
    /// v1beta10+: `default` | `always` | `ignoreContextChanges`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "BuildConfig::is_empty")]
    pub build: BuildConfig,
    /// Loaded from a DevSpace 6 (`v2beta1`) file: DevSpace 6's default tag (7 random letters).
    /// Not part of the printed config or of the image config hash.
    #[serde(skip)]
    pub devspace6: bool,
}

impl ImageConfig {
    /// Which builder runs this image, by DevSpace's priority
    /// (`disabled` > `custom` > `buildKit` (5.x) > `docker` (kaniko fallback) > `kaniko`).
    pub fn builder_kind(&self) -> BuilderKind {
        if self.build.disabled == Some(true) {
            BuilderKind::Disabled
        } else if self.build.custom.is_some() {
            BuilderKind::Custom
        } else if self.build.build_kit.is_some() {
            BuilderKind::BuildKit
        } else if self.build.kaniko.is_some() && self.build.docker.is_none() {
            BuilderKind::Kaniko
        } else {
            BuilderKind::Docker
        }
    }

    /// Whether a pull secret is wanted for this image's registry (DevSpace: unset = true).
    pub fn wants_pull_secret(&self) -> bool {
        self.create_pull_secret != Some(false)
    }

    /// The build options of the active builder (docker's, else kaniko's).
    pub fn options(&self) -> Option<&BuildOptions> {
        match self.builder_kind() {
            BuilderKind::Kaniko => self.build.kaniko.as_ref().and_then(|k| k.options.as_ref()),
            BuilderKind::BuildKit => self
                .build
                .build_kit
                .as_ref()
                .and_then(|b| b.options.as_ref()),
            _ => self.build.docker.as_ref().and_then(|d| d.options.as_ref()),
        }
    }
}

/// The builder an image uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    Docker,
    Kaniko,
    Custom,
    /// 5.x `build.buildKit` (v1beta10+): `docker buildx`, locally or in the cluster.
    #[serde(rename = "buildkit")]
    BuildKit,
    Disabled,
}

impl std::fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuilderKind::Docker => "docker",
            BuilderKind::Kaniko => "kaniko",
            BuilderKind::Custom => "custom",
            BuilderKind::BuildKit => "buildkit",
            BuilderKind::Disabled => "disabled",
        })
    }
}

/// `images.<key>.build`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kaniko: Option<KanikoConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomConfig>,
    /// 5.x (v1beta10+) BuildKit builder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_kit: Option<BuildKitConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl BuildConfig {
    /// Nothing configured (the docker builder with defaults).
    pub fn is_empty(&self) -> bool {
        *self == BuildConfig::default()
    }
}

/// `build.buildKit` (v1beta10+).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildKitConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_minikube: Option<bool>,
    /// Build in the cluster with a BuildKit deployment instead of the local `docker buildx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster: Option<BuildKitInCluster>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Base command, default `["docker", "buildx"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BuildOptions>,
}

/// `build.buildKit.inCluster`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildKitInCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_create: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_recreate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_load: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_args: Vec<String>,
}

/// `build.docker`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_minikube: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_fallback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_build_kit: Option<bool>,
    /// 5.6+: force the docker CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cli: Option<bool>,
    /// Extra argv for `docker build` (forces CLI mode); one element each, no shell splitting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BuildOptions>,
}

/// `build.kaniko`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KanikoConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_mode: Option<String>,
    /// Executor image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_pull_secret_mount: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_mounts: Vec<KanikoAdditionalMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PodResources>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub node_selector: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub annotations: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub init_env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// 5.x: `envFrom` sources of the kaniko container, kept verbatim.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env_from: IndexMap<String, serde_json::Value>,
    /// 5.x: pod tolerations, kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BuildOptions>,
}

/// `kaniko.additionalMounts[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KanikoAdditionalMount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<KanikoMountSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<KanikoMountSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// A secret or configMap volume source of an additional kaniko mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KanikoMountSource {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<i32>,
}

/// `items[]` of a mount source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i32>,
}

/// `kaniko.resources`: quantities as strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodResources {
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub requests: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub limits: IndexMap<String, String>,
}

/// `build.custom`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomConfig {
    /// Executable (required unless `commands` gives one per OS).
    #[serde(default)]
    pub command: String,
    /// 5.x: a command per OS (`os` is a comma list like `linux,darwin`; empty = any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CustomCommand>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub append_args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_flag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_image_arg: Option<bool>,
    /// Glob patterns relative to the project root deciding rebuilds; empty → always rebuild.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_change: Vec<String>,
}

/// `build.custom.commands[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomCommand {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
}

/// `options` shared by the docker and kaniko builders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Values may be null (skipped by the CLI, passed as-is to the API).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub build_args: IndexMap<String, Option<String>>,
}

/// `deployments[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl: Option<KubectlDeployment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmDeployment>,
    /// Kinds this tool does not deploy (`component`, ...), kept verbatim.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty", flatten)]
    pub other: IndexMap<String, serde_json::Value>,
}

/// `deployments[].kubectl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubectlDeployment {
    /// Manifest paths or globs, absolute after loading.
    #[serde(default)]
    pub manifests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_image_tags: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apply_args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd_path: Option<String>,
    /// Extra arguments of `kustomize build`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kustomize_args: Vec<String>,
    /// Arguments of DevSpace's `kubectl create --dry-run` render step (not used: manifests are
    /// applied server-side as they are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_args: Vec<String>,
}

/// `deployments[].helm`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmDeployment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<HelmChart>,
    /// DevSpace 6 `releaseName` (default: the deployment's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_chart: Option<bool>,
    /// Inline values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
    /// Values files, absolute after loading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_image_tags: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atomic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade_args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty", flatten)]
    pub other: IndexMap<String, serde_json::Value>,
}

/// `helm.chart`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChart {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}
