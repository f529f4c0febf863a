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

/// Renders the summary table: image, tags, result and reason, duration, digest.
pub fn render(report: &BuildReport) -> String {
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
        rows.push([
            img.key.clone(),
            tags,
            result,
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
    let skipped = report
        .images
        .iter()
        .filter(|i| matches!(i.status, Status::Skipped))
        .count();
    let mut tail = format!(
        "{} built, {} skipped, {} failed in {}",
        built,
        skipped,
        failed,
        fmt_duration(report.duration_ms)
    );
    if report.interrupted {
        tail.push_str(" (interrupted)");
    }
    out.push_str(&tail);
    out.push('\n');
    out
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
        insta::assert_snapshot!(render(&report));
    }
}
