//! Everything that talks to (or reasons about) a Kubernetes cluster: the client built from the
//! kubeconfig with `--kube-context` / `-n`, image pull secrets and the `default` ServiceAccount
//! patch, local-cluster detection (minikube, kind, k3d, Docker Desktop) with the `minikube` and
//! `kind` adapters (run through [`crate::process`], which finds them in `PATH`).
//!
//! The crate `kube` is referred to as `::kube` throughout, this module being `crate::kube`.
//! Nothing here connects at construction: [`LazyKubeClient`] builds the client on first use, and
//! the first request is the first network traffic.

pub mod client;
pub mod error;
pub mod local;
pub mod pull_secrets;
pub mod pull_secrets_v6;

pub use client::{KubeClient, KubeSettings, KubeTarget, LazyKubeClient, resolve_target};
pub use error::KubeError;
pub use local::{ImageDelivery, LocalCluster, LocalClusterError, detect_local_cluster};
pub use pull_secrets::{
    PlannedPullSecret, PullSecretOptions, PullSecretPlan, PullSecretReport, SecretAction,
    SecretOutcome, ServiceAccountOutcome, SkippedRegistry, ensure_pull_secrets, plan_pull_secrets,
    pull_secret_registries,
};
