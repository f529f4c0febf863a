//! Image pull secrets for `deploy`/`dev`: which registries get one, the secret itself (pure,
//! built with serde), and the adapter that creates or updates it and adds it to the namespace's
//! `default` ServiceAccount.
//!
//! Rules (DevSpace, surface §9, with 5.x's namespaces): every image with `createPullSecret`
//! unset or true names a registry (Docker Hub as `""`); a registry gets a secret
//! `devspace-auth-<host>` only when we hold a username and a password for it; the secret goes
//! into the default namespace and each distinct deployment namespace. An existing secret with
//! the same content is left alone (compared as JSON, so secrets DevSpace wrote with its own
//! formatting are not rewritten), a different one is updated; the ServiceAccount gains each
//! name once, by a resourceVersion-guarded update retried on 409. Secret contents never appear
//! in `Debug` output, reports or errors.

use crate::config::Config;
use crate::kube::KubeClient;
use crate::kube::error::KubeError;
use ::kube::api::{Api, ObjectMeta, PostParams};
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use std::collections::BTreeMap;
use std::time::Duration;

/// The data key and type of a Docker config secret.
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";
const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Docker Hub's key inside `auths` (what the Docker CLI stores).
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The email DevSpace writes into deploy-time pull secrets.
const EMAIL: &str = "noreply@devspace.cloud";

/// Credentials for one registry, as resolved from the user's Docker config.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Registry host (`localhost:5000`, `gcr.io`); any Docker Hub spelling (`""`, `docker.io`,
    /// `index.docker.io`, `https://index.docker.io/v1/`, `hub.docker.com`) means Docker Hub.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `host` (scheme and path stripped, lower case) of a registry key; `""` for Docker Hub.
pub fn normalize_registry(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "hub.docker.com" => {
            String::new()
        }
        _ => host,
    }
}

/// The registry host of an image (`""` for Docker Hub); `None` when `image` is not a valid
/// reference.
pub fn registry_of_image(image: &str) -> Option<String> {
    let reference = crate::deploy::reference::parse(image)?;
    let host = reference.canonical.split('/').next().unwrap_or_default();
    Some(normalize_registry(host))
}

/// How users read a registry: Docker Hub as `hub.docker.com`.
pub fn display_registry(registry: &str) -> &str {
    if registry.is_empty() {
        "hub.docker.com"
    } else {
        registry
    }
}

/// `devspace-auth-<host>`: lower case, every character outside `[a-z0-9-]` replaced by `-`;
/// Docker Hub gives `devspace-auth-docker`.
pub fn pull_secret_name(registry: &str) -> String {
    let registry = normalize_registry(registry);
    if registry.is_empty() {
        return "devspace-auth-docker".to_owned();
    }
    let suffix: String = registry
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect();
    format!("devspace-auth-{suffix}")
}

/// The `.dockerconfigjson` document for one registry.
pub fn docker_config_json(registry: &str, username: &str, password: &str) -> Vec<u8> {
    let registry = normalize_registry(registry);
    let key = if registry.is_empty() {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut entry = serde_json::Map::new();
    entry.insert("auth".into(), auth.into());
    entry.insert("email".into(), EMAIL.into());
    let mut auths = serde_json::Map::new();
    auths.insert(key, entry.into());
    let mut document = serde_json::Map::new();
    document.insert("auths".into(), auths.into());
    serde_json::to_vec(&serde_json::Value::Object(document))
        .expect("a map of strings always serialises")
}

/// One secret to ensure.
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedPullSecret {
    /// Registry host, `""` for Docker Hub.
    pub registry: String,
    pub namespace: String,
    pub name: String,
    docker_config: Vec<u8>,
}

impl std::fmt::Debug for PlannedPullSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedPullSecret")
            .field("registry", &self.registry)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PlannedPullSecret {
    /// Secret `name` in `namespace` holding `docker_config` (a `.dockerconfigjson` document)
    /// for `registry`, e.g. the one a kaniko build pod mounts.
    pub fn new(registry: &str, namespace: &str, name: &str, docker_config: Vec<u8>) -> Self {
        Self {
            registry: normalize_registry(registry),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            docker_config,
        }
    }

    /// The Secret object (metadata: name and namespace only, as DevSpace).
    pub fn secret(&self) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            type_: Some(DOCKER_CONFIG_TYPE.to_owned()),
            data: Some(BTreeMap::from([(
                DOCKER_CONFIG_KEY.to_owned(),
                ByteString(self.docker_config.clone()),
            )])),
            ..Secret::default()
        }
    }

    /// Whether `existing` already holds this secret's content (type and `.dockerconfigjson`,
    /// compared as JSON values so formatting differences do not count).
    pub fn matches(&self, existing: &Secret) -> bool {
        let Some(data) = &existing.data else {
            return false;
        };
        let same_json = data.get(DOCKER_CONFIG_KEY).is_some_and(|stored| {
            match (
                serde_json::from_slice::<serde_json::Value>(&stored.0),
                serde_json::from_slice::<serde_json::Value>(&self.docker_config),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => stored.0 == self.docker_config,
            }
        });
        same_json && data.len() == 1 && existing.type_.as_deref() == Some(DOCKER_CONFIG_TYPE)
    }
}

/// Why a wanted registry gets no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// No username and password are known for it.
    NoCredentials,
    /// The image name is not a valid reference, so its registry is unknown.
    InvalidImage { image: String },
}

/// A registry (or image) that gets no secret, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRegistry {
    /// Registry host (`""` for Docker Hub); the image key for [`SkipReason::InvalidImage`].
    pub registry: String,
    pub reason: SkipReason,
}

impl std::fmt::Display for SkippedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            SkipReason::NoCredentials => write!(
                f,
                "no pull secret for registry {}: no username and password stored for it",
                display_registry(&self.registry)
            ),
            SkipReason::InvalidImage { image } => write!(
                f,
                "no pull secret for image `{}`: `{image}` is not a valid image name",
                self.registry
            ),
        }
    }
}

/// The secrets a deploy should ensure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSecretPlan {
    /// In registry order (config order of the images), then namespace order.
    pub secrets: Vec<PlannedPullSecret>,
    pub skipped: Vec<SkippedRegistry>,
}

/// The namespaces pull secrets go to: `default_namespace`, then each distinct deployment
/// namespace in config order.
pub fn pull_secret_namespaces(config: &Config, default_namespace: &str) -> Vec<String> {
    let mut namespaces = vec![default_namespace.to_owned()];
    for deployment in &config.deployments {
        if let Some(namespace) = deployment.namespace.as_deref().filter(|n| !n.is_empty())
            && !namespaces.iter().any(|n| n == namespace)
        {
            namespaces.push(namespace.to_owned());
        }
    }
    namespaces
}

/// Decides which secrets to ensure for `config`, given the credentials we hold.
pub fn plan_pull_secrets(
    config: &Config,
    default_namespace: &str,
    credentials: &[RegistryCredentials],
) -> PullSecretPlan {
    let mut plan = PullSecretPlan::default();
    let mut registries: Vec<String> = Vec::new();
    for (key, image) in &config.images {
        if !image.wants_pull_secret() {
            continue;
        }
        match registry_of_image(&image.image) {
            Some(registry) => {
                if !registries.contains(&registry) {
                    registries.push(registry);
                }
            }
            None => plan.skipped.push(SkippedRegistry {
                registry: key.clone(),
                reason: SkipReason::InvalidImage {
                    image: image.image.clone(),
                },
            }),
        }
    }
    let namespaces = pull_secret_namespaces(config, default_namespace);
    for registry in registries {
        let held = credentials.iter().find(|c| {
            normalize_registry(&c.registry) == registry
                && !c.username.is_empty()
                && !c.password.is_empty()
        });
        let Some(held) = held else {
            plan.skipped.push(SkippedRegistry {
                registry,
                reason: SkipReason::NoCredentials,
            });
            continue;
        };
        let docker_config = docker_config_json(&registry, &held.username, &held.password);
        for namespace in &namespaces {
            plan.secrets.push(PlannedPullSecret {
                registry: registry.clone(),
                namespace: namespace.clone(),
                name: pull_secret_name(&registry),
                docker_config: docker_config.clone(),
            });
        }
    }
    plan
}

/// The names of `names` the ServiceAccount's `imagePullSecrets` lacks, each once, in order.
pub fn missing_pull_secrets(
    existing: Option<&[LocalObjectReference]>,
    names: &[String],
) -> Vec<String> {
    let existing = existing.unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    for name in names {
        if !existing.iter().any(|r| r.name == *name) && !missing.contains(name) {
            missing.push(name.clone());
        }
    }
    missing
}

/// Knobs of [`ensure_pull_secrets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecretOptions {
    /// The ServiceAccount that gets the secrets (`default`).
    pub service_account: String,
    /// How long to wait for the ServiceAccount of a fresh namespace to appear.
    pub service_account_wait: Duration,
    /// How often a 409 (someone else changed the object) is retried.
    pub max_conflict_retries: u32,
}

impl Default for PullSecretOptions {
    fn default() -> Self {
        Self {
            service_account: "default".to_owned(),
            service_account_wait: Duration::from_secs(10),
            max_conflict_retries: 5,
        }
    }
}

/// What was done to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretAction {
    Created,
    Updated,
    Unchanged,
}

/// The outcome for one planned secret.
#[derive(Debug)]
pub struct SecretOutcome {
    pub registry: String,
    pub namespace: String,
    pub name: String,
    pub result: Result<SecretAction, KubeError>,
}

impl std::fmt::Display for SecretOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = format!(
            "image pull secret {}/{} (registry {})",
            self.namespace,
            self.name,
            display_registry(&self.registry)
        );
        match &self.result {
            Ok(SecretAction::Created) => write!(f, "created {what}"),
            Ok(SecretAction::Updated) => write!(f, "updated {what}"),
            Ok(SecretAction::Unchanged) => write!(f, "{what} unchanged"),
            Err(e) => write!(f, "failed to ensure {what}: {e}"),
        }
    }
}

/// The outcome for one namespace's ServiceAccount.
#[derive(Debug)]
pub struct ServiceAccountOutcome {
    pub namespace: String,
    pub service_account: String,
    /// The secret names added (empty: it already had them all).
    pub result: Result<Vec<String>, KubeError>,
    /// How many 409 conflicts were retried.
    pub conflicts: u32,
}

impl std::fmt::Display for ServiceAccountOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = format!(
            "service account {}/{}",
            self.namespace, self.service_account
        );
        match &self.result {
            Ok(added) if added.is_empty() => write!(f, "{who} already lists the pull secrets"),
            Ok(added) => write!(f, "added {} to {who}", added.join(", ")),
            // The error already names the account and what was attempted.
            Err(e) => write!(f, "{e}"),
        }
    }
}

/// Everything [`ensure_pull_secrets`] did.
#[derive(Debug, Default)]
pub struct PullSecretReport {
    pub secrets: Vec<SecretOutcome>,
    pub service_accounts: Vec<ServiceAccountOutcome>,
}

impl PullSecretReport {
    /// Whether every step succeeded.
    pub fn is_ok(&self) -> bool {
        self.secrets.iter().all(|s| s.result.is_ok())
            && self.service_accounts.iter().all(|s| s.result.is_ok())
    }
}

/// Creates or updates the planned secrets (namespaces must exist) and adds the ones that are in
/// place to each namespace's ServiceAccount. Failures are reported per item, never fatal.
pub async fn ensure_pull_secrets(
    client: &KubeClient,
    plan: &PullSecretPlan,
    options: &PullSecretOptions,
) -> PullSecretReport {
    let mut report = PullSecretReport::default();
    let mut namespaces: Vec<(String, Vec<String>)> = Vec::new();
    for planned in &plan.secrets {
        let result = ensure_secret(client, planned, options.max_conflict_retries).await;
        if result.is_ok() {
            match namespaces.iter_mut().find(|(n, _)| *n == planned.namespace) {
                Some((_, names)) => names.push(planned.name.clone()),
                None => namespaces.push((planned.namespace.clone(), vec![planned.name.clone()])),
            }
        }
        report.secrets.push(SecretOutcome {
            registry: planned.registry.clone(),
            namespace: planned.namespace.clone(),
            name: planned.name.clone(),
            result,
        });
    }
    for (namespace, names) in namespaces {
        report
            .service_accounts
            .push(add_to_service_account(client, &namespace, &names, options).await);
    }
    report
}

/// Creates or updates one secret (no ServiceAccount change), retrying 409 conflicts.
pub async fn ensure_pull_secret(
    client: &KubeClient,
    planned: &PlannedPullSecret,
) -> Result<SecretAction, KubeError> {
    ensure_secret(
        client,
        planned,
        PullSecretOptions::default().max_conflict_retries,
    )
    .await
}

async fn ensure_secret(
    client: &KubeClient,
    planned: &PlannedPullSecret,
    max_conflict_retries: u32,
) -> Result<SecretAction, KubeError> {
    let api: Api<Secret> = Api::namespaced(client.client().clone(), &planned.namespace);
    let what = format!("secret {}/{}", planned.namespace, planned.name);
    let mut attempt = 0;
    loop {
        let existing = api
            .get_opt(&planned.name)
            .await
            .map_err(|e| client.error(format!("reading {what}"), e))?;
        let result = match existing {
            None => api
                .create(&PostParams::default(), &planned.secret())
                .await
                .map(|_| SecretAction::Created)
                .map_err(|e| client.error(format!("creating {what}"), e)),
            Some(existing) if planned.matches(&existing) => return Ok(SecretAction::Unchanged),
            Some(mut existing) => {
                // Keep the stored metadata (resourceVersion included, so a concurrent change
                // is a 409 instead of a lost update); replace type and data.
                let wanted = planned.secret();
                existing.type_ = wanted.type_;
                existing.data = wanted.data;
                existing.string_data = None;
                api.replace(&planned.name, &PostParams::default(), &existing)
                    .await
                    .map(|_| SecretAction::Updated)
                    .map_err(|e| client.error(format!("updating {what}"), e))
            }
        };
        match result {
            Err(e) if e.is_conflict() && attempt < max_conflict_retries => attempt += 1,
            other => return other,
        }
    }
}

async fn add_to_service_account(
    client: &KubeClient,
    namespace: &str,
    names: &[String],
    options: &PullSecretOptions,
) -> ServiceAccountOutcome {
    let account = options.service_account.as_str();
    let mut outcome = ServiceAccountOutcome {
        namespace: namespace.to_owned(),
        service_account: account.to_owned(),
        result: Ok(Vec::new()),
        conflicts: 0,
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.client().clone(), namespace);
    let what = format!("service account {namespace}/{account}");
    let deadline = tokio::time::Instant::now() + options.service_account_wait;
    outcome.result = loop {
        let current = match api.get_opt(account).await {
            Ok(Some(current)) => current,
            Ok(None) if tokio::time::Instant::now() < deadline => {
                // A fresh namespace gets its `default` account from a controller, shortly.
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Ok(None) => {
                break Err(KubeError::Api {
                    context: client.context().to_owned(),
                    action: format!("adding pull secrets to {what}"),
                    code: 404,
                    reason: "NotFound".into(),
                    message: format!(
                        "service account `{account}` not found in namespace `{namespace}` (waited {:?})",
                        options.service_account_wait
                    ),
                });
            }
            Err(e) => break Err(client.error(format!("reading {what}"), e)),
        };
        let added = missing_pull_secrets(current.image_pull_secrets.as_deref(), names);
        if added.is_empty() {
            break Ok(added);
        }
        let mut updated = current;
        updated.image_pull_secrets.get_or_insert_default().extend(
            added
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() }),
        );
        match api.replace(account, &PostParams::default(), &updated).await {
            Ok(_) => break Ok(added),
            Err(e) => {
                let error = client.error(format!("updating {what}"), e);
                if error.is_conflict() && outcome.conflicts < options.max_conflict_retries {
                    outcome.conflicts += 1;
                    continue;
                }
                break Err(error);
            }
        }
    };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeploymentConfig, ImageConfig};

    #[test]
    fn secret_names() {
        let cases = [
            ("", "devspace-auth-docker"),
            ("docker.io", "devspace-auth-docker"),
            ("https://index.docker.io/v1/", "devspace-auth-docker"),
            ("hub.docker.com", "devspace-auth-docker"),
            ("gcr.io", "devspace-auth-gcr-io"),
            ("localhost:5000", "devspace-auth-localhost-5000"),
            (
                "My.Registry.example:443",
                "devspace-auth-my-registry-example-443",
            ),
            ("my_reg.io", "devspace-auth-my-reg-io"),
        ];
        for (registry, name) in cases {
            assert_eq!(pull_secret_name(registry), name, "{registry}");
        }
    }

    #[test]
    fn registries_of_images() {
        let cases = [
            ("nginx", Some("")),
            ("john/app", Some("")),
            ("docker.io/john/app", Some("")),
            ("index.docker.io/library/nginx", Some("")),
            ("localhost:5000/app", Some("localhost:5000")),
            ("localhost/app", Some("localhost")),
            ("gcr.io/project/app", Some("gcr.io")),
            (
                "registry.example.com:5000/team/app",
                Some("registry.example.com:5000"),
            ),
            ("John/App", None),
            ("", None),
        ];
        for (image, registry) in cases {
            assert_eq!(registry_of_image(image).as_deref(), registry, "{image}");
        }
    }

    #[test]
    fn docker_config_document() {
        let json = docker_config_json("localhost:5000", "user", "p@ss:\"word");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"auths": {"localhost:5000": {
                "auth": base64::engine::general_purpose::STANDARD.encode("user:p@ss:\"word"),
                "email": "noreply@devspace.cloud"
            }}})
        );
        let hub: serde_json::Value =
            serde_json::from_slice(&docker_config_json("docker.io", "u", "p")).expect("json");
        assert_eq!(hub["auths"]["https://index.docker.io/v1/"]["auth"], "dTpw");
    }

    fn image(name: &str, create_pull_secret: Option<bool>) -> ImageConfig {
        ImageConfig {
            image: name.into(),
            create_pull_secret,
            ..ImageConfig::default()
        }
    }

    fn creds(registry: &str, username: &str, password: &str) -> RegistryCredentials {
        RegistryCredentials {
            registry: registry.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn plan_table() {
        let mut config = Config::default();
        config
            .images
            .insert("a".into(), image("localhost:5000/a", None));
        config
            .images
            .insert("b".into(), image("localhost:5000/b", Some(false)));
        config
            .images
            .insert("c".into(), image("john/app", Some(true)));
        config
            .images
            .insert("d".into(), image("gcr.io/p/d", Some(false)));
        config.images.insert("e".into(), image("quay.io/e", None));
        config.images.insert("f".into(), image("Bad/Name", None));
        config.images.insert("g".into(), image("token.io/g", None));
        for (name, namespace) in [("x", None), ("y", Some("apps")), ("z", Some("apps"))] {
            config.deployments.push(DeploymentConfig {
                name: name.into(),
                namespace: namespace.map(Into::into),
                ..DeploymentConfig::default()
            });
        }
        let credentials = [
            creds("http://localhost:5000", "u", "p"),
            creds("https://index.docker.io/v1/", "john", "pw"),
            creds("gcr.io", "g", "p"),
            creds("token.io", "", "identity-token"),
        ];
        let plan = plan_pull_secrets(&config, "team", &credentials);
        let planned: Vec<(&str, &str, &str)> = plan
            .secrets
            .iter()
            .map(|s| (s.registry.as_str(), s.namespace.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            planned,
            vec![
                ("localhost:5000", "team", "devspace-auth-localhost-5000"),
                ("localhost:5000", "apps", "devspace-auth-localhost-5000"),
                ("", "team", "devspace-auth-docker"),
                ("", "apps", "devspace-auth-docker"),
            ]
        );
        assert_eq!(
            plan.skipped,
            vec![
                SkippedRegistry {
                    registry: "f".into(),
                    reason: SkipReason::InvalidImage {
                        image: "Bad/Name".into()
                    }
                },
                SkippedRegistry {
                    registry: "quay.io".into(),
                    reason: SkipReason::NoCredentials
                },
                SkippedRegistry {
                    registry: "token.io".into(),
                    reason: SkipReason::NoCredentials
                },
            ]
        );
        let text = format!("{plan:?} {:?}", credentials);
        assert!(
            !text.contains("pw") && !text.contains("identity-token"),
            "{text}"
        );
    }

    #[test]
    fn matching_ignores_formatting_only() {
        let plan = PlannedPullSecret {
            registry: "gcr.io".into(),
            namespace: "ns".into(),
            name: "devspace-auth-gcr-io".into(),
            docker_config: docker_config_json("gcr.io", "u", "p"),
        };
        let mut stored = plan.secret();
        assert!(plan.matches(&stored));
        // DevSpace's hand-formatted layout: same JSON, other bytes.
        let devspace = "{\n\t\t\t\"auths\": {\n\t\t\t\t\"gcr.io\": {\n\t\t\t\t\t\"auth\": \"dTpw\",\n\t\t\t\t\t\"email\": \"noreply@devspace.cloud\"\n\t\t\t\t}\n\t\t\t}\n\t\t}";
        stored.data = Some(BTreeMap::from([(
            DOCKER_CONFIG_KEY.to_owned(),
            ByteString(devspace.as_bytes().to_vec()),
        )]));
        assert!(plan.matches(&stored));
        let other = PlannedPullSecret {
            docker_config: docker_config_json("gcr.io", "u", "changed"),
            ..plan.clone()
        };
        assert!(!other.matches(&stored));
        stored.type_ = Some("Opaque".into());
        assert!(!plan.matches(&stored));
        stored.type_ = None;
        stored.data = None;
        assert!(!plan.matches(&stored));
    }

    #[test]
    fn service_account_missing_names() {
        let reference = |name: &str| LocalObjectReference { name: name.into() };
        let names: Vec<String> = ["devspace-auth-docker", "mine", "devspace-auth-docker"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            missing_pull_secrets(Some(&[reference("mine")]), &names),
            vec!["devspace-auth-docker".to_owned()]
        );
        let full = [reference("devspace-auth-docker"), reference("mine")];
        assert!(missing_pull_secrets(Some(&full), &names).is_empty());
        assert_eq!(missing_pull_secrets(None, &names).len(), 2);
    }
}
