//! The guard daemon as the tests run it: inside a throwaway host namespace, its stdout kept,
//! its HTTP endpoints asked from inside that namespace, killed by its PID on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::{Netns, Node, BIN};

/// Every namespace has its own loopback, so one port serves every test.
pub const METRICS: &str = "127.0.0.1:9465";

/// The daemon, started inside `host`; killed by its PID on drop.
pub struct Guard {
    pub child: Child,
    netns: PathBuf,
    stdout: Arc<Mutex<String>>,
    pub entry: PathBuf,
}

impl Guard {
    pub fn start(node: &Node, entry: Value, settle_ms: u64) -> Guard {
        Guard::start_in(&node.host, &node.state.path, entry, settle_ms, &[])
    }

    /// Started inside `host` through `wrapper` (e.g. `unshare -p`), which must exec or forward
    /// signals to the daemon.
    pub fn start_in(
        host: &Netns,
        state: &Path,
        mut entry: Value,
        settle_ms: u64,
        wrapper: &[&str],
    ) -> Guard {
        entry["stateDir"] = json!(state.join("state").display().to_string());
        entry["runDir"] = json!(crate::common::run_dir(&state.join("state"))
            .display()
            .to_string());
        let path = state.join("entry.json");
        std::fs::write(&path, entry.to_string()).unwrap();
        let mut args = vec!["--plugin-config".to_string(), path.display().to_string()];
        args.extend(["--settle-ms".to_string(), settle_ms.to_string()]);
        Guard::spawn(host, wrapper, &args, path)
    }

    /// `hostguard guard ARGS --metrics-addr METRICS` inside `host`; `entry` is the file a test
    /// may rewrite before a SIGHUP.
    pub fn spawn(host: &Netns, wrapper: &[&str], args: &[String], entry: PathBuf) -> Guard {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.name])
            .args(wrapper)
            .args([BIN, "guard"])
            .args(args)
            .args(["--metrics-addr", METRICS])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hostguard guard");
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stdout);
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let guard = Guard {
            child,
            netns: host.path(),
            stdout,
            entry,
        };
        guard.wait(
            "the daemon answers /readyz with 200",
            Duration::from_secs(10),
            || guard.get("/readyz").0 == 200,
        );
        guard
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// One HTTP GET from inside the host namespace: (status, body), or (0, error) when nothing
    /// answers.
    pub fn get(&self, path: &str) -> (u16, String) {
        let path = path.to_string();
        super::netns::run_in(&self.netns, move || {
            let mut stream = TcpStream::connect(METRICS)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            let code = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            Ok((code, body.to_string()))
        })
        .unwrap_or_else(|err| (0, err.to_string()))
    }

    /// The value of one sample line of /metrics, e.g. `hostguard_restores_total{kind="route"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{body}"))
    }

    /// Waits (bounded) until `done`; returns how long it took.
    pub fn wait(&self, what: &str, limit: Duration, done: impl Fn() -> bool) -> Duration {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < limit,
                "not within {limit:?}: {what}\ndaemon stdout:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        started.elapsed()
    }

    pub fn logs(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// User + system CPU time of the daemon so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap_or(100) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Peak resident set size over the daemon's life, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
