//! systemd-networkd's effective `ManageForeign*` settings under a root, and the findings they make.
//!
//! # systemd-networkd's order
//! `networkd.conf(5)`: the main file is `etc/systemd/networkd.conf` (systemd ≥ 254 falls back to
//! `run`, `usr/local/lib`, `usr/lib` when it is missing; so do we), then the drop-ins
//! `*/systemd/networkd.conf.d/*.conf` from `etc`, `run`, `usr/local/lib` and `usr/lib`, all sorted
//! together by file name; of two drop-ins with the same name the one in the earlier directory
//! (`etc` before `run` before `usr/…`) is used, and one that is empty or a symlink to `/dev/null`
//! masks the name. Later assignments win; a value that is not a boolean is ignored.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::libc;

use super::{host_path, problem, Finding, NETWORKD_DROPIN};
use crate::keyfile::{self, Dialect};
use crate::rootfs::confine;

/// Where systemd-networkd's binary or unit lives when it is installed (Debian and Ubuntu, Fedora
/// and RHEL, Arch, SUSE; `lib` is `usr/lib` on merged-/usr systems, through a link the root
/// resolves itself).
const NETWORKD_INSTALLED: [&str; 5] = [
    "usr/lib/systemd/systemd-networkd",
    "lib/systemd/systemd-networkd",
    "usr/lib/systemd/system/systemd-networkd.service",
    "lib/systemd/system/systemd-networkd.service",
    "etc/systemd/system/systemd-networkd.service",
];

const NETWORKD_KEYS: [&str; 2] = ["ManageForeignRoutingPolicyRules", "ManageForeignRoutes"];

/// The effective value of one networkd setting and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub value: bool,
    pub raw: String,
    /// The file and line that set it; `None` when systemd's default (yes) applies.
    pub source: Option<(PathBuf, usize)>,
}

pub struct Networkd {
    /// Its binary or unit file exists under the root.
    pub installed: bool,
    /// Files parsed, in order (main file first).
    pub files: Vec<PathBuf>,
    /// Drop-ins masked by an empty file or a `/dev/null` symlink of the same name.
    pub masked: Vec<PathBuf>,
    pub settings: Vec<Setting>,
    problems: Vec<Finding>,
}

impl Networkd {
    pub fn load(root: &Path) -> Networkd {
        let mut problems = Vec::new();
        let bases = ["etc", "run", "usr/local/lib", "usr/lib"];
        let mut masked = Vec::new();
        let main = bases
            .iter()
            .map(|b| root.join(b).join("systemd/networkd.conf"))
            .find(|p| confine(root, p).exists())
            .filter(|p| match fs::metadata(confine(root, p)) {
                // A main file linked to /dev/null (or empty) says nothing.
                Ok(meta) if is_dev_null(&meta) || (meta.is_file() && meta.len() == 0) => {
                    masked.push(p.clone());
                    false
                }
                _ => true,
            });
        let mut chosen: Vec<(String, PathBuf)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for base in bases {
            let dir = root.join(base).join("systemd/networkd.conf.d");
            let Ok(entries) = fs::read_dir(confine(root, &dir)) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
                .filter(|n| n.ends_with(".conf") && !n.starts_with('.'))
                .collect();
            names.sort();
            for name in names {
                if seen.contains(&name) {
                    continue;
                }
                let path = dir.join(&name);
                match fs::metadata(confine(root, &path)) {
                    Err(_) => problems.push(problem(
                        root,
                        &path,
                        "networkd-config-unreadable",
                        "warning",
                        "is a dangling symbolic link; systemd-networkd skips it".into(),
                    )),
                    Ok(meta) if is_dev_null(&meta) || (meta.is_file() && meta.len() == 0) => {
                        seen.push(name);
                        masked.push(path);
                    }
                    Ok(meta) if meta.is_file() => {
                        seen.push(name.clone());
                        chosen.push((name, path));
                    }
                    Ok(meta) => problems.push(problem(
                        root,
                        &path,
                        "networkd-config-unreadable",
                        "warning",
                        format!(
                            "is {}, not a regular file; systemd-networkd skips it",
                            keyfile::describe_type(&meta)
                        ),
                    )),
                }
            }
        }
        chosen.sort_by(|a, b| a.0.cmp(&b.0));

        let mut settings: Vec<Setting> = NETWORKD_KEYS
            .iter()
            .map(|key| Setting {
                key,
                value: true,
                raw: "yes".into(),
                source: None,
            })
            .collect();
        let mut files = Vec::new();
        for path in main.into_iter().chain(chosen.into_iter().map(|(_, p)| p)) {
            let text = match keyfile::read_config_file(&confine(root, &path)) {
                Ok(text) => text,
                Err(err) => {
                    problems.push(Finding {
                        id: "networkd-config-unreadable".into(),
                        severity: "error".into(),
                        subject: host_path(root, &path),
                        evidence: format!("{err:#}"),
                        why: "systemd-networkd cannot use this file either, so the settings it is meant to carry may not be in effect.".into(),
                        fix: format!("Make {} a readable UTF-8 text file or remove it.", host_path(root, &path)),
                    });
                    continue;
                }
            };
            files.push(path.clone());
            let parsed = keyfile::parse(&text, Dialect::Systemd);
            if !parsed.problems.is_empty() {
                let lines: Vec<String> = parsed
                    .problems
                    .iter()
                    .map(|p| format!("line {}: {}", p.line, p.message))
                    .collect();
                problems.push(problem(
                    root,
                    &path,
                    "networkd-config-ignored-lines",
                    "warning",
                    format!("has lines systemd-networkd ignores: {}", lines.join("; ")),
                ));
            }
            for entry in parsed.entries("Network") {
                let Some(setting) = settings.iter_mut().find(|s| s.key == entry.key) else {
                    continue;
                };
                match keyfile::parse_systemd_bool(&entry.value) {
                    Some(value) => {
                        setting.value = value;
                        setting.raw = entry.value.clone();
                        setting.source = Some((path.clone(), entry.line));
                    }
                    None => problems.push(Finding {
                        id: "networkd-invalid-value".into(),
                        severity: "warning".into(),
                        subject: format!("systemd-networkd {}", entry.key),
                        evidence: format!(
                            "{}={:?} in {} line {} is not a boolean; systemd-networkd ignores it and keeps {}",
                            entry.key,
                            entry.value,
                            host_path(root, &path),
                            entry.line,
                            if setting.value { "yes" } else { "no" }
                        ),
                        why: "The operator meant to set this value, but systemd-networkd does not apply it.".into(),
                        fix: format!("Write {}=no (yes/no/true/false/on/off/1/0).", entry.key),
                    }),
                }
            }
        }
        Networkd {
            installed: NETWORKD_INSTALLED
                .iter()
                .any(|p| confine(root, &root.join(p)).exists()),
            files,
            masked,
            settings,
            problems,
        }
    }

    pub(super) fn findings(&self, root: &Path) -> Vec<Finding> {
        let mut findings = self.problems.clone();
        let ours = root.join(NETWORKD_DROPIN);
        for setting in self.settings.iter().filter(|s| s.value) {
            let evidence = match &setting.source {
                None => format!("{}=yes: systemd's default, no file sets it", setting.key),
                Some((path, line)) => {
                    let mut text = format!(
                        "{}={} set by {} line {}",
                        setting.key,
                        setting.raw,
                        host_path(root, path),
                        line
                    );
                    if self.files.contains(&ours) && path != &ours {
                        text.push_str(&format!(
                            ", which is read after hostguard's {} and overrides it",
                            host_path(root, &ours)
                        ));
                    }
                    text
                }
            };
            let (id, why) = match setting.key {
                "ManageForeignRoutingPolicyRules" => (
                    "networkd-manages-foreign-rules",
                    "systemd-networkd deletes every routing policy rule it did not create (unless it is proto kernel) when it starts or reconfigures, so `systemctl restart systemd-networkd` removes the CNI's `ip rule` entries; in incident 2 kube-router lost access to the API service until its pod was restarted.",
                ),
                _ => (
                    "networkd-manages-foreign-routes",
                    "systemd-networkd deletes routes it did not create on the links it manages (and foreign IPv4 multipath, blackhole and unreachable routes) when it starts or reconfigures, taking CNI routes and restored default routes with them (incident 2).",
                ),
            };
            let fix = match &setting.source {
                Some((path, _)) if path != &ours && self.files.contains(&ours) => format!(
                    "Change {} to {}=no in {} or remove that line (hostguard does not edit the operator's files), then `systemctl restart systemd-networkd`.",
                    setting.key, setting.key, host_path(root, path)
                ),
                _ => format!(
                    "Add /{NETWORKD_DROPIN} with `[Network]` `{}=no` (`hostguard doctor --fix` writes it with both settings), then `systemctl restart systemd-networkd`: networkd.conf is read only at startup, `networkctl reload` does not re-read it.",
                    setting.key
                ),
            };
            findings.push(Finding {
                id: id.into(),
                severity: "error".into(),
                subject: format!("systemd-networkd {}", setting.key),
                evidence,
                why: why.into(),
                fix,
            });
        }
        findings
    }
}

fn is_dev_null(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3)
}
