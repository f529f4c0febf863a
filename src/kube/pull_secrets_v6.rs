//! DevSpace 6 pull secrets: the top-level `pullSecrets` map of a v2beta1 config, created only
//! by the pipeline command `ensure_pull_secrets` (the default `deploy` pipeline runs it with
//! `--all`). Every entry names a registry; its credential is the entry's `username`/`password`,
//! else the local Docker credential store. Entries sharing a secret (default
//! `devspace-pull-secrets`: one secret for all registries) become one `.dockerconfigjson`
//! with an `auths` entry per registry, in the current namespace, added to the entry's
//! ServiceAccounts (default `default`). Pure planning; [`super::pull_secrets::ensure_pull_secrets`]
//! applies the plan.

use super::KubeClient;
use super::pull_secrets::{
    PlannedPullSecret, PullSecretOptions, PullSecretPlan, PullSecretReport, docker_config_json,
    ensure_pull_secrets,
};
use crate::registry::credentials::{Credential, DockerConfig};
use crate::registry::reference::Registry;
use serde_json::Value as J;

/// DevSpace 6's default secret name.
pub const DEFAULT_SECRET: &str = "devspace-pull-secrets";

/// One secret to ensure and the ServiceAccounts that get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedV6 {
    pub secret: PlannedPullSecret,
    pub service_accounts: Vec<String>,
}

/// What `ensure_pull_secrets` will do, and why entries were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanV6 {
    pub secrets: Vec<PlannedV6>,
    /// `(pull secret key, reason)`.
    pub skipped: Vec<(String, String)>,
}

/// (secret name, service accounts, merged `auths`, the first registry).
type Merged = (String, Vec<String>, serde_json::Map<String, J>, Registry);

/// Plans the secrets of the `names` entries of `pull_secrets` (the config's map) in
/// `namespace`; `stored` gives the local credential of a registry when an entry has none.
pub fn plan(
    pull_secrets: Option<&J>,
    names: &[String],
    namespace: &str,
    stored: &dyn Fn(&Registry) -> Option<Credential>,
) -> Result<PlanV6, String> {
    let mut out = PlanV6::default();
    let mut merged: Vec<Merged> = Vec::new();
    for name in names {
        let Some(entry) = pull_secrets.and_then(|p| p.get(name)) else {
            return Err(format!(
                "ensure_pull_secrets: pull secret `{name}` is not defined in pullSecrets"
            ));
        };
        let text = |k: &str| {
            entry
                .get(k)
                .and_then(J::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let registry = Registry::from_user_input(&text("registry"))
            .map_err(|e| format!("pullSecrets.{name}.registry: {e}"))?;
        let (user, password) = (text("username"), text("password"));
        let credential = if user.is_empty() && password.is_empty() {
            stored(&registry)
        } else {
            Some(Credential::new(user, password))
        };
        let Some(credential) = credential.filter(|c| !c.username.is_empty()) else {
            out.skipped.push((
                name.clone(),
                format!(
                    "no credentials for {} (give username/password or `docker login` first)",
                    registry.display_name()
                ),
            ));
            continue;
        };
        let secret = Some(text("secret"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SECRET.into());
        let accounts: Vec<String> = match entry.get("serviceAccounts") {
            Some(J::Array(a)) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec!["default".into()],
        };
        let doc: J = serde_json::from_slice(&docker_config_json(&registry, &credential))
            .map_err(|e| e.to_string())?;
        let auths = doc
            .get("auths")
            .and_then(J::as_object)
            .cloned()
            .unwrap_or_default();
        match merged.iter_mut().find(|(s, ..)| *s == secret) {
            Some((_, sas, all, _)) => {
                all.extend(auths);
                for sa in accounts {
                    if !sas.contains(&sa) {
                        sas.push(sa);
                    }
                }
            }
            None => merged.push((secret, accounts, auths, registry)),
        }
    }
    for (secret, service_accounts, auths, registry) in merged {
        let doc = serde_json::json!({ "auths": auths });
        out.secrets.push(PlannedV6 {
            secret: PlannedPullSecret::new(
                registry,
                namespace,
                &secret,
                serde_json::to_vec(&doc).map_err(|e| e.to_string())?,
            ),
            service_accounts,
        });
    }
    Ok(out)
}

/// `ensure_pull_secrets <names>` against `client`'s namespace: plans with the local Docker
/// credentials and applies every secret and ServiceAccount. Returns what was done per secret
/// and ServiceAccount, and the entries skipped (no credentials); a bad entry is an error.
pub async fn ensure(
    client: &KubeClient,
    pull_secrets: Option<&J>,
    names: &[String],
) -> Result<(Vec<PullSecretReport>, Vec<(String, String)>), String> {
    let docker = tokio::task::spawn_blocking(DockerConfig::load)
        .await
        .ok()
        .and_then(Result::ok);
    let stored = |r: &Registry| docker.as_ref().and_then(|d| d.resolve(r).ok().flatten());
    let plan = plan(pull_secrets, names, client.namespace(), &stored)?;
    if !plan.secrets.is_empty()
        && let Err(e) = client.ensure_namespace(client.namespace()).await
    {
        tracing::warn!("namespace {}: {e}", client.namespace());
    }
    let mut reports = Vec::new();
    for planned in plan.secrets {
        for sa in &planned.service_accounts {
            let one = PullSecretPlan {
                secrets: vec![planned.secret.clone()],
                skipped: Vec::new(),
            };
            let options = PullSecretOptions {
                service_account: sa.clone(),
                ..Default::default()
            };
            reports.push(ensure_pull_secrets(client, &one, &options).await);
        }
    }
    Ok((reports, plan.skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_share_the_default_secret() {
        let ps = serde_json::json!({
            "a": {"registry": "ghcr.io", "username": "u", "password": "p"},
            "b": {"registry": "localhost:5001"},
            "c": {"registry": "quay.io", "secret": "other", "serviceAccounts": ["builder"]},
        });
        let stored = |r: &Registry| {
            (r.host() == "localhost:5001").then(|| Credential::new("devspace", "devspace-test"))
        };
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let plan = plan(Some(&ps), &names, "ns", &stored).unwrap();
        assert_eq!(plan.secrets.len(), 1);
        let s = &plan.secrets[0];
        assert_eq!(s.secret.name, DEFAULT_SECRET);
        assert_eq!(s.secret.namespace, "ns");
        assert_eq!(s.service_accounts, ["default"]);
        let secret = s.secret.secret();
        let data = &secret.data.unwrap()[".dockerconfigjson"].0;
        let doc: J = serde_json::from_slice(data).unwrap();
        let auths = doc["auths"].as_object().unwrap();
        assert_eq!(auths.len(), 2, "{auths:?}");
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].0, "c");
        assert!(super::plan(Some(&ps), &["nope".into()], "ns", &stored).is_err());
    }
}
