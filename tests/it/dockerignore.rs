//! Differential test of `.dockerignore` handling: Docker itself is the oracle.
//!
//! For each tree + `.dockerignore` below, the docker CLI sends the context to the real daemon
//! (`DOCKER_BUILDKIT=0 docker build -f - DIR`, the classic path that applies `.dockerignore`
//! client-side), a `RUN` step lists what arrived in the image, and that list must equal what
//! our walker includes. Needs the daemon ([`require_services!`]: under `scripts/test.sh` a
//! missing daemon is an error, never a silent skip).

use devspace::image::context::{EntryKind, canonical_context, context_rules, walk::walk};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

struct Case {
    name: &'static str,
    ignore: &'static str,
    /// `path` = file, `path/` = directory, `path -> target` = symlink, `path:755` = mode.
    tree: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "anchored-at-root",
        ignore: "*.log\n",
        tree: &["a.log", "sub/a.log", "sub/deep/b.log", "keep.txt"],
    },
    Case {
        name: "star-then-exception-dir",
        ignore: "*\n!src\n",
        tree: &["README.md", "src/main.rs", "src/sub/a.rs", "other/x"],
    },
    Case {
        name: "exception-inside-excluded-dir",
        ignore: "build\n!build/keep\n",
        tree: &["build/keep/f", "build/x", "build/sub/y", "top"],
    },
    Case {
        name: "double-star",
        ignore: "**/*.tmp\n**/node_modules\n",
        tree: &[
            "a/b/x.tmp",
            "x.tmp",
            "node_modules/a",
            "x/y/node_modules/a",
            "keep.txt",
        ],
    },
    Case {
        name: "dir-star-exception",
        ignore: "dir/*\n!dir/sub\n",
        tree: &["dir/file", "dir/sub/file", "dir/sub/deep/f", "dirx/f"],
    },
    Case {
        name: "wildcard-exception-does-not-unprune",
        ignore: "build\n!*/keep\n",
        tree: &["build/keep", "other/keep", "other/drop"],
    },
    Case {
        name: "parent-only-exception",
        ignore: "a/x\n!a\n",
        tree: &["a/x", "a/y"],
    },
    Case {
        name: "classes-and-escapes",
        ignore: "[^a].txt\n[!x]*.md\na\\*b\n{a,b}.txt\n",
        tree: &[
            "a.txt",
            "b.txt",
            "c.txt",
            "x.md",
            "!x.md",
            "y.md",
            "a*b",
            "axb",
            "{a,b}.txt",
        ],
    },
    Case {
        name: "comments-spaces-cleaning",
        ignore: "# comment\n #notcomment\n  spaced.txt  \n./dot/x\n/abs\nsub/../up\n\n",
        tree: &[
            "# comment",
            "#notcomment",
            "spaced.txt",
            "dot/x",
            "dot/y",
            "abs",
            "up",
            "sub/up",
        ],
    },
    Case {
        name: "trailing-slash-matches-files",
        ignore: "dir/\nother/\n",
        tree: &["dir", "other/f", "others/f"],
    },
    Case {
        name: "symlinks-and-modes",
        ignore: "*.ignored\n",
        tree: &[
            "run.sh:755",
            "data:600",
            "x.ignored",
            "link -> run.sh",
            "dangling -> nowhere/at/all",
            "dirlink -> sub",
            "abs -> /etc/hostname",
            "sub/f:640",
        ],
    },
    Case {
        name: "everything-but-src",
        ignore: "**\n!src/**\n",
        tree: &["src/a", "src/b/c", "other/d", "top"],
    },
    Case {
        name: "ignore-the-ignore-file",
        ignore: ".dockerignore\nsecret\n",
        tree: &["secret", "public"],
    },
    Case {
        name: "double-star-middle-and-suffix",
        ignore: "a/**/b\n**.txt\n",
        tree: &[
            "a/b/c", "a/bb", "a/x/y/b", "a/x/c", "d/e.txt", "f.txt", "d/f.md",
        ],
    },
    Case {
        name: "empty-dirs",
        ignore: "gone\n",
        tree: &["gone/", "kept/", "nested/empty/"],
    },
    Case {
        name: "long-names",
        ignore: "drop*\n",
        tree: &[
            "a-rather-long-directory-name-that-goes-on/and-another-long-directory-name-here/and-a-file-name-that-makes-it-longer-than-one-hundred.txt",
            "link-with-a-long-target -> a-rather-long-directory-name-that-goes-on/and-another-long-directory-name-here/and-a-file-name-that-makes-it-longer-than-one-hundred.txt",
            "drop-me",
        ],
    },
    Case {
        name: "last-match-wins",
        ignore: "*.md\n!README*.md\nREADME-secret.md\n",
        tree: &["CHANGES.md", "README.md", "README-secret.md", "docs/x.md"],
    },
];

fn build_tree(root: &Path, case: &Case) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join(".dockerignore"), case.ignore).unwrap();
    for spec in case.tree {
        if let Some((path, target)) = spec.split_once(" -> ") {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, full).unwrap();
        } else if let Some(dir) = spec.strip_suffix('/') {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        } else {
            let (path, mode) = match spec.rsplit_once(':') {
                Some((p, m)) => (p, u32::from_str_radix(m, 8).unwrap()),
                None => (*spec, 0o644),
            };
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, path).unwrap();
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Lists `/ctx` of the image: `d|./p`, `f|./p|mode`, `l|./p|target`, one per line.
const LISTING_DOCKERFILE: &str = "FROM busybox\nCOPY . /ctx\nRUN cd /ctx && echo '<<<' && find . -mindepth 1 | sort | while read -r p; do if [ -L \"$p\" ]; then echo \"l|$p|$(readlink \"$p\")\"; elif [ -d \"$p\" ]; then echo \"d|$p\"; else echo \"f|$p|$(stat -c %a \"$p\")\"; fi; done && echo '>>>'\n";

/// What the image received when the docker CLI itself sends `dir` (applying `.dockerignore`).
fn docker_list(dir: &Path) -> Result<BTreeSet<String>, String> {
    let mut args = vec!["-f", "-"];
    let dir_arg = dir.to_str().unwrap();
    args.push(dir_arg);
    run_listing_build(&args, dir, LISTING_DOCKERFILE.as_bytes())
}

/// Runs `docker build <args>` (classic builder) with `stdin` piped in and returns the listing.
fn run_listing_build(args: &[&str], dir: &Path, stdin: &[u8]) -> Result<BTreeSet<String>, String> {
    let iid = dir.with_extension(format!("{}.iid", args.len()));
    let mut child = Command::new("docker")
        .args(["build", "--no-cache", "--force-rm", "--iidfile"])
        .arg(&iid)
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut input, &data));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    if let Ok(id) = std::fs::read_to_string(&iid) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", id.trim()])
            .output();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "docker build failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let body = stdout
        .split_once("<<<\n")
        .and_then(|(_, rest)| rest.split_once(">>>"))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("no listing in docker output:\n{stdout}"))?;
    Ok(body.lines().map(str::to_owned).collect())
}

/// What our walker includes, in the same notation (directories that Docker creates
/// implicitly for re-included files count too, as they exist in the image).
fn our_list(dir: &Path, ignore: &str) -> BTreeSet<String> {
    let root = canonical_context(dir).unwrap();
    let rules = context_rules(&root, None).unwrap();
    let entries = walk(&root, &rules).unwrap();
    // `-f -`: the daemon deletes `.dockerignore` from the context when it excludes itself.
    let drop_ignore = devspace::image::context::IgnoreRules::from_dockerignore(ignore)
        .unwrap()
        .matches(".dockerignore");
    let mut out = BTreeSet::new();
    for entry in entries.iter() {
        if drop_ignore && entry.rel == ".dockerignore" {
            continue;
        }
        let mut parent = entry.rel.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            out.insert(format!("d|./{up}"));
            parent = up;
        }
        out.insert(match &entry.kind {
            EntryKind::Dir => format!("d|./{}", entry.rel),
            EntryKind::File => format!("f|./{}|{:o}", entry.rel, entry.mode),
            EntryKind::Symlink(target) => format!("l|./{}|{target}", entry.rel),
        });
    }
    out
}

/// Docker's list and ours, or why Docker could not produce one.
type Outcome = Result<(BTreeSet<String>, BTreeSet<String>), String>;

#[test]
fn walker_agrees_with_docker_on_every_case() {
    require_services!();
    let tmp = tempfile::tempdir().unwrap();
    let results: Vec<(String, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = CASES
            .chunks(CASES.len().div_ceil(4))
            .map(|chunk| {
                let base = tmp.path();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .flat_map(|case| {
                            let dir = base.join(case.name);
                            build_tree(&dir, case);
                            let ours = our_list(&dir, case.ignore);
                            let docker = docker_list(&dir).map(|d| (d, ours.clone()));
                            let via_our_tar = docker_list_from_our_tar(&dir).map(|d| (d, ours));
                            [
                                (case.name.to_owned(), docker),
                                (format!("{} (sent as our tar)", case.name), via_our_tar),
                            ]
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut failures = Vec::new();
    for (name, result) in results {
        match result {
            Ok((docker, ours)) if docker == ours => {}
            Ok((docker, ours)) => failures.push(format!(
                "{name}:\n  only docker: {:?}\n  only ours:   {:?}",
                docker.difference(&ours).collect::<Vec<_>>(),
                ours.difference(&docker).collect::<Vec<_>>()
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "differences with Docker:\n{}",
        failures.join("\n")
    );
}

#[test]
fn walker_lists_the_expected_entries_for_a_known_tree() {
    // Independent of the daemon: pins the answers the differential test agreed on.
    let tmp = tempfile::tempdir().unwrap();
    let case = CASES
        .iter()
        .find(|c| c.name == "wildcard-exception-does-not-unprune")
        .unwrap();
    let dir = tmp.path().join(case.name);
    build_tree(&dir, case);
    let ours = our_list(&dir, case.ignore);
    let want: BTreeSet<String> = [
        "f|./.dockerignore|644",
        "d|./other",
        "f|./other/keep|644",
        "f|./other/drop|644",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(ours, want);
}

/// Sends *our* tar stream (Dockerfile added as an extra entry, the way the build pipeline does
/// for a Dockerfile outside the context) to the daemon and lists what the image received.
fn docker_list_from_our_tar(dir: &Path) -> Result<BTreeSet<String>, String> {
    use devspace::image::context::{
        scan_context, tar::DockerfileEntry, tar::random_dockerfile_name,
    };
    use futures_util::StreamExt;
    let cache = dir.with_extension("cache");
    let scan =
        scan_context(dir, &dir.join("no-such-Dockerfile"), &cache).map_err(|e| e.to_string())?;
    let name = random_dockerfile_name();
    let stream = scan.tar_stream(DockerfileEntry::Extra {
        name: name.clone(),
        content: LISTING_DOCKERFILE.into(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let archive = runtime.block_on(async {
        let mut stream = std::pin::pin!(stream);
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(bytes)
    })?;
    run_listing_build(&["-f", &name, "-"], dir, &archive)
}
