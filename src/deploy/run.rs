//! The deploy pass that `devspace deploy` runs once and `devspace dev` runs every cycle:
//! connect to the cluster, create pull secrets, build (unless told not to), replace image
//! tags and deploy in config order (kubectl manifests by server-side apply, Helm charts
//! through the `helm` binary), reporting what happened to every object through `ui`.

use crate::config::Loaded;
use crate::deploy::apply::apply_rendered;
use crate::deploy::helm_run::{HelmRelease, run_helm};
use crate::deploy::{ImageTable, ImageTag, RenderedKind, render};
use crate::diagnostic::Diagnostic;
use crate::exit::ExitCode;
use crate::image::cache::Cache;
use crate::kube::client::KubeClient;
use crate::kube::pull_secrets::{
    PullSecretOptions, PullSecretReport, ensure_pull_secrets, plan_pull_secrets,
    pull_secret_namespaces, pull_secret_registries,
};
use crate::kube::{KubeError, KubeSettings};
use crate::pipeline::dispatch::{BuildOptions, BuildRun, build_images, profile_key};
use crate::pipeline::plan::LocalTarget;
use crate::process::Tools;
use crate::registry::credentials::{Credential, DockerConfig};
use crate::registry::reference::Registry;
use crate::ui::{UiOptions, print_error, summary, write_stderr};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

/// Options of one deploy pass.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The build this pass runs first (its `local` is filled in from the cluster).
    pub build: BuildOptions,
    pub skip_build: bool,
    pub use_digests: bool,
    pub ui: UiOptions,
    /// `--kube-context` (Helm gets it too).
    pub kube_context: Option<String>,
}

/// The tag (and digest) deploy uses for every image: the one built in this run, else the one
/// recorded in the cache by an earlier build. Images never built have none.
pub fn deploy_tags(loaded: &Loaded, run: Option<&BuildRun>) -> IndexMap<String, ImageTag> {
    let cache = Cache::open_for(
        &loaded.source.root,
        loaded.config.version == crate::config::v2::VERSION,
    );
    let profile = profile_key(loaded);
    let mut tags = IndexMap::new();
    for key in loaded.config.images.keys() {
        if let Some(s) = run.and_then(|r| r.images.get(key))
            && let Some(tag) = s.tags.first()
        {
            tags.insert(
                key.clone(),
                ImageTag {
                    tag: tag.clone(),
                    digest: s.digest.clone(),
                },
            );
            continue;
        }
        if let Some(cached) = cache.cached(&profile, key)
            && let Some(tag) = cached.entry.tag.clone().filter(|t| !t.is_empty())
        {
            let digest = cached
                .record
                .as_ref()
                .and_then(|r| r.push.as_ref())
                .and_then(|p| p.digest.clone());
            tags.insert(key.clone(), ImageTag { tag, digest });
        }
    }
    tags
}

/// A cluster that cannot be used, with the hint that fits how it failed.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ClusterUnavailable {
    error: KubeError,
    hint: String,
}

impl Diagnostic for ClusterUnavailable {
    fn hints(&self) -> Vec<String> {
        vec![self.hint.clone()]
    }
    fn exit_code(&self) -> ExitCode {
        ExitCode::Unreachable
    }
}

/// Connects to the cluster `settings` select and checks that it answers.
pub async fn connect(settings: &KubeSettings) -> Result<KubeClient, ClusterUnavailable> {
    let client = KubeClient::from_settings(settings)
        .await
        .map_err(|error| ClusterUnavailable {
            error,
            hint: "check KUBECONFIG / ~/.kube/config and --kube-context".into(),
        })?;
    if let Err(error) = client.check_reachable().await {
        return Err(ClusterUnavailable {
            hint: format!(
                "is the cluster of context `{}` running and reachable at {}?",
                client.context(),
                client.server()
            ),
            error,
        });
    }
    Ok(client)
}

/// Credentials we hold for the registries of images that want a pull secret (the planner
/// skips identity-token logins, as DevSpace does).
fn held_credentials(loaded: &Loaded) -> Vec<(Registry, Credential)> {
    let Ok(config) = DockerConfig::load() else {
        return Vec::new();
    };
    let (registries, _) = pull_secret_registries(&loaded.config);
    registries
        .into_iter()
        .filter_map(|r| match config.resolve(&r) {
            Ok(Some(c)) => Some((r, c)),
            _ => None,
        })
        .collect()
}

/// Creates the namespaces of the deployments (and the default one) when missing; failures
/// only warn (the apply that follows says what it could not do).
pub async fn ensure_namespaces(loaded: &Loaded, client: &KubeClient) {
    for ns in pull_secret_namespaces(&loaded.config, client.namespace()) {
        if let Err(e) = client.ensure_namespace(&ns).await {
            write_stderr(&format!("warning: namespace {ns}: {e}\n"));
        }
    }
}

/// Creates the namespaces deployments and pull secrets go to when missing (a real API server
/// refuses objects in a namespace that does not exist), then creates or updates the image pull
/// secrets (failures only warn, as in DevSpace).
pub async fn ensure_secrets(loaded: &Loaded, client: &KubeClient, silent: bool) {
    let v2 = loaded.config.version == crate::config::v2::VERSION;
    let creds = if v2 {
        Vec::new()
    } else {
        let loaded = loaded.clone();
        tokio::task::spawn_blocking(move || held_credentials(&loaded))
            .await
            .unwrap_or_default()
    };
    let plan = plan_pull_secrets(&loaded.config, client.namespace(), &creds);
    if !plan.secrets.is_empty() || !loaded.config.deployments.is_empty() || v2 {
        ensure_namespaces(loaded, client).await;
    }
    // A DevSpace 6 config gets its top-level `pullSecrets` (its default `dev` pipeline
    // ensures them all).
    if v2 {
        let names: Vec<String> = loaded
            .config
            .other
            .get("pullSecrets")
            .and_then(|p| p.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Err(e) = ensure_v6_pull_secrets(loaded, client, &names, silent).await {
            write_stderr(&format!("warning: {e}\n"));
        }
        return;
    }
    if plan.secrets.is_empty() {
        return;
    }
    let report = ensure_pull_secrets(client, &plan, &PullSecretOptions::default()).await;
    print_pull_secret_report(&report, silent);
}

/// One line per secret and ServiceAccount (only failures when `silent`); failures only warn,
/// as in DevSpace.
fn print_pull_secret_report(report: &PullSecretReport, silent: bool) {
    let lines = report
        .secrets
        .iter()
        .map(|s| (s.to_string(), s.result.is_ok()))
        .chain(
            report
                .service_accounts
                .iter()
                .map(|sa| (sa.to_string(), sa.result.is_ok())),
        );
    for (line, ok) in lines {
        match ok {
            true if !silent => write_stderr(&format!("{line}\n")),
            true => {}
            false => write_stderr(&format!("warning: {line}\n")),
        }
    }
}

/// `ensure_pull_secrets` of a DevSpace 6 config (the pipeline step, and `devspace dev`),
/// printing one line per secret and ServiceAccount; failures only warn, as in DevSpace.
pub async fn ensure_v6_pull_secrets(
    loaded: &Loaded,
    client: &KubeClient,
    names: &[String],
    silent: bool,
) -> Result<(), String> {
    let (reports, skipped) =
        crate::kube::pull_secrets_v6::ensure(client, loaded.config.other.get("pullSecrets"), names)
            .await?;
    for (name, why) in &skipped {
        write_stderr(&format!("warning: pull secret {name}: {why}\n"));
    }
    for report in &reports {
        print_pull_secret_report(report, silent);
    }
    Ok(())
}

/// The local cluster `client` talks to, if any, for image delivery without a registry.
pub fn local_target(client: &KubeClient) -> Option<LocalTarget> {
    client.local_cluster().map(|cluster| LocalTarget {
        cluster,
        kind_installed: Tools::from_env().find("kind").is_some(),
    })
}

/// Builds `opts.build` for the cluster of `client` (delivering to it when it is local) and
/// prints the report on stderr (stdout stays free).
pub async fn build_for(
    loaded: &Loaded,
    client: &KubeClient,
    opts: &DeployOptions,
    cancel: CancellationToken,
) -> BuildRun {
    let build = BuildOptions {
        local: local_target(client),
        ..opts.build.clone()
    };
    build_images(loaded, &build, opts.ui, cancel).await
}

/// One build + deploy pass. Returns the exit code and the build run (when it built).
pub async fn deploy_once(
    loaded: &Loaded,
    client: &KubeClient,
    opts: &DeployOptions,
    cancel: CancellationToken,
) -> (ExitCode, Option<BuildRun>) {
    let run = if opts.skip_build {
        None
    } else {
        let run = build_for(loaded, client, opts, cancel.clone()).await;
        summary::print_report(&run.report, opts.ui.json, false, opts.ui.silent, true);
        if run.exit != ExitCode::Success {
            return (run.exit, Some(run));
        }
        Some(run)
    };
    let code = deploy_built(loaded, client, opts, run.as_ref(), &cancel).await;
    (code, run)
}

/// Renders with the tags of `run` (or the recorded ones for images it did not build) and
/// deploys every deployment in config order. `devspace dev` calls this after later builds.
pub async fn deploy_built(
    loaded: &Loaded,
    client: &KubeClient,
    opts: &DeployOptions,
    run: Option<&BuildRun>,
    cancel: &CancellationToken,
) -> ExitCode {
    let tags = deploy_tags(loaded, run);
    let table = ImageTable::new(&loaded.config, &tags, opts.use_digests);
    let rendered = {
        let config = loaded.config.clone();
        let root = loaded.source.root.clone();
        tokio::task::spawn_blocking(move || render(&config, &root, &table)).await
    };
    let color = opts.ui.color;
    let deployments = match rendered {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return crate::ui::report(color, &e),
        Err(e) => {
            print_error(color, &format!("render failed: {e}"), &[]);
            return ExitCode::Failure;
        }
    };
    let mut code = ExitCode::Success;
    let tools = Tools::from_env();
    let say = |line: String| {
        if !opts.ui.silent {
            write_stderr(&format!("{line}\n"));
        }
    };
    for (deployment, config) in deployments.iter().zip(loaded.config.deployments.iter()) {
        if cancel.is_cancelled() {
            return ExitCode::Interrupted;
        }
        for w in &deployment.warnings {
            write_stderr(&format!("warning: deployment {}: {w}\n", deployment.name));
        }
        match &deployment.kind {
            RenderedKind::Kubectl { .. } => {
                for result in apply_rendered(client, deployment).await {
                    match &result.outcome {
                        Ok(_) => say(format!("[{}] {result}", deployment.name)),
                        Err(_) => {
                            print_error(color, &format!("[{}] {result}", deployment.name), &[]);
                            code = ExitCode::Failure;
                        }
                    }
                }
            }
            RenderedKind::Helm { .. } => {
                let release = HelmRelease::from_config(
                    config,
                    &loaded.source.root,
                    client.namespace(),
                    opts.kube_context.as_deref(),
                );
                let result = match release {
                    Ok(release) => run_helm(&tools, &release, &deployment.text).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(out) => say(format!(
                        "[{}] deployed with helm: {}",
                        deployment.name, out.command
                    )),
                    Err(e) => {
                        print_error(color, &format!("[{}] {e}", deployment.name), &[]);
                        code = ExitCode::Failure;
                    }
                }
            }
        }
    }
    code
}
