//! A small Docker image reference parser used only to decide whether a manifest value names a
//! configured image.
//!
//! It follows the grammar of `distribution/reference` (domain, lowercase path components, tag,
//! digest) and Docker Hub's normalisation (`nginx` = `docker.io/library/nginx`,
//! `index.docker.io/john/app` = `john/app`). It is private to `deploy` on purpose: the registry
//! module owns the full parser, and this one can be swapped for it without touching callers.

/// A parsed reference: the name exactly as written (tag and digest dropped) and its canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference<'a> {
    /// The repository as the source wrote it, without tag or digest (`nginx`, `docker.io/john/app`).
    pub written: &'a str,
    /// Fully qualified form used for comparisons (`docker.io/library/nginx`).
    pub canonical: String,
    /// The tag, when one was written.
    pub tag: Option<&'a str>,
    /// The digest (`sha256:…`), when one was written.
    pub digest: Option<&'a str>,
}

/// Parses `value` (surrounding whitespace ignored) as an image reference; `None` when it is not one
/// (upper case in the path, empty components, bad tag or digest...).
pub(crate) fn parse(value: &str) -> Option<Reference<'_>> {
    let value = value.trim();
    let (rest, digest) = match value.split_once('@') {
        Some((name, digest)) => {
            if !valid_digest(digest) {
                return None;
            }
            (name, Some(digest))
        }
        None => (value, None),
    };
    // A `:` after the last `/` starts the tag; earlier ones belong to a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (written, tag) = match rest[last_slash..].find(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            if !valid_tag(tag) {
                return None;
            }
            (&rest[..last_slash + i], Some(tag))
        }
        None => (rest, None),
    };
    if written.is_empty() || written.len() > 255 {
        return None;
    }
    let (domain, path) = split_domain(written);
    if let Some(domain) = domain
        && !valid_domain(domain)
    {
        return None;
    }
    if !path.split('/').all(valid_path_component) {
        return None;
    }
    let canonical = match domain {
        None | Some("docker.io" | "index.docker.io") => {
            if path.contains('/') {
                format!("docker.io/{path}")
            } else {
                format!("docker.io/library/{path}")
            }
        }
        Some(domain) => format!("{domain}/{path}"),
    };
    Some(Reference {
        written,
        canonical,
        tag,
        digest,
    })
}

/// Docker's rule: the first component is a registry host when it contains `.` or `:`, is
/// `localhost`, or has upper case letters (paths may not), and more components follow.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && host_ok
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex` with at least 32 hex digits.
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'));
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn canonical_forms() {
        let digest_ref = format!("docker.io/john/app@{DIGEST}");
        let both = format!("localhost:5000/team/app:v1@{DIGEST}");
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
        ];
        for (input, written, canonical, tag) in cases {
            let r = parse(input).unwrap_or_else(|| panic!("{input} should parse"));
            assert_eq!(r.written, *written, "{input}");
            assert_eq!(r.canonical, *canonical, "{input}");
            assert_eq!(r.tag, *tag, "{input}");
        }
        assert_eq!(parse(&both).and_then(|r| r.digest), Some(DIGEST));
    }

    #[test]
    fn rejects_non_references() {
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
            assert_eq!(parse(input), None, "{input:?} should not parse");
        }
    }
}
