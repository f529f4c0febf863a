//! Image pull secrets for `deploy`/`dev`: which registries get one, the secret itself (pure,
//! built with serde), and the adapter that creates or updates it and adds it to the namespace's
//! `default` ServiceAccount.
//!
//! Rules (DevSpace, surface §9, with 5.x's namespaces): every image with `createPullSecret`
//! unset or true names a registry; a registry gets a secret `devspace-auth-<host>`
//! ([`Registry::pull_secret_name`]) only when we hold a username and a password for it (not an
//! identity token); the secret goes into the default namespace and each distinct deployment
//! namespace. An existing secret with the same content is left alone (compared as JSON, so
//! secrets DevSpace wrote with its own formatting are not rewritten), a different one is
//! updated; the ServiceAccount gains each name once, by a resourceVersion-guarded update retried
//! on 409. Secret contents never appear in `Debug` output, reports or errors.

use crate::config::Config;
use crate::kube::KubeClient;
use crate::kube::error::KubeError;
use crate::registry::{Credential, Registry};
use ::kube::api::{Api, ObjectMeta, PostParams};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use std::collections::BTreeMap;
use std::time::Duration;

/// The data key and type of a Docker config secret.
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";
const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The email DevSpace writes into deploy-time pull secrets.
const EMAIL: &str = "noreply@devspace.cloud";

/// The `.dockerconfigjson` document for one registry:
/// `{"auths":{"<credential key>":{"auth":"<base64 user:password>","email":"noreply@devspace.cloud"}}}`.
pub fn docker_config_json(registry: &Registry, credential: &Credential) -> Vec<u8> {
    let mut entry = serde_json::Map::new();
    entry.insert("auth".into(), credential.basic_auth_value().into());
    entry.insert("email".into(), EMAIL.into());
    let mut auths = serde_json::Map::new();
    auths.insert(registry.credential_key().to_owned(), entry.into());
    let mut document = serde_json::Map::new();
    document.insert("auths".into(), auths.into());
    serde_json::to_vec(&serde_json::Value::Object(document))
        .expect("a map of strings always serialises")
}

/// Whether a credential can go into a deploy-time pull secret: a username and a password, not
/// an identity token (DevSpace creates no secret for token-only logins).
fn usable(credential: &Credential) -> bool {
    !credential.username.is_empty()
        && !credential.secret.is_empty()
        && !credential.is_identity_token()
}

/// One secret to ensure.
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedPullSecret {
    pub registry: Registry,
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
    pub fn new(registry: Registry, namespace: &str, name: &str, docker_config: Vec<u8>) -> Self {
        Self {
            registry,
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

/// A registry (or image) that gets no secret, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkippedRegistry {
    /// No username and password are known for it.
    NoCredentials { registry: Registry },
    /// The image name is not a valid reference, so its registry is unknown.
    InvalidImage { key: String, image: String },
}

impl std::fmt::Display for SkippedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkippedRegistry::NoCredentials { registry } => write!(
                f,
                "no pull secret for registry {registry}: no username and password stored for it"
            ),
            SkippedRegistry::InvalidImage { key, image } => write!(
                f,
                "no pull secret for image `{key}`: `{image}` is not a valid image name"
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

/// The registries of images that want a pull secret (`createPullSecret` unset or true), each
/// once in config order, and the images whose name is not a valid reference. Resolve
/// credentials for exactly these.
pub fn pull_secret_registries(config: &Config) -> (Vec<Registry>, Vec<SkippedRegistry>) {
    let mut registries: Vec<Registry> = Vec::new();
    let mut invalid = Vec::new();
    for (key, image) in &config.images {
        if !image.wants_pull_secret() {
            continue;
        }
        match Registry::of_image(&image.image) {
            Ok(registry) => {
                if !registries.contains(&registry) {
                    registries.push(registry);
                }
            }
            Err(_) => invalid.push(SkippedRegistry::InvalidImage {
                key: key.clone(),
                image: image.image.clone(),
            }),
        }
    }
    (registries, invalid)
}

/// Decides which secrets to ensure for `config`, given the credentials we hold per registry.
pub fn plan_pull_secrets(
    config: &Config,
    default_namespace: &str,
    credentials: &[(Registry, Credential)],
) -> PullSecretPlan {
    let (registries, mut skipped) = pull_secret_registries(config);
    let namespaces = pull_secret_namespaces(config, default_namespace);
    let mut secrets = Vec::new();
    for registry in registries {
        let held = credentials
            .iter()
            .find(|(r, credential)| *r == registry && usable(credential));
        let Some((_, credential)) = held else {
            skipped.push(SkippedRegistry::NoCredentials { registry });
            continue;
        };
        let docker_config = docker_config_json(&registry, credential);
        for namespace in &namespaces {
            secrets.push(PlannedPullSecret {
                registry: registry.clone(),
                namespace: namespace.clone(),
                name: registry.pull_secret_name(),
                docker_config: docker_config.clone(),
            });
        }
    }
    PullSecretPlan { secrets, skipped }
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
    pub registry: Registry,
    pub namespace: String,
    pub name: String,
    pub result: Result<SecretAction, KubeError>,
}

impl std::fmt::Display for SecretOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = format!(
            "image pull secret {}/{} (registry {})",
            self.namespace, self.name, self.registry
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
    use base64::Engine as _;

    fn registry(input: &str) -> Registry {
        Registry::from_user_input(input).expect("registry")
    }

    #[test]
    fn docker_config_document() {
        let json = docker_config_json(
            &registry("localhost:5000"),
            &Credential::new("user", "p@ss:\"word"),
        );
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"auths": {"localhost:5000": {
                "auth": base64::engine::general_purpose::STANDARD.encode("user:p@ss:\"word"),
                "email": "noreply@devspace.cloud"
            }}})
        );
        assert_eq!(
            String::from_utf8(docker_config_json(
                &registry("docker.io"),
                &Credential::new("u", "p")
            ))
            .expect("utf-8"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw","email":"noreply@devspace.cloud"}}}"#
        );
    }

    fn image(name: &str, create_pull_secret: Option<bool>) -> ImageConfig {
        ImageConfig {
            image: name.into(),
            create_pull_secret,
            ..ImageConfig::default()
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
        config.images.insert("f".into(), image("bad//name", None));
        config.images.insert("g".into(), image("token.io/g", None));
        config.images.insert("h".into(), image("empty.io/h", None));
        for (name, namespace) in [("x", None), ("y", Some("apps")), ("z", Some("apps"))] {
            config.deployments.push(DeploymentConfig {
                name: name.into(),
                namespace: namespace.map(Into::into),
                ..DeploymentConfig::default()
            });
        }
        let credentials = [
            (registry("http://localhost:5000"), Credential::new("u", "p")),
            (
                registry("https://index.docker.io/v1/"),
                Credential::new("john", "pw"),
            ),
            (registry("gcr.io"), Credential::new("g", "p")),
            (
                registry("token.io"),
                Credential::identity_token("identity-token"),
            ),
            (registry("empty.io"), Credential::new("u", "")),
        ];
        let plan = plan_pull_secrets(&config, "team", &credentials);
        let planned: Vec<(&str, &str, &str)> = plan
            .secrets
            .iter()
            .map(|s| (s.registry.host(), s.namespace.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            planned,
            vec![
                ("localhost:5000", "team", "devspace-auth-localhost-5000"),
                ("localhost:5000", "apps", "devspace-auth-localhost-5000"),
                ("docker.io", "team", "devspace-auth-docker"),
                ("docker.io", "apps", "devspace-auth-docker"),
            ]
        );
        let skipped: Vec<String> = plan.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            vec![
                "no pull secret for image `f`: `bad//name` is not a valid image name",
                "no pull secret for registry quay.io: no username and password stored for it",
                "no pull secret for registry token.io: no username and password stored for it",
                "no pull secret for registry empty.io: no username and password stored for it",
            ]
        );
        let text = format!("{plan:?}");
        assert!(
            !text.contains("cHc") && !text.contains("identity-token"),
            "{text}"
        );
    }

    #[test]
    fn matching_ignores_formatting_only() {
        let gcr = registry("gcr.io");
        let plan = PlannedPullSecret {
            registry: gcr.clone(),
            namespace: "ns".into(),
            name: gcr.pull_secret_name(),
            docker_config: docker_config_json(&gcr, &Credential::new("u", "p")),
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
            docker_config: docker_config_json(&gcr, &Credential::new("u", "changed")),
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
