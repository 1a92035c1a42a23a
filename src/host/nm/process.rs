//! Whether a NetworkManager process is alive in this network namespace: only a running
//! NetworkManager acts on its record and configuration.

use std::path::Path;

use super::NmPaths;
use crate::keyfile;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NmProcess {
    Running {
        pid: u32,
    },
    /// No NetworkManager process is visible, but this PID namespace cannot see the host's
    /// processes (a container without the host's PID namespace), and NetworkManager's per-boot
    /// runtime directory shows it ran since boot: it counts as running, since refusing is the
    /// safe way to be wrong.
    Presumed,
    NotRunning,
}

/// Looks for a live process whose `comm` is `NetworkManager`, in the caller's network namespace
/// (when that cannot be read, it counts: refusing is the safe way to be wrong): first the pid in
/// `runDir/NetworkManager.pid` (written only when NetworkManager daemonizes itself), then every
/// process, because under systemd it runs with `--no-daemon` and writes no pid file.
pub fn find_process(paths: &NmPaths) -> NmProcess {
    // NetworkManager manages the links of its own network namespace only; one running in
    // another namespace (a container's, a test's) has no say over ours.
    let own_netns = std::fs::read_link("/proc/thread-self/ns/net").ok();
    let elsewhere = |pid: u32| {
        let theirs = std::fs::read_link(paths.proc_dir.join(pid.to_string()).join("ns/net"));
        matches!((&own_netns, theirs), (Some(own), Ok(theirs)) if *own != theirs)
    };
    let is_nm = |pid: u32| {
        std::fs::read(paths.proc_dir.join(pid.to_string()).join("comm"))
            .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == b"NetworkManager")
            && !elsewhere(pid)
    };
    let pid_file = paths.at(&paths.run_dir.join("NetworkManager.pid"));
    if let Ok(text) = keyfile::read_config_file(&pid_file) {
        if let Ok(pid) = text.trim().parse::<u32>() {
            if is_nm(pid) {
                return NmProcess::Running { pid };
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(&paths.proc_dir) else {
        return NmProcess::NotRunning;
    };
    let seen = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| is_nm(*pid));
    match seen {
        Some(pid) => NmProcess::Running { pid },
        None if !sees_host_processes(&paths.proc_dir) && paths.run_dir.join("devices").is_dir() => {
            NmProcess::Presumed
        }
        None => NmProcess::NotRunning,
    }
}

/// Whether `proc_dir` shows the host's processes, not only a container's. The host's PID
/// namespace is the only one where pid 2 is the kernel's `kthreadd`. A directory that is not a
/// mounted procfs (no `self`) is taken at its word: tests and `doctor --root` build such trees.
fn sees_host_processes(proc_dir: &Path) -> bool {
    if !proc_dir.join("self").exists() {
        return true;
    }
    std::fs::read(proc_dir.join("2/comm"))
        .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == b"kthreadd")
}
