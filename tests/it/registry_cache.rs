//! The registry content cache and `retag: tags changed` end to end (issue 14 items 1-3): the
//! real binary, the real Docker daemon, real `docker-registry`s (plain, htpasswd), and a proxy
//! in front of one that refuses or holds our registry writes.
//!
//! Every test works in its own quickstart copy (unique image names and content); a "second
//! clone" is [`Project::clone_elsewhere`]: the same files in another folder, another `HOME`,
//! another `DOCKER_CONFIG` with the same credentials, no `.devspace/`.

use crate::support::harness::{Project, SERVICES};
use crate::support::project::Output;
use crate::support::registry::{TestRegistry, block_on};
use crate::support::registry_proxy::RegistryProxy;
use devspace::registry::client::Lookup;
use devspace::registry::{ClientOptions, Credential, Reference, RegistryClient};
use serde_json::Value;
use std::time::{Duration, Instant};

const PLAIN_REGISTRY: &str = "127.0.0.1:5000";
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
const USER: &str = "devspace";
const PASSWORD: &str = "devspace-test";

/// Sends a request straight to a registry (no proxy, no auth) and returns the status.
fn send(request: reqwest::RequestBuilder) -> reqwest::StatusCode {
    block_on(async { request.send().await.expect("registry request").status() })
}

fn build_json(q: &Project, args: &[&str]) -> (Output, Value) {
    let out = q
        .devspace()
        .arg("build")
        .args(args)
        .args(["--output", "json"])
        .run();
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report: {e}\n{}", out.describe()));
    (out, report)
}

fn image<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["images"]
        .as_array()
        .and_then(|images| images.iter().find(|i| i["key"] == key))
        .unwrap_or_else(|| panic!("no image {key} in {report:#}"))
}

fn assert_built(report: &Value, key: &str, out: &Output) {
    assert_eq!(
        image(report, key)["status"],
        "built",
        "{key}\n{}",
        out.describe()
    );
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    SERVICES
        .iter()
        .map(|k| {
            (
                k.to_string(),
                image(report, k)["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn all(status: &str) -> Vec<(String, String)> {
    SERVICES
        .iter()
        .map(|k| (k.to_string(), status.to_owned()))
        .collect()
}

fn cache_tags(tags: &[String]) -> Vec<&String> {
    tags.iter()
        .filter(|t| t.starts_with("devspace-cache-"))
        .collect()
}

fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions::default()).expect("registry client")
}

fn credential(q: &Project) -> Option<Credential> {
    (q.registry == AUTH_REGISTRY).then(|| Credential::new(USER, PASSWORD))
}

/// The manifest digest `repository:tag` has in the registry (`None`: no such tag).
fn digest_of(q: &Project, key: &str, tag: &str) -> Option<String> {
    let reference = Reference::parse(&format!("{}:{tag}", q.repository(key))).unwrap();
    block_on(client().manifest_exists(&reference, credential(q).as_ref()))
        .unwrap_or_else(|e| panic!("HEAD {reference}: {e}"))
}

/// The tags of image `key` in the registry.
fn tags_of(q: &Project, key: &str) -> Vec<String> {
    let reference = Reference::parse(&q.repository(key)).unwrap();
    let mut tags = block_on(client().list_tags(&reference, credential(q).as_ref()))
        .unwrap_or_else(|e| panic!("tags of {reference}: {e}"));
    tags.sort();
    tags
}

/// A first clone builds and pushes; a second clone in another folder with another HOME builds
/// nothing: every image is found in the registry, the reason names it, and the registry gives
/// the found image the tag the second clone wants.
fn second_clone_builds_nothing(first: Project) {
    let (out, report) = build_json(&first, &[]);
    out.assert_success();
    assert_eq!(statuses(&report), all("built"), "{}", out.describe());
    for key in SERVICES {
        let tags = tags_of(&first, key);
        assert_eq!(cache_tags(&tags).len(), 1, "{key}: {tags:?}");
        assert!(tags.contains(&first.prefix), "{key}: {tags:?}");
    }

    let second = first.clone_elsewhere();
    assert_ne!(second.path(), first.path());
    assert_ne!(second.home(), first.home());
    let (out, report) = build_json(&second, &["-t", "clone2"]);
    out.assert_success();
    assert_eq!(statuses(&report), all("skipped"), "{}", out.describe());
    for key in SERVICES {
        let img = image(&report, key);
        assert_eq!(img["decision"]["code"], "found-in-registry", "{img:#}");
        let reason = img["reason"].as_str().unwrap_or_default();
        let source = img["decision"]["source"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("skip (found in registry: built elsewhere): ")
                && source.starts_with(&format!("{}:devspace-cache-", first.repository(key)))
                && reason.ends_with(source),
            "{key}: {reason}"
        );
        assert_eq!(img["pushed"], true);
        let built_digest = digest_of(&first, key, &first.prefix);
        assert!(built_digest.is_some());
        assert_eq!(
            digest_of(&second, key, "clone2"),
            built_digest,
            "{key}: the wanted tag names the image the first clone built"
        );
        assert_eq!(img["digest"].as_str(), built_digest.as_deref());
        // Said as what happened: a tag set inside the registry, nothing pushed from here.
        out.assert_stderr_contains(&format!(
            "[{key}] tagged {}:clone2 in the registry (sha256:",
            first.repository(key)
        ));
        assert!(
            !out.stderr.contains(&format!("[{key}] pushed")),
            "{}",
            out.describe()
        );
    }
    // Recorded as built and pushed: the next run of the second clone is a plain skip.
    let (out, report) = build_json(&second, &["-t", "clone2"]);
    out.assert_success();
    for key in SERVICES {
        assert_eq!(image(&report, key)["decision"]["code"], "no-change");
    }
}

#[test]
fn a_second_clone_builds_nothing_plain_registry() {
    require_services!();
    second_clone_builds_nothing(Project::quickstart(PLAIN_REGISTRY));
}

#[test]
fn a_second_clone_builds_nothing_htpasswd_registry() {
    require_services!();
    second_clone_builds_nothing(Project::quickstart(AUTH_REGISTRY).with_auths(USER, PASSWORD));
}

#[test]
fn a_changed_build_arg_misses_the_cache_and_off_means_off() {
    require_services!();
    let first = Project::quickstart(PLAIN_REGISTRY);
    build_json(&first, &[]).0.assert_success();

    let second = first.clone_elsewhere();
    second.edit("devspace.yaml", "SERVICE: api.", "SERVICE: api-changed.");
    let (out, report) = build_json(&second, &[]);
    out.assert_success();
    assert_built(&report, "api", &out);
    for key in ["worker", "web"] {
        assert_eq!(image(&report, key)["decision"]["code"], "found-in-registry");
    }
    // Both cache entries of api now exist; the new one names the new build.
    assert_eq!(cache_tags(&tags_of(&first, "api")).len(), 2);

    // `--no-registry-cache` and DEVSPACE_NO_REGISTRY_CACHE: every image is built.
    for (extra, env) in [
        (vec!["--no-registry-cache"], None),
        (vec![], Some(("DEVSPACE_NO_REGISTRY_CACHE", "1"))),
    ] {
        let third = first.clone_elsewhere();
        let third = match env {
            Some((k, v)) => third.with_env(k, v),
            None => third,
        };
        let (out, report) = build_json(&third, &extra);
        out.assert_success();
        assert_eq!(statuses(&report), all("built"), "{extra:?} {env:?}");
    }
}

/// Replaces what the cache tag of `key` names by an OCI index pointing at the image.
fn put_index_as_cache_entry(registry: &TestRegistry, q: &Project, key: &str) {
    let tags = tags_of(q, key);
    let cache_tag = cache_tags(&tags)[0].clone();
    let digest = digest_of(q, key, &cache_tag).unwrap();
    let url = format!(
        "http://{}/v2/{}/manifests/{cache_tag}",
        registry.host(),
        q.repo(key)
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": digest,
            "size": 1,
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    });
    let status = send(
        reqwest::Client::new()
            .put(&url)
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .body(index.to_string()),
    );
    assert!(status.is_success(), "PUT {url}: {status}");
}

/// Deletes the config blob of the image the cache tag of `key` names.
fn delete_config_blob(registry: &TestRegistry, q: &Project, key: &str) {
    let tags = tags_of(q, key);
    let cache_tag = cache_tags(&tags)[0].clone();
    let reference = Reference::parse(&format!("{}:{cache_tag}", q.repository(key))).unwrap();
    let manifest = block_on(client().get_manifest(&reference, None, false))
        .unwrap()
        .expect("the cache entry exists");
    let config = manifest.body["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!(
        "http://{}/v2/{}/blobs/{config}",
        registry.host(),
        q.repo(key)
    );
    let status = send(reqwest::Client::new().delete(&url));
    assert!(status.is_success(), "DELETE {url}: {status}");
}

#[test]
fn a_manifest_list_or_a_missing_blob_is_not_a_hit() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let first = Project::quickstart(&registry.host());
    build_json(&first, &[]).0.assert_success();
    put_index_as_cache_entry(&registry, &first, "api");
    delete_config_blob(&registry, &first, "worker");

    let second = first.clone_elsewhere();
    let (out, report) = build_json(&second, &[]);
    out.assert_success();
    assert_built(&report, "api", &out);
    assert_eq!(image(&report, "worker")["status"], "built");
    assert_eq!(
        image(&report, "web")["decision"]["code"],
        "found-in-registry"
    );
    let said = out.combined();
    assert!(
        said.contains("is not reused: a manifest list"),
        "{}",
        out.describe()
    );
    assert!(
        said.contains("is not reused: blob sha256:"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_registry_refusing_the_cache_means_one_warning_and_a_normal_build() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let proxy = RegistryProxy::start(&registry.host());
    let first = Project::quickstart(&proxy.host());
    build_json(&first, &[]).0.assert_success();

    // (what is refused, PUT status, cache-read status, a clone of `first` or a new project)
    let cases = [
        ("the tags this run wants (403), after a hit", 403, 0, true),
        ("the lookup itself (403)", 0, 403, true),
        (
            "the recording after a push (405: no manifest PUTs)",
            405,
            0,
            false,
        ),
    ];
    for (what, puts, reads, clone) in cases {
        proxy.refuse_puts(puts);
        proxy.refuse_cache_reads(reads);
        let next = if clone {
            first.clone_elsewhere()
        } else {
            Project::quickstart(&proxy.host())
        };
        let (out, report) = build_json(&next, &[]);
        out.assert_success();
        assert_eq!(
            statuses(&report),
            all("built"),
            "{what}\n{}",
            out.describe()
        );
        let warnings = out
            .combined()
            .matches("warning: registry cache disabled for")
            .count();
        assert_eq!(warnings, 1, "{what}\n{}", out.describe());
    }
}

#[test]
fn tags_alone_retag_and_never_build() {
    require_services!();
    let q = Project::quickstart(PLAIN_REGISTRY);
    build_json(&q, &[]).0.assert_success();
    let built: Vec<Option<String>> = SERVICES
        .iter()
        .map(|k| digest_of(&q, k, &q.prefix))
        .collect();

    // `-t other`, then no `-t`: retagged twice, never rebuilt.
    for (args, tag) in [
        (vec!["-t", "other"], "other".to_owned()),
        (vec![], q.prefix.clone()),
    ] {
        let (out, report) = build_json(&q, &args);
        out.assert_success();
        assert_eq!(statuses(&report), all("retagged"), "{}", out.describe());
        for (key, digest) in SERVICES.iter().zip(&built) {
            let img = image(&report, key);
            assert_eq!(img["reason"], "retag: tags changed");
            assert_eq!(img["decision"]["code"], "retag-tags-changed");
            assert_eq!(img["tags"], serde_json::json!([tag]));
            assert_eq!(&digest_of(&q, key, &tag), digest, "{key}:{tag}");
        }
    }
    // A `tags:` edit too.
    q.edit(
        "devspace.yaml",
        "tags: [\"${TAG_PREFIX}\"]",
        "tags: [\"${TAG_PREFIX}\", edited]",
    );
    let (out, report) = build_json(&q, &[]);
    out.assert_success();
    assert_eq!(image(&report, "api")["status"], "retagged");
    assert_eq!(digest_of(&q, "api", "edited"), built[0]);
}

/// The tag recorded for `key` in `.devspace/generated.yaml`.
fn recorded_tag(q: &Project, key: &str) -> String {
    let text = std::fs::read_to_string(q.path().join(".devspace/generated.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    doc["profiles"][""]["images"][key]["tag"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn ctrl_c_during_a_retag_keeps_the_cache_consistent() {
    require_services!();
    let registry = TestRegistry::start_plain();
    let proxy = RegistryProxy::start(&registry.host());
    let q = Project::quickstart(&proxy.host());
    build_json(&q, &[]).0.assert_success();

    proxy.hold_puts(true);
    let running = q.devspace().args(["build", "-t", "interrupted"]).spawn();
    let until = Instant::now() + Duration::from_secs(60);
    while proxy.held() == 0 {
        assert!(Instant::now() < until, "no retag reached the registry");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.interrupt();
    let out = running.wait_deadline(Duration::from_secs(60));
    out.assert_code(130);
    proxy.hold_puts(false);
    for key in SERVICES {
        assert_eq!(recorded_tag(&q, key), q.prefix, "{key}: old entry kept");
    }
    // The next run does the right thing: retag again, nothing built.
    let (out, report) = build_json(&q, &["-t", "interrupted"]);
    out.assert_success();
    assert_eq!(statuses(&report), all("retagged"), "{}", out.describe());
    for key in SERVICES {
        assert_eq!(recorded_tag(&q, key), "interrupted");
        assert_eq!(
            digest_of(&q, key, "interrupted"),
            digest_of(&q, key, &q.prefix)
        );
    }
}

/// The registry-side retag and the cache lookup against a token-auth registry: the token
/// service is asked for `pull,push`, with a password and with an identity token.
#[test]
fn registry_side_tag_and_lookup_with_bearer_tokens() {
    require_services!();
    let registry = TestRegistry::start_token(USER, PASSWORD);
    let (image, digest) = registry.push_busybox("bearer/app:v1");
    let reference = Reference::parse(&image).unwrap();
    let client = client();
    let credentials = [
        Credential::new(USER, PASSWORD),
        Credential::identity_token(registry.token_server().refresh_token()),
    ];
    for (i, credential) in credentials.iter().enumerate() {
        let found = block_on(client.lookup_image(&reference, Some(credential))).unwrap();
        let Lookup::Found(manifest) = found else {
            panic!("{found:?}")
        };
        assert_eq!(manifest.digest, digest);
        let tag = format!("copied{i}");
        let put = block_on(client.put_manifest(&reference, &tag, &manifest, Some(credential)));
        assert_eq!(put.unwrap(), digest);
        let copied = block_on(client.manifest_exists(&reference.with_tag(&tag), Some(credential)));
        assert_eq!(copied.unwrap().as_deref(), Some(digest.as_str()));
    }
    // Without credentials the write is refused as such (no token for push).
    let manifest = match block_on(client.lookup_image(&reference, Some(&credentials[0]))) {
        Ok(Lookup::Found(m)) => m,
        other => panic!("{other:?}"),
    };
    let refused = block_on(client.put_manifest(&reference, "anonymous", &manifest, None));
    assert!(refused.unwrap_err().is_unauthorized());
    let missing = reference.with_tag("devspace-cache-0000000000000000000000000000000000000000");
    assert!(matches!(
        block_on(client.lookup_image(&missing, Some(&credentials[0]))).unwrap(),
        Lookup::Missing
    ));
}
