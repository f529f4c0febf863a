//! The summary table that ends every run, and the JSON report (pure renderers).

use crate::pipeline::events::{BuildReport, Status};

fn fmt_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}", &hex[..12]),
        _ => d.to_string(),
    }
}

/// The width summary rows must fit: `COLUMNS`, else 120 (the full text of long reasons is in
/// the log and the JSON report).
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(120)
}

/// `text` cut to `width` characters, ending with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Renders the summary table: image, tags, result and reason, duration, digest.
pub fn render(report: &BuildReport) -> String {
    render_width(report, terminal_width())
}

/// [`render`] with rows of at most `width` characters (the RESULT column gives way).
pub fn render_width(report: &BuildReport, width: usize) -> String {
    let header = ["IMAGE", "TAGS", "RESULT", "TIME", "DIGEST"];
    let mut rows: Vec<[String; 5]> = Vec::new();
    for img in &report.images {
        let tags = if img.tags.is_empty() {
            "-".to_string()
        } else {
            format!("{}:{}", img.image, img.tags.join(","))
        };
        let result = match img.status {
            Status::Skipped | Status::Disabled => img.reason.clone(),
            s => {
                if img.reason.is_empty() {
                    s.label().to_string()
                } else {
                    format!("{} ({})", s.label(), img.reason)
                }
            }
        };
        let escape = |s: &str| crate::diagnostic::escape(s).into_owned();
        rows.push([
            escape(&img.key),
            escape(&tags),
            escape(&result),
            fmt_duration(img.duration_ms),
            img.digest
                .as_deref()
                .map(short_digest)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = header.map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    if total > width {
        let others = total - widths[2];
        let result = width.saturating_sub(others).max(40);
        if result < widths[2] {
            widths[2] = result;
            for r in &mut rows {
                r[2] = fit(&r[2], result);
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    out.push_str(&line(&header.map(String::from)));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    let failed = report
        .images
        .iter()
        .filter(|i| i.status.is_failure())
        .count();
    let built = report
        .images
        .iter()
        .filter(|i| matches!(i.status, Status::Built))
        .count();
    let count = |status: Status| report.images.iter().filter(|i| i.status == status).count();
    let skipped = count(Status::Skipped);
    // Push-only and dry runs say what they did, not "0 built, 0 skipped".
    let mut counts = vec![format!("{built} built")];
    for (status, word) in [
        (Status::Pushed, "pushed"),
        (Status::Retagged, "retagged"),
        (Status::WouldBuild, "would build"),
        (Status::WouldPush, "would push"),
        (Status::WouldRetag, "would retag"),
    ] {
        let n = count(status);
        if n > 0 {
            counts.push(format!("{n} {word}"));
        }
    }
    counts.push(format!("{skipped} skipped"));
    counts.push(format!("{failed} failed"));
    let mut tail = format!(
        "{} in {}",
        counts.join(", "),
        fmt_duration(report.duration_ms)
    );
    if report.interrupted {
        tail.push_str(" (interrupted)");
    }
    out.push_str(&tail);
    out.push('\n');
    out
}

fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The `build --dry-run` table: per image the decision and its reason, the tags it would use,
/// the builder and the context size.
pub fn render_dry_run(report: &BuildReport) -> String {
    let header = ["IMAGE", "DECISION", "TAGS", "BUILDER", "CONTEXT"].map(String::from);
    let rows: Vec<[String; 5]> = report
        .images
        .iter()
        .map(|img| {
            let tags = if img.tags.is_empty() {
                "-".to_string()
            } else {
                format!("{}:{}", img.image, img.tags.join(","))
            };
            let context = match (img.context_files, img.context_bytes) {
                (Some(f), Some(b)) => format!("{f} files, {}", fmt_bytes(b)),
                _ => "-".into(),
            };
            let reason = if img.status.is_failure() {
                format!("{}: {}", img.status.label(), img.reason)
            } else {
                img.reason.clone()
            };
            [img.key.clone(), reason, tags, img.builder.clone(), context]
        })
        .collect();
    table(&header, &rows)
}

fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; N]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Prints the summary (text) or the JSON report (`json`) on stdout, or on stderr with
/// `to_stderr` (for commands whose stdout carries something else).
pub fn print_report(
    report: &BuildReport,
    json: bool,
    dry_run: bool,
    silent: bool,
    to_stderr: bool,
) {
    let text = if json {
        render_json(report) + "\n"
    } else if silent {
        return;
    } else if dry_run {
        render_dry_run(report)
    } else {
        render(report)
    };
    if to_stderr {
        super::write_stderr(&text);
    } else {
        super::write_stdout(&text);
    }
}

/// The JSON report printed with `--output json`.
pub fn render_json(report: &BuildReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::events::ImageReport;

    fn img(key: &str, status: Status, reason: &str) -> ImageReport {
        ImageReport {
            key: key.into(),
            image: format!("127.0.0.1:5000/demo/{key}"),
            tags: vec!["dev".into()],
            builder: "docker".into(),
            status,
            reason: reason.into(),
            decision: None,
            digest: None,
            pushed: false,
            duration_ms: 1234,
            error: None,
            log_file: None,
            context_files: None,
            context_bytes: None,
        }
    }

    #[test]
    fn summary_table() {
        let mut api = img(
            "api",
            Status::Built,
            "rebuild: 2 files changed: main.sh, lib.sh",
        );
        api.digest = Some(format!("sha256:{}", "ab".repeat(32)));
        api.pushed = true;
        let report = BuildReport {
            images: vec![
                api,
                img("worker", Status::Skipped, "skip (no change)"),
                img("web", Status::Failed, "RUN exit code 1"),
            ],
            duration_ms: 2500,
            success: false,
            interrupted: false,
        };
        insta::assert_snapshot!(render_width(&report, 120));
    }

    #[test]
    fn long_reasons_fit_the_width() {
        let long = "cannot reach the Docker daemon at tcp://127.0.0.1:1: error trying to connect: tcp connect error: Connection refused (os error 111); the kaniko fallback failed too";
        let report = BuildReport {
            images: vec![
                img("api", Status::Failed, long),
                img("web", Status::Built, "x"),
            ],
            duration_ms: 10,
            success: false,
            interrupted: false,
        };
        let text = render_width(&report, 100);
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
        assert!(
            text.contains("FAILED (cannot reach the Docker daemon"),
            "{text}"
        );
        assert!(text.contains('…'), "{text}");
    }

    #[test]
    fn push_only_runs_are_counted_and_keys_are_escaped() {
        let report = BuildReport {
            images: vec![
                img("api", Status::Pushed, "tag missing in the registry"),
                img("we\x1b[31mb\nx", Status::Skipped, "skip (no change)"),
            ],
            duration_ms: 2500,
            success: true,
            interrupted: false,
        };
        let text = render(&report);
        assert!(
            text.ends_with("0 built, 1 pushed, 1 skipped, 0 failed in 2.5s\n"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("we\\e[31mb\\nx"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
    }
}
