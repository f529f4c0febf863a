//! The errors of reaching and using a cluster. Each names the context (and, for connection
//! problems, the server URL) so a user with several clusters sees at once which one failed, and
//! carries a `hint:` line where there is an obvious next step.

use std::fmt::Write as _;

/// Why a Kubernetes operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig could be read.
    #[error(
        "cannot read the kubeconfig ({location}): {message}\nhint: set KUBECONFIG or create ~/.kube/config (e.g. `kubectl config set-cluster`)"
    )]
    NoKubeconfig { location: String, message: String },
    /// The kubeconfig names no current context and none was given.
    #[error(
        "the kubeconfig has no current context{}\nhint: choose one with --kube-context or `kubectl config use-context NAME`",
        list_available(available)
    )]
    NoContext { available: Vec<String> },
    /// `--kube-context` names a context the kubeconfig does not have.
    #[error(
        "kube context `{context}` does not exist in the kubeconfig{}{}",
        suggestion.as_ref().map(|s| format!("\nhint: did you mean `{s}`?")).unwrap_or_default(),
        list_available(available)
    )]
    UnknownContext {
        context: String,
        suggestion: Option<String>,
        available: Vec<String>,
    },
    /// The context's cluster, user or server entry is unusable.
    #[error("kube context `{context}`: {message}")]
    Config { context: String, message: String },
    /// The API server did not answer (refused, DNS, TLS, timeout).
    #[error(
        "cannot reach the Kubernetes API server {server} (context `{context}`) while {action}: {message}\nhint: is the cluster running? check `kubectl --context {context} cluster-info`, or choose another context with --kube-context"
    )]
    Unreachable {
        context: String,
        server: String,
        action: String,
        message: String,
    },
    /// The API server answered with an error status.
    #[error("{action} failed (context `{context}`): {message} ({code} {reason}){}", hint_for(*code))]
    Api {
        context: String,
        action: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// Any other client-side failure (bad response, request building).
    #[error("{action} failed (context `{context}`): {message}")]
    Client {
        context: String,
        action: String,
        message: String,
    },
}

impl KubeError {
    /// The documented exit code: 4 when no cluster can be reached (or none is configured).
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            KubeError::Unreachable { .. } | KubeError::NoKubeconfig { .. } => {
                crate::exit::ExitCode::Unreachable
            }
            _ => crate::exit::ExitCode::Failure,
        }
    }

    /// The HTTP status the API server answered with, for API errors.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the API server answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// Whether the API server answered 409 (stale resourceVersion or already exists).
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }
}

fn list_available(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!("\navailable contexts: {}", available.join(", "))
    }
}

fn hint_for(code: u16) -> &'static str {
    match code {
        401 => "\nhint: the cluster rejected the credentials of this context; log in again",
        403 => {
            "\nhint: the context's user lacks the permission; ask the cluster admin or use another namespace (-n)"
        }
        _ => "",
    }
}

/// Classifies a kube-rs error: transport failures become [`KubeError::Unreachable`], server
/// answers [`KubeError::Api`], the rest [`KubeError::Client`].
pub(crate) fn classify(
    context: &str,
    server: &str,
    action: String,
    error: ::kube::Error,
) -> KubeError {
    match error {
        ::kube::Error::Api(status) => KubeError::Api {
            context: context.to_owned(),
            action,
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        },
        // kube-rs prefixes transport errors with its variant name; the cause reads better.
        ::kube::Error::HyperError(e) => unreachable(context, server, action, error_chain(&e)),
        ::kube::Error::Service(e) => unreachable(context, server, action, error_chain(&*e)),
        other => KubeError::Client {
            context: context.to_owned(),
            action,
            message: error_chain(&other),
        },
    }
}

fn unreachable(context: &str, server: &str, action: String, message: String) -> KubeError {
    KubeError::Unreachable {
        context: context.to_owned(),
        server: server.to_owned(),
        action,
        message,
    }
}

/// `outer: inner: innermost`, skipping causes whose text the outer one already contains.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            let _ = write!(text, ": {part}");
        }
        source = cause.source();
    }
    text
}

impl crate::diagnostic::Diagnostic for KubeError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        KubeError::exit_code(self)
    }
    fn is_environment(&self) -> bool {
        self.exit_code() == crate::exit::ExitCode::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_context_names_suggestion_and_choices() {
        let error = KubeError::UnknownContext {
            context: "kind-dev".into(),
            suggestion: Some("kind-dev1".into()),
            available: vec!["kind-dev1".into(), "minikube".into()],
        };
        assert_eq!(
            error.to_string(),
            "kube context `kind-dev` does not exist in the kubeconfig\nhint: did you mean `kind-dev1`?\navailable contexts: kind-dev1, minikube"
        );
    }

    #[test]
    fn api_error_carries_code_and_hint() {
        let error = KubeError::Api {
            context: "prod".into(),
            action: "creating secret ns/x".into(),
            code: 403,
            reason: "Forbidden".into(),
            message: "secrets is forbidden".into(),
        };
        assert!(error.to_string().starts_with(
            "creating secret ns/x failed (context `prod`): secrets is forbidden (403 Forbidden)\nhint:"
        ));
        assert_eq!(error.status_code(), Some(403));
        assert!(!error.is_conflict());
    }
}
