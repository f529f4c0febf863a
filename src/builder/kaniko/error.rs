//! Why a kaniko build failed, naming the image, the namespace and the pod, with a `hint:`
//! where the next step is obvious and the exit code class of each failure.

use std::time::Duration;

use crate::exit::ExitCode;
use crate::kube::KubeError;

use super::status::PodFailure;

/// A failed kaniko build.
#[derive(Debug, thiserror::Error)]
pub enum KanikoError {
    /// A Kubernetes API call failed (creating the pod or the secret, watching, exec, logs).
    #[error("image {image}: kaniko: {source}")]
    Kube {
        /// Image key.
        image: String,
        /// The API error (names the context and, when unreachable, the server).
        #[source]
        source: KubeError,
    },
    /// The config cannot be turned into a pod.
    #[error("image {image}: kaniko: invalid {message}")]
    Config {
        /// Image key.
        image: String,
        /// The field and what is wrong with it.
        message: String,
    },
    /// The pod can never finish (image pull, scheduling, container creation).
    #[error("image {image}: kaniko pod {namespace}/{pod}: {failure}")]
    Pod {
        /// Image key.
        image: String,
        /// Namespace of the pod.
        namespace: String,
        /// Pod name.
        pod: String,
        /// What is wrong.
        failure: PodFailure,
    },
    /// Uploading the context into the init container failed.
    #[error(
        "image {image}: uploading the build context to pod {namespace}/{pod} failed: {message}"
    )]
    Upload {
        /// Image key.
        image: String,
        /// Namespace of the pod.
        namespace: String,
        /// Pod name.
        pod: String,
        /// What went wrong (tar's stderr, the exec error).
        message: String,
    },
    /// The executor exited non-zero.
    #[error(
        "image {image}: kaniko build failed (exit code {exit_code}{}) in pod {namespace}/{pod}",
        reason.as_deref().map(|r| format!(", {r}")).unwrap_or_default()
    )]
    Exit {
        /// Image key.
        image: String,
        /// Namespace of the pod.
        namespace: String,
        /// Pod name.
        pod: String,
        /// The executor's exit code.
        exit_code: i32,
        /// `terminated.reason`/`message` when not just `Error`.
        reason: Option<String>,
        /// The last lines of the executor's log.
        last_lines: Vec<String>,
    },
    /// The build did not finish in time.
    #[error(
        "image {image}: kaniko build did not finish within {} (pod {namespace}/{pod}: {state})",
        human(*after)
    )]
    Timeout {
        /// Image key.
        image: String,
        /// Namespace of the pod.
        namespace: String,
        /// Pod name.
        pod: String,
        /// The limit.
        after: Duration,
        /// What the pod looked like last.
        state: String,
    },
    /// Someone else deleted the build pod.
    #[error("image {image}: kaniko pod {namespace}/{pod} was deleted during the build")]
    PodDeleted {
        /// Image key.
        image: String,
        /// Namespace of the pod.
        namespace: String,
        /// Pod name.
        pod: String,
    },
}

/// `90s`, `20m`, `1h30m`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

impl KanikoError {
    /// The executor's last log lines (exit failures only).
    pub fn last_lines(&self) -> &[String] {
        match self {
            KanikoError::Exit { last_lines, .. } => last_lines,
            _ => &[],
        }
    }

    /// A `hint:` line, when there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            KanikoError::Pod {
                failure: PodFailure::ImagePull { container, .. },
                ..
            } => Some(if container == super::pod::INIT_CONTAINER {
                "check `build.kaniko.initImage` (the cluster must be able to pull it)".to_string()
            } else {
                "check `build.kaniko.image` (the cluster must be able to pull it)".to_string()
            }),
            KanikoError::Pod {
                failure: PodFailure::Unschedulable { .. },
                ..
            } => Some(
                "check `build.kaniko.resources`, `nodeSelector` and `tolerations` against the cluster's nodes"
                    .to_string(),
            ),
            KanikoError::Timeout { .. } => Some(
                "raise the limit with DEVSPACE_KANIKO_TIMEOUT (e.g. 45m), or look at the pod with kubectl describe"
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// The exit code class: an unreachable cluster is [`ExitCode::Unreachable`].
    pub fn exit_code(&self) -> ExitCode {
        match self {
            KanikoError::Kube { source, .. } => source.exit_code(),
            _ => ExitCode::Failure,
        }
    }
}

crate::diagnostic::diagnostic_from_inherent!(KanikoError, hint, exit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        for (secs, want) in [(0, "0s"), (90, "1m30s"), (1200, "20m"), (5400, "1h30m")] {
            assert_eq!(human(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn exit_message_names_code_and_pod() {
        let e = KanikoError::Exit {
            image: "api".into(),
            namespace: "ns".into(),
            pod: "devspace-build-api-x1y2z".into(),
            exit_code: 1,
            reason: None,
            last_lines: vec!["error building image".into()],
        };
        assert_eq!(
            e.to_string(),
            "image api: kaniko build failed (exit code 1) in pod ns/devspace-build-api-x1y2z"
        );
        assert_eq!(e.last_lines(), ["error building image"]);
        assert_eq!(e.exit_code(), ExitCode::Failure);
    }
}
