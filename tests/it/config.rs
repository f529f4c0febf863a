//! Config loading through the real binary: every real-world config of the corpus, the error
//! messages a user reads (insta snapshots), the upward search, profiles and vars end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the binary with a clean environment (only PATH and an empty HOME), so host variables
/// such as USER cannot change what a config resolves to.
fn devspace(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devspace"));
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run devspace")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
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

/// A corpus file, the flags a user would pass, and the `(key, image)` pairs it defines.
type CorpusCase = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Every `v1` file with what a user would pass (MANIFEST.tsv notes) and the images it defines.
const CORPUS_V1: &[CorpusCase] = &[
    (
        "Addono__container-registry-proxy__devspace.yaml",
        &["--var", "DEVSPACE_USERNAME=me"],
        &[("app", "dscr.io/me/container-registry-proxy")],
    ),
    (
        "Addono__trilium-devspace__devspace.yaml",
        &[],
        &[("app", "zadam/trilium")],
    ),
    (
        "AlbertMarashi__drawbridge-ingress__devspace.yaml",
        &[],
        &[(
            "ingress-image",
            "319923562419.dkr.ecr.ap-southeast-2.amazonaws.com/ingress-image",
        )],
    ),
    (
        "AlexandrepCumbane__lvProjectPub__devspace.yaml",
        &["-p", "production"],
        &[("app", "feisung/app")],
    ),
    (
        "Altinity__clickhouse-operator__devspace.yaml",
        &[],
        &[
            ("metrics-exporter", "altinity/metrics-exporter"),
            ("clickhouse-operator", "altinity/clickhouse-operator"),
        ],
    ),
    (
        "AugustasV__nettracer-bpf__devspace.yaml",
        &[
            "--var",
            "REGISTRY_USERNAME=u,REGISTRY_PASSWORD=p,BRANCH=main,DEVSPACE_USER_HOME=/home/u",
        ],
        &[],
    ),
    (
        "CheckmarkDev__checkmark__devspace.yaml",
        &[],
        &[
            ("api", "williamdasilva/checkmark-api"),
            ("www", "williamdasilva/checkmark-www"),
            ("discord-bot", "williamdasilva/checkmark-discord-bot"),
        ],
    ),
    (
        "City-of-Bloomington__bton__devspace.yaml",
        &["-p", "prod"],
        &[(
            "egov-portal",
            "docker-repo.bloomington.in.gov/cob/egov-portal",
        )],
    ),
    (
        "City-of-Bloomington__open311-nodejs__devspace.yaml",
        &[],
        &[(
            "open311-nodejs",
            "docker-repo.bloomington.in.gov/cob/open311-nodejs",
        )],
    ),
    (
        "CodesWithJames__lumina__devspace.yaml",
        &[],
        &[(
            "frontend",
            "319923562419.dkr.ecr.ap-southeast-2.amazonaws.com/lumina-images/frontend",
        )],
    ),
    (
        "Cup-O-Code__employee-management-service__devspace.yaml",
        &["-p", "production"],
        &[("app", "rajesh2806/app")],
    ),
    (
        "Dana-Team__GPU-Monitoring__devspace.yaml",
        &[],
        &[("app", "razbne/gpumonitoring")],
    ),
    (
        "DarkBones__darkbugs__devspace.yaml",
        &["--var", "DB_PASSWORD=x"],
        &[("app", "darkbones/darkbugs")],
    ),
    (
        "EddyAnalytics__eddy-automl-backend__devspace.yaml",
        &[],
        &[
            ("app", "eddyanalytics/eddy-automl-backend"),
            ("zookeeper", "zookeeper"),
            ("broker", "wurstmeister/kafka"),
        ],
    ),
    (
        "FactFiber__devspace-nginx-auth-jwt__devspace.yaml",
        &["-p", "dev", "--var", "USER=me"],
        &[
            ("nginx-auth-jwt", "factfiber/nginx-auth-jwt"),
            (
                "nginx-auth-jwt-test-auth",
                "factfiber/nginx-auth-jwt-test-auth",
            ),
        ],
    ),
    (
        "FusionWorks__playground__devspace.yaml",
        &[],
        &[
            ("first-service", "first-service"),
            ("gateway", "gateway"),
            ("second-service", "second-service"),
        ],
    ),
    (
        "HoloRes__Ikari__devspace.yaml",
        &[
            "-p",
            "production",
            "--var",
            "REGISTRY_USERNAME=u,REGISTRY_PASSWORD=p",
        ],
        &[("app", "ghcr.io/holores/ikari")],
    ),
    (
        "Jonathandah__mandatory-cms1__devspace.yaml",
        &["--var", "DEVSPACE_USERNAME=me"],
        &[("default", "dscr.io/me/devspace")],
    ),
    (
        "Nmomos__vue-kubernetes__client_devspace.yaml",
        &["--var", "DEVSPACE_USERNAME=me"],
        &[("default", "dscr.io/me/client")],
    ),
    (
        "Nuvalence__nuvalence-user-management__devspace.yaml",
        &["-p", "production"],
        &[(
            "app",
            "us-east4-docker.pkg.dev/ny-dol-wp-work-manager/wp-docker-repo/wp-user-api:latest",
        )],
    ),
    (
        "elvinvalentino__hackathon__server_devspace.yaml",
        &["--var", "DB_PASSWORD=x"],
        &[("app", "rickt25/server")],
    ),
    (
        "flashbake__sandbox__devspace.yaml",
        &[],
        &[
            ("flashbake", "tezos-k8s-flashbake"),
            ("flashbake_relay", "tezos-k8s-flashbake-relay"),
        ],
    ),
    (
        "k8s4u__vcluster-sealed-secrets-plugin__devspace.yaml",
        &["--var", "SERVICE_CIDR=10.96.0.0/12"],
        &[("plugin", "docker.io/k8s4u/vcluster-sealed-secrets-plugin")],
    ),
    (
        "loft-sh__devspace-php-laravel-nginx__devspace.yaml",
        &[
            "--var",
            "PHP_IMAGE=me/php,NGINX_IMAGE=me/nginx,SHARED_VOLUME_NAME=shared,SHARED_VOLUME_SIZE=1Gi",
            "--var",
            "MYSQL_CHART=bitnami/mysql,MYSQL_CHART_VERSION=8.0.0,MYSQL_ROOT_PASSWORD=r,MYSQL_DATABASE=db",
            "--var",
            "MYSQL_USER=u,MYSQL_PASSWORD=p,REDIS_CHART=bitnami/redis,REDIS_CHART_VERSION=10.0.0,REDIS_PASSWORD=p",
        ],
        &[("php", "me/php")],
    ),
    (
        "loft-sh__jspolicy__devspace.yaml",
        &[],
        &[("controller", "loftsh/jspolicy")],
    ),
    (
        "loft-sh__kiosk__devspace.yaml",
        &["-p", "deploy"],
        &[("controller", "mynamespace/devspace")],
    ),
    (
        "me-heer__COVID-19-Predictive-Analysis__devspace.yaml",
        &["--var", "DEVSPACE_USERNAME=me,DB_PASSWORD=x"],
        &[("app", "dscr.io/me/covid19predictiveanalysis")],
    ),
    (
        "narze__streamie__devspace.yaml",
        &[
            "-p",
            "production",
            "--var",
            "TWITCH_OAUTH_TOKEN=t,DISCORD_TOKEN=d,DEV_GUILD_ID=0123,OAUTH_CLIENT_ID=o,PORT=3000",
        ],
        &[("app", "ghcr.io/narze/streamie/app")],
    ),
    (
        "rellyson__go-pay__k8s_devspace.yaml",
        &[],
        &[("api", "registry.localhost:5000/api")],
    ),
    (
        "sadakunihiro__crud-sample__frontend_devspace.yaml",
        &[],
        &[("app", "sadakunihiro/frontend")],
    ),
    (
        "teonapster__todo-app__devspace.yaml",
        &[],
        &[
            ("database", "postgres"),
            ("app", "teonapster/todo-api"),
            ("client", "teonapster/todo-client"),
            ("nginx", "teonapster/todo-nginx"),
        ],
    ),
    (
        "thoschu__ch.techstack.test.github-actions__devspace.yaml",
        &[
            "-p",
            "production",
            "--var",
            "REGISTRY_USERNAME=u,REGISTRY_PASSWORD=p",
        ],
        &[("app", "docker")],
    ),
    (
        "tomerOko__k8s_node_template__k8s_devspace.yaml",
        &[],
        &[("image1", "service-template-k8s-dev.image")],
    ),
];

#[test]
fn every_v1_corpus_file_loads_and_shows_its_images() {
    let dir = fixtures().join("corpus/v1");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/v1")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS_V1.iter().map(|(f, ..)| f.to_string()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "every corpus file has a row");

    let manifest =
        std::fs::read_to_string(fixtures().join("corpus/MANIFEST.tsv")).expect("manifest");
    let mut failures = Vec::new();
    for (file, flags, want) in CORPUS_V1 {
        assert!(
            manifest.contains(&format!("v1/{file}\t")),
            "{file} in MANIFEST.tsv"
        );
        let path = dir.join(file);
        let mut args = vec!["--config", path.to_str().expect("utf-8 path")];
        args.extend_from_slice(flags);
        args.extend(["print", "--images"]);
        let out = devspace(&dir, &args, &[]);
        let got = image_rows(&text(&out.stdout));
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, i)| (k.to_string(), i.to_string()))
            .collect();
        if !out.status.success() || got != want {
            failures.push(format!(
                "{file}: exit {:?}\n  want {want:?}\n  got  {got:?}\n  stderr: {}",
                out.status.code(),
                text(&out.stderr)
            ));
        }
        // The full YAML print works too.
        let mut yaml_args = args.clone();
        yaml_args.pop();
        let out = devspace(&dir, &yaml_args, &[]);
        if !out.status.success() || !text(&out.stdout).starts_with("version: v1") {
            failures.push(format!("{file}: print failed: {}", text(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_v2_corpus_file_loads() {
    // DevSpace 6 configs load (details in tests/v6.rs).
    let dir = fixtures().join("corpus/v2");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus/v2") {
        let path = entry.expect("entry").path();
        let out = devspace(
            &dir,
            &[
                "--config",
                path.to_str().expect("utf-8"),
                "--var",
                "DEVSPACE_GIT_BRANCH=main",
                "print",
                "--images",
            ],
            &[],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", path.display());
        assert!(text(&out.stdout).starts_with("KEY"), "{}", path.display());
        count += 1;
    }
    assert_eq!(count, 14);
}

#[test]
fn a_profile_with_a_key_devspace_does_not_know_is_reported_at_its_line() {
    // AugustasV's `remote` profile sets build.docker.resources, which no DevSpace version has.
    let dir = fixtures().join("corpus/v1");
    let path = dir.join("AugustasV__nettracer-bpf__devspace.yaml");
    let out = devspace(
        &dir,
        &[
            "--config",
            path.to_str().expect("utf-8"),
            "-p",
            "remote",
            "--var",
            "REGISTRY_USERNAME=u,REGISTRY_PASSWORD=p,BRANCH=main,DEVSPACE_USER_HOME=/home/u",
            "print",
            "--images",
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(":70:13: unknown key `images.default.build.docker.resources` in a v1beta11 config (introduced by profile `remote`)"),
        "{stderr}"
    );
}

/// Runs a fixture under `tests/fixtures/config/errors/<name>` and returns stderr with the
/// fixture directory redacted.
fn error_of(name: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = fixtures().join("config/errors").join(name);
    let mut args = extra.to_vec();
    args.extend(["print", "--images"]);
    let out = devspace(&dir, &args, &[]);
    let stderr = text(&out.stderr).replace(&dir.display().to_string(), "[PROJECT]");
    (out.status.code(), stderr)
}

#[test]
fn error_messages() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("broken_yaml", "broken-yaml", &[]),
        ("unknown_key", "unknown-key", &[]),
        ("key_of_another_version", "old-key", &[]),
        ("wrong_type", "wrong-type", &[]),
        ("wrong_type_bool", "wrong-type-bool", &[]),
        ("undefined_vars", "undefined-var", &[]),
        ("unknown_profile", "profiles", &["-p", "nope"]),
        ("profile_loop", "profiles", &["-p", "loop-a"]),
        ("patch_missing_path", "profiles", &["-p", "missing-path"]),
        ("unknown_key_from_profile", "profiles", &["-p", "bad-key"]),
        ("v2_not_supported", "v2", &[]),
        ("unknown_version", "unknown-version", &[]),
        ("missing_version", "missing-version", &[]),
        ("duplicate_key", "duplicate-key", &[]),
        ("same_image_twice", "same-image", &[]),
    ];
    for (snapshot, fixture, extra) in cases {
        let (code, stderr) = error_of(fixture, extra);
        assert_eq!(code, Some(3), "{snapshot}: {stderr}");
        assert!(stderr.starts_with("error: "), "{snapshot}: {stderr}");
        assert!(!stderr.contains("panicked"), "{snapshot}: {stderr}");
        insta::assert_snapshot!(*snapshot, stderr);
    }
}

#[test]
fn no_config_found_hints_at_config_flag() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = devspace(tmp.path(), &["print"], &[]);
    let stderr = text(&out.stderr).replace(&tmp.path().display().to_string(), "[CWD]");
    assert_eq!(out.status.code(), Some(3));
    insta::assert_snapshot!("no_config_found", stderr);

    let out = devspace(tmp.path(), &["--config", "missing.yaml", "print"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("missing.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn upward_search_finds_the_project_and_resolves_paths_against_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let project = tmp.path().join("project");
    let nested = project.join("src/deep");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::write(
        project.join("devspace.yaml"),
        "version: v1beta9\nimages:\n  app:\n    image: me/app\n    dockerfile: docker/Dockerfile\n    context: ./src\n",
    )
    .expect("write");
    let out = devspace(&nested, &["print", "--images"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("info: using devspace config in {}\n", project.display())
    );
    assert_eq!(
        text(&out.stdout),
        "KEY  IMAGE   TAGS      DOCKERFILE         CONTEXT  BUILDER\napp  me/app  (random)  docker/Dockerfile  src      docker\n"
    );
    let out = devspace(&nested, &["print"], &[]);
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains(&format!(
            "dockerfile: {}/docker/Dockerfile",
            project.display()
        )),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("context: {}/src", project.display())),
        "{yaml}"
    );

    // --config relative to the cwd wins over the search.
    std::fs::write(
        nested.join("other.yaml"),
        "version: v1beta9\nimages:\n  other:\n    image: me/other\n",
    )
    .expect("write");
    let out = devspace(
        &nested,
        &["--config", "other.yaml", "print", "--images"],
        &[],
    );
    assert_eq!(
        image_rows(&text(&out.stdout)),
        [("other".to_string(), "me/other".to_string())]
    );
}

#[test]
fn the_home_directory_itself_is_not_a_project() {
    let home = tempfile::tempdir().expect("tmp");
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(
        home.path().join("devspace.yaml"),
        "version: v1beta9\nimages: {}\n",
    )
    .expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devspace"));
    let out = cmd
        .args(["print"])
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot find a devspace.yaml"));
}

#[test]
fn print_shows_the_resolved_config() {
    let dir = fixtures().join("config/full");
    let redact = |s: String| s.replace(&dir.display().to_string(), "[PROJECT]");
    let out = devspace(&dir, &["print"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!("print_full", redact(text(&out.stdout)));

    let out = devspace(
        &dir,
        &["print", "--images"],
        &[("REGISTRY", "reg.example.com")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!("print_images_full", text(&out.stdout));

    // Profiles chain (ci → parent prod), patch values use vars.
    let out = devspace(&dir, &["-p", "ci", "--var", "FLAVOUR=fat", "print"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!("print_full_profile_ci", redact(text(&out.stdout)));
}

#[test]
fn debug_lists_unused_sections_and_silent_hides_warnings() {
    let dir = fixtures().join("config/full");
    let out = devspace(&dir, &["--debug", "print", "--images"], &[]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("debug: sections not used by this tool: dev, hooks"),
        "{}",
        text(&out.stderr)
    );
    let out = devspace(&dir, &["print", "--images"], &[]);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn vars_come_from_flags_env_cache_and_definitions_in_that_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let project = tmp.path();
    std::fs::create_dir_all(project.join(".devspace")).expect("mkdir");
    std::fs::write(
        project.join(".devspace/generated.yaml"),
        "vars:\n  CACHED: from-cache\n  ENVD: cache-loses-to-env\n",
    )
    .expect("write");
    std::fs::write(
        project.join("devspace.yaml"),
        "version: v1beta9\nvars:\n- name: DEFAULTED\n  source: none\n  default: 0123\nimages:\n  app:\n    image: me/app\n    tags:\n    - ${CACHED}\n    - ${ENVD}\n    - ${FLAG}\n    - ${DEFAULTED}\n    - $!{QUOTED}\n    createPullSecret: ${PULL}\n",
    )
    .expect("write");
    let out = devspace(
        project,
        &[
            "--var",
            "FLAG=f1,QUOTED=007",
            "--var",
            "PULL=false",
            "print",
        ],
        &[("ENVD", "from-env"), ("FLAG", "env-loses-to-flag")],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // `0123` from a default keeps its YAML type (int 83 in YAML 1.1); `$!{}` keeps "007".
    assert!(
        stdout.contains(
            "    tags:\n    - from-cache\n    - from-env\n    - f1\n    - \"83\"\n    - \"007\"\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("    createPullSecret: false\n"), "{stdout}");
}

#[test]
fn predefined_vars_are_computed_only_when_used() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(
        tmp.path().join("devspace.yaml"),
        "version: v1beta9\nimages:\n  app:\n    image: me/app\n    tags: [\"${DEVSPACE_NAMESPACE}-${DEVSPACE_PROFILE}\"]\nprofiles:\n- name: p\n",
    )
    .expect("write");
    let out = devspace(
        tmp.path(),
        &["-n", "team", "-p", "p", "print", "--images"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("team-p"),
        "{}",
        text(&out.stdout)
    );

    // No kubeconfig and no -n: a clear error, not a network call.
    let out = devspace(tmp.path(), &["print"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("pass --kube-context and -n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn on_a_terminal_undefined_vars_are_asked_for() {
    // `script` gives the binary a pseudo-terminal whose input is our stdin.
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(
        tmp.path().join("devspace.yaml"),
        "version: v1beta9\nvars:\n- name: TAG\n  question: Which tag?\n  options: [dev, prod]\n- name: PASS\n  password: true\nimages:\n  app:\n    image: me/app\n    tags: [\"${TAG}\", \"${PASS}\"]\n",
    )
    .expect("write");
    let bin = env!("CARGO_BIN_EXE_devspace");
    let home = tempfile::tempdir().expect("home");
    let mut child = Command::new("script")
        .args(["-qec", &format!("{bin} print --images"), "/dev/null"])
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // "qa" is not an allowed option: asked again.
        stdin.write_all(b"qa\nprod\nhunter2\n").expect("answers");
    }
    let out = child.wait_with_output().expect("wait");
    let screen = text(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("? Which tag? [dev/prod] (dev)"), "{screen}");
    assert!(
        screen.contains("please answer one of: dev, prod"),
        "{screen}"
    );
    assert!(
        screen.contains("? Please enter a value for PASS"),
        "{screen}"
    );
    assert!(screen.contains("app  me/app  prod,hunter2"), "{screen}");
}

/// Writes `devspace.yaml` with `body` into a fresh directory.
fn project(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("devspace.yaml"), body).expect("write config");
    dir
}

const ONE_IMAGE: &str = "version: v1beta11\nimages:\n  app:\n    image: john/app\n";

/// One `error:` line first, nothing panicked, and the expected code.
fn assert_error(out: &Output, code: i32, needle: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_flags_exit_2_before_any_work() {
    let dir = project(ONE_IMAGE);
    let long = "a".repeat(200);
    for tag in ["bad tag", "", "a:b", ".x", long.as_str()] {
        let out = devspace(dir.path(), &["build", "--dry-run", "-t", tag], &[]);
        assert_error(&out, 2, "invalid tag");
    }
    for var in ["=x", "A=1,oops", " =x"] {
        let out = devspace(dir.path(), &["--var", var, "print", "--images"], &[]);
        assert_error(&out, 2, "wrong --var format");
    }
    // Valid ones pass the flag check (`#` stands for a random letter).
    let out = devspace(dir.path(), &["--var", "A=1", "print", "--images"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn invalid_image_names_and_tags_are_config_errors_also_in_dry_run() {
    let upper = project("version: v1beta11\nimages:\n  app:\n    image: John/App\n");
    for args in [&["print", "--images"][..], &["build", "--dry-run"][..]] {
        let out = devspace(upper.path(), args, &[]);
        assert_error(&out, 3, "must be lowercase");
    }
    let by_var = project(
        "version: v1beta11\nvars:\n  - name: T\n    default: ok\nimages:\n  app:\n    image: john/app\n    tags: [\"${T}\"]\n",
    );
    let out = devspace(
        by_var.path(),
        &["--var", "T=bad tag", "build", "--dry-run"],
        &[],
    );
    assert_error(&out, 3, "invalid tag `bad tag`");
    let root = project("version: v1beta11\nimages:\n  app:\n    image: john/app\n    context: /\n");
    let out = devspace(root.path(), &["build", "--dry-run"], &[]);
    assert_error(&out, 3, "context is the filesystem root");
}

#[test]
fn small_config_surprises_get_clear_messages() {
    let v1 = project("version: 1\n");
    let out = devspace(v1.path(), &["print"], &[]);
    assert_error(&out, 3, "unrecognized config version `1`");

    let dir = tempfile::tempdir().expect("tmp");
    let out = devspace(dir.path(), &["--config", "/dev/zero", "print"], &[]);
    assert_error(&out, 3, "not a regular file");
    let fifo = dir.path().join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let out = devspace(
        dir.path(),
        &["--config", fifo.to_str().expect("utf-8"), "print"],
        &[],
    );
    assert_error(&out, 3, "not a regular file");
}

/// `a0: &a0 [lol x10]`, `aN: &aN [*a(N-1) x10]`.
fn laughs(levels: usize, indent: &str) -> String {
    let mut doc = format!("{indent}a0: &a0 [{}]\n", ["lol"; 10].join(", "));
    for n in 1..=levels {
        let prev = format!("*a{}", n - 1);
        doc.push_str(&format!(
            "{indent}a{n}: &a{n} [{}]\n",
            vec![prev; 10].join(", ")
        ));
    }
    doc
}

#[test]
fn alias_bombs_stop_at_the_node_budget_in_every_place() {
    let top = format!("{ONE_IMAGE}{}", laughs(9, ""));
    let build_args = format!(
        "version: v1beta11\nimages:\n  app:\n    image: john/app\n    build:\n      docker:\n        options:\n          buildArgs:\n{}",
        laughs(9, "            ")
    );
    let profile = format!(
        "{ONE_IMAGE}profiles:\n  - name: p\n    merge:\n      x:\n{}",
        laughs(9, "        ")
    );
    let cases: [(String, &[&str]); 3] = [
        (top, &["print", "--images"]),
        (build_args, &["print", "--images"]),
        (profile, &["-p", "p", "print", "--images"]),
    ];
    for (body, args) in cases {
        let dir = project(&body);
        let out = devspace(dir.path(), args, &[]);
        let stderr = assert_error(&out, 3, "alias");
        assert!(stderr.contains("devspace.yaml:"), "{stderr}");
        assert!(stderr.contains("Limits"), "{stderr}");
    }
    // The same in the cache: a warning, the run goes on.
    let dir = project(ONE_IMAGE);
    std::fs::create_dir(dir.path().join(".devspace")).expect("mkdir");
    std::fs::write(dir.path().join(".devspace/generated.yaml"), laughs(9, "")).expect("write");
    let out = devspace(dir.path(), &["print", "--images"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn doubling_vars_stop_at_the_var_size_limit() {
    let mut body = String::from("version: v1beta11\nvars:\n");
    for i in 0..40 {
        body.push_str(&format!(
            "  - name: V{i}\n    value: \"${{V{0}}}${{V{0}}}\"\n",
            i + 1
        ));
    }
    body.push_str("  - name: V40\n    value: xx\nimages:\n  app:\n    image: john/app\n    tags: [\"${V0}\"]\n");
    let dir = project(&body);
    let out = devspace(dir.path(), &["print", "--images"], &[]);
    assert_error(&out, 3, "var size limit");
}

#[test]
fn a_long_line_error_shows_a_cut_snippet() {
    let long = "x".repeat(10 << 20);
    let dir = project(&format!(
        "version: v1beta11\nimages: {{app: {{image: john/app, bad: [{long}}}\n"
    ));
    let out = devspace(dir.path(), &["print"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(stderr.len() < 2_000, "stderr is {} bytes", stderr.len());
    assert!(stderr.contains('…'), "{stderr}");
}
