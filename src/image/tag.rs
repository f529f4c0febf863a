//! Which tags an image gets in this run: the configured `tags` (or the `-t/--tag` override),
//! a random tag when there are none, `#` placeholders and `tagsAppendRandom` (DevSpace 5.x).
//! Pure: randomness comes from the caller's generator so tests can seed it.
//!
//! The default tag is 5 characters `[a-z0-9]` starting with a letter: what the DevSpace
//! documentation promises (DevSpace itself used 7 mixed-case characters), lowercase so it
//! is valid everywhere a tag ends up (registries, Kubernetes labels, file names).

use rand::Rng;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of the default random tag and of the `tagsAppendRandom` suffix.
pub const RANDOM_LEN: usize = 5;

/// A tag that Docker would refuse (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "image {image}: invalid tag '{tag}': a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
)]
pub struct InvalidTag {
    pub image: String,
    pub tag: String,
}

/// A random default tag: [`RANDOM_LEN`] characters of `[a-z0-9]`, the first a letter (so it
/// never looks like a number or a version).
pub fn random_tag<R: Rng + ?Sized>(rng: &mut R) -> String {
    let mut tag = String::with_capacity(RANDOM_LEN);
    tag.push(pick(rng, LETTERS));
    for _ in 1..RANDOM_LEN {
        tag.push(pick(rng, ALPHANUMERIC));
    }
    tag
}

/// DevSpace 6's default tag: 7 random letters `[a-zA-Z]` (`randutil.GenerateRandomString(7)`).
pub fn random_tag_v6<R: Rng + ?Sized>(rng: &mut R) -> String {
    const MIXED: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..7).map(|_| pick(rng, MIXED)).collect()
}

/// The configured tags, or DevSpace 6's default tag for an image of a v2beta1 config that
/// has none (4.x/5.x images keep [`random_tag`], chosen by [`resolve_tags`]).
pub fn configured_tags<R: Rng + ?Sized>(
    tags: &[String],
    devspace6: bool,
    rng: &mut R,
) -> Vec<String> {
    if devspace6 && tags.is_empty() {
        vec![random_tag_v6(rng)]
    } else {
        tags.to_vec()
    }
}

/// The tags to build and push, in order (the first is recorded for deploy):
/// `override_tags` (from `-t/--tag`) replace `configured` when given; none at all → one
/// [`random_tag`]; every `#` becomes a random letter; with `append_random` each tag gets
/// `-` and [`RANDOM_LEN`] random letters. Every result is checked to be a valid Docker tag.
pub fn resolve_tags<R: Rng + ?Sized>(
    image: &str,
    configured: &[String],
    override_tags: Option<&[String]>,
    append_random: bool,
    rng: &mut R,
) -> Result<Vec<String>, InvalidTag> {
    let source = override_tags.unwrap_or(configured);
    let mut tags: Vec<String> = if source.is_empty() {
        vec![random_tag(rng)]
    } else {
        source
            .iter()
            .map(|t| {
                t.chars()
                    .map(|c| if c == '#' { pick(rng, LETTERS) } else { c })
                    .collect()
            })
            .collect()
    };
    if append_random {
        for tag in &mut tags {
            tag.push('-');
            for _ in 0..RANDOM_LEN {
                tag.push(pick(rng, LETTERS));
            }
        }
    }
    let mut unique = Vec::with_capacity(tags.len());
    for tag in tags {
        if !is_valid_tag(&tag) {
            return Err(InvalidTag {
                image: image.to_owned(),
                tag,
            });
        }
        // A repeated tag would be built and pushed twice for nothing.
        if !unique.contains(&tag) {
            unique.push(tag);
        }
    }
    Ok(unique)
}

/// DevSpace's warning when a rebuilt image got the same first tag as the last build: a
/// deployment that already runs that tag may not pick up the new image.
pub fn reused_tag_warning(image: &str, new_tag: &str, cached_tag: Option<&str>) -> Option<String> {
    (cached_tag == Some(new_tag)).then(|| {
        format!(
            "Newly built image '{image}' has the same tag as in the last build ({new_tag}), this can lead to problems that the image during deployment is not updated"
        )
    })
}

/// Checks a tag as written by the user (`-t`, `images.*.tags`): each `#` stands for a random
/// letter. The error says what is wrong.
pub fn check_written_tag(tag: &str) -> Result<(), String> {
    let resolved: String = tag.replace('#', "a");
    if is_valid_tag(&resolved) {
        return Ok(());
    }
    let why = if tag.is_empty() {
        "a tag cannot be empty".to_owned()
    } else if resolved.len() > 128 {
        format!(
            "a tag has at most 128 characters, this one {}",
            resolved.len()
        )
    } else {
        "a tag starts with a letter, digit or `_` and holds only letters, digits, `_`, `.` and `-`"
            .to_owned()
    };
    Err(format!(
        "invalid tag `{}`: {why}",
        crate::diagnostic::escape(tag)
    ))
}

/// The `-t/--tag` value parser (exit 2 before any work).
pub fn parse_tag_flag(tag: &str) -> Result<String, String> {
    check_written_tag(tag).map(|()| tag.to_owned())
}

/// Whether Docker accepts `tag` (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn pick<R: Rng + ?Sized>(rng: &mut R, alphabet: &[u8]) -> char {
    char::from(alphabet[rng.random_range(0..alphabet.len())])
}

impl crate::diagnostic::Diagnostic for InvalidTag {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn devspace6_default_tags_are_seven_letters() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut upper = false;
        for _ in 0..200 {
            let tags = configured_tags(&[], true, &mut rng);
            assert_eq!(tags.len(), 1);
            assert_eq!(tags[0].len(), 7, "{tags:?}");
            assert!(tags[0].bytes().all(|b| b.is_ascii_alphabetic()), "{tags:?}");
            upper |= tags[0].bytes().any(|b| b.is_ascii_uppercase());
        }
        assert!(upper, "mixed case like DevSpace 6");
        assert!(configured_tags(&[], false, &mut rng).is_empty());
        assert_eq!(configured_tags(&strings(&["a"]), true, &mut rng), ["a"]);
    }

    #[test]
    fn random_tags_have_the_documented_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let tag = random_tag(&mut rng);
            assert_eq!(tag.len(), RANDOM_LEN, "{tag}");
            assert!(tag.as_bytes()[0].is_ascii_lowercase(), "{tag}");
            assert!(
                tag.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{tag}"
            );
            seen.insert(tag);
        }
        // 2000 draws from ~45M values: a collision would mean the generator is broken.
        assert_eq!(seen.len(), 2000);
        let digits = seen
            .iter()
            .flat_map(|t| t.bytes())
            .filter(u8::is_ascii_digit)
            .count();
        assert!(digits > 0, "digits never drawn");
    }

    #[test]
    fn resolve_tags_table() {
        type Check = fn(&[String]) -> bool;
        type Case<'a> = (&'a str, &'a [&'a str], Option<&'a [&'a str]>, bool, Check);
        let cases: &[Case] = &[
            (
                "configured kept in order",
                &["v1", "latest"],
                None,
                false,
                |t| t == ["v1", "latest"],
            ),
            ("empty gets one random tag", &[], None, false, |t| {
                t.len() == 1 && t[0].len() == 5
            }),
            (
                "override replaces configured",
                &["v1"],
                Some(&["a", "b"]),
                false,
                |t| t == ["a", "b"],
            ),
            (
                "empty override means random",
                &["v1"],
                Some(&[]),
                false,
                |t| t.len() == 1 && t[0] != "v1" && t[0].len() == 5,
            ),
            (
                "# becomes a random letter",
                &["dev-###"],
                None,
                false,
                |t| {
                    t[0].len() == 7
                        && t[0].starts_with("dev-")
                        && t[0][4..].bytes().all(|b| b.is_ascii_lowercase())
                },
            ),
            ("append random", &["v1", "v2"], None, true, |t| {
                t.len() == 2
                    && t.iter().all(|x| x.len() == 8 && x.as_bytes()[2] == b'-')
                    && t[0][3..].bytes().all(|b| b.is_ascii_lowercase())
            }),
            (
                "duplicates dropped",
                &["v1", "v1", "v2"],
                None,
                false,
                |t| t == ["v1", "v2"],
            ),
        ];
        let mut rng = StdRng::seed_from_u64(1);
        for (name, configured, over, append, check) in cases {
            let over = over.map(strings);
            let tags = resolve_tags(
                "app",
                &strings(configured),
                over.as_deref(),
                *append,
                &mut rng,
            )
            .unwrap();
            assert!(check(&tags), "case {name}: {tags:?}");
        }
    }

    #[test]
    fn reused_tags_warn() {
        assert_eq!(reused_tag_warning("john/app", "v1", Some("v2")), None);
        assert_eq!(reused_tag_warning("john/app", "v1", None), None);
        assert_eq!(
            reused_tag_warning("john/app", "v1", Some("v1")).as_deref(),
            Some(
                "Newly built image 'john/app' has the same tag as in the last build (v1), this can lead to problems that the image during deployment is not updated"
            )
        );
    }

    #[test]
    fn invalid_tags_are_refused_with_the_image_named() {
        let mut rng = StdRng::seed_from_u64(1);
        for bad in ["", "-x", ".x", "a:b", "a/b", &"x".repeat(129)] {
            let err =
                resolve_tags("john/app", &strings(&[bad]), None, false, &mut rng).unwrap_err();
            assert_eq!(err.image, "john/app");
            assert!(
                err.to_string().starts_with("image john/app: invalid tag"),
                "{err}"
            );
        }
        for good in ["_x", "V1.2-rc_3", &"x".repeat(128)] {
            assert!(is_valid_tag(good), "{good}");
        }
    }
}
