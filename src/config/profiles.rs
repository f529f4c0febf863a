//! Profiles: choosing the chain (`-p`, `parent`, 5.x `parents`) and applying each profile to
//! the positioned tree in DevSpace 5.x order: `replace`, `merge` (JSON merge patch),
//! `strategicMerge`, then `patches` (krishicks/yaml-patch semantics: JSON pointers or dotted
//! paths, `key=value` selectors, `-` to append, and DevSpace's "add to an existing array
//! appends" rule). Nodes a profile puts in place are marked with its name so later errors can
//! say which profile introduced them.

use super::error::{ConfigError, Location};
use super::yaml::{Key, Map, Node, Pos, Value};
use std::path::Path;
use std::sync::Arc;

/// Where profile errors point.
pub struct Ctx<'a> {
    pub file: &'a Path,
    pub src: &'a str,
}

impl Ctx<'_> {
    fn profile_err(&self, message: String) -> ConfigError {
        ConfigError::Profile {
            path: self.file.to_path_buf(),
            message,
        }
    }
}

fn name_of(profile: &Node) -> Option<&str> {
    profile.get("name").and_then(Node::scalar_text)
}

/// Resolves the chain of one selected profile: parents first, the profile itself last.
pub fn chain<'p>(
    profiles: &'p [Node],
    selected: &str,
    ctx: &Ctx<'_>,
) -> Result<Vec<&'p Node>, ConfigError> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    collect(profiles, selected, ctx, &mut stack, &mut out)?;
    Ok(out)
}

fn collect<'p>(
    profiles: &'p [Node],
    name: &str,
    ctx: &Ctx<'_>,
    stack: &mut Vec<String>,
    out: &mut Vec<&'p Node>,
) -> Result<(), ConfigError> {
    if stack.iter().any(|s| s == name) {
        let mut cycle = stack.clone();
        cycle.push(name.to_string());
        return Err(ctx.profile_err(format!(
            "Loop in profile loading detected {}",
            cycle.join("->")
        )));
    }
    if profiles.is_empty() {
        return Err(ctx.profile_err(format!("Couldn't load profile '{name}': no profiles found")));
    }
    let profile = profiles
        .iter()
        .find(|p| name_of(p) == Some(name))
        .ok_or_else(|| {
            let known: Vec<&str> = profiles.iter().filter_map(|p| name_of(p)).collect();
            ctx.profile_err(format!(
                "Couldn't find profile '{name}' (profiles in this config: {})",
                known.join(", ")
            ))
        })?;
    stack.push(name.to_string());
    let parent = profile.get("parent").and_then(Node::scalar_text);
    let parents = profile.get("parents").and_then(|p| match &p.value {
        Value::Seq(items) if !items.is_empty() => Some(items),
        _ => None,
    });
    if parent.is_some() && parents.is_some() {
        return Err(ctx.profile_err(format!(
            "parents and parent cannot be defined at the same time in profile {name}. Please choose either one"
        )));
    }
    if let Some(parent) = parent {
        collect(profiles, parent, ctx, stack, out)?;
    }
    for p in parents.into_iter().flatten() {
        if p.get("source").is_some_and(|s| !s.is_null()) {
            return Err(ctx.profile_err(format!(
                "profile `{name}`: parents loaded from another source (`parents[].source`) are not supported"
            )));
        }
        if let Some(parent) = p.get("profile").and_then(Node::scalar_text) {
            collect(profiles, parent, ctx, stack, out)?;
        }
    }
    stack.pop();
    out.push(profile);
    Ok(())
}

/// Applies one profile to `doc` (which no longer holds `profiles` and `commands`).
pub fn apply(doc: &mut Node, profile: &Node, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    let name: Arc<str> = Arc::from(name_of(profile).unwrap_or_default());
    if let Some(Value::Map(entries)) = profile.get("replace").map(|r| &r.value) {
        for (k, v) in entries {
            if k.name == "profiles" || k.name == "commands" {
                continue;
            }
            let mut v = v.clone();
            v.mark_profile(&name);
            doc.set(&k.name, v);
        }
    }
    if let Some(merge) = profile.get("merge").filter(|m| !m.is_null()) {
        let mut merge = merge.clone();
        merge.mark_profile(&name);
        merge_patch(doc, &merge);
    }
    if let Some(sm) = profile.get("strategicMerge").filter(|m| !m.is_null()) {
        let mut sm = sm.clone();
        sm.mark_profile(&name);
        strategic_merge(doc, &sm, true);
    }
    if let Some(Value::Seq(patches)) = profile.get("patches").map(|p| &p.value) {
        for (index, patch) in patches.iter().enumerate() {
            apply_patch(doc, patch, index, &name, ctx)?;
        }
    }
    Ok(())
}

/// RFC 7386 JSON merge patch: maps merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Node, patch: &Node) {
    let Value::Map(entries) = &patch.value else {
        *target = patch.clone();
        return;
    };
    if !matches!(target.value, Value::Map(_)) {
        *target = Node {
            value: Value::Map(Map::new()),
            pos: patch.pos,
            span: patch.span.clone(),
            profile: patch.profile.clone(),
        };
    }
    for (k, v) in entries {
        if v.is_null() {
            target.remove(&k.name);
        } else if let Some(t) = target.get_mut(&k.name) {
            merge_patch(t, v);
        } else {
            let mut fresh = Node::null();
            merge_patch(&mut fresh, v);
            push_key(target, k, fresh);
        }
    }
}

fn push_key(target: &mut Node, key: &Key, value: Node) {
    if let Some(map) = target.as_map_mut() {
        map.push((key.clone(), value));
    }
}

/// The list merge keys DevSpace's schema declares (`patchMergeKey`) for top-level sections.
fn merge_key(section: &str) -> Option<&'static str> {
    match section {
        "vars" | "deployments" | "commands" | "dependencies" => Some("name"),
        "pullSecrets" => Some("registry"),
        _ => None,
    }
}

/// Strategic merge: like a merge patch, but top-level lists with a merge key merge by it.
pub fn strategic_merge(target: &mut Node, patch: &Node, top: bool) {
    let Value::Map(entries) = &patch.value else {
        *target = patch.clone();
        return;
    };
    if !matches!(target.value, Value::Map(_)) {
        merge_patch(target, patch);
        return;
    }
    for (k, v) in entries {
        if v.is_null() {
            target.remove(&k.name);
            continue;
        }
        let key = if top { merge_key(&k.name) } else { None };
        match (target.get_mut(&k.name), key) {
            (Some(t), Some(mk))
                if matches!((&t.value, &v.value), (Value::Seq(_), Value::Seq(_))) =>
            {
                merge_list(t, v, mk)
            }
            (Some(t), _) => strategic_merge(t, v, false),
            (None, _) => {
                let mut fresh = Node::null();
                merge_patch(&mut fresh, v);
                push_key(target, k, fresh);
            }
        }
    }
}

fn merge_list(target: &mut Node, patch: &Node, key: &str) {
    let (Value::Seq(items), Value::Seq(patch_items)) = (&mut target.value, &patch.value) else {
        return;
    };
    for p in patch_items {
        let id = p.get(key).and_then(Node::scalar_text);
        match items
            .iter_mut()
            .find(|i| id.is_some() && i.get(key).and_then(Node::scalar_text) == id)
        {
            Some(existing) => strategic_merge(existing, p, false),
            None => items.push(p.clone()),
        }
    }
}

/// DevSpace's path conversion: JSON pointers stay, dotted paths become pointers
/// (`a.b[0]["c"]` → `/a/b/0/c`; every `.` is a separator).
pub fn to_pointer(path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let mut out = String::from("/");
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => out.push('/'),
            '[' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                let inner = inner.trim_matches(|c| c == '"' || c == '\'');
                if !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(inner);
            }
            c => out.push(c),
        }
    }
    out
}

fn decode(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

fn child<'a>(node: &'a Node, seg: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(_) => node.get(seg),
        Value::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        Value::Scalar { .. } | Value::Alias => None,
    }
}

fn child_mut<'a>(node: &'a mut Node, seg: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Map(entries) => entries.get_mut(seg),
        Value::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        Value::Scalar { .. } | Value::Alias => None,
    }
}

fn container_mut<'a>(root: &'a mut Node, parents: &[String]) -> Option<&'a mut Node> {
    let mut cur = root;
    for seg in parents {
        cur = child_mut(cur, seg)?;
    }
    matches!(cur.value, Value::Map(_) | Value::Seq(_)).then_some(cur)
}

/// Expands `key=value` selectors into concrete paths (yaml-patch's path finder).
fn find_paths(root: &Node, pointer: &str) -> Vec<Vec<String>> {
    let parts: Vec<String> = pointer.split('/').skip(1).map(decode).collect();
    if parts.first().is_none_or(|p| p.is_empty()) {
        return vec![Vec::new()];
    }
    let mut routes: Vec<(Vec<String>, &Node)> = vec![(Vec::new(), root)];
    for part in &parts {
        let mut matches: Vec<(Vec<String>, &Node)> = Vec::new();
        if part == "-" {
            routes = routes
                .into_iter()
                .map(|(mut p, n)| {
                    p.push("-".into());
                    (p, n)
                })
                .collect();
            continue;
        }
        for (prefix, node) in &routes {
            let kv: Vec<&str> = part.split('=').collect();
            if kv.len() == 2 {
                let found = find_all(prefix.clone(), kv[0], kv[1], node);
                if !found.is_empty() {
                    matches = found;
                }
                continue;
            }
            if let Some(c) = child(node, part) {
                let mut p = prefix.clone();
                p.push(part.clone());
                matches.push((p, c));
            }
        }
        routes = matches;
    }
    routes.into_iter().map(|(p, _)| p).collect()
}

fn find_all<'a>(
    prefix: Vec<String>,
    key: &str,
    value: &str,
    node: &'a Node,
) -> Vec<(Vec<String>, &'a Node)> {
    if node.get(key).and_then(Node::as_str) == Some(value) {
        return vec![(prefix, node)];
    }
    let mut out = Vec::new();
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let mut p = prefix.clone();
                p.push(k.name.clone());
                out.extend(find_all(p, key, value, v));
            }
        }
        Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                out.extend(find_all(p, key, value, v));
            }
        }
        Value::Scalar { .. } | Value::Alias => {}
    }
    out
}

/// DevSpace: `add` with a dotted path that names an existing array appends to it. The lookup
/// only follows map keys (it gives up at the first array, as DevSpace's does).
fn add_appends(root: &Node, pointer: &str) -> bool {
    let mut cur = root;
    for seg in pointer.split('/').skip(1).map(decode) {
        match &cur.value {
            Value::Map(_) => match cur.get(&seg) {
                Some(n) => cur = n,
                None => return false,
            },
            _ => return false,
        }
    }
    matches!(cur.value, Value::Seq(_))
}

fn pointer_of(segs: &[String]) -> String {
    segs.iter().map(|s| format!("/{s}")).collect()
}

fn apply_patch(
    doc: &mut Node,
    patch: &Node,
    index: usize,
    profile: &Arc<str>,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let at_node = patch.get("path").unwrap_or(patch);
    let fail = |message: String| ConfigError::Patch {
        at: Location::new(ctx.file, ctx.src, at_node.pos, None),
        profile: profile.to_string(),
        index,
        message,
    };
    let op = patch
        .get("op")
        .and_then(Node::scalar_text)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| fail("`op` is missing".into()))?;
    let raw_path = patch
        .get("path")
        .and_then(Node::scalar_text)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| fail("`path` is missing".into()))?;
    let mut pointer = to_pointer(raw_path);
    if op == "add" && !raw_path.starts_with('/') && add_appends(doc, &pointer) {
        pointer.push_str("/-");
    }
    let mut value = patch.get("value").cloned().unwrap_or_else(Node::null);
    value.mark_profile(profile);
    let from = patch
        .get("from")
        .and_then(Node::scalar_text)
        .map(to_pointer);

    let (parent_ptr, last) = pointer.rsplit_once('/').unwrap_or(("", pointer.as_str()));
    let paths: Vec<Vec<String>> = if op == "add" && parent_ptr.contains('=') && !last.contains('=')
    {
        // Adding a key under selected items: expand the selector to the parents (DevSpace 5.x
        // adds a missing key there; yaml-patch would refuse a path that does not exist yet).
        let found = find_paths(doc, parent_ptr);
        if found.is_empty() {
            return Err(fail(format!("could not expand pointer: {pointer}")));
        }
        found
            .into_iter()
            .map(|mut p| {
                p.push(decode(last));
                p
            })
            .collect()
    } else if pointer.contains('=') {
        let found = find_paths(doc, &pointer);
        if found.is_empty() {
            return Err(fail(format!("could not expand pointer: {pointer}")));
        }
        found
    } else {
        vec![pointer.split('/').skip(1).map(decode).collect()]
    };
    for segs in paths {
        perform(doc, op, &segs, from.as_deref(), &value, at_node.pos).map_err(&fail)?;
    }
    Ok(())
}

/// Performs one operation; keys it creates are placed at `key_pos` (the patch's `path`).
fn perform(
    doc: &mut Node,
    op: &str,
    segs: &[String],
    from: Option<&str>,
    value: &Node,
    key_pos: Pos,
) -> Result<(), String> {
    let missing = |what: &str| {
        format!(
            "{op} does not apply: the config has no {what} {}",
            pointer_of(segs)
        )
    };
    match op {
        "add" => {
            let Some((last, parents)) = segs.split_last() else {
                if let (Value::Map(root), Value::Map(add)) = (&mut doc.value, &value.value) {
                    for (k, v) in add {
                        match root.get_mut(&k.name) {
                            Some(slot) => *slot = v.clone(),
                            None => root.push((k.clone(), v.clone())),
                        }
                    }
                }
                return Ok(());
            };
            let con = container_mut(doc, parents).ok_or_else(|| missing("path"))?;
            insert(con, last, value.clone(), true, key_pos)
        }
        "remove" => {
            let Some((last, parents)) = segs.split_last() else {
                return Err("cannot remove the whole config".into());
            };
            // yaml-patch ignores a remove whose parent does not exist.
            let Some(con) = container_mut(doc, parents) else {
                return Ok(());
            };
            match &mut con.value {
                Value::Map(_) => con
                    .remove(last)
                    .map(|_| ())
                    .ok_or_else(|| format!("Unable to remove nonexistent key: {last}")),
                Value::Seq(items) => match last.parse::<usize>() {
                    Ok(i) if i < items.len() => {
                        items.remove(i);
                        Ok(())
                    }
                    _ => Err(format!("Unable to remove invalid index: {last}")),
                },
                Value::Scalar { .. } | Value::Alias => Ok(()),
            }
        }
        "replace" => {
            let Some((last, parents)) = segs.split_last() else {
                *doc = value.clone();
                return Ok(());
            };
            let con = container_mut(doc, parents).ok_or_else(|| missing("path"))?;
            if child(con, last).is_none_or(Node::is_null) {
                return Err(missing("key"));
            }
            insert(con, last, value.clone(), false, key_pos)
        }
        "move" | "copy" | "test" => {
            let source_ptr = if op == "test" {
                pointer_of(segs)
            } else {
                from.ok_or_else(|| format!("{op} needs `from`"))?
                    .to_string()
            };
            let source: Vec<String> = source_ptr.split('/').skip(1).map(decode).collect();
            let mut cur: &Node = doc;
            for s in &source {
                cur = child(cur, s).ok_or_else(|| {
                    format!("{op} does not apply: the config has no path {source_ptr}")
                })?;
            }
            let taken = cur.clone();
            if op == "test" {
                return if same(&taken, value) {
                    Ok(())
                } else {
                    Err("test failed".into())
                };
            }
            if op == "move" {
                perform(doc, "remove", &source, None, value, key_pos)?;
            }
            let Some((last, parents)) = segs.split_last() else {
                *doc = taken;
                return Ok(());
            };
            let con = container_mut(doc, parents).ok_or_else(|| missing("destination path"))?;
            insert(con, last, taken, false, key_pos)
        }
        other => Err(format!(
            "unexpected op `{other}` (expected add, remove, replace, move, copy or test)"
        )),
    }
}

/// Puts `value` at `key` of a container: `add` inserts into arrays, `set` overwrites (growing
/// the array like yaml-patch does).
fn insert(con: &mut Node, key: &str, value: Node, add: bool, key_pos: Pos) -> Result<(), String> {
    match &mut con.value {
        Value::Map(entries) => {
            match entries.get_mut(key) {
                Some(slot) => *slot = value,
                None => entries.push((
                    Key {
                        name: key.to_string(),
                        pos: key_pos,
                    },
                    value,
                )),
            }
            Ok(())
        }
        Value::Seq(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let i: usize = key
                .parse()
                .map_err(|_| format!("`{key}` is not an array index"))?;
            if add {
                if i > items.len() {
                    return Err(format!("Unable to access invalid index: {i}"));
                }
                items.insert(i, value);
            } else {
                if i >= items.len() {
                    items.resize(i + 1, Node::null());
                }
                items[i] = value;
            }
            Ok(())
        }
        Value::Scalar { .. } | Value::Alias => Err("the parent is not a mapping or a list".into()),
    }
}

/// Structural equality, ignoring positions.
fn same(a: &Node, b: &Node) -> bool {
    a.to_json() == b.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;
    use serde_json::json;

    fn ctx() -> Ctx<'static> {
        Ctx {
            file: Path::new("devspace.yaml"),
            src: "",
        }
    }

    fn run(doc: &str, patches: &str) -> Result<serde_json::Value, ConfigError> {
        let mut doc = parse(doc).unwrap().root;
        let profile = parse(&format!("name: p\npatches:\n{patches}"))
            .unwrap()
            .root;
        apply(&mut doc, &profile, &ctx())?;
        Ok(doc.to_json())
    }

    #[test]
    fn dotted_paths_become_pointers() {
        let cases = [
            ("images.app.image", "/images/app/image"),
            ("deployments[0].helm", "/deployments/0/helm"),
            ("a[\"b\"].c", "/a/b/c"),
            ("a.b[-]", "/a/b/-"),
            ("/images/x.y", "/images/x.y"),
            ("deployments.name=app.helm", "/deployments/name=app/helm"),
        ];
        for (input, want) in cases {
            assert_eq!(to_pointer(input), want, "{input}");
        }
    }

    #[test]
    fn patch_ops_table() {
        let base = "images:\n  app:\n    image: a\n    tags: [x]\ndeployments:\n- name: one\n  helm: {values: {list: [1]}}\n- name: two\n  kubectl: {manifests: [a.yaml]}\n";
        let cases: &[(&str, &str, serde_json::Value)] = &[
            (
                "- op: replace\n  path: images.app.image\n  value: b\n",
                "/images/app/image",
                json!("b"),
            ),
            (
                "- op: add\n  path: images.app.tags\n  value: q\n",
                "/images/app/tags",
                json!(["x", "q"]),
            ),
            (
                "- op: add\n  path: /images/app/tags/0\n  value: q\n",
                "/images/app/tags",
                json!(["q", "x"]),
            ),
            (
                "- op: add\n  path: images.app.tags[-]\n  value: z\n",
                "/images/app/tags",
                json!(["x", "z"]),
            ),
            (
                "- op: remove\n  path: images.app.tags\n",
                "/images/app",
                json!({"image": "a"}),
            ),
            (
                "- op: replace\n  path: deployments.name=two.kubectl.manifests\n  value: [b.yaml]\n",
                "/deployments/1/kubectl/manifests",
                json!(["b.yaml"]),
            ),
            (
                "- op: add\n  path: deployments.name=one.helm.values.list\n  value: [2]\n",
                "/deployments/0/helm/values/list",
                json!([2]),
            ),
            (
                "- op: add\n  path: deployments.name=one.helm.values.extra\n  value: e\n",
                "/deployments/0/helm/values/extra",
                json!("e"),
            ),
            (
                "- op: add\n  path: images.new\n  value: {image: nn}\n",
                "/images/new",
                json!({"image": "nn"}),
            ),
            (
                "- op: copy\n  from: images.app\n  path: images.copy\n",
                "/images/copy/image",
                json!("a"),
            ),
            (
                "- op: move\n  from: images.app.tags\n  path: images.app.moved\n",
                "/images/app",
                json!({"image": "a", "moved": ["x"]}),
            ),
            (
                "- op: remove\n  path: images.missing.field\n",
                "/images/app/image",
                json!("a"),
            ),
            (
                "- op: test\n  path: images.app.image\n  value: a\n",
                "/images/app/image",
                json!("a"),
            ),
        ];
        for (patches, pointer, want) in cases {
            let out = run(base, patches).unwrap_or_else(|e| panic!("{patches}: {e}"));
            assert_eq!(out.pointer(pointer), Some(want), "{patches}");
        }
    }

    #[test]
    fn patch_errors_say_what_is_missing() {
        let base = "images:\n  app:\n    image: a\n";
        let cases = [
            ("- path: images.app.image\n", "`op` is missing"),
            ("- op: replace\n", "`path` is missing"),
            (
                "- op: replace\n  path: images.app.tag\n  value: x\n",
                "no key /images/app/tag",
            ),
            (
                "- op: add\n  path: images.nope.tag\n  value: x\n",
                "no path /images/nope/tag",
            ),
            (
                "- op: remove\n  path: images.app.tag\n",
                "nonexistent key: tag",
            ),
            (
                "- op: replace\n  path: deployments.name=x.helm\n  value: 1\n",
                "could not expand pointer",
            ),
            ("- op: frobnicate\n  path: images\n", "unexpected op"),
            (
                "- op: test\n  path: images.app.image\n  value: b\n",
                "test failed",
            ),
        ];
        for (patches, want) in cases {
            let err = run(base, patches).unwrap_err().to_string();
            assert!(err.contains(want), "{patches}: {err}");
            assert!(err.contains("profile `p`"), "{err}");
        }
    }

    #[test]
    fn replace_merge_and_strategic_merge() {
        let mut doc = parse("images:\n  a: {image: a, tags: [x]}\ndeployments:\n- name: d1\n  helm: {wait: true}\n- name: d2\ndev: {x: 1}\n").unwrap().root;
        let profile = parse(
            "name: p\nreplace:\n  dev: {y: 2}\nmerge:\n  images:\n    a: {tags: [q], dockerfile: D}\n    b: {image: b}\nstrategicMerge:\n  deployments:\n  - name: d1\n    helm: {atomic: true}\n  - name: d3\n",
        )
        .unwrap()
        .root;
        apply(&mut doc, &profile, &ctx()).unwrap();
        assert_eq!(
            doc.to_json(),
            json!({
                "images": {"a": {"image": "a", "tags": ["q"], "dockerfile": "D"}, "b": {"image": "b"}},
                "deployments": [{"name": "d1", "helm": {"wait": true, "atomic": true}}, {"name": "d2"}, {"name": "d3"}],
                "dev": {"y": 2}
            })
        );
        let b = doc.get("images").unwrap().get("b").unwrap();
        assert_eq!(b.profile.as_deref(), Some("p"));

        let mut doc = parse("images: {a: {image: a, tags: [x]}}").unwrap().root;
        merge_patch(&mut doc, &parse("images: {a: {tags: null}}").unwrap().root);
        assert_eq!(doc.to_json(), json!({"images": {"a": {"image": "a"}}}));
    }

    #[test]
    fn chains_parents_and_loops() {
        let profiles = parse(
            "- name: a\n  parent: b\n- name: b\n- name: c\n  parents: [{profile: a}, {profile: b}]\n- name: loop1\n  parent: loop2\n- name: loop2\n  parent: loop1\n",
        )
        .unwrap()
        .root;
        let Value::Seq(items) = &profiles.value else {
            unreachable!()
        };
        let names = |sel: &str| -> Vec<String> {
            chain(items, sel, &ctx())
                .unwrap()
                .iter()
                .map(|p| name_of(p).unwrap().to_string())
                .collect()
        };
        assert_eq!(names("a"), ["b", "a"]);
        assert_eq!(names("c"), ["b", "a", "b", "c"]);
        let err = chain(items, "loop1", &ctx()).unwrap_err().to_string();
        assert!(
            err.contains("Loop in profile loading detected loop1->loop2->loop1"),
            "{err}"
        );
        let err = chain(items, "zzz", &ctx()).unwrap_err().to_string();
        assert!(err.contains("Couldn't find profile 'zzz'"), "{err}");
        let err = chain(&[], "x", &ctx()).unwrap_err().to_string();
        assert!(
            err.contains("Couldn't load profile 'x': no profiles found"),
            "{err}"
        );
    }
}
