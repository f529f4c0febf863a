//! The shape of every config version (`v1alpha1` … `v1beta11`) as data, and the strict check
//! that walks a positioned tree against it.
//!
//! Images are described per version (a key exists from one version to another), like DevSpace
//! decodes into the struct of the declared version; deployments, vars and profiles use the
//! union of their fields over all versions. Sections this tool does not act on (`dev`,
//! `hooks`, ...) are `Any`: kept, never rejected. The check also normalises scalars the way
//! `yaml.v2` decodes them into typed fields (a string field takes the scalar as written, a
//! bool field takes YAML 1.1 booleans).

use super::error::{ConfigError, Location};
use super::yaml::{Node, ScalarType, Value};
use serde_json::{Map, Value as J};
use std::path::Path;

/// Every accepted `version:` value, oldest first; a field's range indexes into this list.
pub const VERSIONS: [&str; 16] = [
    "v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4", "v1beta1", "v1beta2", "v1beta3", "v1beta4",
    "v1beta5", "v1beta6", "v1beta7", "v1beta8", "v1beta9", "v1beta10", "v1beta11", "v2beta1",
];

pub const A1: u8 = 0;
pub const A2: u8 = 1;
pub const A3: u8 = 2;
pub const A4: u8 = 3;
pub const B1: u8 = 4;
pub const B2: u8 = 5;
pub const B3: u8 = 6;
pub const B5: u8 = 8;
pub const B6: u8 = 9;
pub const B7: u8 = 10;
pub const B8: u8 = 11;
pub const B9: u8 = 12;
pub const B10: u8 = 13;
pub const B11: u8 = 14;
/// DevSpace 6 (`v2beta1`): its own tables in `config::v2::schema`; no 4.x/5.x field reaches it.
pub const V2: u8 = 15;
const LAST: u8 = B11;

/// The index of a version string in [`VERSIONS`].
pub fn version_index(v: &str) -> Option<u8> {
    VERSIONS.iter().position(|x| *x == v).map(|i| i as u8)
}

/// The type a key must have.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Bool,
    Int,
    /// Integer or string (`helm.timeout`).
    IntOrStr,
    StrList,
    /// `map[string]string`.
    StrMap,
    /// `map[string]*string` (build args: null values allowed).
    NullableStrMap,
    /// Anything; kept as written.
    Any,
    Obj(&'static [F]),
    MapOf(&'static Ty),
    ListOf(&'static Ty),
}

/// A field of an object and the versions it exists in.
#[derive(Debug, Clone, Copy)]
pub struct F {
    pub name: &'static str,
    pub ty: Ty,
    pub from: u8,
    pub to: u8,
}

const fn f(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        from: A1,
        to: LAST,
    }
}

const fn fv(name: &'static str, ty: Ty, from: u8, to: u8) -> F {
    F { name, ty, from, to }
}

const OPTIONS: &[F] = &[
    f("target", Ty::Str),
    f("network", Ty::Str),
    f("buildArgs", Ty::NullableStrMap),
];

const DOCKER: &[F] = &[
    f("preferMinikube", Ty::Bool),
    fv("skipPush", Ty::Bool, B2, LAST),
    fv("disableFallback", Ty::Bool, B2, LAST),
    fv("useBuildKit", Ty::Bool, B2, LAST),
    fv("useCli", Ty::Bool, B9, LAST),
    fv("args", Ty::StrList, B5, LAST),
    fv("options", Ty::Obj(OPTIONS), B2, LAST),
];

const KEY_TO_PATH: &[F] = &[f("key", Ty::Str), f("path", Ty::Str), f("mode", Ty::Int)];
const MOUNT_SOURCE: &[F] = &[
    f("name", Ty::Str),
    f("items", Ty::ListOf(&Ty::Obj(KEY_TO_PATH))),
    f("defaultMode", Ty::Int),
];
const MOUNT: &[F] = &[
    f("secret", Ty::Obj(MOUNT_SOURCE)),
    f("configMap", Ty::Obj(MOUNT_SOURCE)),
    f("readOnly", Ty::Bool),
    f("mountPath", Ty::Str),
    f("subPath", Ty::Str),
];
const RESOURCES: &[F] = &[f("requests", Ty::StrMap), f("limits", Ty::StrMap)];

const KANIKO: &[F] = &[
    f("cache", Ty::Bool),
    f("namespace", Ty::Str),
    f("pullSecret", Ty::Str),
    fv("snapshotMode", Ty::Str, B2, LAST),
    fv("flags", Ty::StrList, B1, B7),
    fv("args", Ty::StrList, B8, LAST),
    fv("insecure", Ty::Bool, B2, LAST),
    fv("options", Ty::Obj(OPTIONS), B2, LAST),
    fv("image", Ty::Str, B8, LAST),
    fv("additionalMounts", Ty::ListOf(&Ty::Obj(MOUNT)), B8, LAST),
    fv("resources", Ty::Obj(RESOURCES), B9, LAST),
    fv("initImage", Ty::Str, B9, LAST),
    fv("command", Ty::StrList, B9, LAST),
    fv("nodeSelector", Ty::StrMap, B9, LAST),
    fv("tolerations", Ty::Any, B9, LAST),
    fv("serviceAccount", Ty::Str, B9, LAST),
    fv("annotations", Ty::StrMap, B9, LAST),
    fv("labels", Ty::StrMap, B9, LAST),
    fv("initEnv", Ty::StrMap, B9, LAST),
    fv("env", Ty::StrMap, B9, LAST),
    fv("envFrom", Ty::Any, B9, LAST),
    fv("skipPullSecretMount", Ty::Bool, B9, LAST),
];

const CUSTOM_COMMAND: &[F] = &[f("command", Ty::Str), f("os", Ty::Str)];
const CUSTOM: &[F] = &[
    f("command", Ty::Str),
    fv("flags", Ty::StrList, B2, B5),
    fv("args", Ty::StrList, B6, LAST),
    fv("appendArgs", Ty::StrList, B6, LAST),
    f("imageFlag", Ty::Str),
    f("onChange", Ty::StrList),
    fv("commands", Ty::ListOf(&Ty::Obj(CUSTOM_COMMAND)), B9, LAST),
    fv("imageTagOnly", Ty::Bool, B9, LAST),
    fv("skipImageArg", Ty::Bool, B9, LAST),
];

const BUILDKIT_IN_CLUSTER: &[F] = &[
    f("name", Ty::Str),
    f("namespace", Ty::Str),
    f("rootless", Ty::Bool),
    f("image", Ty::Str),
    f("nodeSelector", Ty::Str),
    f("noCreate", Ty::Bool),
    f("noRecreate", Ty::Bool),
    f("noLoad", Ty::Bool),
    f("createArgs", Ty::StrList),
];
const BUILDKIT: &[F] = &[
    f("skipPush", Ty::Bool),
    f("preferMinikube", Ty::Bool),
    f("inCluster", Ty::Obj(BUILDKIT_IN_CLUSTER)),
    f("args", Ty::StrList),
    f("command", Ty::StrList),
    f("options", Ty::Obj(OPTIONS)),
];

const BUILD: &[F] = &[
    f("disabled", Ty::Bool),
    fv("contextPath", Ty::Str, A1, A2),
    fv("dockerfilePath", Ty::Str, A1, A2),
    fv("context", Ty::Str, A3, B1),
    fv("dockerfile", Ty::Str, A3, B1),
    fv("options", Ty::Obj(OPTIONS), A1, B1),
    f("docker", Ty::Obj(DOCKER)),
    f("kaniko", Ty::Obj(KANIKO)),
    fv("custom", Ty::Obj(CUSTOM), B2, LAST),
    fv("buildKit", Ty::Obj(BUILDKIT), B10, LAST),
];

const AUTO_RELOAD: &[F] = &[f("disabled", Ty::Bool)];

/// `images.<key>` per version.
pub const IMAGE: &[F] = &[
    fv("name", Ty::Str, A1, A1),
    fv("registry", Ty::Str, A1, A1),
    fv("autoReload", Ty::Obj(AUTO_RELOAD), A1, A1),
    fv("image", Ty::Str, A2, LAST),
    fv("tag", Ty::Str, A1, B6),
    fv("tags", Ty::StrList, B7, LAST),
    f("createPullSecret", Ty::Bool),
    fv("skipPush", Ty::Bool, A1, B1),
    fv("insecure", Ty::Bool, A2, B1),
    fv("dockerfile", Ty::Str, B2, LAST),
    fv("context", Ty::Str, B2, LAST),
    fv("entrypoint", Ty::StrList, B3, LAST),
    fv("cmd", Ty::StrList, B3, LAST),
    fv("preferSyncOverRebuild", Ty::Bool, B9, LAST),
    fv("injectRestartHelper", Ty::Bool, B9, LAST),
    fv("restartHelperPath", Ty::Str, B9, LAST),
    fv("appendDockerfileInstructions", Ty::StrList, B9, LAST),
    fv("tagsAppendRandom", Ty::Bool, B9, LAST),
    fv("rebuildStrategy", Ty::Str, B10, LAST),
    f("build", Ty::Obj(BUILD)),
];

const CHART: &[F] = &[
    f("name", Ty::Str),
    f("version", Ty::Str),
    f("repo", Ty::Str),
    f("username", Ty::Str),
    f("password", Ty::Str),
    f("git", Ty::Any),
    f("source", Ty::Any),
];

const HELM: &[F] = &[
    f("chart", Ty::Obj(CHART)),
    f("chartPath", Ty::Str),
    f("componentChart", Ty::Bool),
    f("values", Ty::Any),
    f("valuesFiles", Ty::StrList),
    f("overrideValues", Ty::Any),
    f("override", Ty::Str),
    f("devOverwrite", Ty::Str),
    f("replaceImageTags", Ty::Bool),
    f("wait", Ty::Bool),
    f("timeout", Ty::IntOrStr),
    f("rollback", Ty::Bool),
    f("force", Ty::Bool),
    f("atomic", Ty::Bool),
    f("cleanupOnFail", Ty::Bool),
    f("recreate", Ty::Bool),
    f("disableHooks", Ty::Bool),
    f("tillerNamespace", Ty::Str),
    f("driver", Ty::Str),
    f("path", Ty::Str),
    f("v2", Ty::Bool),
    f("output", Ty::Str),
    f("displayOutput", Ty::Bool),
    f("upgradeArgs", Ty::StrList),
    f("templateArgs", Ty::StrList),
    f("deleteArgs", Ty::StrList),
    f("fallbackArgs", Ty::StrList),
];

const KUBECTL: &[F] = &[
    f("manifests", Ty::StrList),
    f("kustomize", Ty::Bool),
    f("kustomizeArgs", Ty::StrList),
    f("replaceImageTags", Ty::Bool),
    fv("flags", Ty::StrList, A1, B7),
    fv("applyArgs", Ty::StrList, B8, LAST),
    f("createArgs", Ty::StrList),
    f("deleteArgs", Ty::StrList),
    f("cmdPath", Ty::Str),
];

const DEPLOYMENT: &[F] = &[
    f("name", Ty::Str),
    f("namespace", Ty::Str),
    f("disabled", Ty::Bool),
    f("autoReload", Ty::Any),
    f("helm", Ty::Obj(HELM)),
    f("kubectl", Ty::Obj(KUBECTL)),
    fv("component", Ty::Any, A1, B2),
];

const VAR_COMMAND: &[F] = &[f("command", Ty::Str), f("os", Ty::Str)];

/// `vars[]`.
pub const VAR: &[F] = &[
    f("name", Ty::Str),
    f("question", Ty::Str),
    f("options", Ty::StrList),
    f("password", Ty::Bool),
    f("validationPattern", Ty::Str),
    f("validationMessage", Ty::Str),
    f("default", Ty::Any),
    f("source", Ty::Str),
    fv("value", Ty::Any, B10, LAST),
    fv("command", Ty::Str, B9, LAST),
    fv("args", Ty::StrList, B9, LAST),
    fv("commands", Ty::ListOf(&Ty::Obj(VAR_COMMAND)), B9, LAST),
    fv("noCache", Ty::Bool, B9, LAST),
    fv("alwaysResolve", Ty::Bool, B11, LAST),
];

const PATCH: &[F] = &[
    f("op", Ty::Str),
    f("path", Ty::Str),
    f("value", Ty::Any),
    f("from", Ty::Str),
];
const PARENT: &[F] = &[f("source", Ty::Any), f("profile", Ty::Str)];

/// `profiles[]`.
pub const PROFILE: &[F] = &[
    f("name", Ty::Str),
    fv("description", Ty::Str, B9, LAST),
    f("parent", Ty::Str),
    fv("parents", Ty::ListOf(&Ty::Obj(PARENT)), B9, LAST),
    f("replace", Ty::Any),
    f("patches", Ty::ListOf(&Ty::Obj(PATCH))),
    fv("merge", Ty::Any, B9, LAST),
    fv("strategicMerge", Ty::Any, B9, LAST),
    fv("activation", Ty::Any, B11, LAST),
];

/// The whole document (after profiles; `vars`/`profiles` are checked on their own).
pub const ROOT: &[F] = &[
    f("version", Ty::Str),
    f("name", Ty::Str),
    f("images", Ty::MapOf(&Ty::Obj(IMAGE))),
    f("deployments", Ty::ListOf(&Ty::Obj(DEPLOYMENT))),
    f("dev", Ty::Any),
    fv("devSpace", Ty::Any, A1, A3),
    fv("registries", Ty::Any, A1, A1),
    fv("tiller", Ty::Any, A1, A3),
    fv("internalRegistry", Ty::Any, A1, A1),
    f("cluster", Ty::Any),
    fv("dependencies", Ty::Any, B1, LAST),
    fv("hooks", Ty::Any, B1, LAST),
    fv("commands", Ty::Any, B1, LAST),
    fv("pullSecrets", Ty::Any, B9, LAST),
    fv("require", Ty::Any, B11, LAST),
    f("vars", Ty::ListOf(&Ty::Obj(VAR))),
    f("profiles", Ty::ListOf(&Ty::Obj(PROFILE))),
];

/// The context of a check: which version, and where to point errors.
pub struct Checker<'a> {
    pub version: u8,
    pub file: &'a Path,
    pub src: &'a str,
}

impl Checker<'_> {
    fn at(&self, node: &Node) -> Box<Location> {
        Location::new(self.file, self.src, node.pos, node.profile.as_deref())
    }

    fn wrong(&self, node: &Node, path: &str, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            at: self.at(node),
            key_path: path.to_string(),
            expected,
            found: node.kind_name(),
        }
    }

    /// Checks `node` against `ty` and returns it as typed JSON.
    pub fn check(&self, node: &Node, ty: &Ty, path: &str) -> Result<J, ConfigError> {
        if node.is_null() {
            return Ok(J::Null);
        }
        match ty {
            Ty::Any => Ok(node.to_json()),
            Ty::Str => node
                .scalar_text()
                .map(|t| J::String(t.to_string()))
                .ok_or_else(|| self.wrong(node, path, "a string")),
            Ty::Bool => match &node.value {
                Value::Scalar {
                    ty: ScalarType::Bool(b),
                    ..
                } => Ok(J::Bool(*b)),
                _ => Err(self.wrong(node, path, "a boolean (true/false)")),
            },
            Ty::Int => match &node.value {
                Value::Scalar {
                    ty: ScalarType::Int(i),
                    ..
                } => Ok(J::from(*i)),
                _ => Err(self.wrong(node, path, "an integer")),
            },
            Ty::IntOrStr => match &node.value {
                Value::Scalar {
                    ty: ScalarType::Int(i),
                    ..
                } => Ok(J::from(*i)),
                Value::Scalar { text, .. } => Ok(J::String(text.clone())),
                _ => Err(self.wrong(node, path, "an integer or a string")),
            },
            Ty::StrList => self.check(node, &Ty::ListOf(&Ty::Str), path),
            Ty::StrMap | Ty::NullableStrMap => {
                let Value::Map(entries) = &node.value else {
                    return Err(self.wrong(node, path, "a mapping of strings"));
                };
                let mut out = Map::new();
                for (k, v) in entries {
                    let p = format!("{path}.{}", k.name);
                    let value = match self.check(v, &Ty::Str, &p)? {
                        J::Null if matches!(ty, Ty::StrMap) => J::String(String::new()),
                        other => other,
                    };
                    out.insert(k.name.clone(), value);
                }
                Ok(J::Object(out))
            }
            Ty::ListOf(item) => {
                let Value::Seq(items) = &node.value else {
                    return Err(self.wrong(node, path, list_name(item)));
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.check(n, item, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(J::Array)
            }
            Ty::MapOf(item) => {
                let Value::Map(entries) = &node.value else {
                    return Err(self.wrong(node, path, "a mapping"));
                };
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(
                        k.name.clone(),
                        self.check(v, item, &format!("{path}.{}", k.name))?,
                    );
                }
                Ok(J::Object(out))
            }
            Ty::Obj(fields) => self.check_obj(node, fields, path),
        }
    }

    fn check_obj(&self, node: &Node, fields: &[F], path: &str) -> Result<J, ConfigError> {
        let Value::Map(entries) = &node.value else {
            return Err(self.wrong(node, path, "a mapping"));
        };
        let mut out = Map::new();
        for (k, v) in entries {
            let key_path = if path.is_empty() {
                k.name.clone()
            } else {
                format!("{path}.{}", k.name)
            };
            let Some(field) = fields
                .iter()
                .find(|fd| fd.name == k.name && fd.from <= self.version && self.version <= fd.to)
            else {
                return Err(ConfigError::UnknownKey {
                    at: Location::new(self.file, self.src, k.pos, v.profile.as_deref()),
                    key_path,
                    version: VERSIONS[self.version as usize].to_string(),
                    suggestion: self.suggest(&k.name, fields),
                });
            };
            // A null field is an unset field (Go decodes it to the zero value).
            if !v.is_null() {
                out.insert(k.name.clone(), self.check(v, &field.ty, &key_path)?);
            }
        }
        Ok(J::Object(out))
    }

    /// `(did you mean `x`?)`, plus which versions know the key when it exists elsewhere.
    fn suggest(&self, key: &str, fields: &[F]) -> String {
        let valid = || {
            fields
                .iter()
                .filter(|fd| fd.from <= self.version && self.version <= fd.to)
        };
        let best = valid()
            .map(|fd| (strsim::jaro_winkler(key, fd.name), fd.name))
            .filter(|(score, _)| *score >= 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, name)| name)
            .or_else(|| {
                valid()
                    .find(|fd| fd.name.eq_ignore_ascii_case(key))
                    .map(|fd| fd.name)
            });
        let mut out = String::new();
        if let Some(name) = best {
            out.push_str(&format!(" (did you mean `{name}`?)"));
        }
        if let Some(other) = fields.iter().find(|fd| fd.name == key) {
            out.push_str(&format!(
                "; `{key}` belongs to config versions {}–{}",
                VERSIONS[other.from as usize], VERSIONS[other.to as usize]
            ));
        }
        out
    }
}

fn list_name(item: &Ty) -> &'static str {
    match item {
        Ty::Str => "a list of strings",
        _ => "a list",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;

    fn check(version: &str, src: &str) -> Result<J, ConfigError> {
        let tree = parse(src).unwrap().root;
        let checker = Checker {
            version: version_index(version).unwrap(),
            file: Path::new("devspace.yaml"),
            src,
        };
        checker.check(&tree, &Ty::Obj(ROOT), "")
    }

    #[test]
    fn keys_are_checked_per_declared_version() {
        let tag_b6 = "version: v1beta6\nimages:\n  app:\n    image: a\n    tag: x\n";
        assert!(check("v1beta6", tag_b6).is_ok());
        let err = check("v1beta9", tag_b6).unwrap_err().to_string();
        assert!(err.contains("unknown key `images.app.tag`"), "{err}");
        assert!(err.contains("did you mean `tags`?"), "{err}");
        assert!(err.contains("v1alpha1–v1beta6"), "{err}");
        assert!(err.contains("devspace.yaml:5:5"), "{err}");

        let tags_b6 = "images:\n  app:\n    image: a\n    tags: [x]\n";
        assert!(check("v1beta6", tags_b6).is_err());
        assert!(check("v1beta7", tags_b6).is_ok());

        let buildkit = "images:\n  app:\n    image: a\n    build:\n      buildKit: {}\n";
        assert!(check("v1beta9", buildkit).is_err());
        assert!(check("v1beta10", buildkit).is_ok());
        let flags = "images:\n  a:\n    image: a\n    build:\n      kaniko:\n        flags: [x]\n";
        assert!(check("v1beta7", flags).is_ok());
        assert!(check("v1beta8", flags).is_err());
    }

    #[test]
    fn scalars_are_typed_like_yaml_v2() {
        let out = check(
            "v1beta9",
            "images:\n  a:\n    image: 0123\n    tags: [1.0, yes]\n    createPullSecret: off\n",
        )
        .unwrap();
        assert_eq!(
            out["images"]["a"],
            serde_json::json!({"image": "0123", "tags": ["1.0", "yes"], "createPullSecret": false})
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expected_type() {
        let err = check("v1beta9", "images:\n  a:\n    image: a\n    tags: latest\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`images.a.tags` must be a list of strings, found a string"),
            "{err}"
        );
        let err = check(
            "v1beta9",
            "images:\n  a:\n    image: a\n    createPullSecret: \"true\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must be a boolean"), "{err}");
        let err = check("v1beta9", "deployments:\n  x: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`deployments` must be a list"), "{err}");
    }

    #[test]
    fn loose_sections_accept_anything() {
        assert!(
            check(
                "v1beta9",
                "dev:\n  whatever: [1, {a: b}]\nhooks: [{x: 1}]\ncommands: 3\n"
            )
            .is_ok()
        );
    }
}
