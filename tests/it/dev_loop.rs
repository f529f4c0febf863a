//! `devspace dev` end to end: the real binary on a copy of `examples/quickstart` whose images
//! have no `tags:` (every build gets a fresh random tag), building with the real Docker daemon,
//! pushing to the plain registry on 127.0.0.1:5000 and deploying to the fake Kubernetes API
//! server. The test edits files while it watches: a file of one image rebuilds and redeploys
//! exactly that image; a file its `.dockerignore` excludes starts no cycle (the watcher logs the
//! batch as ignored, and the next cycle names only the next real edit); a failing build is
//! reported without redeploying and the loop goes on; Ctrl-C ends it cleanly with a cache that
//! parses.
//!
//! The waits below are generous deadlines against a hung binary, not timing assertions.

use crate::support::harness::{Project, SERVICES};
use crate::support::kube_fake::FakeKube;
use crate::support::project::Running;
use serde_json::Value;
use std::time::Duration;

/// Deadline for one cycle (a build of the small quickstart images plus a deploy).
const CYCLE: Duration = Duration::from_secs(300);

/// The deployed image of every service, read back from the fake.
fn deployed(fake: &FakeKube) -> Vec<(String, String)> {
    SERVICES
        .iter()
        .map(|s| {
            let d = fake
                .get("apps/v1", "Deployment", fake.namespace(), s)
                .unwrap_or_else(|| panic!("deployment {s} not applied"));
            let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (s.to_string(), image)
        })
        .collect()
}

/// The `[dev] cycle N:` line printed so far.
fn cycle_line(dev: &Running, n: u32) -> String {
    let prefix = format!("[dev] cycle {n}:");
    dev.stderr_so_far()
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in\n{}", dev.stderr_so_far()))
        .to_owned()
}

/// Waits for the `[dev] cycle N:` line and returns it.
fn next_cycle(dev: &mut Running, n: u32) -> String {
    dev.wait_for_output(&format!("[dev] cycle {n}:"), CYCLE);
    cycle_line(dev, n)
}

fn tag_of(image: &str) -> &str {
    image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default()
}

/// Asserts that between `before` and `after` exactly `service` got a new tag.
fn assert_only_retagged(before: &[(String, String)], after: &[(String, String)], service: &str) {
    for ((name, old), (_, new)) in before.iter().zip(after) {
        if name == service {
            assert_ne!(old, new, "{service} was not redeployed with a new tag");
            assert_eq!(
                old.rsplit_once(':').map(|(r, _)| r),
                new.rsplit_once(':').map(|(r, _)| r),
                "{service}: same repository"
            );
        } else {
            assert_eq!(
                old, new,
                "{name} changed although only {service} was edited"
            );
        }
    }
}

#[test]
fn dev_rebuilds_and_redeploys_exactly_the_edited_image() {
    require_services!();
    let fake = FakeKube::start();
    let q = Project::quickstart("127.0.0.1:5000").without_tags();
    let mut dev = q
        .devspace()
        .kubeconfig(fake.kubeconfig())
        // The debug line for a batch of changes that affect no image.
        .env("DEVSPACE_LOG", "devspace=debug")
        .arg("dev")
        .spawn();

    dev.wait_for_output("[dev] watching 3 image(s)", CYCLE);
    let first = cycle_line(&dev, 1);
    for service in SERVICES {
        assert!(first.contains(&format!("{service} (")), "{first}");
    }
    assert!(first.ends_with("; deployed quickstart"), "{first}");
    let initial = deployed(&fake);
    for (service, image) in &initial {
        assert!(
            image.starts_with(&format!("{}:", q.repository(service))),
            "{image}"
        );
        assert_eq!(tag_of(image).len(), 5, "random tag expected: {image}");
    }

    // A file of api: only api is rebuilt and redeployed.
    let run_sh = q.project.read("api/run.sh");
    q.project.write(
        "api/run.sh",
        format!("{run_sh}# edited by the dev loop test\n"),
    );
    let second = next_cycle(&mut dev, 2);
    assert_eq!(
        second,
        "[dev] cycle 2: rebuilt api (rebuild: 1 file changed: run.sh); redeployed quickstart"
    );
    let after_api = deployed(&fake);
    assert_only_retagged(&initial, &after_api, "api");

    // A file api's .dockerignore excludes starts no cycle: the watcher reports the batch as
    // ignored (a positive signal, no waiting in the hope that nothing happens), and the next
    // cycle is web's and names only web's file.
    q.project
        .write("api/NOTES.md", "ignored by .dockerignore\n");
    q.project.write("api/tmp/scratch", "ignored too\n");
    // The watcher names the new directory `api/tmp` or the file in it.
    let ignored = ["/api/NOTES.md", "/api/tmp"];
    for name in ignored {
        dev.wait_for_output(name, Duration::from_secs(60));
    }
    let log = dev.stderr_so_far();
    for name in ignored {
        let line = log
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_owned();
        assert!(
            line.contains("ignored changes"),
            "{name} must be ignored, not start a cycle: {line}\n{log}"
        );
    }
    let page = q.project.read("web/html/index.html");
    q.project
        .write("web/html/index.html", format!("{page}<!-- edited -->\n"));
    let third = next_cycle(&mut dev, 3);
    assert!(
        third.starts_with("[dev] cycle 3: rebuilt web (rebuild: 1 file changed: html/index.html)"),
        "{third}\n{}",
        dev.stderr_so_far()
    );
    let after_web = deployed(&fake);
    assert_only_retagged(&after_api, &after_web, "web");

    // A failing build is reported, nothing is redeployed, and watching goes on.
    let dockerfile = q.project.read("api/Dockerfile");
    q.project.write(
        "api/Dockerfile",
        dockerfile.replace("EXPOSE 8080", "RUN exit 3\nEXPOSE 8080"),
    );
    assert_eq!(
        next_cycle(&mut dev, 4),
        "[dev] cycle 4: failed api; not redeployed"
    );
    assert_eq!(
        deployed(&fake),
        after_web,
        "a failed cycle must not redeploy"
    );
    // Fixed differently from cycle 2's Dockerfile (restoring it exactly would rightly be
    // "nothing changed": that image is built and deployed already).
    q.project.write(
        "api/Dockerfile",
        dockerfile.replace("EXPOSE 8080", "RUN true\nEXPOSE 8080"),
    );
    assert_eq!(
        next_cycle(&mut dev, 5),
        "[dev] cycle 5: rebuilt api (rebuild: Dockerfile changed); redeployed quickstart"
    );
    assert_only_retagged(&after_web, &deployed(&fake), "api");

    dev.interrupt();
    let out = dev.wait();
    out.assert_success().assert_stderr_contains("[dev] stopped");
    assert!(
        !out.stderr.contains("nothing changed"),
        "a cycle ran without a relevant change\n{}",
        out.describe()
    );

    let generated = q.project.read(".devspace/generated.yaml");
    let cache: Value = serde_saphyr::from_str(&generated)
        .unwrap_or_else(|e| panic!(".devspace/generated.yaml does not parse: {e}\n{generated}"));
    for (service, image) in deployed(&fake) {
        let entry = &cache["profiles"][""]["images"][&service];
        let recorded = entry.to_string();
        assert!(
            recorded.contains(tag_of(&image)),
            "the cache does not record the deployed tag of {service} ({image}): {recorded}"
        );
    }
}
