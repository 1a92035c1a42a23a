//! Helpers shared by the fuzz targets: how one fuzz input is cut into several outside inputs, and
//! the scratch directories targets that need files work in.

use std::path::PathBuf;

/// Splits `data` on NUL bytes into at most `n` fields; the last field keeps the rest (NULs
/// included), so the JSON or file body at the end can still contain any byte.
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.iter().position(|&b| b == 0) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + 1..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// A scratch directory on tmpfs (fsync is cheap there) private to this fuzzing process, emptied
/// by the caller as it needs. `scripts/fuzz.sh` removes those of processes that are gone.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from("/dev/shm").join(format!("hg-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create fuzz scratch directory");
    dir
}

/// Puts the whole fuzzing process into a network namespace of its own, once. Targets that run
/// code which reads or changes routes must call this first: the machine's own namespace is never
/// touched. Failing to unshare is fatal; there is no fallback to the current namespace.
pub fn private_network_namespace() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): this target must run as root in a private namespace");
    });
}
