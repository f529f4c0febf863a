//! The Kubernetes client: which kubeconfig, context and namespace a run uses, and a kube-rs
//! [`::kube::Client`] built from them.
//!
//! Resolution is a pure function ([`resolve_target`]) over the parsed kubeconfig and the flags:
//! the context is `--kube-context`, else the kubeconfig's `current-context`; the namespace is
//! `-n/--namespace`, else the context's namespace, else `default`. Building the client does no
//! network I/O; [`LazyKubeClient`] defers even reading the kubeconfig until a command needs the
//! cluster, so `build` and `render` never touch it. Every error names the context, and
//! connection failures also the server URL.

use crate::kube::error::{KubeError, classify};
use crate::kube::local::{self, LocalCluster};
use ::kube::api::{Api, ObjectMeta, PostParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use k8s_openapi::api::core::v1::Namespace;
use std::path::PathBuf;

/// What selects the cluster: the global flags, and optionally an explicit kubeconfig file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeSettings {
    /// `--kube-context`; `None` = the kubeconfig's current context.
    pub kube_context: Option<String>,
    /// `-n/--namespace`; `None` = the context's namespace, else `default`.
    pub namespace: Option<String>,
    /// A kubeconfig file to read instead of `KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
}

/// The resolved context: everything messages and local-cluster detection need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    /// The context name.
    pub context: String,
    /// The context's cluster entry name.
    pub cluster: String,
    /// The context's user entry name.
    pub user: Option<String>,
    /// The cluster's server URL (as written in the kubeconfig).
    pub server: String,
    /// The namespace objects without one go to.
    pub namespace: String,
}

/// Picks the context, cluster, server and namespace `settings` select in `kubeconfig`.
pub fn resolve_target(
    kubeconfig: &Kubeconfig,
    settings: &KubeSettings,
) -> Result<KubeTarget, KubeError> {
    let available: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let wanted = settings
        .kube_context
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| kubeconfig.current_context.clone().filter(|c| !c.is_empty()))
        .ok_or_else(|| KubeError::NoContext {
            available: available.clone(),
        })?;
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == wanted) else {
        return Err(KubeError::UnknownContext {
            suggestion: nearest(&wanted, &available),
            context: wanted,
            available,
        });
    };
    let config_error = |message: String| KubeError::Config {
        context: wanted.clone(),
        message,
    };
    let context = named
        .context
        .as_ref()
        .ok_or_else(|| config_error("the context entry is empty".into()))?;
    let server = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .ok_or_else(|| config_error(format!("cluster `{}` is not defined", context.cluster)))?
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| config_error(format!("cluster `{}` has no server URL", context.cluster)))?;
    let namespace = settings
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| context.namespace.clone().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".to_owned());
    Ok(KubeTarget {
        context: wanted.clone(),
        cluster: context.cluster.clone(),
        user: context.user.clone(),
        server,
        namespace,
    })
}

/// The closest context name, when one is close enough to be a likely typo.
fn nearest(wanted: &str, available: &[String]) -> Option<String> {
    available
        .iter()
        .map(|name| (strsim::levenshtein(wanted, name), name))
        .filter(|(distance, name)| *distance <= (name.len().max(wanted.len()) / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.clone())
}

/// A connected-on-demand client with the context it was built for.
#[derive(Clone)]
pub struct KubeClient {
    client: ::kube::Client,
    target: KubeTarget,
    kubeconfig: Kubeconfig,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kubeconfig holds tokens and keys: show only the target.
        f.debug_struct("KubeClient")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    /// Reads the kubeconfig (`settings.kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`),
    /// resolves the context and builds the client. No request is sent.
    pub async fn from_settings(settings: &KubeSettings) -> Result<Self, KubeError> {
        let kubeconfig = read_kubeconfig(settings)?;
        Self::from_kubeconfig(kubeconfig, settings).await
    }

    /// Builds the client from an already parsed kubeconfig. No request is sent.
    pub async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        settings: &KubeSettings,
    ) -> Result<Self, KubeError> {
        let target = resolve_target(&kubeconfig, settings)?;
        let options = KubeConfigOptions {
            context: Some(target.context.clone()),
            ..KubeConfigOptions::default()
        };
        let config_error = |message: String| KubeError::Config {
            context: target.context.clone(),
            message,
        };
        let mut config = ::kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
            .await
            .map_err(|e| config_error(crate::kube::error::error_chain(&e)))?;
        config.default_namespace = target.namespace.clone();
        let client = ::kube::Client::try_from(config)
            .map_err(|e| config_error(crate::kube::error::error_chain(&e)))?;
        Ok(Self {
            client,
            target,
            kubeconfig,
        })
    }

    /// The kube-rs client (its default namespace is [`Self::namespace`]).
    pub fn client(&self) -> &::kube::Client {
        &self.client
    }

    /// The resolved context.
    pub fn target(&self) -> &KubeTarget {
        &self.target
    }

    /// The context name.
    pub fn context(&self) -> &str {
        &self.target.context
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.target.server
    }

    /// The default namespace (`-n`, else the context's, else `default`).
    pub fn namespace(&self) -> &str {
        &self.target.namespace
    }

    /// The local cluster this context points at, if any (reads `~/.minikube/profiles`).
    pub fn local_cluster(&self) -> Option<LocalCluster> {
        local::detect_local_cluster(
            &self.kubeconfig,
            &self.target.context,
            &local::minikube_profiles(None),
        )
    }

    /// Asks the server for its version: the cheapest way to fail early with a clear message.
    pub async fn check_reachable(&self) -> Result<(), KubeError> {
        self.client
            .apiserver_version()
            .await
            .map(|_| ())
            .map_err(|e| self.error("asking the API server for its version", e))
    }

    /// Creates namespace `name` unless it exists; `true` when it was created. Deploy calls this
    /// for every deployment namespace before pull secrets and objects go in.
    pub async fn ensure_namespace(&self, name: &str) -> Result<bool, KubeError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let action = || format!("creating namespace {name}");
        if api
            .get_opt(name)
            .await
            .map_err(|e| self.error(format!("reading namespace {name}"), e))?
            .is_some()
        {
            return Ok(false);
        }
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &namespace).await {
            Ok(_) => Ok(true),
            // Someone else created it in between: it exists, which is all we want.
            Err(::kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
            Err(e) => Err(self.error(action(), e)),
        }
    }

    /// Turns a kube-rs error into a [`KubeError`] naming this context (and server), `action`
    /// being what was attempted ("creating secret ns/name").
    pub fn error(&self, action: impl Into<String>, error: ::kube::Error) -> KubeError {
        classify(
            &self.target.context,
            &self.target.server,
            action.into(),
            error,
        )
    }
}

fn read_kubeconfig(settings: &KubeSettings) -> Result<Kubeconfig, KubeError> {
    let failed =
        |location: String, error: ::kube::config::KubeconfigError| KubeError::NoKubeconfig {
            location,
            message: crate::kube::error::error_chain(&error),
        };
    match &settings.kubeconfig {
        Some(path) => {
            Kubeconfig::read_from(path).map_err(|e| failed(path.display().to_string(), e))
        }
        None => {
            let location = match std::env::var_os("KUBECONFIG") {
                Some(value) if !value.is_empty() => {
                    format!("KUBECONFIG={}", value.to_string_lossy())
                }
                _ => "~/.kube/config".to_owned(),
            };
            Kubeconfig::read().map_err(|e| failed(location, e))
        }
    }
}

/// A client built on first use and shared afterwards: commands that never reach the cluster
/// never read the kubeconfig.
#[derive(Debug)]
pub struct LazyKubeClient {
    settings: KubeSettings,
    cell: tokio::sync::OnceCell<KubeClient>,
}

impl LazyKubeClient {
    /// Remembers the settings; nothing is read yet.
    pub fn new(settings: KubeSettings) -> Self {
        Self {
            settings,
            cell: tokio::sync::OnceCell::new(),
        }
    }

    /// The settings it will build from.
    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    /// Whether the client has been built.
    pub fn is_built(&self) -> bool {
        self.cell.initialized()
    }

    /// The client, built on the first call (a failed build is retried on the next call).
    pub async fn get(&self) -> Result<&KubeClient, KubeError> {
        self.cell
            .get_or_try_init(|| KubeClient::from_settings(&self.settings))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "
apiVersion: v1
kind: Config
current-context: dev
clusters:
  - name: dev-cluster
    cluster: {server: 'https://dev.example:6443'}
  - name: kind-demo
    cluster: {server: 'https://127.0.0.1:40000'}
  - name: empty
    cluster: {}
users:
  - name: dev-user
    user: {token: abc}
contexts:
  - name: dev
    context: {cluster: dev-cluster, user: dev-user, namespace: team-a}
  - name: kind-demo
    context: {cluster: kind-demo, user: dev-user}
  - name: broken
    context: {cluster: missing}
  - name: no-server
    context: {cluster: empty}
";

    fn settings(context: Option<&str>, namespace: Option<&str>) -> KubeSettings {
        KubeSettings {
            kube_context: context.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
            kubeconfig: None,
        }
    }

    #[test]
    fn resolve_table() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        // (context flag, namespace flag) -> (context, server, namespace)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a str, &'a str, &'a str);
        let cases: &[Case] = &[
            (None, None, "dev", "https://dev.example:6443", "team-a"),
            (
                None,
                Some("other"),
                "dev",
                "https://dev.example:6443",
                "other",
            ),
            (
                Some("kind-demo"),
                None,
                "kind-demo",
                "https://127.0.0.1:40000",
                "default",
            ),
            (
                Some("kind-demo"),
                Some("x"),
                "kind-demo",
                "https://127.0.0.1:40000",
                "x",
            ),
            (
                Some(""),
                Some(""),
                "dev",
                "https://dev.example:6443",
                "team-a",
            ),
        ];
        for (context, namespace, want_context, want_server, want_namespace) in cases {
            let target = resolve_target(&kubeconfig, &settings(*context, *namespace))
                .unwrap_or_else(|e| panic!("{context:?}: {e}"));
            assert_eq!(target.context, *want_context);
            assert_eq!(target.server, *want_server);
            assert_eq!(
                target.namespace, *want_namespace,
                "{context:?} {namespace:?}"
            );
        }
    }

    #[test]
    fn resolve_errors() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let error = |context: &str| {
            resolve_target(&kubeconfig, &settings(Some(context), None))
                .expect_err(context)
                .to_string()
        };
        assert!(error("kind-dem").contains("did you mean `kind-demo`?"));
        assert!(!error("production").contains("did you mean"));
        assert_eq!(
            error("broken"),
            "kube context `broken`: cluster `missing` is not defined"
        );
        assert_eq!(
            error("no-server"),
            "kube context `no-server`: cluster `empty` has no server URL"
        );
        let mut no_current = kubeconfig.clone();
        no_current.current_context = None;
        let message = resolve_target(&no_current, &settings(None, None))
            .expect_err("no current context")
            .to_string();
        assert!(message.starts_with("the kubeconfig has no current context"));
        assert!(message.contains("available contexts: dev, kind-demo, broken, no-server"));
    }

    #[tokio::test]
    async fn building_sends_nothing_and_keeps_the_namespace() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let client = KubeClient::from_kubeconfig(kubeconfig, &settings(None, Some("ns1")))
            .await
            .expect("client");
        assert_eq!(client.namespace(), "ns1");
        assert_eq!(client.client().default_namespace(), "ns1");
        assert!(!format!("{client:?}").contains("abc"));
    }

    #[tokio::test]
    async fn lazy_client_reads_nothing_until_used() {
        let lazy = LazyKubeClient::new(KubeSettings {
            kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
            ..KubeSettings::default()
        });
        assert!(!lazy.is_built());
        let error = lazy.get().await.expect_err("missing file").to_string();
        assert!(
            error.starts_with("cannot read the kubeconfig (/nonexistent/kubeconfig)"),
            "{error}"
        );
    }
}
