//! The test helper that works inside another network namespace from a scoped thread: the caller's
//! namespace never moves, and the work sees only the target's links.

use crate::common;

use std::path::Path;

use common::netns::{is_netns, netlink_in, run_in};
use hostguard::netlink::{LinkExt, Netlink};
use nix::sched::{unshare, CloneFlags};

fn link_names(nl: &mut Netlink) -> Vec<String> {
    let mut names: Vec<String> = nl
        .links()
        .unwrap()
        .iter()
        .filter_map(|l| l.name().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Moves this test's thread into a fresh network namespace and returns its /proc path.
fn private_netns() -> String {
    unshare(CloneFlags::CLONE_NEWNET).unwrap();
    let tid = nix::unistd::gettid();
    format!("/proc/self/task/{tid}/ns/net")
}

/// A namespace kept alive by a parked helper thread until the guard drops.
struct HeldNetns {
    path: String,
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HeldNetns {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }
}

/// A namespace holding the veth pair hg-target0/hg-target1.
fn held_netns() -> HeldNetns {
    let (path_tx, path_rx) = std::sync::mpsc::channel();
    let (release, parked) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let path = private_netns();
        let mut nl = Netlink::new().unwrap();
        nl.create_veth("hg-target0", "hg-target1").unwrap();
        path_tx.send(path).unwrap();
        let _ = parked.recv();
    });
    HeldNetns {
        path: path_rx.recv().unwrap(),
        release: Some(release),
        holder: Some(holder),
    }
}

#[test]
fn is_netns_recognises_only_network_namespaces() {
    assert!(is_netns(Path::new("/proc/self/ns/net")));
    assert!(!is_netns(Path::new("/proc/self/ns/uts")));
    assert!(!is_netns(Path::new("/proc/self/ns/mnt")));
    assert!(!is_netns(Path::new("/etc/hostname")));
    assert!(!is_netns(Path::new("/nonexistent/netns")));
    let dir = std::env::temp_dir().join(format!("hg-netns-{}", std::process::id()));
    std::fs::write(&dir, b"").unwrap();
    // What `ip netns add` leaves behind once the bind mount is gone: an empty file.
    assert!(!is_netns(&dir));
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn netlink_in_sees_only_the_target_namespace() {
    let target = held_netns();
    let own = private_netns();
    let before = std::fs::read_link(&own).unwrap();

    let mut nl = netlink_in(Path::new(&target.path)).unwrap();
    assert_eq!(link_names(&mut nl), ["hg-target0", "hg-target1", "lo"]);

    // The caller's own namespace neither moved nor gained the links.
    assert_eq!(std::fs::read_link(&own).unwrap(), before);
    let mut local = Netlink::new().unwrap();
    assert!(local.link_by_name("hg-target0").unwrap().is_none());
}

#[test]
fn run_in_returns_the_closures_result_and_errors() {
    let target = held_netns();
    let own = private_netns();
    let inode = std::fs::read_link(&own).unwrap();
    let inside = run_in(Path::new(&target.path), || {
        Ok(std::fs::read_link("/proc/thread-self/ns/net")?)
    })
    .unwrap();
    assert_eq!(inside, std::fs::read_link(&target.path).unwrap());
    assert_eq!(std::fs::read_link(&own).unwrap(), inode);

    // Work that depends on the current namespace at the time: a sysctl of the target.
    let forwarding = run_in(Path::new(&target.path), || {
        std::fs::write("/proc/sys/net/ipv4/conf/hg-target0/forwarding", "1")?;
        Ok(std::fs::read_to_string(
            "/proc/sys/net/ipv4/conf/hg-target0/forwarding",
        )?)
    })
    .unwrap();
    assert_eq!(forwarding.trim(), "1");

    let err = run_in(Path::new(&target.path), || -> anyhow::Result<()> {
        anyhow::bail!("boom")
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "boom");

    let err = run_in(Path::new("/etc/hostname"), || Ok(())).unwrap_err();
    assert!(
        err.to_string().contains("is not a network namespace"),
        "{err}"
    );
}
