//! Probe results for people (a table), scripts (JSON) and monitoring (one Nagios line).

use std::fmt::Write;

use serde_json::json;

use super::{ProbeReport, Status};

/// Aligned table: status, probe, latency, summary; the steps of any probe that is not OK.
pub fn table(reports: &[ProbeReport]) -> String {
    let width = reports
        .iter()
        .map(|r| r.probe.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<8}  {:<width$}  {:>8}  SUMMARY\n",
        "STATUS", "PROBE", "TIME"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<8}  {:<width$}  {:>8}  {}",
            r.status.label(),
            r.probe,
            millis(r),
            r.summary
        );
    }
    for r in reports.iter().filter(|r| r.status != Status::Ok) {
        let _ = writeln!(out, "\n{} {}:", r.status.label(), r.probe);
        for s in &r.steps {
            let _ = writeln!(out, "  {:<9} {:<8} {}", s.name, s.status.label(), s.detail);
        }
    }
    let worst = Status::worst(reports.iter().map(|r| r.status));
    let _ = writeln!(out, "\n{}: {}", worst.label(), tally(reports));
    out
}

/// One JSON object: the overall status and exit code, and one object per probe.
pub fn json(reports: &[ProbeReport]) -> String {
    let worst = Status::worst(reports.iter().map(|r| r.status));
    let value = json!({
        "status": worst,
        "exit_code": worst.exit_code(),
        "probes": reports,
    });
    format!("{value}\n")
}

/// `POSTA CRITICAL - 1 critical, 2 ok: <first problem> | 'label'=0.012s;;;0 ...`
pub fn nagios(reports: &[ProbeReport]) -> String {
    let worst = Status::worst(reports.iter().map(|r| r.status));
    let mut line = format!("POSTA {} - {}", worst.label(), tally(reports));
    let problems: Vec<String> = reports
        .iter()
        .filter(|r| r.status != Status::Ok)
        .map(|r| format!("{}: {}", r.probe, r.summary))
        .collect();
    if !problems.is_empty() {
        let _ = write!(line, ": {}", problems.join("; "));
    }
    // The status text and perfdata are separated by `|`; keep it out of the text part.
    let mut line = line.replace('|', "/").replace('\n', " ");
    line.push_str(" |");
    for r in reports {
        let _ = write!(
            line,
            " '{}'={:.6}s;;;0",
            perf_label(&r.probe),
            r.latency.as_secs_f64()
        );
    }
    line.push('\n');
    line
}

/// "1 critical, 2 ok", worst first.
fn tally(reports: &[ProbeReport]) -> String {
    let order = [
        Status::Critical,
        Status::Unknown,
        Status::Warning,
        Status::Ok,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            let n = reports.iter().filter(|r| r.status == *s).count();
            (n > 0).then(|| format!("{n} {}", s.label().to_lowercase()))
        })
        .collect();
    if parts.is_empty() {
        "no probes".into()
    } else {
        parts.join(", ")
    }
}

/// Perfdata labels may not contain `'` or `=` (Nagios plugin guidelines).
fn perf_label(probe: &str) -> String {
    probe.replace(['\'', '='], "_")
}

fn millis(r: &ProbeReport) -> String {
    format!("{} ms", r.latency.as_millis())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::health::Step;

    fn report(probe: &str, status: Status, summary: &str) -> ProbeReport {
        ProbeReport {
            probe: probe.into(),
            protocol: "smtp",
            status,
            latency: Duration::from_millis(12),
            summary: summary.into(),
            steps: vec![Step {
                name: "greeting",
                status,
                detail: summary.into(),
            }],
            tls: None,
            capabilities: vec!["PIPELINING".into()],
        }
    }

    #[test]
    fn nagios_line_has_worst_status_and_perfdata() {
        let line = nagios(&[
            report("smtp://a:25", Status::Ok, "fine"),
            report("imap://a:143", Status::Critical, "connection refused | x"),
        ]);
        assert!(
            line.starts_with(
                "POSTA CRITICAL - 1 critical, 1 ok: imap://a:143: connection refused / x |"
            ),
            "{line}"
        );
        assert!(line.contains(" 'smtp://a:25'=0.012000s;;;0"), "{line}");
        assert_eq!(line.matches('|').count(), 1);
    }

    #[test]
    fn json_has_overall_status_and_every_probe() {
        let text = json(&[report("pop3://a", Status::Warning, "STLS not offered")]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "warning");
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["probes"][0]["status"], "warning");
        assert_eq!(v["probes"][0]["latency"], 0.012);
        assert_eq!(v["probes"][0]["steps"][0]["name"], "greeting");
    }

    #[test]
    fn table_lists_steps_of_failed_probes_only() {
        let text = table(&[
            report("smtp://a", Status::Ok, "all good"),
            report("imap://a", Status::Critical, "timed out"),
        ]);
        assert!(text.contains("CRITICAL imap://a:"), "{text}");
        assert!(!text.contains("OK smtp://a:"), "{text}");
        assert!(
            text.trim_end().ends_with("CRITICAL: 1 critical, 1 ok"),
            "{text}"
        );
    }
}
