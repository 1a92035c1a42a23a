//! Putting our conflist in place: under the installers' lock, never through or over an operator's
//! symlink, only when the bytes differ, and always through the durable atomic writer with the output
//! check run on the bytes read back before the rename.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::marker;
use super::snapshot::{self, Links};
use super::validate;
use crate::atomic;
use crate::lock::{self, LockGuard};

/// Serializes hostguard installers on one directory. The leading dot and the suffix keep every
/// runtime from loading it.
pub const LOCK_NAME: &str = ".hostguard.lock";

pub const OUTPUT_MODE: u32 = 0o644;

pub fn lock_dir(dir: &Path) -> Result<LockGuard> {
    lock::lock_exclusive(&dir.join(LOCK_NAME))
}

/// What sits at our output path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Missing,
    File(Vec<u8>),
    /// A regular file that another program kept rewriting while we read it.
    Changing,
    /// Something we must not replace (a symlink, a directory, ...): the reason, ready to print.
    Foreign(String),
}

/// Reads what is at `path` without following a symlink. A file caught mid-rewrite is read again a
/// few times before it is reported as `Changing`.
pub fn existing(path: &Path) -> Existing {
    for _ in 0..3 {
        match snapshot::read(path, Links::Refuse) {
            Ok(None) => return Existing::Missing,
            Ok(Some(found)) => return Existing::File(found.bytes),
            Err(problem) if problem.is_transient() => continue,
            Err(problem) => {
                let what = snapshot::describe_path(path);
                let reason = if what.starts_with("a symbolic link") {
                    format!(
                        "{} is {what}; hostguard does not replace a link it did not create: remove it, \
                         or choose another --output",
                        path.display()
                    )
                } else {
                    format!(
                        "{} {problem}; hostguard only replaces a regular file it wrote",
                        path.display()
                    )
                };
                return Existing::Foreign(reason);
            }
        }
    }
    Existing::Changing
}

/// Writes `bytes` (already rendered) to `path` atomically, checking them as read back: a valid
/// chain ending in our one entry, marked as the file it is about to become.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    atomic::write_atomic(path, bytes, OUTPUT_MODE, |written| {
        validate::output(written)
            .map_err(|problem| anyhow!("the file about to become {} {problem}", path.display()))?;
        if !marker::bytes_are_output(written, &name) {
            return Err(anyhow!(
                "the file about to become {} lacks the \"{}\" marker naming it",
                path.display(),
                marker::MARKER_KEY
            ));
        }
        Ok(())
    })
}

/// Removes temporary files a killed hostguard left for `target` in `dir`. Only files whose writer
/// is gone are touched, so a concurrent writer outside our lock keeps its file.
pub fn remove_stale_temps(dir: &Path, target: &str) -> io::Result<usize> {
    let prefix = format!("{}{target}.", atomic::TEMP_PREFIX);
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = writer_pid(&name, &prefix) else {
            continue;
        };
        if pid == std::process::id() || writer_alive(pid) {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_file() => {}
            _ => continue,
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(removed)
}

/// Temp names are `<prefix><target>.<pid>.<nanos>` (see `atomic`).
fn writer_pid(name: &OsStr, prefix: &str) -> Option<u32> {
    let rest = name.to_str()?.strip_prefix(prefix)?;
    let (pid, nanos) = rest.split_once('.')?;
    if nanos.is_empty() || !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn writer_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // EPERM means a process exists that we may not signal: treat it as alive.
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

/// Durably removes our output, refusing anything install did not write there (no marker naming
/// it): a hostguard entry alone may be an operator's chain or another installer's copy.
pub fn remove_output(path: &Path) -> Result<bool> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    match existing(path) {
        Existing::Missing => Ok(false),
        Existing::Foreign(reason) => Err(anyhow!("{reason}; leaving it")),
        Existing::Changing => Err(anyhow!(
            "{} is being rewritten by another program right now; try again",
            path.display()
        )),
        Existing::File(bytes) => {
            let object = validate::parse_object(&bytes).map_err(|problem| {
                anyhow!(
                    "{} {problem}; hostguard only writes valid conflists, so it is not hostguard's: leaving it",
                    path.display()
                )
            })?;
            if validate::hostguard_count(&object) == 0 {
                return Err(anyhow!(
                    "{} has no plugin of type hostguard, so hostguard did not write it: leaving it",
                    path.display()
                ));
            }
            if !marker::is_output(&object, &name) {
                return Err(anyhow!(
                    "{} has no \"{}\" key naming it, so hostguard install did not write it (another \
                     tool's config, or a copy of hostguard's output): leaving it",
                    path.display(),
                    marker::MARKER_KEY
                ));
            }
            atomic::remove_durable(path).with_context(|| format!("remove {}", path.display()))?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_our_temp_names() {
        let prefix = format!("{}00-hostguard.conflist.", atomic::TEMP_PREFIX);
        let ours = format!("{prefix}1234.000000042");
        assert_eq!(writer_pid(OsStr::new(&ours), &prefix), Some(1234));
        assert_eq!(
            writer_pid(OsStr::new("00-hostguard.conflist"), &prefix),
            None
        );
        assert_eq!(
            writer_pid(OsStr::new(&format!("{prefix}x.1")), &prefix),
            None
        );
        assert_eq!(
            writer_pid(OsStr::new(&format!("{prefix}12.")), &prefix),
            None
        );
    }

    #[test]
    fn removes_temps_of_dead_writers_only() {
        let dir = tempfile::tempdir().unwrap();
        let dead = format!(
            "{}00-hg.conflist.{}.000000001",
            atomic::TEMP_PREFIX,
            i32::MAX
        );
        let alive = format!(
            "{}00-hg.conflist.{}.000000001",
            atomic::TEMP_PREFIX,
            std::process::id()
        );
        let other = format!("{}hostguard.{}.000000001", atomic::TEMP_PREFIX, i32::MAX);
        for name in [&dead, &alive, &other] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(dir.path(), "00-hg.conflist").unwrap(), 1);
        assert!(!dir.path().join(&dead).exists());
        assert!(dir.path().join(&alive).exists());
        assert!(dir.path().join(&other).exists());
    }

    #[test]
    fn existing_refuses_links_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00-hg.conflist");
        assert_eq!(existing(&path), Existing::Missing);
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let Existing::Foreign(reason) = existing(&path) else {
            panic!("link accepted")
        };
        assert!(
            reason.contains("symbolic link to /etc/hostname"),
            "{reason}"
        );
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let Existing::Foreign(reason) = existing(&path) else {
            panic!("directory accepted")
        };
        assert!(reason.contains("a directory"), "{reason}");
    }
}
