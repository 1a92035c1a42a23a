//! Working inside another network namespace without ever moving the calling thread: a test helper
//! (the plugin itself runs in the namespace the runtime starts it in and never switches).
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

use hostguard::netlink::Netlink;

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
