//! Tag replacement: rewrites references to configured images in kubectl manifests and Helm
//! values so they point at the tags just built (or recorded in the cache).
//!
//! Matching. A candidate value is trimmed and parsed as a Docker reference; its tag and digest
//! are dropped and Docker Hub forms are normalised (`nginx` = `docker.io/library/nginx`,
//! `docker.io/john/app` = `john/app`). The configured `image` of every image that has a tag is
//! normalised the same way, so `image: docker.io/john/app` in `devspace.yaml` matches `john/app`
//! in a manifest (DevSpace compares the config string verbatim and misses it). The whole value
//! must match: a value that merely contains an image name is never touched. When two image keys
//! name the same repository, the first in config order wins.
//!
//! Writing. The new value keeps the name exactly as the manifest wrote it and appends `:<tag>`,
//! or `:<tag>@<digest>` when digests are enabled and the digest is known. Only the scalar's bytes
//! change; its quoting style is kept (a plain scalar that would read back as a number or boolean
//! is double-quoted). Comments, document separators and everything else survive byte-for-byte.
//!
//! Scope, kubectl manifests ([`Scope::Manifest`]): only values of mapping keys named exactly
//! `image`, at any depth of any object (containers, initContainers, ephemeralContainers, CRDs),
//! except under `labels`/`annotations` maps (a label named `image` is not a container image).
//!
//! Scope, Helm values ([`Scope::HelmValues`]), DevSpace's "every string" narrowed so it stops
//! rewriting things that are not image references (DevSpace complaints #1209, #2088):
//! - every scalar value is a candidate, in maps and lists; mapping keys never are;
//! - nothing under a key named `labels`, `annotations` or `env`, or ending in `Labels`,
//!   `Annotations` or `Env` (`podLabels`, `commonAnnotations`, `extraEnv`) is touched;
//! - in a list item that has both a `name` and a `value` key (the shape of a container
//!   environment variable, wherever the list sits), `value` is not touched;
//! - split references (complaint #1271): in a map where `repository` (or `image`), optionally
//!   prefixed by a sibling `registry`, names a configured image and a sibling `tag` exists, only
//!   `tag` is set (to `<tag>`, or `<tag>@<digest>` with digests when there is no `digest`
//!   sibling; a `digest` sibling gets the digest). The repository stays bare (a tag written in it
//!   is removed), so charts that render `repository:tag` never double the tag;
//! - DevSpace 5.6 helpers: a value that is exactly `image(<name>)` becomes the configured
//!   repository, `tag(<name>)` the tag, where `<name>` (quotes optional) is an image key or an
//!   image reference matching a configured image;
//! - block scalars (`|`, `>`) are never candidates.

use crate::config::Config;
use crate::deploy::YamlSyntaxError;
use crate::registry::reference::Written;
use crate::yaml::ScalarStyle;
use crate::yaml::{self, Edit, Map, Node, Value};
use indexmap::IndexMap;

/// The tag (and digest) to deploy for one image key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageTag {
    /// The first configured tag built now, or the one recorded in the cache.
    pub tag: String,
    /// `sha256:…` of the pushed image, when known.
    pub digest: Option<String>,
}

impl ImageTag {
    /// A tag without a digest.
    pub fn new(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            digest: None,
        }
    }
}

/// Which rules apply to a document: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// kubectl manifests: only `image:` keys.
    Manifest,
    /// Helm values: every string value, with the exclusions documented above.
    HelmValues,
}

/// The configured images and the tags to deploy, prepared for matching.
#[derive(Debug, Clone)]
pub struct ImageTable {
    entries: Vec<Entry>,
    use_digests: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    /// `image` as configured.
    image: String,
    /// Canonical name of `image`; `None` when it is not a valid reference (never matches).
    canonical: Option<String>,
    tag: Option<ImageTag>,
}

impl ImageTable {
    /// Builds the table from the config's images (in config order) and the tags per image key.
    /// Images without a tag (never built, no cache entry) are kept for the `image()` helper but
    /// never replace anything.
    pub fn new(config: &Config, tags: &IndexMap<String, ImageTag>, use_digests: bool) -> Self {
        Self::from_images(
            config
                .images
                .iter()
                .map(|(key, image)| (key.as_str(), image.image.as_str())),
            tags,
            use_digests,
        )
    }

    /// Like [`ImageTable::new`], from `(image key, image repository)` pairs.
    pub fn from_images<'a>(
        images: impl IntoIterator<Item = (&'a str, &'a str)>,
        tags: &IndexMap<String, ImageTag>,
        use_digests: bool,
    ) -> Self {
        let entries = images
            .into_iter()
            .map(|(key, image)| Entry {
                key: key.to_owned(),
                image: image.to_owned(),
                canonical: Written::parse(image).map(|r| r.canonical()),
                tag: tags.get(key).filter(|t| !t.tag.is_empty()).cloned(),
            })
            .collect();
        Self {
            entries,
            use_digests,
        }
    }

    /// The image with a tag whose repository `value` names, with the parsed value.
    fn lookup<'v>(&self, value: &'v str) -> Option<(&Entry, &ImageTag, Written<'v>)> {
        let parsed = Written::parse(value)?;
        let canonical = parsed.canonical();
        let (entry, tag) = self.entries.iter().find_map(|e| match &e.tag {
            Some(tag) if e.canonical.as_deref() == Some(canonical.as_str()) => Some((e, tag)),
            _ => None,
        })?;
        Some((entry, tag, parsed))
    }

    /// The image a helper argument names: an image key first, else a matching reference.
    fn by_name(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == name).or_else(|| {
            let canonical = Written::parse(name)?.canonical();
            self.entries
                .iter()
                .find(|e| e.canonical.as_deref() == Some(canonical.as_str()))
        })
    }

    /// `(image, tag)` of image `key` for DevSpace 6 runtime variables (`None`: no such key;
    /// the tag is `None` when the image has none yet).
    pub fn runtime(&self, key: &str) -> Option<(String, Option<String>)> {
        let e = self.entries.iter().find(|e| e.key == key)?;
        Some((e.image.clone(), e.tag.as_ref().map(|t| self.tag_text(t))))
    }

    /// `tag`, or `tag@digest` when digests are on and known.
    fn tag_text(&self, tag: &ImageTag) -> String {
        match (&tag.digest, self.use_digests) {
            (Some(digest), true) => format!("{}@{digest}", tag.tag),
            _ => tag.tag.clone(),
        }
    }
}

/// One value that was (or already was) set to a configured image's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The image key that matched.
    pub image_key: String,
    /// 1-based line of the value in the text that was processed.
    pub line: usize,
    /// The value before (as parsed, without quotes).
    pub before: String,
    /// The value written.
    pub after: String,
}

/// The result of [`replace_tags`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replaced {
    /// The text with the values replaced; identical to the input outside them.
    pub text: String,
    /// Every matched value, in document order (also those already carrying the right tag).
    pub replacements: Vec<Replacement>,
    /// Things the user should know (`tag(x)` naming an image without a tag, ...).
    pub warnings: Vec<String>,
}

impl Replaced {
    /// The image keys that matched at least once, in first-match order.
    pub fn matched_images(&self) -> Vec<&str> {
        distinct_image_keys(&self.replacements)
    }
}

/// The image keys of `replacements`, each once, in first-match order.
pub(crate) fn distinct_image_keys<'a>(
    replacements: impl IntoIterator<Item = &'a Replacement>,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = Vec::new();
    for r in replacements {
        if !keys.contains(&r.image_key.as_str()) {
            keys.push(&r.image_key);
        }
    }
    keys
}

/// Replaces image references in `text` (one or more YAML documents) under the rules of `scope`.
pub fn replace_tags(
    text: &str,
    scope: Scope,
    table: &ImageTable,
) -> Result<Replaced, YamlSyntaxError> {
    let documents = yaml::parse_documents(text)?;
    let mut walk = Walk {
        table,
        edits: Vec::new(),
        replacements: Vec::new(),
        warnings: Vec::new(),
    };
    for document in &documents {
        match scope {
            Scope::Manifest => walk.manifest(document),
            Scope::HelmValues => walk.values(document, false),
        }
    }
    Ok(Replaced {
        text: yaml::apply_edits(text, &walk.edits),
        replacements: walk.replacements,
        warnings: walk.warnings,
    })
}

/// Keys whose subtree is never rewritten.
fn excluded_key(key: &str, scope: Scope) -> bool {
    match scope {
        Scope::Manifest => matches!(key, "labels" | "annotations"),
        Scope::HelmValues => {
            matches!(key, "labels" | "annotations" | "env")
                || ["Labels", "Annotations", "Env"]
                    .iter()
                    .any(|suffix| key.len() > suffix.len() && key.ends_with(suffix))
        }
    }
}

struct Walk<'t> {
    table: &'t ImageTable,
    edits: Vec<Edit>,
    replacements: Vec<Replacement>,
    warnings: Vec<String>,
}

impl Walk<'_> {
    fn manifest(&mut self, node: &Node) {
        match &node.value {
            Value::Map(entries) => {
                for (key, value) in entries {
                    match key.name.as_str() {
                        k if excluded_key(k, Scope::Manifest) => {}
                        "image" if matches!(value.value, Value::Scalar { .. }) => self.whole(value),
                        _ => self.manifest(value),
                    }
                }
            }
            Value::Seq(items) => items.iter().for_each(|item| self.manifest(item)),
            Value::Scalar { .. } | Value::Alias => {}
        }
    }

    fn values(&mut self, node: &Node, list_item: bool) {
        match &node.value {
            Value::Map(entries) => {
                let handled = self.split_reference(entries);
                let env_item =
                    list_item && node.get("name").is_some() && node.get("value").is_some();
                for (i, (key, value)) in entries.iter().enumerate() {
                    let key = key.name.as_str();
                    let skip = handled.contains(&i)
                        || excluded_key(key, Scope::HelmValues)
                        || (env_item && key == "value");
                    if !skip {
                        self.values(value, false);
                    }
                }
            }
            Value::Seq(items) => items.iter().for_each(|item| self.values(item, true)),
            Value::Scalar { text, .. } => {
                if !self.helper(node, text) {
                    self.whole(node);
                }
            }
            Value::Alias => {}
        }
    }

    /// Replaces a scalar that is a whole reference to a configured image.
    fn whole(&mut self, node: &Node) {
        let Value::Scalar {
            text: value, style, ..
        } = &node.value
        else {
            return;
        };
        if is_block(*style) {
            return;
        }
        let Some((entry, tag, parsed)) = self.table.lookup(value) else {
            return;
        };
        let after = format!("{}:{}", parsed.name, self.table.tag_text(tag));
        let key = entry.key.clone();
        self.set(node, key, after);
    }

    /// `image(name)` / `tag(name)`; returns whether the value was such a call.
    fn helper(&mut self, node: &Node, value: &str) -> bool {
        let Some((function, argument)) = helper_call(value) else {
            return false;
        };
        let Some(entry) = self.table.by_name(argument) else {
            self.warnings.push(format!(
                "line {}: {value}: no image `{argument}` in the config",
                node.pos.line
            ));
            return true;
        };
        let key = entry.key.clone();
        match function {
            Helper::Image => {
                let image = entry.image.clone();
                self.set(node, key, image);
            }
            Helper::Tag => match &entry.tag {
                Some(tag) => {
                    let tag = tag.tag.clone();
                    self.set(node, key, tag);
                }
                None => self.warnings.push(format!(
                    "line {}: {value}: image `{key}` has no tag yet (build it first)",
                    node.pos.line
                )),
            },
        }
        true
    }

    /// Handles `repository` + `tag` (and `registry`, `digest`) siblings; returns the indices of
    /// the entries it handled so the generic walk leaves them alone.
    fn split_reference(&mut self, entries: &Map) -> Vec<usize> {
        let find = |name: &str| {
            entries.iter().position(|(k, v)| {
                k.name == name
                    && matches!(&v.value, Value::Scalar { style, .. } if !is_block(*style))
            })
        };
        let Some(tag_at) = find("tag") else {
            return Vec::new();
        };
        let registry_at = find("registry");
        let digest_at = find("digest");
        let node_at = |i: usize| entries.get_index(i).map(|(_, v)| v);
        let value_at = |i: usize| {
            node_at(i)
                .and_then(Node::scalar_text)
                .unwrap_or_default()
                .trim()
        };
        let table = self.table;
        for repo_name in ["repository", "image"] {
            let Some(repo_at) = find(repo_name) else {
                continue;
            };
            let repo = value_at(repo_at);
            let with_registry = || {
                let registry = value_at(registry_at?);
                let (entry, tag, _) = table.lookup(&format!("{registry}/{repo}"))?;
                Some((entry, tag, Written::parse(repo)?))
            };
            let Some((entry, tag, parsed)) = table.lookup(repo).or_else(with_registry) else {
                continue;
            };
            let key = entry.key.clone();
            let mut handled = vec![repo_at, tag_at];
            if parsed.reference.tag().is_some() || parsed.reference.digest().is_some() {
                let bare = parsed.name.to_owned();
                self.set_at(node_at(repo_at), key.clone(), bare);
            }
            let digest = tag.digest.as_ref().filter(|_| self.table.use_digests);
            match (digest, digest_at) {
                (Some(digest), Some(digest_at)) => {
                    self.set_at(node_at(tag_at), key.clone(), tag.tag.clone());
                    self.set_at(node_at(digest_at), key, digest.clone());
                    handled.push(digest_at);
                }
                _ => {
                    let text = table.tag_text(tag);
                    self.set_at(node_at(tag_at), key, text);
                }
            }
            handled.extend(registry_at);
            return handled;
        }
        Vec::new()
    }

    /// [`Self::set`] on an entry found by index.
    fn set_at(&mut self, node: Option<&Node>, image_key: String, after: String) {
        if let Some(node) = node {
            self.set(node, image_key, after);
        }
    }

    /// Records a match and, when the value differs, the edit.
    fn set(&mut self, node: &Node, image_key: String, after: String) {
        let Value::Scalar {
            text: value, style, ..
        } = &node.value
        else {
            return;
        };
        if *value != after {
            self.edits.push(Edit {
                span: node.span.clone(),
                style: *style,
                value: after.clone(),
            });
        }
        self.replacements.push(Replacement {
            image_key,
            line: node.pos.line,
            before: value.clone(),
            after,
        });
    }
}

fn is_block(style: ScalarStyle) -> bool {
    matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    Image,
    Tag,
}

/// DevSpace 5.6's `^image\("?'?([^)"']+)"?'?\)$` (and the same for `tag`).
fn helper_call(value: &str) -> Option<(Helper, &str)> {
    let (function, rest) = if let Some(rest) = value.strip_prefix("image(") {
        (Helper::Image, rest)
    } else {
        (Helper::Tag, value.strip_prefix("tag(")?)
    };
    let inner = rest.strip_suffix(')')?;
    let inner = inner.strip_prefix('"').unwrap_or(inner);
    let inner = inner.strip_prefix('\'').unwrap_or(inner);
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let valid = !inner.is_empty() && !inner.contains([')', '"', '\'']);
    valid.then_some((function, inner))
}

#[cfg(test)]
mod tests;
