//! DevSpace 6 (`version: v2beta1`) configs: every real-world v2 file of the corpus loads and
//! prints; strict errors; profiles, activation, imports; `print --convert` of 4.x/5.x configs
//! round-trips through the v2beta1 loader; mutated v2 files never panic; and the
//! `examples/devspace6` project builds, skips on the second run, renders with the new tags and
//! deploys against the fake Kubernetes API server (pipelines included) and against the real one
//! of `scripts/kube-up.sh`.

use crate::support::kube_fake::FakeKube;
use crate::support::kube_real::RealKube;
use crate::support::project::{Devspace, Output, TempProject};
use crate::support::stand_in::{HELM_COPYING_VALUES, StandIns};
use base64::Engine as _;
use devspace::config::{self, LoadOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The binary with a clean environment (PATH and an empty HOME).
fn devspace_in(cwd: &Path, args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("home");
    Devspace::new()
        .current_dir(cwd)
        .home(home.path())
        .args(args)
        .run()
}

/// `(key, image)` rows of a `print --images` table.
fn image_rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && *l != "no images defined")
        .map(|l| {
            let mut cols = l.split_whitespace();
            (
                cols.next().unwrap_or_default().to_string(),
                cols.next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

type CorpusCase = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Every v2 corpus file, the flags a user would pass, and the images it defines.
const CORPUS_V2: &[CorpusCase] = &[
    (
        "BatoulAlhasanii__e-commerce__devspace.yaml",
        &[],
        &[
            ("user", "e-commerce/user"),
            ("product", "e-commerce/product"),
            ("cart", "e-commerce/cart"),
        ],
    ),
    (
        "CodeWithBryan__devspace-repro__devspace.yaml",
        &[],
        &[("app", "node-app")],
    ),
    (
        "CyberAllStars__charts__devspace.yaml",
        &[],
        &[("supabase", "registry:5000/supabase")],
    ),
    (
        "Elidrissianass__asc1__devspace.yaml",
        &[],
        &[("app", "shopify-sales-channel")],
    ),
    (
        "FabianKramm__vcluster__devspace.yaml",
        &[],
        &[("vcluster", "ghcr.io/loft-sh/loft-enterprise/dev-vcluster")],
    ),
    (
        "Feeeenng__devops-maven-sample__devspace.yaml",
        &[],
        &[("app", "docker.io/feeeng/devops-maven-sample")],
    ),
    (
        "Gerner-Ventures__the-experiment__devspace.yaml",
        &[],
        &[
            ("backend", "the-experiment-backend"),
            ("frontend", "the-experiment-frontend"),
        ],
    ),
    (
        "Lex-Vandenberg__dona-civo-turbo-yarn-docker__devspace.yaml",
        &[],
        &[("donas-api", "donas-api"), ("donas-admin", "donas-admin")],
    ),
    (
        "carlmontanari__you_choose_devspace__dev_devspace.yaml",
        &[],
        &[("dev", "172.31.254.11/sillyswapi/dev")],
    ),
    (
        "hangman-studios__honesty-v3__frontend_devspace.yaml",
        &["--var", "DEVSPACE_GIT_BRANCH=main"],
        &[("dev", "ghcr.io/jniclas/polls")],
    ),
    (
        "loft-sh__vcluster-hostpath-mapper__devspace.yaml",
        &[],
        &[("app", "ishankhare07/vcluster-hpm")],
    ),
    (
        "niclashoyer__simplecast__devspace.yaml",
        &[],
        &[
            ("app", "git.fionic.eu/niclas/simplecast"),
            ("dev", "git.fionic.eu/niclas/simplecast-dev"),
        ],
    ),
    (
        "stefanprodan__podinfo__devspace.yaml",
        &[],
        &[("app", "ghcr.io/stefanprodan/podinfo")],
    ),
    (
        "vivekPandeyDev__kubernate-devspace__devspace.yaml",
        &[],
        &[("app", "user-service")],
    ),
];

#[test]
fn every_v2_corpus_file_loads_prints_and_reloads() {
    let dir = fixtures().join("corpus/v2");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/v2")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS_V2.iter().map(|(f, ..)| f.to_string()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "every v2 corpus file has a row");
    let manifest =
        std::fs::read_to_string(fixtures().join("corpus/MANIFEST.tsv")).expect("manifest");

    let mut failures = Vec::new();
    for (file, flags, want) in CORPUS_V2 {
        assert!(
            manifest.contains(&format!("v2/{file}\t")),
            "{file} in MANIFEST.tsv"
        );
        let path = dir.join(file);
        let mut args = vec!["--config", path.to_str().expect("utf-8")];
        args.extend_from_slice(flags);
        let mut table = args.clone();
        table.extend(["print", "--images"]);
        let out = devspace_in(&dir, &table);
        let got = image_rows(&out.stdout);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, i)| (k.to_string(), i.to_string()))
            .collect();
        if !out.status.success() || got != want {
            failures.push(format!("{file}: want {want:?}\n{}", out.describe()));
            continue;
        }
        // The whole config prints in its v2beta1 shape, unused sections included.
        let mut full = args.clone();
        full.push("print");
        let printed = devspace_in(&dir, &full);
        if !printed.status.success() || !printed.stdout.starts_with("version: v2beta1\n") {
            failures.push(format!("{file}: print failed\n{}", printed.describe()));
            continue;
        }
        let original = std::fs::read_to_string(&path).expect("read");
        for section in ["dev:", "commands:", "pipelines:"] {
            if original.lines().any(|l| l == section) && !printed.stdout.contains(section) {
                failures.push(format!("{file}: print dropped `{section}`"));
            }
        }
        // What print shows loads again to the same print.
        let tmp = tempfile::tempdir().expect("tmp");
        let again_path = tmp.path().join("devspace.yaml");
        std::fs::write(&again_path, &printed.stdout).expect("write");
        let mut reload = vec!["--config", again_path.to_str().expect("utf-8")];
        reload.extend_from_slice(flags);
        reload.push("print");
        let again = devspace_in(tmp.path(), &reload);
        if !again.status.success() {
            failures.push(format!(
                "{file}: printed config does not load\n{}",
                again.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn corpus_details_vars_profiles_and_warnings() {
    let dir = fixtures().join("corpus/v2");
    let cfg = |f: &str| dir.join(f).display().to_string();

    // A tag written in `image` moves to tags; `${devspace.git.branch}` aliases the new name.
    let out = devspace_in(
        &dir,
        &[
            "--config",
            &cfg("CodeWithBryan__devspace-repro__devspace.yaml"),
            "print",
        ],
    );
    out.assert_success();
    assert!(
        out.stdout.contains("image: node-app\n") && out.stdout.contains("- latest"),
        "{}",
        out.stdout
    );
    let out = devspace_in(
        &dir,
        &[
            "--config",
            &cfg("hangman-studios__honesty-v3__frontend_devspace.yaml"),
            "--var",
            "DEVSPACE_GIT_BRANCH=main",
            "print",
        ],
    );
    out.assert_success();
    assert!(out.stdout.contains("dev-main-#####"), "{}", out.stdout);

    // Vars fill images and Helm values; the profile replaces the buildKit block.
    let fabian = cfg("FabianKramm__vcluster__devspace.yaml");
    let out = devspace_in(&dir, &["--config", &fabian, "print"]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("repository: image(ghcr.io/loft-sh/loft-enterprise/dev-vcluster)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("releaseName: vcluster"),
        "{}",
        out.stdout
    );
    out.assert_stderr_contains("vars.DEVSPACE_FLAGS (extra default flags) is not applied");
    let out = devspace_in(
        &dir,
        &["--config", &fabian, "-p", "test-conformance", "print"],
    );
    out.assert_success();
    assert!(
        out.stdout.contains("preferMinikube: false"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("- ./test/conformanceValues.yaml"),
        "{}",
        out.stdout
    );

    // The repeated top-level key: the later one is used, with a warning.
    let out = devspace_in(
        &dir,
        &[
            "--config",
            &cfg("CyberAllStars__charts__devspace.yaml"),
            "print",
        ],
    );
    out.assert_success();
    out.assert_stderr_contains(
        "key `pipelines` is defined again (first on line 5); the later definition is used",
    );
    out.assert_stderr_contains(
        "localRegistry.enabled: the in-cluster local registry is not implemented",
    );
    assert!(
        out.stdout.contains("run_default_pipeline dev"),
        "{}",
        out.stdout
    );

    // `--debug` lists the sections this tool keeps but does not run, once.
    let out = devspace_in(
        &dir,
        &[
            "--config",
            &cfg("stefanprodan__podinfo__devspace.yaml"),
            "--debug",
            "print",
            "--images",
        ],
    );
    out.assert_success();
    assert_eq!(
        out.stderr
            .matches("sections not used by this tool: dev, commands")
            .count(),
        1,
        "{}",
        out.stderr
    );
}

fn write_project(files: &[(&str, &str)]) -> TempProject {
    let p = TempProject::new();
    for (path, text) in files {
        p.write(path, text);
    }
    p
}

#[test]
fn strict_errors_name_the_line_and_a_suggestion() {
    let cases: &[(&str, &str)] = &[
        (
            "version: v2beta1\nimages:\n  app:\n    image: a\n    dockerFile: x\n",
            "devspace.yaml:5:5: unknown key `images.app.dockerFile` in a v2beta1 config (did you mean `dockerfile`?)",
        ),
        (
            "version: v2beta1\nimages:\n  app:\n    image: a\n    tags: latest\n",
            "`images.app.tags` must be a list of strings, found a string",
        ),
        (
            "version: v2beta1\ndeployments:\n  app:\n    kubectl:\n      manifest: [a]\n",
            "unknown key `deployments.app.kubectl.manifest` in a v2beta1 config (did you mean `manifests`?)",
        ),
        (
            "version: v2beta1\nimages:\n  My_App:\n    image: a\n",
            "images.My_App: the name must consist of lower case alphanumeric characters",
        ),
        (
            "version: v2beta1\nimages:\n  a:\n    image: x\n  b:\n    image: x\n",
            "multiple image definitions with the same image name",
        ),
        (
            "version: v2beta1\nimages:\n  a:\n    image: x\n    kaniko:\n      generateName: b-\n",
            "images.a.kaniko.generateName (b-) is not supported",
        ),
        (
            "version: v2beta1\ndeployments:\n  a:\n    kubectl:\n      inlineManifest: x\n",
            "deployments.a.kubectl.inlineManifest is not supported by this tool",
        ),
        (
            "version: v2beta1\ndeployments:\n  a:\n    helm:\n      chart:\n        git: https://x\n",
            "deployments.a.helm.chart.git: charts from an inline source",
        ),
        (
            "version: v2beta1\nimages:\n  a:\n    image: x\n    rebuildStrategy: sometimes\n",
            "rebuildStrategy `sometimes` is not one of default, always, ignoreContextChanges",
        ),
        (
            "version: v2beta1\nprofiles:\n- name: p\n  merge:\n    pipelines: {}\n",
            "unknown key `profiles[0].merge.pipelines`",
        ),
        (
            "version: v2beta1\nimports:\n- git: https://github.com/acme/x\n",
            "git imports are not supported",
        ),
        (
            "version: v2beta2\n",
            "DevSpace 6 config (v2beta2) is not supported yet",
        ),
    ];
    for (yaml, want) in cases {
        let p = write_project(&[("devspace.yaml", yaml)]);
        let out = devspace_in(p.path(), &["print"]);
        out.assert_code(3);
        assert!(
            out.stderr.contains(want),
            "{yaml}\nwant: {want}\n{}",
            out.describe()
        );
        out.assert_output_lacks("panicked");
    }
}

#[test]
fn activation_imports_vars_and_runtime_variables() {
    let p = write_project(&[
        (
            "devspace.yaml",
            "version: v2beta1\nname: act\nimports:\n- path: ./shared\nvars:\n  REG: ghcr.io/acme\n  SHA: $(echo abc123)\nimages:\n  api:\n    image: ${REG}/api\n    tags: [\"${SHA}\"]\n    buildArgs:\n      LEFT: \"${UNDEFINED_X}\"\nprofiles:\n- name: ci\n  activation:\n  - env:\n      CI: \"true|yes\"\n  patches:\n  - op: replace\n    path: images.api.rebuildStrategy\n    value: always\n",
        ),
        (
            "shared/devspace.yaml",
            "version: v2beta1\nimages:\n  api:\n    image: overridden\n  web:\n    image: ghcr.io/acme/web\ndeployments:\n  web:\n    helm:\n      values:\n        image: ${runtime.images.web.image}:${runtime.images.web.tag}\n",
        ),
    ]);
    let out = devspace_in(p.path(), &["print"]);
    out.assert_success();
    let s = &out.stdout;
    assert!(s.contains("image: ghcr.io/acme/api"), "{s}");
    assert!(
        s.contains("- abc123") && s.contains("LEFT: ${UNDEFINED_X}"),
        "{s}"
    );
    assert!(s.contains("image: ghcr.io/acme/web"), "imported image\n{s}");
    assert!(
        s.contains("${runtime.images.web.image}:${runtime.images.web.tag}"),
        "{s}"
    );
    assert!(
        s.contains("name: component-chart"),
        "no chart = component chart\n{s}"
    );
    assert!(!s.contains("rebuildStrategy"), "not activated\n{s}");

    let home = tempfile::tempdir().expect("home");
    let activated = Devspace::new()
        .current_dir(p.path())
        .home(home.path())
        .env("CI", "yes")
        .arg("print")
        .run();
    activated.assert_success();
    assert!(
        activated.stdout.contains("rebuildStrategy: always"),
        "{}",
        activated.stdout
    );

    // A v2beta1 import must be v2beta1.
    p.write("shared/devspace.yaml", "version: v1beta11\n");
    let out = devspace_in(p.path(), &["print"]);
    out.assert_code(3);
    out.assert_stderr_contains("an imported file must have the importer's version v2beta1");
}

/// `print --convert` of 4.x/5.x configs: v2beta1 that loads to the same images and
/// deployments, and converts to itself again.
#[test]
fn convert_round_trips_through_the_v2_loader() {
    let sources: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/devspace.yaml"),
            vec![],
        ),
        (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/devspace.yaml"),
            vec!["-p", "production"],
        ),
        (
            fixtures().join("corpus/v1/Altinity__clickhouse-operator__devspace.yaml"),
            vec![],
        ),
        (
            fixtures().join("corpus/v1/CheckmarkDev__checkmark__devspace.yaml"),
            vec![],
        ),
        (
            fixtures().join("corpus/v1/Addono__trilium-devspace__devspace.yaml"),
            vec![],
        ),
    ];
    for (src, flags) in sources {
        let root = src.parent().expect("dir").to_path_buf();
        let opts = LoadOptions {
            config_path: Some(src.clone()),
            cwd: root.clone(),
            profiles: flags.iter().skip(1).map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let env = |k: &str| (k == "HOME").then(|| "/nonexistent-home".to_string());
        let v1 = config::load_with(&opts, &env, None).expect("v1 loads");
        let (doc, _) = config::v2::convert::to_v2(&v1.config, &v1.source.root);
        let text = serde_saphyr::to_string(&doc).expect("yaml");
        assert!(text.starts_with("version: v2beta1\n"), "{text}");
        // Loaded from another directory (never write into the fixtures): paths compare
        // relative to each config's root.
        let tmp = tempfile::tempdir().expect("tmp");
        let converted = tmp.path().join("devspace.yaml");
        std::fs::write(&converted, &text).expect("write");
        let v2_opts = LoadOptions {
            config_path: Some(converted.clone()),
            cwd: tmp.path().to_path_buf(),
            ..Default::default()
        };
        let v2 = config::load_with(&v2_opts, &env, None)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", src.display()));
        let (r1, r2) = (v1.source.root.clone(), v2.source.root.clone());
        let rel = |p: &Path, root: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
        assert_eq!(v2.config.images.len(), v1.config.images.len(), "{text}");
        for ((k1, a), (k2, b)) in v1.config.images.iter().zip(&v2.config.images) {
            assert_eq!(config::v2::convert_name(k1), *k2);
            assert_eq!(a.image, b.image, "{k1}");
            assert_eq!(a.tags, b.tags, "{k1}");
            assert_eq!(rel(&a.dockerfile, &r1), rel(&b.dockerfile, &r2), "{k1}");
            assert_eq!(rel(&a.context, &r1), rel(&b.context, &r2), "{k1}");
            if a.builder_kind() == config::BuilderKind::Disabled {
                // DevSpace 6 has no disabled images: it is kept but left out of `build_images`.
                let deploy = doc["pipelines"]["deploy"]["run"]
                    .as_str()
                    .unwrap_or_default();
                assert!(!deploy.contains(&format!("build_images {k2}")), "{deploy}");
                continue;
            }
            assert_eq!(a.builder_kind(), b.builder_kind(), "{k1}");
            assert_eq!(a.options(), b.options(), "{k1}");
            assert_eq!(a.entrypoint, b.entrypoint, "{k1}");
            assert_eq!(a.cmd, b.cmd, "{k1}");
            assert_eq!(a.build.custom, b.build.custom, "{k1}");
        }
        let names = |c: &config::Config| -> Vec<String> {
            c.deployments
                .iter()
                .map(|d| config::v2::convert_name(&d.name))
                .collect()
        };
        assert_eq!(names(&v1.config), names(&v2.config));
        for (a, b) in v1.config.deployments.iter().zip(&v2.config.deployments) {
            // DevSpace 6 deletes `*` from manifest paths (`k8s/**` → the directory `k8s/`).
            let v6_paths = |k: &config::KubectlDeployment, root: &Path| -> Vec<PathBuf> {
                k.manifests
                    .iter()
                    .map(|m| rel(Path::new(m.replace('*', "").trim_end_matches('/')), root))
                    .collect()
            };
            assert_eq!(
                a.kubectl.as_ref().map(|k| v6_paths(k, &r1)),
                b.kubectl.as_ref().map(|k| v6_paths(k, &r2))
            );
            assert_eq!(
                a.helm.as_ref().map(|h| &h.values),
                b.helm.as_ref().map(|h| &h.values)
            );
        }
        // Converting the converted config gives the same document.
        let (again, _) = config::v2::convert::to_v2(&v2.config, &v2.source.root);
        let mut doc_wo_pipelines = doc.clone();
        let mut again_wo = again.clone();
        doc_wo_pipelines
            .as_object_mut()
            .map(|m| m.remove("pipelines"));
        again_wo.as_object_mut().map(|m| m.remove("pipelines"));
        assert_eq!(again_wo, doc_wo_pipelines, "{}", src.display());
        assert_eq!(again.get("pipelines"), doc.get("pipelines"));
    }

    // Through the CLI as well.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let out = devspace_in(&dir, &["print", "--convert"]);
    out.assert_success();
    assert!(
        out.stdout.contains("build_images api worker web"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("create_deployments quickstart --sequential"),
        "{}",
        out.stdout
    );
}

/// Small deterministic mutations of every v2 corpus file: loading never panics and every
/// failure is a config error with a message.
#[test]
fn mutated_v2_files_never_panic() {
    let dir = fixtures().join("corpus/v2");
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("devspace.yaml");
    let env = |k: &str| match k {
        "HOME" => Some("/nonexistent-home".to_string()),
        "DEVSPACE_GIT_BRANCH" => Some("main".to_string()),
        _ => None,
    };
    let mut runs = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        let mut variants: Vec<String> = Vec::new();
        for i in (0..lines.len()).step_by(3) {
            let mut dropped = lines.clone();
            dropped.remove(i);
            variants.push(dropped.join("\n"));
            let mut dup = lines.clone();
            dup.insert(i, lines[i]);
            variants.push(dup.join("\n"));
            let mut dedent = lines.clone();
            let l = dedent[i].trim_start().to_string();
            dedent[i] = &l;
            variants.push(dedent.join("\n"));
            let mut retyped = lines.clone();
            let r = retyped[i].replacen(": ", ": [", 1);
            retyped[i] = &r;
            variants.push(retyped.join("\n"));
        }
        for cut in (0..text.len()).step_by(97) {
            if text.is_char_boundary(cut) {
                variants.push(text[..cut].to_string());
            }
        }
        for v in variants {
            // Mutations must not run anything a file did not ask for.
            let v = v.replace("$(", "$$(");
            std::fs::write(&path, &v).expect("write");
            let opts = LoadOptions {
                config_path: Some(path.clone()),
                cwd: tmp.path().to_path_buf(),
                vars: vec!["DEVSPACE_GIT_BRANCH=main".into()],
                ..Default::default()
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                config::load_with(&opts, &env, None)
            }));
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => assert!(!e.to_string().is_empty()),
                Err(_) => panic!("panic on:\n{v}"),
            }
            runs += 1;
        }
    }
    assert!(runs > 1000, "{runs}");
}

/// A copy of `examples/devspace6` with its images in a unique repository namespace.
struct Example {
    project: TempProject,
    home: tempfile::TempDir,
    namespace: String,
    stand_ins: StandIns,
}

impl Example {
    fn new() -> Self {
        let project = TempProject::from_fixture("examples/devspace6");
        let namespace = format!("devspace6-{:08x}", rand::random::<u32>());
        for file in [
            "devspace.yaml",
            "k8s/api.yaml",
            "k8s/worker.yaml",
            "chart/values.yaml",
        ] {
            let text = project.read(file);
            project.write(
                file,
                text.replace(
                    "127.0.0.1:5000/devspace6",
                    &format!("127.0.0.1:5000/{namespace}"),
                ),
            );
        }
        let home = tempfile::tempdir().expect("home");
        std::fs::create_dir_all(home.path().join(".docker")).expect("docker dir");
        // Test-only credentials for the plain registry (which ignores them): the pull secret.
        let auth = base64::engine::general_purpose::STANDARD.encode("devspace:devspace-test");
        std::fs::write(
            home.path().join(".docker/config.json"),
            serde_json::json!({"auths": {"127.0.0.1:5000": {"auth": auth}}}).to_string(),
        )
        .expect("config.json");
        let stand_ins = StandIns::new();
        stand_ins.install("helm", HELM_COPYING_VALUES);
        Example {
            project,
            home,
            namespace,
            stand_ins,
        }
    }

    fn run(&self, fake: Option<&FakeKube>, args: &[&str]) -> Output {
        self.run_against(fake.map(|f| f.kubeconfig()), args)
    }

    /// `devspace` in the example against the cluster of `kubeconfig` (none: no cluster).
    fn run_against(&self, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.stand_ins.dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut d = self
            .project
            .devspace()
            .home(self.home.path())
            .env("DOCKER_CONFIG", self.home.path().join(".docker"))
            .env("PATH", path)
            .args(args);
        if let Some(k) = kubeconfig {
            d = d.kubeconfig(k);
        }
        d.run()
    }

    fn repository(&self, key: &str) -> String {
        format!("127.0.0.1:5000/{}/{key}", self.namespace)
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let Ok(listed) = std::process::Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
        else {
            return;
        };
        let prefix = format!("127.0.0.1:5000/{}/", self.namespace);
        for reference in String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|r| r.starts_with(&prefix))
        {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "--no-prune", "-f", reference])
                .output();
        }
    }
}

fn container_image(fake: &FakeKube, name: &str) -> String {
    fake.get("apps/v1", "Deployment", fake.namespace(), name)
        .unwrap_or_else(|| panic!("deployment {name} was not applied"))["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn example_builds_skips_renders_and_deploys() {
    require_services!();
    let ex = Example::new();
    let first = ex.run(None, &["build"]);
    first.assert_success();
    for key in ["api", "worker", "web"] {
        first.assert_stdout_contains(key);
    }
    // DevSpace 6's cache layout.
    let cache = ex.project.read(".devspace/cache.yaml");
    assert!(
        cache.contains("images:") && cache.contains("imageConfigHash"),
        "{cache}"
    );

    let second = ex.run(None, &["build"]);
    second.assert_success();
    for key in ["api", "worker", "web"] {
        second.assert_stderr_contains(&format!("[{key}] skip"));
    }

    // A context change of the image with ignoreContextChanges is not a rebuild.
    ex.project.write("worker/extra.txt", "x");
    ex.project.write("api/extra.txt", "x");
    let third = ex.run(None, &["build"]);
    third.assert_success();
    third.assert_stderr_contains("[worker] skip");
    third.assert_stderr_contains("[api] rebuild");

    // Render: the kubectl manifests and the Helm values carry the tags.
    let rendered = ex.run(None, &["render", "--skip-build"]);
    rendered.assert_success();
    rendered.assert_stdout_contains(&format!("image: {}:dev", ex.repository("api")));
    rendered.assert_stdout_contains(&format!("repository: {}", ex.repository("web")));
    rendered.assert_stdout_contains("tag: dev");

    // Deploy runs the config's own deploy pipeline against the fake API server.
    let fake = FakeKube::start();
    let deployed = ex.run(Some(&fake), &["deploy"]);
    deployed.assert_success();
    assert_eq!(
        container_image(&fake, "api"),
        format!("{}:dev", ex.repository("api"))
    );
    assert_eq!(
        container_image(&fake, "worker"),
        format!("{}:dev", ex.repository("worker"))
    );
    let calls = ex.stand_ins.calls("helm");
    assert_eq!(calls.len(), 1, "{}", deployed.describe());
    assert_eq!(
        calls[0][..3],
        ["upgrade", "--install", "devspace6-web"],
        "{:?}",
        calls[0]
    );
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(ex.stand_ins.dir().join("values.yaml")).expect("values"),
    )
    .expect("values yaml");
    assert_eq!(
        values["image"]["repository"],
        Value::from(ex.repository("web"))
    );
    assert_eq!(values["image"]["tag"], Value::from("dev"));

    // ensure_pull_secrets: DevSpace 6's one secret, added to the default ServiceAccount.
    let secret = fake
        .get("v1", "Secret", fake.namespace(), "devspace-pull-secrets")
        .unwrap_or_else(|| panic!("no pull secret\n{}", deployed.describe()));
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let data = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().expect("data"))
        .expect("base64");
    let doc: Value = serde_json::from_slice(&data).expect("json");
    assert!(doc["auths"]["127.0.0.1:5000"]["auth"].is_string(), "{doc}");
    let sa = fake
        .get("v1", "ServiceAccount", fake.namespace(), "default")
        .expect("default service account");
    assert_eq!(
        sa["imagePullSecrets"][0]["name"], "devspace-pull-secrets",
        "{sa}"
    );

    // A pipeline of its own, with the production profile (merge of Helm values).
    let release = ex.run(
        Some(&fake),
        &["-p", "production", "run-pipeline", "release"],
    );
    release.assert_success();
    release.assert_stderr_contains("releasing devspace6");
    release.assert_stderr_contains("[web] rebuild");
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(ex.stand_ins.dir().join("values.yaml")).expect("values"),
    )
    .expect("values yaml");
    assert_eq!(values["replicas"], Value::from(2));
}

/// The example's deploy pipeline against the real API server of `scripts/kube-up.sh`: the
/// kubectl deployments stored with the built tags, DevSpace 6's one pull secret and the
/// `default` ServiceAccount (made by the real controller manager) patched once, Helm through
/// the stand-in, and a second deploy leaving every object unchanged.
#[test]
fn example_deploys_to_a_real_api_server() {
    require_services!();
    let kube = RealKube::start();
    let ex = Example::new();
    let deployed = ex.run_against(Some(kube.kubeconfig()), &["deploy"]);
    deployed.assert_success();
    for name in ["api", "worker"] {
        let stored = kube
            .get("apps/v1", "Deployment", kube.namespace(), name)
            .unwrap_or_else(|| panic!("deployment {name} missing\n{}", deployed.describe()));
        assert_eq!(
            stored["spec"]["template"]["spec"]["containers"][0]["image"],
            Value::from(format!("{}:dev", ex.repository(name))),
            "{name}"
        );
        deployed.assert_stderr_contains(&format!("deployment.apps/{name} created"));
    }
    assert_eq!(
        ex.stand_ins.calls("helm").len(),
        1,
        "{}",
        deployed.describe()
    );

    let secret = kube
        .get("v1", "Secret", kube.namespace(), "devspace-pull-secrets")
        .unwrap_or_else(|| panic!("no pull secret\n{}", deployed.describe()));
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let data = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().expect("data"))
        .expect("base64");
    let doc: Value = serde_json::from_slice(&data).expect("json");
    assert_eq!(
        doc["auths"]["127.0.0.1:5000"]["auth"],
        Value::from(base64::engine::general_purpose::STANDARD.encode("devspace:devspace-test")),
        "{doc}"
    );
    let pull_secrets = |kube: &RealKube| {
        kube.get("v1", "ServiceAccount", kube.namespace(), "default")
            .expect("the controller manager's default ServiceAccount")["imagePullSecrets"]
            .clone()
    };
    assert_eq!(
        pull_secrets(&kube),
        serde_json::json!([{"name": "devspace-pull-secrets"}])
    );

    let again = ex.run_against(Some(kube.kubeconfig()), &["deploy"]);
    again.assert_success();
    for name in ["api", "worker"] {
        again.assert_stderr_contains(&format!("[{name}] skip"));
        again.assert_stderr_contains(&format!("deployment.apps/{name} unchanged"));
    }
    assert_eq!(
        pull_secrets(&kube),
        serde_json::json!([{"name": "devspace-pull-secrets"}]),
        "the ServiceAccount is patched once"
    );
}

#[test]
fn unsupported_pipeline_commands_stop_before_anything_runs() {
    require_services!();
    let ex = Example::new();
    let text = ex.project.read("devspace.yaml");
    ex.project.write(
        "devspace.yaml",
        text.replace(
            "    ensure_pull_secrets --all\n    build_images --all\n",
            "    ensure_pull_secrets --all\n    build_images --all\n    kubectl delete pvc --all\n",
        ),
    );
    let fake = FakeKube::start();
    let out = ex.run(Some(&fake), &["deploy"]);
    out.assert_code(3);
    out.assert_stderr_contains("pipeline `deploy` line 3: `kubectl` is not supported by this tool");
    assert!(
        !ex.project.exists(".devspace/cache.yaml"),
        "something was built\n{}",
        out.describe()
    );
    assert!(
        fake.get("apps/v1", "Deployment", fake.namespace(), "api")
            .is_none()
    );

    let out = ex.run(None, &["run-pipeline", "nope"]);
    out.assert_code(3);
    out.assert_stderr_contains("pipeline `nope` is not defined");
}

#[test]
fn custom_command_gets_runtime_variables_and_the_devspace6_default_tag() {
    require_services!();
    let p = write_project(&[(
        "devspace.yaml",
        "version: v2beta1\nname: custom\nimages:\n  tool:\n    image: 127.0.0.1:5000/v6-custom/tool\n    custom:\n      command: echo \"${runtime.images.tool.image}:${runtime.images.tool.tag}\" > built.txt\n",
    )]);
    let home = tempfile::tempdir().expect("home");
    let out = Devspace::new()
        .current_dir(p.path())
        .home(home.path())
        .arg("build")
        .run();
    out.assert_success();
    let built = p.read("built.txt");
    let tag = built
        .trim()
        .strip_prefix("127.0.0.1:5000/v6-custom/tool:")
        .unwrap_or_else(|| panic!("{built}"));
    assert_eq!(tag.len(), 7, "{tag}");
    assert!(tag.bytes().all(|b| b.is_ascii_alphabetic()), "{tag}");
    let cache = p.read(".devspace/cache.yaml");
    assert!(cache.contains(&format!("tag: {tag}")), "{cache}");
}

#[test]
fn answers_come_from_devspace6_cache_file() {
    let p = write_project(&[
        (
            "devspace.yaml",
            "version: v2beta1\nname: cached\nvars:\n  ASKED:\n    question: which?\nimages:\n  app:\n    image: ghcr.io/acme/${ASKED}\n",
        ),
        (".devspace/cache.yaml", "vars:\n  ASKED: remembered\n"),
    ]);
    let out = devspace_in(p.path(), &["print", "--images"]);
    out.assert_success();
    out.assert_stdout_contains("ghcr.io/acme/remembered");

    std::fs::remove_file(p.join(".devspace/cache.yaml")).expect("rm");
    let out = devspace_in(p.path(), &["print"]);
    out.assert_code(3);
    out.assert_stderr_contains("variable `ASKED` is not defined");
}

/// Every v1 corpus file that loads without flags converts to v2beta1 that loads again with the
/// same image keys.
#[test]
fn every_loadable_v1_corpus_file_converts_to_a_loadable_v2_config() {
    let dir = fixtures().join("corpus/v1");
    let env = |k: &str| (k == "HOME").then(|| "/nonexistent-home".to_string());
    let mut converted = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus/v1") {
        let src = entry.expect("entry").path();
        let opts = LoadOptions {
            config_path: Some(src.clone()),
            cwd: dir.clone(),
            ..Default::default()
        };
        let Ok(v1) = config::load_with(&opts, &env, None) else {
            continue; // needs vars or a profile (covered by tests/config.rs)
        };
        let (doc, _) = config::v2::convert::to_v2(&v1.config, &v1.source.root);
        let text = serde_saphyr::to_string(&doc).expect("yaml");
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("devspace.yaml");
        std::fs::write(&out, &text).expect("write");
        let v2_opts = LoadOptions {
            config_path: Some(out.clone()),
            cwd: tmp.path().to_path_buf(),
            ..Default::default()
        };
        let v2 = config::load_with(&v2_opts, &env, None)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", src.display()));
        let keys: Vec<String> = v1
            .config
            .images
            .keys()
            .map(|k| config::v2::convert_name(k))
            .collect();
        let got: Vec<String> = v2.config.images.keys().cloned().collect();
        assert_eq!(got, keys, "{}", src.display());
        converted += 1;
    }
    assert!(converted >= 20, "{converted}");
}
