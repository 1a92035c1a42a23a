//! Waking up on changes in the config directory (inotify) and on SIGTERM/SIGINT (signalfd), with a
//! deadline, in one poll(2): no sleep loop and no thread. The watch is armed before the first look
//! at the directory, so a file that appears between the look and the wait is never missed.
//! Without inotify there is no safe way to run, so failing to set it up is an error, not a fallback.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Every way a file's content can appear, change or go: written in place (MODIFY, CLOSE_WRITE),
/// created, renamed in or out, deleted.
fn content_events() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MODIFY
}

/// The directory itself going away or moving leaves us watching nothing.
fn self_events() -> AddWatchFlags {
    AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_ONLYDIR
}

/// How the last event seen for a file left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// Written to, created, deleted or moved away: it may be mid-change.
    Changed,
    /// Closed after writing, or renamed into place: its writer is done with it.
    Completed,
}

impl Last {
    fn of(mask: AddWatchFlags) -> Self {
        if mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO) {
            Last::Completed
        } else {
            Last::Changed
        }
    }
}

/// What woke us.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Names in the config directory that had events, with how the last one left each.
    pub names: BTreeMap<OsString, Last>,
    /// The file a symlinked upstream points to (outside the directory) had events.
    pub followed: Option<Last>,
    /// The kernel dropped events: anything may have changed.
    pub overflow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    Changed(Changes),
    Deadline,
    Signal(Signal),
}

/// A watch on the directory a symlinked upstream resolves into, filtered to the target's name.
#[derive(Debug)]
struct Followed {
    wd: WatchDescriptor,
    name: OsString,
    target: PathBuf,
}

#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    signals: SignalFd,
    dir: PathBuf,
    dir_wd: WatchDescriptor,
    followed: Option<Followed>,
}

impl Watcher {
    /// Arms the directory watch and takes SIGTERM/SIGINT over from their default action.
    pub fn new(dir: &Path) -> Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(|errno| {
            anyhow::anyhow!(
                "cannot initialise inotify ({errno}); hostguard will not wait or watch blind: raise \
                 fs.inotify.max_user_instances or the open-file limit (ulimit -n)"
            )
        })?;
        let dir_wd = inotify
            .add_watch(dir, content_events() | self_events())
            .with_context(|| {
                format!(
                    "watch {} with inotify (is fs.inotify.max_user_watches exhausted?)",
                    dir.display()
                )
            })?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGINT);
        // Blocked, the signals queue for the signalfd instead of killing us mid-write.
        mask.thread_block().context("block SIGTERM and SIGINT")?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("create a signalfd for SIGTERM and SIGINT")?;
        Ok(Watcher {
            inotify,
            signals,
            dir: dir.to_path_buf(),
            dir_wd,
            followed: None,
        })
    }

    /// Also watches `target` (the resolved file behind a symlinked upstream), or stops doing so.
    pub fn follow(&mut self, target: Option<&Path>) -> Result<()> {
        if self.followed.as_ref().map(|f| f.target.as_path()) == target {
            return Ok(());
        }
        if let Some(old) = self.followed.take() {
            if old.wd != self.dir_wd {
                // The watch may be gone already (its directory was removed).
                let _ = self.inotify.rm_watch(old.wd);
            }
        }
        let Some(target) = target else {
            return Ok(());
        };
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Ok(());
        };
        // Watching the same directory twice returns the same descriptor, so use one mask for both.
        let wd = self
            .inotify
            .add_watch(parent, content_events() | self_events())
            .with_context(|| {
                format!(
                    "watch {} for changes to {}",
                    parent.display(),
                    target.display()
                )
            })?;
        self.followed = Some(Followed {
            wd,
            name: name.to_os_string(),
            target: target.to_path_buf(),
        });
        Ok(())
    }

    /// Blocks until something changes, a signal arrives, or `deadline` passes (`None`: no deadline).
    /// Returns every queued change at once, so a burst of events is one wake-up.
    pub fn wait(&mut self, deadline: Option<Instant>) -> Result<Wake> {
        loop {
            if let Some(signal) = self.pending_signal()? {
                return Ok(Wake::Signal(signal));
            }
            let changes = self.drain()?;
            if changes != Changes::default() {
                return Ok(Wake::Changed(changes));
            }
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Wake::Deadline);
                    }
                    // Round up so we never wake a hair early and spin on a zero timeout.
                    let millis = left.as_nanos().div_ceil(1_000_000);
                    PollTimeout::try_from(millis.min(i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => bail!("poll on inotify and signalfd: {errno}"),
            }
        }
    }

    fn pending_signal(&mut self) -> Result<Option<Signal>> {
        match self.signals.read_signal() {
            Ok(Some(info)) => Ok(Signal::try_from(info.ssi_signo as i32).ok()),
            Ok(None) => Ok(None),
            Err(errno) => bail!("read signalfd: {errno}"),
        }
    }

    fn drain(&mut self) -> Result<Changes> {
        let mut changes = Changes::default();
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(changes),
                Err(Errno::EINTR) => continue,
                Err(errno) => bail!("read inotify events for {}: {errno}", self.dir.display()),
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    changes.overflow = true;
                    continue;
                }
                if event.wd == self.dir_wd {
                    if event.mask.intersects(
                        AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF
                            | AddWatchFlags::IN_IGNORED,
                    ) {
                        bail!(
                            "{} was removed, moved or unmounted; nothing is watched any more",
                            self.dir.display()
                        );
                    }
                    if let Some(name) = event.name.as_ref().filter(|name| !is_own_scratch(name)) {
                        changes.names.insert(name.clone(), Last::of(event.mask));
                    }
                }
                if let Some(followed) = &self.followed {
                    if event.wd == followed.wd {
                        if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                            // Its directory went away: the symlink now dangles, which the next look sees.
                            self.followed = None;
                            changes.followed = Some(Last::Changed);
                        } else if event.name.as_deref() == Some(followed.name.as_os_str()) {
                            changes.followed = Some(Last::of(event.mask));
                        }
                    }
                }
            }
        }
    }
}

/// Our lock file and temporary files: every sync opens the lock for writing (closing it raises
/// IN_CLOSE_WRITE) and every write makes a temporary file, so waking on them would make each look
/// trigger the next one, a busy loop at rest. The renamed result shows up under its real name.
fn is_own_scratch(name: &std::ffi::OsStr) -> bool {
    name == super::write::LOCK_NAME || crate::atomic::is_temp_name(&name.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reports_names_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut watcher = Watcher::new(dir.path()).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(watcher.wait(Some(soon)).unwrap(), Wake::Deadline);
        std::fs::write(dir.path().join("10-a.conflist"), b"{}").unwrap();
        std::fs::rename(
            dir.path().join("10-a.conflist"),
            dir.path().join("20-b.conflist"),
        )
        .unwrap();
        let Wake::Changed(changes) = watcher.wait(None).unwrap() else {
            panic!("no change seen")
        };
        assert_eq!(
            changes.names.values().collect::<Vec<_>>(),
            [&Last::Changed, &Last::Completed]
        );
        let names: Vec<_> = changes
            .names
            .keys()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a.conflist", "20-b.conflist"]);
    }

    #[test]
    fn our_lock_and_temporary_files_wake_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut watcher = Watcher::new(dir.path()).unwrap();
        drop(
            crate::lock::lock_exclusive(&dir.path().join(super::super::write::LOCK_NAME)).unwrap(),
        );
        let temp = format!(
            "{}00-hostguard.conflist.1.000000001",
            crate::atomic::TEMP_PREFIX
        );
        std::fs::write(dir.path().join(&temp), b"{}").unwrap();
        std::fs::remove_file(dir.path().join(&temp)).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(watcher.wait(Some(soon)).unwrap(), Wake::Deadline);
    }

    #[test]
    fn follows_a_target_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("real.conflist");
        std::fs::write(&target, b"{}").unwrap();
        let mut watcher = Watcher::new(dir.path()).unwrap();
        watcher.follow(Some(&target)).unwrap();
        std::fs::write(elsewhere.path().join("unrelated"), b"x").unwrap();
        std::fs::write(&target, b"{ }").unwrap();
        let Wake::Changed(changes) = watcher.wait(None).unwrap() else {
            panic!("no change seen")
        };
        assert_eq!(changes.followed, Some(Last::Completed));
        assert!(changes.names.is_empty());
    }

    #[test]
    fn removing_the_directory_is_an_error() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("net.d");
        std::fs::create_dir(&dir).unwrap();
        let mut watcher = Watcher::new(&dir).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        let err = watcher
            .wait(Some(Instant::now() + Duration::from_secs(5)))
            .unwrap_err();
        assert!(err.to_string().contains("was removed"), "{err}");
    }
}
