//! What the hostile, fault and concurrency suites share: a node (a throwaway host namespace with a
//! realistic network, a container namespace, a scratch directory), a runner for the real binary
//! that never waits forever, and before/after pictures of the host and of the files.
//!
//! "Untouched" means: the host namespace's links, addresses, routes (every table, both families)
//! and rules print the same, and every file under the scratch directory has the same name, type,
//! mode, bytes and link target.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{prev_result, Netns, TempDir, BIN};

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
        for ns in [&host, &container] {
            crate::common::run_ok(Command::new("ip").args([
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ]));
        }
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
    pub fn call(&self, verb: &str, id: &str) -> Call {
        Call::new(verb)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", &self.container.path().display().to_string())
            .env("CNI_IFNAME", "eth0")
            .netns(&self.host.name)
    }

    pub fn picture(&self) -> Picture {
        Picture {
            host: self.host.snapshot(),
            files: tree(&self.dir.path),
        }
    }

    /// Attachment record file names, sorted.
    pub fn records(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state().join("attachments"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
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

/// One run of the real binary: environment from scratch, stdin, optionally inside a namespace.
#[derive(Clone)]
pub struct Call {
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    netns: Option<String>,
}

#[derive(Debug)]
pub struct Out {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }

    /// Asserts a CNI error with `code` (exit 1, JSON error on stdout) and returns it.
    pub fn error(&self, code: u64) -> Value {
        assert_eq!(self.status, 1, "expected a CNI error {code}: {self:?}");
        let json = self.json();
        assert_eq!(json["code"], code, "wrong code: {json}");
        assert!(
            json["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "no msg: {json}"
        );
        assert!(json["details"].is_string(), "no details: {json}");
        assert!(json["cniVersion"].is_string(), "no cniVersion: {json}");
        json
    }

    pub fn ok(&self) -> &Out {
        assert_eq!(self.status, 0, "expected success: {self:?}");
        self
    }

    /// The stdout text of a success, or the error's code.
    pub fn code(&self) -> Option<u64> {
        (self.status != 0).then(|| self.json()["code"].as_u64().unwrap_or(0))
    }
}

impl Call {
    pub fn new(verb: &str) -> Call {
        Call {
            env: vec![("CNI_COMMAND".into(), verb.into())],
            stdin: Vec::new(),
            netns: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Call {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn unset(mut self, key: &str) -> Call {
        self.env.retain(|(k, _)| k != key);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Call {
        self.stdin = bytes.into();
        self
    }

    pub fn config(self, conf: &Value) -> Call {
        self.stdin(conf.to_string())
    }

    pub fn netns(mut self, name: &str) -> Call {
        self.netns = Some(name.to_string());
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to completion; a run that outlives [`HANG`] is killed (by its PID) and fails the test.
    pub fn run(&self) -> Out {
        self.run_within(HANG)
            .unwrap_or_else(|| panic!("hostguard hung for {HANG:?} on {:?}", self.env))
    }

    /// `None` if the run did not finish within `limit` (it is killed).
    pub fn run_within(&self, limit: Duration) -> Option<Out> {
        let started = Instant::now();
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hostguard");
        let mut stdin = child.stdin.take().unwrap();
        let body = self.stdin.clone();
        // A separate writer: the plugin may stop reading early (oversized input), and a
        // blocked write must not keep this thread from noticing a hang.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut s);
            s
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait hostguard") {
                break Some(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        let _ = writer.join();
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        let status = status?;
        Some(Out {
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).trim_end().to_string(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        })
    }
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
