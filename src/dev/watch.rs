//! The file watcher of `devspace dev`: `notify` with the full debouncer over the roots
//! [`super::watch_roots`] names, delivering each debounced batch as the list of changed paths
//! on a tokio channel. Reads (`Access` events, which inotify reports for every open) are
//! dropped here so that a build reading its context does not look like a change.

use super::WatchRoot;
use notify::EventKind;
use notify::event::{MetadataKind, ModifyKind};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the tree must be quiet before a batch is delivered (an editor's save or a
/// `git checkout` is many events; one cycle should follow).
pub const DEBOUNCE: Duration = Duration::from_millis(400);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start the file watcher: {0}")]
    Start(#[source] notify::Error),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Box<dyn Send>,
    /// Debounced batches of changed paths.
    pub batches: mpsc::UnboundedReceiver<Vec<PathBuf>>,
}

/// Whether an event kind can change a file's content, presence or mode.
fn is_change(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))
    )
}

impl Watcher {
    /// Starts watching `roots`.
    pub fn start(roots: &[WatchRoot]) -> Result<Self, WatchError> {
        let (tx, batches) = mpsc::unbounded_channel();
        let mut debouncer =
            new_debouncer(
                DEBOUNCE,
                None,
                move |result: DebounceEventResult| match result {
                    Ok(events) => {
                        let paths: Vec<PathBuf> = events
                            .into_iter()
                            .filter(|e| is_change(&e.event.kind))
                            .flat_map(|e| e.event.paths)
                            .collect();
                        if !paths.is_empty() {
                            let _ = tx.send(paths);
                        }
                    }
                    Err(errors) => {
                        for e in errors {
                            tracing::warn!("file watcher: {e}");
                        }
                    }
                },
            )
            .map_err(WatchError::Start)?;
        for root in roots {
            let mode = if root.recursive {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            debouncer
                .watch(&root.path, mode)
                .map_err(|source| WatchError::Watch {
                    path: root.path.clone(),
                    source,
                })?;
        }
        Ok(Watcher {
            _debouncer: Box::new(debouncer),
            batches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, RemoveKind};

    #[test]
    fn reads_are_not_changes() {
        let cases = [
            (EventKind::Access(AccessKind::Any), false),
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
                false,
            ),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
                true,
            ),
            (EventKind::Remove(RemoveKind::File), true),
            (EventKind::Any, true),
        ];
        for (kind, want) in cases {
            assert_eq!(is_change(&kind), want, "{kind:?}");
        }
    }
}
