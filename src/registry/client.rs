//! A small client for the registry HTTP API v2 (reqwest + rustls): ping, login verification,
//! manifest existence checks (with the digest), tag lists, and the registry-side retag the
//! content cache and `retag: tags changed` use: GET a manifest, HEAD its blobs, PUT the same
//! bytes under another tag of the same repository (no layer moves through this machine).
//! Written by hand rather than with an OCI client crate: it needs exactly these few calls on
//! top of the challenge handling and http/https rules it already has for the lookups.
//!
//! It speaks both authentication schemes registries announce in `WWW-Authenticate`: `Basic`
//! (htpasswd registries) and `Bearer` (token services such as Docker Hub's, with basic
//! credentials or an identity/refresh token). Like Docker, it tries `https` first and falls
//! back to plain `http` only for loopback hosts and registries the daemon lists as insecure.
//! Every request has a timeout; errors name the registry and never contain a secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::credentials::Credential;
use super::reference::{Reference, Registry};
use super::truncate_message;
use crate::exit::ExitCode;

/// Manifest media types a `HEAD` accepts: Docker v2 manifest and list, OCI manifest and index.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

/// Token lifetime the distribution spec prescribes when a token service does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Renew tokens a little before they expire.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(10);
/// Registry error details quoted in messages are capped.
const DETAIL_MAX: usize = 300;
/// OAuth client id sent with identity-token refreshes.
const OAUTH_CLIENT_ID: &str = "devspace";

/// Settings of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request.
    pub request_timeout: Duration,
    /// Registries reachable over plain http (loopback hosts always are).
    pub insecure: InsecureRegistries,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            insecure: InsecureRegistries::default(),
            user_agent: format!("devspace/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Registries that may be spoken to over plain http (and https without certificate checks),
/// as the Docker daemon allows for `insecure-registries`: host names and CIDR ranges.
/// Loopback (`localhost`, `127.0.0.0/8`, `::1`) is always included, like Docker's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsecureRegistries {
    hosts: Vec<String>,
    cidrs: Vec<(IpAddr, u8)>,
}

impl InsecureRegistries {
    /// The daemon's insecure registries, from `docker info`'s `RegistryConfig`.
    pub fn from_daemon(config: &bollard::models::RegistryServiceConfig) -> Self {
        let mut out = InsecureRegistries::default();
        for cidr in config.insecure_registry_cidrs.iter().flatten() {
            out.add(cidr);
        }
        for (name, info) in config.index_configs.iter().flatten() {
            if info.secure == Some(false) {
                out.add(info.name.as_deref().unwrap_or(name));
            }
        }
        out
    }

    /// Adds a CIDR (`10.0.0.0/8`), an IP, or a `host[:port]`.
    pub fn add(&mut self, entry: &str) {
        if let Some(cidr) = parse_cidr(entry) {
            self.cidrs.push(cidr);
        } else {
            self.hosts.push(entry.trim().to_lowercase());
        }
    }

    /// Whether `host` (`host[:port]`, IPv6 in brackets) may be spoken to over http.
    pub fn allows_http(&self, host: &str) -> bool {
        let host = host.to_lowercase();
        let bare = strip_port(&host);
        if bare == "localhost" || self.hosts.iter().any(|h| *h == host || h == bare) {
            return true;
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) => {
                ip.is_loopback()
                    || self
                        .cidrs
                        .iter()
                        .any(|&(net, prefix)| in_cidr(ip, net, prefix))
            }
            Err(_) => false,
        }
    }
}

/// Whether `host` is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback_host(host: &str) -> bool {
    let host = host.to_lowercase();
    let bare = strip_port(&host);
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` → `host`; `[::1]:5000` → `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn parse_cidr(entry: &str) -> Option<(IpAddr, u8)> {
    let entry = entry.trim();
    match entry.split_once('/') {
        Some((ip, prefix)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (prefix <= max).then_some((ip, prefix))
        }
        None => {
            let ip: IpAddr = entry.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// What a registry said when it answered.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry (or its token service) refused the request for lack of valid credentials.
    #[error("{}", unauthorized_message(.registry, *.status, .user.as_deref(), .detail))]
    Unauthorized {
        /// The registry.
        registry: Registry,
        /// 401 or 403.
        status: u16,
        /// The user whose credentials were refused, if any were sent.
        user: Option<String>,
        /// The registry's own explanation.
        detail: String,
    },
    /// No connection could be made.
    #[error("cannot reach registry {registry} at {url}: {cause}")]
    Unreachable {
        /// The registry.
        registry: Registry,
        /// The URL tried last.
        url: String,
        /// The innermost error (e.g. `Connection refused`).
        cause: String,
    },
    /// The registry did not answer in time.
    #[error("registry {registry} did not answer within {timeout:?} ({url})")]
    Timeout {
        /// The registry.
        registry: Registry,
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// An unexpected HTTP status.
    #[error("registry {registry} answered HTTP {status} to {method} {url}: {detail}")]
    Status {
        /// The registry.
        registry: Registry,
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's own explanation.
        detail: String,
    },
    /// The registry broke the protocol (bad challenge, bad JSON, ...).
    #[error("registry {registry}: {reason}")]
    Protocol {
        /// The registry.
        registry: Registry,
        /// What was wrong.
        reason: String,
    },
}

fn unauthorized_message(
    registry: &Registry,
    status: u16,
    user: Option<&str>,
    detail: &str,
) -> String {
    match user {
        Some(user) => format!(
            "registry {registry} refused the credentials of user `{user}` (HTTP {status}: {detail})"
        ),
        None => format!(
            "registry {registry} requires authentication and no credentials were found for it (HTTP {status}: {detail})"
        ),
    }
}

impl RegistryError {
    /// The registry the error is about.
    pub fn registry(&self) -> &Registry {
        match self {
            RegistryError::Unauthorized { registry, .. }
            | RegistryError::Unreachable { registry, .. }
            | RegistryError::Timeout { registry, .. }
            | RegistryError::Status { registry, .. }
            | RegistryError::Protocol { registry, .. } => registry,
        }
    }

    /// Whether the registry refused the credentials (or wanted some).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RegistryError::Unauthorized { .. })
    }

    /// The documented exit code for this class of error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RegistryError::Unauthorized { .. } => ExitCode::Auth,
            RegistryError::Unreachable { .. } | RegistryError::Timeout { .. } => {
                ExitCode::Unreachable
            }
            RegistryError::Status { .. } | RegistryError::Protocol { .. } => ExitCode::Failure,
        }
    }

    /// A `hint:` line for people.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unauthorized { registry, .. } => Some(registry.login_hint()),
            RegistryError::Unreachable { registry, .. }
            | RegistryError::Timeout { registry, .. } => Some(format!(
                "is the registry running and reachable at {}?",
                registry.api_host()
            )),
            _ => None,
        }
    }
}

/// How a registry answered an anonymous `GET /v2/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// It answered 200: no authentication needed.
    Open,
    /// It answered 401: credentials needed.
    AuthRequired,
}

/// An authentication challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication.
    Basic,
    /// A token service.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The `scope` the registry asked for.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value (RFC 7235 auth-params, quoted strings with
/// escapes). Unknown schemes and a `Bearer` without `realm` give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_auth_params(params);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

fn parse_auth_params(input: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_owned();
        if key.is_empty() {
            if chars.peek().is_none() {
                return out;
            }
            chars.next();
            continue;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned();
        }
        out.push((key, value));
    }
}

/// What a token service answers.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `{"errors":[{"code":..,"message":..}]}` from the distribution API.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// `{"name":..,"tags":[..]}`; `tags` is `null` for a repository without tags.
#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The registry's explanation from an error body, else the status reason; capped.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    let from_body = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| {
            b.errors
                .iter()
                .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{}: {}", e.code, e.message),
                    (true, false) => e.message.clone(),
                    _ => e.code.clone(),
                })
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty());
    let mut detail = from_body.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("no reason")
            .to_lowercase()
    });
    truncate_message(&mut detail, DETAIL_MAX);
    detail
}

/// The `next` URL of a `Link: <...>; rel="next"` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// The innermost error message of a chain (`Connection refused (os error 111)`).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Media types of a single-platform image manifest (Docker v2 schema 2, OCI).
const IMAGE_MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
];

/// A manifest as the registry stores it: the exact bytes (their digest is the image's
/// digest), the media type, and the parsed JSON.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: bytes::Bytes,
    pub body: serde_json::Value,
}

impl Manifest {
    /// The config and layer digests of a single-platform image manifest; why it is not one
    /// otherwise (a manifest list or OCI index, another media type, malformed).
    pub fn blobs(&self) -> Result<Vec<String>, String> {
        if self.body.get("manifests").is_some() {
            return Err(format!("a manifest list ({})", self.media_type));
        }
        if !IMAGE_MANIFEST_TYPES.contains(&self.media_type.as_str()) {
            return Err(format!("not an image manifest ({})", self.media_type));
        }
        let digest =
            |v: &serde_json::Value| v.get("digest").and_then(|d| d.as_str()).map(str::to_owned);
        let config = self
            .body
            .get("config")
            .and_then(digest)
            .ok_or("a manifest without config")?;
        let layers = self
            .body
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or("a manifest without layers")?;
        let mut blobs = vec![config];
        for layer in layers {
            blobs.push(digest(layer).ok_or("a layer without digest")?);
        }
        Ok(blobs)
    }
}

/// What a cache lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A usable image manifest.
    Found(Manifest),
    /// Nothing under that tag.
    Missing,
    /// Something is there but cannot be reused (said why).
    Unusable(String),
}

/// An `Authorization` value kept for later requests to the same host and scope.
struct CachedAuth {
    header: String,
    expires: Option<Instant>,
}

/// Cache key: API host, scope (empty for `/v2/`), and a fingerprint of the credential (empty
/// when anonymous) so a wrong password never reuses a token obtained with the right one.
type AuthKey = (String, String, String);

/// One registry request, repeatable after an authentication challenge.
struct Request<'a> {
    registry: &'a Registry,
    method: Method,
    /// Path and query, starting with `/v2/`.
    path: String,
    accept: Option<&'static str>,
    /// `repository:<path>:pull` etc.; `None` for `/v2/`.
    scope: Option<String>,
    credential: Option<&'a Credential>,
    /// Content type and body (manifest PUTs).
    body: Option<(String, bytes::Bytes)>,
}

impl<'a> Request<'a> {
    /// `GET /v2/`, the API's base endpoint that pings and logins use.
    fn base(registry: &'a Registry, credential: Option<&'a Credential>) -> Self {
        Request {
            registry,
            method: Method::GET,
            path: "/v2/".into(),
            accept: None,
            scope: None,
            credential,
            body: None,
        }
    }

    /// A request that needs pull access to `repository`'s repository.
    fn pull(
        registry: &'a Registry,
        repository: &Reference,
        method: Method,
        path: String,
        credential: Option<&'a Credential>,
    ) -> Self {
        Request {
            registry,
            method,
            path,
            accept: None,
            scope: Some(format!("repository:{}:pull", repository.path())),
            credential,
            body: None,
        }
    }

    /// `reference`'s manifest (its digest, else tag, else `latest`), every manifest media type
    /// accepted, with pull access.
    fn manifest(
        registry: &'a Registry,
        reference: &Reference,
        method: Method,
        credential: Option<&'a Credential>,
    ) -> Self {
        let path = format!(
            "/v2/{}/manifests/{}",
            reference.path(),
            reference.manifest_reference()
        );
        let mut request = Request::pull(registry, reference, method, path, credential);
        request.accept = Some(MANIFEST_ACCEPT);
        request
    }

    /// The same request with push access too (a token service is asked for both, so one
    /// token serves the GET and the PUTs of a retag).
    fn and_push(mut self) -> Self {
        if let Some(scope) = &mut self.scope {
            scope.push_str(",push");
        }
        self
    }

    fn auth_key(&self) -> AuthKey {
        (
            self.registry.api_host().to_owned(),
            self.scope.clone().unwrap_or_default(),
            self.credential
                .map(|c| {
                    let mut hash = Sha256::new();
                    hash.update(c.username.as_bytes());
                    hash.update([0]);
                    hash.update(c.secret.expose().as_bytes());
                    hex::encode(hash.finalize())
                })
                .unwrap_or_default(),
        )
    }
}

/// A registry v2 API client. Cheap to share (`&self` methods); it caches each host's scheme
/// and the tokens it obtained.
pub struct RegistryClient {
    http: reqwest::Client,
    insecure_http: reqwest::Client,
    options: ClientOptions,
    schemes: Mutex<HashMap<String, Scheme>>,
    auth: Mutex<HashMap<AuthKey, CachedAuth>>,
}

impl RegistryClient {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Self, reqwest::Error> {
        let build = |accept_invalid: bool| {
            reqwest::Client::builder()
                .connect_timeout(options.connect_timeout)
                .timeout(options.request_timeout)
                .user_agent(options.user_agent.clone())
                .danger_accept_invalid_certs(accept_invalid)
                .build()
        };
        Ok(RegistryClient {
            http: build(false)?,
            insecure_http: build(true)?,
            options,
            schemes: Mutex::new(HashMap::new()),
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// `GET /v2/` without credentials: is the registry there, and does it want credentials?
    pub async fn ping(&self, registry: &Registry) -> Result<Ping, RegistryError> {
        let request = Request::base(registry, None);
        let (response, url) = self.send_once(&request, None).await?;
        match response.status() {
            s if s.is_success() => Ok(Ping::Open),
            StatusCode::UNAUTHORIZED => Ok(Ping::AuthRequired),
            status => Err(self.status_error(&request, &url, status, response).await),
        }
    }

    /// Checks `credential` against the registry the way `docker login` does: `GET /v2/`,
    /// answering its challenge (basic, or a token without scope). A registry that needs no
    /// authentication accepts any credential.
    pub async fn verify_login(
        &self,
        registry: &Registry,
        credential: &Credential,
    ) -> Result<(), RegistryError> {
        let request = Request::base(registry, Some(credential));
        let (response, url) = self.send(&request).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self
            .status_error(&request, &url, response.status(), response)
            .await)
    }

    /// Whether the manifest for `reference` (its digest, else tag, else `latest`) exists:
    /// `Some(digest)` if it does, `None` on 404. Uses `HEAD` with every manifest media type.
    pub async fn manifest_exists(
        &self,
        reference: &Reference,
        credential: Option<&Credential>,
    ) -> Result<Option<String>, RegistryError> {
        let registry = reference.registry();
        let mut request = Request::manifest(&registry, reference, Method::HEAD, credential);
        let (response, url) = self.send(&request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            status => return Err(self.status_error(&request, &url, status, response).await),
        }
        if let Some(digest) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        {
            return Ok(Some(digest.to_owned()));
        }
        // Registries need not send the digest header; the digest is that of the body.
        request.method = Method::GET;
        let (response, url) = self.send(&request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| self.transport_error(&registry, &url, &e))?;
                Ok(Some(format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(&body))
                )))
            }
            status => Err(self.status_error(&request, &url, status, response).await),
        }
    }

    /// The manifest `reference` names (its digest, else tag, else `latest`), exactly as the
    /// registry stores it; `None` on 404. Asked with pull and push scope when `for_push`, so
    /// the PUTs of a retag reuse the token.
    pub async fn get_manifest(
        &self,
        reference: &Reference,
        credential: Option<&Credential>,
        for_push: bool,
    ) -> Result<Option<Manifest>, RegistryError> {
        let registry = reference.registry();
        let mut request = Request::manifest(&registry, reference, Method::GET, credential);
        if for_push {
            request = request.and_push();
        }
        let (response, url) = self.send(&request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            status => return Err(self.status_error(&request, &url, status, response).await),
        }
        let header_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&registry, &url, &e))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                registry: registry.clone(),
                reason: format!("invalid manifest from {url}: {e}"),
            })?;
        let media_type = body
            .get("mediaType")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or(header_type)
            .unwrap_or_default();
        Ok(Some(Manifest {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            media_type,
            body,
            bytes,
        }))
    }

    /// Whether blob `digest` exists in `repository`'s repository (`HEAD`).
    pub async fn blob_exists(
        &self,
        repository: &Reference,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<bool, RegistryError> {
        let registry = repository.registry();
        let path = format!("/v2/{}/blobs/{digest}", repository.path());
        let request = Request::pull(&registry, repository, Method::HEAD, path, credential);
        let (response, url) = self.send(&request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            status => Err(self.status_error(&request, &url, status, response).await),
        }
    }

    /// Stores `manifest` (its exact bytes and media type) under `tag` in `repository`'s
    /// repository; the blobs must be there already. Returns the digest.
    pub async fn put_manifest(
        &self,
        repository: &Reference,
        tag: &str,
        manifest: &Manifest,
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let registry = repository.registry();
        let path = format!("/v2/{}/manifests/{tag}", repository.path());
        let mut request =
            Request::pull(&registry, repository, Method::PUT, path, credential).and_push();
        request.body = Some((manifest.media_type.clone(), manifest.bytes.clone()));
        let (response, url) = self.send(&request).await?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(self.status_error(&request, &url, status, response).await);
        }
        Ok(manifest.digest.clone())
    }

    /// Looks up `reference` as a cache entry: a single-platform image manifest whose config and
    /// layer blobs are all in the repository. A manifest list or OCI index, another media
    /// type, or a missing blob is [`Lookup::Unusable`] (never a hit).
    pub async fn lookup_image(
        &self,
        reference: &Reference,
        credential: Option<&Credential>,
    ) -> Result<Lookup, RegistryError> {
        let Some(manifest) = self.get_manifest(reference, credential, true).await? else {
            return Ok(Lookup::Missing);
        };
        let blobs = match manifest.blobs() {
            Ok(blobs) => blobs,
            Err(why) => return Ok(Lookup::Unusable(why)),
        };
        for blob in &blobs {
            if !self.blob_exists(reference, blob, credential).await? {
                return Ok(Lookup::Unusable(format!("blob {blob} is missing")));
            }
        }
        Ok(Lookup::Found(manifest))
    }

    /// Every tag of `repository`'s repository (tag and digest ignored), following pagination.
    /// A repository the registry does not know has no tags.
    pub async fn list_tags(
        &self,
        repository: &Reference,
        credential: Option<&Credential>,
    ) -> Result<Vec<String>, RegistryError> {
        let registry = repository.registry();
        let path = format!("/v2/{}/tags/list?n=1000", repository.path());
        let mut request = Request::pull(&registry, repository, Method::GET, path, credential);
        let mut tags = Vec::new();
        loop {
            let (response, url) = self.send(&request).await?;
            match response.status() {
                StatusCode::NOT_FOUND => return Ok(tags),
                s if s.is_success() => {}
                status => return Err(self.status_error(&request, &url, status, response).await),
            }
            let next = next_link(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(&registry, &url, &e))?;
            let page: TagList =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                    registry: registry.clone(),
                    reason: format!("invalid tag list from {url}: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                // Only follow links on the same registry; a relative link is the usual form.
                Some(next) if next.starts_with('/') => request.path = next,
                _ => return Ok(tags),
            }
        }
    }

    /// Sends `request`, answering one authentication challenge if the registry raises one.
    /// 401/403 responses are returned, not turned into errors, so callers decide.
    async fn send(
        &self,
        request: &Request<'_>,
    ) -> Result<(reqwest::Response, String), RegistryError> {
        let key = request.auth_key();
        let cached = self.cached_auth(&key);
        let (response, url) = self.send_once(request, cached.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, url));
        }
        let Some(challenge) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        else {
            return Ok((response, url));
        };
        let header = match self.authorization_for(request, &challenge).await? {
            Some(header) => header,
            None => return Ok((response, url)),
        };
        let (response, url) = self.send_once(request, Some(&header.header)).await?;
        if !matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            self.lock_auth().insert(key, header);
        }
        Ok((response, url))
    }

    /// The `Authorization` value that answers `challenge`, or `None` when there is nothing
    /// to send (no credentials for a basic challenge).
    async fn authorization_for(
        &self,
        request: &Request<'_>,
        challenge: &Challenge,
    ) -> Result<Option<CachedAuth>, RegistryError> {
        match challenge {
            Challenge::Basic => {
                Ok(request
                    .credential
                    .filter(|c| !c.is_identity_token())
                    .map(|c| CachedAuth {
                        header: format!("Basic {}", c.basic_auth_value()),
                        expires: None,
                    }))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = request.scope.as_deref().or(scope.as_deref());
                self.fetch_token(request, realm, service.as_deref(), scope)
                    .await
                    .map(Some)
            }
        }
    }

    /// Gets a bearer token from the token service: an OAuth refresh with an identity token,
    /// else a GET with basic credentials (or anonymously).
    async fn fetch_token(
        &self,
        request: &Request<'_>,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<CachedAuth, RegistryError> {
        let registry = request.registry;
        let url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: registry.clone(),
            reason: format!("invalid token realm `{realm}`: {e}"),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(RegistryError::Protocol {
                registry: registry.clone(),
                reason: format!("token realm `{realm}` is not an http(s) URL"),
            });
        }
        let credential = request.credential;
        let (builder, method) = self.token_request(url.clone(), service, scope, credential);
        let display_url = strip_query(&url);
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(registry, &display_url, &e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(registry, &display_url, &e))?;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(RegistryError::Unauthorized {
                registry: registry.clone(),
                status: status.as_u16(),
                user: credential.map(|c| c.username.clone()),
                detail: error_detail(status, &body),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                registry: registry.clone(),
                method: method.into(),
                url: display_url,
                status: status.as_u16(),
                detail: error_detail(status, &body),
            });
        }
        let (token, lifetime) =
            parse_token_response(&body).map_err(|reason| RegistryError::Protocol {
                registry: registry.clone(),
                reason: format!("token service {display_url} {reason}"),
            })?;
        Ok(CachedAuth {
            header: format!("Bearer {token}"),
            expires: Some(Instant::now() + lifetime),
        })
    }

    /// The token request: an OAuth refresh (`POST`, form) for an identity token, else a `GET`
    /// with basic credentials when there are any. Returns the builder and its method.
    fn token_request(
        &self,
        mut url: reqwest::Url,
        service: Option<&str>,
        scope: Option<&str>,
        credential: Option<&Credential>,
    ) -> (reqwest::RequestBuilder, &'static str) {
        let client = match url.host_str() {
            Some(host) if self.options.insecure.allows_http(host) => &self.insecure_http,
            _ => &self.http,
        };
        if let Some(token) = credential.filter(|c| c.is_identity_token()) {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.secret.expose()),
                ("client_id", OAUTH_CLIENT_ID),
            ];
            form.extend(service.map(|s| ("service", s)));
            form.extend(scope.map(|s| ("scope", s)));
            return (client.post(url).form(&form), "POST");
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            if let Some(scope) = scope {
                query.append_pair("scope", scope);
            }
            if let Some(c) = credential {
                query.append_pair("account", &c.username);
            }
        }
        let builder = client.get(url);
        let builder = match credential {
            Some(c) => builder.basic_auth(&c.username, Some(c.secret.expose())),
            None => builder,
        };
        (builder, "GET")
    }

    /// One HTTP exchange, trying https then (where allowed) http; remembers what worked.
    async fn send_once(
        &self,
        request: &Request<'_>,
        authorization: Option<&str>,
    ) -> Result<(reqwest::Response, String), RegistryError> {
        let host = request.registry.api_host();
        let allows_http = self.options.insecure.allows_http(host);
        let client = if allows_http {
            &self.insecure_http
        } else {
            &self.http
        };
        let known = self
            .schemes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .copied();
        // Loopback registries are nearly always plain http (a failed TLS handshake costs
        // ~70 ms against one): try http first there, and accept the answer only if it comes
        // from a registry API, so an https-only loopback registry still works.
        let loopback_first = known.is_none() && is_loopback_host(host);
        let schemes: &[Scheme] = match known {
            Some(Scheme::Https) => &[Scheme::Https],
            Some(Scheme::Http) => &[Scheme::Http],
            None if loopback_first => &[Scheme::Http, Scheme::Https],
            None if allows_http => &[Scheme::Https, Scheme::Http],
            None => &[Scheme::Https],
        };
        let mut last_error = None;
        for &scheme in schemes {
            let url = format!("{}://{}{}", scheme.as_str(), host, request.path);
            let mut builder = client.request(request.method.clone(), &url);
            if let Some(accept) = request.accept {
                builder = builder.header(ACCEPT, accept);
            }
            if let Some(authorization) = authorization {
                builder = builder.header(AUTHORIZATION, authorization);
            }
            if let Some((content_type, body)) = &request.body {
                builder = builder
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body.clone());
            }
            match builder.send().await {
                Ok(response)
                    if loopback_first
                        && scheme == Scheme::Http
                        && !response
                            .headers()
                            .contains_key("docker-distribution-api-version") =>
                {
                    // Not a registry speaking http (e.g. an https port answering 400): try https.
                    last_error = Some(RegistryError::Protocol {
                        registry: request.registry.clone(),
                        reason: format!("{url} did not answer as a registry over http"),
                    });
                }
                Ok(response) => {
                    self.schemes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(host.to_owned(), scheme);
                    return Ok((response, url));
                }
                Err(e) if e.is_timeout() => {
                    return Err(self.transport_error(request.registry, &url, &e));
                }
                Err(e) => last_error = Some(self.transport_error(request.registry, &url, &e)),
            }
        }
        Err(last_error.unwrap_or_else(|| RegistryError::Protocol {
            registry: request.registry.clone(),
            reason: "no URL scheme to try".into(),
        }))
    }

    fn transport_error(
        &self,
        registry: &Registry,
        url: &str,
        error: &reqwest::Error,
    ) -> RegistryError {
        if error.is_timeout() {
            RegistryError::Timeout {
                registry: registry.clone(),
                url: url.to_owned(),
                timeout: self.options.request_timeout,
            }
        } else {
            RegistryError::Unreachable {
                registry: registry.clone(),
                url: url.to_owned(),
                cause: root_cause(error),
            }
        }
    }

    async fn status_error(
        &self,
        request: &Request<'_>,
        url: &str,
        status: StatusCode,
        response: reqwest::Response,
    ) -> RegistryError {
        let body = response.bytes().await.unwrap_or_default();
        let detail = error_detail(status, &body);
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return RegistryError::Unauthorized {
                registry: request.registry.clone(),
                status: status.as_u16(),
                user: request.credential.map(|c| c.username.clone()),
                detail,
            };
        }
        RegistryError::Status {
            registry: request.registry.clone(),
            method: request.method.to_string(),
            url: url.to_owned(),
            status: status.as_u16(),
            detail,
        }
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, HashMap<AuthKey, CachedAuth>> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached_auth(&self, key: &AuthKey) -> Option<String> {
        let mut cache = self.lock_auth();
        match cache.get(key) {
            Some(entry) if entry.expires.is_none_or(|t| t > Instant::now()) => {
                Some(entry.header.clone())
            }
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }
}

/// The token and how long to use it, from a token service's JSON (`token`, or the OAuth
/// `access_token`; `expires_in` seconds, 60 when absent), renewed a little early.
fn parse_token_response(body: &[u8]) -> Result<(String, Duration), String> {
    let response: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("answered invalid JSON: {e}"))?;
    let token = response
        .token
        .filter(|t| !t.is_empty())
        .or(response.access_token.filter(|t| !t.is_empty()))
        .ok_or("answered no token")?;
    let lifetime = response
        .expires_in
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
        .saturating_sub(TOKEN_RENEW_MARGIN);
    Ok((token, lifetime))
}

/// The URL without its query (token-service queries carry the account name; keep errors short).
fn strip_query(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

crate::diagnostic::diagnostic_from_inherent!(RegistryError, hint, exit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let cases = [
            ("Basic realm=\"basic-realm\"", Some(Challenge::Basic)),
            ("basic", Some(Challenge::Basic)),
            (
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/nginx:pull\"",
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/nginx:pull".into()),
                }),
            ),
            (
                "Bearer realm=\"https://r/token\", scope=\"repository:a:pull,push\", service=svc",
                Some(Challenge::Bearer {
                    realm: "https://r/token".into(),
                    service: Some("svc".into()),
                    scope: Some("repository:a:pull,push".into()),
                }),
            ),
            (
                "bearer REALM=\"https://r/t\\\"x\"",
                Some(Challenge::Bearer {
                    realm: "https://r/t\"x".into(),
                    service: None,
                    scope: None,
                }),
            ),
            ("Bearer service=\"x\"", None),
            ("Negotiate abc", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_challenge(header), want, "{header}");
        }
    }

    #[test]
    fn only_single_platform_image_manifests_are_cache_hits() {
        let manifest = |media_type: &str, body: serde_json::Value| Manifest {
            digest: "sha256:m".into(),
            media_type: media_type.into(),
            bytes: Default::default(),
            body,
        };
        let image = serde_json::json!({
            "schemaVersion": 2,
            "config": {"digest": "sha256:c"},
            "layers": [{"digest": "sha256:l1"}, {"digest": "sha256:l2"}]
        });
        assert_eq!(
            manifest(IMAGE_MANIFEST_TYPES[0], image.clone()).blobs(),
            Ok(vec![
                "sha256:c".into(),
                "sha256:l1".into(),
                "sha256:l2".into()
            ])
        );
        assert!(
            manifest(IMAGE_MANIFEST_TYPES[1], image.clone())
                .blobs()
                .is_ok()
        );
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": "sha256:m"}]});
        for media_type in [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ] {
            let why = manifest(media_type, index.clone()).blobs().unwrap_err();
            assert!(why.starts_with("a manifest list"), "{why}");
        }
        let why = manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            image,
        )
        .blobs()
        .unwrap_err();
        assert!(why.starts_with("not an image manifest"), "{why}");
        let broken = serde_json::json!({"config": {}, "layers": []});
        assert!(manifest(IMAGE_MANIFEST_TYPES[0], broken).blobs().is_err());
    }

    #[test]
    fn insecure_registries() {
        let mut insecure = InsecureRegistries::default();
        insecure.add("10.0.0.0/8");
        insecure.add("myregistry.local:5000");
        insecure.add("plain.example");
        insecure.add("fd00::/8");
        let cases = [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5001", true),
            ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("10.1.2.3:443", true),
            ("11.1.2.3", false),
            ("myregistry.local:5000", true),
            ("myregistry.local:6000", false),
            ("plain.example:8080", true),
            ("[fd12::1]:5000", true),
            ("gcr.io", false),
            ("registry-1.docker.io", false),
        ];
        for (host, want) in cases {
            assert_eq!(insecure.allows_http(host), want, "{host}");
        }
        assert!(!InsecureRegistries::default().allows_http("192.168.1.1"));
    }

    #[test]
    fn insecure_registries_from_daemon() {
        use bollard::models::{IndexInfo, RegistryServiceConfig};
        let config = RegistryServiceConfig {
            insecure_registry_cidrs: Some(vec!["127.0.0.0/8".into(), "192.168.0.0/16".into()]),
            index_configs: Some(HashMap::from([
                (
                    "docker.io".to_owned(),
                    IndexInfo {
                        name: Some("docker.io".into()),
                        secure: Some(true),
                        ..IndexInfo::default()
                    },
                ),
                (
                    "reg.lan:5000".to_owned(),
                    IndexInfo {
                        name: Some("reg.lan:5000".into()),
                        secure: Some(false),
                        ..IndexInfo::default()
                    },
                ),
            ])),
            ..RegistryServiceConfig::default()
        };
        let insecure = InsecureRegistries::from_daemon(&config);
        assert!(insecure.allows_http("192.168.3.4:5000"));
        assert!(insecure.allows_http("reg.lan:5000"));
        assert!(!insecure.allows_http("docker.io"));
    }

    #[test]
    fn error_details() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            error_detail(StatusCode::UNAUTHORIZED, body),
            "UNAUTHORIZED: authentication required"
        );
        assert_eq!(error_detail(StatusCode::NOT_FOUND, b""), "not found");
        let long = format!(r#"{{"errors":[{{"message":"{}"}}]}}"#, "é".repeat(400));
        assert!(error_detail(StatusCode::BAD_REQUEST, long.as_bytes()).len() <= DETAIL_MAX + 3);
    }

    #[test]
    fn link_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(next_link(&headers), None);
        headers.insert(
            LINK,
            "</v2/x/tags/list?last=b&n=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        headers.insert(LINK, "</a>; rel=\"prev\"".parse().unwrap());
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn error_exit_codes_and_hints() {
        let registry = Registry::Host("127.0.0.1:5001".into());
        let unauthorized = RegistryError::Unauthorized {
            registry: registry.clone(),
            status: 401,
            user: Some("devspace".into()),
            detail: "authentication required".into(),
        };
        assert_eq!(unauthorized.exit_code(), ExitCode::Auth);
        assert_eq!(
            unauthorized.to_string(),
            "registry 127.0.0.1:5001 refused the credentials of user `devspace` (HTTP 401: authentication required)"
        );
        assert_eq!(
            unauthorized.hint().unwrap(),
            "run `devspace login 127.0.0.1:5001` or `docker login 127.0.0.1:5001`"
        );
        let unreachable = RegistryError::Unreachable {
            registry,
            url: "http://127.0.0.1:5001/v2/".into(),
            cause: "Connection refused".into(),
        };
        assert_eq!(unreachable.exit_code(), ExitCode::Unreachable);
        assert!(unreachable.hint().unwrap().contains("127.0.0.1:5001"));
    }

    #[test]
    fn token_responses() {
        // (body, "token/seconds" or the error's gist)
        let cases: [(&[u8], &str); 6] = [
            (br#"{"token":"a","expires_in":300}"#, "a/290"),
            (br#"{"access_token":"b"}"#, "b/50"),
            (br#"{"token":"","access_token":"c","expires_in":5}"#, "c/0"),
            (br#"{"token":"d","access_token":"e"}"#, "d/50"),
            (br#"{"expires_in":60}"#, "no token"),
            (b"<html>", "invalid JSON"),
        ];
        for (body, want) in cases {
            let got = match parse_token_response(body) {
                Ok((token, lifetime)) => format!("{token}/{}", lifetime.as_secs()),
                Err(reason) => reason,
            };
            assert!(got.contains(want), "{got} vs {want}");
        }
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("127.0.0.0/8"),
            Some(("127.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(
            parse_cidr("10.0.0.1"),
            Some(("10.0.0.1".parse().unwrap(), 32))
        );
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("host:5000"), None);
        assert!(in_cidr(
            "0.0.0.1".parse().unwrap(),
            "9.9.9.9".parse().unwrap(),
            0
        ));
    }
}
