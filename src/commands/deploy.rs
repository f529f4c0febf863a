//! `devspace deploy`: build (unless `--skip-build`), create pull secrets, replace image tags
//! and deploy in config order (kubectl manifests by server-side apply, Helm charts through the
//! `helm` binary), reporting what happened to every object. [`deploy_once`] is shared with
//! `devspace dev`.

use super::build::{BuildRun, build_images, deploy_tags, print_report};
use crate::cli::{BuildArgs, GlobalArgs, OutputFormat};
use crate::config::Loaded;
use crate::deploy::apply::apply_rendered;
use crate::deploy::helm_run::{HelmRelease, run_helm};
use crate::deploy::{ImageTable, RenderedKind, render};
use crate::exit::ExitCode;
use crate::kube::client::KubeClient;
use crate::kube::pull_secrets::{
    PullSecretOptions, ensure_pull_secrets, plan_pull_secrets, pull_secret_namespaces,
    pull_secret_registries,
};
use crate::kube::tools::Tools;
use crate::pipeline::job::LocalTarget;
use crate::registry::credentials::{Credential, DockerConfig};
use crate::registry::reference::Registry;
use crate::ui::{UiOptions, paint, print_error};
use tokio_util::sync::CancellationToken;

/// Options of one deploy pass.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub build: BuildArgs,
    pub skip_build: bool,
    pub use_digests: bool,
    pub ui: UiOptions,
}

/// Runs `devspace deploy`.
pub fn run(global: &GlobalArgs, args: &BuildArgs, skip_build: bool, use_digests: bool) -> ExitCode {
    let opts = DeployOptions::new(global, args, skip_build, use_digests);
    with_cluster(global, opts, async |loaded, client, opts, cancel| {
        let (code, _) = deploy_once(&loaded, global, &client, &opts, cancel).await;
        if code == ExitCode::Success && !global.silent {
            eprintln!("{}", paint(opts.ui.color, "32", "deployed"));
        }
        code
    })
}

impl DeployOptions {
    /// The options the command line selects (terminal detection included).
    pub fn new(global: &GlobalArgs, args: &BuildArgs, skip_build: bool, use_digests: bool) -> Self {
        let mut ui = UiOptions::detect(
            global.debug,
            global.silent,
            global.no_color,
            args.output == OutputFormat::Json,
        );
        ui.stream_logs = args.build_sequential;
        DeployOptions {
            build: args.clone(),
            skip_build,
            use_digests,
            ui,
        }
    }
}

/// What deploy and dev do before their first build: load the config, start the runtime and
/// the Ctrl-C watcher, connect to the cluster (exit 4 when unreachable) and create the pull
/// secrets; then runs `body` on the runtime.
pub fn with_cluster(
    global: &GlobalArgs,
    opts: DeployOptions,
    body: impl AsyncFnOnce(Loaded, KubeClient, DeployOptions, CancellationToken) -> ExitCode,
) -> ExitCode {
    super::common::run_with_config(global, async |loaded, cancel| {
        let client = match connect(global).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        ensure_secrets(&loaded, &client, &opts).await;
        body(loaded, client, opts, cancel).await
    })
}

/// Connects to the cluster the flags select; prints the error (naming the context and server)
/// and returns exit code 4 when it is not reachable.
pub async fn connect(global: &GlobalArgs) -> Result<KubeClient, ExitCode> {
    let settings = super::build::kube_settings(global);
    let client = KubeClient::from_settings(&settings).await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            print_error(
                false,
                &e.to_string(),
                &["check KUBECONFIG / ~/.kube/config and --kube-context".into()],
            );
            return Err(ExitCode::Unreachable);
        }
    };
    if let Err(e) = client.check_reachable().await {
        print_error(
            false,
            &e.to_string(),
            &[format!(
                "is the cluster of context `{}` running and reachable at {}?",
                client.context(),
                client.server()
            )],
        );
        return Err(ExitCode::Unreachable);
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

/// Creates the namespaces deployments and pull secrets go to when missing (a real API server
/// refuses objects in a namespace that does not exist), then creates or updates the image pull
/// secrets (failures only warn, as in DevSpace).
pub async fn ensure_secrets(loaded: &Loaded, client: &KubeClient, opts: &DeployOptions) {
    let creds = {
        let loaded = loaded.clone();
        tokio::task::spawn_blocking(move || held_credentials(&loaded))
            .await
            .unwrap_or_default()
    };
    let plan = plan_pull_secrets(&loaded.config, client.namespace(), &creds);
    if plan.secrets.is_empty() && loaded.config.deployments.is_empty() {
        return;
    }
    for ns in pull_secret_namespaces(&loaded.config, client.namespace()) {
        if let Err(e) = client.ensure_namespace(&ns).await {
            eprintln!("warning: namespace {ns}: {e}");
        }
    }
    if plan.secrets.is_empty() {
        return;
    }
    let report = ensure_pull_secrets(client, &plan, &PullSecretOptions::default()).await;
    for s in &report.secrets {
        match &s.result {
            Ok(_) if !opts.ui.silent => eprintln!("{s}"),
            Ok(_) => {}
            Err(_) => eprintln!("warning: {s}"),
        }
    }
    for sa in &report.service_accounts {
        match &sa.result {
            Ok(_) if !opts.ui.silent => eprintln!("{sa}"),
            Ok(_) => {}
            Err(_) => eprintln!("warning: {sa}"),
        }
    }
}

/// The local cluster `client` talks to, if any, for image delivery without a registry.
pub fn local_target(client: &KubeClient) -> Option<LocalTarget> {
    client.local_cluster().map(|cluster| LocalTarget {
        cluster,
        kind_installed: Tools::from_env().find("kind").is_some(),
    })
}

/// One build + deploy pass. Returns the exit code and the build run (when it built).
pub async fn deploy_once(
    loaded: &Loaded,
    global: &GlobalArgs,
    client: &KubeClient,
    opts: &DeployOptions,
    cancel: CancellationToken,
) -> (ExitCode, Option<BuildRun>) {
    let run = if opts.skip_build {
        None
    } else {
        let kube = super::build::kube_settings(global);
        let local = local_target(client);
        let run = build_images(
            loaded,
            &opts.build,
            false,
            opts.ui,
            kube,
            local,
            cancel.clone(),
        )
        .await;
        print_report(&run.report, opts.build.output, false, opts.ui.silent, true);
        if run.exit != ExitCode::Success {
            return (run.exit, Some(run));
        }
        Some(run)
    };
    let code = deploy_built(loaded, global, client, opts, run.as_ref(), &cancel).await;
    (code, run)
}

/// Renders with the tags of `run` (or the recorded ones for images it did not build) and
/// deploys every deployment in config order. `devspace dev` calls this after later builds.
pub async fn deploy_built(
    loaded: &Loaded,
    global: &GlobalArgs,
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
    let deployments = match rendered {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            print_error(opts.ui.color, &e.to_string(), &[]);
            return ExitCode::Failure;
        }
        Err(e) => {
            print_error(opts.ui.color, &format!("render failed: {e}"), &[]);
            return ExitCode::Failure;
        }
    };
    let mut code = ExitCode::Success;
    let tools = Tools::from_env();
    for (deployment, config) in deployments.iter().zip(loaded.config.deployments.iter()) {
        if cancel.is_cancelled() {
            return ExitCode::Interrupted;
        }
        for w in &deployment.warnings {
            eprintln!("warning: deployment {}: {w}", deployment.name);
        }
        match &deployment.kind {
            RenderedKind::Kubectl { .. } => {
                for result in apply_rendered(client, deployment).await {
                    match &result.outcome {
                        Ok(_) if !opts.ui.silent => {
                            eprintln!("[{}] {result}", deployment.name)
                        }
                        Ok(_) => {}
                        Err(_) => {
                            print_error(
                                opts.ui.color,
                                &format!("[{}] {result}", deployment.name),
                                &[],
                            );
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
                    global.kube_context.as_deref(),
                );
                let result = match release {
                    Ok(release) => run_helm(&tools, &release, &deployment.text).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(out) => {
                        if !opts.ui.silent {
                            eprintln!("[{}] deployed with helm: {}", deployment.name, out.command);
                        }
                    }
                    Err(e) => {
                        print_error(opts.ui.color, &format!("[{}] {e}", deployment.name), &[]);
                        code = ExitCode::Failure;
                    }
                }
            }
        }
    }
    code
}
