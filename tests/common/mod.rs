//! Shared test harness: throwaway network namespaces and a builder that runs the real hostguard
//! binary as a runtime would (CNI_* environment, config on stdin) inside one of them.
//!
//! Host safety: every namespace here is created by the test and removed by `Drop`, even when the
//! test panics. The machine's root namespace is never changed: `ip` always runs with `-n`.
#![allow(dead_code)]

pub mod guard;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod netns;

pub const BIN: &str = env!("CARGO_BIN_EXE_hostguard");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    // Namespace names are file names under /run/netns; keep them short and unique per process.
    let mut tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    tag.truncate(12);
    format!("hgt-{}-{n}-{tag}", std::process::id())
}

/// A network namespace that exists for the life of the value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n <ns> <args>`; panics with the command's stderr if it fails.
    pub fn ip(&self, args: &str) -> String {
        let out = self.try_ip(args);
        assert!(
            out.status.success(),
            "ip -n {} {args}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_ip(&self, args: &str) -> Output {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(&self.name);
        cmd.args(args.split_whitespace());
        cmd.output().expect("run ip")
    }

    /// A veth pair with `here` in this namespace and `there` in `peer`, both up.
    pub fn veth_to(&self, here: &str, peer: &Netns, there: &str) {
        self.ip(&format!(
            "link add {here} type veth peer name {there} netns {}",
            peer.name
        ));
        self.ip(&format!("link set {here} up"));
        peer.ip(&format!("link set {there} up"));
    }

    /// Every route of every table and both families, as `ip -d` prints them, sorted: the
    /// before/after picture the route tests compare.
    pub fn all_routes(&self) -> Vec<String> {
        let mut lines: Vec<String> = ["-4", "-6"]
            .iter()
            .flat_map(|fam| {
                self.ip(&format!("-d {fam} route show table all"))
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        lines
    }

    pub fn default_routes(&self) -> Vec<String> {
        self.all_routes()
            .into_iter()
            .filter(|l| l.contains("default"))
            .filter(|l| !l.contains("table local"))
            .collect()
    }

    /// Links, addresses, routes and rules: the whole observable network state.
    pub fn snapshot(&self) -> String {
        let mut parts = vec![
            self.ip("-d link show"),
            self.ip("addr show"),
            self.all_routes().join("\n"),
        ];
        for fam in ["-4", "-6"] {
            parts.push(self.ip(&format!("{fam} rule show")));
        }
        parts.join("\n----\n")
    }
}

impl Netns {
    /// Turns IPv6 duplicate address detection off for the links made from now on: addresses
    /// (kernel link-locals too) are final at once, so two pictures of an untouched namespace
    /// are equal.
    pub fn without_dad(&self) {
        run_ok(Command::new("ip").args([
            "netns",
            "exec",
            &self.name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]));
    }

    /// `hostguard ARGS...` inside this namespace, as an operator or an init container runs it.
    pub fn hostguard<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, BIN]).args(args);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One run of the real binary as a runtime makes it: environment from scratch, config on stdin,
/// optionally inside a namespace and under a time limit.
#[derive(Clone)]
pub struct Cni {
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    host: Option<String>,
    limit: Option<Duration>,
}

#[derive(Debug)]
pub struct CniOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CniOutput {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }

    /// Asserts a CNI error with `code` (exit 1, the spec's error object on stdout) and returns it.
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

    pub fn ok(&self) -> &Self {
        assert_eq!(self.status, 0, "expected success, got {self:?}");
        self
    }

    pub fn ok_silent(&self) {
        self.ok();
        assert_eq!(self.stdout, "", "stdout must be empty: {self:?}");
    }
}

impl Cni {
    pub fn new(verb: &str) -> Cni {
        Cni {
            env: vec![
                ("CNI_COMMAND".into(), verb.into()),
                ("CNI_PATH".into(), "/usr/lib/cni".into()),
            ],
            stdin: Vec::new(),
            host: None,
            limit: None,
        }
    }

    /// ADD/CHECK/DEL with the usual attachment parameters.
    pub fn attach(verb: &str, id: &str, netns: &Path, ifname: &str) -> Cni {
        Cni::new(verb)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", &netns.display().to_string())
            .env("CNI_IFNAME", ifname)
    }

    pub fn env(mut self, key: &str, value: &str) -> Cni {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn unset(mut self, key: &str) -> Cni {
        self.env.retain(|(k, _)| k != key);
        self
    }

    pub fn stdin(mut self, body: impl Into<Vec<u8>>) -> Cni {
        self.stdin = body.into();
        self
    }

    pub fn config(self, conf: &Value) -> Cni {
        self.stdin(conf.to_string())
    }

    /// Runs the plugin inside `host` instead of the test's own namespace.
    pub fn in_ns(mut self, host: &Netns) -> Cni {
        self.host = Some(host.name.clone());
        self
    }

    /// Makes [`Cni::run`] kill a run that outlives `limit` and fail the test as a hang, instead
    /// of blocking the suite.
    pub fn hang_limit(mut self, limit: Duration) -> Cni {
        self.limit = Some(limit);
        self
    }

    /// The command, environment set, for tests that spawn and feed it themselves.
    pub fn command(&self) -> Command {
        let mut cmd = match &self.host {
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

    pub fn run(&self) -> CniOutput {
        match self.limit {
            Some(limit) => self
                .run_within(limit)
                .unwrap_or_else(|| panic!("hostguard hung for {limit:?} on {:?}", self.env)),
            None => self.finish(None).expect("a run without a limit finishes"),
        }
    }

    /// `None` if the run did not finish within `limit` (it is killed, by its PID).
    pub fn run_within(&self, limit: Duration) -> Option<CniOutput> {
        self.finish(Some(limit))
    }

    fn finish(&self, limit: Option<Duration>) -> Option<CniOutput> {
        let started = Instant::now();
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hostguard");
        let mut stdin = child.stdin.take().expect("stdin");
        let body = self.stdin.clone();
        // A separate writer: the plugin may stop reading early (oversized input; the broken pipe
        // is then expected), and a blocked write must not keep this thread from noticing a hang.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait hostguard") {
                break Some(status);
            }
            if limit.is_some_and(|limit| started.elapsed() > limit) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = writer.join();
        let stdout = stdout.join().expect("stdout reader");
        let stderr = stderr.join().expect("stderr reader");
        Some(CniOutput {
            status: status?.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).trim_end().to_string(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// Reads `pipe` to its end on a thread of its own, so that neither pipe can fill and stall the
/// child while the other is read.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// What one attachment needs: a host namespace the plugin runs in, a container namespace and a
/// state directory.
pub struct Node {
    pub host: Netns,
    pub container: Netns,
    pub state: TempDir,
    /// Where a dual-homed host's gateways live; kept for the node's life.
    _gateways: Option<Netns>,
}

impl Node {
    pub fn new(tag: &str) -> Node {
        Node {
            host: Netns::new(&format!("{tag}h")),
            container: Netns::new(&format!("{tag}c")),
            state: TempDir::new(tag),
            _gateways: None,
        }
    }

    /// Incident 1's node: eth0 172.26.0.3/27 and 2001:db8:0::3/64, eth1 172.26.0.35/27 and
    /// 2001:db8:1::3/64, their gateways (.1, .33, ::1) in a namespace of their own, no routes yet.
    pub fn dual_homed(tag: &str) -> Node {
        let host = Netns::new(&format!("{tag}h"));
        host.without_dad();
        let gateways = Netns::new(&format!("{tag}p"));
        host.veth_to("eth0", &gateways, "gw0");
        host.veth_to("eth1", &gateways, "gw1");
        host.ip("addr add 172.26.0.3/27 dev eth0");
        host.ip("addr add 172.26.0.35/27 dev eth1");
        host.ip("-6 addr add 2001:db8:0::3/64 dev eth0 nodad");
        host.ip("-6 addr add 2001:db8:1::3/64 dev eth1 nodad");
        gateways.ip("addr add 172.26.0.1/27 dev gw0");
        gateways.ip("addr add 172.26.0.33/27 dev gw1");
        gateways.ip("-6 addr add 2001:db8:0::1/64 dev gw0 nodad");
        gateways.ip("-6 addr add 2001:db8:1::1/64 dev gw1 nodad");
        Node {
            host,
            container: Netns::new(&format!("{tag}c")),
            state: TempDir::new(tag),
            _gateways: Some(gateways),
        }
    }

    /// Incident 1's case A on a dual-homed node: a static default route through each uplink.
    pub fn case_a(&self) {
        self.host
            .ip("route add default via 172.26.0.1 dev eth0 proto static");
        self.host
            .ip("route append default via 172.26.0.33 dev eth1 proto static");
    }

    /// Container `id`'s eth0, with the plugin run inside the host namespace.
    pub fn attach(&self, verb: &str, id: &str) -> Cni {
        Cni::attach(verb, id, &self.container.path(), "eth0").in_ns(&self.host)
    }

    /// A 1.1.0 configuration with this node's state directory, a prevResult and `extra` keys.
    pub fn chained_conf(&self, extra: Value) -> Value {
        let mut conf = conf("1.1.0", &self.state.path, extra);
        conf["prevResult"] = prev_result("1.1.0");
        conf
    }

    /// Container "ctr1" with [`Node::chained_conf`] of `extra`, run to its end.
    pub fn run_with(&self, verb: &str, extra: Value) -> CniOutput {
        self.attach(verb, "ctr1")
            .config(&self.chained_conf(extra))
            .run()
    }

    /// The baseline the plugin recorded.
    pub fn baseline(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state.join("baseline.json")).unwrap()).unwrap()
    }
}

/// A test's `runDir`: inside its `stateDir`, so that no test ever shares the machine's
/// /run/hostguard (a journal or lock shared by tests in different namespaces would mix them up),
/// and so that removing the state directory removes it too.
pub fn run_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("run")
}

/// A network configuration for hostguard at `version` with `state_dir` (and its [`run_dir`]),
/// plus extra keys.
pub fn conf(version: &str, state_dir: &Path, extra: Value) -> Value {
    let mut base = serde_json::json!({
        "cniVersion": version,
        "name": "hgtest",
        "type": "hostguard",
        "stateDir": state_dir.display().to_string(),
        "runDir": run_dir(state_dir).display().to_string(),
    });
    if let (Some(obj), Value::Object(more)) = (base.as_object_mut(), extra) {
        obj.extend(more);
    }
    base
}

/// A prevResult in the shape of `version` (0.3.x/0.4.0 carry `ips[].version`).
pub fn prev_result(version: &str) -> Value {
    let mut ip =
        serde_json::json!({"address": "10.88.0.5/24", "gateway": "10.88.0.1", "interface": 2});
    if version.starts_with("0.") {
        ip["version"] = "4".into();
    }
    serde_json::json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/x"}
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.88.0.1"]},
        "x-unknown-vendor-field": {"kept": true}
    })
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A stand-in NetworkManager: a process whose comm is "NetworkManager" (a copy of sleep) with its
/// pid file and device records in a private run directory. Killed by PID on drop.
pub struct FakeNetworkManager {
    pub run_dir: TempDir,
    pub conf_dir: TempDir,
    child: std::process::Child,
}

impl FakeNetworkManager {
    /// Starts it inside `host`: NetworkManager only manages links of its own namespace, and
    /// hostguard only counts a NetworkManager that shares its namespace.
    pub fn start(host: &Netns) -> FakeNetworkManager {
        let run_dir = TempDir::new("nmrun");
        let conf_dir = TempDir::new("nmconf");
        // The kernel names a process after the path it was exec'd by, so a symlink to sleep
        // runs as "NetworkManager"; unlike a copy, it is never open for writing, so no thread
        // forking meanwhile can make the exec fail with ETXTBSY.
        let bin = run_dir.join("NetworkManager");
        std::os::unix::fs::symlink("/bin/sleep", &bin).expect("symlink sleep");
        // `ip netns exec` execs the binary, so the pid and the name are the stand-in's.
        let child = Command::new("ip")
            .args(["netns", "exec", &host.name])
            .arg(&bin)
            .arg("600")
            .spawn()
            .expect("start fake NetworkManager");
        // Until `ip` has exec'd, the process is still called "ip".
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "NetworkManager") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(
            run_dir.join("NetworkManager.pid"),
            format!("{}\n", child.id()),
        )
        .unwrap();
        std::fs::create_dir_all(run_dir.join("devices")).unwrap();
        FakeNetworkManager {
            run_dir,
            conf_dir,
            child,
        }
    }

    /// Writes NetworkManager's runtime record for `ifindex`.
    pub fn device(&self, ifindex: u32, managed: bool) {
        std::fs::write(
            self.run_dir.join(&format!("devices/{ifindex}")),
            format!("[device]\nmanaged={managed}\n"),
        )
        .unwrap();
    }

    /// The conflist section pointing hostguard at these directories.
    pub fn config(&self) -> Value {
        serde_json::json!({
            "runDir": self.run_dir.path.display().to_string(),
            "confDir": self.conf_dir.path.display().to_string(),
        })
    }
}

impl Drop for FakeNetworkManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Netns {
    pub fn ifindex(&self, name: &str) -> u32 {
        let text = self.ip(&format!("-o link show {name}"));
        text.split(':')
            .next()
            .unwrap()
            .trim()
            .parse()
            .expect("ifindex")
    }
}

/// The file names of the attachment records in the [`run_dir`] of `state_dir`, of every network
/// (records live in `attachments/<network>/`; the older flat layout kept them in `attachments/`),
/// sorted.
pub fn attachment_records(state_dir: &Path) -> Vec<String> {
    records_in(&run_dir(state_dir))
}

/// The file names of the attachment records under `dir` (a runDir, or the stateDir of a
/// hostguard before runDir), sorted.
pub fn records_in(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let top = dir.join("attachments");
    for entry in std::fs::read_dir(&top).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            for inner in std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                names.push(inner.file_name().to_string_lossy().into_owned());
            }
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}
