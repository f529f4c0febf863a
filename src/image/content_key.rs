//! The content key of an image: one SHA-256 that names what an image is made of, the same on
//! every machine, so a build pushed by one checkout can be found by another (the registry
//! content cache) and an image built `FROM` another image of the config can name its base by
//! content rather than by a tag (so a base that only got new tags does not rebuild its
//! dependents). Pure.
//!
//! The key is SHA-256 over a versioned, line-oriented encoding of fixed fields in a fixed
//! order, each a lowercase hex hash or a fixed word (so no two inputs encode alike):
//!
//! ```text
//! devspace-content-key/v1
//! builder docker|kaniko|buildkit
//! dockerfile <dockerfileHash>
//! entrypoint <entrypointHash or empty>
//! context <contextHash>
//! config <imageConfigHash>
//! ```
//!
//! - `dockerfileHash` is the Dockerfile text as it is built (after the entrypoint/cmd/append
//!   overrides), except that every `FROM` naming an image of this config names that image's
//!   own content key ([`from_for_key`]) instead of this run's tag of it;
//! - `contextHash` is the content of the build context after `.dockerignore` (file contents,
//!   modes, symlink targets; never mtimes or absolute paths), also under
//!   `rebuildStrategy: ignoreContextChanges`, which only changes the local decision;
//! - `imageConfigHash` is the image config as [`crate::image::decision::key_fields`] classifies
//!   it (`image:`, build args, target, network, builder options, `dockerfile`/`context`
//!   relative to the project root), without the tags;
//! - the builder kind: images of different builders are not interchangeable as far as this
//!   tool can prove (layer layout, BuildKit features).
//!
//! Deliberately left out, as the local skip decision leaves them out: what a `FROM` names by a
//! tag outside this config (`FROM busybox` is not resolved to a digest: a newer `busybox` is
//! picked up by `--force-build`, not by the key), what `RUN` steps fetch from the network, the
//! Docker/kaniko version, build args without a value (taken from the builder's environment),
//! and everything the key table excludes (where and how it is pushed, the kaniko pod, dev
//! policy, tags).
//!
//! Custom builders have no content key: their command may read anything (tools, environment,
//! files outside `onChange`), so nothing proves that two machines build the same image.

use crate::config::model::BuilderKind;
use crate::image::decision::{BuilderInputs, DecisionInputs, sha256_hex};
use std::fmt;

/// The first line of the encoding; a new encoding gets a new version (and new cache tags).
pub const VERSION: &str = "devspace-content-key/v1";
/// Prefix of the registry tag that records a content key (`devspace-cache-<40 hex>`).
pub const CACHE_TAG_PREFIX: &str = "devspace-cache-";
/// Hex digits of the key in the cache tag (160 bits).
const CACHE_TAG_HEX: usize = 40;

/// The content key of an image (lowercase hex SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentKey(String);

impl ContentKey {
    /// The key of an image built by `builder` from `inputs`; `None` for builders whose output
    /// the key cannot describe (custom, disabled).
    pub fn of(builder: BuilderKind, inputs: &DecisionInputs) -> Option<Self> {
        let kind = match builder {
            BuilderKind::Docker => "docker",
            BuilderKind::Kaniko => "kaniko",
            BuilderKind::BuildKit => "buildkit",
            BuilderKind::Custom | BuilderKind::Disabled => return None,
        };
        let BuilderInputs::Dockerfile {
            dockerfile_hash,
            entrypoint_hash,
            context,
        } = &inputs.builder
        else {
            return None;
        };
        let encoded = format!(
            "{VERSION}\nbuilder {kind}\ndockerfile {dockerfile_hash}\nentrypoint {entrypoint_hash}\ncontext {}\nconfig {}\n",
            context.hash, inputs.image_config_hash
        );
        Some(ContentKey(sha256_hex(encoded)))
    }

    /// The key as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag that records this key in the image's repository: `devspace-cache-` and the
    /// first 40 hex digits (valid tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    pub fn cache_tag(&self) -> String {
        format!("{CACHE_TAG_PREFIX}{}", &self.0[..CACHE_TAG_HEX])
    }

    /// A key given as text (from an earlier job of the same run).
    pub fn from_hex(hex: &str) -> Option<Self> {
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| ContentKey(hex.to_owned()))
    }
}

impl fmt::Display for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a `FROM` naming image `repository` of this config becomes in the text the key hashes:
/// the repository and the base's content key. Never built; only hashed.
pub fn from_for_key(repository: &str, base: &ContentKey) -> String {
    format!("{repository}@devspace-content:{base}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImageConfig;
    use crate::config::model::{BuildConfig, BuildOptions, DockerConfig};
    use indexmap::IndexMap;
    use std::path::{Path, PathBuf};

    fn config(root: &str, tags: &[&str], arg: &str) -> ImageConfig {
        ImageConfig {
            image: "127.0.0.1:5000/team/api".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            dockerfile: PathBuf::from(format!("{root}/api/Dockerfile")),
            context: PathBuf::from(format!("{root}/api")),
            build: BuildConfig {
                docker: Some(DockerConfig {
                    skip_push: Some(false),
                    options: Some(BuildOptions {
                        build_args: IndexMap::from([("SERVICE".into(), Some(arg.into()))]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn key(config: &ImageConfig, root: &str, dockerfile: &str, context: &str) -> ContentKey {
        let inputs = DecisionInputs::new(
            config,
            Path::new(root),
            true,
            BuilderInputs::dockerfile(
                dockerfile,
                None,
                None,
                context.into(),
                vec![("run.sh".into(), context.into())],
            ),
        );
        ContentKey::of(BuilderKind::Docker, &inputs).unwrap()
    }

    #[test]
    fn what_moves_the_key_and_what_does_not() {
        let base = key(&config("/a", &["v1"], "api"), "/a", "FROM busybox\n", "c1");
        let cases: [(&str, ContentKey, bool); 7] = [
            (
                "another clone in another folder",
                key(
                    &config("/home/b/x", &["v1"], "api"),
                    "/home/b/x",
                    "FROM busybox\n",
                    "c1",
                ),
                true,
            ),
            (
                "other tags",
                key(
                    &config("/a", &["v2", "latest"], "api"),
                    "/a",
                    "FROM busybox\n",
                    "c1",
                ),
                true,
            ),
            (
                "tagsAppendRandom",
                key(
                    &ImageConfig {
                        tags_append_random: Some(true),
                        ..config("/a", &["v1"], "api")
                    },
                    "/a",
                    "FROM busybox\n",
                    "c1",
                ),
                true,
            ),
            (
                "a build arg",
                key(&config("/a", &["v1"], "web"), "/a", "FROM busybox\n", "c1"),
                false,
            ),
            (
                "the Dockerfile",
                key(
                    &config("/a", &["v1"], "api"),
                    "/a",
                    "FROM busybox:1\n",
                    "c1",
                ),
                false,
            ),
            (
                "the context",
                key(&config("/a", &["v1"], "api"), "/a", "FROM busybox\n", "c2"),
                false,
            ),
            (
                "the repository",
                key(
                    &ImageConfig {
                        image: "127.0.0.1:5000/team/other".into(),
                        ..config("/a", &["v1"], "api")
                    },
                    "/a",
                    "FROM busybox\n",
                    "c1",
                ),
                false,
            ),
        ];
        for (name, other, same) in cases {
            assert_eq!(other == base, same, "{name}");
        }
    }

    #[test]
    fn builder_kinds_and_custom() {
        let inputs = DecisionInputs::new(
            &config("/a", &["v1"], "api"),
            Path::new("/a"),
            true,
            BuilderInputs::dockerfile("FROM busybox\n", None, None, "c".into(), Vec::new()),
        );
        let docker = ContentKey::of(BuilderKind::Docker, &inputs).unwrap();
        let kaniko = ContentKey::of(BuilderKind::Kaniko, &inputs).unwrap();
        let buildkit = ContentKey::of(BuilderKind::BuildKit, &inputs).unwrap();
        assert_ne!(docker, kaniko);
        assert_ne!(docker, buildkit);
        assert_eq!(ContentKey::of(BuilderKind::Custom, &inputs), None);
        let custom = DecisionInputs::new(
            &config("/a", &["v1"], "api"),
            Path::new("/a"),
            true,
            BuilderInputs::Custom { on_change: None },
        );
        assert_eq!(ContentKey::of(BuilderKind::Docker, &custom), None);
    }

    #[test]
    fn cache_tag_is_a_valid_tag() {
        let key = key(&config("/a", &["v1"], "api"), "/a", "FROM busybox\n", "c1");
        let tag = key.cache_tag();
        assert_eq!(tag.len(), CACHE_TAG_PREFIX.len() + 40);
        assert!(tag.starts_with("devspace-cache-"));
        assert!(crate::image::tag::parse_tag_flag(&tag).is_ok(), "{tag}");
        assert_eq!(ContentKey::from_hex(key.as_str()), Some(key.clone()));
        assert_eq!(ContentKey::from_hex("xyz"), None);
        // Pinned: a change of the encoding must change VERSION (old cache tags then miss).
        let pinned = ContentKey::of(
            BuilderKind::Docker,
            &DecisionInputs {
                image_config_hash: "c".into(),
                image_config_fields: IndexMap::new(),
                tag_fields: IndexMap::new(),
                push: true,
                builder: BuilderInputs::dockerfile_with(
                    "FROM busybox\n",
                    None,
                    None,
                    crate::image::decision::FilesInput::new("ctx".into(), Vec::new()),
                ),
                strategy: Default::default(),
            },
        )
        .unwrap();
        assert_eq!(
            pinned.as_str(),
            sha256_hex(format!(
                "devspace-content-key/v1\nbuilder docker\ndockerfile {}\nentrypoint \ncontext ctx\nconfig c\n",
                sha256_hex("FROM busybox\n")
            ))
        );
    }
}
