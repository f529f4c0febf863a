//! Which Docker daemon to talk to, decided the way the `docker` CLI decides it.
//!
//! Owns the resolution order: `DOCKER_HOST` (with `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`),
//! else the CLI context named by `DOCKER_CONTEXT` or `config.json`'s `currentContext`
//! (`contexts/meta/<sha256(name)>/meta.json` → `Endpoints.docker.Host`, TLS files under
//! `contexts/tls/<sha256(name)>/docker/`), else the default socket. The environment is passed
//! in as a [`DockerEnv`] value so the rules are testable without touching the process.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DaemonError;

/// The daemon socket used when nothing else is configured.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The variables the Docker CLI reads to pick a daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerEnv {
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `DOCKER_TLS_VERIFY` (any non-empty value enables TLS).
    pub docker_tls_verify: Option<String>,
    /// `DOCKER_CERT_PATH`.
    pub docker_cert_path: Option<String>,
    /// `DOCKER_CONTEXT`.
    pub docker_context: Option<String>,
    /// `DOCKER_CONFIG` (the directory holding `config.json` and `contexts/`).
    pub docker_config: Option<String>,
    /// The user's home directory (for `~/.docker`).
    pub home: Option<PathBuf>,
}

impl DockerEnv {
    /// Reads the variables of this process; empty values count as unset.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            docker_host: var("DOCKER_HOST"),
            docker_tls_verify: var("DOCKER_TLS_VERIFY"),
            docker_cert_path: var("DOCKER_CERT_PATH"),
            docker_context: var("DOCKER_CONTEXT"),
            docker_config: var("DOCKER_CONFIG"),
            home: std::env::home_dir(),
        }
    }

    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn config_dir(&self) -> Option<PathBuf> {
        match &self.docker_config {
            Some(dir) => Some(PathBuf::from(dir)),
            None => self.home.as_ref().map(|h| h.join(".docker")),
        }
    }
}

/// Client certificate files for a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate (`ca.pem`).
    pub ca: PathBuf,
    /// Client certificate (`cert.pem`).
    pub cert: PathBuf,
    /// Client key (`key.pem`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The conventional `ca.pem`/`cert.pem`/`key.pem` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// Where the endpoint came from (shown in errors so users know what to fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// `DOCKER_HOST`.
    DockerHost,
    /// A docker CLI context of this name.
    Context(String),
    /// Nothing configured: the default socket.
    Default,
}

/// A resolved daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerEndpoint {
    /// `unix:///…`, `tcp://host:port`, `http://…` or `https://…`.
    pub host: String,
    /// TLS client files; `None` means plain HTTP or a unix socket.
    pub tls: Option<TlsFiles>,
    /// Where `host` came from.
    pub source: EndpointSource,
}

impl DockerEndpoint {
    /// The default local socket.
    pub fn default_socket() -> Self {
        Self {
            host: DEFAULT_DOCKER_HOST.to_string(),
            tls: None,
            source: EndpointSource::Default,
        }
    }

    /// A plain endpoint for `host` as if given in `DOCKER_HOST` without TLS.
    pub fn from_host(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            tls: None,
            source: EndpointSource::DockerHost,
        }
    }
}

impl fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let EndpointSource::Context(name) = &self.source {
            write!(f, " (docker context {name})")?;
        }
        Ok(())
    }
}

/// Picks the daemon like the docker CLI: `DOCKER_HOST`, else the current context, else the
/// default socket. Reads `config.json` and the context's `meta.json` when needed.
pub fn resolve_endpoint(env: &DockerEnv) -> Result<DockerEndpoint, DaemonError> {
    if let Some(host) = &env.docker_host {
        let tls_wanted = env.docker_tls_verify.is_some() || env.docker_cert_path.is_some();
        let tls = (tls_wanted && is_tcp_like(host)).then(|| {
            let dir = env
                .docker_cert_path
                .as_ref()
                .map(PathBuf::from)
                .or_else(|| env.config_dir())
                .unwrap_or_default();
            TlsFiles::in_dir(&dir)
        });
        return Ok(DockerEndpoint {
            host: host.clone(),
            tls,
            source: EndpointSource::DockerHost,
        });
    }
    let config_dir = env.config_dir();
    let context = match &env.docker_context {
        Some(name) => Some(name.clone()),
        None => match &config_dir {
            Some(dir) => current_context(&dir.join("config.json"))?,
            None => None,
        },
    };
    match context.as_deref() {
        None | Some("default") => Ok(DockerEndpoint::default_socket()),
        Some(name) => {
            let dir = config_dir.ok_or_else(|| DaemonError::Context {
                name: name.to_string(),
                path: PathBuf::from("~/.docker"),
                reason: "no home directory and DOCKER_CONFIG is unset".to_string(),
            })?;
            context_endpoint(&dir, name)
        }
    }
}

fn is_tcp_like(host: &str) -> bool {
    ["tcp://", "http://", "https://"]
        .iter()
        .any(|scheme| host.starts_with(scheme))
}

/// `currentContext` of a `config.json`; a missing file means none.
fn current_context(config_json: &Path) -> Result<Option<String>, DaemonError> {
    let text = match std::fs::read_to_string(config_json) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(DaemonError::Config {
                path: config_json.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| DaemonError::Config {
            path: config_json.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(value
        .get("currentContext")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

/// The docker CLI stores a context under the hex SHA-256 of its name.
pub fn context_dir_name(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

fn context_endpoint(config_dir: &Path, name: &str) -> Result<DockerEndpoint, DaemonError> {
    let id = context_dir_name(name);
    let meta_path = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let context_err = |reason: String| DaemonError::Context {
        name: name.to_string(),
        path: meta_path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&meta_path).map_err(|e| {
        context_err(if e.kind() == std::io::ErrorKind::NotFound {
            "context not found (see `docker context ls`)".to_string()
        } else {
            e.to_string()
        })
    })?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| context_err(e.to_string()))?;
    let host = meta
        .pointer("/Endpoints/docker/Host")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| context_err("it has no docker endpoint host".to_string()))?;
    let tls_dir = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    let tls = (is_tcp_like(host) && tls_dir.is_dir()).then(|| TlsFiles::in_dir(&tls_dir));
    Ok(DockerEndpoint {
        host: host.to_string(),
        tls,
        source: EndpointSource::Context(name.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_context(config_dir: &Path, name: &str, host: &str, tls: bool) {
        let id = context_dir_name(name);
        let meta = config_dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        let json = serde_json::json!({
            "Name": name,
            "Metadata": {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}
        });
        std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
        if tls {
            std::fs::create_dir_all(config_dir.join("contexts/tls").join(&id).join("docker"))
                .unwrap();
        }
    }

    #[test]
    fn context_dir_is_sha256_of_name() {
        // Same value the docker CLI uses for a context called "remote".
        assert_eq!(
            context_dir_name("remote"),
            hex::encode(Sha256::digest(b"remote"))
        );
        assert_eq!(context_dir_name("remote").len(), 64);
    }

    #[test]
    fn resolution_table() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        write_context(&cfg, "remote", "tcp://10.0.0.5:2376", true);
        write_context(&cfg, "sock", "unix:///run/user/1000/docker.sock", false);
        std::fs::write(cfg.join("config.json"), r#"{"currentContext":"sock"}"#).unwrap();
        let cfg_s = cfg.to_string_lossy().to_string();
        let base = DockerEnv {
            docker_config: Some(cfg_s.clone()),
            ..Default::default()
        };

        // DOCKER_HOST wins over everything.
        let env = DockerEnv {
            docker_host: Some("tcp://1.2.3.4:2375".into()),
            docker_context: Some("remote".into()),
            ..base.clone()
        };
        assert_eq!(
            resolve_endpoint(&env).unwrap(),
            DockerEndpoint::from_host("tcp://1.2.3.4:2375")
        );

        // DOCKER_TLS_VERIFY: certs from DOCKER_CERT_PATH.
        let env = DockerEnv {
            docker_host: Some("tcp://1.2.3.4:2376".into()),
            docker_tls_verify: Some("1".into()),
            docker_cert_path: Some("/certs".into()),
            ..base.clone()
        };
        assert_eq!(
            resolve_endpoint(&env).unwrap().tls,
            Some(TlsFiles::in_dir(Path::new("/certs")))
        );

        // ... or from the config dir when DOCKER_CERT_PATH is unset.
        let env = DockerEnv {
            docker_host: Some("tcp://1.2.3.4:2376".into()),
            docker_tls_verify: Some("1".into()),
            ..base.clone()
        };
        assert_eq!(
            resolve_endpoint(&env).unwrap().tls,
            Some(TlsFiles::in_dir(&cfg))
        );

        // TLS variables do not apply to a unix socket.
        let env = DockerEnv {
            docker_host: Some("unix:///tmp/d.sock".into()),
            docker_tls_verify: Some("1".into()),
            ..base.clone()
        };
        assert_eq!(resolve_endpoint(&env).unwrap().tls, None);

        // currentContext from config.json.
        let ep = resolve_endpoint(&base).unwrap();
        assert_eq!(ep.host, "unix:///run/user/1000/docker.sock");
        assert_eq!(ep.source, EndpointSource::Context("sock".into()));
        assert_eq!(ep.tls, None);

        // DOCKER_CONTEXT beats currentContext; TLS files of the context are used.
        let env = DockerEnv {
            docker_context: Some("remote".into()),
            ..base.clone()
        };
        let ep = resolve_endpoint(&env).unwrap();
        assert_eq!(ep.host, "tcp://10.0.0.5:2376");
        let tls_dir = cfg
            .join("contexts/tls")
            .join(context_dir_name("remote"))
            .join("docker");
        assert_eq!(ep.tls, Some(TlsFiles::in_dir(&tls_dir)));

        // "default" is the default socket.
        let env = DockerEnv {
            docker_context: Some("default".into()),
            ..base.clone()
        };
        assert_eq!(
            resolve_endpoint(&env).unwrap(),
            DockerEndpoint::default_socket()
        );

        // No config at all.
        let env = DockerEnv {
            docker_config: Some(dir.path().join("none").to_string_lossy().to_string()),
            ..Default::default()
        };
        assert_eq!(
            resolve_endpoint(&env).unwrap(),
            DockerEndpoint::default_socket()
        );

        // An unknown context is an error naming it.
        let env = DockerEnv {
            docker_context: Some("nope".into()),
            ..base.clone()
        };
        let err = resolve_endpoint(&env).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(err.to_string().contains("not found"), "{err}");

        // A broken config.json is an error naming the file.
        let bad = dir.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("config.json"), "{not json").unwrap();
        let env = DockerEnv {
            docker_config: Some(bad.to_string_lossy().to_string()),
            ..Default::default()
        };
        let err = resolve_endpoint(&env).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
