//! `.dockerignore` parsing and matching. Input: the file, then `\0`, then paths (one a line)
//! to match against it, each also through the walk's incremental matcher.
#![no_main]

use devspace::image::context::IgnoreRules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (ignore, paths) = text.split_once('\0').unwrap_or((text, "a/b/c"));
    let Ok(rules) = IgnoreRules::from_dockerignore(ignore) else {
        return;
    };
    for path in paths.lines().take(64) {
        // Both matchers (whole path; parents first, as the walk does) may differ on
        // purpose (Docker's do too): only panics, hangs and memory count here.
        let _ = rules.matches(path);
        let mut parent = None;
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let (_, info) = rules.matches_in_walk(&prefix, parent.as_ref());
            parent = Some(info);
            let _ = rules.can_prune_dir(&prefix);
        }
    }
});
