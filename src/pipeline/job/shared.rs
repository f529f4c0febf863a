//! What every step of one image's job shares: the run's settings, the context (cache and
//! services port), the emitter of the image's events, what a successful job returns, and how
//! a step stops on Ctrl-C.

use crate::builder::{BuildEvent, EventSink};
use crate::image::cache::Cache;
use crate::image::content_key::ContentKey;
use crate::image::context;
use crate::image::decision::Decision;
use crate::pipeline::error::ImageError;
use crate::pipeline::events::{Event, ImageEvent, Status};
use crate::pipeline::services::Services;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Settings of one run that every job shares.
#[derive(Debug, Clone, Default)]
pub struct JobSettings {
    /// Directory of `devspace.yaml`.
    pub root: PathBuf,
    /// Cache bucket (`profiles.<name>` in generated.yaml): the applied profiles, or "".
    pub profile_key: String,
    pub force_build: bool,
    pub skip_push: bool,
    /// `--dry-run`: decide only; never contact Docker or a registry.
    pub dry_run: bool,
}

/// What every job of a run works with: the settings, the cache and the services port.
pub struct JobContext {
    pub settings: JobSettings,
    pub cache: Cache,
    pub services: Arc<dyn Services>,
    /// Registries whose content cache failed in this run: warned about once, not asked again.
    pub registry_cache_off: Mutex<HashSet<String>>,
}

impl JobContext {
    /// A context whose registry cache has not failed yet.
    pub fn new(settings: JobSettings, cache: Cache, services: Arc<dyn Services>) -> Self {
        JobContext {
            settings,
            cache,
            services,
            registry_cache_off: Mutex::new(HashSet::new()),
        }
    }
}

/// A successful image job.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSuccess {
    pub status: Status,
    /// The decision, after verification.
    pub decision: Decision,
    /// Tags of the image now (fresh when built, recorded when skipped).
    pub tags: Vec<String>,
    pub digest: Option<String>,
    pub pushed: bool,
    /// (files, bytes) of the context, when scanned.
    pub context: Option<(u64, u64)>,
    /// The content key (images built `FROM` this one hash it instead of its tag).
    pub content_key: Option<ContentKey>,
}

/// Sends events for one image.
#[derive(Clone)]
pub struct Emitter {
    key: String,
    tx: mpsc::UnboundedSender<Event>,
}

impl Emitter {
    /// An emitter for image `key` into the dispatcher's channel.
    pub fn new(key: &str, tx: mpsc::UnboundedSender<Event>) -> Self {
        Emitter {
            key: key.to_string(),
            tx,
        }
    }

    /// Sends one event for this image (a closed dispatcher drops it).
    pub fn send(&self, kind: ImageEvent) {
        let _ = self.tx.send(Event {
            image: self.key.clone(),
            kind,
        });
    }

    /// Builder events → pipeline events.
    pub(super) fn sink(&self) -> EventSink {
        let this = self.clone();
        EventSink::new(move |ev| match ev {
            BuildEvent::Log(line) => this.send(ImageEvent::Log(line)),
            BuildEvent::Step { n, m, text } => this.send(ImageEvent::Step { n, total: m, text }),
            BuildEvent::Pushing { tag } => this.send(ImageEvent::Log(format!("pushing {tag}"))),
            BuildEvent::PushProgress { .. } | BuildEvent::ContextSent { .. } => {}
            BuildEvent::Pushed { tag, digest } => this.send(ImageEvent::Pushed { tag, digest }),
        })
    }
}

/// What the image ends as, once its decision was carried out.
pub(super) struct Done {
    pub(super) status: Status,
    pub(super) tags: Vec<String>,
    pub(super) digest: Option<String>,
    pub(super) pushed: bool,
}

/// Runs `work` unless Ctrl-C comes first (then the image ends as interrupted, and nothing is
/// committed: the next run decides again from the old entry).
pub(super) async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, ImageError>>,
) -> Result<T, ImageError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(context::ContextError::Cancelled.into()),
        result = work => result,
    }
}
