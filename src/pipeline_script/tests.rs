use super::*;

/// Records what a pipeline asked for; `fail` names steps that fail.
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    fail: Vec<String>,
}

impl Fake {
    fn step(&mut self, call: String) -> Result<(), StepError> {
        let failed = self.fail.iter().any(|f| call.starts_with(f.as_str()));
        self.calls.push(call);
        if failed {
            Err(StepError {
                message: "boom".into(),
                exit: 1,
            })
        } else {
            Ok(())
        }
    }
}

impl Actions for Fake {
    fn keys(&self, section: &str) -> Vec<String> {
        match section {
            "images" => vec!["api".into(), "web".into()],
            "deployments" => vec!["db".into(), "app".into()],
            _ => vec!["ghcr".into()],
        }
    }
    async fn build_images(&mut self, s: BuildStep) -> Result<(), StepError> {
        let names = s.images.pick(&self.keys("images")).join(",");
        self.step(format!(
            "build {names} push={} force={} seq={} max={:?} tags={:?} skip={}",
            !s.skip_push, s.force_rebuild, s.sequential, s.max_concurrent, s.tags, s.skip
        ))
    }
    async fn ensure_pull_secrets(&mut self, names: Vec<String>) -> Result<(), StepError> {
        self.step(format!("secrets {}", names.join(",")))
    }
    async fn create_deployments(&mut self, s: DeployStep) -> Result<(), StepError> {
        let names = s.deployments.pick(&self.keys("deployments")).join(",");
        self.step(format!(
            "deploy {names} seq={} render={}",
            s.sequential, s.render
        ))
    }
    fn print(&mut self, line: &str) {
        self.calls.push(format!("print {line}"));
    }
}

fn run_with(
    script: &str,
    cli: CliDefaults,
    fail: &[&str],
) -> (Result<(), PipelineError>, Vec<String>) {
    let pipelines = serde_json::json!({ "p": script });
    let mut fake = Fake {
        fail: fail.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let result = match prepare(Some(&pipelines), "p") {
        Ok(pipeline) => {
            let env = |k: &str| (k == "WHO").then(|| "world".to_string());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                Runner {
                    actions: &mut fake,
                    cli,
                    env: &env,
                }
                .run(&pipeline)
                .await
            })
        }
        Err(e) => Err(e),
    };
    (result, fake.calls)
}

fn run(script: &str) -> (Result<(), PipelineError>, Vec<String>) {
    run_with(script, CliDefaults::default(), &[])
}

#[test]
fn supported_scripts_run_in_order() {
    let cases: &[(&str, &[&str])] = &[
        (
            "build_images --all",
            &["build api,web push=true force=false seq=false max=None tags=[] skip=false"],
        ),
        (
            "# comment\nbuild_images api --skip-push --force-rebuild --sequential  # trailing\n",
            &["build api push=false force=true seq=true max=None tags=[] skip=false"],
        ),
        (
            "build_images --all --except web -t v1 --tag=v2 --max-concurrent 2",
            &[
                "build api push=true force=false seq=false max=Some(2) tags=[\"v1\", \"v2\"] skip=false",
            ],
        ),
        (
            "ensure_pull_secrets --all && create_deployments app db --sequential",
            &["secrets ghcr", "deploy app,db seq=true render=false"],
        ),
        (
            "build_images \\\n  api \\\n  web",
            &["build api,web push=true force=false seq=false max=None tags=[] skip=false"],
        ),
        (
            "echo \"hello $WHO\" 'and ${WHO}'",
            &["print hello world and ${WHO}"],
        ),
        ("echo hi; echo ${WHO}", &["print hi", "print world"]),
        (
            "run_dependencies --all --pipeline build",
            &["print run_dependencies: this config has no dependencies this tool runs (skipped)"],
        ),
        ("false || echo fallback", &["print fallback"]),
        ("true && echo yes || echo no", &["print yes"]),
        ("false && echo yes || echo no", &["print no"]),
        (
            "if build_images web; then\n  echo built\nelse\n  echo failed\nfi",
            &[
                "build web push=true force=false seq=false max=None tags=[] skip=false",
                "print built",
            ],
        ),
        (
            "if false; then echo a; elif true; then echo b; else echo c; fi",
            &["print b"],
        ),
        ("if false; then echo a; fi\necho after", &["print after"]),
        (
            "run_default_pipeline deploy",
            &[
                "print run_dependencies: this config has no dependencies this tool runs (skipped)",
                "secrets ghcr",
                "build api,web push=true force=false seq=false max=None tags=[] skip=false",
                "deploy db,app seq=false render=false",
            ],
        ),
    ];
    for (script, want) in cases {
        let (result, calls) = run(script);
        assert_eq!(result, Ok(()), "{script}");
        assert_eq!(calls, *want, "{script}");
    }
}

#[test]
fn cli_flags_are_the_defaults_of_pipeline_commands() {
    let cli = CliDefaults {
        skip_push: true,
        force_build: true,
        build_sequential: true,
        max_concurrent_builds: Some(3),
        tags: vec!["cli".into()],
        render: true,
        ..Default::default()
    };
    let (result, calls) = run_with(
        "build_images --all -t script\ncreate_deployments app",
        cli,
        &[],
    );
    assert_eq!(result, Ok(()));
    assert_eq!(
        calls,
        [
            "build api,web push=false force=true seq=true max=Some(3) tags=[\"script\"] skip=false",
            "deploy app seq=false render=true"
        ]
    );
}

#[test]
fn a_failing_step_stops_the_pipeline_unless_tested() {
    let (result, calls) = run_with(
        "build_images api\ncreate_deployments app",
        CliDefaults::default(),
        &["build"],
    );
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string()
            .starts_with("pipeline `p` line 1: `build_images api` failed: boom"),
        "{err}"
    );
    assert_eq!(calls.len(), 1);

    let (result, calls) = run_with(
        "build_images api || echo ignored\ncreate_deployments app",
        CliDefaults::default(),
        &["build"],
    );
    assert_eq!(result, Ok(()));
    assert_eq!(calls.len(), 4, "{calls:?}");
}

#[test]
fn unsupported_commands_are_refused_before_anything_runs() {
    let cases: &[(&str, &str)] = &[
        (
            "build_images --all\nstart_dev app",
            "pipeline `p` line 2: `start_dev` is not supported",
        ),
        (
            "echo one\nbuild_images --all -t $(git describe --always)",
            "pipeline `p` line 2: `git` (in the command substitution `$(git describe --always)`) is not supported",
        ),
        (
            "build_images --all | cat",
            "line 1: pipes (`|`) are not supported",
        ),
        ("echo x > file", "line 1: redirections"),
        (
            "for i in a; do echo $i; done",
            "line 1: `for` is not supported",
        ),
        (
            "kubectl delete pvc --all",
            "line 1: `kubectl` is not supported",
        ),
        (
            "build_images --all --set buildArgs.X=1",
            "`build_images --set` is not supported",
        ),
        (
            "create_deployments",
            "`create_deployments` needs --all or at least one name",
        ),
        (
            "X=1 build_images --all",
            "variable assignments (`X=1`) are not supported",
        ),
        (
            "run_default_pipeline dev",
            "the built-in `dev` pipeline needs something unsupported",
        ),
        (
            "run_default_pipeline nope",
            "takes one of build, deploy, dev, purge",
        ),
        (
            "if true; then\n  minikube image load x\nfi",
            "pipeline `p` line 2: `minikube` is not supported",
        ),
        ("echo `date`", "command substitution"),
        ("f() { echo; }", "subshells and functions"),
        ("echo $@", "special parameter"),
    ];
    for (script, want) in cases {
        let (result, calls) = run(script);
        let err = result.expect_err(script).to_string();
        assert!(err.contains(want), "{script}: {err}");
        assert!(calls.is_empty(), "{script}: ran {calls:?}");
    }
}

#[test]
fn syntax_errors_are_reported() {
    for (script, want) in [
        ("if true; then echo", "no matching `fi`"),
        ("echo 'open", "unterminated single quote"),
        ("fi", "unexpected `fi`"),
        ("&& echo", "without a command"),
    ] {
        let err = run(script).0.unwrap_err().to_string();
        assert!(err.contains(want), "{script}: {err}");
    }
}

#[test]
fn missing_or_empty_pipelines_use_the_defaults() {
    let p = serde_json::json!({"deploy": {"run": ""}, "custom": "echo hi"});
    assert_eq!(
        pipeline_text(Some(&p), "deploy").unwrap().0,
        default_script("deploy").unwrap()
    );
    assert_eq!(
        pipeline_text(None, "build").unwrap().0,
        default_script("build").unwrap()
    );
    assert_eq!(pipeline_text(Some(&p), "custom").unwrap().0, "echo hi");
    let err = prepare(Some(&p), "nope").unwrap_err().to_string();
    assert!(
        err.contains(
            "pipeline `nope` is not defined (pipelines: deploy, custom, build, dev, purge)"
        ),
        "{err}"
    );
    // The built-in dev pipeline starts dev mode, which this tool does not run.
    assert!(prepare(None, "dev").is_err());
    assert!(prepare(None, "deploy").is_ok());
    assert!(prepare(None, "build").is_ok());
}

#[test]
fn dependencies_are_refused_only_when_the_config_has_some() {
    let deps = vec!["api".to_string()];
    let deploy = prepare(None, "deploy").unwrap();
    assert_eq!(deploy.check_dependencies(&[]), Ok(()));
    let err = deploy.check_dependencies(&deps).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pipeline `deploy` line 1: `run_dependencies` would run the dependencies api"
        ),
        "{err}"
    );
    let p =
        serde_json::json!({"x": "echo a\nrun_default_pipeline build", "y": "build_images --all"});
    let err = prepare(Some(&p), "x")
        .unwrap()
        .check_dependencies(&deps)
        .unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(
        prepare(Some(&p), "y").unwrap().check_dependencies(&deps),
        Ok(())
    );
}
