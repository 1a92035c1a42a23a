//! The doctor's report for a person: findings, what `--fix` wrote, and what was checked.

use std::path::Path;

use super::{host_path, Examination, Finding, NmState, Report};

pub(super) fn render_human(root: &Path, state: &Examination, report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "hostguard doctor: examining {}\n\n",
        root.display()
    ));
    out.push_str("systemd-networkd\n");
    if !state.networkd.installed {
        out.push_str("  not installed here (no systemd-networkd binary or unit): not checked\n");
    } else if state.networkd.files.is_empty() {
        out.push_str("  no networkd.conf or drop-ins: systemd's defaults apply\n");
    } else {
        let files: Vec<String> = state
            .networkd
            .files
            .iter()
            .map(|f| host_path(root, f))
            .collect();
        out.push_str(&format!("  read, in order: {}\n", files.join(", ")));
    }
    for masked in &state.networkd.masked {
        out.push_str(&format!("  masked: {}\n", host_path(root, masked)));
    }
    for setting in &state.networkd.settings {
        let source = match &setting.source {
            None => "systemd's default".to_owned(),
            Some((path, line)) => format!("{} line {line}", host_path(root, path)),
        };
        out.push_str(&format!(
            "  {} = {} ({source})\n",
            setting.key,
            if setting.value { "yes" } else { "no" }
        ));
    }
    out.push_str("\nNetworkManager\n");
    match &state.nm {
        NmState::Absent => out.push_str("  not installed under this root (no etc/NetworkManager, usr/lib/NetworkManager or usr/sbin/NetworkManager)\n"),
        NmState::Invalid(_) => out.push_str("  configuration cannot be read (see below)\n"),
        NmState::Config(config) => {
            let files: Vec<String> = config.files.iter().map(|f| host_path(root, f)).collect();
            if files.is_empty() {
                out.push_str("  no configuration files: NetworkManager's defaults apply\n");
            } else {
                out.push_str(&format!("  read, in order: {}\n", files.join(", ")));
            }
            let specs: Vec<&str> = config.unmanaged.iter().map(|u| u.spec.as_str()).collect();
            out.push_str(&format!(
                "  unmanaged-devices = {}\n",
                if specs.is_empty() { "(none)".to_owned() } else { specs.join(";") }
            ));
        }
    }

    if !report.fixed.is_empty() {
        out.push_str("\nFixed\n");
        for f in &report.fixed {
            out.push_str(&format!(
                "  {} {} (to apply: {})\n",
                f.action, f.file, f.reload
            ));
        }
    }

    if report.findings.is_empty() {
        out.push_str("\nNo findings: nothing here fights the CNI.\n");
        return out;
    }
    out.push_str(&format!("\n{} finding(s)\n", report.findings.len()));
    let mut previous: Option<&Finding> = None;
    for finding in &report.findings {
        let same_group = previous
            .is_some_and(|p| p.id == finding.id && p.why == finding.why && p.fix == finding.fix);
        if !same_group {
            out.push_str(&format!("\n[{}] {}\n", finding.severity, finding.id));
        }
        out.push_str(&format!("  {}: {}\n", finding.subject, finding.evidence));
        let next_same = report
            .findings
            .iter()
            .skip_while(|f| !std::ptr::eq(*f, finding))
            .nth(1)
            .is_some_and(|n| n.id == finding.id && n.why == finding.why && n.fix == finding.fix);
        if !next_same {
            out.push_str(&format!("  why: {}\n  fix: {}\n", finding.why, finding.fix));
        }
        previous = Some(finding);
    }
    if report.fixed.is_empty() {
        out.push_str("\nRun `hostguard doctor --fix` to write hostguard's drop-ins.\n");
    }
    out
}
