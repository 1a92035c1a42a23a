//! Where hostguard keeps what it knows, in two places: `stateDir` (persistent) holds the baseline
//! and the uplink records, which describe the host across reboots; `runDir` (per boot, a tmpfs
//! such as /run) holds the per-attachment records, the uplink journal and the locks, which
//! describe only this boot. Every ADD writes a record, and creating a file on a disk cost more than
//! half of an ADD, while on tmpfs it costs almost nothing.
//!
//! A hostguard before `runDir` kept everything in `stateDir`: its records are still found there
//! by DEL and GC, and an interrupted uplink journal left there is adopted into `runDir` and
//! recovered as usual.
//!
//! Every file is written through the atomic writer and validated when read; a corrupt file is an
//! error that names it, never a panic and never silently replaced.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::libc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::lock::{self, LockGuard};

/// Bumped when a file's shape changes incompatibly; older files are then refused with a message.
pub const FORMAT_VERSION: u32 = 1;
/// State files are small; a huge one is corruption or an attack, and must not exhaust memory.
const MAX_STATE_FILE: u64 = 16 << 20;

pub const BASELINE_FILE: &str = "baseline.json";
pub const JOURNAL_FILE: &str = "uplink-journal.json";
pub const ATTACHMENTS_DIR: &str = "attachments";

#[derive(Debug, Clone)]
pub struct StateDir {
    /// `stateDir`: persistent.
    root: PathBuf,
    /// `runDir`: this boot's.
    run: PathBuf,
}

/// One ADD that has not been deleted yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub version: u32,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub network: String,
    pub created_unix: u64,
}

impl StateDir {
    /// Opens (creating with mode 0700 if needed) the state and run directories. A symlinked
    /// directory is accepted (operators move /var/lib onto other disks); files inside are never
    /// followed.
    pub fn open(root: &Path, run: &Path) -> Result<StateDir> {
        open_dir(root, "state")?;
        open_dir(&run.join(ATTACHMENTS_DIR), "run")?;
        own_directory(&run.join(ATTACHMENTS_DIR))?;
        Ok(StateDir {
            root: root.to_path_buf(),
            run: run.to_path_buf(),
        })
    }

    /// For DEL, which must not make a directory: `None` when neither directory exists, since
    /// there is nothing to clean. Either may be unknown (its key unusable); then the other stands
    /// for both, which is exactly the layout of a hostguard before `runDir`.
    pub fn open_existing(root: Option<&Path>, run: Option<&Path>) -> Result<Option<StateDir>> {
        let (root, run) = match (root, run) {
            (Some(root), Some(run)) => (root, run),
            (Some(one), None) | (None, Some(one)) => (one, one),
            (None, None) => return Ok(None),
        };
        let exists = |dir: &Path| fs::symlink_metadata(dir).is_ok();
        if !exists(root) && !exists(run) {
            return Ok(None);
        }
        for top in [root.join(ATTACHMENTS_DIR), run.join(ATTACHMENTS_DIR)] {
            if exists(&top) {
                own_directory(&top)?;
            }
        }
        Ok(Some(StateDir {
            root: root.to_path_buf(),
            run: run.to_path_buf(),
        }))
    }

    /// `stateDir`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `runDir`.
    pub fn run_root(&self) -> &Path {
        &self.run
    }

    /// Serializes the writers of one kind of state (`baseline`, `uplink`, `attachments`).
    /// Locks live in `runDir`: a lock only orders the processes of one boot.
    pub fn lock(&self, name: &str) -> Result<LockGuard> {
        lock::lock_exclusive(&self.run.join(format!("{name}.lock")))
    }

    /// The baseline's file; its shape belongs to `host::baseline`.
    pub fn baseline_path(&self) -> PathBuf {
        self.root.join(BASELINE_FILE)
    }

    /// Where the record of one attachment lives: `attachments/<network>/<containerID>@<ifname>.json`.
    /// Keyed by the network too, because a container may be attached to two networks through the
    /// same interface name, and GC of one network must never see the other's records.
    pub fn attachment_path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.run
            .join(ATTACHMENTS_DIR)
            .join(network_dir_name(network))
            .join(attachment_file_name(container_id, ifname))
    }

    /// The records directories to look in: `runDir`'s, then that of `stateDir`, where a
    /// hostguard before `runDir` wrote them, when it is another directory and exists.
    fn record_tops(&self) -> Vec<PathBuf> {
        let mut tops = vec![self.run.join(ATTACHMENTS_DIR)];
        let old = self.root.join(ATTACHMENTS_DIR);
        if self.root != self.run && fs::symlink_metadata(&old).is_ok() {
            tops.push(old);
        }
        tops
    }

    /// Written without fsync (the two fsyncs were most of a steady-state ADD: median 9.7 ms ->
    /// 2.8 ms on a busy ext4). A record describes a sandbox of this boot, and the power cut or
    /// kernel crash that can lose an unsynced write ends every sandbox on the node, so what it
    /// loses is stale by then. A record that comes back old, missing or empty after such a crash
    /// costs nothing: DEL removes the file whatever it holds and succeeds when it is absent, GC
    /// drops records it cannot read or that the runtime no longer lists, and nothing else reads
    /// them. The rename still keeps a half-written record from every reader while the node runs.
    pub fn write_attachment(&self, record: &AttachmentRecord) -> Result<()> {
        let path = self.attachment_path(&record.network, &record.container_id, &record.ifname);
        let dir = path.parent().unwrap_or(&self.run);
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("create {}", dir.display())),
        }
        own_directory(dir)?;
        let bytes = json_bytes(&path, record)?;
        atomic::write_atomic_unsynced(&path, &bytes, 0o600, |written| {
            reads_back_as_json(&path, written)
        })
    }

    /// Removes the record of one attachment of `network`, and a record of the older layout for
    /// the same container and interface unless it names another network, in `runDir` and in the
    /// `stateDir` of a hostguard before `runDir`. With `network` unknown (DEL of a configuration
    /// without a usable name) only the older layout's record can be found. Without a directory
    /// fsync, for the reason given at [`StateDir::write_attachment`]: a crash that undoes the
    /// removal brings back a record of a sandbox that the crash ended, and GC drops it.
    pub fn remove_attachment(
        &self,
        network: Option<&str>,
        container_id: &str,
        ifname: &str,
    ) -> Result<()> {
        for top in self.record_tops() {
            self.remove_attachment_in(&top, network, container_id, ifname)?;
        }
        Ok(())
    }

    fn remove_attachment_in(
        &self,
        top: &Path,
        network: Option<&str>,
        container_id: &str,
        ifname: &str,
    ) -> Result<()> {
        let file = attachment_file_name(container_id, ifname);
        if let Some(network) = network {
            let dir = top.join(network_dir_name(network));
            remove_if_present(&dir.join(&file))?;
            // The network's last record gone, its directory goes too (callers hold the
            // attachments lock, so no ADD is writing into it); one still in use is not empty.
            let _ = fs::remove_dir(dir);
        }
        let legacy = top.join(&file);
        let other_network = match (network, self.read_json::<AttachmentRecord>(&legacy)) {
            (Some(ours), Ok(Some(record))) => !record.network.is_empty() && record.network != ours,
            _ => false,
        };
        if !other_network {
            remove_if_present(&legacy)?;
        }
        Ok(())
    }

    /// The attachment files GC of `network` may judge, each with its parsed record or the reason
    /// it could not be read: every file of the network's own directory, and the older layout's
    /// files that name this network, name none, or cannot be read (they were always judged by
    /// every network's GC, and still are); in `runDir`, and in the `stateDir` of a hostguard
    /// before `runDir`.
    pub fn attachments_of(
        &self,
        network: &str,
    ) -> Result<Vec<(PathBuf, Result<AttachmentRecord>)>> {
        let mut out = Vec::new();
        for top in self.record_tops() {
            own_directory(&top)?;
            for (path, record) in self.records_in(&top)? {
                let foreign =
                    matches!(&record, Ok(r) if !r.network.is_empty() && r.network != network);
                if !foreign {
                    out.push((path, record));
                }
            }
            let own = top.join(network_dir_name(network));
            if fs::symlink_metadata(&own).is_ok() {
                own_directory(&own)?;
                out.extend(self.records_in(&own)?);
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The files (not directories, not temporaries) of one records directory.
    fn records_in(&self, dir: &Path) -> Result<Vec<(PathBuf, Result<AttachmentRecord>)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
            let entry = entry.with_context(|| format!("list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if atomic::is_temp_name(&name) || entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let record = self
                .read_json::<AttachmentRecord>(&path)
                .and_then(|r| r.with_context(|| format!("{} vanished", path.display())));
            out.push((path, record));
        }
        Ok(out)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.run.join(JOURNAL_FILE)
    }

    /// Moves an uplink journal that a hostguard before `runDir` left in `stateDir` to where the
    /// journal is now kept, so that the move it describes is finished or rolled back as any
    /// other. Under that hostguard's lock as well as ours, so a process of either version still
    /// running sees the journal in one place only. Returns whether there was one to move. The
    /// journal is checked by its reader afterwards; a file that cannot be moved (a symlink, too
    /// large) is an error naming it.
    pub fn adopt_old_journal(&self) -> Result<bool> {
        let old = self.root.join(JOURNAL_FILE);
        if self.root == self.run || fs::symlink_metadata(&old).is_err() {
            return Ok(false);
        }
        let _old_lock = lock::lock_exclusive(&self.root.join("uplink.lock"))?;
        let _lock = self.lock("uplink")?;
        let Some(journal) = self.read_json::<serde_json::Value>(&old)? else {
            return Ok(false);
        };
        if fs::symlink_metadata(self.journal_path()).is_ok() {
            bail!(
                "two uplink journals: {} and {}; a move can only be in progress once: inspect \
                 both, keep the one that describes the host, and delete the other",
                old.display(),
                self.journal_path().display()
            );
        }
        self.write_json_unsynced(&self.journal_path(), &journal)?;
        atomic::remove_durable(&old)?;
        Ok(true)
    }

    /// Reads a JSON state file: `None` if absent; an error naming the file if it is a symlink,
    /// not a regular file, too large, or not what we wrote.
    pub fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path);
        let file = match file {
            Ok(f) => f,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("open {} (a symlink there is refused)", path.display())
                })
            }
        };
        let meta = file
            .metadata()
            .with_context(|| format!("stat {}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        if meta.len() > MAX_STATE_FILE {
            bail!(
                "{} is {} bytes, larger than any state hostguard writes",
                path.display(),
                meta.len()
            );
        }
        let mut bytes = Vec::new();
        file.take(MAX_STATE_FILE + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("read {}", path.display()))?;
        let value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is corrupt", path.display()))?;
        Ok(Some(value))
    }

    /// Atomic but not fsynced: for state that only has to survive a killed process, never a
    /// power cut (the page cache survives the first; the second resets what the file describes).
    pub fn write_json_unsynced<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let bytes = json_bytes(path, value)?;
        atomic::write_atomic_unsynced(path, &bytes, 0o600, |written| {
            reads_back_as_json(path, written)
        })
    }

    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let bytes = json_bytes(path, value)?;
        atomic::write_atomic(path, &bytes, 0o600, |written| {
            reads_back_as_json(path, written)
        })
    }
}

/// Creates `dir` (and its parents) with mode 0700 if needed, and insists it is a directory.
fn open_dir(dir: &Path, what: &str) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {what} directory {}", dir.display()))?;
    let meta = fs::metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{what} directory {} is not a directory", dir.display());
    }
    Ok(())
}

/// Records are written into, and GC deletes from, these directories: through a planted symlink
/// both would reach a directory hostguard does not own.
fn own_directory(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is a symbolic link or not a directory; hostguard keeps attachment records \
             only in a directory of its own: remove it and the next call recreates it",
            dir.display()
        );
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("remove {}", path.display())),
    }
}

fn json_bytes<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .with_context(|| format!("serialize {}", path.display()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn reads_back_as_json(path: &Path, written: &[u8]) -> Result<()> {
    serde_json::from_slice::<serde_json::Value>(written)
        .map(drop)
        .with_context(|| format!("{} did not read back as JSON", path.display()))
}

/// `<containerID>@<ifname>.json`. The container ID is already restricted to `[A-Za-z0-9_.-]`;
/// the interface name may hold almost any byte, so everything outside that set is %-escaped and a
/// name can never leave the attachments directory.
pub fn attachment_file_name(container_id: &str, ifname: &str) -> String {
    format!("{}@{}.json", escape(container_id), escape(ifname))
}

/// A network's records directory: its name %-escaped (a leading dot too, so that no name becomes
/// `.` or `..`). Network names have no length limit in the spec; a long one is cut and made unique
/// again with a hash of the whole name, so the directory name always fits NAME_MAX.
pub fn network_dir_name(network: &str) -> String {
    const KEEP: usize = 160;
    let mut name = escape(network);
    if name.starts_with('.') {
        name.replace_range(..1, "%2E");
    }
    if name.len() > KEEP {
        let mut cut = KEEP;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        // FNV-1a: stable across releases and platforms, unlike std's hasher.
        let hash = network.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        name = format!("{}~{hash:016x}", &name[..cut]);
    }
    name
}

fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hg-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn file_names_cannot_escape_the_directory() {
        assert_eq!(attachment_file_name("abc", "eth0"), "abc@eth0.json");
        let hostile = attachment_file_name("a..b", "../../x");
        assert!(!hostile.contains('/'));
        assert_eq!(hostile, "a..b@..%2F..%2Fx.json");
        assert_ne!(
            attachment_file_name("a", "b@c"),
            attachment_file_name("a@b", "c")
        );
    }

    #[test]
    fn network_directories_stay_inside_and_fit() {
        assert_eq!(network_dir_name("k8s-pod-network"), "k8s-pod-network");
        assert_eq!(network_dir_name(".."), "%2E.");
        assert_eq!(network_dir_name("a/b"), "a%2Fb");
        let long = network_dir_name(&"x".repeat(4096));
        assert!(long.len() < 200, "{long}");
        assert_ne!(long, network_dir_name(&"x".repeat(4097)));
    }

    #[test]
    fn records_round_trip_and_corruption_is_named() {
        let dir = scratch("rt");
        let state = StateDir::open(&dir, &dir.join("run")).unwrap();
        let rec = AttachmentRecord {
            version: FORMAT_VERSION,
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            network: "n".into(),
            created_unix: 1,
        };
        state.write_attachment(&rec).unwrap();
        let all = state.attachments_of("n").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.as_ref().unwrap(), &rec);

        fs::write(dir.join(BASELINE_FILE), b"{\"version\":1,\"rou").unwrap();
        let err = state
            .read_json::<serde_json::Value>(&state.baseline_path())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("baseline.json is corrupt"),
            "{err:#}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlinked_and_special_state_files_are_refused() {
        let dir = scratch("sym");
        let state = StateDir::open(&dir, &dir.join("run")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join(BASELINE_FILE)).unwrap();
        let read = || state.read_json::<serde_json::Value>(&state.baseline_path());
        assert!(read().is_err());
        fs::remove_file(dir.join(BASELINE_FILE)).unwrap();
        nix::unistd::mkfifo(&dir.join(BASELINE_FILE), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read().unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        fs::remove_dir_all(dir).unwrap();
    }
}
