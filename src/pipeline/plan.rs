//! From a resolved config and the build flags to the list of image jobs. The plan decides,
//! once per image, everything that does not depend on what the job finds: which builder
//! builds it (Docker API or CLI with its kaniko fallback, kaniko, custom), on which daemon,
//! how it reaches the cluster (push, minikube's daemon, `kind load`), whether it is pushed,
//! whether the registry content cache applies to it, and which other images of the same config it builds `FROM` (so it waits for them), in
//! config order. Reads only Dockerfiles; runs nothing.

use crate::builder::DockerMode;
use crate::config::model::{CustomConfig, KanikoConfig};
use crate::config::{BuilderKind, Config, ImageConfig};
use crate::image::dockerfile;
use crate::kube::local::{ImageDelivery, LocalCluster};
use crate::pipeline::schedule::JobSpec;
use crate::registry::reference::repository_key;
use std::collections::HashMap;

/// A cluster on this machine and whether the `kind` CLI is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    pub cluster: LocalCluster,
    pub kind_installed: bool,
}

/// What the plan needs from the command line.
#[derive(Debug, Clone, Default)]
pub struct PlanSettings {
    /// `-t/--tag`: replaces the configured tags of every image.
    pub tag_override: Vec<String>,
    /// `--skip-push`.
    pub skip_push: bool,
    /// The local cluster deploy/dev deliver to (`None` for `devspace build`, like DevSpace 4,
    /// and for remote clusters).
    pub local: Option<LocalTarget>,
    /// The registry content cache is on (no `--no-registry-cache`, no
    /// `DEVSPACE_NO_REGISTRY_CACHE`).
    pub registry_cache: bool,
}

/// The Docker daemon an image is built with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum DaemonChoice {
    /// The daemon the docker CLI would use (`DOCKER_HOST`, the docker context, the socket).
    #[default]
    Local,
    /// The daemon inside minikube profile `profile` (`minikube docker-env`).
    Minikube { profile: String },
}

/// What happens when the daemon of a Docker image does not answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// Build with kaniko in the cluster (DevSpace's default for the docker builder).
    Kaniko(Box<KanikoConfig>),
    /// `build.docker.disableFallback: true`: fail, and say so.
    Disabled,
    /// No fallback exists (BuildKit).
    None,
}

/// Which builder builds an image, fixed by the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum BuilderChoice {
    /// The Docker daemon `daemon`, through the Engine API or the `docker build` CLI.
    Docker {
        mode: DockerMode,
        daemon: DaemonChoice,
        fallback: Fallback,
    },
    /// A kaniko pod in the cluster (pushes while building).
    Kaniko(Box<KanikoConfig>),
    /// The user's command.
    Custom(CustomConfig),
    /// A configuration this tool cannot build (named in the error).
    Unsupported(String),
}

impl BuilderChoice {
    /// The daemon a built or skipped image of this builder lives in (`None`: no daemon).
    pub fn daemon(&self) -> Option<&DaemonChoice> {
        match self {
            BuilderChoice::Docker { daemon, .. } => Some(daemon),
            _ => None,
        }
    }
}

/// One image to process.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// `images.<key>`.
    pub key: String,
    /// The resolved image config, with `-t/--tag` applied to `tags`.
    pub config: ImageConfig,
    pub builder: BuilderKind,
    /// The builder, its daemon and its fallback.
    pub build: BuilderChoice,
    /// How the image reaches the cluster.
    pub delivery: ImageDelivery,
    /// The local cluster it is delivered to, if any (for the notes that say so).
    pub local: Option<LocalCluster>,
    /// Whether this run pushes it (through the daemon; kaniko pushes while building).
    pub push: bool,
    /// Keys of images of this config that this one's Dockerfile builds on.
    pub depends_on: Vec<String>,
    /// Whether the registry content cache applies: it is on, the image is pushed to a
    /// registry (not `--skip-push`/`skipPush`, not delivered to minikube's daemon or by
    /// `kind load`), and its builder has a content key (not custom).
    pub registry_cache: bool,
}

impl ImagePlan {
    /// The scheduler's view of this plan.
    pub fn job_spec(&self) -> JobSpec {
        JobSpec {
            key: self.key.clone(),
            depends_on: self.depends_on.clone(),
        }
    }

    /// The one line saying how a locally delivered image reached its cluster; `None` when
    /// pushed.
    pub fn delivery_note(&self, built: bool) -> Option<String> {
        delivery_note(self.local.as_ref()?, &self.delivery, built)
    }
}

/// How the image reaches the cluster: only daemon builds can skip the registry (kaniko
/// pushes while building; custom builds are the user's business).
fn delivery(image: &ImageConfig, kind: BuilderKind, local: Option<&LocalTarget>) -> ImageDelivery {
    let Some(local) = local else {
        return ImageDelivery::Push;
    };
    let build = &image.build;
    let prefer_minikube = match kind {
        BuilderKind::Docker => build.docker.as_ref().and_then(|d| d.prefer_minikube),
        BuilderKind::BuildKit => build.build_kit.as_ref().and_then(|b| b.prefer_minikube),
        _ => return ImageDelivery::Push,
    };
    local
        .cluster
        .delivery(prefer_minikube != Some(false), local.kind_installed)
}

/// The one line saying how a locally delivered image reached `cluster`; `None` when pushed.
fn delivery_note(cluster: &LocalCluster, delivery: &ImageDelivery, built: bool) -> Option<String> {
    let text = match (cluster, delivery, built) {
        (_, ImageDelivery::Push, _) => return None,
        (LocalCluster::Minikube { profile }, _, true) => {
            format!(
                "minikube profile \"{profile}\": built with its Docker daemon instead of pushing"
            )
        }
        (LocalCluster::Minikube { profile }, _, false) => {
            format!("minikube profile \"{profile}\": image found in its Docker daemon; not pushed")
        }
        (LocalCluster::Kind { cluster }, ImageDelivery::KindLoad { .. }, true) => {
            format!("kind cluster \"{cluster}\": loaded image into the nodes instead of pushing")
        }
        (LocalCluster::Kind { cluster }, _, false) => {
            format!(
                "kind cluster \"{cluster}\": image unchanged; not pushed (loaded into the nodes when built)"
            )
        }
        (cluster, _, _) => format!("{cluster}: shares the local Docker daemon; not pushed"),
    };
    Some(text)
}

/// Whether this image is pushed in this run (before the delivery is considered).
fn wants_push(image: &ImageConfig, kind: BuilderKind, skip_push: bool) -> bool {
    // Kaniko pushes as part of the build: the registry is the only place its image exists.
    kind == BuilderKind::Kaniko
        || (kind != BuilderKind::Custom
            && !skip_push
            && image.build.docker.as_ref().and_then(|d| d.skip_push) != Some(true)
            && image.build.build_kit.as_ref().and_then(|b| b.skip_push) != Some(true))
}

/// The builder of `image`, built with kind `kind` and delivered as `delivery`.
fn builder_choice(
    image: &ImageConfig,
    kind: BuilderKind,
    delivery: &ImageDelivery,
    local: Option<&LocalTarget>,
) -> BuilderChoice {
    let daemon = match (local.map(|l| &l.cluster), delivery) {
        (Some(LocalCluster::Minikube { profile }), ImageDelivery::SharedDaemon) => {
            DaemonChoice::Minikube {
                profile: profile.clone(),
            }
        }
        _ => DaemonChoice::Local,
    };
    match kind {
        BuilderKind::Custom => {
            BuilderChoice::Custom(image.build.custom.clone().unwrap_or_default())
        }
        BuilderKind::Kaniko => {
            BuilderChoice::Kaniko(Box::new(image.build.kaniko.clone().unwrap_or_default()))
        }
        BuilderKind::BuildKit => {
            let bk = image.build.build_kit.clone().unwrap_or_default();
            if bk.in_cluster.is_some() {
                return BuilderChoice::Unsupported(
                    "build.buildKit.inCluster is not supported".into(),
                );
            }
            BuilderChoice::Docker {
                mode: DockerMode::Cli {
                    buildkit: true,
                    args: bk.args,
                },
                daemon,
                fallback: Fallback::None,
            }
        }
        BuilderKind::Docker | BuilderKind::Disabled => {
            let docker = image.build.docker.as_ref();
            let fallback = if docker.and_then(|d| d.disable_fallback) == Some(true) {
                Fallback::Disabled
            } else {
                Fallback::Kaniko(Box::new(crate::builder::kaniko::fallback_config(image)))
            };
            BuilderChoice::Docker {
                mode: DockerMode::for_config(docker),
                daemon,
                fallback,
            }
        }
    }
}

/// Plans every image of `config` in config order. A Dockerfile that cannot be read yields no
/// dependencies here; the image's job reports the error.
pub fn plan(config: &Config, settings: &PlanSettings) -> Vec<ImagePlan> {
    let tag_override = &settings.tag_override;
    let by_repo: HashMap<String, &str> = config
        .images
        .iter()
        .map(|(k, i)| (repository_key(&i.image), k.as_str()))
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
                        .filter_map(|r| by_repo.get(&repository_key(r)).copied())
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
            let local = settings.local.as_ref();
            let delivery = delivery(&image, builder, local);
            let push =
                wants_push(&image, builder, settings.skip_push) && delivery == ImageDelivery::Push;
            let registry_cache = settings.registry_cache
                && push
                && matches!(
                    builder,
                    BuilderKind::Docker | BuilderKind::Kaniko | BuilderKind::BuildKit
                );
            ImagePlan {
                key: key.clone(),
                registry_cache,
                build: builder_choice(&image, builder, &delivery, local),
                local: local.map(|l| l.cluster.clone()),
                config: image,
                builder,
                delivery,
                push,
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
        let plans = plan(
            &config,
            &PlanSettings {
                tag_override: vec!["v1".into()],
                ..PlanSettings::default()
            },
        );
        assert_eq!(plans[0].key, "app");
        assert_eq!(plans[0].depends_on, vec!["base"]);
        assert!(plans[1].depends_on.is_empty());
        assert_eq!(plans[0].config.tags, vec!["v1"]);
    }

    use crate::config::model::{BuildKitConfig, DockerConfig as DockerBuildConfig};

    fn image_plan(builder: BuilderKind, prefer_minikube: Option<bool>) -> ImagePlan {
        let mut config = ImageConfig::default();
        match builder {
            BuilderKind::BuildKit => {
                config.build.build_kit = Some(BuildKitConfig {
                    prefer_minikube,
                    ..BuildKitConfig::default()
                })
            }
            BuilderKind::Kaniko => config.build.kaniko = Some(KanikoConfig::default()),
            BuilderKind::Custom => config.build.custom = Some(CustomConfig::default()),
            _ => {
                config.build.docker = Some(DockerBuildConfig {
                    prefer_minikube,
                    ..DockerBuildConfig::default()
                })
            }
        }
        let mut config_all = Config::default();
        config_all.images.insert("app".into(), config);
        plan(&config_all, &PlanSettings::default()).remove(0)
    }

    fn minikube() -> LocalCluster {
        LocalCluster::Minikube {
            profile: "minikube".into(),
        }
    }

    fn kind() -> LocalCluster {
        LocalCluster::Kind {
            cluster: "dev".into(),
        }
    }

    #[test]
    fn delivery_per_image() {
        let kind_load = ImageDelivery::KindLoad {
            cluster: "dev".into(),
        };
        let cases = [
            // (cluster, kind installed, builder, preferMinikube, expected)
            (None, true, BuilderKind::Docker, None, ImageDelivery::Push),
            (
                Some(minikube()),
                false,
                BuilderKind::Docker,
                None,
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Docker,
                Some(true),
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Docker,
                Some(false),
                ImageDelivery::Push,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::BuildKit,
                None,
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::BuildKit,
                Some(false),
                ImageDelivery::Push,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Kaniko,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(minikube()),
                false,
                BuilderKind::Custom,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(kind()),
                true,
                BuilderKind::Docker,
                None,
                kind_load.clone(),
            ),
            (
                Some(kind()),
                false,
                BuilderKind::Docker,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(kind()),
                true,
                BuilderKind::Kaniko,
                None,
                ImageDelivery::Push,
            ),
            (
                Some(LocalCluster::DockerDesktop),
                false,
                BuilderKind::Docker,
                None,
                ImageDelivery::SharedDaemon,
            ),
            (
                Some(LocalCluster::K3d {
                    cluster: "x".into(),
                }),
                true,
                BuilderKind::Docker,
                None,
                ImageDelivery::Push,
            ),
        ];
        for (cluster, kind_installed, builder, prefer, expected) in cases {
            let image = image_plan(builder, prefer);
            let local = cluster.clone().map(|cluster| LocalTarget {
                cluster,
                kind_installed,
            });
            let got = delivery(&image.config, image.builder, local.as_ref());
            assert_eq!(
                got, expected,
                "{cluster:?} kind={kind_installed} {builder:?} {prefer:?}"
            );
        }
    }

    #[test]
    fn push_is_skipped_only_for_local_delivery() {
        let mut config = Config::default();
        config
            .images
            .insert("app".into(), image_plan(BuilderKind::Docker, None).config);
        let pushes = |local: Option<LocalTarget>| {
            plan(
                &config,
                &PlanSettings {
                    local,
                    ..PlanSettings::default()
                },
            )[0]
            .push
        };
        assert!(!pushes(Some(LocalTarget {
            cluster: kind(),
            kind_installed: true
        })));
        assert!(pushes(None));
    }

    #[test]
    fn the_registry_cache_applies_only_to_pushed_images_with_a_content_key() {
        let with = |builder: BuilderKind, settings: PlanSettings| {
            let mut config = Config::default();
            config
                .images
                .insert("app".into(), image_plan(builder, None).config);
            plan(&config, &settings).remove(0).registry_cache
        };
        let on = PlanSettings {
            registry_cache: true,
            ..PlanSettings::default()
        };
        assert!(with(BuilderKind::Docker, on.clone()));
        assert!(with(BuilderKind::Kaniko, on.clone()));
        assert!(with(BuilderKind::BuildKit, on.clone()));
        assert!(
            !with(BuilderKind::Custom, on.clone()),
            "custom: no content key"
        );
        assert!(
            !with(BuilderKind::Docker, PlanSettings::default()),
            "turned off"
        );
        let skip_push = PlanSettings {
            skip_push: true,
            ..on.clone()
        };
        assert!(!with(BuilderKind::Docker, skip_push));
        let kind_load = PlanSettings {
            local: Some(LocalTarget {
                cluster: kind(),
                kind_installed: true,
            }),
            ..on
        };
        assert!(
            !with(BuilderKind::Docker, kind_load),
            "kind load: not pushed"
        );
    }

    #[test]
    fn delivery_notes() {
        let kind_load = ImageDelivery::KindLoad {
            cluster: "dev".into(),
        };
        let cases = [
            (kind(), ImageDelivery::Push, true, None),
            (
                kind(),
                kind_load.clone(),
                true,
                Some(r#"kind cluster "dev": loaded image into the nodes instead of pushing"#),
            ),
            (
                kind(),
                kind_load,
                false,
                Some(
                    r#"kind cluster "dev": image unchanged; not pushed (loaded into the nodes when built)"#,
                ),
            ),
            (
                minikube(),
                ImageDelivery::SharedDaemon,
                true,
                Some(
                    r#"minikube profile "minikube": built with its Docker daemon instead of pushing"#,
                ),
            ),
            (
                minikube(),
                ImageDelivery::SharedDaemon,
                false,
                Some(
                    r#"minikube profile "minikube": image found in its Docker daemon; not pushed"#,
                ),
            ),
            (
                LocalCluster::DockerDesktop,
                ImageDelivery::SharedDaemon,
                true,
                Some("Docker Desktop: shares the local Docker daemon; not pushed"),
            ),
        ];
        for (cluster, delivery, built, expected) in cases {
            assert_eq!(
                delivery_note(&cluster, &delivery, built).as_deref(),
                expected,
                "{cluster:?} {delivery:?} built={built}"
            );
        }
    }

    #[test]
    fn the_plan_fixes_builder_daemon_and_fallback() {
        let docker = image_plan(BuilderKind::Docker, None);
        assert_eq!(
            docker.build,
            BuilderChoice::Docker {
                mode: DockerMode::Api,
                daemon: DaemonChoice::Local,
                fallback: Fallback::Kaniko(Box::new(crate::builder::kaniko::fallback_config(
                    &docker.config
                ))),
            }
        );
        let mut config = Config::default();
        let mut image = image_plan(BuilderKind::Docker, None).config;
        image.build.docker.as_mut().unwrap().disable_fallback = Some(true);
        config.images.insert("app".into(), image);
        let minikube_local = PlanSettings {
            local: Some(LocalTarget {
                cluster: minikube(),
                kind_installed: false,
            }),
            ..PlanSettings::default()
        };
        let planned = plan(&config, &minikube_local).remove(0);
        assert_eq!(
            planned.build,
            BuilderChoice::Docker {
                mode: DockerMode::Api,
                daemon: DaemonChoice::Minikube {
                    profile: "minikube".into()
                },
                fallback: Fallback::Disabled,
            }
        );
        assert!(!planned.push);
        assert!(matches!(
            image_plan(BuilderKind::BuildKit, None).build,
            BuilderChoice::Docker {
                mode: DockerMode::Cli { buildkit: true, .. },
                fallback: Fallback::None,
                ..
            }
        ));
        assert!(matches!(
            image_plan(BuilderKind::Kaniko, None).build,
            BuilderChoice::Kaniko(_)
        ));
        assert!(image_plan(BuilderKind::Kaniko, None).push);
        assert!(!image_plan(BuilderKind::Custom, None).push);
    }
}
