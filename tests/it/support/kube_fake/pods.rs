//! Pod lifecycles for tests: status documents as a kubelet would write them (pending,
//! unschedulable, init container running, running, image-pull errors, succeeded, failed) and
//! [`PodScript`]s, sequences of steps the fake plays on a pod after it was created (set a
//! status, sleep, write log lines, wait for an exec into a container).

use serde_json::{Value, json};
use std::time::Duration;

/// A pod status a test can put a pod into. Container names default to the pod's first
/// (main) container.
#[derive(Debug, Clone, PartialEq)]
pub enum PodStatus {
    /// Scheduled, containers being created.
    Pending,
    /// Not scheduled: `PodScheduled` False with reason `Unschedulable` and this message.
    Unschedulable(String),
    /// The named init container runs (the pod is still Pending), later ones wait.
    InitRunning(String),
    /// Init containers completed, every container runs and is ready.
    Running,
    /// A container (init or main; `None` = first main container) cannot get its image:
    /// waiting with `reason` (`ErrImagePull`, `ImagePullBackOff`) and `message`.
    ImagePullError {
        /// Container name, `None` for the first main container.
        container: Option<String>,
        /// `ErrImagePull` or `ImagePullBackOff`.
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// Every container exited 0.
    Succeeded,
    /// A container exited non-zero (others exited 0).
    Failed {
        /// Container name, `None` for the first main container.
        container: Option<String>,
        /// Its exit code.
        exit_code: i32,
        /// `terminated.message`.
        message: String,
    },
}

/// Names of `spec.initContainers` and `spec.containers`.
pub fn container_names(pod: &Value) -> (Vec<String>, Vec<String>) {
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("initContainers"), names("containers"))
}

/// The container a log or exec request addresses: the named one (which must exist), or the
/// only main container; the API server's errors otherwise.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, super::ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let (inits, mains) = container_names(pod);
    match requested {
        Some(c) if inits.iter().chain(&mains).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(super::ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if mains.len() == 1 => Ok(mains[0].clone()),
        None => Err(super::ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            mains.join(" ")
        ))),
    }
}

fn image_of(pod: &Value, name: &str) -> String {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| c["image"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn waiting(reason: &str, message: Option<&str>) -> Value {
    let mut w = json!({"reason": reason});
    if let Some(m) = message {
        w["message"] = m.into();
    }
    json!({"waiting": w})
}

fn running(since: &str) -> Value {
    json!({"running": {"startedAt": since}})
}

fn terminated(exit_code: i32, reason: &str, message: Option<&str>, at: &str) -> Value {
    let mut t = json!({
        "exitCode": exit_code, "reason": reason, "startedAt": at, "finishedAt": at
    });
    if let Some(m) = message {
        t["message"] = m.into();
    }
    json!({"terminated": t})
}

fn container_status(pod: &Value, name: &str, state: Value) -> Value {
    let is_running = state.get("running").is_some();
    json!({
        "name": name,
        "image": image_of(pod, name),
        "imageID": "",
        "ready": is_running,
        "started": is_running,
        "restartCount": 0,
        "state": state,
    })
}

fn condition(
    kind: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    at: &str,
) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let Some(r) = reason {
        c["reason"] = r.into();
    }
    if let Some(m) = message {
        c["message"] = m.into();
    }
    c
}

impl PodStatus {
    /// The `status` document for `pod` in this state.
    pub fn render(&self, pod: &Value) -> Value {
        let now = super::store::now_rfc3339();
        let (inits, mains) = container_names(pod);
        let first_main = mains.first().cloned().unwrap_or_default();
        let target = |c: &Option<String>| c.clone().unwrap_or_else(|| first_main.clone());
        let scheduled = condition("PodScheduled", true, None, None, &now);
        let mut status = json!({"qosClass": "BestEffort", "hostIP": "10.0.0.2", "startTime": now});
        let statuses = |f: &dyn Fn(&str, bool) -> Value| -> (Vec<Value>, Vec<Value>) {
            (
                inits
                    .iter()
                    .map(|n| container_status(pod, n, f(n, true)))
                    .collect(),
                mains
                    .iter()
                    .map(|n| container_status(pod, n, f(n, false)))
                    .collect(),
            )
        };
        let (phase, conditions, (init_statuses, main_statuses)) = match self {
            PodStatus::Pending => (
                "Pending",
                vec![scheduled],
                statuses(&|_, init| {
                    waiting(
                        if init || inits.is_empty() {
                            "ContainerCreating"
                        } else {
                            "PodInitializing"
                        },
                        None,
                    )
                }),
            ),
            PodStatus::Unschedulable(message) => {
                status = json!({"qosClass": "BestEffort"});
                (
                    "Pending",
                    vec![condition(
                        "PodScheduled",
                        false,
                        Some("Unschedulable"),
                        Some(message),
                        &now,
                    )],
                    (Vec::new(), Vec::new()),
                )
            }
            PodStatus::InitRunning(which) => {
                let position = inits.iter().position(|n| n == which).unwrap_or(0);
                (
                    "Pending",
                    vec![
                        scheduled,
                        condition(
                            "Initialized",
                            false,
                            Some("ContainersNotInitialized"),
                            None,
                            &now,
                        ),
                    ],
                    statuses(&|name, init| {
                        if !init {
                            return waiting("PodInitializing", None);
                        }
                        let idx = inits.iter().position(|n| n == name).unwrap_or(0);
                        match idx.cmp(&position) {
                            std::cmp::Ordering::Less => terminated(0, "Completed", None, &now),
                            std::cmp::Ordering::Equal => running(&now),
                            std::cmp::Ordering::Greater => waiting("PodInitializing", None),
                        }
                    }),
                )
            }
            PodStatus::Running => (
                "Running",
                vec![
                    scheduled,
                    condition("Initialized", true, None, None, &now),
                    condition("ContainersReady", true, None, None, &now),
                    condition("Ready", true, None, None, &now),
                ],
                statuses(&|_, init| {
                    if init {
                        terminated(0, "Completed", None, &now)
                    } else {
                        running(&now)
                    }
                }),
            ),
            PodStatus::ImagePullError {
                container,
                reason,
                message,
            } => {
                let target = target(container);
                let target_is_init = inits.contains(&target);
                (
                    "Pending",
                    vec![scheduled],
                    statuses(&|name, init| {
                        if name == target {
                            waiting(reason, Some(message))
                        } else if init && !target_is_init {
                            terminated(0, "Completed", None, &now)
                        } else {
                            waiting("PodInitializing", None)
                        }
                    }),
                )
            }
            PodStatus::Succeeded => (
                "Succeeded",
                vec![scheduled, condition("Initialized", true, None, None, &now)],
                statuses(&|_, _| terminated(0, "Completed", None, &now)),
            ),
            PodStatus::Failed {
                container,
                exit_code,
                message,
            } => {
                let target = target(container);
                (
                    "Failed",
                    vec![scheduled, condition("Initialized", true, None, None, &now)],
                    statuses(&|name, _| {
                        if name == target {
                            terminated(*exit_code, "Error", Some(message), &now)
                        } else {
                            terminated(0, "Completed", None, &now)
                        }
                    }),
                )
            }
        };
        status["phase"] = phase.into();
        status["conditions"] = conditions.into();
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = init_statuses.into();
        }
        if !main_statuses.is_empty() {
            status["containerStatuses"] = main_statuses.into();
        }
        status
    }
}

/// The state of one container in a pod's status: `waiting`, `running`, `terminated`, or
/// `None` when the status does not mention it.
pub fn container_state(pod: &Value, container: &str) -> Option<(String, Value)> {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["state"].as_object())
        .and_then(|s| s.iter().next().map(|(k, v)| (k.clone(), v.clone())))
}

/// One step of a [`PodScript`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Set the pod's status.
    Status(PodStatus),
    /// Wait this long (to model slow starts).
    Sleep(Duration),
    /// Append text to a container's log (`None` = first main container).
    Log {
        /// Container, `None` for the first main container.
        container: Option<String>,
        /// Text to append (include the newline).
        text: String,
    },
    /// Wait until this many execs into the container (`None` = first main container) have
    /// finished, e.g. the context upload into a kaniko init container.
    WaitExec {
        /// Container, `None` for the first main container.
        container: Option<String>,
        /// Number of finished execs to wait for (counted since the pod was created).
        count: usize,
    },
}

/// Steps the fake plays on a pod after it was created, in order. A deleted pod ends its script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodScript {
    /// The steps.
    pub steps: Vec<Step>,
}

impl PodScript {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a status change.
    pub fn status(mut self, status: PodStatus) -> Self {
        self.steps.push(Step::Status(status));
        self
    }

    /// Adds a pause.
    pub fn sleep(mut self, duration: Duration) -> Self {
        self.steps.push(Step::Sleep(duration));
        self
    }

    /// Adds log text for a container (`None` = first main container).
    pub fn log(mut self, container: Option<&str>, text: impl Into<String>) -> Self {
        self.steps.push(Step::Log {
            container: container.map(String::from),
            text: text.into(),
        });
        self
    }

    /// Waits for `count` finished execs into the container (`None` = first main container).
    pub fn wait_exec(mut self, container: Option<&str>, count: usize) -> Self {
        self.steps.push(Step::WaitExec {
            container: container.map(String::from),
            count,
        });
        self
    }

    /// Scheduled and running right away.
    pub fn running() -> Self {
        Self::new()
            .status(PodStatus::Pending)
            .status(PodStatus::Running)
    }

    /// A kaniko-style build pod: the init container `init` runs until one exec into it
    /// (the context upload) finished, then the main container runs, logs `log` and exits
    /// with `exit_code`.
    pub fn kaniko_build(init: &str, log: &str, exit_code: i32) -> Self {
        let end = if exit_code == 0 {
            PodStatus::Succeeded
        } else {
            PodStatus::Failed {
                container: None,
                exit_code,
                message: format!("exit code {exit_code}"),
            }
        };
        Self::new()
            .status(PodStatus::Pending)
            .status(PodStatus::InitRunning(init.to_string()))
            .wait_exec(Some(init), 1)
            .status(PodStatus::Running)
            .log(None, log)
            .status(end)
    }
}
