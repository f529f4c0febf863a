//! The Engine API build: `POST /build` with the context streamed as the request body.
//!
//! Owns the query options (every tag as a `t` parameter, Dockerfile path, build args, target,
//! network mode, labels, `rm`/`forcerm` so no step containers stay behind), the body wrapper
//! that counts bytes and remembers a producer failure, reading the message stream into events,
//! and cleaning up after a cancelled build.
//!
//! Tags: the daemon applies every `t` of the request when the build commits the image, so there
//! is no moment in which the image exists under only some of its tags (or, if someone removes
//! an image with the same ID meanwhile, under none: separate `tag` calls after the build failed
//! with "no such image" then). bollard 0.21's `BuildImageOptions` has a single `t` and its query
//! serializer (`serde_urlencoded`) cannot repeat a key, so the other tags are appended to the
//! query of that one `/build` request through bollard's public request modifier, on a clone of
//! the client made for the build ([`append_tags`]).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard::query_parameters::BuildImageOptions;
use bollard::{BollardRequest, Docker, body_try_stream};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::DockerDaemon;
use super::stream::BuildStreamState;
use crate::builder::{
    BuildError, BuildEvent, BuildOutcome, BuildRequest, ContextBody, ERROR_TAIL_LINES, EventSink,
    ImageBuilder, with_context,
};

/// Builds through the daemon's Engine API (the default for `build.docker`).
#[derive(Debug, Clone)]
pub struct DockerApiBuilder {
    daemon: DockerDaemon,
}

impl DockerApiBuilder {
    /// A builder sending builds to `daemon`.
    pub fn new(daemon: DockerDaemon) -> Self {
        Self { daemon }
    }

    /// The daemon builds go to.
    pub fn daemon(&self) -> &DockerDaemon {
        &self.daemon
    }

    /// Builds `request` from `context`, tagged with all its tags.
    pub async fn run(
        &self,
        request: &BuildRequest,
        context: ContextBody,
        events: &EventSink,
        cancel: &CancellationToken,
    ) -> Result<BuildOutcome, BuildError> {
        let image = &request.image_key;
        let references = request.references();
        let Some(first) = references.first() else {
            return Err(BuildError::Failed {
                image: image.clone(),
                message: "no tags to build".to_string(),
                last_lines: Vec::new(),
            });
        };
        let (body, probe) = probe_body(context, events.clone());
        let credentials =
            (!request.registry_auths.is_empty()).then(|| request.registry_auths.clone());
        let docker = client_with_tags(self.daemon.client(), &references[1..]);
        let mut stream = docker.build_image(
            build_options(request, first),
            credentials,
            Some(body_try_stream(body)),
        );
        let mut state = BuildStreamState::new(ERROR_TAIL_LINES);
        let failure = loop {
            let item = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    // Dropping the response makes the daemon cancel the build; the step
                    // container it was running is removed here so nothing stays behind.
                    drop(stream);
                    self.daemon.remove_containers(&state.live_containers()).await;
                    return Err(BuildError::Cancelled { image: image.clone() });
                }
                item = stream.next() => item,
            };
            match item {
                None => break None,
                Some(Ok(info)) => {
                    for event in state.on_message(&info) {
                        events.emit(event);
                    }
                }
                Some(Err(err)) => break Some(err),
            }
        };
        for event in state.finish() {
            events.emit(event);
        }
        // A failed producer explains whatever the daemon said after the body broke off.
        if let Some(source) = probe.take_error() {
            return Err(BuildError::Context {
                image: image.clone(),
                source,
            });
        }
        match failure {
            None => {}
            Some(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(BuildError::Failed {
                    image: image.clone(),
                    message: error,
                    last_lines: state.last_lines(),
                });
            }
            Some(source) => {
                return Err(BuildError::Daemon {
                    image: image.clone(),
                    action: "build".to_string(),
                    source,
                });
            }
        }
        Ok(BuildOutcome {
            image_id: state.image_id().map(str::to_string),
            references,
            pushed: false,
            digest: None,
        })
    }
}

impl ImageBuilder for DockerApiBuilder {
    fn needs_context(&self) -> bool {
        true
    }

    fn build<'a>(
        &'a self,
        request: &'a BuildRequest,
        context: Option<ContextBody>,
        events: &'a EventSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<BuildOutcome, BuildError>> {
        with_context(request, context, move |c| {
            self.run(request, c, events, cancel)
        })
    }
}

/// A clone of `docker` whose `/build` requests also carry `t=<reference>` for each of
/// `extra` (see the module doc).
fn client_with_tags(docker: &Docker, extra: &[String]) -> Docker {
    if extra.is_empty() {
        return docker.clone();
    }
    let extra = extra.to_vec();
    docker
        .clone()
        .with_request_modifier(move |mut request: BollardRequest| {
            if let Some(uri) = append_tags(&request.uri().to_string(), &extra)
                && let Ok(uri) = uri.parse()
            {
                *request.uri_mut() = uri;
            }
            request
        })
}

/// `uri` with a `t=<reference>` query parameter appended for each of `tags`, when it is a
/// `/build` request (`None` otherwise, or when `uri` does not parse).
pub(crate) fn append_tags(uri: &str, tags: &[String]) -> Option<String> {
    let mut url = reqwest::Url::parse(uri).ok()?;
    if !url.path().ends_with("/build") {
        return None;
    }
    {
        let mut query = url.query_pairs_mut();
        for tag in tags {
            query.append_pair("t", tag);
        }
    }
    Some(url.into())
}

/// The `/build` query for `request`, tagged `first` (the other tags: [`append_tags`]).
pub(crate) fn build_options(request: &BuildRequest, first: &str) -> BuildImageOptions {
    // The API takes string values only; a null build arg means "no value", which is what
    // leaving it out does (the ARG keeps its default).
    let build_args: HashMap<String, String> = request
        .build_args
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    let labels: HashMap<String, String> = request
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    BuildImageOptions {
        dockerfile: request.dockerfile.clone(),
        t: Some(first.to_string()),
        rm: true,
        forcerm: true,
        pull: None,
        buildargs: (!build_args.is_empty()).then_some(build_args),
        labels: (!labels.is_empty()).then_some(labels),
        networkmode: request.network.clone(),
        target: request.target.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Remembers the first error of the context producer (hyper only sees that the body failed).
#[derive(Clone, Default)]
struct BodyProbe(Arc<Mutex<Option<io::Error>>>);

impl BodyProbe {
    fn record(&self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
        copy
    }

    fn take_error(&self) -> Option<io::Error> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Wraps the context: counts bytes, reports [`BuildEvent::ContextSent`] at the end, and
/// records a producer error while still passing it on so the upload is aborted.
fn probe_body(
    body: ContextBody,
    events: EventSink,
) -> (
    impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    BodyProbe,
) {
    let probe = BodyProbe::default();
    let sent = Arc::new(AtomicU64::new(0));
    let stream_probe = probe.clone();
    let stream = futures_util::stream::unfold(Some(body), move |state| {
        let probe = stream_probe.clone();
        let sent = sent.clone();
        let events = events.clone();
        async move {
            let mut body = state?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Some((Ok(chunk), Some(body)))
                }
                Some(Err(e)) => Some((Err(probe.record(e)), None)),
                None => {
                    events.emit(BuildEvent::ContextSent {
                        bytes: sent.load(Ordering::Relaxed),
                    });
                    None
                }
            }
        }
    });
    (stream, probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    #[test]
    fn options_carry_request_fields() {
        let request = BuildRequest {
            image_key: "api".into(),
            repository: "127.0.0.1:5000/api".into(),
            tags: vec!["v1".into(), "latest".into()],
            dockerfile: "docker/Dockerfile".into(),
            build_args: IndexMap::from([
                ("A".to_string(), Some("1".to_string())),
                ("NULL".to_string(), None),
            ]),
            target: Some("prod".into()),
            network: Some("host".into()),
            labels: IndexMap::from([("l".to_string(), "v".to_string())]),
            ..Default::default()
        };
        let o = build_options(&request, "127.0.0.1:5000/api:v1");
        assert_eq!(o.t.as_deref(), Some("127.0.0.1:5000/api:v1"));
        assert_eq!(o.dockerfile, "docker/Dockerfile");
        assert!(o.rm && o.forcerm);
        assert_eq!(o.pull, None);
        assert_eq!(
            o.buildargs,
            Some(HashMap::from([("A".to_string(), "1".to_string())]))
        );
        assert_eq!(
            o.labels,
            Some(HashMap::from([("l".to_string(), "v".to_string())]))
        );
        assert_eq!(o.networkmode.as_deref(), Some("host"));
        assert_eq!(o.target, "prod");

        let bare = build_options(
            &BuildRequest {
                tags: vec!["x".into()],
                dockerfile: "Dockerfile".into(),
                ..Default::default()
            },
            "r:x",
        );
        assert_eq!(bare.buildargs, None);
        assert_eq!(bare.labels, None);
        assert_eq!(bare.target, "");
    }

    #[test]
    fn every_tag_goes_into_the_build_query() {
        let request = BuildRequest {
            repository: "127.0.0.1:5000/ns/api".into(),
            tags: vec!["v1".into(), "latest".into(), "x_y-1.2".into()],
            dockerfile: "Dockerfile".into(),
            ..Default::default()
        };
        let references = request.references();
        // As bollard serializes the query of `build_options(&request, &references[0])`.
        let base = "unix://2f7661722f72756e/v1.41/build?dockerfile=Dockerfile\
                    &t=127.0.0.1%3A5000%2Fns%2Fapi%3Av1&q=false&nocache=false&rm=true";
        let uri = append_tags(base, &references[1..]).expect("a /build URI");
        let url = reqwest::Url::parse(&uri).expect("parses");
        let tags: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "t")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(tags, references);
        assert!(
            url.query_pairs()
                .any(|(k, v)| k == "dockerfile" && v == "Dockerfile"),
            "{uri}"
        );
        // Other requests are left alone.
        assert_eq!(
            append_tags("unix://2f76/v1.41/images/x/push?tag=v1", &references),
            None
        );
    }

    #[tokio::test]
    async fn probe_counts_and_records_errors() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ok: ContextBody = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ]));
        let (stream, probe) = probe_body(ok, EventSink::channel(tx));
        let chunks: Vec<_> = stream.collect().await;
        assert_eq!(chunks.len(), 2);
        assert!(probe.take_error().is_none());
        assert_eq!(rx.recv().await, Some(BuildEvent::ContextSent { bytes: 5 }));

        let failing: ContextBody = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "secret.txt: denied",
            )),
            Ok(Bytes::from_static(b"never")),
        ]));
        let (stream, probe) = probe_body(failing, EventSink::discard());
        let chunks: Vec<_> = stream.collect().await;
        assert_eq!(chunks.len(), 2, "the stream stops at the error");
        assert!(chunks[1].is_err());
        let err = probe.take_error().expect("error recorded");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("secret.txt"));
    }
}
