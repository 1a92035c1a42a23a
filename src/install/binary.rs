//! Copying the running hostguard into the runtime's plugin directory. The copy is renamed into
//! place, so a plugin process executing the old file keeps its inode and is never hit by "text file
//! busy", and a runtime never finds a half-copied binary.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::snapshot;
use crate::atomic;

pub const BINARY_NAME: &str = "hostguard";
pub const BINARY_MODE: u32 = 0o755;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    Written,
    UpToDate,
}

/// Installs the running executable as `bin_dir/hostguard`, creating `bin_dir` if needed.
pub fn install(bin_dir: &Path) -> Result<(PathBuf, Copied)> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(bin_dir)
        .with_context(|| format!("create --bin-dir {}", bin_dir.display()))?;
    let target = bin_dir.join(BINARY_NAME);
    // /proc/self/exe opens the inode we run from even if its path was replaced meanwhile.
    let ours =
        fs::read("/proc/self/exe").context("read the running hostguard binary (/proc/self/exe)")?;
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.file_type().is_file() => bail!(
            "{} is {}; hostguard only replaces a regular file: remove it or choose another --bin-dir",
            target.display(),
            snapshot::describe_path(&target)
        ),
        Ok(meta) if meta.len() == ours.len() as u64 => {
            if fs::read(&target).with_context(|| format!("read {}", target.display()))? == ours {
                return Ok((target, Copied::UpToDate));
            }
        }
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("inspect {}", target.display())),
    }
    crate::install::write::remove_stale_temps(bin_dir, BINARY_NAME)
        .with_context(|| format!("clean up old temporary files in {}", bin_dir.display()))?;
    atomic::write_atomic_plain(&target, &ours, BINARY_MODE)?;
    Ok((target, Copied::Written))
}

/// Removes `bin_dir/hostguard` when it is a regular file; `Ok(false)` when it is not there.
pub fn remove(bin_dir: &Path) -> Result<bool> {
    let target = bin_dir.join(BINARY_NAME);
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.file_type().is_file() => {
            atomic::remove_durable(&target)?;
            Ok(true)
        }
        Ok(_) => bail!(
            "{} is {}; install never writes one, so it is left alone",
            target.display(),
            snapshot::describe_path(&target)
        ),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("inspect {}", target.display())),
    }
}
