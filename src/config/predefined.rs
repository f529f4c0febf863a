//! Predefined variables (`DEVSPACE_RANDOM`, `DEVSPACE_TIMESTAMP`, `DEVSPACE_GIT_COMMIT`,
//! `DEVSPACE_GIT_BRANCH`, `DEVSPACE_PROFILE`, `DEVSPACE_VERSION`, `DEVSPACE_CONTEXT`,
//! `DEVSPACE_NAMESPACE`). Each is computed only when a config uses it: git is read from
//! `.git` directly (HEAD, loose refs, packed-refs, worktree `gitdir:` files) with `git
//! rev-parse` as the fallback, and the kube context from the kubeconfig file without any
//! network.

use super::error::ConfigError;
use super::yaml;
use std::path::{Path, PathBuf};

/// Inputs of the predefined variables.
pub struct Predefined<'a> {
    /// Project root (directory of devspace.yaml).
    pub root: PathBuf,
    /// Profiles given with `-p`, in order.
    pub profiles: Vec<String>,
    /// `--kube-context`.
    pub kube_context: Option<String>,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// Environment lookup (for `KUBECONFIG` and `HOME`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

fn no_env(_: &str) -> Option<String> {
    None
}

impl Predefined<'static> {
    /// Predefined values with no git repository and no kubeconfig.
    pub fn for_tests() -> Self {
        Predefined {
            root: PathBuf::from("/nonexistent-devspace-root"),
            profiles: Vec::new(),
            kube_context: None,
            namespace: None,
            env: &no_env,
        }
    }
}

impl Predefined<'_> {
    /// The value of a predefined variable (`None` if `name` is not one).
    pub fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let err = |message: String| ConfigError::Var {
            name: name.to_string(),
            message,
        };
        Ok(Some(match name.to_ascii_uppercase().as_str() {
            "DEVSPACE_RANDOM" => random_alnum(6),
            "DEVSPACE_TIMESTAMP" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
                .to_string(),
            "DEVSPACE_VERSION" => env!("CARGO_PKG_VERSION").to_string(),
            "DEVSPACE_PROFILE" => self.profiles.last().cloned().unwrap_or_default(),
            "DEVSPACE_GIT_COMMIT" => {
                let commit = git_head(&self.root)
                    .map(|h| h.commit)
                    .or_else(|| git_cli(&self.root, &["rev-parse", "HEAD"]))
                    .ok_or_else(|| {
                        err(format!(
                            "no git repository found at {} or above",
                            self.root.display()
                        ))
                    })?;
                commit.chars().take(8).collect()
            }
            "DEVSPACE_GIT_BRANCH" => git_head(&self.root)
                .and_then(|h| h.branch)
                .or_else(|| git_cli(&self.root, &["rev-parse", "--abbrev-ref", "HEAD"]))
                .ok_or_else(|| {
                    err(format!(
                        "no git branch found at {} (not a repository, or a detached HEAD)",
                        self.root.display()
                    ))
                })?,
            "DEVSPACE_CONTEXT" => match &self.kube_context {
                Some(c) => c.clone(),
                None => self.kubeconfig()?.0,
            },
            "DEVSPACE_NAMESPACE" => match &self.namespace {
                Some(n) => n.clone(),
                None => self.kubeconfig()?.1,
            },
            _ => return Ok(None),
        }))
    }

    /// (context, namespace) from the kubeconfig file.
    fn kubeconfig(&self) -> Result<(String, String), ConfigError> {
        let path = (self.env)("KUBECONFIG")
            .and_then(|k| k.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
            .or_else(|| (self.env)("HOME").map(|h| Path::new(&h).join(".kube/config")));
        let unavailable = |why: String| ConfigError::Var {
            name: "DEVSPACE_CONTEXT/DEVSPACE_NAMESPACE".into(),
            message: format!(
                "{why}; pass --kube-context and -n (or --var DEVSPACE_CONTEXT=... / DEVSPACE_NAMESPACE=...)"
            ),
        };
        let path =
            path.ok_or_else(|| unavailable("no kubeconfig (KUBECONFIG and HOME unset)".into()))?;
        let text = crate::yaml::limits::read_file(&path)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", path.display())))?;
        let doc = yaml::parse(&text)
            .map_err(|e| unavailable(format!("cannot parse {}: {}", path.display(), e.message)))?
            .root;
        let context = match &self.kube_context {
            Some(c) => c.clone(),
            None => doc
                .get("current-context")
                .and_then(|n| n.scalar_text())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| unavailable(format!("{} has no current-context", path.display())))?
                .to_string(),
        };
        let namespace = doc
            .get("contexts")
            .and_then(|c| match &c.value {
                yaml::Value::Seq(items) => items.iter().find(|i| {
                    i.get("name").and_then(|n| n.scalar_text()) == Some(context.as_str())
                }),
                _ => None,
            })
            .and_then(|c| c.get("context"))
            .and_then(|c| c.get("namespace"))
            .and_then(|n| n.scalar_text())
            .unwrap_or("default")
            .to_string();
        Ok((context, namespace))
    }
}

/// `n` random characters from `[A-Za-z0-9]` (DevSpace 4.x `DEVSPACE_RANDOM` alphabet).
fn random_alnum(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// What `.git/HEAD` points at.
#[derive(Debug, PartialEq)]
pub struct GitHead {
    pub commit: String,
    pub branch: Option<String>,
}

/// Reads HEAD of the repository containing `start` without running git.
pub fn git_head(start: &Path) -> Option<GitHead> {
    let git_dir = find_git_dir(start)?;
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.clone());
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    match head.strip_prefix("ref:") {
        None => Some(GitHead {
            commit: head.to_string(),
            branch: None,
        }),
        Some(reference) => {
            let reference = reference.trim();
            let commit = [&git_dir, &common]
                .iter()
                .find_map(|d| std::fs::read_to_string(d.join(reference)).ok())
                .map(|s| s.trim().to_string())
                .or_else(|| packed_ref(&common, reference))?;
            Some(GitHead {
                commit,
                branch: Some(
                    reference
                        .strip_prefix("refs/heads/")
                        .unwrap_or(reference)
                        .to_string(),
                ),
            })
        }
    }
}

fn packed_ref(common: &Path, reference: &str) -> Option<String> {
    let text = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .find_map(|l| {
            let (hash, name) = l.split_once(' ')?;
            (name.trim() == reference).then(|| hash.to_string())
        })
}

fn find_git_dir(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let dot_git = dir.join(".git");
        if dot_git.is_dir() {
            return Some(dot_git);
        }
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        Some(dir.join(target))
    })
}

fn git_cli(root: &Path, args: &[&str]) -> Option<String> {
    // In our process group, no timeout: git answers these from local files.
    let out = crate::process::run(&crate::process::Spec::new("git").args(args).cwd(root)).ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty() && s != "HEAD").then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_head_reads_loose_packed_and_worktree_refs() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let git = repo.join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), "0123456789abcdef\n").unwrap();
        let sub = repo.join("sub/dir");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(
            git_head(&sub),
            Some(GitHead {
                commit: "0123456789abcdef".into(),
                branch: Some("main".into())
            })
        );

        std::fs::write(git.join("HEAD"), "ref: refs/heads/feature/x\n").unwrap();
        std::fs::write(
            git.join("packed-refs"),
            "# pack-refs with: peeled\nfeedbeef00000000 refs/heads/feature/x\n",
        )
        .unwrap();
        assert_eq!(git_head(&repo).unwrap().commit, "feedbeef00000000");

        // A worktree: `.git` is a file pointing at a gitdir with a commondir.
        let wt_git = git.join("worktrees/wt");
        std::fs::create_dir_all(&wt_git).unwrap();
        std::fs::write(wt_git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(wt_git.join("commondir"), "../..\n").unwrap();
        let wt = tmp.path().join("wt");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", wt_git.display())).unwrap();
        let head = git_head(&wt).unwrap();
        assert_eq!(head.commit, "0123456789abcdef");
        assert_eq!(head.branch.as_deref(), Some("main"));

        let p = Predefined {
            root: wt.clone(),
            ..Predefined::for_tests()
        };
        assert_eq!(p.get("DEVSPACE_GIT_COMMIT").unwrap().unwrap(), "01234567");
        assert_eq!(p.get("devspace_git_branch").unwrap().unwrap(), "main");
    }

    #[test]
    fn kube_values_come_from_flags_or_kubeconfig() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("config");
        std::fs::write(
            &cfg,
            "current-context: dev\ncontexts:\n- name: dev\n  context: {cluster: c, namespace: team}\n- name: other\n  context: {cluster: c}\n",
        )
        .unwrap();
        let cfg_str = cfg.display().to_string();
        let env = move |n: &str| (n == "KUBECONFIG").then(|| cfg_str.clone());
        let mut p = Predefined {
            env: &env,
            ..Predefined::for_tests()
        };
        assert_eq!(p.get("DEVSPACE_CONTEXT").unwrap().unwrap(), "dev");
        assert_eq!(p.get("DEVSPACE_NAMESPACE").unwrap().unwrap(), "team");
        p.kube_context = Some("other".into());
        assert_eq!(p.get("DEVSPACE_NAMESPACE").unwrap().unwrap(), "default");
        p.namespace = Some("ns".into());
        assert_eq!(p.get("DEVSPACE_NAMESPACE").unwrap().unwrap(), "ns");

        let none = Predefined::for_tests();
        let err = none.get("DEVSPACE_NAMESPACE").unwrap_err().to_string();
        assert!(err.contains("-n"), "{err}");
        assert_eq!(none.get("NOT_PREDEFINED").unwrap(), None);
        let r = none.get("DEVSPACE_RANDOM").unwrap().unwrap();
        assert_eq!(r.len(), 6);
        assert!(r.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
