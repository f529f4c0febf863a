//! Pushing built tags through the daemon.
//!
//! Owns the push loop (each tag in order, caller-provided credentials sent as
//! `X-Registry-Auth`), turning progress messages into events, capturing the manifest digest,
//! and classifying failures: a registry refusing the credentials becomes
//! [`PushError::Auth`] naming the registry, with a `devspace login` hint. Credentials are
//! never formatted into any message.

use std::fmt;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::DockerDaemon;
use super::stream::{is_auth_error, parse_push_digest};
use crate::builder::{BuildEvent, BuildRequest, EventSink};
use crate::exit::ExitCode;
use crate::registry::reference::registry_host_of;

/// What to push.
#[derive(Clone, Default)]
pub struct PushRequest {
    /// Image key (names the image in errors).
    pub image_key: String,
    /// Image name without tag.
    pub repository: String,
    /// Tags to push, in order.
    pub tags: Vec<String>,
    /// Credentials for the registry of `repository`; `None` pushes anonymously.
    pub credentials: Option<DockerCredentials>,
}

impl PushRequest {
    /// Pushes every tag of `request` with `credentials`.
    pub fn for_build(request: &BuildRequest, credentials: Option<DockerCredentials>) -> Self {
        Self {
            image_key: request.image_key.clone(),
            repository: request.repository.clone(),
            tags: request.tags.clone(),
            credentials,
        }
    }
}

impl fmt::Debug for PushRequest {
    // Hand-written so credentials never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushRequest")
            .field("image_key", &self.image_key)
            .field("repository", &self.repository)
            .field("tags", &self.tags)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One pushed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedTag {
    /// `repository:tag`.
    pub reference: String,
    /// The manifest digest the registry reported.
    pub digest: Option<String>,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The registry refused the credentials (or their absence) — HTTP 401/403.
    #[error("image {image}: registry {registry} refused to accept {reference}: {message}")]
    Auth {
        /// Image key.
        image: String,
        /// Registry host (`docker.io` for Docker Hub).
        registry: String,
        /// The reference being pushed.
        reference: String,
        /// The daemon's message.
        message: String,
    },
    /// The daemon could not reach the registry (refused, no such host, timeout): the same
    /// class, and exit code, as a registry unreachable while verifying or logging in.
    #[error(
        "image {image}: registry {registry} cannot be reached while pushing {reference}: {message}"
    )]
    RegistryUnreachable {
        /// Image key.
        image: String,
        /// Registry host.
        registry: String,
        /// The reference being pushed.
        reference: String,
        /// The daemon's message.
        message: String,
    },
    /// The push failed for another reason (image missing, registry error, ...).
    #[error("image {image}: pushing {reference} failed: {message}")]
    Failed {
        /// Image key.
        image: String,
        /// The reference being pushed.
        reference: String,
        /// The daemon's message.
        message: String,
    },
    /// Talking to the daemon failed.
    #[error("image {image}: Docker daemon error while pushing {reference}: {source}")]
    Daemon {
        /// Image key.
        image: String,
        /// The reference being pushed.
        reference: String,
        /// The underlying error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The push was cancelled.
    #[error("image {image}: push cancelled")]
    Cancelled {
        /// Image key.
        image: String,
    },
}

impl PushError {
    /// A `hint:` line for the user, when there is a useful one.
    pub fn hint(&self) -> Option<String> {
        match self {
            PushError::Auth { registry, .. } => Some(format!(
                "run `devspace login {registry}` or `docker login {registry}`"
            )),
            PushError::RegistryUnreachable { registry, .. } => Some(format!(
                "check that {registry} is up and reachable from the Docker daemon (exit 4)"
            )),
            _ => None,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            PushError::Auth { .. } => ExitCode::Auth,
            PushError::RegistryUnreachable { .. } => ExitCode::Unreachable,
            PushError::Cancelled { .. } => ExitCode::Interrupted,
            _ => ExitCode::Failure,
        }
    }
}

impl DockerDaemon {
    /// Pushes every tag of `request` in order, reporting progress; returns each pushed
    /// reference with its digest.
    pub async fn push(
        &self,
        request: &PushRequest,
        events: &EventSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<PushedTag>, PushError> {
        let image = &request.image_key;
        let mut pushed = Vec::with_capacity(request.tags.len());
        for tag in &request.tags {
            let reference = format!("{}:{tag}", request.repository);
            events.emit(BuildEvent::Pushing {
                tag: reference.clone(),
            });
            let options = PushImageOptionsBuilder::new().tag(tag).build();
            let mut stream = self.client().push_image(
                &request.repository,
                Some(options),
                request.credentials.clone(),
            );
            let mut digest = None;
            loop {
                let item = tokio::select! {
                    biased;
                    () = cancel.cancelled() => {
                        return Err(PushError::Cancelled { image: image.clone() });
                    }
                    item = stream.next() => item,
                };
                match item {
                    None => break,
                    Some(Ok(info)) => {
                        let Some(status) = info.status.filter(|s| !s.is_empty()) else {
                            continue;
                        };
                        if let Some(d) = parse_push_digest(&status) {
                            digest = Some(d);
                        }
                        let detail = info.progress_detail.unwrap_or_default();
                        events.emit(BuildEvent::PushProgress {
                            tag: reference.clone(),
                            status,
                            current: detail.current.and_then(|c| u64::try_from(c).ok()),
                            total: detail.total.and_then(|t| u64::try_from(t).ok()),
                        });
                    }
                    Some(Err(err)) => {
                        return Err(classify(image, &request.repository, &reference, err));
                    }
                }
            }
            events.emit(BuildEvent::Pushed {
                tag: reference.clone(),
                digest: digest.clone(),
            });
            pushed.push(PushedTag { reference, digest });
        }
        Ok(pushed)
    }
}

/// Sorts a failed push into auth / other registry failure / daemon trouble.
fn classify(
    image: &str,
    repository: &str,
    reference: &str,
    err: bollard::errors::Error,
) -> PushError {
    let message = match &err {
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        bollard::errors::Error::DockerResponseServerError {
            status_code: 401 | 403,
            message,
        } => {
            return PushError::Auth {
                image: image.to_string(),
                registry: registry_host_of(repository),
                reference: reference.to_string(),
                message: message.clone(),
            };
        }
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        _ => {
            return PushError::Daemon {
                image: image.to_string(),
                reference: reference.to_string(),
                source: err,
            };
        }
    };
    if is_auth_error(&message) {
        PushError::Auth {
            image: image.to_string(),
            registry: registry_host_of(repository),
            reference: reference.to_string(),
            message,
        }
    } else if is_unreachable_error(&message) {
        PushError::RegistryUnreachable {
            image: image.to_string(),
            registry: registry_host_of(repository),
            reference: reference.to_string(),
            message,
        }
    } else {
        PushError::Failed {
            image: image.to_string(),
            reference: reference.to_string(),
            message,
        }
    }
}

/// The daemon's words (Go `net` errors) for a registry it could not connect to.
fn is_unreachable_error(message: &str) -> bool {
    [
        "connection refused",
        "no such host",
        "i/o timeout",
        "no route to host",
        "network is unreachable",
        "TLS handshake timeout",
        "connection reset by peer",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

crate::diagnostic::diagnostic_from_inherent!(PushError, hint, exit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let stream = |m: &str| bollard::errors::Error::DockerStreamError {
            error: m.to_string(),
        };
        let server = |code: u16, m: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: code,
            message: m.to_string(),
        };
        let auth = classify(
            "api",
            "127.0.0.1:5000/api",
            "127.0.0.1:5000/api:v1",
            stream("unauthorized: authentication required"),
        );
        assert!(matches!(&auth, PushError::Auth { registry, .. } if registry == "127.0.0.1:5000"));
        assert_eq!(
            auth.hint().as_deref(),
            Some("run `devspace login 127.0.0.1:5000` or `docker login 127.0.0.1:5000`")
        );
        assert_eq!(auth.exit_code(), ExitCode::Auth);

        let hub = classify("w", "john/web", "john/web:1", server(403, "forbidden"));
        assert!(matches!(&hub, PushError::Auth { registry, .. } if registry == "docker.io"));

        let other = classify(
            "api",
            "r/api",
            "r/api:v1",
            server(404, "An image does not exist locally with the tag: r/api"),
        );
        assert!(matches!(other, PushError::Failed { .. }));
        assert_eq!(other.exit_code(), ExitCode::Failure);

        // A registry that cannot be reached: exit 4, as when verifying or logging in.
        let down = classify(
            "api",
            "127.0.0.1:5999/api",
            "127.0.0.1:5999/api:v1",
            stream(
                "Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused",
            ),
        );
        assert!(
            matches!(&down, PushError::RegistryUnreachable { registry, .. } if registry == "127.0.0.1:5999")
        );
        assert_eq!(down.exit_code(), ExitCode::Unreachable);

        let daemon = classify(
            "api",
            "r/api",
            "r/api:v1",
            bollard::errors::Error::RequestTimeoutError,
        );
        assert!(matches!(daemon, PushError::Daemon { .. }));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let request = PushRequest {
            image_key: "api".into(),
            repository: "r/api".into(),
            tags: vec!["v1".into()],
            credentials: Some(DockerCredentials {
                username: Some("user".into()),
                password: Some("hunter2-secret".into()),
                ..Default::default()
            }),
        };
        let text = format!("{request:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
