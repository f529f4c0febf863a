//! From a resolved config and the build flags to the list of image jobs: which builder, which
//! other images of the same config each one builds `FROM` (so it waits for them), in config
//! order. Reads only Dockerfiles; runs nothing.

use crate::build::dockerfile;
use crate::config::{BuilderKind, Config, ImageConfig};
use crate::pipeline::schedule::JobSpec;
use std::collections::HashMap;

/// One image to process.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// `images.<key>`.
    pub key: String,
    /// The resolved image config, with `-t/--tag` applied to `tags`.
    pub config: ImageConfig,
    pub builder: BuilderKind,
    /// Keys of images of this config that this one's Dockerfile builds on.
    pub depends_on: Vec<String>,
}

impl ImagePlan {
    /// The scheduler's view of this plan.
    pub fn job_spec(&self) -> JobSpec {
        JobSpec {
            key: self.key.clone(),
            depends_on: self.depends_on.clone(),
        }
    }
}

/// Docker Hub spellings compare equal (`docker.io/library/x` = `x`), tags are ignored.
fn repo_key(reference: &str) -> String {
    let repo = dockerfile::repository_of(reference).to_ascii_lowercase();
    let rest = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(&repo);
    rest.strip_prefix("library/").unwrap_or(rest).to_string()
}

/// Plans every image of `config` in config order. `tag_override` (from `-t/--tag`) replaces
/// the configured tags of every image. A Dockerfile that cannot be read yields no
/// dependencies here; the image's job reports the error.
pub fn plan(config: &Config, tag_override: &[String]) -> Vec<ImagePlan> {
    let by_repo: HashMap<String, &str> = config
        .images
        .iter()
        .map(|(k, i)| (repo_key(&i.image), k.as_str()))
        .collect();
    config
        .images
        .iter()
        .map(|(key, image)| {
            let mut image = image.clone();
            if !tag_override.is_empty() {
                image.tags = tag_override.to_vec();
            }
            let builder = image.builder_kind();
            let depends_on = match builder {
                BuilderKind::Docker | BuilderKind::Kaniko => {
                    std::fs::read_to_string(&image.dockerfile)
                        .ok()
                        .and_then(|text| {
                            let args = image
                                .options()
                                .map(|o| o.build_args.clone())
                                .unwrap_or_default();
                            dockerfile::from_references(&image.dockerfile, &text, &args).ok()
                        })
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|r| by_repo.get(&repo_key(r)).copied())
                        .filter(|k| *k != key)
                        .map(str::to_string)
                        .fold(Vec::new(), |mut acc, k| {
                            if !acc.contains(&k) {
                                acc.push(k);
                            }
                            acc
                        })
                }
                _ => Vec::new(),
            };
            ImagePlan {
                key: key.clone(),
                config: image,
                builder,
                depends_on,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_built_from_other_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(
            dir.path().join("app.Dockerfile"),
            "FROM docker.io/library/demo-base:old AS b\nFROM b\nCOPY --from=busybox / /\n",
        )
        .unwrap();
        let mut config = Config::default();
        for (key, image, df) in [
            ("app", "demo-app", "app.Dockerfile"),
            ("base", "demo-base", "base.Dockerfile"),
        ] {
            config.images.insert(
                key.into(),
                ImageConfig {
                    image: image.into(),
                    dockerfile: dir.path().join(df),
                    context: dir.path().into(),
                    ..Default::default()
                },
            );
        }
        let plans = plan(&config, &["v1".into()]);
        assert_eq!(plans[0].key, "app");
        assert_eq!(plans[0].depends_on, vec!["base"]);
        assert!(plans[1].depends_on.is_empty());
        assert_eq!(plans[0].config.tags, vec!["v1"]);
    }
}
