//! What the hostile, fault and concurrency suites share: a node (a throwaway host namespace with a
//! realistic network, a container namespace, a scratch directory), runs of the real binary that
//! never wait forever, and before/after pictures of the host and of the files.
//!
//! "Untouched" means: the host namespace's links, addresses, routes (every table, both families)
//! and rules print the same, and every file under the scratch directory has the same name, type,
//! mode, bytes and link target.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{prev_result, Cni, Netns, TempDir};

/// Longer than any legitimate invocation here (the slowest waits 1 s); a run that reaches it is
/// reported as a hang instead of blocking the suite.
pub const HANG: Duration = Duration::from_secs(20);

pub struct Node {
    pub host: Netns,
    pub container: Netns,
    /// Scratch root; the state directory is `dir/state` so its creation is visible.
    pub dir: TempDir,
}

impl Node {
    /// A host with an uplink (veth to the container namespace standing in for the network), an
    /// IPv4 and an IPv6 default route, a second table with its own default, and a policy rule.
    pub fn new(tag: &str) -> Node {
        let host = Netns::new(&format!("{tag}h"));
        let container = Netns::new(&format!("{tag}c"));
        // Without duplicate address detection, addresses are final at once and two pictures
        // of an untouched host are equal.
        host.without_dad();
        container.without_dad();
        host.veth_to("eth0", &container, "peer0");
        host.ip("addr add 172.26.0.3/24 dev eth0");
        host.ip("-6 addr add fd00::3/64 dev eth0 nodad");
        host.ip("route add default via 172.26.0.1 dev eth0 metric 100");
        host.ip("route add default via 172.26.0.9 dev eth0 table 77");
        host.ip("-6 route add default via fd00::1 dev eth0 metric 1024");
        host.ip("rule add from 10.244.0.0/16 table 77 pref 100");
        Node {
            host,
            container,
            dir: TempDir::new(tag),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// A valid configuration at `version` with prevResult, plus `extra` keys.
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": "hostile",
            "type": "hostguard",
            "stateDir": self.state().display().to_string(),
            "rules": {"match": [{"table": 77}]},
            "prevResult": prev_result(version),
        });
        if let (Some(obj), Value::Object(more)) = (conf.as_object_mut(), extra) {
            obj.extend(more);
        }
        conf
    }

    /// An invocation inside the host namespace with the usual attachment variables.
    pub fn call(&self, verb: &str, id: &str) -> Cni {
        Cni::attach(verb, id, &self.container.path(), "eth0")
            .in_ns(&self.host)
            .hang_limit(HANG)
    }

    pub fn picture(&self) -> Picture {
        Picture {
            host: self.host.snapshot(),
            files: tree(&self.dir.path),
        }
    }

    /// Attachment record file names, sorted.
    pub fn records(&self) -> Vec<String> {
        crate::common::attachment_records(&self.state())
    }
}

/// The host namespace and the scratch files at one moment.
#[derive(Debug, PartialEq, Eq)]
pub struct Picture {
    pub host: String,
    pub files: BTreeMap<String, FileEntry>,
}

impl Picture {
    /// Asserts nothing changed, naming what did.
    pub fn assert_same(&self, after: &Picture, what: &str) {
        if self.host != after.host {
            let before: Vec<&str> = self.host.lines().collect();
            let now: Vec<&str> = after.host.lines().collect();
            let gone: Vec<&&str> = before.iter().filter(|l| !now.contains(l)).collect();
            let new: Vec<&&str> = now.iter().filter(|l| !before.contains(l)).collect();
            panic!("{what}: the host namespace changed\n--- gone: {gone:#?}\n--- new: {new:#?}");
        }
        if self.files != after.files {
            let changed: Vec<&String> = self
                .files
                .keys()
                .chain(after.files.keys())
                .filter(|k| self.files.get(*k) != after.files.get(*k))
                .collect();
            panic!("{what}: files changed: {changed:?}");
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEntry {
    File { mode: u32, bytes: Vec<u8> },
    Dir { mode: u32 },
    Symlink { target: PathBuf },
    Fifo { mode: u32 },
    Other,
}

/// Every entry under `root` (not following symlinks), by path relative to `root`.
pub fn tree(root: &Path) -> BTreeMap<String, FileEntry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, FileEntry>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        let item = if kind.is_symlink() {
            FileEntry::Symlink {
                target: std::fs::read_link(&path).unwrap_or_default(),
            }
        } else if kind.is_dir() {
            walk(root, &path, out);
            FileEntry::Dir { mode }
        } else if kind.is_file() {
            FileEntry::File {
                mode,
                bytes: std::fs::read(&path).unwrap_or_default(),
            }
        } else if kind.is_fifo() {
            FileEntry::Fifo { mode }
        } else {
            FileEntry::Other
        };
        out.insert(rel, item);
    }
}

/// Names in `dir` that the atomic writer uses for temporary files.
pub fn temp_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .filter(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".hostguard-tmp-"))
        })
        .collect()
}

/// `mkfifo path`.
pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Every file under the state directory that a reader would load is whole JSON (the baseline and
/// the attachment records also of the right shape); returns how many stale temporary files
/// there are, which readers skip.
pub fn assert_state_whole(node: &Node, when: &str) -> usize {
    let mut temps = 0;
    for (path, entry) in tree(&node.state()) {
        let name = std::path::Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name.starts_with(".hostguard-tmp-") {
            temps += 1;
            continue;
        }
        let FileEntry::File { bytes, .. } = entry else {
            continue;
        };
        if name.ends_with(".lock") {
            continue;
        }
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{when}: {path} is half-written ({e}): {bytes:?}"));
        if name == "baseline.json" {
            assert_eq!(value["version"], 1, "{when}: {path}");
            assert!(value["routes"].is_array(), "{when}: {path}");
        } else if path.starts_with("attachments/") {
            assert!(value["containerID"].is_string(), "{when}: {path}");
        }
    }
    temps
}
