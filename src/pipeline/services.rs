//! The port between an image job and the world: the builders (connected to their daemon or
//! cluster), image lookups in a daemon and in a registry, pushes, `kind load`, and the tag
//! operations of a retag and of the registry content cache (a tag in the daemon; a cache
//! lookup and a manifest copied to other tags inside the registry). The job
//! ([`super::job`]) sees only [`Services`]; [`LiveServices`] is the real adapter and tests
//! drive the job with fakes.
//!
//! [`LiveServices`] connects nothing before a job needs it: the daemon(s), the cluster client,
//! the credentials file and the registry client are each set up once per run on first use,
//! and credentials are resolved once per registry and run (a helper runs once even when
//! several images of its registry ask at the same time). A failure to connect is kept and
//! shared (`Arc`), so every image that needs the same daemon reports the same cause.

use crate::builder::docker::{ConnectOptions, DockerEnv, resolve_endpoint};
use crate::builder::kaniko::{self, KanikoBuilder};
use crate::builder::{
    CustomBuilder, DaemonError, DockerDaemon, EventSink, ImageBuilder, PushRequest,
};
use crate::kube::local::{KindLoad, kind_load, minikube_docker_env};
use crate::kube::{KubeError, KubeSettings, LazyKubeClient};
use crate::pipeline::error::ImageError;
use crate::pipeline::plan::{BuilderChoice, DaemonChoice, ImagePlan};
use crate::process::Tools;
use crate::registry::client::{ClientOptions, InsecureRegistries, Lookup, RegistryClient};
use crate::registry::credentials::{Credential, CredentialError, DockerConfig};
use crate::registry::reference::{Reference, Registry};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// A builder ready to build one image.
pub struct ReadyBuilder {
    pub builder: Box<dyn ImageBuilder>,
    /// Where it builds, said when a fallback sent the image there
    /// (`namespace default (context kind-dev)`).
    pub location: Option<String>,
}

/// What an image job needs from the outside world.
pub trait Services: Send + Sync {
    /// The builder for `choice` (never [`BuilderChoice::Unsupported`]), connected.
    fn builder<'a>(
        &'a self,
        plan: &'a ImagePlan,
        choice: &'a BuilderChoice,
    ) -> BoxFuture<'a, Result<ReadyBuilder, ImageError>>;

    /// Whether `reference` exists in the image store of `daemon`.
    fn image_exists<'a>(
        &'a self,
        daemon: &'a DaemonChoice,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<bool, ImageError>>;

    /// Whether `reference` exists in its registry, asked with the user's credentials; `daemon`
    /// is the image's daemon, whose insecure-registry list applies (as for its push).
    fn registry_has<'a>(
        &'a self,
        reference: &'a Reference,
        daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<bool, ImageError>>;

    /// Pushes every tag of `request` (credentials added here) through `daemon`; returns the
    /// digest the registry reported.
    fn push<'a>(
        &'a self,
        daemon: &'a DaemonChoice,
        request: PushRequest,
        events: &'a EventSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Option<String>, ImageError>>;

    /// Loads `references` into the nodes of kind cluster `cluster`.
    fn kind_load<'a>(
        &'a self,
        references: &'a [String],
        cluster: &'a str,
    ) -> BoxFuture<'a, Result<(), ImageError>>;

    /// Tags image `source` (a reference or ID in `daemon`) as `repository:<tag>` for every tag.
    fn tag_image<'a>(
        &'a self,
        daemon: &'a DaemonChoice,
        source: &'a str,
        repository: &'a str,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<(), ImageError>>;

    /// Looks `reference` up as a registry cache entry: [`Lookup::Found`] only for an image
    /// manifest whose blobs are all there (asked with pull and push scope).
    fn registry_lookup<'a>(
        &'a self,
        reference: &'a Reference,
        daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<Lookup, ImageError>>;

    /// Gives the manifest `source` names every tag of `tags` in its repository, inside the
    /// registry (GET, then one PUT per tag; no layer moves); returns the manifest's digest.
    /// A `source` that does not exist is an error.
    fn registry_tag<'a>(
        &'a self,
        source: &'a Reference,
        tags: &'a [String],
        daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<String, ImageError>>;
}

type Shared<T, E> = OnceCell<Result<T, Arc<E>>>;

/// One registry's credentials as resolved in this run (none, some, or the helper's failure).
type Resolved = Result<Option<Credential>, Arc<CredentialError>>;

/// The real services of one run.
pub struct LiveServices {
    root: PathBuf,
    daemons: tokio::sync::Mutex<HashMap<DaemonChoice, Arc<Shared<DockerDaemon, DaemonError>>>>,
    kube: LazyKubeClient,
    kube_error: OnceCell<Arc<KubeError>>,
    credentials: Shared<DockerConfig, CredentialError>,
    registry: OnceCell<Result<RegistryClient, String>>,
    /// Credentials resolved per registry, so a helper runs once per registry and run. A
    /// failure is kept too: a helper that hung until its timeout is not waited for again.
    resolved: tokio::sync::Mutex<HashMap<Registry, Resolved>>,
}

impl LiveServices {
    /// Services for a project at `root` whose kaniko builds use the cluster `kube` selects;
    /// nothing is connected until a job needs it.
    pub fn new(root: PathBuf, kube: KubeSettings) -> Self {
        LiveServices {
            root,
            daemons: Default::default(),
            kube: LazyKubeClient::new(kube),
            kube_error: OnceCell::new(),
            credentials: OnceCell::new(),
            registry: OnceCell::new(),
            resolved: Default::default(),
        }
    }

    /// The daemon `choice`, connected (and pinged, with a short timeout) once per run.
    async fn daemon(&self, choice: &DaemonChoice) -> Result<DockerDaemon, ImageError> {
        let cell = self
            .daemons
            .lock()
            .await
            .entry(choice.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            match choice {
                DaemonChoice::Local => DockerDaemon::connect().await,
                DaemonChoice::Minikube { profile } => connect_minikube(profile).await,
            }
            .map_err(Arc::new)
        })
        .await
        .clone()
        .map_err(ImageError::Daemon)
    }

    /// The cluster client for kaniko builds; a failure is kept, so every image reports the
    /// same cause and the kubeconfig is read once.
    async fn kube_client(&self) -> Result<&crate::kube::KubeClient, ImageError> {
        if let Some(e) = self.kube_error.get() {
            return Err(ImageError::Kube(e.clone()));
        }
        match self.kube.get().await {
            Ok(c) => Ok(c),
            Err(e) => {
                let e = self.kube_error.get_or_init(|| async { Arc::new(e) }).await;
                Err(ImageError::Kube(e.clone()))
            }
        }
    }

    async fn docker_config(&self) -> Result<&DockerConfig, ImageError> {
        self.credentials
            .get_or_init(|| async { DockerConfig::load().map_err(Arc::new) })
            .await
            .as_ref()
            .map_err(|e| ImageError::Credentials(e.clone()))
    }

    /// The registry client, set up once per run. When the image has a daemon that answers, the
    /// daemon's `insecure-registries` apply, so a registry the daemon pushes to over plain
    /// http (minikube's `192.168.49.2:5000`) is checked the same way instead of failing on a
    /// TLS handshake.
    async fn registry_client(
        &self,
        daemon: Option<&DaemonChoice>,
    ) -> Result<&RegistryClient, ImageError> {
        self.registry
            .get_or_init(|| async {
                let info = match daemon {
                    Some(d) => match self.daemon(d).await {
                        Ok(daemon) => daemon.client().info().await.ok(),
                        Err(_) => None,
                    },
                    None => None,
                };
                RegistryClient::new(client_options(info.as_ref())).map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(|e| ImageError::Internal(e.clone()))
    }

    /// Credentials for `registry`, resolved like Docker (helpers run on a blocking thread).
    async fn credential_for(&self, registry: &Registry) -> Result<Option<Credential>, ImageError> {
        // Held across the lookup: parallel images of one registry wait for one helper run.
        let mut resolved = self.resolved.lock().await;
        if let Some(c) = resolved.get(registry) {
            return c.clone().map_err(ImageError::Credentials);
        }
        let config = self.docker_config().await?.clone();
        let reg = registry.clone();
        let credential = tokio::task::spawn_blocking(move || config.resolve(&reg))
            .await?
            .map_err(Arc::new);
        resolved.insert(registry.clone(), credential.clone());
        credential.map_err(ImageError::Credentials)
    }

    async fn kaniko(
        &self,
        plan: &ImagePlan,
        config: &crate::config::model::KanikoConfig,
    ) -> Result<ReadyBuilder, ImageError> {
        let client = self.kube_client().await?;
        let timeout = kaniko::timeout_from_env().map_err(ImageError::KanikoTimeout)?;
        let wants_credentials = config.pull_secret.as_deref().is_none_or(str::is_empty)
            && config.skip_pull_secret_mount != Some(true);
        let credential = match Registry::of_image(&plan.config.image) {
            Ok(registry) if wants_credentials => self.credential_for(&registry).await?,
            _ => None,
        };
        let builder = KanikoBuilder::new(client.clone(), config.clone())
            .with_timeout(timeout)
            .with_credential(credential);
        let location = format!(
            "namespace {} (context {})",
            builder.namespace(),
            client.context()
        );
        Ok(ReadyBuilder {
            builder: Box::new(builder),
            location: Some(location),
        })
    }
}

/// Registry client options that honour the daemon's insecure registries (`docker info`).
pub fn client_options(info: Option<&bollard::models::SystemInfo>) -> ClientOptions {
    let mut options = ClientOptions::default();
    if let Some(config) = info.and_then(|i| i.registry_config.as_ref()) {
        options.insecure = InsecureRegistries::from_daemon(config);
    }
    options
}

/// Connects to the Docker daemon inside minikube `profile` (`minikube docker-env`).
async fn connect_minikube(profile: &str) -> Result<DockerDaemon, DaemonError> {
    let env = minikube_docker_env(&Tools::from_env(), profile)
        .await
        .map_err(|e| DaemonError::LocalCluster(Box::new(e)))?;
    let get = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();
    let docker_env = DockerEnv {
        docker_host: get("DOCKER_HOST"),
        docker_tls_verify: get("DOCKER_TLS_VERIFY"),
        docker_cert_path: get("DOCKER_CERT_PATH"),
        ..DockerEnv::from_process()
    };
    let endpoint = resolve_endpoint(&docker_env)?;
    DockerDaemon::connect_to(endpoint, ConnectOptions::default()).await
}

impl Services for LiveServices {
    fn builder<'a>(
        &'a self,
        plan: &'a ImagePlan,
        choice: &'a BuilderChoice,
    ) -> BoxFuture<'a, Result<ReadyBuilder, ImageError>> {
        async move {
            match choice {
                BuilderChoice::Docker { mode, daemon, .. } => {
                    let daemon = self.daemon(daemon).await?;
                    Ok(ReadyBuilder {
                        builder: mode.builder(daemon),
                        location: None,
                    })
                }
                BuilderChoice::Kaniko(config) => self.kaniko(plan, config).await,
                BuilderChoice::Custom(config) => Ok(ReadyBuilder {
                    builder: Box::new(CustomBuilder::new(config.clone(), self.root.clone())),
                    location: None,
                }),
                BuilderChoice::Unsupported(what) => Err(ImageError::Unsupported(what.clone())),
            }
        }
        .boxed()
    }

    fn image_exists<'a>(
        &'a self,
        daemon: &'a DaemonChoice,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<bool, ImageError>> {
        async move {
            let daemon = self.daemon(daemon).await?;
            daemon
                .image_exists(reference)
                .await
                .map_err(|e| ImageError::Daemon(Arc::new(e)))
        }
        .boxed()
    }

    fn registry_has<'a>(
        &'a self,
        reference: &'a Reference,
        daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<bool, ImageError>> {
        async move {
            let credential = self.credential_for(&reference.registry()).await?;
            let client = self.registry_client(daemon).await?;
            Ok(client
                .manifest_exists(reference, credential.as_ref())
                .await?
                .is_some())
        }
        .boxed()
    }

    fn push<'a>(
        &'a self,
        daemon: &'a DaemonChoice,
        mut request: PushRequest,
        events: &'a EventSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Option<String>, ImageError>> {
        async move {
            let registry = Registry::of_image(&request.repository)?;
            let credential = self.credential_for(&registry).await?;
            if let Some(c) = &credential
                && !c.survives_bollard_encoding(&registry)
            {
                // bollard encodes X-Registry-Auth as standard base64, the daemon decodes
                // URL-safe base64 and silently drops what it cannot read: refuse rather than
                // push anonymously.
                return Err(ImageError::CredentialsEncoding {
                    registry: registry.display_name().to_string(),
                });
            }
            request.credentials = credential.map(|c| c.to_docker_credentials(&registry));
            let daemon = self.daemon(daemon).await?;
            let pushed = daemon.push(&request, events, cancel).await?;
            Ok(pushed.into_iter().find_map(|p| p.digest))
        }
        .boxed()
    }

    fn kind_load<'a>(
        &'a self,
        references: &'a [String],
        cluster: &'a str,
    ) -> BoxFuture<'a, Result<(), ImageError>> {
        async move {
            match kind_load(&Tools::from_env(), references, cluster).await? {
                KindLoad::Loaded => Ok(()),
                KindLoad::KindMissing => Err(ImageError::KindMissing {
                    repository: references.join(", "),
                    cluster: cluster.to_string(),
                }),
            }
        }
        .boxed()
    }

    fn tag_image<'a>(
        &'a self,
        daemon: &'a DaemonChoice,
        source: &'a str,
        repository: &'a str,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<(), ImageError>> {
        async move {
            let daemon = self.daemon(daemon).await?;
            for tag in tags {
                daemon
                    .tag_image(source, repository, tag)
                    .await
                    .map_err(|e| ImageError::Daemon(Arc::new(e)))?;
            }
            Ok(())
        }
        .boxed()
    }

    fn registry_lookup<'a>(
        &'a self,
        reference: &'a Reference,
        daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<Lookup, ImageError>> {
        async move {
            let credential = self.credential_for(&reference.registry()).await?;
            let client = self.registry_client(daemon).await?;
            Ok(client.lookup_image(reference, credential.as_ref()).await?)
        }
        .boxed()
    }

    fn registry_tag<'a>(
        &'a self,
        source: &'a Reference,
        tags: &'a [String],
        daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<String, ImageError>> {
        async move {
            let credential = self.credential_for(&source.registry()).await?;
            let client = self.registry_client(daemon).await?;
            let Some(manifest) = client
                .get_manifest(source, credential.as_ref(), true)
                .await?
            else {
                return Err(ImageError::ManifestMissing {
                    reference: source.to_string(),
                });
            };
            for tag in tags {
                client
                    .put_manifest(source, tag, &manifest, credential.as_ref())
                    .await?;
            }
            Ok(manifest.digest)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper that hangs until its timeout fails every image of its registry with the same
    /// error, but runs (and is waited for) once per run, not once per lookup.
    #[tokio::test]
    async fn a_helper_that_timed_out_is_not_waited_for_again() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let helper = dir.path().join("docker-credential-devspace-test-hangs");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\necho get >> '{}'\nexec sleep 30\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credsStore": "devspace-test-hangs"}"#,
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let config = DockerConfig::load_from_dir(dir.path())
            .unwrap()
            .with_helper_env([("PATH", path)])
            .with_helper_timeout(std::time::Duration::from_millis(300));
        let services = LiveServices::new(dir.path().into(), KubeSettings::default());
        assert!(services.credentials.set(Ok(config)).is_ok());
        let registry = Registry::Host("r.io".into());
        for attempt in 0..3 {
            let err = services.credential_for(&registry).await.unwrap_err();
            assert!(
                matches!(&err, ImageError::Credentials(e) if matches!(**e, CredentialError::HelperTimeout { .. })),
                "attempt {attempt}: {err:?}"
            );
        }
        let runs = std::fs::read_to_string(&calls).unwrap_or_default();
        assert_eq!(runs.lines().count(), 1, "the helper ran {runs:?}");
    }

    #[test]
    fn the_daemons_insecure_registries_reach_the_registry_client() {
        let info = bollard::models::SystemInfo {
            registry_config: Some(bollard::models::RegistryServiceConfig {
                insecure_registry_cidrs: Some(vec!["127.0.0.0/8".into(), "192.168.49.0/24".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // minikube's registry: plain http because the daemon says so, not because it is local.
        assert!(
            client_options(Some(&info))
                .insecure
                .allows_http("192.168.49.2:5000")
        );
        assert!(
            !client_options(None)
                .insecure
                .allows_http("192.168.49.2:5000")
        );
        assert!(
            !client_options(Some(&info))
                .insecure
                .allows_http("registry.example:5000")
        );
    }
}
