//! Replacement tables: each case is (configured images, input, expected output).

use super::*;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `app` = `john/app` (tag `t1`, digest known), `web` = `docker.io/library/nginx` written as
/// `nginx` (tag `t2`), `reg` = `localhost:5000/team/api` (tag `t3`), `hub` written with the
/// `docker.io/` prefix (tag `t4`), `never` has no tag.
fn table(use_digests: bool) -> ImageTable {
    let mut tags = IndexMap::new();
    tags.insert(
        "app".to_owned(),
        ImageTag {
            tag: "t1".into(),
            digest: Some(DIGEST.into()),
        },
    );
    tags.insert("web".to_owned(), ImageTag::new("t2"));
    tags.insert("reg".to_owned(), ImageTag::new("t3"));
    tags.insert("hub".to_owned(), ImageTag::new("t4"));
    ImageTable::from_images(
        [
            ("app", "john/app"),
            ("web", "nginx"),
            ("reg", "localhost:5000/team/api"),
            ("hub", "docker.io/jane/svc"),
            ("never", "john/never"),
        ],
        &tags,
        use_digests,
    )
}

fn run(scope: Scope, input: &str, use_digests: bool) -> Replaced {
    let out = replace_tags(input, scope, &table(use_digests)).expect("valid yaml");
    // Whatever we write must still be valid YAML with the same number of documents.
    let before = yaml::parse_documents(input).expect("input parses").len();
    let after = yaml::parse_documents(&out.text)
        .expect("output parses")
        .len();
    assert_eq!(before, after, "document count changed:\n{}", out.text);
    out
}

fn check(scope: Scope, cases: &[(&str, &str, &str)]) {
    for (name, input, expected) in cases {
        let out = run(scope, input, false);
        assert_eq!(out.text, *expected, "case `{name}`");
    }
}

#[test]
fn manifest_image_keys() {
    check(
        Scope::Manifest,
        &[
            (
                "pod container",
                "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: john/app\n",
                "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: john/app:t1\n",
            ),
            (
                "old tag dropped",
                "image: john/app:old\n",
                "image: john/app:t1\n",
            ),
            (
                "old digest dropped",
                &format!("image: john/app:old@{DIGEST}\n"),
                "image: john/app:t1\n",
            ),
            (
                "docker hub library forms keep the manifest's spelling",
                "a:\n  image: nginx:1.25\nb:\n  image: docker.io/library/nginx\nc:\n  image: library/nginx@sha256:0123456789abcdef0123456789abcdef\n",
                "a:\n  image: nginx:t2\nb:\n  image: docker.io/library/nginx:t2\nc:\n  image: library/nginx:t2\n",
            ),
            (
                "docker.io prefix in the manifest matches a bare config image",
                "image: docker.io/john/app\n",
                "image: docker.io/john/app:t1\n",
            ),
            (
                "docker.io prefix in the config matches a bare manifest image",
                "image: jane/svc:1\nx:\n  image: index.docker.io/jane/svc\n",
                "image: jane/svc:t4\nx:\n  image: index.docker.io/jane/svc:t4\n",
            ),
            (
                "registry with port",
                "image: localhost:5000/team/api:dev\n",
                "image: localhost:5000/team/api:t3\n",
            ),
            (
                "other registry, same path: no match",
                "image: quay.io/john/app\n",
                "image: quay.io/john/app\n",
            ),
            (
                "longer name: no match",
                "image: john/app-sidecar\nimage2: john/app\n",
                "image: john/app-sidecar\nimage2: john/app\n",
            ),
            (
                "image without tag in table never replaced",
                "image: john/never:x\n",
                "image: john/never:x\n",
            ),
            (
                "init and ephemeral containers",
                "spec:\n  initContainers:\n  - image: nginx\n  ephemeralContainers:\n  - image: john/app\n  containers:\n  - image: busybox\n",
                "spec:\n  initContainers:\n  - image: nginx:t2\n  ephemeralContainers:\n  - image: john/app:t1\n  containers:\n  - image: busybox\n",
            ),
            (
                "CRD at any depth and CronJob",
                "apiVersion: x.io/v1\nkind: Widget\nspec:\n  deep:\n    deeper:\n      image: john/app\n---\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - image: nginx\n",
                "apiVersion: x.io/v1\nkind: Widget\nspec:\n  deep:\n    deeper:\n      image: john/app:t1\n---\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - image: nginx:t2\n",
            ),
            (
                "only image keys: other values, list items and keys untouched",
                "name: john/app\nargs: [john/app, nginx]\njohn/app: image\nenv:\n- name: X\n  value: nginx\n",
                "name: john/app\nargs: [john/app, nginx]\njohn/app: image\nenv:\n- name: X\n  value: nginx\n",
            ),
            (
                "labels and annotations untouched",
                "metadata:\n  labels:\n    image: nginx\n  annotations:\n    image: john/app\nspec:\n  image: nginx\n",
                "metadata:\n  labels:\n    image: nginx\n  annotations:\n    image: john/app\nspec:\n  image: nginx:t2\n",
            ),
            (
                "comments and multi-doc survive",
                "# head\n---\n# doc 1\nimage: john/app # trailing\n# between\n---\n\n---\nimage: nginx   # x\n...\n",
                "# head\n---\n# doc 1\nimage: john/app:t1 # trailing\n# between\n---\n\n---\nimage: nginx:t2   # x\n...\n",
            ),
            (
                "quotes preserved",
                "a:\n  image: 'john/app'\nb:\n  image: \"nginx:1\"\n",
                "a:\n  image: 'john/app:t1'\nb:\n  image: \"nginx:t2\"\n",
            ),
            (
                "flow mappings",
                "containers: [{name: a, image: john/app}, {image: \"nginx\"}]\n",
                "containers: [{name: a, image: john/app:t1}, {image: \"nginx:t2\"}]\n",
            ),
            (
                "whitespace around the value is trimmed",
                "image: \" john/app \"\n",
                "image: \"john/app:t1\"\n",
            ),
            (
                "invalid references never match",
                "image: John/App\nx:\n  image: \"\"\n",
                "image: John/App\nx:\n  image: \"\"\n",
            ),
            (
                "crlf line endings kept",
                "a: 1\r\nimage: john/app\r\n",
                "a: 1\r\nimage: john/app:t1\r\n",
            ),
            (
                "block scalars are not candidates",
                "image: |\n  john/app\n",
                "image: |\n  john/app\n",
            ),
        ],
    );
}

#[test]
fn digests_only_when_enabled_and_known() {
    let input = "a:\n  image: john/app:old\nb:\n  image: nginx\n";
    let off = run(Scope::Manifest, input, false);
    assert_eq!(
        off.text,
        "a:\n  image: john/app:t1\nb:\n  image: nginx:t2\n"
    );
    let on = run(Scope::Manifest, input, true);
    assert_eq!(
        on.text,
        format!("a:\n  image: john/app:t1@{DIGEST}\nb:\n  image: nginx:t2\n")
    );
}

#[test]
fn replacements_are_reported() {
    let out = run(
        Scope::Manifest,
        "a:\n  image: john/app:old\nb:\n  image: nginx:t2\nc:\n  image: john/app\n",
        false,
    );
    let seen: Vec<(&str, usize, &str, &str)> = out
        .replacements
        .iter()
        .map(|r| {
            (
                r.image_key.as_str(),
                r.line,
                r.before.as_str(),
                r.after.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("app", 2, "john/app:old", "john/app:t1"),
            ("web", 4, "nginx:t2", "nginx:t2"),
            ("app", 6, "john/app", "john/app:t1"),
        ]
    );
    assert_eq!(out.matched_images(), ["app", "web"]);
}

#[test]
fn helm_values_rules() {
    check(
        Scope::HelmValues,
        &[
            (
                "every string value, maps and lists",
                "image: john/app\nsidecars:\n- nginx\n- busybox\nnested:\n  whatever: localhost:5000/team/api:x\n",
                "image: john/app:t1\nsidecars:\n- nginx:t2\n- busybox\nnested:\n  whatever: localhost:5000/team/api:t3\n",
            ),
            (
                "keys are never replaced",
                "john/app: john/app\nnginx:\n  x: 1\n",
                "john/app: john/app:t1\nnginx:\n  x: 1\n",
            ),
            (
                "substrings never match",
                "command: run john/app now\nurl: http://nginx/\nname: my-nginx\n",
                "command: run john/app now\nurl: http://nginx/\nname: my-nginx\n",
            ),
            (
                "complaint 2: env value equal to an image name untouched",
                "containers:\n- image: nginx\n  env:\n  - name: UPSTREAM\n    value: nginx\n  - name: APP\n    value: john/app\n",
                "containers:\n- image: nginx:t2\n  env:\n  - name: UPSTREAM\n    value: nginx\n  - name: APP\n    value: john/app\n",
            ),
            (
                "env items under another key name are still env items",
                "extraEnvVars:\n- name: UPSTREAM\n  value: nginx\nextraEnv:\n  A: nginx\nenv:\n  B: john/app\n",
                "extraEnvVars:\n- name: UPSTREAM\n  value: nginx\nextraEnv:\n  A: nginx\nenv:\n  B: john/app\n",
            ),
            (
                "a name/value map that is not a list item is a normal map",
                "proxy:\n  name: edge\n  value: nginx\n",
                "proxy:\n  name: edge\n  value: nginx:t2\n",
            ),
            (
                "complaint 2: labels and annotations untouched",
                "labels:\n  app: nginx\npodLabels:\n  tier: nginx\nannotations:\n  from: john/app\ncommonAnnotations:\n  x: nginx\nimage: nginx\n",
                "labels:\n  app: nginx\npodLabels:\n  tier: nginx\nannotations:\n  from: john/app\ncommonAnnotations:\n  x: nginx\nimage: nginx:t2\n",
            ),
            (
                "complaint 3: repository/tag split sets tag only",
                "image:\n  repository: john/app\n  tag: latest\n  pullPolicy: IfNotPresent\n",
                "image:\n  repository: john/app\n  tag: t1\n  pullPolicy: IfNotPresent\n",
            ),
            (
                "split with image key and quoted tag",
                "app:\n  image: nginx\n  tag: \"1.0\"\n",
                "app:\n  image: nginx\n  tag: \"t2\"\n",
            ),
            (
                "split: a tag written in the repository is removed, not doubled",
                "image:\n  repository: john/app:old\n  tag: old\n",
                "image:\n  repository: john/app\n  tag: t1\n",
            ),
            (
                "split with registry sibling",
                "image:\n  registry: localhost:5000\n  repository: team/api\n  tag: \"1\"\n",
                "image:\n  registry: localhost:5000\n  repository: team/api\n  tag: \"t3\"\n",
            ),
            (
                "split: a plain tag stays plain",
                "image:\n  repository: john/app\n  tag: 1\n",
                "image:\n  repository: john/app\n  tag: t1\n",
            ),
            (
                "repository of another image: tag untouched",
                "image:\n  repository: bitnami/redis\n  tag: \"7\"\n",
                "image:\n  repository: bitnami/redis\n  tag: \"7\"\n",
            ),
            (
                "helpers image() and tag() by key and by name",
                "a:\n  repo: image(app)\n  tag: tag(app)\nb:\n  repo: image(\"web\")\n  tag: tag('john/app')\n",
                "a:\n  repo: john/app\n  tag: t1\nb:\n  repo: nginx\n  tag: t1\n",
            ),
            (
                "helper results keep quoting",
                "a: 'image(hub)'\nb: \"tag(reg)\"\n",
                "a: 'docker.io/jane/svc'\nb: \"t3\"\n",
            ),
            (
                "comments survive in values",
                "# top\nimage: john/app # the app\n# bottom\n",
                "# top\nimage: john/app:t1 # the app\n# bottom\n",
            ),
        ],
    );
}

#[test]
fn helm_split_with_digests() {
    let out = run(
        Scope::HelmValues,
        "a:\n  repository: john/app\n  tag: x\nb:\n  repository: john/app\n  tag: x\n  digest: \"\"\n",
        true,
    );
    assert_eq!(
        out.text,
        format!(
            "a:\n  repository: john/app\n  tag: t1@{DIGEST}\nb:\n  repository: john/app\n  tag: t1\n  digest: \"{DIGEST}\"\n"
        )
    );
}

#[test]
fn helper_warnings() {
    let out = run(
        Scope::HelmValues,
        "a: tag(never)\nb: image(nope)\nc: image(never)\n",
        false,
    );
    assert_eq!(out.text, "a: tag(never)\nb: image(nope)\nc: john/never\n");
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("never"), "{:?}", out.warnings);
    assert!(out.warnings[1].contains("nope"), "{:?}", out.warnings);
}

#[test]
fn helper_call_forms() {
    let cases: &[(&str, Option<(Helper, &str)>)] = &[
        ("image(app)", Some((Helper::Image, "app"))),
        ("image(\"app\")", Some((Helper::Image, "app"))),
        ("image('app')", Some((Helper::Image, "app"))),
        ("tag(john/app)", Some((Helper::Tag, "john/app"))),
        ("image()", None),
        ("image(app", None),
        ("images(app)", None),
        (" image(app)", None),
        ("image(a)b)", None),
    ];
    for (input, expected) in cases {
        assert_eq!(helper_call(input), *expected, "{input}");
    }
}

#[test]
fn syntax_errors_are_reported() {
    let err = replace_tags("a: [b\n", Scope::Manifest, &table(false)).expect_err("bad yaml");
    assert!(err.pos.line >= 1);
}

#[test]
fn anchors_and_tags_survive() {
    check(
        Scope::Manifest,
        &[
            (
                "anchor on the replaced value is kept, alias follows it",
                "a:\n  image: &img john/app\nb:\n  image: *img\n",
                "a:\n  image: &img john/app:t1\nb:\n  image: *img\n",
            ),
            (
                "explicit tag kept",
                "image: !!str nginx\n",
                "image: !!str nginx:t2\n",
            ),
        ],
    );
}
