//! Working inside another network namespace without ever moving the calling thread.
//!
//! `setns(2)` changes the namespace of one thread. Doing it on the main thread and switching
//! back means a failed switch-back strands the whole process in the container's namespace.
//! Here the switch happens on a short-lived scoped thread that does the work (or opens a
//! netlink socket, which stays bound to that namespace for its life) and then exits; the
//! calling thread never changes namespace, so no error path can leave it in the wrong one.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{anyhow, Context};
use nix::libc;
use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::netlink::Netlink;

/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Opens a netlink socket inside the network namespace at `netns_path` (e.g. `CNI_NETNS`).
pub fn netlink_in(netns_path: &Path) -> anyhow::Result<Netlink> {
    run_in(netns_path, || Ok(Netlink::new()?))
        .with_context(|| format!("open netlink socket in {}", netns_path.display()))
}

/// Runs `f` on a thread that has joined the network namespace at `netns_path`, and returns its
/// result. Use it for work bound to the current namespace at the time it is done, such as
/// writes under `/proc/sys/net`; for netlink, prefer `netlink_in`.
pub fn run_in<T: Send>(
    netns_path: &Path,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let ns = open_netns(netns_path)?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("enter network namespace {}", netns_path.display()))?;
            f()
        });
        worker
            .join()
            .unwrap_or_else(|_| Err(anyhow!("work inside {} panicked", netns_path.display())))
    })
}

/// True only if `path` is a network namespace (an nsfs file of type CLONE_NEWNET). False for a
/// missing path, a bind-mount target whose namespace is gone (an empty regular file), or any
/// other namespace type, so DEL can recognise a deleted or bogus `CNI_NETNS`.
pub fn is_netns(path: &Path) -> bool {
    File::open(path).is_ok_and(|file| is_netns_file(&file))
}

fn open_netns(path: &Path) -> anyhow::Result<File> {
    let file =
        File::open(path).with_context(|| format!("open network namespace {}", path.display()))?;
    if !is_netns_file(&file) {
        anyhow::bail!(
            "{} is not a network namespace (the container's namespace may have been deleted)",
            path.display()
        );
    }
    Ok(file)
}

fn is_netns_file(file: &File) -> bool {
    match fstatfs(file) {
        Ok(stat) if stat.filesystem_type() == NSFS_MAGIC => {}
        _ => return false,
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the namespace the fd refers to;
    // the fd is valid for the duration of the call because `file` is borrowed.
    let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    nstype == libc::CLONE_NEWNET
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::tests::link_names;
    use nix::sched::unshare;

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
}
