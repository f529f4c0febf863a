//! The Dockerfile parser and the override/`FROM` rewriting. Input: the Dockerfile text.
#![no_main]

use devspace::image::dockerfile::{self, Overrides};
use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("Dockerfile");
    let _ = dockerfile::stages(path, text);
    let mut args = IndexMap::new();
    args.insert("BASE".to_owned(), Some("busybox".to_owned()));
    let mut fresh = HashMap::new();
    fresh.insert("busybox".to_owned(), "busybox:fresh".to_owned());
    fresh.insert("john/app".to_owned(), "john/app:t1".to_owned());
    let Ok(rewritten) = dockerfile::rewrite_from(path, text, &args, &fresh) else {
        return;
    };
    let overrides = Overrides {
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        cmd: Some(vec!["echo hi".into()]),
        append_instructions: vec!["ENV A=1".into()],
        target: Some("final".into()),
    };
    let _ = dockerfile::apply_overrides(path, &rewritten, &overrides);
});
