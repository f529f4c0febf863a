//! A fake [`Services`]: daemons, cluster, registry and builders in memory, recording what
//! the job asked for. Used by the job's table tests (`job::tests`); the dispatcher's tests
//! (`pipeline::dispatch::tests`) need no services: they feed it events directly.

use crate::builder::docker::DockerEndpoint;
use crate::builder::{
    BuildError, BuildEvent, BuildOutcome, BuildRequest, ContextBody, DaemonError, EventSink,
    ImageBuilder, PushRequest,
};
use crate::kube::KubeError;
use crate::pipeline::error::ImageError;
use crate::pipeline::plan::{BuilderChoice, DaemonChoice, ImagePlan};
use crate::pipeline::services::{ReadyBuilder, Services};
use crate::registry::client::Lookup;
use crate::registry::reference::{Reference, Registry};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The digest of every image the fake registry holds.
pub const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What the fake world looks like and what happened in it.
#[derive(Default)]
pub struct World {
    pub daemon_down: bool,
    pub cluster_down: bool,
    /// References the local daemon has.
    pub local: HashSet<String>,
    /// References the registry has.
    pub registry: HashSet<String>,
    /// Image keys whose build fails.
    pub failing: HashSet<String>,
    /// Image keys whose next builds fail with the daemon's cache-lookup race, and how often.
    pub cache_races: HashMap<String, u32>,
    /// (builder, image key) per build.
    pub builds: Vec<(String, String)>,
    /// References pushed.
    pub pushes: Vec<String>,
    pub kind_loads: Vec<String>,
    /// Registry-side tags: (source, new reference).
    pub registry_tags: Vec<(String, String)>,
    /// Daemon tags: (source, new reference).
    pub daemon_tags: Vec<(String, String)>,
    /// Registry cache lookups (references asked for).
    pub lookups: Vec<String>,
    /// References the registry has but that are no image manifest (a list, a missing
    /// blob), with the reason.
    pub unusable: HashMap<String, String>,
    /// The registry refuses cache lookups and registry-side tags (403).
    pub registry_refuses: bool,
    /// Registry-side tags wait until cancelled (to interrupt a retag midway).
    pub registry_tag_hangs: bool,
}

#[derive(Default, Clone)]
pub struct FakeServices(pub Arc<Mutex<World>>);

impl FakeServices {
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    fn daemon_error() -> ImageError {
        ImageError::Daemon(Arc::new(DaemonError::Unreachable {
            endpoint: Box::new(DockerEndpoint::from_host("tcp://127.0.0.1:1")),
            reason: "connection refused".into(),
        }))
    }

    fn refused() -> ImageError {
        ImageError::Registry(crate::registry::client::RegistryError::Unauthorized {
            registry: Registry::from_domain("127.0.0.1:5000"),
            status: 403,
            user: None,
            detail: "denied".into(),
        })
    }

    /// `repository:tag` of a reference the fake knows by tag, or any tag of its
    /// repository for a digest (every image here has one digest, [`DIGEST`]).
    fn resolve(world: &World, reference: &Reference) -> Option<String> {
        let repo = reference.name();
        match (reference.digest(), reference.tag()) {
            (Some(_), _) => world
                .registry
                .iter()
                .find(|r| r.rsplit_once(':').is_some_and(|(name, _)| name == repo))
                .cloned(),
            (None, tag) => {
                let text = format!("{repo}:{}", tag.unwrap_or("latest"));
                world.registry.contains(&text).then_some(text)
            }
        }
    }

    fn cluster_error() -> ImageError {
        ImageError::Kube(Arc::new(KubeError::NoKubeconfig {
            location: "/nonexistent".into(),
            message: "no such file".into(),
        }))
    }
}

struct FakeBuilder {
    kind: &'static str,
    world: Arc<Mutex<World>>,
}

impl ImageBuilder for FakeBuilder {
    fn needs_context(&self) -> bool {
        self.kind != "custom"
    }

    fn build<'a>(
        &'a self,
        request: &'a BuildRequest,
        _context: Option<ContextBody>,
        events: &'a EventSink,
        _cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<BuildOutcome, BuildError>> {
        async move {
            let mut world = self.world.lock().unwrap();
            world
                .builds
                .push((self.kind.to_string(), request.image_key.clone()));
            events.emit(BuildEvent::Log(format!("{} building", self.kind)));
            if let Some(left) = world.cache_races.get_mut(&request.image_key)
                && *left > 0
            {
                *left -= 1;
                return Err(BuildError::Failed {
                    image: request.image_key.clone(),
                    message: "unable to find image \"sha256:9c14db850bd7617b29543986113e194c97ee7fe94981e1707aba99ae951a3c0f\"".into(),
                    last_lines: vec![" ---> a60676eb5142".into()],
                });
            }
            if world.failing.contains(&request.image_key) {
                return Err(BuildError::Failed {
                    image: request.image_key.clone(),
                    message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
                    last_lines: vec!["Step 2/2 : RUN exit 3".into()],
                });
            }
            let pushed = self.kind == "kaniko";
            for r in request.references() {
                if pushed {
                    world.registry.insert(r.clone());
                } else {
                    world.local.insert(r);
                }
            }
            Ok(BuildOutcome {
                image_id: None,
                references: request.references(),
                pushed,
                digest: pushed.then(|| "sha256:kaniko".to_string()),
            })
        }
        .boxed()
    }
}

impl Services for FakeServices {
    fn builder<'a>(
        &'a self,
        _plan: &'a ImagePlan,
        choice: &'a BuilderChoice,
    ) -> BoxFuture<'a, Result<ReadyBuilder, ImageError>> {
        async move {
            let world = self.world();
            let (kind, location) = match choice {
                BuilderChoice::Docker { .. } if world.daemon_down => {
                    return Err(Self::daemon_error());
                }
                BuilderChoice::Docker { .. } => ("docker", None),
                BuilderChoice::Kaniko(_) if world.cluster_down => {
                    return Err(Self::cluster_error());
                }
                BuilderChoice::Kaniko(_) => {
                    ("kaniko", Some("namespace default (context fake)".into()))
                }
                BuilderChoice::Custom(_) => ("custom", None),
                BuilderChoice::Unsupported(what) => {
                    return Err(ImageError::Unsupported(what.clone()));
                }
            };
            Ok(ReadyBuilder {
                builder: Box::new(FakeBuilder {
                    kind,
                    world: self.0.clone(),
                }),
                location,
            })
        }
        .boxed()
    }

    fn image_exists<'a>(
        &'a self,
        _daemon: &'a DaemonChoice,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<bool, ImageError>> {
        async move {
            let world = self.world();
            if world.daemon_down {
                return Err(Self::daemon_error());
            }
            Ok(world.local.contains(reference))
        }
        .boxed()
    }

    fn registry_has<'a>(
        &'a self,
        reference: &'a Reference,
        _daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<bool, ImageError>> {
        async move {
            let text = format!("{}:{}", reference.name(), reference.tag().unwrap_or(""));
            Ok(self
                .world()
                .registry
                .iter()
                .any(|r| *r == text || text.ends_with(r.as_str())))
        }
        .boxed()
    }

    fn push<'a>(
        &'a self,
        _daemon: &'a DaemonChoice,
        request: PushRequest,
        _events: &'a EventSink,
        _cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Option<String>, ImageError>> {
        async move {
            let mut world = self.world();
            if world.daemon_down {
                return Err(Self::daemon_error());
            }
            for t in &request.tags {
                let r = format!("{}:{t}", request.repository);
                world.pushes.push(r.clone());
                world.registry.insert(r);
            }
            Ok(Some(DIGEST.into()))
        }
        .boxed()
    }

    fn kind_load<'a>(
        &'a self,
        references: &'a [String],
        _cluster: &'a str,
    ) -> BoxFuture<'a, Result<(), ImageError>> {
        async move {
            self.world().kind_loads.extend(references.iter().cloned());
            Ok(())
        }
        .boxed()
    }

    fn tag_image<'a>(
        &'a self,
        _daemon: &'a DaemonChoice,
        source: &'a str,
        repository: &'a str,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<(), ImageError>> {
        async move {
            let mut world = self.world();
            assert!(world.local.contains(source), "tag of a missing {source}");
            for tag in tags {
                let target = format!("{repository}:{tag}");
                world.daemon_tags.push((source.to_owned(), target.clone()));
                world.local.insert(target);
            }
            Ok(())
        }
        .boxed()
    }

    fn registry_lookup<'a>(
        &'a self,
        reference: &'a Reference,
        _daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<Lookup, ImageError>> {
        async move {
            let mut world = self.world();
            world.lookups.push(reference.to_string());
            if world.registry_refuses {
                return Err(Self::refused());
            }
            let Some(found) = Self::resolve(&world, reference) else {
                return Ok(Lookup::Missing);
            };
            if let Some(why) = world.unusable.get(&found) {
                return Ok(Lookup::Unusable(why.clone()));
            }
            Ok(Lookup::Found(crate::registry::client::Manifest {
                digest: DIGEST.into(),
                media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                bytes: Default::default(),
                body: serde_json::Value::Null,
            }))
        }
        .boxed()
    }

    fn registry_tag<'a>(
        &'a self,
        source: &'a Reference,
        tags: &'a [String],
        _daemon: Option<&'a DaemonChoice>,
    ) -> BoxFuture<'a, Result<String, ImageError>> {
        async move {
            if self.world().registry_tag_hangs {
                futures_util::future::pending::<()>().await;
            }
            let mut world = self.world();
            if world.registry_refuses {
                return Err(Self::refused());
            }
            let Some(found) = Self::resolve(&world, source) else {
                return Err(ImageError::ManifestMissing {
                    reference: source.to_string(),
                });
            };
            for tag in tags {
                let target = format!("{}:{tag}", source.name());
                world.registry_tags.push((found.clone(), target.clone()));
                world.registry.insert(target);
            }
            Ok(DIGEST.into())
        }
        .boxed()
    }
}
