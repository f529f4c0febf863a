use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::diagnostic::Diagnostic;

/// A script that starts a grandchild (`sleep`), writes its pid to `pid_file`, then waits.
fn with_grandchild(pid_file: &Path) -> Spec {
    Spec::shell(&format!(
        "sleep 30 & echo $! > '{}'; wait",
        pid_file.display()
    ))
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it no longer runs).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(pid_file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the script never wrote its pid");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resolves once the script wrote its pid file.
async fn wait_for(pid_file: &Path) {
    while std::fs::read_to_string(pid_file).map_or(true, |t| !t.ends_with('\n')) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "grandchild {pid} still runs after its group was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let started = Instant::now();
    let error =
        run(&with_grandchild(&pid_file).timeout(Duration::from_secs(2))).expect_err("times out");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(matches!(error, RunError::TimedOut { .. }), "{error}");
    assert!(
        error.to_string().contains("did not finish within 2s"),
        "{error}"
    );
    assert_gone(read_pid(&pid_file));
}

#[tokio::test]
async fn async_timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let error = run_async(&with_grandchild(&pid_file).timeout(Duration::from_secs(2)))
        .await
        .expect_err("times out");
    assert!(matches!(error, RunError::TimedOut { .. }), "{error}");
    assert_gone(read_pid(&pid_file));
}

#[test]
fn cancellation_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let cancel = CancellationToken::new();
    let trigger = {
        let cancel = cancel.clone();
        let pid_file = pid_file.clone();
        std::thread::spawn(move || {
            read_pid(&pid_file);
            cancel.cancel();
        })
    };
    let error = run(&with_grandchild(&pid_file).cancel(&cancel)).expect_err("cancelled");
    trigger.join().expect("trigger");
    assert!(matches!(error, RunError::Interrupted { .. }), "{error}");
    assert_gone(read_pid(&pid_file));
}

#[tokio::test]
async fn async_cancellation_and_drop_kill_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let cancel = CancellationToken::new();
    let spec = with_grandchild(&pid_file).cancel(&cancel);
    let run = run_async(&spec);
    tokio::pin!(run);
    tokio::select! {
        _ = &mut run => panic!("the script waits for its grandchild"),
        () = wait_for(&pid_file) => cancel.cancel(),
    }
    let error = run.await.expect_err("cancelled");
    assert!(matches!(error, RunError::Interrupted { .. }), "{error}");
    assert_gone(read_pid(&pid_file));

    // A dropped future takes its process group with it.
    let dropped = dir.path().join("dropped");
    let spec = with_grandchild(&dropped);
    let run = run_async(&spec);
    tokio::select! {
        _ = run => panic!("the script waits for its grandchild"),
        () = wait_for(&dropped) => {}
    }
    assert_gone(read_pid(&dropped));
}

#[tokio::test]
async fn streamed_run_cancelled_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let cancel = CancellationToken::new();
    let spec = Spec::shell(&format!(
        "echo started; sleep 30 & echo $! > '{}'; wait",
        pid_file.display()
    ));
    let mut lines = Vec::new();
    let canceller = {
        let cancel = cancel.clone();
        let pid_file = pid_file.clone();
        tokio::task::spawn_blocking(move || {
            read_pid(&pid_file);
            cancel.cancel();
        })
    };
    let outcome = stream(&spec, None, &mut |l| lines.push(l), &cancel)
        .await
        .expect("runs");
    canceller.await.expect("canceller");
    assert!(matches!(outcome, Streamed::Cancelled), "{outcome:?}");
    assert_eq!(lines, ["started"]);
    assert_gone(read_pid(&pid_file));
}

#[tokio::test]
async fn streamed_run_merges_lines_and_feeds_stdin() {
    let body: Body = Box::pin(futures_util::stream::iter([
        Ok(bytes::Bytes::from_static(b"one\ntw")),
        Ok(bytes::Bytes::from_static(b"o\n")),
    ]));
    let spec = Spec::shell("cat; echo err >&2; exit 2");
    let mut lines = Vec::new();
    let outcome = stream(
        &spec,
        Some(body),
        &mut |l| lines.push(l),
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    let Streamed::Exited { status, sent } = outcome else {
        panic!("not cancelled")
    };
    assert_eq!(status.code(), Some(2));
    assert_eq!(sent, Some(8));
    lines.sort();
    assert_eq!(lines, ["err", "one", "two"]);
}

#[test]
fn output_is_capped() {
    let spec = Spec::shell("head -c 5000 /dev/zero").timeout(Duration::from_secs(30));
    let error = run(&spec.clone().output_cap(1000)).expect_err("too much output");
    assert!(
        matches!(error, RunError::OutputTooLarge { limit: 1000, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("more than 1000 bytes"),
        "{error}"
    );
    // Exactly the cap is fine.
    let output = run(&spec.output_cap(5000)).expect("runs");
    assert_eq!(output.stdout.len(), 5000);
    // A program that never stops writing is stopped (no timeout needed).
    let error = run(&Spec::new("yes").output_cap(64 * 1024)).expect_err("stopped");
    assert!(matches!(error, RunError::OutputTooLarge { .. }), "{error}");
}

#[tokio::test]
async fn async_output_is_capped() {
    let spec = Spec::shell("head -c 5000 /dev/zero >&2");
    let error = run_async(&spec.clone().output_cap(1000))
        .await
        .expect_err("too much output");
    assert!(
        matches!(error, RunError::OutputTooLarge { limit: 1000, .. }),
        "{error}"
    );
    let output = run_async(&spec.output_cap(5000)).await.expect("runs");
    assert_eq!(output.stderr.len(), 5000);
    let error = run_async(&Spec::new("yes").output_cap(64 * 1024))
        .await
        .expect_err("stopped");
    assert!(matches!(error, RunError::OutputTooLarge { .. }), "{error}");
}

#[test]
fn stdin_is_fed_and_output_captured() {
    let output = run(&Spec::new("cat").stdin_bytes(b"hello\n".to_vec())).expect("runs");
    assert!(output.status.success());
    assert_eq!(output.stdout, b"hello\n");
    assert_eq!(output.stdout_text(), "hello");
}

#[tokio::test]
async fn async_stdin_is_fed() {
    let output = run_async(&Spec::new("cat").stdin_bytes(b"hi".to_vec()))
        .await
        .expect("runs");
    assert_eq!(output.stdout, b"hi");
}

#[test]
fn missing_program_names_it_and_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = Tools::with_path(dir.path());
    let error = run(&Spec::new("helm").lookup(&tools)).expect_err("missing");
    assert_eq!(
        error.to_string(),
        "`helm` is not installed (not found in PATH)"
    );
    let hints = error.hints();
    assert_eq!(hints.len(), 1, "{hints:?}");
    assert!(
        hints[0].contains("install `helm`") && hints[0].contains(&dir.path().display().to_string()),
        "{hints:?}"
    );
    // Without a search path, the child's `PATH` is the one searched.
    let error = run(&Spec::new("devspace-no-such-program").env("PATH", "/nonexistent-dir"))
        .expect_err("missing");
    assert!(matches!(&error, RunError::Missing { path, .. } if path == "/nonexistent-dir"));
    // A program given as a path that does not exist.
    let error = run(&Spec::new("/nonexistent-dir/tool")).expect_err("missing");
    assert_eq!(error.to_string(), "`/nonexistent-dir/tool` does not exist");
}

#[tokio::test]
async fn missing_tool_is_named() {
    let tools = Tools::with_path("/nonexistent-dir");
    let error = tools
        .run("helm", &[], "helm version")
        .await
        .expect_err("missing");
    assert_eq!(
        error.to_string(),
        "`helm` is not installed (not found in PATH)"
    );
}

#[test]
fn nonzero_exit_is_an_error_only_when_checked() {
    let output = run(
        &Spec::shell("echo out; echo line1 >&2; echo 'ERROR: no nodes' >&2; exit 3")
            .shown("kind load"),
    )
    .expect("runs");
    assert_eq!(output.status.code(), Some(3));
    let error = output.checked().expect_err("failed");
    assert!(
        error
            .to_string()
            .starts_with("`kind load` failed (exit status: 3):\nline1\nERROR: no nodes"),
        "{error}"
    );
}

#[tokio::test]
async fn tools_run_fails_on_nonzero_exit_and_hides_what_the_caller_hides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = dir.path().join("tool");
    std::fs::write(&tool, "#!/bin/sh\necho \"bad $1\" >&2\nexit 4\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let error = Tools::with_path(dir.path())
        .run("tool", &["arg".into()], "tool ***")
        .await
        .expect_err("fails");
    assert_eq!(
        error.to_string(),
        "`tool ***` failed (exit status: 4):\nbad arg"
    );
}

#[test]
fn runs_without_timeout_stay_in_the_callers_group() {
    // SAFETY: getpgrp(2) has no preconditions.
    let ours = unsafe { libc::getpgrp() };
    let script = "ps -o pgid= -p $$";
    let foreground = run(&Spec::shell(script)).expect("runs");
    assert_eq!(foreground.stdout_text().parse::<i32>().ok(), Some(ours));
    let own = run(&Spec::shell(script).timeout(Duration::from_secs(30))).expect("runs");
    assert_ne!(own.stdout_text().parse::<i32>().ok(), Some(ours));
}

#[test]
fn command_line_quotes_spaces() {
    assert_eq!(
        command_line("helm", &["upgrade", "my release", ""]),
        "helm upgrade 'my release' ''"
    );
    assert_eq!(
        Spec::new("git").args(["rev-parse", "HEAD"]).command(),
        "git rev-parse HEAD"
    );
    assert_eq!(Spec::shell("echo a b").command(), "echo a b");
}

#[test]
fn find_skips_non_executables_and_empty_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "x").expect("write");
    let tools = Tools::with_path(format!(":{}", dir.path().display()));
    assert_eq!(tools.find("plain"), None);
    assert_eq!(tools.find("absent"), None);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(tools.find("plain"), Some(plain));
}
