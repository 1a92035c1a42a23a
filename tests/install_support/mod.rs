//! Shared by the install integration tests: a throwaway node (config, bin and state directories),
//! the real binary, and a running installer whose stdout and stderr are collected as it goes.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const OUTPUT: &str = "00-hostguard.conflist";
pub const BIN: &str = env!("CARGO_BIN_EXE_hostguard");

pub struct Node {
    _tmp: TempDir,
    pub conf: PathBuf,
    pub bin: PathBuf,
    pub state: PathBuf,
    pub root: PathBuf,
}

impl Node {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let conf = root.join("net.d");
        fs::create_dir(&conf).unwrap();
        Node {
            conf,
            bin: root.join("bin"),
            state: root.join("state"),
            root,
            _tmp: tmp,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.conf.join(name)
    }

    pub fn output(&self) -> PathBuf {
        self.path(OUTPUT)
    }

    /// Writes a config file directly (not atomically), as most primaries do.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    pub fn put_testdata(&self, name: &str, testdata: &str) -> Vec<u8> {
        let bytes = testdata_bytes(testdata);
        self.put(name, &bytes);
        bytes
    }

    /// Writes next to the directory, then renames into place, as aws-node and atomic writers do.
    pub fn rename_in(&self, name: &str, bytes: &[u8]) {
        let staging = self.root.join(format!(".staging-{name}"));
        fs::write(&staging, bytes).unwrap();
        fs::rename(&staging, self.path(name)).unwrap();
    }

    pub fn command(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg(subcommand)
            .arg("--conf-dir")
            .arg(&self.conf)
            .args(args);
        command.env_remove("CNI_COMMAND");
        command
    }

    pub fn install(&self, args: &[&str]) -> Run {
        Run::from(
            self.command("install", args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    pub fn uninstall(&self, args: &[&str]) -> Run {
        Run::from(
            self.command("uninstall", args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    pub fn spawn_install(&self, args: &[&str]) -> Running {
        Running::spawn(self.command("install", args))
    }

    pub fn output_json(&self) -> Value {
        serde_json::from_slice(&fs::read(self.output()).unwrap()).unwrap()
    }

    /// Every entry of the config directory, sorted.
    pub fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.conf)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

pub fn testdata_bytes(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/install")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn testdata_json(name: &str) -> Value {
    serde_json::from_slice(&testdata_bytes(name)).unwrap()
}

pub fn plugin_types(list: &Value) -> Vec<String> {
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_string())
        .collect()
}

/// (inode, mtime in ns): both stay the same when a file is not rewritten.
pub fn identity(path: &Path) -> (u64, i128) {
    let meta = fs::metadata(path).unwrap();
    (
        meta.ino(),
        meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
    )
}

pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code(),
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn assert_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn assert_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

/// An installer running in the background; killed if the test ends before it does.
pub struct Running {
    pub child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (bounded) for the process to end and returns its status with everything it printed.
    pub fn finish(mut self, limit: Duration) -> Run {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "installer still running after {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(5));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        Run {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Waits (bounded) until `needle` shows up on stderr.
    pub fn await_stderr(&self, needle: &str, limit: Duration) {
        let seen = wait_until(limit, || self.stderr().contains(needle));
        assert!(
            seen,
            "stderr never showed {needle:?} within {limit:?}:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// Polls `condition` every 2 ms until it holds or `limit` passes. Tests use it to wait for an
/// outcome, never to assert how fast it came.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Checks a conflist the way a runtime and the contract would: valid, non-empty plugins, exactly one
/// hostguard entry, last.
pub fn assert_chained(bytes: &[u8]) -> Value {
    let list: Value = serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("invalid output ({e}): {:?}", String::from_utf8_lossy(bytes)));
    let types = plugin_types(&list);
    assert!(types.len() >= 2, "{types:?}");
    assert_eq!(
        types.iter().filter(|t| *t == "hostguard").count(),
        1,
        "{types:?}"
    );
    assert_eq!(types.last().unwrap(), "hostguard", "{types:?}");
    list
}
