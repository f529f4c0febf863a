//! DevSpace 6 runtime variables in text: `${runtime.images.<key>}` (`image:tag`),
//! `${runtime.images.<key>.image}` and `${runtime.images.<key>.tag}`. The loader leaves them
//! literal; they are filled where DevSpace fills them — the custom build command (with the
//! image's own new tag) and Helm `values` (with the tags deploy uses). Pure.

/// What a runtime reference asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `image:tag`.
    Both,
    Image,
    Tag,
}

/// Gives `(image, tag)` of an image key (`None`: no such image).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<(String, Option<String>)>;

/// Replaces every `${runtime.images.<key>[.image|.tag]}` in `text`. `lookup(key)` gives
/// `(image, tag)` (`None` = unknown key, an error; a missing tag is `latest`). Other
/// `${runtime.*}` references are errors (dependencies are not run by this tool).
pub fn fill(text: &str, lookup: Lookup<'_>) -> Result<String, String> {
    const OPEN: &str = "${runtime.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        // `$${…}` is an escape: keep one `$` and the text.
        if start > 0 && rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str(OPEN);
            rest = &rest[start + OPEN.len()..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let path = &after[..end];
        let Some(image_path) = path.strip_prefix("images.") else {
            return Err(format!(
                "`${{runtime.{path}}}`: only runtime.images.<name>[.image|.tag] is supported"
            ));
        };
        let (key, field) = match image_path.rsplit_once('.') {
            Some((k, "image")) => (k, Field::Image),
            Some((k, "tag")) => (k, Field::Tag),
            _ => (image_path, Field::Both),
        };
        let (image, tag) = lookup(key)
            .ok_or_else(|| format!("`${{runtime.{path}}}`: image `{key}` is not defined"))?;
        let tag = tag.unwrap_or_else(|| "latest".into());
        out.push_str(&match field {
            Field::Both => format!("{image}:{tag}"),
            Field::Image => image,
            Field::Tag => tag,
        });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`fill`] over every string of a JSON value (Helm `values`).
pub fn fill_json(value: &mut serde_json::Value, lookup: Lookup<'_>) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) if s.contains("${runtime.") => {
            *s = fill(s, lookup)?;
        }
        serde_json::Value::Array(items) => {
            for v in items {
                fill_json(v, lookup)?;
            }
        }
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                fill_json(v, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(key: &str) -> Option<(String, Option<String>)> {
        match key {
            "api" => Some(("ghcr.io/a/api".into(), Some("abc".into()))),
            "web" => Some(("web".into(), None)),
            _ => None,
        }
    }

    #[test]
    fn fills_image_tag_and_both() {
        let cases = [
            ("${runtime.images.api}", "ghcr.io/a/api:abc"),
            (
                "${runtime.images.api.image}:${runtime.images.api.tag}",
                "ghcr.io/a/api:abc",
            ),
            ("--tag=${runtime.images.web.tag} x", "--tag=latest x"),
            ("no refs", "no refs"),
            ("$${runtime.images.api}", "${runtime.images.api}"),
        ];
        for (input, want) in cases {
            assert_eq!(fill(input, &lookup).unwrap(), want, "{input}");
        }
        assert!(
            fill("${runtime.images.nope.tag}", &lookup)
                .unwrap_err()
                .contains("`nope` is not defined")
        );
        assert!(fill("${runtime.dependencies.x.images.y}", &lookup).is_err());
        let mut v = serde_json::json!({"image": {"tag": "${runtime.images.api.tag}"}, "n": 1});
        fill_json(&mut v, &lookup).unwrap();
        assert_eq!(v["image"]["tag"], "abc");
    }
}
