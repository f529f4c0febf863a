//! `devspace render` on a copy of `examples/quickstart`: it builds (pushing to the plain test
//! registry on 127.0.0.1:5000, started by `scripts/services.sh`) and prints the manifests with
//! the freshly built tags; `--skip-build` prints the tags recorded by that build. No cluster is
//! involved: `KUBECONFIG` is unset and `HOME` is an empty directory.
//!
//! Every test works on its own copy (unique repositories and `--var TAG_PREFIX=...`, see
//! `crate::support::quickstart`), so parallel runs (and earlier runs) never share an image.

use crate::support::harness::{Project, SERVICES, StrayState};
use crate::support::project::Output;
use serde_json::Value;

/// A quickstart copy on the plain registry (no credentials needed).
fn quickstart() -> Project {
    Project::quickstart("127.0.0.1:5000")
}

fn render(q: &Project, args: &[&str]) -> Output {
    let out = q.devspace().arg("render").args(args).run();
    out.assert_success();
    out
}

/// The `image:` values of the rendered documents, by object name.
fn images_by_name(stdout: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in stdout.split("\n---\n") {
        let value: Value = serde_saphyr::from_str(doc)
            .unwrap_or_else(|e| panic!("rendered document is not YAML: {e}\n{doc}"));
        let name = value["metadata"]["name"].as_str().unwrap_or_default();
        if let Some(containers) = value["spec"]["template"]["spec"]["containers"].as_array() {
            for c in containers {
                out.push((
                    name.to_owned(),
                    c["image"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn expected(q: &Project) -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = SERVICES
        .iter()
        .map(|s| (s.to_string(), q.image(s)))
        .collect();
    want.sort();
    want
}

#[test]
fn render_builds_and_prints_manifests_with_the_new_tags_then_skip_build_reuses_them() {
    require_services!();
    let q = quickstart();
    let built = render(&q, &[]);
    assert_eq!(
        images_by_name(&built.stdout),
        expected(&q),
        "{}",
        built.describe()
    );
    // The build's progress and summary stay on stderr: stdout is only the manifests.
    for service in SERVICES {
        built.assert_stderr_contains(&format!("[{service}] building"));
    }
    insta::assert_snapshot!("quickstart_rendered", q.redact(&built.stdout));

    let skipped = render(&q, &["--skip-build"]);
    assert_eq!(skipped.stdout, built.stdout, "{}", skipped.describe());
    assert!(
        !skipped.stderr.contains("building"),
        "--skip-build built something\n{}",
        skipped.describe()
    );
}

#[test]
fn render_skip_build_without_a_build_leaves_references_alone_and_needs_no_cluster() {
    // What a local run of the quick start leaves in the example must not reach the copy.
    let _stray = StrayState::hold();
    let q = quickstart();
    assert!(
        !q.project.exists(".devspace"),
        "the copy holds ignored state"
    );
    let out = render(&q, &["--skip-build"]);
    let mut want: Vec<(String, String)> = SERVICES
        .iter()
        .map(|s| (s.to_string(), q.repository(s)))
        .collect();
    want.sort();
    assert_eq!(images_by_name(&out.stdout), want, "{}", out.describe());
    assert!(
        !q.project.exists(".devspace/generated.yaml")
            || !q
                .project
                .read(".devspace/generated.yaml")
                .contains(&q.prefix),
        "nothing was built, nothing is recorded"
    );
    assert!(!out.stdout.contains("strayTag"), "{}", out.describe());
}
