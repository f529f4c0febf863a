//! The budgets every YAML loader enforces, in one place (documented in the README's "Limits").
//!
//! Aliases let a few hundred bytes stand for billions of nodes ("billion laughs"). Loading
//! counts every node it produces, an alias copy at the full size of what it copies, and stops
//! with a clear error once the document is over:
//! - [`MAX_NODES`] nodes in all (source nodes plus alias copies),
//! - an alias share above [`allowed_alias_ratio`] (the curve of Go's `yaml.v3`: 99 % of small
//!   documents may come from aliases, only 10 % of a document of 4 million nodes),
//! - [`MAX_ALIAS_BYTES`] of scalar text copied through aliases.
//!
//! Config vars can double a string per level (`A: ${B}${B}`, `B: ${C}${C}`, ...): one
//! substituted string may grow to [`MAX_VAR_STRING_BYTES`], all substitutions of a load
//! together to [`MAX_VAR_TOTAL_BYTES`].
//!
//! Files are read only when they are regular files of at most [`MAX_FILE_BYTES`] (so
//! `--config /dev/zero` or a FIFO is an error, not a hang).

use super::{Error, Pos};

/// Nodes a document may hold, alias copies included.
pub const MAX_NODES: usize = 4_000_000;
/// Scalar bytes aliases may copy in one document.
pub const MAX_ALIAS_BYTES: usize = 32 << 20;
/// Below this many nodes, no alias share is refused up to 99 %.
const RATIO_FLOOR_NODES: usize = 400_000;
/// Alias copies below this count are never refused for their share.
const RATIO_MIN_ALIASED: usize = 100;
/// Documents below this many nodes are never refused for their alias share.
const RATIO_MIN_NODES: usize = 1_000;
/// Bytes one string may grow to through `${VAR}` substitution (var values included).
pub const MAX_VAR_STRING_BYTES: usize = 1 << 20;
/// Bytes all substitutions of one config load may produce together.
pub const MAX_VAR_TOTAL_BYTES: usize = 64 << 20;
/// Size of a YAML file this tool reads (config, cache, manifests, values).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The share of nodes aliases may produce in a document of `nodes` nodes (Go `yaml.v3`).
pub fn allowed_alias_ratio(nodes: usize) -> f64 {
    if nodes <= RATIO_FLOOR_NODES {
        0.99
    } else if nodes >= MAX_NODES {
        0.10
    } else {
        let over = (nodes - RATIO_FLOOR_NODES) as f64 / (MAX_NODES - RATIO_FLOOR_NODES) as f64;
        0.99 - 0.89 * over
    }
}

/// The size of a subtree: what one more copy of it costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub nodes: usize,
    pub bytes: usize,
}

impl Cost {
    pub fn add(&mut self, other: Cost) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Counts the nodes of one load and refuses the one that goes over a limit.
#[derive(Debug, Default)]
pub struct Budget {
    nodes: usize,
    aliased: usize,
    aliased_bytes: usize,
}

impl Budget {
    /// A node read from the source.
    pub fn node(&mut self, pos: Pos) -> Result<(), Error> {
        self.nodes += 1;
        self.check(pos)
    }

    /// A copy of an anchored subtree of size `cost` (an alias, or the anchor's own copy).
    pub fn copy(&mut self, cost: Cost, pos: Pos) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(cost.nodes);
        self.aliased = self.aliased.saturating_add(cost.nodes);
        self.aliased_bytes = self.aliased_bytes.saturating_add(cost.bytes);
        self.check(pos)
    }

    /// The copy a loader keeps of an anchored subtree of size `cost` (for later aliases).
    pub fn keep(&mut self, cost: Cost, pos: Pos) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(cost.nodes);
        self.check(pos)
    }

    fn check(&self, pos: Pos) -> Result<(), Error> {
        let over = |message: String| Error {
            pos,
            message,
            over_budget: true,
        };
        if self.nodes > MAX_NODES {
            return Err(over(format!(
                "the document is over the node budget: more than {MAX_NODES} nodes \
                 (alias copies included)"
            )));
        }
        if self.aliased_bytes > MAX_ALIAS_BYTES {
            return Err(over(format!(
                "aliases copy more than {} MiB of text (the alias byte budget)",
                MAX_ALIAS_BYTES >> 20
            )));
        }
        if self.aliased > RATIO_MIN_ALIASED && self.nodes > RATIO_MIN_NODES {
            let ratio = self.aliased as f64 / self.nodes as f64;
            let allowed = allowed_alias_ratio(self.nodes);
            if ratio > allowed {
                return Err(over(format!(
                    "aliases expand to {} of {} nodes, over the alias ratio of {:.0} % \
                     allowed at this size (excessive aliasing)",
                    self.aliased,
                    self.nodes,
                    allowed * 100.0
                )));
            }
        }
        Ok(())
    }
}

/// Reads a YAML file: a regular file (not a FIFO or a device) of at most [`MAX_FILE_BYTES`].
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory cannot be a YAML file here)",
        )
    };
    // Checked before opening: opening a FIFO blocks until someone writes to it.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

fn too_large() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "larger than {} MiB (the YAML file size limit)",
            MAX_FILE_BYTES >> 20
        ),
    )
}
