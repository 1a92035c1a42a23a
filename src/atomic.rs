//! The one durable file writer. State, install and doctor all write through it, so that no reader
//! (a container runtime, a second hostguard, an operator) ever sees an empty or half-written file,
//! and a crash at any instant leaves either the old content or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nix::libc;

/// Prefix of every temporary file. A leading dot and a suffix that is not `.conf`, `.conflist` or
/// `.json` keep container runtimes (which load `*.conf|*.conflist|*.json`) from ever reading one.
pub const TEMP_PREFIX: &str = ".hostguard-tmp-";

/// Longest file name a Linux directory entry holds.
const NAME_MAX: usize = 255;

/// Writes `bytes` to `path` so that the file appears whole or not at all.
///
/// The temporary file is created with `O_EXCL | O_NOFOLLOW` in the same directory (rename is only
/// atomic within a filesystem), fsynced, read back and handed to `verify` before the rename, and the
/// directory is fsynced after it so the rename itself survives a power cut. A symlink at `path` is
/// replaced, never followed. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic<F>(path: &Path, bytes: &[u8], mode: u32, verify: F) -> Result<()>
where
    F: FnOnce(&[u8]) -> Result<()>,
{
    replace(path, bytes, mode, verify, true)
}

/// As [`write_atomic`] without the two fsyncs: while the system runs, every reader sees the old
/// file or the new one, never a part; after a power cut or a kernel crash the file may be old,
/// missing or empty. Only for state that such a crash makes stale anyway (per-attachment records
/// of sandboxes that die with the boot): the fsyncs are most of what a write costs on a busy disk.
pub fn write_atomic_unsynced<F>(path: &Path, bytes: &[u8], mode: u32, verify: F) -> Result<()>
where
    F: FnOnce(&[u8]) -> Result<()>,
{
    replace(path, bytes, mode, verify, false)
}

fn replace<F>(path: &Path, bytes: &[u8], mode: u32, verify: F, sync: bool) -> Result<()>
where
    F: FnOnce(&[u8]) -> Result<()>,
{
    let dir = parent_dir(path)?;
    let temp = temp_path(&dir, path);
    let outcome = write_temp(&temp, bytes, mode, sync)
        .and_then(|()| {
            let written = read_back(&temp)?;
            if written != bytes {
                bail!(
                    "{} read back differently from what was written",
                    temp.display()
                );
            }
            verify(&written)
        })
        .and_then(|()| {
            fs::rename(&temp, path)
                .with_context(|| format!("rename {} to {}", temp.display(), path.display()))
        });
    if let Err(err) = outcome {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    if sync {
        fsync_dir(&dir)?;
    }
    Ok(())
}

/// Writes `bytes` atomically with no content check beyond the read-back.
pub fn write_atomic_plain(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic(path, bytes, mode, |_| Ok(()))
}

/// Removes `path` durably; a file that is already gone is not an error.
pub fn remove_durable(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => fsync_dir(&parent_dir(path)?),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("remove {}", path.display())),
    }
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).with_context(|| format!("open directory {}", dir.display()))?;
    handle
        .sync_all()
        .with_context(|| format!("fsync directory {}", dir.display()))
}

/// Whether `name` is one of this writer's temporary files (possibly left by a killed process).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

fn parent_dir(path: &Path) -> Result<PathBuf> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(parent.to_path_buf())
}

fn temp_path(dir: &Path, target: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let suffix = format!(".{}.{nanos:09}", std::process::id());
    let mut base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Any name that fits a directory entry must get a temporary name that fits too; the target's
    // name is only there for people reading a listing, the pid and time make it unique.
    let room = NAME_MAX - TEMP_PREFIX.len() - suffix.len();
    if base.len() > room {
        let mut cut = room;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    dir.join(format!("{TEMP_PREFIX}{base}{suffix}"))
}

fn write_temp(temp: &Path, bytes: &[u8], mode: u32, sync: bool) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(temp)
        .with_context(|| format!("create {}", temp.display()))?;
    // The umask may have narrowed `mode`; the caller's mode is what readers rely on.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", temp.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("write {}", temp.display()))?;
    if sync {
        file.sync_all()
            .with_context(|| format!("fsync {}", temp.display()))?;
    }
    Ok(())
}

fn read_back(temp: &Path) -> Result<Vec<u8>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(temp)
        .with_context(|| format!("reopen {}", temp.display()))?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)
        .with_context(|| format!("read back {}", temp.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hg-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_content_and_mode_and_leaves_no_temp() {
        let dir = scratch("plain");
        let target = dir.join("a.json");
        write_atomic_plain(&target, b"{}", 0o640).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unsynced_writes_replace_whole_and_leave_no_temp() {
        let dir = scratch("unsynced");
        let target = dir.join("a.json");
        fs::write(&target, b"old").unwrap();
        write_atomic_unsynced(&target, b"{}", 0o600, |_| Ok(())).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_atomic_unsynced(&target, b"new", 0o600, |_| bail!("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"));
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failed_verification_keeps_old_content() {
        let dir = scratch("verify");
        let target = dir.join("a.json");
        fs::write(&target, b"old").unwrap();
        let err = write_atomic(&target, b"new", 0o644, |_| bail!("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"));
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlink_at_target_is_replaced_not_followed() {
        let dir = scratch("symlink");
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let target = dir.join("a.json");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic_plain(&target, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_longest_target_names_get_temp_names_that_fit() {
        for target in ["a".repeat(255), "\u{e9}".repeat(127)] {
            let temp = temp_path(Path::new("/x"), &Path::new("/x").join(&target));
            let name = temp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.len() <= NAME_MAX, "{} bytes", name.len());
            assert!(is_temp_name(&name));
        }
    }

    #[test]
    fn temp_names_are_not_loadable_configs() {
        let name = temp_path(Path::new("/x"), Path::new("/x/00-a.conflist"));
        let name = name.file_name().unwrap().to_string_lossy().into_owned();
        assert!(is_temp_name(&name));
        for ext in [".conf", ".conflist", ".json"] {
            assert!(!name.ends_with(ext), "{name}");
        }
    }
}
