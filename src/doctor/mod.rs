//! `hostguard doctor [--root DIR] [--json] [--fix]`: finds the systemd-networkd and
//! NetworkManager settings that fight a CNI, says why each matters and how to fix it, and with
//! `--fix` writes hostguard's own drop-ins (never the operator's files).
//!
//! Incident 2: `systemctl restart systemd-networkd` deleted kube-router's policy rules because
//! `ManageForeignRoutingPolicyRules` (and `ManageForeignRoutes` for routes) default to yes.
//! Incident 5: NetworkManager managing interfaces a CNI also manages ends with one of them undoing
//! the other. Files in, files out: nothing here talks to a daemon or touches the network.
//!
//! # systemd-networkd's order
//! `networkd.conf(5)`: the main file is `etc/systemd/networkd.conf` (systemd ≥ 254 falls back to
//! `run`, `usr/local/lib`, `usr/lib` when it is missing; so do we), then the drop-ins
//! `*/systemd/networkd.conf.d/*.conf` from `etc`, `run`, `usr/local/lib` and `usr/lib`, all sorted
//! together by file name; of two drop-ins with the same name the one in the earlier directory
//! (`etc` before `run` before `usr/…`) is used, and one that is empty or a symlink to `/dev/null`
//! masks the name. Later assignments win; a value that is not a boolean is ignored.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::libc;
use serde::Serialize;

use crate::host::nm::{self, ConfigDecision, DeviceMatch, NmConfig, NmPaths};
use crate::keyfile::{self, Dialect};
use crate::rootfs::confine;

const USAGE: &str = "\
usage: hostguard doctor [--root DIR] [--json] [--fix]

Finds the systemd-networkd and NetworkManager settings that fight a CNI (networkd deleting a CNI's
policy rules and routes on restart, NetworkManager managing a CNI's interfaces), says why each
matters and how to fix it. Files only: no daemon is asked and the network is not touched.

  --root DIR  look at DIR as the host's / (a mounted node image, or the host's / in a container)
  --json      print the findings as JSON
  --fix       write hostguard's own drop-ins (never the operator's files), then check again

Exit status: 0 nothing found, 1 something found or --fix failed, 2 usage.
";

/// hostguard's networkd drop-in, relative to the root. "50-" leaves room for the operator's own
/// files on both sides; a later name that sets the keys again wins, and the doctor says so.
pub const NETWORKD_DROPIN: &str = "etc/systemd/networkd.conf.d/50-hostguard.conf";
/// hostguard's NetworkManager snippet, relative to the root.
pub const NM_DROPIN: &str = "etc/NetworkManager/conf.d/50-hostguard.conf";

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

/// Interface names CNIs create on the host, with what creates them and the NetworkManager device
/// type they usually have (used for `type:` specs when a name alone cannot tell).
pub const CNI_PATTERNS: &[(&str, &str, Option<&str>)] = &[
    ("cali*", "Calico workload veths", Some("veth")),
    ("tunl*", "Calico IP-in-IP tunnel", Some("ip-tunnel")),
    (
        "vxlan*",
        "Calico and other VXLAN overlays (vxlan.calico)",
        Some("vxlan"),
    ),
    ("wireguard.cali", "Calico WireGuard", Some("wireguard")),
    ("wg-v6.cali", "Calico WireGuard (IPv6)", Some("wireguard")),
    ("flannel*", "Flannel (flannel.1, flannel-wg)", Some("vxlan")),
    ("cni0", "bridge plugin and Flannel bridge", Some("bridge")),
    ("cbr0", "kubenet bridge", Some("bridge")),
    ("veth*", "pod veths of bridge-based CNIs", Some("veth")),
    ("lxc*", "Cilium endpoint veths", Some("veth")),
    (
        "cilium_*",
        "Cilium (cilium_host, cilium_net, cilium_vxlan)",
        None,
    ),
    ("antrea-*", "Antrea (antrea-gw0, antrea-tun0)", None),
    ("ovn-*", "OVN-Kubernetes (ovn-k8s-mp0)", None),
    ("ovn0", "Kube-OVN", None),
    ("genev_sys_*", "OVN Geneve tunnels", None),
    ("br-int", "OVN integration bridge", None),
    ("weave", "Weave Net bridge", Some("bridge")),
    ("kube-bridge", "kube-router bridge", Some("bridge")),
    (
        "kube-dummy-if",
        "kube-router service addresses",
        Some("dummy"),
    ),
    ("kube-ipvs0", "kube-proxy IPVS mode", Some("dummy")),
    ("nodelocaldns", "NodeLocal DNSCache", Some("dummy")),
];

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

struct Options {
    root: PathBuf,
    json: bool,
    fix: bool,
}

fn parse_args(args: &[String]) -> std::result::Result<Option<Options>, String> {
    use crate::args::{Opt, Parsed, Spec};
    const SPEC: Spec = Spec {
        options: &[
            Opt::value("--root"),
            Opt::switch("--json"),
            Opt::switch("--fix"),
        ],
        from_env: false,
    };
    let given = match crate::args::parse(&SPEC, args)? {
        Parsed::Run(given) => given,
        Parsed::Help => return Ok(None),
    };
    let options = Options {
        root: PathBuf::from(given.get("--root").unwrap_or("/")),
        json: given.has("--json"),
        fix: given.has("--fix"),
    };
    if !options.root.is_dir() {
        return Err(format!(
            "--root {} is not a directory",
            options.root.display()
        ));
    }
    Ok(Some(options))
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

// ----- systemd-networkd -----

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

    fn findings(&self, root: &Path) -> Vec<Finding> {
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

// ----- NetworkManager -----

pub enum NmState {
    /// Neither `etc/NetworkManager`, `usr/lib/NetworkManager` nor the daemon exists under the root.
    Absent,
    Config(NmConfig),
    Invalid(String),
}

impl NmState {
    pub fn load(root: &Path) -> NmState {
        let paths = NmPaths::under_root(root);
        let installed = paths.conf_dir.exists()
            || paths.lib_dir.exists()
            || root.join("usr/sbin/NetworkManager").exists();
        if !installed {
            return NmState::Absent;
        }
        match NmConfig::load(&paths) {
            Ok(config) => NmState::Config(config),
            Err(err) => NmState::Invalid(format!("{err:#}")),
        }
    }

    fn findings(&self, root: &Path) -> Vec<Finding> {
        match self {
            NmState::Absent => Vec::new(),
            NmState::Invalid(err) => vec![Finding {
                id: "networkmanager-config-invalid".into(),
                severity: "error".into(),
                subject: "NetworkManager configuration".into(),
                evidence: err.clone(),
                why: "NetworkManager refuses to start with a configuration file it cannot parse, and until it is fixed nobody can tell which interfaces it will manage.".into(),
                fix: "Fix or remove the file named in the evidence, then run `hostguard doctor` again.".into(),
            }],
            NmState::Config(config) => CNI_PATTERNS
                .iter()
                .filter_map(|(pattern, owner, nm_type)| {
                    pattern_finding(root, config, pattern, owner, *nm_type)
                })
                .chain(live_interface_findings(root, config))
                .collect(),
        }
    }
}

/// Names that stand for every interface a pattern covers: the bare prefix, a short and a
/// 15-character (IFNAMSIZ - 1) one.
fn sample_names(pattern: &str) -> Vec<String> {
    match pattern.strip_suffix('*') {
        None => vec![pattern.to_owned()],
        Some(prefix) => ["0", "", "a1b2c3d4e5f6g7h8"]
            .iter()
            .map(|tail| {
                let mut name = format!("{prefix}{tail}");
                name.truncate(15);
                name
            })
            .collect(),
    }
}

fn device(name: &str, nm_type: Option<&str>) -> DeviceMatch {
    DeviceMatch {
        interface_name: name.to_owned(),
        device_type: nm_type.map(str::to_owned),
        hwaddr: None,
    }
}

/// Why NetworkManager would manage `device`, or `None` when its configuration leaves it alone.
fn managed_because(config: &NmConfig, device: &DeviceMatch) -> Option<String> {
    match config.decide(device) {
        ConfigDecision::Unmanaged { .. } => None,
        ConfigDecision::Managed { how } => Some(how),
        ConfigDecision::Default => {
            Some("no unmanaged-devices spec or [device*] managed=false section matches it".into())
        }
    }
}

fn pattern_finding(
    root: &Path,
    config: &NmConfig,
    pattern: &str,
    owner: &str,
    nm_type: Option<&str>,
) -> Option<Finding> {
    let managed: Vec<(String, String)> = sample_names(pattern)
        .into_iter()
        .filter_map(|name| {
            let reason = managed_because(config, &device(&name, nm_type))?;
            Some((name, reason))
        })
        .collect();
    let (example, reason) = managed.first()?;
    let mut evidence =
        format!("NetworkManager would manage {pattern} ({owner}): e.g. {example}: {reason}");
    evidence.push_str(&overridden_note(root, config));
    Some(Finding {
        id: "networkmanager-manages-cni-interfaces".into(),
        severity: "warning".into(),
        subject: format!("interface-name:{pattern}"),
        evidence,
        why: nm_why(),
        fix: nm_fix(root, config),
    })
}

/// Interfaces that exist now (`sys/class/net` under the root) and look like CNI interfaces.
fn live_interface_findings(root: &Path, config: &NmConfig) -> Vec<Finding> {
    let Ok(entries) = fs::read_dir(confine(root, &root.join("sys/class/net"))) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    let mut findings = Vec::new();
    for name in names {
        let Some((pattern, _, assumed_type)) = CNI_PATTERNS
            .iter()
            .find(|(pattern, _, _)| nm::glob_match(pattern, &name))
        else {
            continue;
        };
        let sys = confine(root, &root.join("sys/class/net").join(&name));
        let devtype = fs::read_to_string(sys.join("uevent")).ok().and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_owned))
        });
        let hwaddr = fs::read_to_string(sys.join("address"))
            .ok()
            .and_then(|a| nm::parse_hwaddr(a.trim()));
        let live = DeviceMatch {
            interface_name: name.clone(),
            device_type: devtype.or(assumed_type.map(str::to_owned)),
            hwaddr,
        };
        let Some(reason) = managed_because(config, &live) else {
            continue;
        };
        findings.push(Finding {
            id: "networkmanager-manages-cni-interfaces".into(),
            severity: "warning".into(),
            subject: format!("interface-name:{name}"),
            evidence: format!(
                "{name} exists now (matches {pattern}) and NetworkManager would manage it: {reason}{}",
                overridden_note(root, config)
            ),
            why: nm_why(),
            fix: nm_fix(root, config),
        });
    }
    findings
}

fn nm_why() -> String {
    "NetworkManager takes interfaces it manages down, reconfigures or flushes them on its own schedule; a CNI interface it manages loses addresses and routes the CNI set, and a CNI that then takes it back from NetworkManager can set NM-managed links down (incident 5).".into()
}

fn nm_fix(root: &Path, config: &NmConfig) -> String {
    let ours = root.join(NM_DROPIN);
    match overriding_file(config, &ours) {
        Some(later) => format!(
            "{} replaces unmanaged-devices after hostguard's /{NM_DROPIN}: change it to `unmanaged-devices+=` or add the CNI specs to it (hostguard does not edit the operator's files), then `nmcli general reload conf`.",
            host_path(root, &later)
        ),
        None => format!(
            "Add /{NM_DROPIN} with `[keyfile]` `unmanaged-devices+=interface-name:…` for the CNI's interfaces (`hostguard doctor --fix` writes it; `+=` keeps the other files' entries), then `nmcli general reload conf`."
        ),
    }
}

/// A file read after hostguard's snippet that assigned or shrank `unmanaged-devices`.
fn overriding_file(config: &NmConfig, ours: &Path) -> Option<PathBuf> {
    let position = config
        .unmanaged_changes
        .iter()
        .position(|(f, _)| f == ours)?;
    config.unmanaged_changes[position + 1..]
        .iter()
        .rev()
        .find(|(f, op)| *op != "+=" && f != ours)
        .map(|(f, _)| f.clone())
}

fn overridden_note(root: &Path, config: &NmConfig) -> String {
    match overriding_file(config, &root.join(NM_DROPIN)) {
        Some(later) => format!(
            "; {} is read after hostguard's /{NM_DROPIN} and replaces its unmanaged-devices",
            host_path(root, &later)
        ),
        None => String::new(),
    }
}

// ----- --fix -----

pub fn networkd_dropin() -> String {
    "# Written by `hostguard doctor --fix`. systemd-networkd must not delete routing policy rules\n\
     # and routes that it did not create (CNI rules and routes): see incident 2 in hostguard's docs.\n\
     [Network]\n\
     ManageForeignRoutingPolicyRules=no\n\
     ManageForeignRoutes=no\n"
        .to_owned()
}

/// The section of hostguard's NetworkManager drop-in that keeps the CNI interfaces unmanaged.
pub const NM_DEVICE_SECTION: &str = "device-hostguard-cni";

/// hostguard's NetworkManager drop-in. `unmanaged-devices+=` alone loses to any file read after
/// it that assigns the list with `=` (Calico's `calico.conf`, RKE2's `rke2-canal.conf` sort after
/// `50-hostguard.conf`): NetworkManager keeps only the last assignment. A `[device-*]` section with
/// `managed=0` is a setting of its own (NetworkManager's "unmanaged by user configuration"),
/// which those files do not touch, so the file keeps its name and still wins; the list stays for
/// NetworkManager releases older than the per-device `managed` key.
pub fn nm_dropin() -> String {
    let specs: Vec<String> = CNI_PATTERNS
        .iter()
        .map(|(p, _, _)| format!("interface-name:{p}"))
        .collect();
    let specs = specs.join(";");
    format!(
        "# Written by `hostguard doctor --fix`. NetworkManager must leave CNI interfaces alone\n\
         # (incident 5 in hostguard's docs). The [{NM_DEVICE_SECTION}] section keeps them\n\
         # unmanaged even when a file read later assigns unmanaged-devices= and so replaces the\n\
         # list below (`+=` adds to unmanaged-devices from other files).\n\
         [keyfile]\n\
         unmanaged-devices+={specs}\n\
         \n\
         [{NM_DEVICE_SECTION}]\n\
         match-device={specs}\n\
         managed=0\n"
    )
}

/// Writes hostguard's drop-ins for what `examine` finds, atomically, creating directories (0755)
/// as needed; identical content is left alone.
pub fn fix(root: &Path) -> Result<Vec<Fixed>> {
    let before = examine(root);
    let mut fixed = Vec::new();
    if before
        .findings
        .iter()
        .any(|f| f.id.starts_with("networkd-manages-foreign"))
    {
        let action = install(root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd)?;
        fixed.push(Fixed {
            file: format!("/{NETWORKD_DROPIN}"),
            action,
            reload: "systemctl restart systemd-networkd (networkd.conf is read only at startup)"
                .into(),
        });
    }
    if before
        .findings
        .iter()
        .any(|f| f.id == "networkmanager-manages-cni-interfaces")
    {
        let action = install(root, NM_DROPIN, &nm_dropin(), Dialect::GKeyFile)?;
        fixed.push(Fixed {
            file: format!("/{NM_DROPIN}"),
            action,
            reload: "nmcli general reload conf".into(),
        });
    }
    Ok(fixed)
}

/// The drop-in's directory is resolved inside the root, so that a link there (absolute, as the
/// host wrote it) leads to the host's directory, never out of the root; the file itself is
/// replaced by rename, never written through a link.
fn install(root: &Path, relative: &str, content: &str, dialect: Dialect) -> Result<String> {
    let relative = Path::new(relative);
    let dir = confine(root, &root.join(relative.parent().unwrap_or(Path::new(""))));
    let path = dir.join(relative.file_name().unwrap_or_default());
    if keyfile::read_config_file(&path).is_ok_and(|existing| existing == content) {
        return Ok("unchanged".into());
    }
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("create {}", dir.display()))?;
    }
    crate::atomic::write_atomic(&path, content.as_bytes(), 0o644, |written| {
        let text = std::str::from_utf8(written).context("written drop-in is not UTF-8")?;
        let parsed = keyfile::parse(text, dialect);
        anyhow::ensure!(
            parsed.problems.is_empty() && !parsed.sections.is_empty(),
            "written drop-in does not parse back: {:?}",
            parsed.problems
        );
        Ok(())
    })
    .with_context(|| format!("write {}", path.display()))?;
    Ok("written".into())
}

// ----- human output -----

fn render_human(root: &Path, state: &Examination, report: &Report) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hg-doctor-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn sample_names_cover_prefix_short_and_longest_names() {
        assert_eq!(sample_names("cni0"), ["cni0"]);
        assert_eq!(sample_names("cali*"), ["cali0", "cali", "calia1b2c3d4e5f"]);
        assert!(sample_names("genev_sys_*").iter().all(|n| n.len() <= 15));
    }

    #[test]
    fn the_nm_drop_in_alone_unmanages_every_pattern_and_the_networkd_one_both_keys() {
        let root = scratch("dropins");
        install(&root, NM_DROPIN, &nm_dropin(), Dialect::GKeyFile).unwrap();
        install(&root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd).unwrap();
        let state = examine(&root);
        assert!(state.findings.is_empty(), "{:#?}", state.findings);
        assert!(state.networkd.settings.iter().all(|s| !s.value));
        let NmState::Config(config) = &state.nm else {
            panic!("NetworkManager config not loaded");
        };
        assert_eq!(config.unmanaged.len(), CNI_PATTERNS.len());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn install_leaves_identical_content_alone() {
        let root = scratch("idempotent");
        assert_eq!(
            install(&root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd).unwrap(),
            "written"
        );
        assert_eq!(
            install(&root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd).unwrap(),
            "unchanged"
        );
        fs::remove_dir_all(root).unwrap();
    }
}
