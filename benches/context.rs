//! Context hashing benchmark (`cargo bench --bench context`, or `scripts/bench-context.sh`).
//!
//! Generates four contexts under `/tmp` (20k files / 1 GiB, 100k small files, four 256 MiB
//! files, one 1 GiB file), then measures in fresh child processes: a cold scan (no stat cache; files in the
//! page cache), a no-change scan (stat cache valid) and streaming the context tar into a
//! sink, each with wall time, CPU time (user + system, all threads) and peak RSS (VmHWM).
//! Baselines, measured in the same run over the same files: `openssl dgst -sha256` on every
//! file (two processes, one per core) for the cold hash; for the no-change scan the previous
//! walker (std `read_dir`, kept in `benches/old_walk.rs`) followed by the same stat-cache
//! merge and context hash, and `find -printf` of the same stat fields (one thread). Medians
//! are written to the "Context hashing" section of `docs/benchmarks.md`; the data is deleted
//! afterwards unless `BENCH_KEEP=1`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // reports measurements

mod old_walk;

use devspace::image::context::{scan_context, statcache, tar};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Runs of each cold measurement (each in a fresh process).
const RUNS: usize = 5;
/// Runs of each no-change measurement (cheap, noisier on a shared machine).
const WARM_RUNS: usize = 9;

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

fn one_size(_: usize) -> usize {
    1 << 30
}

fn quarter_size(_: usize) -> usize {
    256 << 20
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
        Dataset {
            name: "four 256 MiB files",
            dir: base.join("four"),
            dirs: 1,
            files_per_dir: 4,
            size: quarter_size,
        },
        Dataset {
            name: "one 1 GiB file",
            dir: base.join("one"),
            dirs: 1,
            files_per_dir: 1,
            size: one_size,
        },
    ];
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let load_start = format!(
        "{} (both cores {:.0} % idle over the 3 s before)",
        load_average(),
        idle_percent(std::time::Duration::from_secs(3))
    );
    let mut rows = Vec::new();
    for set in datasets
        .iter()
        .filter(|s| only.is_empty() || s.dir.ends_with(&only))
    {
        let (files, bytes) = generate(set);
        eprintln!("{}: {files} files, {bytes} bytes", set.name);
        rows.push(measure(set, files, bytes));
    }
    let load_end = load_average();
    if only.is_empty() {
        write_report(&rows, &load_start, &load_end);
    } else {
        eprintln!("BENCH_ONLY set: report not written");
        for r in &rows {
            eprintln!("{r:#?}");
        }
    }
    if std::env::var("BENCH_KEEP").is_err() {
        let _ = std::fs::remove_dir_all(&base);
        eprintln!("deleted {}", base.display());
    }
}

/// Share of all cores' time spent idle during `span` (from `/proc/stat`).
fn idle_percent(span: std::time::Duration) -> f64 {
    let sample = || -> Vec<u64> {
        std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let before = sample();
    std::thread::sleep(span);
    let after = sample();
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: u64 = delta.iter().take(8).sum();
    100.0 * delta.get(3).copied().unwrap_or(0) as f64 / total.max(1) as f64
}

/// `/proc/loadavg`'s 1-, 5- and 15-minute averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wall seconds, CPU seconds and peak RSS (kB) of one measurement (medians; RSS max).
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
    rss_kb: u64,
}

impl Timing {
    fn of(runs: &[Run]) -> Timing {
        Timing {
            wall: median(runs.iter().map(|r| r.wall)),
            cpu: median(runs.iter().map(|r| r.cpu)),
            rss_kb: runs.iter().map(|r| r.rss_kb).max().unwrap_or(0),
        }
    }
}

#[derive(Debug)]
struct Row {
    name: &'static str,
    files: usize,
    bytes: u64,
    openssl: Timing,
    cold: Timing,
    /// All cold runs' wall times (spread).
    cold_walls: Vec<f64>,
    warm: Timing,
    warm_walls: Vec<f64>,
    warm_hashed: u64,
    old_warm: Timing,
    find: Timing,
    stream: Timing,
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
            let size = (set.size)(d * set.files_per_dir + f);
            // Written in blocks of at most 1 MiB (big files never whole in memory).
            let mut out =
                std::fs::File::create(dir.join(format!("f{f:03}.dat"))).expect("create bench file");
            let mut left = size;
            while left > 0 {
                let block = left.min(1 << 20);
                buf.clear();
                while buf.len() < block {
                    // xorshift: incompressible enough, and fast to produce.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    buf.extend_from_slice(&state.to_le_bytes());
                }
                buf.truncate(block);
                std::io::Write::write_all(&mut out, &buf).expect("write bench file");
                left -= block;
            }
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
    // Everything in the page cache before anything is timed.
    shell(
        &set.dir,
        "find src -type f -print0 | xargs -0 cat > /dev/null",
    );

    // Baseline: openssl over the same files, the files split over two processes (one per
    // core; a single file can only go to one).
    let openssl_script = format!(
        "find src -type f -print0 | xargs -0 -P 2 -n {} openssl dgst -sha256 > /dev/null",
        files.div_ceil(2)
    );
    let openssl: Vec<Run> = (0..RUNS)
        .map(|_| shell(&set.dir, &openssl_script))
        .collect();

    let mut cold = Vec::new();
    for _ in 0..RUNS {
        let _ = std::fs::remove_file(&cache_file);
        cold.push(run_child("scan", set, &cache));
    }
    // Warm-up: the first runs re-hash files newer than the cache stamp (racy rule).
    for _ in 0..2 {
        run_child("scan", set, &cache);
    }
    // Interleaved, so a burst of load elsewhere hits all three alike.
    let (mut warm, mut old_warm, mut find) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..WARM_RUNS {
        warm.push(run_child("scan", set, &cache));
        old_warm.push(run_child("oldscan", set, &cache));
        find.push(shell(
            &set.dir,
            "find . -path ./.devspace -prune -o -printf '%i %s %T@ %C@ %m %y\\n' > /dev/null",
        ));
    }
    let stream: Vec<_> = (0..3).map(|_| run_child("stream", set, &cache)).collect();
    Row {
        name: set.name,
        files,
        bytes,
        openssl: Timing::of(&openssl),
        cold: Timing::of(&cold),
        cold_walls: cold.iter().map(|r| r.wall).collect(),
        warm: Timing::of(&warm),
        warm_walls: warm.iter().map(|r| r.wall).collect(),
        warm_hashed: warm.iter().map(|r| r.hashed).max().unwrap_or(0),
        old_warm: Timing::of(&old_warm),
        find: Timing::of(&find),
        stream: Timing::of(&stream),
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: f64,
    rss_kb: u64,
    /// Files hashed (scan) or bytes sent (stream).
    hashed: u64,
    cpu: f64,
}

/// Runs `script` with `sh -c` in `dir`: wall and CPU time (its whole process tree).
fn shell(dir: &Path, script: &str) -> Run {
    let cpu_before = children_cpu_secs();
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .expect("run sh");
    assert!(status.success(), "{script} failed");
    Run {
        wall: start.elapsed().as_secs_f64(),
        rss_kb: 0,
        hashed: 0,
        cpu: children_cpu_secs() - cpu_before,
    }
}

/// Runs one measurement in a fresh process.
fn run_child(mode: &str, set: &Dataset, cache: &Path) -> Run {
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
    Run {
        wall: next().parse().unwrap(),
        rss_kb: next().parse().unwrap(),
        hashed: next().parse().unwrap(),
        cpu: next().parse().unwrap(),
    }
}

/// The no-change scan as it was before the file-descriptor walker: the previous walk, then
/// the same stat-cache merge and context hash as [`scan_context`].
fn old_scan(dir: &Path, cache: &Path) -> usize {
    use devspace::image::context::{canonical_context, context_rules, hash};
    let root = canonical_context(dir).unwrap();
    let rules = context_rules(&root, Some("Dockerfile")).unwrap();
    let mut entries = old_walk::walk(&root, &rules).unwrap();
    let applied = statcache::apply(&statcache::cache_file(cache, &root), &root, &mut entries)
        .expect("stat cache");
    assert!(applied.todo.is_empty(), "old scan: stat cache not warm");
    std::hint::black_box(hash::context_hash(&entries));
    applied.todo.len()
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
    if mode == "oldscan" {
        let start = Instant::now();
        let hashed = old_scan(dir, cache);
        print_run(start, 0.0, hashed);
        return;
    }
    let start = Instant::now();
    let scan = scan_context(dir, &dir.join("Dockerfile"), cache).expect("scan");
    if mode == "stream" {
        // Time only the streaming; the scan above is warm.
        let start = Instant::now();
        let cpu_before = cpu_secs();
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
        print_run(start, cpu_before, sent as usize);
        return;
    }
    print_run(start, 0.0, scan.stats.hashed_files);
}

/// The child's answer: wall seconds since `start`, peak RSS (kB), a count, CPU seconds
/// since `cpu_before`.
fn print_run(start: Instant, cpu_before: f64, count: usize) {
    println!(
        "{} {} {count} {}",
        start.elapsed().as_secs_f64(),
        vm_hwm_kb(),
        cpu_secs() - cpu_before
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
    rusage_secs(libc::RUSAGE_SELF)
}

/// CPU time of all waited-for descendants (the shell baselines), in seconds.
fn children_cpu_secs() -> f64 {
    rusage_secs(libc::RUSAGE_CHILDREN)
}

/// `getrusage` user + system time (exact run time, not 10 ms ticks).
fn rusage_secs(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid out-pointer for one `rusage`.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
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

fn write_report(rows: &[Row], load_start: &str, load_end: &str) {
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
    let gb = |bytes: u64, s: f64| bytes as f64 / s / 1e9;
    let mb = |kb: u64| kb as f64 / 1024.0;
    let t = |t: &Timing| format!("{:.3} s / {:.3} s", t.wall, t.cpu);
    let spread = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        format!("{min:.3}–{max:.3}")
    };
    let mut md = String::new();
    md.push_str("## Context hashing\n\n");
    md.push_str(&format!(
        "Generated by `scripts/bench-context.sh` (`cargo bench --bench context`). CPU: {model}, \
         {cores} cores, SHA-NI: {}. Load average (1/5/15 min) at the start of the run: \
         {load_start}; at the end: {load_end}. The machine is shared with other jobs (run it \
         when both cores are idle: busy cores inflate wall times); CPU times (user + system, all threads, `getrusage`) are \
         given next to them (\"wall / CPU\"). Every measurement runs in a fresh process; cold \
         numbers are medians of {RUNS} runs, no-change numbers medians of {WARM_RUNS} runs, \
         ours and the baselines interleaved. Files are in the page cache in every case; \
         \"cold\" means no stat cache. Peak RSS is the child's VmHWM (max over runs).\n\n",
        if sha_ni { "yes (used by sha2)" } else { "no" }
    ));
    md.push_str("### Cold hash (no stat cache) vs the baseline\n\n");
    md.push_str("| context | files | bytes | baseline: `openssl dgst -sha256`, 2 processes: wall / CPU | baseline GB/s | ours (scan, 2 cores): wall / CPU | ours GB/s (wall) | ours: all runs' wall | peak RSS |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.2} GB | {} | {:.2} | {} | **{:.2}** | {} s | {:.1} MB |\n",
            r.name,
            r.files,
            r.bytes as f64 / 1e9,
            t(&r.openssl),
            gb(r.bytes, r.openssl.wall),
            t(&r.cold),
            gb(r.bytes, r.cold.wall),
            spread(&r.cold_walls),
            mb(r.cold.rss_kb),
        ));
    }
    md.push_str("\n### No-change scan (stat cache valid) vs the baselines\n\n");
    md.push_str("| context | entries stat'ed | ours: wall / CPU | ours: all runs' wall | files read | peak RSS | previous walker (std `read_dir`) + same merge: wall / CPU | `find -printf` of the same fields (1 thread): wall / CPU | tar stream to a sink: wall / CPU |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | **{}** | {} s | {} | {:.1} MB | {} | {} | {} |\n",
            r.name,
            r.files + dirs_of(r),
            t(&r.warm),
            spread(&r.warm_walls),
            r.warm_hashed,
            mb(r.warm.rss_kb),
            t(&r.old_warm),
            t(&r.find),
            t(&r.stream),
        ));
    }
    md.push_str("\n### Targets (issue 14)\n\n");
    let verdict = |value: f64, target: f64, lower_is_better: bool| {
        let met = if lower_is_better {
            value <= target
        } else {
            value >= target
        };
        if met {
            "**met**".to_owned()
        } else if lower_is_better {
            format!("**missed** by {:.0} %", (value / target - 1.0) * 100.0)
        } else {
            format!("**missed** by {:.0} %", (1.0 - value / target) * 100.0)
        }
    };
    for r in rows {
        let mut parts = Vec::new();
        if r.files >= 10_000 {
            let target = if r.files > 50_000 { 0.1 } else { 0.04 };
            parts.push(format!(
                "no-change scan {:.3} s wall (target ≤ {target} s): {}",
                r.warm.wall,
                verdict(r.warm.wall, target, true)
            ));
        }
        if r.bytes > 500_000_000 {
            parts.push(format!(
                "cold hash {:.2} GB/s wall (target ≥ 2 GB/s): {}",
                gb(r.bytes, r.cold.wall),
                verdict(gb(r.bytes, r.cold.wall), 2.0, false)
            ));
        }
        md.push_str(&format!("- {}: {}.\n", r.name, parts.join("; ")));
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

/// Directories of a generated context (they are stat'ed too): `src`, its subdirectories,
/// plus `Dockerfile`, `.dockerignore` and the `.complete` marker at the root.
fn dirs_of(r: &Row) -> usize {
    1 + r.files.div_ceil(100) + 3
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
