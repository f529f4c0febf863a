//! The config loader with profiles and vars. Input: line 1 = comma-separated profiles (`-p`),
//! line 2 = `--var` values, the rest = devspace.yaml. Errors are fine; panics, hangs and
//! unbounded memory are not. Vars that would run a command are refused (`no_commands`).
#![no_main]

use devspace::config::{LoadOptions, load_source};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let profiles = lines.next().unwrap_or_default();
    let vars = lines.next().unwrap_or_default();
    let src = lines.next().unwrap_or_default();
    let opts = LoadOptions {
        cwd: PathBuf::from("/nonexistent-fuzz"),
        profiles: profiles
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        vars: if vars.is_empty() {
            Vec::new()
        } else {
            vec![vars.to_owned()]
        },
        no_commands: true,
        ..LoadOptions::default()
    };
    let env = |_: &str| None;
    let _ = load_source(
        &opts,
        PathBuf::from("/nonexistent-fuzz/devspace.yaml"),
        src,
        &env,
        None,
    );
});
