//! Is a host link managed by NetworkManager? Incident 5: a CNI that took an NM-managed team away
//! from NetworkManager cut the node off, so hostguard refuses to touch NM-managed links (code 102).
//!
//! The answer comes from files only (no D-Bus, which may be absent or slow in a CNI call):
//! NetworkManager's runtime record `runDir/devices/<ifindex>`, whether a NetworkManager process is
//! alive, and its configuration, read in NetworkManager's own order.
//!
//! # Which source wins
//! While NetworkManager runs, its runtime record wins over the configuration: it is what the
//! running daemon decided, including decisions no configuration file shows (`nmcli device set X
//! managed yes|no` over D-Bus, udev's `NM_UNMANAGED`), and configuration edits only take effect
//! after `nmcli general reload conf` or a restart. `managed=true` therefore refuses even when a newer
//! `unmanaged-devices` entry matches (the evidence says a reload is pending), and `managed=false`
//! allows even when the configuration would manage the link (the evidence says it would be managed
//! again once `/run` is cleared at reboot). The configuration decides only when the record has no
//! `managed=` entry: a match in `[keyfile] unmanaged-devices` (which NetworkManager itself treats as
//! authoritative, not overridable) or a matching `[device*]` section with `managed=false` means
//! unmanaged; anything else counts as managed, because refusing is the safe way to be wrong. Nothing
//! counts while NetworkManager is not running: a record left in `/run` by a stopped daemon is stale,
//! and nobody acts on the configuration until it starts again.
//!
//! The parts: `process` (is a NetworkManager alive in this namespace), `device` (one link as
//! NetworkManager sees it, and its runtime record), `config` (the configuration merged in
//! NetworkManager's order) and `specs` (device spec matching); this file decides between them.

mod config;
mod device;
mod process;
mod specs;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use config::{ConfigDecision, MergedGroup, NmConfig, UnmanagedSpec};
use device::read_device_record;
pub use device::{nm_type_for_kind, LinkFacts};
pub use process::{find_process, NmProcess};
pub use specs::{glob_match, match_specs, parse_hwaddr, split_specs, DeviceMatch, SpecMatch};

/// Where NetworkManager keeps its state and configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NmPaths {
    /// `/run/NetworkManager`: `devices/<ifindex>`, `NetworkManager.pid`, per-boot `conf.d`.
    pub run_dir: PathBuf,
    /// `/etc/NetworkManager`: `NetworkManager.conf` and the administrator's `conf.d`.
    pub conf_dir: PathBuf,
    /// `/usr/lib/NetworkManager`: `conf.d` snippets shipped by packages.
    pub lib_dir: PathBuf,
    /// `/proc`, where a live NetworkManager process is looked for.
    pub proc_dir: PathBuf,
    /// The root the files are read in: `/`, or the doctor's `--root`, inside which every
    /// symbolic link is resolved (`crate::rootfs`).
    pub root: PathBuf,
}

impl Default for NmPaths {
    fn default() -> Self {
        NmPaths::new("/run/NetworkManager", "/etc/NetworkManager")
    }
}

impl NmPaths {
    /// The contract's `networkManager.runDir` / `confDir`, with the system's lib dir and /proc.
    pub fn new(run_dir: impl Into<PathBuf>, conf_dir: impl Into<PathBuf>) -> Self {
        NmPaths {
            run_dir: run_dir.into(),
            conf_dir: conf_dir.into(),
            lib_dir: PathBuf::from("/usr/lib/NetworkManager"),
            proc_dir: PathBuf::from("/proc"),
            root: PathBuf::from("/"),
        }
    }

    /// The standard locations below `root` (the doctor's `--root`); processes are looked for in
    /// `root/proc`, which is the real one when `root` is `/`.
    pub fn under_root(root: &Path) -> Self {
        NmPaths {
            run_dir: root.join("run/NetworkManager"),
            conf_dir: root.join("etc/NetworkManager"),
            lib_dir: root.join("usr/lib/NetworkManager"),
            proc_dir: root.join("proc"),
            root: root.to_path_buf(),
        }
    }

    /// `path` with its symbolic links resolved inside [`NmPaths::root`].
    pub fn at(&self, path: &Path) -> PathBuf {
        crate::rootfs::confine(&self.root, path)
    }
}

/// NetworkManager's answer for one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NmVerdict {
    Managed { evidence: String },
    Unmanaged { evidence: String },
    NotRunning { evidence: String },
}

impl NmVerdict {
    pub fn is_managed(&self) -> bool {
        matches!(self, NmVerdict::Managed { .. })
    }

    pub fn evidence(&self) -> &str {
        match self {
            NmVerdict::Managed { evidence }
            | NmVerdict::Unmanaged { evidence }
            | NmVerdict::NotRunning { evidence } => evidence,
        }
    }
}

/// Decides whether NetworkManager manages `link` (see the module documentation for the
/// precedence). Errors (a malformed configuration or state file) name the file and line; callers
/// that guard the host should treat an error as "managed".
pub fn nm_verdict(paths: &NmPaths, link: &LinkFacts) -> Result<NmVerdict> {
    let record_path = paths.at(&paths.run_dir.join("devices").join(link.ifindex.to_string()));
    let record_name = format!("devices/{}", link.ifindex);
    let running = match find_process(paths) {
        NmProcess::Running { pid } => format!("pid {pid}"),
        NmProcess::Presumed => format!(
            "presumed: this PID namespace cannot see the host's processes, and {} shows it ran \
             since boot",
            paths.run_dir.join("devices").display()
        ),
        NmProcess::NotRunning => {
            let stale = if record_path.exists() {
                format!("; {record_name} is left over from an earlier run and is ignored")
            } else {
                String::new()
            };
            return Ok(NmVerdict::NotRunning {
                evidence: format!(
                    "NetworkManager is not running (no live NetworkManager process in {}){stale}",
                    paths.proc_dir.display()
                ),
            });
        }
    };
    let recorded = read_device_record(&record_path)?;
    let config = NmConfig::load(paths)?;
    let decision = config.decide(&DeviceMatch::from(link));
    let name = &link.name;
    Ok(match (recorded, decision) {
        (Some(true), ConfigDecision::Unmanaged { how }) => NmVerdict::Managed {
            evidence: format!(
                "{name} is managed by NetworkManager: {record_name} managed=true (the configuration now says unmanaged: {how}; it takes effect after `nmcli general reload conf`)"
            ),
        },
        (Some(true), _) => NmVerdict::Managed {
            evidence: format!("{name} is managed by NetworkManager: {record_name} managed=true"),
        },
        (Some(false), ConfigDecision::Unmanaged { how }) => NmVerdict::Unmanaged {
            evidence: format!(
                "{name} is not managed by NetworkManager: {record_name} managed=false, and {how}"
            ),
        },
        (Some(false), _) => NmVerdict::Unmanaged {
            evidence: format!(
                "{name} is not managed by NetworkManager: {record_name} managed=false (a runtime decision such as `nmcli device set {name} managed no`; the configuration would manage it again after a reboot)"
            ),
        },
        (None, ConfigDecision::Unmanaged { how }) => NmVerdict::Unmanaged {
            evidence: format!("{name} is not managed by NetworkManager: {how}"),
        },
        (None, ConfigDecision::Managed { how }) => NmVerdict::Managed {
            evidence: format!(
                "{name} is managed by NetworkManager ({running}): {how}, and {record_name} has no managed= entry"
            ),
        },
        (None, ConfigDecision::Default) => NmVerdict::Managed {
            evidence: format!(
                "{name} is treated as managed by NetworkManager: it is running ({running}), {record_name} has no managed= entry, and no unmanaged-devices or [device] managed=false setting matches {name}"
            ),
        },
    })
}

/// The effective `[keyfile] unmanaged-devices` specs, each with the file that contributed it.
pub fn unmanaged_specs(paths: &NmPaths) -> Result<Vec<UnmanagedSpec>> {
    Ok(NmConfig::load(paths)?.unmanaged)
}
#[cfg(test)]
mod tests;
