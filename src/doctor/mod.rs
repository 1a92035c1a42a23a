//! `hostguard doctor [--root DIR] [--json] [--fix]`: finds the systemd-networkd and
//! NetworkManager settings that fight a CNI, says why each matters and how to fix it, and with
//! `--fix` writes hostguard's own drop-ins (never the operator's files).
//!
//! Incident 2: `systemctl restart systemd-networkd` deleted kube-router's policy rules because
//! `ManageForeignRoutingPolicyRules` (and `ManageForeignRoutes` for routes) default to yes.
//! Incident 5: NetworkManager managing interfaces a CNI also manages ends with one of them undoing
//! the other. Files in, files out: nothing here talks to a daemon or touches the network.
//!
//! The parts: `args` (the command line), `networkd` (systemd-networkd's effective settings),
//! `network_manager` (which CNI interfaces NetworkManager would manage), `fix` (hostguard's
//! drop-ins) and `render` (the human report); this file runs them and owns the findings.

mod args;
mod fix;
mod network_manager;
mod networkd;
mod render;

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use args::{parse_args, USAGE};
use render::render_human;

pub use fix::fix;
pub use network_manager::NmState;
pub use networkd::Networkd;

/// hostguard's networkd drop-in, relative to the root. "50-" leaves room for the operator's own
/// files on both sides; a later name that sets the keys again wins, and the doctor says so.
const NETWORKD_DROPIN: &str = "etc/systemd/networkd.conf.d/50-hostguard.conf";
/// hostguard's NetworkManager snippet, relative to the root.
const NM_DROPIN: &str = "etc/NetworkManager/conf.d/50-hostguard.conf";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    /// "error": the incident happens on the next restart or reload; "warning": likely trouble.
    pub severity: String,
    pub subject: String,
    pub evidence: String,
    pub why: String,
    pub fix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fixed {
    /// The file written, as a path on the host (`--root` stripped).
    pub file: String,
    /// "written" or "unchanged" (identical content is not rewritten).
    pub action: String,
    /// What has to happen for the running service to pick it up.
    pub reload: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub fixed: Vec<Fixed>,
}

/// Runs the subcommand; returns 0 when nothing is found, 1 when something is (or a fix failed),
/// 2 on a usage error.
pub fn run(args: &[String]) -> i32 {
    let options = match parse_args(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            let _ = std::io::stdout().flush();
            return 0;
        }
        Err(message) => {
            eprintln!("hostguard doctor: {message}\n\n{USAGE}");
            return 2;
        }
    };
    let root = options.root.as_path();
    let mut fixed = Vec::new();
    let mut fix_error = None;
    if options.fix {
        match fix(root) {
            Ok(done) => fixed = done,
            Err(err) => fix_error = Some(err),
        }
    }
    let state = examine(root);
    let report = Report {
        findings: state.findings.clone(),
        fixed,
    };
    let output = if options.json {
        serde_json::to_string_pretty(&report)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .unwrap_or_default()
    } else {
        render_human(root, &state, &report)
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(output.as_bytes());
    let _ = stdout.flush();
    if let Some(err) = &fix_error {
        eprintln!("hostguard doctor: --fix failed: {err:#}");
    }
    if report.findings.is_empty() && fix_error.is_none() {
        0
    } else {
        1
    }
}

/// Everything the doctor learned about one root.
pub struct Examination {
    pub networkd: Networkd,
    pub nm: NmState,
    pub findings: Vec<Finding>,
}

pub fn examine(root: &Path) -> Examination {
    let networkd = Networkd::load(root);
    let nm = NmState::load(root);
    // Settings of a daemon that is not there fight nobody: most nodes have no networkd at all.
    let mut findings = if networkd.installed {
        networkd.findings(root)
    } else {
        Vec::new()
    };
    findings.extend(nm.findings(root));
    Examination {
        networkd,
        nm,
        findings,
    }
}

fn problem(root: &Path, path: &Path, id: &str, severity: &str, what: String) -> Finding {
    Finding {
        id: id.into(),
        severity: severity.into(),
        subject: host_path(root, path),
        evidence: format!("{} {what}", host_path(root, path)),
        why: "What the operator wrote in this file is not (all) in effect.".into(),
        fix: format!("Correct or remove {}.", host_path(root, path)),
    }
}

/// `path` as the host sees it: `--root` stripped, always absolute.
pub fn host_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}
