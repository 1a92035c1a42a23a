//! Reading a config file together with the identity and timestamps of what was read, so that a file
//! replaced or written to while we read it is noticed, and a FIFO, device or huge file under a config
//! name is never read. Upstream files are read through symlinks (operators link them in from
//! /var/lib/...); our own output is read without following one.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::libc;

use super::validate::Problem;

/// CNI configs are a few kilobytes; anything this large is not one.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// What identifies one version of a file: a rewrite in place changes the size or the timestamps,
/// a replacement by rename changes the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileState {
    fn of(meta: &Metadata) -> Self {
        FileState {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Time since the inode last changed (every write and every rename moves ctime, and unlike
    /// mtime it cannot be set back by a writer). Zero when the clock says it is in the future.
    pub fn unchanged_for(&self) -> Duration {
        let (secs, nanos) = self.ctime;
        let Ok(secs) = u64::try_from(secs) else {
            return Duration::MAX;
        };
        let changed = UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).unwrap_or(0));
        SystemTime::now()
            .duration_since(changed)
            .unwrap_or(Duration::ZERO)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: FileState,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// Reads `path` whole. `Ok(None)`: nothing is there (or a symlink to nothing).
pub fn read(path: &Path, links: Links) -> Result<Option<Snapshot>, Problem> {
    // O_NONBLOCK: opening a FIFO planted under a config name must not hang us.
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let mut file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) && links == Links::Refuse => {
            return Err(Problem::new("is a symbolic link"))
        }
        Err(err) => return Err(Problem::new(format!("cannot be opened: {err}"))),
    };
    let before = metadata(&file)?;
    if !before.file_type().is_file() {
        return Err(Problem::new(format!(
            "is {}, not a regular file",
            describe(&before)
        )));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Problem::new(format!("cannot be read: {err}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Problem::new(format!(
            "is larger than {MAX_CONFIG_BYTES} bytes, too large for a CNI config"
        )));
    }
    let after = FileState::of(&metadata(&file)?);
    if FileState::of(&before) != after || after.size != bytes.len() as u64 {
        return Err(Problem::changing("changed while being read"));
    }
    Ok(Some(Snapshot {
        state: after,
        bytes,
    }))
}

/// A phrase for what sits at `path` when it is not a readable regular file.
pub fn describe_path(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => match fs::read_link(path) {
            Ok(target) => format!("a symbolic link to {}", target.display()),
            Err(_) => "a symbolic link".to_string(),
        },
        Ok(meta) => describe(&meta).to_string(),
        Err(_) => "missing".to_string(),
    }
}

fn describe(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "a regular file"
    }
}

fn metadata(file: &File) -> Result<Metadata, Problem> {
    file.metadata()
        .map_err(|err| Problem::new(format!("cannot be inspected: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_a_link_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"{}").unwrap();
        let link = dir.path().join("10-a.conflist");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read(&link, Links::Follow).unwrap().unwrap().bytes, b"{}");
        assert_eq!(
            read(&link, Links::Refuse).unwrap_err().to_string(),
            "is a symbolic link"
        );
        assert!(describe_path(&link).starts_with("a symbolic link to "));
    }

    #[test]
    fn never_blocks_on_a_fifo_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("10-a.conflist");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(read(&fifo, Links::Follow)
            .unwrap_err()
            .to_string()
            .contains("a FIFO"));
        assert_eq!(read(&dir.path().join("none"), Links::Follow).unwrap(), None);
        std::os::unix::fs::symlink("/nonexistent/x", dir.path().join("dangling")).unwrap();
        assert_eq!(
            read(&dir.path().join("dangling"), Links::Follow).unwrap(),
            None
        );
    }

    #[test]
    fn a_rewrite_changes_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        fs::write(&path, b"one").unwrap();
        let first = read(&path, Links::Follow).unwrap().unwrap();
        fs::write(&path, b"three").unwrap();
        let second = read(&path, Links::Follow).unwrap().unwrap();
        assert_ne!(first.state, second.state);
        assert!(second.state.unchanged_for() < Duration::from_secs(5));
    }
}
