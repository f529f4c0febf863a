//! The `devspace dev` watch loop's decisions: which paths to watch for a config's images, which
//! images a batch of changed paths affects (honouring each context's `.dockerignore` and
//! skipping `.devspace/`), and the one line printed per cycle. These are pure; [`watch`] is the
//! thin adapter over `notify` that delivers debounced batches of paths; [`session`] is the
//! loop that builds, deploys and watches.
//!
//! Whether an affected image is really rebuilt stays with the build decision engine: a change
//! here only starts a cycle, and the cycle's build skips every image whose inputs are the same.

pub mod session;
pub mod watch;

use crate::config::{BuilderKind, Config};
use crate::image::context::ignore::IgnoreRules;
use crate::image::context::{canonical_context, context_rules, dockerfile_in_context};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What one image's build reads: its context (minus what `.dockerignore` excludes) and its
/// Dockerfile, with canonical paths so they compare with the watcher's event paths.
#[derive(Debug, Clone)]
pub struct WatchTarget {
    /// `images.<key>`.
    pub key: String,
    /// Canonical context directory.
    pub context: PathBuf,
    /// Canonical (or at least absolute) Dockerfile path.
    pub dockerfile: PathBuf,
    /// The context's exclude rules (empty when `.dockerignore` cannot be read or compiled:
    /// then every change counts, and the build reports the problem).
    pub rules: IgnoreRules,
}

impl WatchTarget {
    /// Whether a change at `path` (absolute, canonical) can change what this image builds from.
    pub fn is_affected_by(&self, path: &Path) -> bool {
        if path == self.dockerfile {
            return true;
        }
        let Ok(rel) = path.strip_prefix(&self.context) else {
            return false;
        };
        let Some(rel) = rel.to_str() else {
            // A non-UTF-8 name cannot be matched against patterns; it still lands in the tar.
            return true;
        };
        if rel.is_empty() {
            // The context directory itself (e.g. its mtime): its entries report their own events.
            return false;
        }
        !self.rules.matches(rel)
    }
}

/// Builds the watch targets of every image that is built (disabled images are not watched).
/// Images whose context does not exist are left out: the build reports them.
pub fn watch_targets(config: &Config) -> Vec<WatchTarget> {
    config
        .images
        .iter()
        .filter(|(_, image)| image.builder_kind() != BuilderKind::Disabled)
        .filter_map(|(key, image)| {
            let context = canonical_context(&image.context).ok()?;
            let dockerfile = std::fs::canonicalize(&image.dockerfile)
                .or_else(|_| std::path::absolute(&image.dockerfile))
                .unwrap_or_else(|_| image.dockerfile.clone());
            let dockerfile_rel = dockerfile_in_context(&context, &dockerfile);
            let rules = context_rules(&context, dockerfile_rel.as_deref()).unwrap_or_default();
            Some(WatchTarget {
                key: key.clone(),
                context,
                dockerfile,
                rules,
            })
        })
        .collect()
}

/// One path handed to the watcher.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchRoot {
    pub path: PathBuf,
    /// Contexts are watched with everything below them; the directory of a Dockerfile that
    /// lies outside every context only on its own level.
    pub recursive: bool,
}

/// The directories to watch for `targets`: every context recursively, and the directory of
/// each Dockerfile outside all contexts non-recursively; nothing that a recursive root
/// already covers (inotify would report such changes twice).
pub fn watch_roots(targets: &[WatchTarget]) -> Vec<WatchRoot> {
    let contexts: BTreeSet<&Path> = targets.iter().map(|t| t.context.as_path()).collect();
    let recursive: Vec<&Path> = contexts
        .iter()
        .filter(|c| {
            !contexts
                .iter()
                .any(|other| other != *c && c.starts_with(other))
        })
        .copied()
        .collect();
    let covered = |p: &Path| recursive.iter().any(|r| p.starts_with(r));
    let mut roots: BTreeSet<WatchRoot> = recursive
        .iter()
        .map(|p| WatchRoot {
            path: p.to_path_buf(),
            recursive: true,
        })
        .collect();
    for t in targets {
        if let Some(dir) = t.dockerfile.parent()
            && !covered(&t.dockerfile)
        {
            roots.insert(WatchRoot {
                path: dir.to_path_buf(),
                recursive: false,
            });
        }
    }
    roots.into_iter().collect()
}

/// The keys of the images (in `targets` order) that a change at any of `paths` affects.
/// Paths under `state_dir` (the project's `.devspace/`: cache, logs) never count.
pub fn affected_images(
    targets: &[WatchTarget],
    paths: &[PathBuf],
    state_dir: &Path,
) -> Vec<String> {
    let relevant: Vec<&PathBuf> = paths.iter().filter(|p| !p.starts_with(state_dir)).collect();
    targets
        .iter()
        .filter(|t| relevant.iter().any(|p| t.is_affected_by(p)))
        .map(|t| t.key.clone())
        .collect()
}

/// What the deploy step of a cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployStep {
    /// Nothing was built (or the build failed), so nothing was deployed.
    Skipped,
    /// These deployments were applied.
    Deployed(Vec<String>),
    /// Deploying failed (the error was printed above).
    Failed,
}

/// One cycle's outcome, for [`cycle_line`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleSummary {
    /// 1 for the initial build and deploy.
    pub number: u32,
    /// Images built (or pushed again) with the decision's reason.
    pub built: Vec<(String, String)>,
    /// Images that failed.
    pub failed: Vec<String>,
    pub deploy: DeployStep,
}

/// The line printed after a cycle, e.g.
/// `[dev] cycle 2: rebuilt api (rebuild: 1 file changed: run.sh); redeployed quickstart`.
pub fn cycle_line(c: &CycleSummary) -> String {
    let first = c.number == 1;
    let mut parts = Vec::new();
    if !c.built.is_empty() {
        let images: Vec<String> = c
            .built
            .iter()
            .map(|(key, reason)| {
                if reason.is_empty() {
                    key.clone()
                } else {
                    format!("{key} ({reason})")
                }
            })
            .collect();
        let verb = if first { "built" } else { "rebuilt" };
        parts.push(format!("{verb} {}", images.join(", ")));
    }
    if !c.failed.is_empty() {
        parts.push(format!("failed {}", c.failed.join(", ")));
    }
    match &c.deploy {
        DeployStep::Deployed(names) => {
            let verb = if first { "deployed" } else { "redeployed" };
            if names.is_empty() {
                parts.push(format!("{verb} (no deployments configured)"));
            } else {
                parts.push(format!("{verb} {}", names.join(", ")));
            }
        }
        DeployStep::Failed => parts.push("deploy failed".into()),
        DeployStep::Skipped if !c.failed.is_empty() => parts.push("not redeployed".into()),
        DeployStep::Skipped => {}
    }
    if parts.is_empty() {
        parts.push("nothing changed".into());
    }
    format!("[dev] cycle {}: {}", c.number, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(key: &str, context: &str, dockerfile: &str, ignore: &[&str]) -> WatchTarget {
        WatchTarget {
            key: key.into(),
            context: PathBuf::from(context),
            dockerfile: PathBuf::from(dockerfile),
            rules: IgnoreRules::new(ignore.iter().copied().chain([".devspace"])).expect("patterns"),
        }
    }

    fn targets() -> Vec<WatchTarget> {
        vec![
            target("api", "/p/api", "/p/api/Dockerfile", &["*.md", "tmp"]),
            target("web", "/p/web", "/p/docker/web.Dockerfile", &[]),
            target("all", "/p", "/p/Dockerfile", &["api", "web", "docker"]),
        ]
    }

    #[test]
    fn changed_paths_affect_the_images_whose_context_keeps_them() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["/p/api/run.sh"], &["api"]),
            (&["/p/api/NOTES.md"], &[]),
            (&["/p/api/tmp/x/y"], &[]),
            (&["/p/api/docs/x.md"], &["api"]),
            (&["/p/api/Dockerfile"], &["api"]),
            (&["/p/web/index.html"], &["web"]),
            (&["/p/docker/web.Dockerfile"], &["web"]),
            (&["/p/docker/other"], &[]),
            (&["/p/Dockerfile"], &["all"]),
            (&["/p/main.go"], &["all"]),
            (&["/p/.devspace/generated.yaml"], &[]),
            (&["/p/.devspace/logs/api.log"], &[]),
            (&["/p/api/.devspace/x"], &[]),
            (&["/p/api"], &[]),
            (&["/elsewhere/file"], &[]),
            (&["/p/api/NOTES.md", "/p/web/run.sh"], &["web"]),
            (&["/p/api/run.sh", "/p/web/run.sh"], &["api", "web"]),
            (&["/p/api/.dockerignore"], &["api"]),
        ];
        for (paths, want) in cases {
            let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            let got = affected_images(&targets(), &paths, Path::new("/p/.devspace"));
            assert_eq!(got, *want, "{paths:?}");
        }
    }

    #[test]
    fn dockerignore_exceptions_bring_files_back() {
        let t = target("api", "/c", "/c/Dockerfile", &["*", "!src"]);
        assert!(t.is_affected_by(Path::new("/c/src/main.rs")));
        assert!(!t.is_affected_by(Path::new("/c/README")));
    }

    #[test]
    fn roots_cover_contexts_once_and_outside_dockerfiles_flat() {
        let roots = watch_roots(&targets());
        assert_eq!(
            roots,
            vec![WatchRoot {
                path: "/p".into(),
                recursive: true
            }]
        );
        let roots = watch_roots(&targets()[..2]);
        assert_eq!(
            roots,
            vec![
                WatchRoot {
                    path: "/p/api".into(),
                    recursive: true
                },
                WatchRoot {
                    path: "/p/docker".into(),
                    recursive: false
                },
                WatchRoot {
                    path: "/p/web".into(),
                    recursive: true
                },
            ]
        );
    }

    #[test]
    fn cycle_lines() {
        let built = |k: &str, r: &str| (k.to_string(), r.to_string());
        let cases = [
            (
                CycleSummary {
                    number: 2,
                    built: vec![built("api", "rebuild: 1 file changed: run.sh")],
                    failed: vec![],
                    deploy: DeployStep::Deployed(vec!["quickstart".into()]),
                },
                "[dev] cycle 2: rebuilt api (rebuild: 1 file changed: run.sh); redeployed quickstart",
            ),
            (
                CycleSummary {
                    number: 3,
                    built: vec![],
                    failed: vec![],
                    deploy: DeployStep::Skipped,
                },
                "[dev] cycle 3: nothing changed",
            ),
            (
                CycleSummary {
                    number: 1,
                    built: vec![built("api", "build (first build)"), built("web", "")],
                    failed: vec![],
                    deploy: DeployStep::Deployed(vec!["a".into(), "b".into()]),
                },
                "[dev] cycle 1: built api (build (first build)), web; deployed a, b",
            ),
            (
                CycleSummary {
                    number: 1,
                    built: vec![],
                    failed: vec![],
                    deploy: DeployStep::Deployed(vec!["a".into()]),
                },
                "[dev] cycle 1: deployed a",
            ),
            (
                CycleSummary {
                    number: 4,
                    built: vec![built("api", "r")],
                    failed: vec!["web".into()],
                    deploy: DeployStep::Skipped,
                },
                "[dev] cycle 4: rebuilt api (r); failed web; not redeployed",
            ),
            (
                CycleSummary {
                    number: 5,
                    built: vec![built("api", "r")],
                    failed: vec![],
                    deploy: DeployStep::Failed,
                },
                "[dev] cycle 5: rebuilt api (r); deploy failed",
            ),
            (
                CycleSummary {
                    number: 6,
                    built: vec![built("api", "r")],
                    failed: vec![],
                    deploy: DeployStep::Deployed(vec![]),
                },
                "[dev] cycle 6: rebuilt api (r); redeployed (no deployments configured)",
            ),
        ];
        for (summary, want) in cases {
            assert_eq!(cycle_line(&summary), want);
        }
    }
}
