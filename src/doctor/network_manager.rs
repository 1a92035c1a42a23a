//! Which interfaces CNIs create that NetworkManager's configuration under a root would manage.

use std::fs;
use std::path::{Path, PathBuf};

use super::{host_path, Finding, NM_DROPIN};
use crate::host::nm::{self, ConfigDecision, DeviceMatch, NmConfig, NmPaths};
use crate::rootfs::confine;

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

    pub(super) fn findings(&self, root: &Path) -> Vec<Finding> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_names_cover_prefix_short_and_longest_names() {
        assert_eq!(sample_names("cni0"), ["cni0"]);
        assert_eq!(sample_names("cali*"), ["cali0", "cali", "calia1b2c3d4e5f"]);
        assert!(sample_names("genev_sys_*").iter().all(|n| n.len() <= 15));
    }
}
