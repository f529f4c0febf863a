//! Deploying a Helm deployment with the `helm` binary: `helm upgrade --install NAME CHART
//! --namespace NS --values <rendered values file> ...`.
//!
//! [`HelmRelease::from_config`] turns a `deployments[].helm` entry into the release to install
//! (pure; local chart directories resolve against the project root, `componentChart: true`
//! means DevSpace's `component-chart` 0.4.0 from `https://charts.devspace.sh`);
//! [`HelmRelease::args`] is the argv (pure, table-tested); [`run_helm`] writes the rendered
//! values to a temporary file and runs `helm`. The chart repository password is passed to
//! `helm` but masked in every message.

use crate::config::DeploymentConfig;
use crate::deploy::helm::local_chart_dir;
use crate::process::{RunError, Tools, command_line};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// DevSpace's component chart, used for `componentChart: true`.
pub const COMPONENT_CHART: &str = "component-chart";
/// Where the component chart is published.
pub const COMPONENT_CHART_REPO: &str = "https://charts.devspace.sh";
/// The component chart version DevSpace 4.x installs.
pub const COMPONENT_CHART_VERSION: &str = "0.4.0";

/// One `helm upgrade --install`.
#[derive(Clone, PartialEq, Eq)]
pub struct HelmRelease {
    /// The deployment it comes from (for messages).
    pub deployment: String,
    /// Release name (the deployment's name, as DevSpace).
    pub name: String,
    /// Chart reference: a local directory (absolute), `repo/chart`, or a name with `repo`.
    pub chart: String,
    pub namespace: String,
    pub version: Option<String>,
    pub repo: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub wait: bool,
    /// A Go duration (`300s`, `5m`).
    pub timeout: Option<String>,
    pub force: bool,
    pub atomic: bool,
    pub kube_context: Option<String>,
    /// `helm.upgradeArgs`, appended as given.
    pub extra_args: Vec<String>,
}

impl std::fmt::Debug for HelmRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelmRelease")
            .field("name", &self.name)
            .field("chart", &self.chart)
            .field("namespace", &self.namespace)
            .field("args", &self.shown_args(Path::new("<values>")))
            .finish_non_exhaustive()
    }
}

/// Why a Helm deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum HelmRunError {
    /// The deployment has no chart.
    #[error("deployment `{deployment}`: helm needs `chart.name` (or `componentChart: true`)")]
    NoChart { deployment: String },
    /// `helm` is not installed.
    #[error(
        "deployment `{deployment}` needs the `helm` binary, which is not in PATH\nhint: install Helm 3 (https://helm.sh/docs/intro/install/)"
    )]
    HelmMissing { deployment: String },
    /// The values file could not be written.
    #[error("deployment `{deployment}`: cannot write the values file: {source}")]
    ValuesFile {
        deployment: String,
        source: std::io::Error,
    },
    /// `helm` failed.
    #[error("deployment `{deployment}`: {source}")]
    Helm {
        deployment: String,
        source: RunError,
    },
}

/// What a successful `helm` run said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmOutput {
    /// The command line, password masked.
    pub command: String,
    /// `helm`'s standard output.
    pub stdout: String,
}

/// `helm.timeout` as a Go duration: numbers are seconds (DevSpace), strings are kept.
fn timeout_arg(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => Some(format!("{n}s")),
        serde_json::Value::String(s) if s.trim().is_empty() => None,
        serde_json::Value::String(s) if s.trim().chars().all(|c| c.is_ascii_digit()) => {
            Some(format!("{}s", s.trim()))
        }
        serde_json::Value::String(s) => Some(s.trim().to_owned()),
        _ => None,
    }
}

impl HelmRelease {
    /// The release for `deployment` (which must have `helm`), installed into its namespace or
    /// `default_namespace`; `kube_context` is passed as `--kube-context` when given.
    pub fn from_config(
        deployment: &DeploymentConfig,
        root: &Path,
        default_namespace: &str,
        kube_context: Option<&str>,
    ) -> Result<Self, HelmRunError> {
        let no_chart = || HelmRunError::NoChart {
            deployment: deployment.name.clone(),
        };
        let helm = deployment.helm.as_ref().ok_or_else(no_chart)?;
        let chart = helm.chart.as_ref();
        let (chart_ref, repo, version) = if helm.component_chart == Some(true) {
            (
                COMPONENT_CHART.to_owned(),
                Some(COMPONENT_CHART_REPO.to_owned()),
                Some(
                    chart
                        .and_then(|c| c.version.clone())
                        .unwrap_or_else(|| COMPONENT_CHART_VERSION.to_owned()),
                ),
            )
        } else {
            let chart = chart.filter(|c| !c.name.is_empty()).ok_or_else(no_chart)?;
            let chart_ref = match local_chart_dir(root, helm) {
                Some(dir) => dir
                    .components()
                    .collect::<PathBuf>()
                    .to_string_lossy()
                    .into_owned(),
                None => chart.name.clone(),
            };
            (chart_ref, chart.repo.clone(), chart.version.clone())
        };
        Ok(Self {
            deployment: deployment.name.clone(),
            name: helm
                .release_name
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| deployment.name.clone()),
            chart: chart_ref,
            namespace: deployment
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| default_namespace.to_owned()),
            version: version.filter(|v| !v.is_empty()),
            repo: repo.filter(|r| !r.is_empty()),
            username: chart
                .and_then(|c| c.username.clone())
                .filter(|u| !u.is_empty()),
            password: chart
                .and_then(|c| c.password.clone())
                .filter(|p| !p.is_empty()),
            wait: helm.wait == Some(true),
            timeout: helm.timeout.as_ref().and_then(timeout_arg),
            force: helm.force == Some(true),
            atomic: helm.atomic == Some(true),
            kube_context: kube_context.map(str::to_owned),
            extra_args: helm.upgrade_args.clone(),
        })
    }

    /// The argv after `helm`.
    pub fn args(&self, values_file: &Path) -> Vec<String> {
        self.args_with(values_file, self.password.clone())
    }

    /// [`Self::args`] with the password replaced by `***`, for messages.
    pub fn shown_args(&self, values_file: &Path) -> Vec<String> {
        self.args_with(
            values_file,
            self.password.as_ref().map(|_| "***".to_owned()),
        )
    }

    fn args_with(&self, values_file: &Path, password: Option<String>) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "upgrade".into(),
            "--install".into(),
            self.name.clone(),
            self.chart.clone(),
            "--namespace".into(),
            self.namespace.clone(),
            "--values".into(),
            values_file.to_string_lossy().into_owned(),
        ];
        let mut option = |flag: &str, value: &Option<String>| {
            if let Some(value) = value {
                args.push(flag.to_owned());
                args.push(value.clone());
            }
        };
        option("--version", &self.version);
        option("--repo", &self.repo);
        option("--username", &self.username);
        option("--password", &password);
        option("--timeout", &self.timeout);
        option("--kube-context", &self.kube_context);
        for (flag, on) in [
            ("--wait", self.wait),
            ("--force", self.force),
            ("--atomic", self.atomic),
        ] {
            if on {
                args.push(flag.to_owned());
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// Writes `values_text` to a temporary file and runs `helm upgrade --install` with it.
pub async fn run_helm(
    tools: &Tools,
    release: &HelmRelease,
    values_text: &str,
) -> Result<HelmOutput, HelmRunError> {
    if tools.find("helm").is_none() {
        return Err(HelmRunError::HelmMissing {
            deployment: release.deployment.clone(),
        });
    }
    let values_error = |source| HelmRunError::ValuesFile {
        deployment: release.deployment.clone(),
        source,
    };
    let values = tempfile::Builder::new()
        .prefix("devspace-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(values_error)?;
    std::fs::write(values.path(), values_text).map_err(values_error)?;
    let path: PathBuf = values.path().to_owned();
    let args: Vec<OsString> = release
        .args(&path)
        .into_iter()
        .map(OsString::from)
        .collect();
    let shown = command_line("helm", &release.shown_args(&path));
    let output = tools
        .run("helm", &args, &shown)
        .await
        .map_err(|source| HelmRunError::Helm {
            deployment: release.deployment.clone(),
            source: mask(source, release.password.as_deref()),
        })?;
    drop(values);
    Ok(HelmOutput {
        command: shown,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

/// Masks the password should `helm` echo it in its output.
fn mask(error: RunError, password: Option<&str>) -> RunError {
    let Some(password) = password else {
        return error;
    };
    match error {
        RunError::Failed {
            command,
            status,
            stderr,
            stdout,
        } => RunError::Failed {
            command,
            status,
            stderr: stderr.replace(password, "***"),
            stdout: stdout.replace(password, "***"),
        },
        other => other,
    }
}

impl crate::diagnostic::Diagnostic for HelmRunError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HelmChart, HelmDeployment};

    fn deployment(helm: HelmDeployment, namespace: Option<&str>) -> DeploymentConfig {
        DeploymentConfig {
            name: "app".into(),
            namespace: namespace.map(Into::into),
            helm: Some(helm),
            ..DeploymentConfig::default()
        }
    }

    fn chart(name: &str) -> Option<HelmChart> {
        Some(HelmChart {
            name: name.into(),
            ..HelmChart::default()
        })
    }

    #[test]
    fn argv_table() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("charts/app")).expect("mkdir");
        std::fs::write(root.path().join("charts/app/Chart.yaml"), "name: app\n").expect("chart");
        let values = Path::new("/tmp/v.yaml");
        let base = "upgrade --install app";
        let cases: Vec<(HelmDeployment, Option<&str>, Option<&str>, String)> = vec![
            (
                HelmDeployment {
                    chart: chart("bitnami/nginx"),
                    ..HelmDeployment::default()
                },
                None,
                None,
                format!("{base} bitnami/nginx --namespace dflt --values /tmp/v.yaml"),
            ),
            (
                HelmDeployment {
                    chart: chart("./charts/app"),
                    wait: Some(true),
                    timeout: Some(serde_json::json!(120)),
                    ..HelmDeployment::default()
                },
                Some("apps"),
                Some("kind-dev"),
                format!(
                    "{base} {}/charts/app --namespace apps --values /tmp/v.yaml --timeout 120s --kube-context kind-dev --wait",
                    root.path().display()
                ),
            ),
            (
                HelmDeployment {
                    chart: Some(HelmChart {
                        name: "nginx".into(),
                        version: Some("1.2.3".into()),
                        repo: Some("https://charts.example.com".into()),
                        username: Some("u".into()),
                        password: Some("hunter2".into()),
                    }),
                    timeout: Some(serde_json::json!("5m")),
                    force: Some(true),
                    atomic: Some(true),
                    upgrade_args: vec!["--description".into(), "by devspace".into()],
                    ..HelmDeployment::default()
                },
                None,
                None,
                format!(
                    "{base} nginx --namespace dflt --values /tmp/v.yaml --version 1.2.3 --repo https://charts.example.com --username u --password *** --timeout 5m --force --atomic --description 'by devspace'"
                ),
            ),
            (
                HelmDeployment {
                    component_chart: Some(true),
                    ..HelmDeployment::default()
                },
                None,
                None,
                format!(
                    "{base} component-chart --namespace dflt --values /tmp/v.yaml --version 0.4.0 --repo https://charts.devspace.sh"
                ),
            ),
        ];
        for (helm, namespace, context, want) in cases {
            let release = HelmRelease::from_config(
                &deployment(helm, namespace),
                root.path(),
                "dflt",
                context,
            )
            .expect("release");
            assert_eq!(
                command_line("helm", &release.shown_args(values)),
                format!("helm {want}")
            );
            assert!(!format!("{release:?}").contains("hunter2"));
        }
    }

    #[test]
    fn real_args_carry_the_password() {
        let release = HelmRelease::from_config(
            &deployment(
                HelmDeployment {
                    chart: Some(HelmChart {
                        name: "nginx".into(),
                        password: Some("hunter2".into()),
                        ..HelmChart::default()
                    }),
                    ..HelmDeployment::default()
                },
                None,
            ),
            Path::new("/"),
            "dflt",
            None,
        )
        .expect("release");
        assert!(release.args(Path::new("v")).contains(&"hunter2".to_owned()));
    }

    #[test]
    fn chart_is_required() {
        let error = HelmRelease::from_config(
            &deployment(HelmDeployment::default(), None),
            Path::new("/"),
            "dflt",
            None,
        )
        .expect_err("no chart");
        assert_eq!(
            error.to_string(),
            "deployment `app`: helm needs `chart.name` (or `componentChart: true`)"
        );
    }

    #[test]
    fn timeouts() {
        let cases = [
            (serde_json::json!(300), Some("300s")),
            (serde_json::json!("300"), Some("300s")),
            (serde_json::json!("10m"), Some("10m")),
            (serde_json::json!(""), None),
            (serde_json::json!(true), None),
        ];
        for (value, want) in cases {
            assert_eq!(timeout_arg(&value).as_deref(), want, "{value}");
        }
    }
}
