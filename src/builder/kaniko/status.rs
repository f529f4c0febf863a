//! Reading a build pod's status (pure): where the build stands — waiting, init container
//! running (time to upload), executor started (time to follow its log), executor finished —
//! or why it can never finish: an image that cannot be pulled, a pod no node accepts, a
//! container that cannot be created, an init container that failed.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::pod::{INIT_CONTAINER, KANIKO_CONTAINER};

/// Waiting reasons that will not resolve by waiting longer.
const PULL_ERRORS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];
const CREATE_ERRORS: &[&str] = &["CreateContainerConfigError", "CreateContainerError"];

/// Where a build pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Nothing to do yet (scheduling, pulling, creating).
    Waiting,
    /// The init container runs: the context can be uploaded.
    InitRunning,
    /// The executor started: its log can be followed.
    KanikoRunning,
    /// The executor ended.
    Finished {
        /// Its exit code.
        exit_code: i32,
        /// `terminated.reason` (`Error`, `OOMKilled`, ...).
        reason: Option<String>,
        /// `terminated.message`.
        message: Option<String>,
    },
    /// The build can never finish.
    Failed(PodFailure),
}

/// Why a build pod can never finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodFailure {
    /// A container's image cannot be pulled.
    ImagePull {
        /// Container name.
        container: String,
        /// Its image.
        image: String,
        /// `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, ...
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// No node accepts the pod.
    Unschedulable {
        /// The scheduler's message.
        message: String,
    },
    /// A container cannot be created (missing config map or secret key, ...).
    CreateContainer {
        /// Container name.
        container: String,
        /// `CreateContainerConfigError` or `CreateContainerError`.
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// The init container ended without the upload completing.
    InitFailed {
        /// Its exit code.
        exit_code: i32,
        /// `terminated.message` or reason.
        message: String,
    },
    /// The pod failed without an executor exit code (evicted, deadline, ...).
    PodFailed {
        /// `status.reason`.
        reason: String,
        /// `status.message`.
        message: String,
    },
}

impl std::fmt::Display for PodFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PodFailure::ImagePull {
                container,
                image,
                reason,
                message,
            } => write!(
                f,
                "container `{container}` cannot pull image `{image}`: {reason}{}",
                suffix(message)
            ),
            PodFailure::Unschedulable { message } => {
                write!(f, "the pod cannot be scheduled{}", suffix(message))
            }
            PodFailure::CreateContainer {
                container,
                reason,
                message,
            } => write!(
                f,
                "container `{container}` cannot be created: {reason}{}",
                suffix(message)
            ),
            PodFailure::InitFailed { exit_code, message } => write!(
                f,
                "the init container `{INIT_CONTAINER}` exited with code {exit_code}{}",
                suffix(message)
            ),
            PodFailure::PodFailed { reason, message } => {
                write!(f, "the pod failed: {reason}{}", suffix(message))
            }
        }
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .chain(
            status
                .and_then(|s| s.container_statuses.as_deref())
                .unwrap_or_default(),
        )
}

fn find<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    statuses(pod).find(|c| c.name == name)
}

/// Where `pod` stands.
pub fn assess(pod: &Pod) -> PodState {
    let state_of = |name: &str| find(pod, name).and_then(|c| c.state.as_ref());
    if let Some(t) = state_of(KANIKO_CONTAINER).and_then(|s| s.terminated.as_ref()) {
        return PodState::Finished {
            exit_code: t.exit_code,
            reason: t.reason.clone(),
            message: t.message.clone(),
        };
    }
    let status = pod.status.as_ref();
    if let Some(c) = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        && c.reason.as_deref() == Some("Unschedulable")
    {
        return PodState::Failed(PodFailure::Unschedulable {
            message: c.message.clone().unwrap_or_default(),
        });
    }
    for c in statuses(pod) {
        let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.clone().unwrap_or_default();
        let message = w.message.clone().unwrap_or_default();
        if PULL_ERRORS.contains(&reason.as_str()) {
            return PodState::Failed(PodFailure::ImagePull {
                container: c.name.clone(),
                image: c.image.clone(),
                reason,
                message,
            });
        }
        if CREATE_ERRORS.contains(&reason.as_str()) {
            return PodState::Failed(PodFailure::CreateContainer {
                container: c.name.clone(),
                reason,
                message,
            });
        }
    }
    if let Some(t) = state_of(INIT_CONTAINER).and_then(|s| s.terminated.as_ref())
        && t.exit_code != 0
    {
        return PodState::Failed(PodFailure::InitFailed {
            exit_code: t.exit_code,
            message: t
                .message
                .clone()
                .or_else(|| t.reason.clone())
                .unwrap_or_default(),
        });
    }
    if state_of(KANIKO_CONTAINER).is_some_and(|s| s.running.is_some()) {
        return PodState::KanikoRunning;
    }
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Failed") => {
            return PodState::Failed(PodFailure::PodFailed {
                reason: status
                    .and_then(|s| s.reason.clone())
                    .unwrap_or_else(|| "Failed".to_string()),
                message: status.and_then(|s| s.message.clone()).unwrap_or_default(),
            });
        }
        Some("Succeeded") => {
            return PodState::Finished {
                exit_code: 0,
                reason: None,
                message: None,
            };
        }
        _ => {}
    }
    if state_of(INIT_CONTAINER).is_some_and(|s| s.running.is_some()) {
        return PodState::InitRunning;
    }
    PodState::Waiting
}

/// A one-line picture of the pod for timeout messages (`Pending, init container running`).
pub fn describe(pod: &Pod) -> String {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".to_string());
    let containers: Vec<String> = statuses(pod)
        .map(|c| {
            let state = c.state.as_ref();
            let what = if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                format!("waiting ({})", w.reason.as_deref().unwrap_or("unknown"))
            } else if state.is_some_and(|s| s.running.is_some()) {
                "running".to_string()
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                format!("exited {}", t.exit_code)
            } else {
                "unknown".to_string()
            };
            format!("{} {what}", c.name)
        })
        .collect();
    if containers.is_empty() {
        phase
    } else {
        format!("{phase}: {}", containers.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "kaniko"}], "initContainers": [{"name": "context"}]},
            "status": status,
        }))
        .expect("pod json")
    }

    fn cs(name: &str, state: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "image": format!("{name}-image"), "imageID": "", "ready": false,
               "restartCount": 0, "state": state})
    }

    #[test]
    fn assess_table() {
        let waiting = |r: &str| json!({"waiting": {"reason": r, "message": "m"}});
        let running = json!({"running": {}});
        let exited = |c: i32| json!({"terminated": {"exitCode": c, "reason": "Error"}});
        let cases: Vec<(&str, serde_json::Value, PodState)> = vec![
            ("empty", json!({"phase": "Pending"}), PodState::Waiting),
            (
                "unschedulable",
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                       "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
                PodState::Failed(PodFailure::Unschedulable {
                    message: "0/3 nodes are available".into(),
                }),
            ),
            (
                "creating",
                json!({"phase": "Pending",
                       "initContainerStatuses": [cs("context", waiting("ContainerCreating"))],
                       "containerStatuses": [cs("kaniko", waiting("PodInitializing"))]}),
                PodState::Waiting,
            ),
            (
                "init pull error",
                json!({"phase": "Pending",
                       "initContainerStatuses": [cs("context", waiting("ImagePullBackOff"))]}),
                PodState::Failed(PodFailure::ImagePull {
                    container: "context".into(),
                    image: "context-image".into(),
                    reason: "ImagePullBackOff".into(),
                    message: "m".into(),
                }),
            ),
            (
                "executor invalid image",
                json!({"phase": "Pending",
                       "initContainerStatuses": [cs("context", exited(0))],
                       "containerStatuses": [cs("kaniko", waiting("InvalidImageName"))]}),
                PodState::Failed(PodFailure::ImagePull {
                    container: "kaniko".into(),
                    image: "kaniko-image".into(),
                    reason: "InvalidImageName".into(),
                    message: "m".into(),
                }),
            ),
            (
                "config error",
                json!({"phase": "Pending",
                       "containerStatuses": [cs("kaniko", waiting("CreateContainerConfigError"))]}),
                PodState::Failed(PodFailure::CreateContainer {
                    container: "kaniko".into(),
                    reason: "CreateContainerConfigError".into(),
                    message: "m".into(),
                }),
            ),
            (
                "init running",
                json!({"phase": "Pending",
                       "initContainerStatuses": [cs("context", running.clone())],
                       "containerStatuses": [cs("kaniko", waiting("PodInitializing"))]}),
                PodState::InitRunning,
            ),
            (
                "init failed",
                json!({"phase": "Failed",
                       "initContainerStatuses": [cs("context", exited(137))]}),
                PodState::Failed(PodFailure::InitFailed {
                    exit_code: 137,
                    message: "Error".into(),
                }),
            ),
            (
                "kaniko running",
                json!({"phase": "Running",
                       "initContainerStatuses": [cs("context", exited(0))],
                       "containerStatuses": [cs("kaniko", running.clone())]}),
                PodState::KanikoRunning,
            ),
            (
                "kaniko exited",
                json!({"phase": "Failed",
                       "containerStatuses": [cs("kaniko", exited(3))]}),
                PodState::Finished {
                    exit_code: 3,
                    reason: Some("Error".into()),
                    message: None,
                },
            ),
            (
                "evicted",
                json!({"phase": "Failed", "reason": "Evicted", "message": "low on disk"}),
                PodState::Failed(PodFailure::PodFailed {
                    reason: "Evicted".into(),
                    message: "low on disk".into(),
                }),
            ),
            (
                "succeeded without statuses",
                json!({"phase": "Succeeded"}),
                PodState::Finished {
                    exit_code: 0,
                    reason: None,
                    message: None,
                },
            ),
        ];
        for (name, status, want) in cases {
            assert_eq!(assess(&pod(status)), want, "{name}");
        }
    }

    #[test]
    fn failure_texts() {
        let f = PodFailure::ImagePull {
            container: "kaniko".into(),
            image: "bad:1".into(),
            reason: "ErrImagePull".into(),
            message: "not found".into(),
        };
        assert_eq!(
            f.to_string(),
            "container `kaniko` cannot pull image `bad:1`: ErrImagePull (not found)"
        );
        let p = pod(json!({"phase": "Pending",
            "initContainerStatuses": [cs("context", json!({"running": {}}))],
            "containerStatuses": [cs("kaniko", json!({"waiting": {"reason": "PodInitializing"}}))]}));
        assert_eq!(
            describe(&p),
            "Pending: context running, kaniko waiting (PodInitializing)"
        );
    }
}
