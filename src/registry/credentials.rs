//! Registry credentials, found and stored exactly where the Docker CLI keeps them: the Docker
//! config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) with its `auths`,
//! `credsStore` and `credHelpers` keys, and the `docker-credential-<name>` helper protocol.
//!
//! Lookup per registry: the helper named in `credHelpers`, else the one in `credsStore`; when
//! no helper is configured, or the helper has nothing for the registry, the `auths` entry of
//! the file (base64 `auth`, `username`/`password`, `identitytoken`). Docker Hub is stored under
//! `https://index.docker.io/v1/` but `index.docker.io` and `docker.io` keys are found too; other
//! registries match by host with or without a scheme.
//!
//! The helper calls are blocking processes: async callers should wrap them in
//! `tokio::task::spawn_blocking`. Secrets live in [`Secret`], which never prints its value.

use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bollard::auth::DockerCredentials;
use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use super::reference::{
    DOCKER_HUB_CREDENTIAL_KEY, DOCKER_HUB_DOMAIN, DOCKER_HUB_LEGACY_DOMAIN, Registry,
    convert_to_hostname,
};
use super::truncate_message;
use crate::process::{self, RunError, Spec};

/// The user name credential helpers report for an identity (refresh) token.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";
/// The file inside the Docker config directory.
pub const CONFIG_FILE_NAME: &str = "config.json";
/// A helper may ask for a passphrase (gpg pinentry), so give people time, but never hang.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);
/// Helper error output is quoted in errors; keep it short.
const HELPER_MESSAGE_MAX: usize = 300;
/// The most a helper may print (per stream); a credential is a few kilobytes at most.
const HELPER_OUTPUT_MAX: usize = 1024 * 1024;

/// A password, token or other secret. `Debug` and `Display` print `<redacted>`; only
/// [`Secret::expose`] gives the value, so it cannot end up in logs by accident.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// Credentials for one registry: a user name and a password, or — when the user name is
/// [`IDENTITY_TOKEN_USERNAME`] — an identity (OAuth refresh) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name (`<token>` for identity tokens).
    pub username: String,
    /// The password or token.
    pub secret: Secret,
}

impl Credential {
    /// A user name and password.
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Self {
        Credential {
            username: username.into(),
            secret: Secret::new(secret),
        }
    }

    /// An identity token (as `docker login` keeps for registries that issue refresh tokens).
    pub fn identity_token(token: impl Into<String>) -> Self {
        Credential::new(IDENTITY_TOKEN_USERNAME, token)
    }

    /// Whether the secret is an identity token rather than a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USERNAME
    }

    /// Standard base64 of `user:password` (the `auths.<key>.auth` value and HTTP basic auth).
    pub fn basic_auth_value(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.secret.expose()))
    }

    /// The credentials for bollard's push/pull calls (`X-Registry-Auth`).
    pub fn to_docker_credentials(&self, registry: &Registry) -> DockerCredentials {
        let serveraddress = Some(registry.credential_key().to_owned());
        if self.is_identity_token() {
            DockerCredentials {
                identitytoken: Some(self.secret.expose().to_owned()),
                serveraddress,
                ..DockerCredentials::default()
            }
        } else {
            DockerCredentials {
                username: Some(self.username.clone()),
                password: Some(self.secret.expose().to_owned()),
                serveraddress,
                ..DockerCredentials::default()
            }
        }
    }

    /// Whether bollard (0.21) can send these credentials intact. It encodes `X-Registry-Auth`
    /// with standard base64 where the daemon decodes URL-safe base64 and silently drops what
    /// it cannot decode ("no basic auth credentials"): a `>`, `?`, `~` or non-ASCII byte in
    /// an unlucky position yields `+` or `/`. Callers can then fail with a clear message.
    pub fn survives_bollard_encoding(&self, registry: &Registry) -> bool {
        serde_json::to_string(&self.to_docker_credentials(registry))
            .map(|json| !STANDARD.encode(json).contains(['+', '/']))
            .unwrap_or(false)
    }

    /// The `X-Registry-Auth` header value Docker expects: URL-safe base64 of the JSON auth
    /// config, for callers that talk to the Engine API without bollard's helpers.
    pub fn x_registry_auth(&self, registry: &Registry) -> String {
        let mut auth = Map::new();
        if self.is_identity_token() {
            auth.insert("identitytoken".into(), self.secret.expose().into());
        } else {
            auth.insert("username".into(), self.username.clone().into());
            auth.insert("password".into(), self.secret.expose().into());
        }
        auth.insert("serveraddress".into(), registry.credential_key().into());
        URL_SAFE.encode(Value::Object(auth).to_string())
    }
}

/// Where credentials for a registry are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStore {
    /// A `docker-credential-<name>` helper.
    Helper(String),
    /// Plain base64 in the config file.
    File(PathBuf),
}

/// Why credentials could not be read or stored.
#[derive(Debug, Error)]
pub enum CredentialError {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set.
    #[error("cannot find the Docker config directory: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
    /// The config file exists but cannot be read.
    #[error("cannot read Docker config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid JSON (or not an object).
    #[error("invalid Docker config {path}: {reason}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong (never quotes values).
        reason: String,
    },
    /// An `auths` entry cannot be decoded.
    #[error("invalid Docker config {path}: auths.\"{key}\": {reason}")]
    InvalidEntry {
        /// The config file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
        /// What is wrong (never quotes values).
        reason: &'static str,
    },
    /// The configured helper program is not installed.
    #[error(
        "credential helper `{program}` (configured in {config}) is not installed or not in PATH"
    )]
    HelperMissing {
        /// `docker-credential-<name>`.
        program: String,
        /// The config file naming it.
        config: PathBuf,
    },
    /// The helper failed.
    #[error("credential helper `{program} {action}` failed for {server}: {message}")]
    HelperFailed {
        /// `docker-credential-<name>`.
        program: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The server URL asked for.
        server: String,
        /// The helper's own message (or exit status).
        message: String,
    },
    /// The helper did not finish in time.
    #[error(
        "credential helper `{program} {action}` did not finish within {timeout:?} for {server}"
    )]
    HelperTimeout {
        /// `docker-credential-<name>`.
        program: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The server URL asked for.
        server: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The helper answered something that is not its JSON.
    #[error("credential helper `{program}` answered invalid JSON for {server}: {reason}")]
    HelperOutput {
        /// `docker-credential-<name>`.
        program: String,
        /// The server URL asked for.
        server: String,
        /// The JSON error (position only).
        reason: String,
    },
    /// Writing the config file failed.
    #[error("cannot write Docker config {path}: {source}")]
    Write {
        /// The config file (or its directory).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CredentialError {
    /// A `hint:` line for people, when there is a useful one.
    pub fn hint(&self) -> Option<String> {
        match self {
            CredentialError::HelperMissing { program, config } => Some(format!(
                "install `{program}`, or remove `credsStore`/`credHelpers` from {}",
                config.display()
            )),
            CredentialError::Parse { path, .. } | CredentialError::InvalidEntry { path, .. } => {
                Some(format!("fix or remove {}", path.display()))
            }
            _ => None,
        }
    }
}

/// The Docker config directory: `$DOCKER_CONFIG` if set, else `$HOME/.docker`.
pub fn config_dir() -> Result<PathBuf, CredentialError> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(std::env::home_dir)
        .map(|home| home.join(".docker"))
        .ok_or(CredentialError::NoConfigDir)
}

/// The Docker config file (`config.json`), kept whole so that saving preserves every key
/// this tool does not know about. `Debug` shows the path and the registries, never `auths`
/// values.
#[derive(Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
    helper_env: Vec<(OsString, OsString)>,
    helper_timeout: Duration,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auths: Vec<&String> = self
            .doc
            .get("auths")
            .and_then(Value::as_object)
            .map(|a| a.keys().collect())
            .unwrap_or_default();
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("auths", &auths)
            .field("credsStore", &self.doc.get("credsStore"))
            .field("credHelpers", &self.doc.get("credHelpers"))
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// Loads the config from [`config_dir`]; a missing file is an empty config.
    pub fn load() -> Result<Self, CredentialError> {
        Self::load_from_dir(&config_dir()?)
    }

    /// Loads `<dir>/config.json`; a missing or empty file is an empty config.
    pub fn load_from_dir(dir: &Path) -> Result<Self, CredentialError> {
        let path = dir.join(CONFIG_FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(CredentialError::Read { path, source }),
        };
        let doc = parse_config(&text).map_err(|reason| CredentialError::Parse {
            path: path.clone(),
            reason,
        })?;
        Ok(DockerConfig {
            path,
            doc,
            helper_env: Vec::new(),
            helper_timeout: HELPER_TIMEOUT,
        })
    }

    /// How long a credential helper may run before it is killed (default 2 minutes: a helper
    /// may ask for a passphrase, but a hanging one must not stall the run).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// Extra environment for credential helper processes (e.g. `PASSWORD_STORE_DIR`).
    pub fn with_helper_env<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.helper_env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The config file path (which may not exist yet).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where credentials for `registry` are read from and written to.
    pub fn store_for(&self, registry: &Registry) -> CredentialStore {
        match helper_name(&self.doc, registry) {
            Some(name) => CredentialStore::Helper(name.to_owned()),
            None => CredentialStore::File(self.path.clone()),
        }
    }

    /// The credentials for `registry`, or `None` if there are none.
    pub fn resolve(&self, registry: &Registry) -> Result<Option<Credential>, CredentialError> {
        if let CredentialStore::Helper(name) = self.store_for(registry) {
            let helper = self.helper(&name);
            for server in helper_server_urls(registry) {
                if let Some(credential) = helper.get(&server)? {
                    return Ok(Some(credential));
                }
            }
            // Docker stops here; an `auths` entry written before the helper was configured
            // is still the user's credential, so it is better to use it than to fail a push.
        }
        let Some(auths) = self.doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        match find_auth_entry(auths, registry) {
            Some((key, entry)) => {
                decode_auth_entry(entry).map_err(|reason| CredentialError::InvalidEntry {
                    path: self.path.clone(),
                    key: key.to_owned(),
                    reason,
                })
            }
            None => Ok(None),
        }
    }

    /// [`DockerConfig::resolve`] on the blocking thread pool, for async callers (a helper is
    /// a process and may take a while, e.g. gpg decrypting for `pass`).
    pub async fn resolve_async(
        &self,
        registry: &Registry,
    ) -> Result<Option<Credential>, CredentialError> {
        let (config, registry) = (self.clone(), registry.clone());
        match tokio::task::spawn_blocking(move || config.resolve(&registry)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(CredentialError::HelperFailed {
                program: "credential lookup".into(),
                action: "get",
                server: self.path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Stores `credential` for `registry` like `docker login`: in the configured helper
    /// (leaving an empty `auths` entry, as Docker does), else base64 in the config file,
    /// which is written atomically with mode 0600.
    pub fn store(
        &mut self,
        registry: &Registry,
        credential: &Credential,
    ) -> Result<CredentialStore, CredentialError> {
        let key = registry.credential_key().to_owned();
        let store = self.store_for(registry);
        if let CredentialStore::Helper(name) = &store {
            self.helper(name).store(&key, credential)?;
        }
        let entry = auth_entry_mut(&mut self.doc, &key);
        for field in ["auth", "username", "password", "identitytoken"] {
            entry.remove(field);
        }
        if matches!(store, CredentialStore::File(_)) {
            if credential.is_identity_token() {
                entry.insert(
                    "identitytoken".into(),
                    credential.secret.expose().to_owned().into(),
                );
            } else {
                entry.insert("auth".into(), credential.basic_auth_value().into());
            }
        }
        self.save()?;
        Ok(store)
    }

    /// Removes the credentials for `registry` from its helper and from the config file.
    pub fn erase(&mut self, registry: &Registry) -> Result<(), CredentialError> {
        if let CredentialStore::Helper(name) = self.store_for(registry) {
            self.helper(&name).erase(registry.credential_key())?;
        }
        let hosts = registry_hostnames(registry);
        if let Some(auths) = self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            auths.retain(|key, _| !hosts.contains(&convert_to_hostname(key)));
        }
        self.save()
    }

    fn helper(&self, name: &str) -> CredentialHelper {
        CredentialHelper {
            name: name.to_owned(),
            env: self.helper_env.clone(),
            config: self.path.clone(),
            timeout: self.helper_timeout,
        }
    }

    /// Writes the config atomically (temp file + rename) with mode 0600, creating the
    /// directory (0700) if needed and writing through a symlinked config file.
    fn save(&self) -> Result<(), CredentialError> {
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let write_err = |source| CredentialError::Write {
            path: target.clone(),
            source,
        };
        create_private_dir(&dir).map_err(write_err)?;
        let mut text = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut text,
            serde_json::ser::PrettyFormatter::with_indent(b"\t"),
        );
        serde::Serialize::serialize(&self.doc, &mut ser)
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(&dir)
            .map_err(write_err)?;
        set_private_mode(tmp.as_file()).map_err(write_err)?;
        tmp.write_all(&text).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(&target).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn set_private_mode(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private_mode(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Parses config text; empty text is an empty config. Errors carry positions, not content.
fn parse_config(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err("the top level is not a JSON object".into()),
        Err(e) => Err(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

/// The host names that mean `registry` in config keys.
fn registry_hostnames(registry: &Registry) -> Vec<&str> {
    match registry {
        Registry::DockerHub => vec![DOCKER_HUB_LEGACY_DOMAIN, DOCKER_HUB_DOMAIN],
        Registry::Host(host) => vec![host.as_str()],
    }
}

/// The helper configured for `registry`: `credHelpers` (by host, any scheme), else `credsStore`.
fn helper_name<'a>(doc: &'a Map<String, Value>, registry: &Registry) -> Option<&'a str> {
    let hosts = registry_hostnames(registry);
    let per_registry = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .get(registry.credential_key())
                .or_else(|| {
                    helpers
                        .iter()
                        .find(|(key, _)| hosts.contains(&convert_to_hostname(key)))
                        .map(|(_, v)| v)
                })
                .and_then(Value::as_str)
        });
    per_registry
        .or_else(|| doc.get("credsStore").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
}

/// Server URLs to ask a helper for, most likely first: Docker's own key, then the forms other
/// tools write (`docker.io`, a host with a scheme).
fn helper_server_urls(registry: &Registry) -> Vec<String> {
    match registry {
        Registry::DockerHub => vec![
            DOCKER_HUB_CREDENTIAL_KEY.to_owned(),
            DOCKER_HUB_LEGACY_DOMAIN.to_owned(),
            DOCKER_HUB_DOMAIN.to_owned(),
        ],
        Registry::Host(host) => vec![
            host.clone(),
            format!("https://{host}"),
            format!("http://{host}"),
        ],
    }
}

/// The `auths` entry for `registry`: the exact credential key first, then any key whose host
/// part matches (keys are compared like Docker's `ConvertToHostname`).
fn find_auth_entry<'a>(
    auths: &'a Map<String, Value>,
    registry: &Registry,
) -> Option<(&'a str, &'a Map<String, Value>)> {
    let hosts = registry_hostnames(registry);
    let exact = auths.get_key_value(registry.credential_key());
    exact
        .into_iter()
        .chain(
            auths
                .iter()
                .filter(|(key, _)| hosts.contains(&convert_to_hostname(key))),
        )
        .find_map(|(key, value)| value.as_object().map(|entry| (key.as_str(), entry)))
}

/// Decodes one `auths` entry. An identity token wins over a password (it is what `docker
/// login` keeps for registries that issue one); an entry without secrets is no credential.
fn decode_auth_entry(entry: &Map<String, Value>) -> Result<Option<Credential>, &'static str> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::identity_token(token)));
    }
    if let Some(auth) = field("auth") {
        let decoded = STANDARD
            .decode(auth.trim())
            .map_err(|_| "`auth` is not valid base64")?;
        let decoded = String::from_utf8(decoded).map_err(|_| "`auth` is not valid UTF-8")?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or("`auth` does not decode to `user:password`")?;
        return Ok(Some(Credential::new(user, password.trim_matches('\0'))));
    }
    match (field("username"), field("password")) {
        (Some(user), Some(password)) => Ok(Some(Credential::new(user, password))),
        _ => Ok(None),
    }
}

/// The `auths.<key>` object, created when missing (also `auths` itself).
fn auth_entry_mut<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let auths = doc
        .entry("auths")
        .and_modify(|v| {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        unreachable!("auths was just made an object")
    };
    let entry = auths
        .entry(key)
        .and_modify(|v| {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(entry) = entry else {
        unreachable!("the entry was just made an object")
    };
    entry
}

/// What a helper prints for `get`.
#[derive(Deserialize)]
struct HelperCredential {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Reads a helper's `get` answer. An empty user and secret means "not found" (what Debian's
/// `docker-credential-pass` 0.6 answers, with exit status 0).
fn parse_get_output(stdout: &[u8]) -> Result<Option<Credential>, String> {
    let parsed: HelperCredential = serde_json::from_slice(stdout)
        .map_err(|e| format!("line {}, column {}", e.line(), e.column()))?;
    if parsed.username.is_empty() && parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::new(parsed.username, parsed.secret)))
}

/// Whether a failed helper said "credentials not found" (Docker's `IsErrCredentialsNotFound`).
fn is_not_found_message(message: &str) -> bool {
    message.contains("credentials not found")
}

/// One `docker-credential-<name>` program.
struct CredentialHelper {
    name: String,
    env: Vec<(OsString, OsString)>,
    config: PathBuf,
    timeout: Duration,
}

/// What a helper process left behind.
struct HelperRun {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl HelperRun {
    /// The helper's own words: trimmed stdout, else stderr, else the exit status; capped.
    fn message(&self) -> String {
        let pick = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
        let mut message = pick(&self.stdout);
        if message.is_empty() {
            message = pick(&self.stderr);
        }
        if message.is_empty() {
            message = self.status.to_string();
        }
        truncate_message(&mut message, HELPER_MESSAGE_MAX);
        message
    }
}

impl CredentialHelper {
    fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    fn get(&self, server: &str) -> Result<Option<Credential>, CredentialError> {
        let run = self.run("get", server, server.as_bytes())?;
        if !run.status.success() {
            let message = run.message();
            if is_not_found_message(&message) {
                return Ok(None);
            }
            return Err(self.failed("get", server, message));
        }
        parse_get_output(&run.stdout).map_err(|reason| CredentialError::HelperOutput {
            program: self.program(),
            server: server.to_owned(),
            reason,
        })
    }

    fn store(&self, server: &str, credential: &Credential) -> Result<(), CredentialError> {
        let mut input = Map::new();
        input.insert("ServerURL".into(), server.into());
        input.insert("Username".into(), credential.username.clone().into());
        input.insert("Secret".into(), credential.secret.expose().into());
        let input = Value::Object(input).to_string();
        let run = self.run("store", server, input.as_bytes())?;
        if !run.status.success() {
            return Err(self.failed("store", server, run.message()));
        }
        Ok(())
    }

    fn erase(&self, server: &str) -> Result<(), CredentialError> {
        let run = self.run("erase", server, server.as_bytes())?;
        if !run.status.success() {
            let message = run.message();
            if is_not_found_message(&message) {
                return Ok(());
            }
            return Err(self.failed("erase", server, message));
        }
        Ok(())
    }

    fn failed(&self, action: &'static str, server: &str, message: String) -> CredentialError {
        CredentialError::HelperFailed {
            program: self.program(),
            action,
            server: server.to_owned(),
            message,
        }
    }

    /// Runs `docker-credential-<name> <action>` with `input` on stdin, bounded by a timeout
    /// (the helper and whatever it started are killed when it runs out).
    fn run(
        &self,
        action: &'static str,
        server: &str,
        input: &[u8],
    ) -> Result<HelperRun, CredentialError> {
        let program = self.program();
        let spec = self
            .env
            .iter()
            .fold(Spec::new(&program).arg(action), |spec, (k, v)| {
                spec.env(k, v)
            })
            .stdin_bytes(input)
            .timeout(self.timeout)
            .output_cap(HELPER_OUTPUT_MAX);
        let output = process::run(&spec).map_err(|e| match e {
            RunError::Missing { .. } => CredentialError::HelperMissing {
                program: program.clone(),
                config: self.config.clone(),
            },
            RunError::TimedOut { .. } => CredentialError::HelperTimeout {
                program: program.clone(),
                action,
                server: server.to_owned(),
                timeout: self.timeout,
            },
            RunError::Spawn { source, .. } => {
                self.failed(action, server, format!("cannot start: {source}"))
            }
            other => self.failed(action, server, other.to_string()),
        })?;
        Ok(HelperRun {
            status: output.status,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

impl crate::diagnostic::Diagnostic for CredentialError {
    fn hints(&self) -> Vec<String> {
        self.hint().into_iter().collect()
    }
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::Auth
    }
    fn is_environment(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("test config must be an object"),
        }
    }

    fn host(h: &str) -> Registry {
        Registry::Host(h.to_owned())
    }

    #[test]
    fn secret_never_prints() {
        let c = Credential::new("alice", "hunter2-secret");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.secret.to_string(), "<redacted>");
        assert_eq!(c.secret.expose(), "hunter2-secret");
    }

    #[test]
    fn helper_selection() {
        let config = doc(json!({
            "credsStore": "pass",
            "credHelpers": {
                "gcr.io": "gcloud",
                "https://quay.io": "quay",
                "docker.io": "hub",
                "empty.io": ""
            }
        }));
        let cases = [
            (host("gcr.io"), Some("gcloud")),
            (host("quay.io"), Some("quay")),
            (Registry::DockerHub, Some("hub")),
            (host("localhost:5000"), Some("pass")),
            (host("empty.io"), None),
        ];
        for (registry, want) in cases {
            assert_eq!(helper_name(&config, &registry), want, "{registry}");
        }
        assert_eq!(
            helper_name(&doc(json!({"credsStore": ""})), &host("x.io")),
            None
        );
        assert_eq!(helper_name(&Map::new(), &Registry::DockerHub), None);
    }

    #[test]
    fn auth_entry_lookup() {
        let auths = doc(json!({
            "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
            "docker.io": {"auth": "b3RoZXI6cHc="},
            "http://localhost:5000/v2/": {"auth": "bG9jYWw6cHc="},
            "127.0.0.1:5001": {"auth": "ZXhhY3Q6cHc="},
            "https://127.0.0.1:5001": {"auth": "c2NoZW1lOnB3"},
            "quay.io": "not an object"
        }));
        let cases = [
            (Registry::DockerHub, Some("https://index.docker.io/v1/")),
            (host("localhost:5000"), Some("http://localhost:5000/v2/")),
            (host("127.0.0.1:5001"), Some("127.0.0.1:5001")),
            (host("localhost"), None),
            (host("quay.io"), None),
        ];
        for (registry, want) in cases {
            assert_eq!(
                find_auth_entry(&auths, &registry).map(|(k, _)| k),
                want,
                "{registry}"
            );
        }
        let hub_only_alias = doc(json!({"index.docker.io": {"auth": "eDp5"}}));
        assert_eq!(
            find_auth_entry(&hub_only_alias, &Registry::DockerHub).map(|(k, _)| k),
            Some("index.docker.io")
        );
    }

    #[test]
    fn auth_entry_decoding() {
        let ok = |v: Value| decode_auth_entry(&doc(v)).expect("decodes");
        assert_eq!(
            ok(json!({"auth": STANDARD.encode("user:pa:ss\0\0")})),
            Some(Credential::new("user", "pa:ss"))
        );
        assert_eq!(
            ok(json!({"username": "u", "password": "p"})),
            Some(Credential::new("u", "p"))
        );
        assert_eq!(
            ok(json!({"auth": STANDARD.encode("u:p"), "identitytoken": "tok"})),
            Some(Credential::identity_token("tok"))
        );
        assert_eq!(ok(json!({})), None);
        assert_eq!(ok(json!({"auth": "", "email": "a@b"})), None);
        assert_eq!(ok(json!({"username": "u"})), None);
        for (bad, why) in [
            (json!({"auth": "%%%"}), "base64"),
            (json!({"auth": STANDARD.encode("nocolon")}), "user:password"),
            (
                json!({"auth": STANDARD.encode([0xff, 0xfe, b':'])}),
                "UTF-8",
            ),
        ] {
            let err = decode_auth_entry(&doc(bad)).expect_err("rejects");
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn helper_get_output() {
        assert_eq!(
            parse_get_output(br#"{"ServerURL":"h","Username":"u","Secret":"s"}"#).unwrap(),
            Some(Credential::new("u", "s"))
        );
        let token = parse_get_output(br#"{"ServerURL":"h","Username":"<token>","Secret":"t"}"#)
            .unwrap()
            .unwrap();
        assert!(token.is_identity_token());
        assert_eq!(
            parse_get_output(br#"{"ServerURL":"h","Username":"","Secret":""}"#).unwrap(),
            None
        );
        let err = parse_get_output(b"secret-looking garbage").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(is_not_found_message(
            "credentials not found in native keychain"
        ));
        assert!(!is_not_found_message("exit status 1"));
    }

    #[test]
    fn server_urls_for_helpers() {
        assert_eq!(
            helper_server_urls(&Registry::DockerHub),
            [
                "https://index.docker.io/v1/",
                "index.docker.io",
                "docker.io"
            ]
        );
        assert_eq!(
            helper_server_urls(&host("r.io:5000")),
            ["r.io:5000", "https://r.io:5000", "http://r.io:5000"]
        );
    }

    #[test]
    fn docker_credentials_conversion() {
        let hub = Registry::DockerHub;
        let pw = Credential::new("u", "p").to_docker_credentials(&hub);
        assert_eq!(pw.username.as_deref(), Some("u"));
        assert_eq!(pw.password.as_deref(), Some("p"));
        assert_eq!(
            pw.serveraddress.as_deref(),
            Some("https://index.docker.io/v1/")
        );
        assert_eq!(pw.identitytoken, None);
        let tok = Credential::identity_token("t").to_docker_credentials(&host("r.io"));
        assert_eq!(tok.identitytoken.as_deref(), Some("t"));
        assert_eq!(tok.username, None);
        assert_eq!(tok.serveraddress.as_deref(), Some("r.io"));

        let header = Credential::new("u", "p").x_registry_auth(&host("r.io"));
        let decoded: Value = serde_json::from_slice(&URL_SAFE.decode(header).unwrap()).unwrap();
        assert_eq!(
            decoded,
            json!({"username": "u", "password": "p", "serveraddress": "r.io"})
        );
        assert_eq!(Credential::new("u", "p").basic_auth_value(), "dTpw");
    }

    #[test]
    fn bollard_encoding_hazard() {
        // Measured against Docker 20.10 with bollard 0.21: the third password's push failed
        // with "no basic auth credentials", the others went through.
        let registry = host("127.0.0.1:5001");
        for (password, survives) in [
            ("pw-a~", true),
            ("pw-ab~", true),
            ("pw-abc~", false),
            ("devspace-test-pw-7Qx", true),
        ] {
            assert_eq!(
                Credential::new("devspace", password).survives_bollard_encoding(&registry),
                survives,
                "{password}"
            );
        }
    }

    #[test]
    fn config_parsing() {
        assert!(parse_config("").unwrap().is_empty());
        assert!(parse_config(" \n").unwrap().is_empty());
        assert!(
            parse_config("[]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        let err = parse_config("{\"auths\": {\"x\": \"secret\"").unwrap_err();
        assert!(err.contains("line 1") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn config_debug_hides_auths() {
        let dir = tempfile::tempdir().unwrap();
        let auth = STANDARD.encode("user:hunter2-secret");
        std::fs::write(
            dir.path().join("config.json"),
            json!({"auths": {"r.io": {"auth": auth, "password": "hunter2-secret"}}}).to_string(),
        )
        .unwrap();
        let config = DockerConfig::load_from_dir(dir.path()).unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("r.io"), "{debug}");
        assert!(
            !debug.contains(&auth) && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn store_and_resolve_in_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("nested").join(".docker");
        let mut config = DockerConfig::load_from_dir(&conf_dir).unwrap();
        let registry = host("localhost:5000");
        assert_eq!(config.resolve(&registry).unwrap(), None);
        let stored = config
            .store(&registry, &Credential::new("u", "p@ss"))
            .unwrap();
        assert_eq!(stored, CredentialStore::File(conf_dir.join("config.json")));
        let reloaded = DockerConfig::load_from_dir(&conf_dir).unwrap();
        assert_eq!(
            reloaded.resolve(&registry).unwrap(),
            Some(Credential::new("u", "p@ss"))
        );
        config.erase(&registry).unwrap();
        let reloaded = DockerConfig::load_from_dir(&conf_dir).unwrap();
        assert_eq!(reloaded.resolve(&registry).unwrap(), None);
    }

    #[test]
    fn store_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let original = json!({
            "auths": {"other.io": {"auth": "b3RoZXI6cHc=", "email": "a@b"}, "r.io": {"email": "me@r"}},
            "psFormat": "table {{.ID}}",
            "proxies": {"default": {"httpProxy": "http://p"}}
        });
        std::fs::write(dir.path().join("config.json"), original.to_string()).unwrap();
        let mut config = DockerConfig::load_from_dir(dir.path()).unwrap();
        config
            .store(&host("r.io"), &Credential::new("u", "p"))
            .unwrap();
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(written["psFormat"], original["psFormat"]);
        assert_eq!(written["proxies"], original["proxies"]);
        assert_eq!(written["auths"]["other.io"], original["auths"]["other.io"]);
        assert_eq!(
            written["auths"]["r.io"],
            json!({"email": "me@r", "auth": "dTpw"})
        );
    }

    #[cfg(unix)]
    #[test]
    fn stored_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut config = DockerConfig::load_from_dir(dir.path()).unwrap();
        config
            .store(&Registry::DockerHub, &Credential::new("u", "p"))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("\"https://index.docker.io/v1/\""));
    }

    #[test]
    fn a_hanging_helper_is_stopped_and_named() {
        use std::os::unix::fs::PermissionsExt;
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-devspace-test-hangs");
        std::fs::write(&helper, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credsStore": "devspace-test-hangs"}"#,
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let config = DockerConfig::load_from_dir(dir.path())
            .unwrap()
            .with_helper_env([("PATH", path)])
            .with_helper_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = config.resolve(&host("r.io")).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it did not wait for the helper"
        );
        assert!(
            matches!(err, CredentialError::HelperTimeout { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("docker-credential-devspace-test-hangs get") && text.contains("r.io"),
            "{text}"
        );
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credsStore": "devspace-test-no-such-helper"}"#,
        )
        .unwrap();
        let config = DockerConfig::load_from_dir(dir.path()).unwrap();
        let err = config.resolve(&host("r.io")).unwrap_err();
        assert!(
            matches!(err, CredentialError::HelperMissing { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("docker-credential-devspace-test-no-such-helper")
        );
        assert!(err.hint().unwrap().contains("credsStore"));
    }
}
