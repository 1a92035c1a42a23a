//! Advisory whole-file locks (flock) that serialize hostguard processes: concurrent installers,
//! concurrent ADDs attaching the same uplink, state writers. flock is released by the kernel when
//! the process dies, so a crash never leaves a lock held.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fs2::FileExt;
use nix::libc;

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// Blocks until the exclusive lock on `path` is ours. The lock file is created if needed and is
/// never followed through a symlink, so a planted link cannot make us create or truncate a file
/// elsewhere.
pub fn lock_exclusive(path: &Path) -> Result<LockGuard> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open lock file {}", path.display()))?;
    file.lock_exclusive()
        .with_context(|| format!("lock {}", path.display()))?;
    Ok(LockGuard {
        file,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_for_the_first() {
        let path = std::env::temp_dir().join(format!("hg-lock-{}", std::process::id()));
        let first = lock_exclusive(&path).unwrap();
        let second = OpenOptions::new().read(true).open(&path).unwrap();
        assert!(second.try_lock_exclusive().is_err());
        drop(first);
        assert!(second.try_lock_exclusive().is_ok());
        std::fs::remove_file(path).unwrap();
    }
}
