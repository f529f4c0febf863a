//! Docker image references, the one parser: parsing (the distribution grammar, with Docker's
//! normalisation of Hub names), the registry an image lives in, and the names derived from it
//! (credential key, pull-secret name, display name). Pure functions only; no I/O.
//!
//! The rules follow `github.com/distribution/reference` (`ParseNormalizedNamed`) as used by
//! Docker and DevSpace 4.x: the first path segment is a registry host when it contains `.` or
//! `:`, is `localhost`, or has upper-case letters; otherwise the image is on Docker Hub, where a
//! single-segment name lives under `library/`.
//!
//! Every place that reads a reference goes through this module: the config's `image` fields
//! ([`Reference::parse`], [`split_tag`], [`shorten_official`]), `FROM` lines and plan keys
//! ([`repository_key`]), manifest values in tag replacement ([`Written::parse`]: the name as
//! written next to its canonical form), push errors ([`registry_host_of`]) and the digests the
//! daemon reports ([`is_digest`]). Written by hand: the grammar is a few regular expressions,
//! and tag replacement needs the spelling a manifest used next to the normalised name, which a
//! parser that only hands back the normalised form would lose.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use thiserror::Error;

/// The domain Docker Hub references normalise to.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// The legacy domain that also means Docker Hub.
pub const DOCKER_HUB_LEGACY_DOMAIN: &str = "index.docker.io";
/// The key under which Docker stores Docker Hub credentials (`auths`, helpers, pull secrets).
pub const DOCKER_HUB_CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";
/// The host that serves Docker Hub's registry API (v2).
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// How DevSpace names Docker Hub in messages.
pub const DOCKER_HUB_DISPLAY_NAME: &str = "hub.docker.com";

/// Namespace of official Hub images (`nginx` is `docker.io/library/nginx`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Longest repository name (domain + path) the grammar accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let host = format!(r"(?:{component}(?:\.{component})*|\[[a-fA-F0-9:]+\])");
    Regex::new(&format!(r"^{host}(?::[0-9]+)?$")).expect("static domain regex is valid")
});
static PATH_RE: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    Regex::new(&format!(r"^{component}(?:/{component})*$")).expect("static path regex is valid")
});
// Go's `\w` is ASCII-only; the Unicode `\w` of the regex crate would accept more and costs
// tens of milliseconds to compile on every run.
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static tag regex is valid")
});
static DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
        .expect("static digest regex is valid")
});
static IDENTIFIER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-f0-9]{64}$").expect("static identifier regex is valid"));

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    /// The string was empty.
    #[error("invalid image reference: empty name")]
    Empty,
    /// The repository path has upper-case letters (Docker requires lower case).
    #[error("invalid image reference `{reference}`: repository name `{path}` must be lowercase")]
    Uppercase {
        /// The whole input.
        reference: String,
        /// The offending repository path.
        path: String,
    },
    /// A 64-hex-digit string looks like an image ID, which Docker refuses as a name.
    #[error(
        "invalid image reference `{reference}`: a 64-character hexadecimal string is an image ID, not a repository name"
    )]
    ImageId {
        /// The whole input.
        reference: String,
    },
    /// Some part does not match the grammar.
    #[error("invalid image reference `{reference}`: invalid {part} `{value}`")]
    Invalid {
        /// The whole input.
        reference: String,
        /// Which part: `registry host`, `repository path`, `tag` or `digest`.
        part: &'static str,
        /// The offending part.
        value: String,
    },
    /// Domain and path together are longer than 255 characters.
    #[error("invalid image reference `{reference}`: repository name longer than 255 characters")]
    TooLong {
        /// The whole input.
        reference: String,
    },
    /// A registry given on its own (e.g. to `devspace login`) is not a valid host.
    #[error("invalid registry `{input}`: expected a host such as `localhost:5000` or `gcr.io`")]
    InvalidRegistry {
        /// The input as given.
        input: String,
    },
}

/// The key under which two spellings of one repository compare equal, tags and digests
/// dropped: Docker Hub's spellings (`x`, `library/x`, `docker.io/library/x`,
/// `index.docker.io/x`, and its API host `registry-1.docker.io/library/x`) are one. Used to
/// match `FROM` lines to the images of a config. A reference that does not parse (an
/// unresolved `${ARG}`) is compared as written, lowercased, without its tag.
pub fn repository_key(reference: &str) -> String {
    let hub_api = format!("{DOCKER_HUB_API_HOST}/");
    let spelled = reference.strip_prefix(&hub_api).unwrap_or(reference);
    match Reference::parse(spelled) {
        Ok(r) => r.name(),
        Err(_) => split(spelled).name.to_ascii_lowercase(),
    }
}

/// A reference cut into its parts as written, nothing checked: `name[:tag][@digest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts<'a> {
    /// Everything before the tag and digest (`localhost:5000/app`).
    name: &'a str,
    /// The text after the `:` that follows the last `/` (a `:` before it is a registry port).
    tag: Option<&'a str>,
    /// The text after the first `@`.
    digest: Option<&'a str>,
}

/// Cuts `reference` into name, tag and digest the way the grammar does, without validating.
fn split(reference: &str) -> Parts<'_> {
    let (rest, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => Parts {
            name: &rest[..last_slash + i],
            tag: Some(&rest[last_slash + i + 1..]),
            digest,
        },
        None => Parts {
            name: rest,
            tag: None,
            digest,
        },
    }
}

/// Splits a config's `image: repo:tag` into the repository and its tag (DevSpace 6 moves the
/// tag into `tags`); an empty tag is dropped, and an image with a digest is kept whole.
pub fn split_tag(image: &str) -> (&str, Option<&str>) {
    let parts = split(image);
    if parts.digest.is_some() {
        return (image, None);
    }
    (parts.name, parts.tag.filter(|t| !t.is_empty()))
}

/// Official Docker Hub images written short, as DevSpace 6 does: `docker.io/library/nginx`
/// (or with `index.docker.io` / `registry-1.docker.io`) → `nginx`; everything else as written.
pub fn shorten_official(image: &str) -> &str {
    [
        DOCKER_HUB_DOMAIN,
        DOCKER_HUB_LEGACY_DOMAIN,
        DOCKER_HUB_API_HOST,
    ]
    .iter()
    .find_map(|domain| {
        image
            .strip_prefix(domain)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.strip_prefix(OFFICIAL_REPO_PREFIX))
    })
    .unwrap_or(image)
}

/// The registry host of an image name as Docker decides it: `docker.io` for Docker Hub; a name
/// that does not parse (it cannot be pushed either) counts as Docker Hub.
pub fn registry_host_of(image: &str) -> String {
    Registry::of_image(image)
        .map(|r| r.host().to_owned())
        .unwrap_or_else(|_| DOCKER_HUB_DOMAIN.to_owned())
}

/// Whether `digest` is a content digest (`algorithm:hex`, at least 32 hex digits).
pub fn is_digest(digest: &str) -> bool {
    DIGEST_RE.is_match(digest)
}

/// A reference found in a text (a manifest value, a Helm value): the repository exactly as the
/// text spells it, so a replacement can keep that spelling, and the parsed reference, whose
/// [`Reference::name`] is the canonical form two spellings are compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<'a> {
    /// The repository as written, without tag or digest (`nginx`, `index.docker.io/john/app`).
    pub name: &'a str,
    /// The parsed, normalised reference (`docker.io/library/nginx:1.25`).
    pub reference: Reference,
}

impl<'a> Written<'a> {
    /// Parses `value` (surrounding whitespace ignored); `None` when it is not a reference.
    pub fn parse(value: &'a str) -> Option<Self> {
        let value = value.trim();
        let reference = Reference::parse(value).ok()?;
        Some(Written {
            name: split(value).name,
            reference,
        })
    }

    /// The canonical repository name (`docker.io/library/nginx`).
    pub fn canonical(&self) -> String {
        self.reference.name()
    }
}

/// A parsed, normalised image reference: `domain/path[:tag][@digest]`.
///
/// `Display` prints the fully normalised form (`docker.io/library/nginx:1.25`);
/// [`Reference::familiar`] prints what users write (`nginx:1.25`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull NAME` would.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if IDENTIFIER_RE.is_match(input) {
            return Err(ReferenceError::ImageId {
                reference: input.to_owned(),
            });
        }
        let invalid = |part: &'static str, value: &str| ReferenceError::Invalid {
            reference: input.to_owned(),
            part,
            value: value.to_owned(),
        };

        // A tag is a `:` after the last `/`; an earlier `:` belongs to a registry port.
        let Parts { name, tag, digest } = split(input);
        if let Some(digest) = digest
            && !DIGEST_RE.is_match(digest)
        {
            return Err(invalid("digest", digest));
        }
        if let Some(tag) = tag
            && !TAG_RE.is_match(tag)
        {
            return Err(invalid("tag", tag));
        }
        let (tag, digest) = (tag.map(str::to_owned), digest.map(str::to_owned));
        if name.is_empty() {
            return Err(invalid("repository path", name));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong {
                reference: input.to_owned(),
            });
        }

        let (domain, path) = split_domain(name);
        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase {
                reference: input.to_owned(),
                path: path.to_owned(),
            });
        }
        if !DOMAIN_RE.is_match(domain) {
            return Err(invalid("registry host", domain));
        }
        if !PATH_RE.is_match(path) {
            return Err(invalid("repository path", path));
        }

        let domain = if domain == DOCKER_HUB_LEGACY_DOMAIN {
            DOCKER_HUB_DOMAIN
        } else {
            domain
        };
        let path = if domain == DOCKER_HUB_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        Ok(Reference {
            domain: domain.to_owned(),
            path,
            tag,
            digest,
        })
    }

    /// The normalised domain: `docker.io` for Docker Hub, else the host as written (with port).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/nginx`, `team/app`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:...`), if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What a registry resolves: the digest if given, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// Whether the image lives on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DOCKER_HUB_DOMAIN
    }

    /// The registry host as DevSpace reports it: `None` for Docker Hub, else `host[:port]`.
    pub fn registry_host(&self) -> Option<&str> {
        (!self.is_docker_hub()).then_some(self.domain.as_str())
    }

    /// The registry the image lives in.
    pub fn registry(&self) -> Registry {
        Registry::from_domain(&self.domain)
    }

    /// The fully normalised repository name without tag or digest (`docker.io/library/nginx`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as users write it (`nginx`, `john/app`, `gcr.io/p/app`): Docker's
    /// familiar form, which DevSpace uses to match images in manifests.
    pub fn familiar_name(&self) -> String {
        if self.is_docker_hub() {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// The familiar name with tag and digest (`nginx:1.25`), as `docker push` takes it.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        push_tag_digest(&mut out, self.tag(), self.digest());
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        push_tag_digest(&mut out, self.tag(), self.digest());
        f.write_str(&out)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn push_tag_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

/// Splits `name` (no tag, no digest) into domain and path like `splitDockerDomain`.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB_DOMAIN, name),
    }
}

/// The registry an image lives in: Docker Hub or another host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Registry {
    /// Docker Hub (`docker.io`, `index.docker.io`, or no host at all).
    DockerHub,
    /// Any other registry, as `host[:port]`.
    Host(String),
}

impl Registry {
    /// The registry for a reference's normalised domain.
    pub fn from_domain(domain: &str) -> Registry {
        if domain == DOCKER_HUB_DOMAIN || domain == DOCKER_HUB_LEGACY_DOMAIN {
            Registry::DockerHub
        } else {
            Registry::Host(domain.to_owned())
        }
    }

    /// The registry of an image reference string (`registry_of("nginx")` is Docker Hub).
    pub fn of_image(image: &str) -> Result<Registry, ReferenceError> {
        Ok(Reference::parse(image)?.registry())
    }

    /// Reads a registry as users type it to `docker login`: empty, `docker.io`,
    /// `hub.docker.com` or `https://index.docker.io/v1/` mean Docker Hub; otherwise a host with
    /// an optional scheme and path (`https://gcr.io/`, `localhost:5000`) reduced to the host.
    pub fn from_user_input(input: &str) -> Result<Registry, ReferenceError> {
        let trimmed = input.trim();
        let host = convert_to_hostname(trimmed);
        if host.is_empty()
            || host == DOCKER_HUB_DOMAIN
            || host == DOCKER_HUB_LEGACY_DOMAIN
            || host == DOCKER_HUB_DISPLAY_NAME
        {
            return Ok(Registry::DockerHub);
        }
        if !DOMAIN_RE.is_match(host) {
            return Err(ReferenceError::InvalidRegistry {
                input: input.to_owned(),
            });
        }
        Ok(Registry::Host(host.to_owned()))
    }

    /// Whether this is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        matches!(self, Registry::DockerHub)
    }

    /// The host part of references: `docker.io` for Docker Hub, else `host[:port]`.
    pub fn host(&self) -> &str {
        match self {
            Registry::DockerHub => DOCKER_HUB_DOMAIN,
            Registry::Host(host) => host,
        }
    }

    /// The host that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        match self {
            Registry::DockerHub => DOCKER_HUB_API_HOST,
            Registry::Host(host) => host,
        }
    }

    /// The key Docker stores credentials under: `https://index.docker.io/v1/` for Docker Hub,
    /// else the bare host.
    pub fn credential_key(&self) -> &str {
        match self {
            Registry::DockerHub => DOCKER_HUB_CREDENTIAL_KEY,
            Registry::Host(host) => host,
        }
    }

    /// The name of the image pull secret DevSpace creates for this registry:
    /// `devspace-auth-<host lowercased, other than [a-z0-9-] replaced by ->`, and
    /// `devspace-auth-docker` for Docker Hub.
    pub fn pull_secret_name(&self) -> String {
        let suffix: String = match self {
            Registry::DockerHub => "docker".to_owned(),
            Registry::Host(host) => host
                .to_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect(),
        };
        format!("devspace-auth-{suffix}")
    }

    /// How to name the registry to people: `hub.docker.com` for Docker Hub, else the host.
    pub fn display_name(&self) -> &str {
        match self {
            Registry::DockerHub => DOCKER_HUB_DISPLAY_NAME,
            Registry::Host(host) => host,
        }
    }

    /// The argument `devspace login` / `docker login` take for this registry (empty for Hub).
    pub fn login_argument(&self) -> &str {
        match self {
            Registry::DockerHub => "",
            Registry::Host(host) => host,
        }
    }

    /// The login command to suggest in hints, e.g. `devspace login localhost:5000`.
    pub fn login_hint(&self) -> String {
        let arg = self.login_argument();
        let sep = if arg.is_empty() { "" } else { " " };
        format!("run `devspace login{sep}{arg}` or `docker login{sep}{arg}`")
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Reduces a server address to its host like Docker's `ConvertToHostname`: strips `http://` /
/// `https://` and anything from the first `/`.
pub fn convert_to_hostname(address: &str) -> &str {
    let stripped = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    stripped.split('/').next().unwrap_or(stripped)
}

impl crate::diagnostic::Diagnostic for ReferenceError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, domain, path, tag, digest, familiar, full)
    type ParseCase<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        &'a str,
    );

    #[test]
    fn parses_and_normalises() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let with_digest = format!("nginx@{digest}");
        let full_digest = format!("docker.io/library/nginx@{digest}");
        let cases: Vec<ParseCase> = vec![
            (
                "nginx",
                "docker.io",
                "library/nginx",
                None,
                None,
                "nginx",
                "docker.io/library/nginx",
            ),
            (
                "nginx:1.25",
                "docker.io",
                "library/nginx",
                Some("1.25"),
                None,
                "nginx:1.25",
                "docker.io/library/nginx:1.25",
            ),
            (
                "docker.io/nginx",
                "docker.io",
                "library/nginx",
                None,
                None,
                "nginx",
                "docker.io/library/nginx",
            ),
            (
                "index.docker.io/library/nginx:x",
                "docker.io",
                "library/nginx",
                Some("x"),
                None,
                "nginx:x",
                "docker.io/library/nginx:x",
            ),
            (
                "john/app",
                "docker.io",
                "john/app",
                None,
                None,
                "john/app",
                "docker.io/john/app",
            ),
            (
                "docker.io/john/app:v1",
                "docker.io",
                "john/app",
                Some("v1"),
                None,
                "john/app:v1",
                "docker.io/john/app:v1",
            ),
            (
                "docker.io/library/a/b",
                "docker.io",
                "library/a/b",
                None,
                None,
                "library/a/b",
                "docker.io/library/a/b",
            ),
            (
                "localhost/app",
                "localhost",
                "app",
                None,
                None,
                "localhost/app",
                "localhost/app",
            ),
            (
                "localhost:5000/team/app:dev-1",
                "localhost:5000",
                "team/app",
                Some("dev-1"),
                None,
                "localhost:5000/team/app:dev-1",
                "localhost:5000/team/app:dev-1",
            ),
            (
                "127.0.0.1:5001/x:t",
                "127.0.0.1:5001",
                "x",
                Some("t"),
                None,
                "127.0.0.1:5001/x:t",
                "127.0.0.1:5001/x:t",
            ),
            (
                "gcr.io/project/app",
                "gcr.io",
                "project/app",
                None,
                None,
                "gcr.io/project/app",
                "gcr.io/project/app",
            ),
            (
                "[::1]:5000/app",
                "[::1]:5000",
                "app",
                None,
                None,
                "[::1]:5000/app",
                "[::1]:5000/app",
            ),
            (
                "Registry.Example.com/app",
                "Registry.Example.com",
                "app",
                None,
                None,
                "Registry.Example.com/app",
                "Registry.Example.com/app",
            ),
            (
                "a__b_c-d---e/f.g",
                "docker.io",
                "a__b_c-d---e/f.g",
                None,
                None,
                "a__b_c-d---e/f.g",
                "docker.io/a__b_c-d---e/f.g",
            ),
            (
                &with_digest,
                "docker.io",
                "library/nginx",
                None,
                Some(digest),
                &with_digest,
                &full_digest,
            ),
        ];
        for (input, domain, path, tag, dig, familiar, full) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), dig, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.to_string(), full, "{input}");
        }
    }

    #[test]
    fn tag_and_digest_together() {
        let d = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
        let r = Reference::parse(&format!("localhost:5000/app:v2@{d}")).unwrap();
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.digest(), Some(d));
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.with_tag("v3").to_string(), "localhost:5000/app:v3");
        assert_eq!(
            Reference::parse("app").unwrap().manifest_reference(),
            "latest"
        );
    }

    #[test]
    fn rejects_invalid_references() {
        let long = format!("a/{}", "b".repeat(260));
        let cases: Vec<(&str, &str)> = vec![
            ("", "empty"),
            ("Nginx", "must be lowercase"),
            ("john/App", "must be lowercase"),
            ("localhost:5000/App:v1", "must be lowercase"),
            ("nginx:", "invalid tag"),
            ("nginx:-bad", "invalid tag"),
            ("nginx@sha256:abc", "invalid digest"),
            ("-nginx", "invalid repository path"),
            ("nginx/", "invalid repository path"),
            ("a//b", "invalid repository path"),
            ("bad_host.com:x/app", "invalid registry host"),
            (":tag", "invalid repository path"),
            (&long, "longer than 255"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "image ID",
            ),
        ];
        for (input, want) in cases {
            let err = Reference::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn registry_of_references() {
        let cases = [
            ("nginx", None, "hub.docker.com"),
            ("docker.io/john/app", None, "hub.docker.com"),
            ("index.docker.io/john/app", None, "hub.docker.com"),
            ("john/app:1", None, "hub.docker.com"),
            ("localhost/app", Some("localhost"), "localhost"),
            (
                "localhost:5000/app",
                Some("localhost:5000"),
                "localhost:5000",
            ),
            ("gcr.io/p/app", Some("gcr.io"), "gcr.io"),
            (
                "registry-1.docker.io/app",
                Some("registry-1.docker.io"),
                "registry-1.docker.io",
            ),
        ];
        for (image, host, display) in cases {
            let r = Reference::parse(image).unwrap();
            assert_eq!(r.registry_host(), host, "{image}");
            assert_eq!(r.registry().display_name(), display, "{image}");
            assert_eq!(Registry::of_image(image).unwrap(), r.registry());
        }
    }

    #[test]
    fn one_repository_key_per_repository() {
        for spelling in [
            "demo",
            "demo:v1",
            "library/demo",
            "docker.io/library/demo:old",
            "index.docker.io/library/demo",
            "registry-1.docker.io/library/demo@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert_eq!(
                repository_key(spelling),
                "docker.io/library/demo",
                "{spelling}"
            );
        }
        assert_eq!(
            repository_key("127.0.0.1:5000/app:v1"),
            "127.0.0.1:5000/app"
        );
        assert_ne!(repository_key("john/app"), repository_key("app"));
        assert_eq!(repository_key("${BASE}:1"), "${base}");
    }

    #[test]
    fn tags_are_ascii_like_docker() {
        assert!(Reference::parse("repo:v1.2_x-y").is_ok());
        assert!(Reference::parse("repo:ünicode").is_err());
        assert!(Reference::parse("repo:.hidden").is_err());
    }

    #[test]
    fn registry_derived_names() {
        // (registry, credential key, pull secret, login hint)
        let cases = [
            (
                Registry::DockerHub,
                "https://index.docker.io/v1/",
                "devspace-auth-docker",
                "run `devspace login` or `docker login`",
            ),
            (
                Registry::Host("gcr.io".into()),
                "gcr.io",
                "devspace-auth-gcr-io",
                "run `devspace login gcr.io` or `docker login gcr.io`",
            ),
            (
                Registry::Host("localhost:5000".into()),
                "localhost:5000",
                "devspace-auth-localhost-5000",
                "run `devspace login localhost:5000` or `docker login localhost:5000`",
            ),
            (
                Registry::Host("My.Registry_X:443".into()),
                "My.Registry_X:443",
                "devspace-auth-my-registry-x-443",
                "run `devspace login My.Registry_X:443` or `docker login My.Registry_X:443`",
            ),
            (
                Registry::Host("[::1]:5000".into()),
                "[::1]:5000",
                "devspace-auth----1--5000",
                "run `devspace login [::1]:5000` or `docker login [::1]:5000`",
            ),
        ];
        for (registry, key, secret, hint) in cases {
            assert_eq!(registry.credential_key(), key);
            assert_eq!(registry.pull_secret_name(), secret);
            assert_eq!(registry.login_hint(), hint);
        }
        assert_eq!(Registry::DockerHub.api_host(), "registry-1.docker.io");
        assert_eq!(Registry::DockerHub.to_string(), "hub.docker.com");
    }

    #[test]
    fn registry_from_user_input() {
        let hub = Registry::DockerHub;
        let host = |h: &str| Registry::Host(h.to_owned());
        let cases = [
            ("", hub.clone()),
            ("docker.io", hub.clone()),
            ("index.docker.io", hub.clone()),
            ("hub.docker.com", hub.clone()),
            ("https://index.docker.io/v1/", hub.clone()),
            ("localhost:5000", host("localhost:5000")),
            ("http://localhost:5000/", host("localhost:5000")),
            ("https://gcr.io/v2/", host("gcr.io")),
            (" 127.0.0.1:5001 ", host("127.0.0.1:5001")),
        ];
        for (input, want) in cases {
            assert_eq!(Registry::from_user_input(input).unwrap(), want, "{input}");
        }
        for bad in ["bad host", "a_b:c", "-x.com"] {
            assert!(Registry::from_user_input(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostname_conversion() {
        let cases = [
            ("https://index.docker.io/v1/", "index.docker.io"),
            ("http://localhost:5000", "localhost:5000"),
            ("gcr.io/v2/x", "gcr.io"),
            ("gcr.io", "gcr.io"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(convert_to_hostname(input), want);
        }
    }
    #[test]
    fn written_references_keep_their_spelling() {
        const DIGEST: &str =
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let digest_ref = format!("docker.io/john/app@{DIGEST}");
        let both = format!("localhost:5000/team/app:v1@{DIGEST}");
        // (input, written name, canonical name, tag)
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("nginx", "nginx", "docker.io/library/nginx", None),
            (
                "nginx:1.25",
                "nginx",
                "docker.io/library/nginx",
                Some("1.25"),
            ),
            ("  nginx  ", "nginx", "docker.io/library/nginx", None),
            (
                "docker.io/library/nginx:1",
                "docker.io/library/nginx",
                "docker.io/library/nginx",
                Some("1"),
            ),
            (
                "library/nginx",
                "library/nginx",
                "docker.io/library/nginx",
                None,
            ),
            ("john/app", "john/app", "docker.io/john/app", None),
            (
                "docker.io/john/app",
                "docker.io/john/app",
                "docker.io/john/app",
                None,
            ),
            (
                "index.docker.io/john/app",
                "index.docker.io/john/app",
                "docker.io/john/app",
                None,
            ),
            (
                &digest_ref,
                "docker.io/john/app",
                "docker.io/john/app",
                None,
            ),
            (
                "localhost:5000/app:x",
                "localhost:5000/app",
                "localhost:5000/app",
                Some("x"),
            ),
            ("localhost/app", "localhost/app", "localhost/app", None),
            ("gcr.io/p/a/b:t", "gcr.io/p/a/b", "gcr.io/p/a/b", Some("t")),
            (
                &both,
                "localhost:5000/team/app",
                "localhost:5000/team/app",
                Some("v1"),
            ),
            (
                "my-reg.example.com:443/a__b/c-d--e",
                "my-reg.example.com:443/a__b/c-d--e",
                "my-reg.example.com:443/a__b/c-d--e",
                None,
            ),
            // The repository part of `FROM` references (tag and digest dropped).
            ("alpine:3", "alpine", "docker.io/library/alpine", Some("3")),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app",
                "localhost:5000/app",
                Some("v1"),
            ),
            (
                "gcr.io/p/app:v1@sha256:abababababababababababababababab",
                "gcr.io/p/app",
                "gcr.io/p/app",
                Some("v1"),
            ),
        ];
        for (input, written, canonical, tag) in cases {
            let r = Written::parse(input).unwrap_or_else(|| panic!("{input} should parse"));
            assert_eq!(r.name, *written, "{input}");
            assert_eq!(r.canonical(), *canonical, "{input}");
            assert_eq!(r.reference.tag(), *tag, "{input}");
        }
        assert_eq!(
            Written::parse(&both).and_then(|r| r.reference.digest().map(str::to_owned)),
            Some(DIGEST.to_owned())
        );
    }

    #[test]
    fn written_non_references_do_not_parse() {
        for input in [
            "",
            "John/App",
            "app:",
            "app:-x",
            "a//b",
            "app@sha256:short",
            "has space",
            "-app",
            "app-",
            "http://example.com/x",
            "image(app)",
            "a/b:c:d",
            "a..b",
            "trailing/",
        ] {
            assert_eq!(Written::parse(input), None, "{input:?} should not parse");
        }
    }

    #[test]
    fn split_parts_without_validation() {
        // (input, name, tag, digest): the cut every reader shares, also for unparseable text.
        let cases = [
            ("alpine", "alpine", None, None),
            ("alpine:3", "alpine", Some("3"), None),
            ("localhost:5000/app", "localhost:5000/app", None, None),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app",
                Some("v1"),
                None,
            ),
            (
                "gcr.io/p/app@sha256:ab",
                "gcr.io/p/app",
                None,
                Some("sha256:ab"),
            ),
            (
                "gcr.io/p/app:v1@sha256:ab",
                "gcr.io/p/app",
                Some("v1"),
                Some("sha256:ab"),
            ),
            ("${BASE}:1", "${BASE}", Some("1"), None),
        ];
        for (input, name, tag, digest) in cases {
            assert_eq!(split(input), Parts { name, tag, digest }, "{input}");
        }
    }

    #[test]
    fn config_image_tags_and_official_names() {
        let cases = [
            ("node-app:latest", "node-app", Some("latest")),
            (
                "registry:5000/supabase:dev",
                "registry:5000/supabase",
                Some("dev"),
            ),
            ("localhost:5000/app", "localhost:5000/app", None),
            ("app:", "app", None),
            ("app:v1@sha256:ab", "app:v1@sha256:ab", None),
        ];
        for (image, repo, tag) in cases {
            assert_eq!(split_tag(image), (repo, tag), "{image}");
        }
        for (image, short) in [
            ("docker.io/library/nginx", "nginx"),
            ("index.docker.io/library/nginx", "nginx"),
            ("registry-1.docker.io/library/a/b", "a/b"),
            ("docker.io/me/app", "docker.io/me/app"),
            ("docker.iox/library/app", "docker.iox/library/app"),
            ("nginx", "nginx"),
        ] {
            assert_eq!(shorten_official(image), short, "{image}");
        }
    }

    #[test]
    fn registry_host_of_images() {
        let cases = [
            ("nginx", "docker.io"),
            ("john/app", "docker.io"),
            ("docker.io/john/app", "docker.io"),
            ("index.docker.io/john/app", "docker.io"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000"),
            ("localhost/app", "localhost"),
            ("ghcr.io/o/r/app", "ghcr.io"),
            ("Not A Reference", "docker.io"),
        ];
        for (repo, want) in cases {
            assert_eq!(registry_host_of(repo), want, "{repo}");
        }
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        assert!(is_digest(&format!("sha256:{hex}")));
        assert!(!is_digest("sha256:zz"));
        assert!(!is_digest(""));
        assert!(!is_digest(&hex));
    }
}
