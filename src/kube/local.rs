//! Local clusters: recognising minikube, kind, k3d and Docker Desktop from the kubeconfig
//! context, and the two adapters that make a locally built image visible to them without a
//! registry: `minikube docker-env` (build against minikube's daemon) and `kind load
//! docker-image` (copy the image into kind's nodes).
//!
//! Detection is a pure function of the kubeconfig, the context name and the minikube profiles
//! present on disk. DevSpace 4.x knew only the exact names `minikube`, `docker-desktop` and
//! `docker-for-desktop`; we also recognise minikube profiles by name, by the
//! `provider: minikube.sigs.k8s.io` extension minikube writes, and kind (`kind-*`) and k3d
//! (`k3d-*`) contexts.

use crate::process::{RunError, Tools, command_line};
use ::kube::config::{Kubeconfig, NamedExtension};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A cluster running on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCluster {
    /// A minikube profile (the default profile is `minikube`).
    Minikube { profile: String },
    /// A kind cluster (context `kind-<cluster>`).
    Kind { cluster: String },
    /// A k3d cluster (context `k3d-<cluster>`).
    K3d { cluster: String },
    /// Docker Desktop's built-in cluster: it shares the host's Docker daemon.
    DockerDesktop,
}

impl std::fmt::Display for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalCluster::Minikube { profile } => write!(f, "minikube (profile `{profile}`)"),
            LocalCluster::Kind { cluster } => write!(f, "kind (cluster `{cluster}`)"),
            LocalCluster::K3d { cluster } => write!(f, "k3d (cluster `{cluster}`)"),
            LocalCluster::DockerDesktop => f.write_str("Docker Desktop"),
        }
    }
}

/// How a locally built image reaches the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDelivery {
    /// The cluster runs on the daemon the image is built with (Docker Desktop, or minikube's
    /// own daemon through `minikube docker-env`): nothing to push.
    SharedDaemon,
    /// Copy the image into the nodes with `kind load docker-image`.
    KindLoad { cluster: String },
    /// Push to the registry as for a remote cluster.
    Push,
}

impl LocalCluster {
    /// How images reach this cluster: minikube shares its daemon when `prefer_minikube`
    /// (DevSpace's `preferMinikube`, default true), kind loads images when its CLI is
    /// installed, k3d and anything else push.
    pub fn delivery(&self, prefer_minikube: bool, kind_installed: bool) -> ImageDelivery {
        match self {
            LocalCluster::DockerDesktop => ImageDelivery::SharedDaemon,
            LocalCluster::Minikube { .. } if prefer_minikube => ImageDelivery::SharedDaemon,
            LocalCluster::Kind { cluster } if kind_installed => ImageDelivery::KindLoad {
                cluster: cluster.clone(),
            },
            _ => ImageDelivery::Push,
        }
    }
}

const MINIKUBE_PROVIDER: &str = "minikube.sigs.k8s.io";

/// Which local cluster `context` of `kubeconfig` points at; `minikube_profiles` are the profile
/// names found under `~/.minikube/profiles` (see [`minikube_profiles`]).
pub fn detect_local_cluster(
    kubeconfig: &Kubeconfig,
    context: &str,
    minikube_profiles: &[String],
) -> Option<LocalCluster> {
    if matches!(context, "docker-desktop" | "docker-for-desktop") {
        return Some(LocalCluster::DockerDesktop);
    }
    let entry = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref());
    let cluster_name = entry.map(|c| c.cluster.as_str());
    let user_name = entry.and_then(|c| c.user.as_deref());
    let cluster_extensions = cluster_name.and_then(|name| {
        kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.extensions.as_deref())
    });
    let minikube_made = [
        entry.and_then(|c| c.extensions.as_deref()),
        cluster_extensions,
    ]
    .into_iter()
    .flatten()
    .any(has_minikube_provider);
    let is_profile = |name: &str| minikube_profiles.iter().any(|p| p == name);
    // minikube names the context, cluster and user after the profile.
    let profile = [Some(context), cluster_name, user_name]
        .into_iter()
        .flatten()
        .find(|name| is_profile(name));
    if let Some(profile) = profile {
        return Some(LocalCluster::Minikube {
            profile: profile.to_owned(),
        });
    }
    if minikube_made || context == "minikube" {
        return Some(LocalCluster::Minikube {
            profile: cluster_name.unwrap_or(context).to_owned(),
        });
    }
    if let Some(cluster) = context.strip_prefix("kind-").filter(|c| !c.is_empty()) {
        return Some(LocalCluster::Kind {
            cluster: cluster.to_owned(),
        });
    }
    if let Some(cluster) = context.strip_prefix("k3d-").filter(|c| !c.is_empty()) {
        return Some(LocalCluster::K3d {
            cluster: cluster.to_owned(),
        });
    }
    None
}

fn has_minikube_provider(extensions: &[NamedExtension]) -> bool {
    extensions
        .iter()
        .any(|e| e.extension.get("provider").and_then(|p| p.as_str()) == Some(MINIKUBE_PROVIDER))
}

/// minikube's state directory: `minikube_home` when given, else `$MINIKUBE_HOME` (with
/// `.minikube` appended unless it already ends so, as minikube does), else `~/.minikube`.
pub fn minikube_dir(minikube_home: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = minikube_home {
        return Some(dir.to_owned());
    }
    match std::env::var_os("MINIKUBE_HOME").filter(|v| !v.is_empty()) {
        Some(home) => {
            let home = PathBuf::from(home);
            if home.file_name().is_some_and(|n| n == ".minikube") {
                Some(home)
            } else {
                Some(home.join(".minikube"))
            }
        }
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".minikube")),
    }
}

/// The minikube profiles present on disk (directories under `<minikube dir>/profiles`), sorted.
pub fn minikube_profiles(minikube_home: Option<&Path>) -> Vec<String> {
    let Some(dir) = minikube_dir(minikube_home) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir.join("profiles")) else {
        return Vec::new();
    };
    let mut profiles: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    profiles.sort();
    profiles
}

/// Why a local-cluster adapter failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// `minikube docker-env` failed.
    #[error("cannot use the Docker daemon of minikube profile `{profile}`: {source}")]
    MinikubeDockerEnv { profile: String, source: RunError },
    /// `minikube docker-env` printed no `DOCKER_HOST`.
    #[error(
        "cannot use the Docker daemon of minikube profile `{profile}`: `minikube docker-env` printed no DOCKER_HOST\nhint: minikube's docker-env needs the docker container runtime (`minikube start --container-runtime=docker`)"
    )]
    MinikubeNoDockerHost { profile: String },
    /// `kind load docker-image` failed.
    #[error("cannot load {} into kind cluster `{cluster}`: {source}", images.join(", "))]
    KindLoad {
        images: Vec<String>,
        cluster: String,
        source: RunError,
    },
}

/// Parses `minikube docker-env --shell none` output: `KEY=VALUE` lines (the value may contain
/// `=`), ignoring blank lines, comments and lines without `=`.
pub fn parse_docker_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let key = key.trim();
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Runs `minikube docker-env --shell none -p <profile>` and returns the environment a Docker
/// client needs to talk to the profile's daemon (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
/// `DOCKER_CERT_PATH`, ...).
pub async fn minikube_docker_env(
    tools: &Tools,
    profile: &str,
) -> Result<BTreeMap<String, String>, LocalClusterError> {
    let args: Vec<OsString> = ["docker-env", "--shell", "none", "-p", profile]
        .into_iter()
        .map(OsString::from)
        .collect();
    let output = tools
        .run("minikube", &args, &command_line("minikube", &args))
        .await
        .map_err(|source| LocalClusterError::MinikubeDockerEnv {
            profile: profile.to_owned(),
            source,
        })?;
    let env = parse_docker_env(&String::from_utf8_lossy(&output.stdout));
    if env.get("DOCKER_HOST").is_none_or(|h| h.is_empty()) {
        return Err(LocalClusterError::MinikubeNoDockerHost {
            profile: profile.to_owned(),
        });
    }
    Ok(env)
}

/// What [`kind_load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindLoad {
    /// The images are in the cluster's nodes.
    Loaded,
    /// The `kind` CLI is not installed: nothing was done (push instead).
    KindMissing,
}

/// Runs `kind load docker-image IMAGE... --name <cluster>` when `kind` is installed.
pub async fn kind_load(
    tools: &Tools,
    images: &[String],
    cluster: &str,
) -> Result<KindLoad, LocalClusterError> {
    if tools.find("kind").is_none() {
        return Ok(KindLoad::KindMissing);
    }
    let mut args: Vec<OsString> = vec!["load".into(), "docker-image".into()];
    args.extend(images.iter().map(OsString::from));
    args.extend(["--name".into(), cluster.into()]);
    tools
        .run("kind", &args, &command_line("kind", &args))
        .await
        .map(|_| KindLoad::Loaded)
        .map_err(|source| LocalClusterError::KindLoad {
            images: images.to_vec(),
            cluster: cluster.to_owned(),
            source,
        })
}

impl crate::diagnostic::Diagnostic for LocalClusterError {}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
  - name: minikube
    cluster:
      server: https://192.168.49.2:8443
      extensions:
        - name: cluster_info
          extension: {provider: minikube.sigs.k8s.io, version: v1.32.0}
  - name: dev2
    cluster: {server: https://192.168.58.2:8443}
  - name: labelled
    cluster: {server: https://192.168.59.2:8443}
  - name: kind-kind
    cluster: {server: https://127.0.0.1:40000}
  - name: remote
    cluster: {server: https://k8s.example.com}
users:
  - name: u
    user: {token: t}
contexts:
  - name: minikube
    context: {cluster: minikube, user: minikube}
  - name: dev2
    context: {cluster: dev2, user: dev2}
  - name: renamed
    context: {cluster: dev2, user: dev2}
  - name: labelled-ctx
    context:
      cluster: labelled
      user: u
      extensions:
        - name: context_info
          extension: {provider: minikube.sigs.k8s.io}
  - name: kind-kind
    context: {cluster: kind-kind, user: u}
  - name: k3d-mycluster
    context: {cluster: remote, user: u}
  - name: docker-desktop
    context: {cluster: remote, user: u}
  - name: docker-for-desktop
    context: {cluster: remote, user: u}
  - name: prod
    context: {cluster: remote, user: u}
  - name: kind-
    context: {cluster: remote, user: u}
"#;

    fn minikube(profile: &str) -> Option<LocalCluster> {
        Some(LocalCluster::Minikube {
            profile: profile.into(),
        })
    }

    #[test]
    fn detection_table() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let profiles = vec!["dev2".to_owned(), "minikube".to_owned()];
        let cases: Vec<(&str, &[String], Option<LocalCluster>)> = vec![
            ("minikube", &profiles, minikube("minikube")),
            // The default name counts even without profiles on disk (another machine's HOME).
            ("minikube", &[], minikube("minikube")),
            ("dev2", &profiles, minikube("dev2")),
            ("dev2", &[], None),
            // A renamed context whose cluster is a profile.
            ("renamed", &profiles, minikube("dev2")),
            // minikube's own kubeconfig extension, on the context.
            ("labelled-ctx", &[], minikube("labelled")),
            (
                "kind-kind",
                &profiles,
                Some(LocalCluster::Kind {
                    cluster: "kind".into(),
                }),
            ),
            (
                "k3d-mycluster",
                &[],
                Some(LocalCluster::K3d {
                    cluster: "mycluster".into(),
                }),
            ),
            ("docker-desktop", &[], Some(LocalCluster::DockerDesktop)),
            ("docker-for-desktop", &[], Some(LocalCluster::DockerDesktop)),
            ("prod", &profiles, None),
            ("kind-", &[], None),
            // A context missing from the kubeconfig is judged by its name alone.
            (
                "kind-ghost",
                &[],
                Some(LocalCluster::Kind {
                    cluster: "ghost".into(),
                }),
            ),
        ];
        for (context, profiles, want) in cases {
            assert_eq!(
                detect_local_cluster(&kubeconfig, context, profiles),
                want,
                "context {context}"
            );
        }
    }

    #[test]
    fn delivery_table() {
        let kind = LocalCluster::Kind {
            cluster: "dev".into(),
        };
        let mk = LocalCluster::Minikube {
            profile: "minikube".into(),
        };
        let k3d = LocalCluster::K3d {
            cluster: "c".into(),
        };
        let kind_load = ImageDelivery::KindLoad {
            cluster: "dev".into(),
        };
        let cases = [
            (
                &LocalCluster::DockerDesktop,
                false,
                false,
                ImageDelivery::SharedDaemon,
            ),
            (&mk, true, false, ImageDelivery::SharedDaemon),
            (&mk, false, true, ImageDelivery::Push),
            (&kind, true, true, kind_load),
            (&kind, true, false, ImageDelivery::Push),
            (&k3d, true, true, ImageDelivery::Push),
        ];
        for (cluster, prefer_minikube, kind_installed, want) in cases {
            assert_eq!(
                cluster.delivery(prefer_minikube, kind_installed),
                want,
                "{cluster} {prefer_minikube} {kind_installed}"
            );
        }
    }

    #[test]
    fn cluster_extension_marks_minikube() {
        let kubeconfig = Kubeconfig::from_yaml(
            "
clusters:
  - name: p7
    cluster:
      server: https://192.168.60.2:8443
      extensions:
        - name: cluster_info
          extension: {provider: minikube.sigs.k8s.io}
contexts:
  - name: work
    context: {cluster: p7}
",
        )
        .expect("kubeconfig");
        assert_eq!(
            detect_local_cluster(&kubeconfig, "work", &[]),
            minikube("p7")
        );
    }

    #[test]
    fn docker_env_parsing() {
        let text = "DOCKER_TLS_VERIFY=1\nDOCKER_HOST=tcp://192.168.49.2:2376\n\n# comment\nDOCKER_CERT_PATH=/home/u/.minikube/certs\nMINIKUBE_ACTIVE_DOCKERD=minikube\nexport X=\"a=b\"\ngarbage\n";
        let env = parse_docker_env(text);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            vec![
                ("DOCKER_CERT_PATH", "/home/u/.minikube/certs"),
                ("DOCKER_HOST", "tcp://192.168.49.2:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("MINIKUBE_ACTIVE_DOCKERD", "minikube"),
                ("X", "a=b"),
            ]
        );
    }

    #[test]
    fn profiles_are_directories_under_profiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        for profile in ["minikube", "dev2"] {
            std::fs::create_dir_all(dir.path().join("profiles").join(profile)).expect("mkdir");
        }
        std::fs::write(dir.path().join("profiles/stray-file"), "").expect("write");
        assert_eq!(
            minikube_profiles(Some(dir.path())),
            vec!["dev2".to_owned(), "minikube".to_owned()]
        );
        assert!(minikube_profiles(Some(&dir.path().join("absent"))).is_empty());
    }
}
