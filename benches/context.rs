//! Context hashing benchmark (`cargo bench --bench context`, or `scripts/bench-context.sh`).
//!
//! Generates two contexts under `/tmp` (20k files / 1 GiB and 100k small files), then measures
//! in fresh child processes: a cold scan (no stat cache; files in the page cache), a warm
//! no-change scan (stat cache valid) and streaming the context tar into a sink, each with its
//! peak RSS (VmHWM). The baseline, measured in the same run over the same bytes, is
//! `openssl dgst -sha256` on every file. Medians of several runs are written to the
//! "Context hashing" section of `docs/benchmarks.md`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // reports measurements

use devspace::image::context::{scan_context, statcache, tar};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 5;

struct Dataset {
    name: &'static str,
    dir: PathBuf,
    dirs: usize,
    files_per_dir: usize,
    /// Size of file `i` (deterministic).
    size: fn(usize) -> usize,
}

fn big_size(i: usize) -> usize {
    // 1 KiB .. ~104 KiB, averaging ~53.7 KB: 20,000 files ≈ 1 GiB.
    1024 + (i.wrapping_mul(2_654_435_761) % 104_358)
}

fn small_size(i: usize) -> usize {
    i.wrapping_mul(40_503) % 2048
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs bench targets without `--bench`: the benchmark (1 GiB of
    // generated data, minutes of work, a rewritten report) only runs under `cargo bench`.
    if !args.iter().any(|a| a == "--bench" || a == "--child") {
        eprintln!(
            "context benchmark: run it with `cargo bench --bench context` (skipped under cargo test)"
        );
        return;
    }
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        child(
            &args[pos + 1],
            Path::new(&args[pos + 2]),
            Path::new(&args[pos + 3]),
        );
        return;
    }
    let base = PathBuf::from(
        std::env::var("BENCH_CONTEXT_DIR").unwrap_or_else(|_| "/tmp/devspace-bench-context".into()),
    );
    let datasets = [
        Dataset {
            name: "1 GiB / 20k files",
            dir: base.join("big"),
            dirs: 200,
            files_per_dir: 100,
            size: big_size,
        },
        Dataset {
            name: "100k small files",
            dir: base.join("small"),
            dirs: 1000,
            files_per_dir: 100,
            size: small_size,
        },
    ];
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for set in datasets
        .iter()
        .filter(|s| only.is_empty() || s.dir.ends_with(&only))
    {
        let (files, bytes) = generate(set);
        eprintln!("{}: {files} files, {bytes} bytes", set.name);
        rows.push(measure(set, files, bytes));
    }
    write_report(&rows);
}

struct Row {
    name: &'static str,
    files: usize,
    bytes: u64,
    openssl_s: f64,
    openssl_cpu_s: f64,
    cold_s: f64,
    cold_rss_kb: u64,
    warm_s: f64,
    warm_rss_kb: u64,
    warm_hashed: u64,
    warm_cpu_s: f64,
    cold_cpu_s: f64,
    stream_s: f64,
    stream_rss_kb: u64,
}

/// Writes the dataset once (a marker file records that it is complete).
fn generate(set: &Dataset) -> (usize, u64) {
    let marker = set.dir.join(".complete");
    let files = set.dirs * set.files_per_dir;
    let bytes: u64 = (0..files).map(|i| (set.size)(i) as u64).sum();
    if marker.exists() {
        return (files, bytes);
    }
    let _ = std::fs::remove_dir_all(&set.dir);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = Vec::new();
    for d in 0..set.dirs {
        let dir = set.dir.join(format!("src/d{d:04}"));
        std::fs::create_dir_all(&dir).expect("create bench dir");
        for f in 0..set.files_per_dir {
            let i = d * set.files_per_dir + f;
            buf.clear();
            while buf.len() < (set.size)(i) {
                // xorshift: incompressible enough, and fast to produce.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                buf.extend_from_slice(&state.to_le_bytes());
            }
            buf.truncate((set.size)(i));
            std::fs::write(dir.join(format!("f{f:03}.dat")), &buf).expect("write bench file");
        }
    }
    std::fs::write(set.dir.join("Dockerfile"), "FROM busybox\nCOPY . /app\n").unwrap();
    std::fs::write(set.dir.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(&marker, "").unwrap();
    (files, bytes)
}

fn measure(set: &Dataset, files: usize, bytes: u64) -> Row {
    let cache = set.dir.join(".devspace");
    let root = std::fs::canonicalize(&set.dir).unwrap();
    let cache_file = statcache::cache_file(&cache, &root);

    // Baseline: openssl over the same files, single process.
    let mut openssl_cpu = Vec::new();
    let openssl = median((0..RUNS).map(|_| {
        let cpu_before = children_cpu_secs();
        let start = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg("find src -type f -print0 | xargs -0 openssl dgst -sha256 > /dev/null")
            .current_dir(&set.dir)
            .status()
            .expect("run openssl");
        assert!(status.success());
        let wall = start.elapsed().as_secs_f64();
        openssl_cpu.push(children_cpu_secs() - cpu_before);
        wall
    }));
    let openssl_cpu = median(openssl_cpu.into_iter());

    let mut cold = Vec::new();
    for _ in 0..RUNS {
        let _ = std::fs::remove_file(&cache_file);
        cold.push(run_child("scan", set, &cache));
    }
    // Warm-up: the first runs re-hash files newer than the cache stamp (racy rule).
    for _ in 0..2 {
        run_child("scan", set, &cache);
    }
    let warm: Vec<_> = (0..RUNS).map(|_| run_child("scan", set, &cache)).collect();
    let stream: Vec<_> = (0..3).map(|_| run_child("stream", set, &cache)).collect();
    Row {
        name: set.name,
        files,
        bytes,
        openssl_s: openssl,
        openssl_cpu_s: openssl_cpu,
        cold_s: median(cold.iter().map(|r| r.0)),
        cold_rss_kb: cold.iter().map(|r| r.1).max().unwrap_or(0),
        warm_s: median(warm.iter().map(|r| r.0)),
        warm_rss_kb: warm.iter().map(|r| r.1).max().unwrap_or(0),
        warm_hashed: warm.iter().map(|r| r.2).max().unwrap_or(0),
        warm_cpu_s: median(warm.iter().map(|r| r.3)),
        cold_cpu_s: median(cold.iter().map(|r| r.3)),
        stream_s: median(stream.iter().map(|r| r.0)),
        stream_rss_kb: stream.iter().map(|r| r.1).max().unwrap_or(0),
    }
}

/// Runs one measurement in a fresh process: (seconds, VmHWM kB, files hashed, CPU seconds).
fn run_child(mode: &str, set: &Dataset, cache: &Path) -> (f64, u64, u64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", mode])
        .arg(&set.dir)
        .arg(cache)
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let mut next = || parts.next().expect("child output").to_owned();
    let secs: f64 = next().parse().unwrap();
    let rss: u64 = next().parse().unwrap();
    let hashed: u64 = next().parse().unwrap();
    let cpu: f64 = next().parse().unwrap();
    (secs, rss, hashed, cpu)
}

fn child(mode: &str, dir: &Path, cache: &Path) {
    if mode == "phases" {
        phases(dir, cache);
        return;
    }
    if mode == "file" {
        // Hash one file the way the scan does (for profiling).
        let start = Instant::now();
        let (digest, n) =
            devspace::image::context::hash::hash_file(dir, &mut vec![0; 256 * 1024]).unwrap();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{digest} {n} bytes {:.2} GB/s cpu {}",
            n as f64 / secs / 1e9,
            cpu_secs()
        );
        return;
    }
    let start = Instant::now();
    let scan = scan_context(dir, &dir.join("Dockerfile"), cache).expect("scan");
    let mut hashed = scan.stats.hashed_files;
    if mode == "stream" {
        // Time only the streaming; the scan above is warm.
        let start = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let sent = runtime.block_on(async {
            let stream = tar::context_tar_stream(
                scan.root.clone(),
                scan.entries.clone(),
                Default::default(),
            );
            let mut stream = std::pin::pin!(stream);
            let mut sent = 0u64;
            while let Some(chunk) = stream.next().await {
                sent += chunk.expect("stream").len() as u64;
            }
            sent
        });
        hashed = sent as usize;
        println!(
            "{} {} {} {}",
            start.elapsed().as_secs_f64(),
            vm_hwm_kb(),
            hashed,
            cpu_secs()
        );
        return;
    }
    println!(
        "{} {} {} {}",
        start.elapsed().as_secs_f64(),
        vm_hwm_kb(),
        hashed,
        cpu_secs()
    );
}

/// Prints where a no-change scan spends its time (for tuning; not part of the report).
fn phases(dir: &Path, cache: &Path) {
    use devspace::image::context::{canonical_context, context_rules, hash, walk};
    let t = Instant::now();
    let root = canonical_context(dir).unwrap();
    let rules = context_rules(&root, Some("Dockerfile")).unwrap();
    let t_rules = t.elapsed();
    let mut entries = walk::walk(&root, &rules).unwrap();
    let t_walk = t.elapsed();
    let t_load = t.elapsed();
    let todo = statcache::apply(&statcache::cache_file(cache, &root), &root, &mut entries)
        .unwrap()
        .todo;
    let t_apply = t.elapsed();
    let digest = hash::context_hash(&entries);
    let t_hash = t.elapsed();
    eprintln!(
        "rules {t_rules:?} walk {:?} load {:?} apply {:?} hash {:?} (todo {}, {digest}) cpu {} rss {}",
        t_walk - t_rules,
        t_load - t_walk,
        t_apply - t_load,
        t_hash - t_apply,
        todo.len(),
        cpu_secs(),
        vm_hwm_kb()
    );
}

/// CPU time (user + system, all threads) of this process so far, in seconds.
fn cpu_secs() -> f64 {
    proc_stat_ticks(11) / 100.0
}

/// CPU time of all waited-for descendants (the openssl baseline), in seconds.
fn children_cpu_secs() -> f64 {
    proc_stat_ticks(13) / 100.0
}

/// Sum of two consecutive tick fields of `/proc/self/stat`, counted after the command name
/// (index 11 = utime + stime, 13 = cutime + cstime).
fn proc_stat_ticks(first: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ticks(first) + ticks(first + 1)
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn write_report(rows: &[Row]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let sha_ni = cpu.split_whitespace().any(|w| w == "sha_ni");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_owned();
    let gb = |bytes: u64, s: f64| bytes as f64 / s / 1e9;
    let mb = |kb: u64| kb as f64 / 1024.0;
    let mut md = String::new();
    md.push_str("## Context hashing\n\n");
    md.push_str(&format!(
        "Generated by `scripts/bench-context.sh` (`cargo bench --bench context`). CPU: {model}, \
         {cores} cores, SHA-NI: {}. 1-minute load average at the end of the run: {load} — the \
         machine is shared with other jobs, so wall times are inflated; CPU times (user + \
         system, all threads) are given next to them. Medians of {RUNS} runs, each in a fresh \
         process. Files are in the page cache in every case; \"cold\" means no stat cache. \
         Peak RSS is the child's VmHWM (max over runs).\n\n",
        if sha_ni { "yes (used by sha2)" } else { "no" }
    ));
    md.push_str("### Cold hash (no stat cache) vs the baseline\n\n");
    md.push_str("| context | files | bytes | `openssl dgst -sha256` (1 process): wall / CPU | throughput wall / per CPU-s | ours (2 threads): wall / CPU | throughput wall / per CPU-s | our peak RSS |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.2} GB | {:.3} s / {:.2} s | {:.2} / {:.2} GB/s | {:.3} s / {:.2} s | {:.2} / {:.2} GB/s | {:.1} MB |\n",
            r.name,
            r.files,
            r.bytes as f64 / 1e9,
            r.openssl_s,
            r.openssl_cpu_s,
            gb(r.bytes, r.openssl_s),
            gb(r.bytes, r.openssl_cpu_s),
            r.cold_s,
            r.cold_cpu_s,
            gb(r.bytes, r.cold_s),
            gb(r.bytes, r.cold_cpu_s),
            mb(r.cold_rss_kb),
        ));
    }
    md.push_str("\n### No-change scan (stat cache valid) and streaming the tar\n\n");
    md.push_str("| context | no-change scan: wall / CPU | files read | peak RSS | tar stream to a sink: wall | peak RSS |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {:.3} s / {:.2} s | {} | {:.1} MB | {:.3} s | {:.1} MB |\n",
            r.name,
            r.warm_s,
            r.warm_cpu_s,
            r.warm_hashed,
            mb(r.warm_rss_kb),
            r.stream_s,
            mb(r.stream_rss_kb),
        ));
    }
    md.push_str("\n### Targets\n\n");
    for r in rows {
        let target = if r.files > 50_000 { 0.25 } else { 0.07 };
        let rss = r.cold_rss_kb.max(r.warm_rss_kb).max(r.stream_rss_kb);
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        md.push_str(&format!(
            "- {}: no-change {:.3} s wall (target {target} s) — {}; peak RSS {:.1} MB (target 40 MB) — {}",
            r.name,
            r.warm_s,
            verdict(r.warm_s <= target),
            mb(rss),
            verdict(rss <= 40 * 1024),
        ));
        if r.files <= 50_000 {
            md.push_str(&format!(
                "; cold {:.2} GB/s wall (target 2 GB/s) — {}",
                gb(r.bytes, r.cold_s),
                verdict(gb(r.bytes, r.cold_s) >= 2.0)
            ));
        }
        md.push_str(".\n");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let notes = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/context-notes.md"),
    )
    .unwrap_or_default();
    md.push_str(&notes);
    let updated = replace_section(&existing, "## Context hashing", &md);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, updated).unwrap();
    print!("{md}");
}

/// Replaces the section starting with `heading` (up to the next `## `) or appends it.
fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    match doc.find(heading) {
        Some(start) => {
            let after = &doc[start + heading.len()..];
            let end = after
                .find("\n## ")
                .map(|i| start + heading.len() + i + 1)
                .unwrap_or(doc.len());
            format!("{}{}{}", &doc[..start], section, &doc[end..])
        }
        None => format!("{}\n{}", doc.trim_end(), "\n".to_owned() + section),
    }
}
