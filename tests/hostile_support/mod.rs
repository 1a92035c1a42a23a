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
            "runDir": self.state().join("run").display().to_string(),
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

    /// The host namespace and every file, except the log: DEL reports there the configuration
    /// problems it ignores, and a log line is no change to the node.
    pub fn picture(&self) -> Picture {
        let mut files = tree(&self.dir.path);
        files.remove("hostguard.log");
        Picture {
            host: self.host.snapshot(),
            files,
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
        } else if path.starts_with("run/attachments/") {
            assert!(value["containerID"].is_string(), "{when}: {path}");
        }
    }
    temps
}

/// A hostguard entry that sets every key of the contract.
pub fn full_entry(node: &Node) -> Value {
    json!({
        "logFile": node.dir.join("hostguard.log").display().to_string(),
        "logLevel": "info",
        "logMaxSizeMB": 10,
        "logMaxFiles": 3,
        "routes": {"restore": true, "restoreOnManaged": true, "dhcpGraceMs": 2000},
        "rules": {"match": [{"priority": 100, "table": 77, "src": "10.244.0.0/16",
                             "dst": "10.0.0.0/8", "fwmark": 1, "iif": "eth0", "oif": "eth1",
                             "protocol": "static"}],
                  "restore": true},
        "uplink": {"interface": "eth1", "bridge": "br-sec"},
        "refuse": {"team": true, "networkManager": true},
        "networkManager": {"runDir": "/run/NetworkManager", "confDir": "/etc/NetworkManager"},
        "waitFor": {"interfaces": [{"name": "tunl0", "up": true, "cidr": "10.244.0.0/16"}],
                    "timeoutMs": 1000},
    })
}

/// Every key of the contract's configuration (JSON pointers into [`Node::conf`] plus
/// [`full_entry`]) with values of every wrong JSON type, and a few out-of-range values of the
/// right type. The hostile-input suite feeds them to the plugin; the installer's schema test
/// feeds the entry keys among them to `install --plugin-config` as well.
pub fn wrong_values() -> Vec<(String, Vec<Value>)> {
    let not_string = || vec![json!(1), json!(true), json!([]), json!({}), json!(1.5)];
    let not_bool = || vec![json!(1), json!("true"), json!([]), json!({}), json!(0)];
    let not_u32 = || {
        vec![
            json!("1"),
            json!(true),
            json!([]),
            json!({}),
            json!(-1),
            json!(1.5),
            json!(4_294_967_296u64),
        ]
    };
    let not_object = || vec![json!(1), json!("x"), json!(true), json!([])];
    let not_array = || vec![json!(1), json!("x"), json!(true), json!({})];
    let mut cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "/cniVersion",
            vec![json!(1), json!(true), json!([]), json!({}), json!("")],
        ),
        (
            "/name",
            vec![json!(1), json!(true), json!([]), json!({}), json!("")],
        ),
        (
            "/prevResult",
            vec![json!([]), json!(1), json!("x"), json!(true)],
        ),
        (
            "/logFile",
            [not_string(), vec![json!("relative.log"), json!("")]].concat(),
        ),
        ("/logLevel", [not_string(), vec![json!("loud")]].concat()),
        (
            "/stateDir",
            [not_string(), vec![json!("var/lib"), json!("")]].concat(),
        ),
        (
            "/runDir",
            [not_string(), vec![json!("run/hostguard"), json!("")]].concat(),
        ),
        ("/routes", not_object()),
        ("/routes/restore", not_bool()),
        ("/routes/restoreOnManaged", not_bool()),
        (
            "/routes/dhcpGraceMs",
            vec![
                json!("1"),
                json!(true),
                json!(-1),
                json!(1.5),
                json!(60_001),
                json!([]),
            ],
        ),
        (
            "/logMaxSizeMB",
            vec![
                json!("1"),
                json!(true),
                json!(0),
                json!(-1),
                json!(1.5),
                json!(1025),
            ],
        ),
        (
            "/logMaxFiles",
            vec![
                json!("1"),
                json!(true),
                json!(0),
                json!(-1),
                json!(1.5),
                json!(101),
            ],
        ),
        ("/rules", not_object()),
        ("/rules/match", not_array()),
        ("/rules/match/0", [not_object(), vec![json!({})]].concat()),
        ("/rules/restore", not_bool()),
        ("/uplink", not_object()),
        (
            "/uplink/interface",
            [
                not_string(),
                vec![json!(""), json!("a/b"), json!("x".repeat(16))],
            ]
            .concat(),
        ),
        (
            "/uplink/bridge",
            [not_string(), vec![json!(".."), json!("a b"), json!("a:b")]].concat(),
        ),
        ("/refuse", not_object()),
        ("/refuse/team", not_bool()),
        ("/refuse/networkManager", not_bool()),
        ("/networkManager", not_object()),
        (
            "/networkManager/runDir",
            [not_string(), vec![json!("run")]].concat(),
        ),
        (
            "/networkManager/confDir",
            [not_string(), vec![json!("etc")]].concat(),
        ),
        ("/waitFor", not_object()),
        ("/waitFor/interfaces", not_array()),
        ("/waitFor/interfaces/0", not_object()),
        (
            "/waitFor/interfaces/0/name",
            [not_string(), vec![json!(""), json!("../x")]].concat(),
        ),
        ("/waitFor/interfaces/0/up", not_bool()),
        (
            "/waitFor/interfaces/0/cidr",
            [
                not_string(),
                vec![json!("10.0.0.0/33"), json!("::/129"), json!("tunl0")],
            ]
            .concat(),
        ),
        (
            "/waitFor/timeoutMs",
            vec![
                json!("1"),
                json!(true),
                json!(-1),
                json!(1.5),
                json!(120_001),
                json!([]),
            ],
        ),
    ];
    for key in ["priority", "table", "fwmark"] {
        let pointer: &'static str = Box::leak(format!("/rules/match/0/{key}").into_boxed_str());
        cases.push((pointer, not_u32()));
    }
    for key in ["src", "dst"] {
        let pointer: &'static str = Box::leak(format!("/rules/match/0/{key}").into_boxed_str());
        cases.push((
            pointer,
            [not_string(), vec![json!("10.0.0.300/8")]].concat(),
        ));
    }
    for key in ["iif", "oif"] {
        let pointer: &'static str = Box::leak(format!("/rules/match/0/{key}").into_boxed_str());
        cases.push((
            pointer,
            [not_string(), vec![json!("x".repeat(16))]].concat(),
        ));
    }
    cases.push((
        "/rules/match/0/protocol",
        vec![
            json!(true),
            json!([]),
            json!({}),
            json!(256),
            json!(-1),
            json!(1.5),
            json!("bogus"),
        ],
    ));

    cases
        .into_iter()
        .map(|(pointer, values)| (pointer.to_string(), values))
        .collect()
}
