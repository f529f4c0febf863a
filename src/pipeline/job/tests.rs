//! The job's table tests: [`run_image`] over the in-memory [`FakeServices`], one project
//! in a temporary directory, every step from prepare to the registry record.

use super::fakes::FakeServices;
use super::*;
use crate::config::model::{DockerConfig as DockerBuildConfig, KanikoConfig};
use crate::config::{Config, ImageConfig};
use crate::diagnostic::Diagnostic;
use crate::exit::ExitCode;
use crate::image::cache::Cache;
use crate::image::decision::{PushReason, Reason};
use crate::kube::local::LocalCluster;
use crate::pipeline::events::Event;
use crate::pipeline::plan::{LocalTarget, PlanSettings, plan};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A project with one image `app` (FROM busybox, one file), optionally `base` too.
struct Project {
    dir: tempfile::TempDir,
    config: Config,
}

impl Project {
    fn new(with_base: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(
            root.join("app/Dockerfile"),
            "FROM 127.0.0.1:5000/demo-base\nCOPY . /\n",
        )
        .unwrap();
        std::fs::write(root.join("app/main.sh"), "echo hi\n").unwrap();
        let mut config = Config::default();
        if with_base {
            std::fs::create_dir_all(root.join("base")).unwrap();
            std::fs::write(root.join("base/Dockerfile"), "FROM busybox\n").unwrap();
            config.images.insert(
                "base".into(),
                ImageConfig {
                    image: "127.0.0.1:5000/demo-base".into(),
                    tags: vec!["b1".into()],
                    dockerfile: root.join("base/Dockerfile"),
                    context: root.join("base"),
                    ..Default::default()
                },
            );
        }
        config.images.insert(
            "app".into(),
            ImageConfig {
                image: "127.0.0.1:5000/demo-app".into(),
                tags: vec!["v1".into()],
                dockerfile: root.join("app/Dockerfile"),
                context: root.join("app"),
                ..Default::default()
            },
        );
        Project { dir, config }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn image(&mut self, key: &str) -> &mut ImageConfig {
        self.config.images.get_mut(key).unwrap()
    }

    /// Runs the image jobs in config order (dependencies first), like the scheduler.
    async fn run(
        &self,
        services: &FakeServices,
        settings: JobSettings,
        plan_settings: PlanSettings,
    ) -> (
        IndexMap<String, Result<ImageSuccess, ImageError>>,
        Vec<Event>,
    ) {
        self.run_until(services, settings, plan_settings, CancellationToken::new())
            .await
    }

    /// [`Project::run`] with a cancellation token (Ctrl-C).
    async fn run_until(
        &self,
        services: &FakeServices,
        settings: JobSettings,
        plan_settings: PlanSettings,
        cancel: CancellationToken,
    ) -> (
        IndexMap<String, Result<ImageSuccess, ImageError>>,
        Vec<Event>,
    ) {
        let ctx = JobContext::new(
            JobSettings {
                root: self.root(),
                ..settings
            },
            Cache::open(&self.root()),
            Arc::new(services.clone()),
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut plans = plan(&self.config, &plan_settings);
        plans.sort_by_key(|p| p.depends_on.len());
        let mut results = IndexMap::new();
        let mut done: IndexMap<String, (String, ImageSuccess)> = IndexMap::new();
        for p in &plans {
            let deps = done
                .iter()
                .filter(|(k, _)| p.depends_on.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let emit = Emitter::new(&p.key, tx.clone());
            let res = run_image(&ctx, p, &deps, &emit, &cancel).await;
            if let Ok(s) = &res {
                done.insert(p.key.clone(), (p.config.image.clone(), s.clone()));
            }
            results.insert(p.key.clone(), res);
        }
        drop(tx);
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        (results, events)
    }
}

fn pushing() -> JobSettings {
    JobSettings::default()
}

fn ok(r: &Result<ImageSuccess, ImageError>) -> &ImageSuccess {
    r.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

fn err(r: &Result<ImageSuccess, ImageError>) -> &ImageError {
    match r {
        Ok(s) => panic!("expected a failure, got {s:?}"),
        Err(e) => e,
    }
}

fn notes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            ImageEvent::Note(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn build_push_then_skip_after_verifying() {
    let project = Project::new(false);
    let services = FakeServices::default();
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    let app = ok(&r["app"]);
    assert_eq!(app.status, Status::Built);
    assert_eq!(app.decision, Decision::Rebuild(Reason::NeverBuilt));
    assert_eq!(app.tags, ["v1"]);
    assert!(app.pushed);
    assert_eq!(services.world().pushes, ["127.0.0.1:5000/demo-app:v1"]);

    let (r, events) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    let app = ok(&r["app"]);
    assert_eq!(app.status, Status::Skipped);
    assert_eq!(app.decision, Decision::Skip);
    assert_eq!(app.tags, ["v1"]);
    assert_eq!(app.digest.as_deref(), Some(fakes::DIGEST));
    assert!(
        events
            .iter()
            .any(|e| e.kind == ImageEvent::Stage(Stage::Verifying))
    );
    assert_eq!(services.world().builds.len(), 1, "built once");
}

#[tokio::test]
async fn verification_table() {
    // (name, in registry, in daemon, skip push, expected decision, status)
    let cases = [
        (
            "present",
            true,
            true,
            false,
            Decision::Skip,
            Status::Skipped,
        ),
        (
            "registry lost it, daemon has it",
            false,
            true,
            false,
            Decision::PushOnly(PushReason::MissingInRegistry),
            Status::Pushed,
        ),
        (
            "gone everywhere",
            false,
            false,
            false,
            Decision::Rebuild(Reason::MissingInRegistry),
            Status::Built,
        ),
        (
            "not pushing, daemon lost it",
            true,
            false,
            true,
            Decision::Rebuild(Reason::MissingInDaemon),
            Status::Built,
        ),
        (
            "not pushing, daemon has it",
            false,
            true,
            true,
            Decision::PushOnly(PushReason::NotPushedYet),
            Status::Pushed,
        ),
    ];
    for (name, in_registry, in_daemon, skip_push, want, status) in cases {
        let project = Project::new(false);
        let services = FakeServices::default();
        // The first build records the image (pushed unless skip_push).
        let first = JobSettings {
            skip_push,
            ..JobSettings::default()
        };
        let plan_settings = PlanSettings {
            skip_push,
            ..PlanSettings::default()
        };
        project.run(&services, first, plan_settings.clone()).await;
        {
            let mut world = services.world();
            world.registry.clear();
            world.local.clear();
            if in_registry {
                world.registry.insert("127.0.0.1:5000/demo-app:v1".into());
            }
            if in_daemon {
                world.local.insert("127.0.0.1:5000/demo-app:v1".into());
            }
        }
        // "not pushing, daemon has it": the second run pushes what the first did not.
        let (second, second_plan) = if name == "not pushing, daemon has it" {
            (pushing(), PlanSettings::default())
        } else {
            (
                JobSettings {
                    skip_push,
                    ..JobSettings::default()
                },
                plan_settings,
            )
        };
        let (r, _) = project.run(&services, second, second_plan).await;
        let app = ok(&r["app"]);
        assert_eq!(app.decision, want, "{name}");
        assert_eq!(app.status, status, "{name}");
    }
}

#[tokio::test]
async fn base_rebuilt_rebuilds_dependents() {
    let project = Project::new(true);
    let services = FakeServices::default();
    project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    std::fs::write(project.root().join("base/Dockerfile"), "FROM busybox:1\n").unwrap();
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    assert_eq!(
        ok(&r["base"]).decision,
        Decision::Rebuild(Reason::DockerfileChanged)
    );
    assert_eq!(
        ok(&r["app"]).decision,
        Decision::Rebuild(Reason::BaseRebuilt {
            image: "base".into()
        })
    );
}

#[tokio::test]
async fn daemon_down_falls_back_to_kaniko() {
    let project = Project::new(false);
    let services = FakeServices::default();
    services.world().daemon_down = true;
    let settings = JobSettings {
        skip_push: true,
        ..JobSettings::default()
    };
    let (r, events) = project
        .run(&services, settings, PlanSettings::default())
        .await;
    let app = ok(&r["app"]);
    assert_eq!(app.status, Status::Built);
    assert!(app.pushed, "kaniko pushes while building");
    assert_eq!(app.digest.as_deref(), Some("sha256:kaniko"));
    assert_eq!(services.world().builds, [("kaniko".into(), "app".into())]);
    assert!(services.world().pushes.is_empty(), "no second push");
    assert_eq!(
        notes(&events),
        [
            "Docker daemon not reachable at tcp://127.0.0.1:1: building with kaniko in namespace default (context fake)",
            "kaniko pushes as part of the build: --skip-push does not apply",
        ]
    );
}

#[tokio::test]
async fn environment_failures_are_typed() {
    // No daemon, no cluster: both named, exit 4, an environment cause.
    let project = Project::new(false);
    let services = FakeServices::default();
    services.world().daemon_down = true;
    services.world().cluster_down = true;
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    let e = err(&r["app"]);
    assert!(matches!(e, ImageError::NoDaemonNoCluster { .. }), "{e:?}");
    assert_eq!(e.exit_code(), ExitCode::Unreachable);
    assert!(e.is_environment());
    let text = e.to_string();
    assert!(
        text.contains("cannot reach the Docker daemon at tcp://127.0.0.1:1"),
        "{text}"
    );
    assert!(
        text.contains("the kaniko fallback failed too: cannot read the kubeconfig"),
        "{text}"
    );
    assert!(Cache::open(&project.root()).cached("", "app").is_none());

    // disableFallback: the daemon error, and why kaniko was not tried.
    let mut project = Project::new(false);
    project.image("app").build.docker = Some(DockerBuildConfig {
        disable_fallback: Some(true),
        ..Default::default()
    });
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    let e = err(&r["app"]);
    assert!(matches!(e, ImageError::FallbackDisabled { .. }), "{e:?}");
    assert_eq!(e.exit_code(), ExitCode::Unreachable);
    assert!(e.hints().iter().any(|h| h.contains("disableFallback")));
}

#[tokio::test]
async fn a_failed_build_commits_nothing() {
    let project = Project::new(false);
    let services = FakeServices::default();
    services.world().failing.insert("app".into());
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    let e = err(&r["app"]);
    assert!(matches!(e, ImageError::Build(_)), "{e:?}");
    assert_eq!(e.last_lines(), ["Step 2/2 : RUN exit 3"]);
    assert!(!e.is_environment());
    assert!(Cache::open(&project.root()).cached("", "app").is_none());
    assert!(services.world().pushes.is_empty());
}

#[tokio::test]
async fn kaniko_and_kind_delivery() {
    let mut project = Project::new(false);
    project.image("app").build.kaniko = Some(KanikoConfig::default());
    let services = FakeServices::default();
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    assert_eq!(services.world().builds, [("kaniko".into(), "app".into())]);
    assert!(ok(&r["app"]).pushed);

    let project = Project::new(false);
    let services = FakeServices::default();
    let kind = PlanSettings {
        local: Some(LocalTarget {
            cluster: LocalCluster::Kind {
                cluster: "dev".into(),
            },
            kind_installed: true,
        }),
        ..PlanSettings::default()
    };
    let (r, events) = project.run(&services, pushing(), kind).await;
    let app = ok(&r["app"]);
    assert!(!app.pushed);
    assert_eq!(services.world().kind_loads, ["127.0.0.1:5000/demo-app:v1"]);
    assert!(services.world().pushes.is_empty());
    assert_eq!(
        notes(&events),
        [r#"kind cluster "dev": loaded image into the nodes instead of pushing"#]
    );
}

#[tokio::test]
async fn dry_run_contacts_nothing() {
    let project = Project::new(false);
    let services = FakeServices::default();
    services.world().daemon_down = true;
    let settings = JobSettings {
        dry_run: true,
        ..JobSettings::default()
    };
    let (r, _) = project
        .run(&services, settings, PlanSettings::default())
        .await;
    let app = ok(&r["app"]);
    assert_eq!(app.status, Status::WouldBuild);
    assert_eq!(app.decision, Decision::Rebuild(Reason::NeverBuilt));
    assert!(services.world().builds.is_empty());
}

fn cached_tags(project: &Project, key: &str) -> Vec<String> {
    Cache::open(&project.root())
        .cached("", key)
        .and_then(|c| c.record)
        .map(|r| r.tags)
        .unwrap_or_default()
}

fn with_tags(tags: &[&str]) -> PlanSettings {
    PlanSettings {
        tag_override: tags.iter().map(|t| t.to_string()).collect(),
        ..PlanSettings::default()
    }
}

fn cached_on() -> PlanSettings {
    PlanSettings {
        registry_cache: true,
        ..PlanSettings::default()
    }
}

#[tokio::test]
async fn tags_changed_retags_in_the_registry_and_never_builds() {
    let project = Project::new(false);
    let services = FakeServices::default();
    project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    // `-t v2`, then back to the configured `v1`: two retags, one build.
    for (settings, want) in [(with_tags(&["v2"]), "v2"), (PlanSettings::default(), "v1")] {
        let (r, events) = project.run(&services, pushing(), settings).await;
        let app = ok(&r["app"]);
        assert_eq!(app.decision, Decision::Retag);
        assert_eq!(app.decision.to_string(), "retag: tags changed");
        assert_eq!(app.status, Status::Retagged);
        assert_eq!(app.tags, [want]);
        assert!(app.pushed);
        assert!(
            events
                .iter()
                .any(|e| e.kind == ImageEvent::Stage(Stage::Tagging))
        );
        assert_eq!(cached_tags(&project, "app"), [want]);
    }
    {
        let world = services.world();
        assert_eq!(world.builds.len(), 1, "built once");
        assert_eq!(world.pushes, ["127.0.0.1:5000/demo-app:v1"], "pushed once");
        let targets: Vec<&str> = world
            .registry_tags
            .iter()
            .map(|(_, to)| to.as_str())
            .collect();
        assert_eq!(
            targets,
            ["127.0.0.1:5000/demo-app:v2", "127.0.0.1:5000/demo-app:v1"]
        );
    }
    // Nothing changed since: a plain skip.
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    assert_eq!(ok(&r["app"]).decision, Decision::Skip);
    // A dry run of a tags-only change says it would retag, with the new tags, and does nothing.
    let dry = JobSettings {
        dry_run: true,
        ..pushing()
    };
    let (r, _) = project.run(&services, dry, with_tags(&["v3"])).await;
    let app = ok(&r["app"]);
    assert_eq!(app.decision, Decision::Retag);
    assert_eq!(app.status, Status::WouldRetag);
    assert_eq!(app.status.label(), "would retag");
    assert_eq!(app.tags, ["v3"]);
    assert_eq!(
        services.world().registry_tags.len(),
        2,
        "a dry run tags nothing"
    );
    assert_eq!(cached_tags(&project, "app"), ["v1"]);
}

#[tokio::test]
async fn retag_in_the_daemon_when_not_pushed_and_rebuild_when_gone() {
    let project = Project::new(false);
    let services = FakeServices::default();
    let local = JobSettings {
        skip_push: true,
        ..JobSettings::default()
    };
    let no_push = |tags: &[&str]| PlanSettings {
        skip_push: true,
        ..with_tags(tags)
    };
    project.run(&services, local.clone(), no_push(&[])).await;
    let (r, _) = project
        .run(&services, local.clone(), no_push(&["v2"]))
        .await;
    let app = ok(&r["app"]);
    assert_eq!(app.status, Status::Retagged);
    assert!(!app.pushed);
    assert_eq!(
        services.world().daemon_tags,
        [(
            "127.0.0.1:5000/demo-app:v1".to_string(),
            "127.0.0.1:5000/demo-app:v2".to_string()
        )]
    );
    assert!(services.world().pushes.is_empty());
    // Pushing now: the recorded (v2) image was never pushed; the retag to v3 tags it in
    // the daemon and pushes the new tag.
    let (r, _) = project.run(&services, pushing(), with_tags(&["v3"])).await;
    assert_eq!(ok(&r["app"]).status, Status::Retagged);
    assert_eq!(services.world().pushes, ["127.0.0.1:5000/demo-app:v3"]);
    // Gone from daemon and registry: the retag becomes a build.
    services.world().local.clear();
    services.world().registry.clear();
    let (r, _) = project.run(&services, local, no_push(&["v4"])).await;
    let app = ok(&r["app"]);
    assert_eq!(app.decision, Decision::Rebuild(Reason::MissingInDaemon));
    assert_eq!(app.status, Status::Built);
    assert_eq!(services.world().builds.len(), 2);
}

#[tokio::test]
async fn a_base_with_new_tags_does_not_rebuild_its_dependents() {
    let mut project = Project::new(true);
    let services = FakeServices::default();
    project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    project.image("base").tags = vec!["b2".into()];
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    assert_eq!(ok(&r["base"]).decision, Decision::Retag);
    assert_eq!(ok(&r["app"]).decision, Decision::Skip);
    assert_eq!(services.world().builds.len(), 2, "nothing rebuilt");
    // A base with new content still rebuilds them (its content key moved).
    std::fs::write(project.root().join("base/Dockerfile"), "FROM busybox:1\n").unwrap();
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    assert!(ok(&r["app"]).decision.is_rebuild());
}

#[tokio::test]
async fn ctrl_c_during_a_retag_commits_nothing() {
    let project = Project::new(false);
    let services = FakeServices::default();
    project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    services.world().registry_tag_hangs = true;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.cancel();
    });
    let (r, _) = project
        .run_until(&services, pushing(), with_tags(&["v2"]), cancel)
        .await;
    assert!(err(&r["app"]).is_cancelled(), "{:?}", r["app"]);
    assert_eq!(cached_tags(&project, "app"), ["v1"], "old entry kept");
    services.world().registry_tag_hangs = false;
    let (r, _) = project.run(&services, pushing(), with_tags(&["v2"])).await;
    assert_eq!(ok(&r["app"]).decision, Decision::Retag);
    assert_eq!(cached_tags(&project, "app"), ["v2"]);
    assert_eq!(services.world().builds.len(), 1);
}

#[tokio::test]
async fn registry_cache_a_fresh_clone_builds_nothing() {
    let project = Project::new(true);
    let services = FakeServices::default();
    project.run(&services, pushing(), cached_on()).await;
    let cache_tags: Vec<String> = services
        .world()
        .registry_tags
        .iter()
        .map(|(_, to)| to.clone())
        .collect();
    assert_eq!(cache_tags.len(), 2, "one cache tag per pushed image");
    assert!(
        cache_tags
            .iter()
            .all(|t| t.contains(":devspace-cache-") && t.len() == t.find(":d").unwrap() + 56),
        "{cache_tags:?}"
    );
    // A fresh clone: no local cache.
    std::fs::remove_dir_all(project.root().join(".devspace")).unwrap();
    services.world().local.clear();
    let (r, _) = project.run(&services, pushing(), cached_on()).await;
    for key in ["base", "app"] {
        let s = ok(&r[key]);
        let Decision::FoundInRegistry { source } = &s.decision else {
            panic!("{key}: {:?}", s.decision)
        };
        assert!(cache_tags.contains(source), "{source}");
        assert!(
            s.decision
                .to_string()
                .starts_with("skip (found in registry: built elsewhere): 127.0.0.1:5000/"),
        );
        assert_eq!(s.status, Status::Skipped);
        assert!(s.pushed);
        assert_eq!(s.digest.as_deref(), Some(fakes::DIGEST));
    }
    assert_eq!(
        services.world().builds.len(),
        2,
        "nothing built the second time"
    );
    // Recorded locally as built and pushed: the next run is a plain skip.
    let (r, _) = project.run(&services, pushing(), cached_on()).await;
    assert_eq!(ok(&r["app"]).decision, Decision::Skip);
    // Another build arg misses the cache.
    let mut project = project;
    project.image("app").build.docker = Some(DockerBuildConfig {
        options: Some(crate::config::BuildOptions {
            build_args: IndexMap::from([("X".to_string(), Some("1".to_string()))]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let (r, _) = project.run(&services, pushing(), cached_on()).await;
    assert_eq!(ok(&r["app"]).status, Status::Built);
}

#[tokio::test]
async fn registry_cache_is_not_asked_without_a_push_or_when_off_or_forced() {
    for (name, settings, plan_settings) in [
        (
            "skip push",
            JobSettings {
                skip_push: true,
                ..JobSettings::default()
            },
            PlanSettings {
                skip_push: true,
                ..cached_on()
            },
        ),
        ("turned off", pushing(), PlanSettings::default()),
        (
            "force build",
            JobSettings {
                force_build: true,
                ..JobSettings::default()
            },
            cached_on(),
        ),
    ] {
        let project = Project::new(false);
        let services = FakeServices::default();
        project.run(&services, settings, plan_settings).await;
        assert!(services.world().lookups.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn registry_cache_unusable_or_refused_means_a_normal_build() {
    // A manifest list (or missing blob) under the cache tag: not a hit, said in a note.
    let project = Project::new(false);
    let services = FakeServices::default();
    project.run(&services, pushing(), cached_on()).await;
    let cache_ref = services.world().registry_tags[0].1.clone();
    services.world().unusable.insert(
        cache_ref,
        "a manifest list (application/vnd.oci.image.index.v1+json)".into(),
    );
    std::fs::remove_dir_all(project.root().join(".devspace")).unwrap();
    let (r, events) = project.run(&services, pushing(), cached_on()).await;
    assert_eq!(ok(&r["app"]).status, Status::Built);
    assert!(
        notes(&events)
            .iter()
            .any(|n| n.contains("is not reused: a manifest list")),
        "{:?}",
        notes(&events)
    );

    // A registry that refuses: both images build, one warning for the run.
    let project = Project::new(true);
    let services = FakeServices::default();
    services.world().registry_refuses = true;
    let (r, events) = project.run(&services, pushing(), cached_on()).await;
    for key in ["base", "app"] {
        assert_eq!(ok(&r[key]).status, Status::Built, "{key}");
    }
    let warnings: Vec<String> = notes(&events)
        .into_iter()
        .filter(|n| n.starts_with("warning: registry cache disabled for 127.0.0.1:5000"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", notes(&events));
    assert_eq!(services.world().lookups.len(), 1, "not asked again");
}

/// The daemon's cache lookup failing on an image someone removed meanwhile is built again
/// (with a note), up to three attempts; a third race in a row is the image's failure.
#[tokio::test]
async fn a_daemon_cache_race_is_built_again() {
    let project = Project::new(false);
    let services = FakeServices::default();
    services.world().cache_races.insert("app".into(), 2);
    let (r, events) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    assert_eq!(ok(&r["app"]).status, Status::Built);
    assert_eq!(services.world().builds.len(), 3);
    let notes = events
        .iter()
        .filter(|e| matches!(&e.kind, ImageEvent::Note(n) if n.contains("building again")))
        .count();
    assert_eq!(notes, 2);

    let project = Project::new(false);
    let services = FakeServices::default();
    services.world().cache_races.insert("app".into(), 3);
    let (r, _) = project
        .run(&services, pushing(), PlanSettings::default())
        .await;
    let e = err(&r["app"]);
    assert!(e.to_string().contains("unable to find image"), "{e}");
    assert_eq!(services.world().builds.len(), 3);
}
