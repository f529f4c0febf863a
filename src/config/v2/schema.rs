//! The shape of a DevSpace 6 (`v2beta1`) config as data, for the strict check of
//! [`crate::config::schema::Checker`] (declared version [`V2`]). Field names, types and
//! nesting follow DevSpace 6.3's `latest/schema.go`; sections a build/deploy tool does not run
//! (`dev`, `commands`, `hooks`, `require`, `dependencies`, `functions`) are `Any`: kept, never
//! rejected. `vars` and `pipelines` entries may be a string or an object, so they are checked
//! entry by entry by the loader ([`VAR`], [`PIPELINE`]).

use crate::config::schema::{F, Ty, V2};

const fn v(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        from: V2,
        to: V2,
    }
}

const DOCKER: &[F] = &[
    v("preferMinikube", Ty::Bool),
    v("disableFallback", Ty::Bool),
    v("useCli", Ty::Bool),
    v("args", Ty::StrList),
    v("useBuildKit", Ty::Bool),
];

const BUILDKIT_IN_CLUSTER: &[F] = &[
    v("name", Ty::Str),
    v("namespace", Ty::Str),
    v("rootless", Ty::Bool),
    v("image", Ty::Str),
    v("nodeSelector", Ty::Str),
    v("noCreate", Ty::Bool),
    v("noRecreate", Ty::Bool),
    v("noLoad", Ty::Bool),
    v("createArgs", Ty::StrList),
];

const BUILDKIT: &[F] = &[
    v("inCluster", Ty::Obj(BUILDKIT_IN_CLUSTER)),
    v("preferMinikube", Ty::Bool),
    v("args", Ty::StrList),
    v("command", Ty::StrList),
];

const KEY_TO_PATH: &[F] = &[v("key", Ty::Str), v("path", Ty::Str), v("mode", Ty::Int)];
const MOUNT_SOURCE: &[F] = &[
    v("name", Ty::Str),
    v("items", Ty::ListOf(&Ty::Obj(KEY_TO_PATH))),
    v("defaultMode", Ty::Int),
];
const MOUNT: &[F] = &[
    v("secret", Ty::Obj(MOUNT_SOURCE)),
    v("configMap", Ty::Obj(MOUNT_SOURCE)),
    v("readOnly", Ty::Bool),
    v("mountPath", Ty::Str),
    v("subPath", Ty::Str),
];
const RESOURCES: &[F] = &[v("requests", Ty::StrMap), v("limits", Ty::StrMap)];

const KANIKO: &[F] = &[
    v("cache", Ty::Bool),
    v("snapshotMode", Ty::Str),
    v("image", Ty::Str),
    v("initImage", Ty::Str),
    v("generateName", Ty::Str),
    v("namespace", Ty::Str),
    v("insecure", Ty::Bool),
    v("pullSecret", Ty::Str),
    v("skipPullSecretMount", Ty::Bool),
    v("args", Ty::StrList),
    v("command", Ty::StrList),
    v("nodeSelector", Ty::StrMap),
    v("tolerations", Ty::Any),
    v("serviceAccount", Ty::Str),
    v("annotations", Ty::StrMap),
    v("labels", Ty::StrMap),
    v("initEnv", Ty::StrMap),
    v("env", Ty::StrMap),
    v("envFrom", Ty::Any),
    v("resources", Ty::Obj(RESOURCES)),
    v("additionalMounts", Ty::ListOf(&Ty::Obj(MOUNT))),
];

const CUSTOM_COMMAND: &[F] = &[v("command", Ty::Str), v("os", Ty::Str)];
const CUSTOM: &[F] = &[
    v("command", Ty::Str),
    v("onChange", Ty::StrList),
    // Hidden legacy fields (configs converted from 5.x).
    v("commands", Ty::ListOf(&Ty::Obj(CUSTOM_COMMAND))),
    v("args", Ty::StrList),
    v("appendArgs", Ty::StrList),
    v("imageFlag", Ty::Str),
    v("imageTagOnly", Ty::Bool),
    v("skipImageArg", Ty::Bool),
];

/// `images.<key>`.
pub const IMAGE: &[F] = &[
    v("name", Ty::Str),
    v("image", Ty::Str),
    v("tags", Ty::StrList),
    v("dockerfile", Ty::Str),
    v("context", Ty::Str),
    v("target", Ty::Str),
    v("network", Ty::Str),
    v("buildArgs", Ty::NullableStrMap),
    v("entrypoint", Ty::StrList),
    v("cmd", Ty::StrList),
    v("appendDockerfileInstructions", Ty::StrList),
    v("rebuildStrategy", Ty::Str),
    v("skipPush", Ty::Bool),
    v("createPullSecret", Ty::Bool),
    v("docker", Ty::Obj(DOCKER)),
    v("buildKit", Ty::Obj(BUILDKIT)),
    v("kaniko", Ty::Obj(KANIKO)),
    v("custom", Ty::Obj(CUSTOM)),
    v("injectRestartHelper", Ty::Bool),
    v("injectLegacyRestartHelper", Ty::Bool),
    v("restartHelperPath", Ty::Str),
];

const CHART: &[F] = &[
    v("name", Ty::Str),
    v("version", Ty::Str),
    v("repo", Ty::Str),
    v("username", Ty::Str),
    v("password", Ty::Str),
    // Inline source (git clone / path), refused when deploying.
    v("path", Ty::Str),
    v("git", Ty::Str),
    v("subPath", Ty::Str),
    v("branch", Ty::Str),
    v("tag", Ty::Str),
    v("revision", Ty::Str),
    v("cloneArgs", Ty::StrList),
    v("disableShallow", Ty::Bool),
    v("disablePull", Ty::Bool),
];

const HELM: &[F] = &[
    v("chart", Ty::Obj(CHART)),
    v("releaseName", Ty::Str),
    v("values", Ty::Any),
    v("valuesFiles", Ty::StrList),
    v("displayOutput", Ty::Bool),
    v("upgradeArgs", Ty::StrList),
    v("templateArgs", Ty::StrList),
    v("disableDependencyUpdate", Ty::Bool),
];

const PATCH_TARGET: &[F] = &[
    v("apiVersion", Ty::Str),
    v("kind", Ty::Str),
    v("name", Ty::Str),
];
const KUBECTL_PATCH: &[F] = &[
    v("target", Ty::Obj(PATCH_TARGET)),
    v("op", Ty::Str),
    v("path", Ty::Str),
    v("value", Ty::Any),
];

const KUBECTL: &[F] = &[
    v("manifests", Ty::StrList),
    v("kustomize", Ty::Bool),
    v("kustomizeArgs", Ty::StrList),
    v("kustomizeBinaryPath", Ty::Str),
    v("inlineManifest", Ty::Str),
    v("createArgs", Ty::StrList),
    v("applyArgs", Ty::StrList),
    v("kubectlBinaryPath", Ty::Str),
    v("patches", Ty::ListOf(&Ty::Obj(KUBECTL_PATCH))),
];

/// `deployments.<name>`.
pub const DEPLOYMENT: &[F] = &[
    v("name", Ty::Str),
    v("namespace", Ty::Str),
    v("updateImageTags", Ty::Bool),
    v("helm", Ty::Obj(HELM)),
    v("kubectl", Ty::Obj(KUBECTL)),
];

const PULL_SECRET: &[F] = &[
    v("name", Ty::Str),
    v("registry", Ty::Str),
    v("username", Ty::Str),
    v("password", Ty::Str),
    v("email", Ty::Str),
    v("secret", Ty::Str),
    v("serviceAccounts", Ty::StrList),
];

const PERSISTENCE: &[F] = &[
    v("enabled", Ty::Bool),
    v("size", Ty::Str),
    v("storageClassName", Ty::Str),
];
const LOCAL_REGISTRY: &[F] = &[
    v("enabled", Ty::Bool),
    v("localbuild", Ty::Bool),
    v("namespace", Ty::Str),
    v("name", Ty::Str),
    v("image", Ty::Str),
    v("buildKitImage", Ty::Str),
    v("port", Ty::Int),
    v("persistence", Ty::Obj(PERSISTENCE)),
];

/// `imports[]`.
pub const IMPORT: &[F] = &[
    v("enabled", Ty::Bool),
    v("path", Ty::Str),
    v("git", Ty::Str),
    v("subPath", Ty::Str),
    v("branch", Ty::Str),
    v("tag", Ty::Str),
    v("revision", Ty::Str),
    v("cloneArgs", Ty::StrList),
    v("disableShallow", Ty::Bool),
    v("disablePull", Ty::Bool),
];

const VAR_COMMAND: &[F] = &[
    v("os", Ty::Str),
    v("command", Ty::Str),
    v("args", Ty::StrList),
];

/// `vars.<name>` in object form.
pub const VAR: &[F] = &[
    v("name", Ty::Str),
    v("value", Ty::Any),
    v("default", Ty::Any),
    v("source", Ty::Str),
    v("question", Ty::Str),
    v("options", Ty::StrList),
    v("password", Ty::Bool),
    v("validationPattern", Ty::Str),
    v("validationMessage", Ty::Str),
    v("noCache", Ty::Bool),
    v("command", Ty::Str),
    v("args", Ty::StrList),
    v("commands", Ty::ListOf(&Ty::Obj(VAR_COMMAND))),
    v("alwaysResolve", Ty::Bool),
];

const FLAG: &[F] = &[
    v("name", Ty::Str),
    v("short", Ty::Str),
    v("type", Ty::Str),
    v("default", Ty::Any),
    v("description", Ty::Str),
];

/// `pipelines.<name>` in object form.
pub const PIPELINE: &[F] = &[
    v("name", Ty::Str),
    v("run", Ty::Str),
    v("flags", Ty::ListOf(&Ty::Obj(FLAG))),
    v("continueOnError", Ty::Bool),
];

const PATCH: &[F] = &[v("op", Ty::Str), v("path", Ty::Str), v("value", Ty::Any)];
const PARENT: &[F] = &[v("profile", Ty::Str), v("source", Ty::Any)];
const ACTIVATION: &[F] = &[v("env", Ty::StrMap), v("vars", Ty::StrMap)];

/// The sections `merge`/`replace` of a v2beta1 profile may name.
pub const MERGEABLE: &[F] = &[
    v("vars", Ty::Any),
    v("pullSecrets", Ty::Any),
    v("images", Ty::Any),
    v("deployments", Ty::Any),
    v("dev", Ty::Any),
    v("commands", Ty::Any),
    v("dependencies", Ty::Any),
    v("hooks", Ty::Any),
];

/// `profiles[]`.
pub const PROFILE: &[F] = &[
    v("name", Ty::Str),
    v("description", Ty::Str),
    v("parent", Ty::Str),
    v("parents", Ty::ListOf(&Ty::Obj(PARENT))),
    v("patches", Ty::ListOf(&Ty::Obj(PATCH))),
    v("merge", Ty::Obj(MERGEABLE)),
    v("replace", Ty::Obj(MERGEABLE)),
    v("activation", Ty::ListOf(&Ty::Obj(ACTIVATION))),
];

/// The whole document after imports, profiles and vars (`vars`, `pipelines` and `profiles`
/// are checked on their own before).
pub const ROOT: &[F] = &[
    v("version", Ty::Str),
    v("name", Ty::Str),
    v("imports", Ty::ListOf(&Ty::Obj(IMPORT))),
    v("vars", Ty::Any),
    v("functions", Ty::MapOf(&Ty::Str)),
    v("pipelines", Ty::Any),
    v("images", Ty::MapOf(&Ty::Obj(IMAGE))),
    v("deployments", Ty::MapOf(&Ty::Obj(DEPLOYMENT))),
    v("pullSecrets", Ty::MapOf(&Ty::Obj(PULL_SECRET))),
    v("dependencies", Ty::Any),
    v("profiles", Ty::ListOf(&Ty::Obj(PROFILE))),
    v("localRegistry", Ty::Obj(LOCAL_REGISTRY)),
    v("require", Ty::Any),
    v("hooks", Ty::Any),
    v("dev", Ty::Any),
    v("commands", Ty::Any),
];
