//! Netlink faults: a dump that races with changes in the namespace it reads. The kernel marks such
//! a dump `NLM_F_DUMP_INTR` (its pages may mix the state before and after a change); the client
//! maps that to EINTR. A node's links and addresses change all the time while pods start (veths
//! come and go), so an interrupted dump must be retried, a bounded number of times, not turned
//! into a failed ADD.

use crate::common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{conf, prev_result, Cni, Netns, TempDir};
use serde_json::json;

/// `count` veth pairs: enough links that one dump spans many datagrams (the kernel fills about
/// 32 KiB per read), so a change can land between two of them.
fn many_links(ns: &Netns, count: usize) {
    let script: String = (0..count)
        .map(|i| format!("link add va{i} type veth peer name vb{i}\n"))
        .collect();
    batch(ns, &script).wait().unwrap();
}

/// Runs `ip -n ns -batch -` with `script` on stdin, in the background.
fn batch(ns: &Netns, script: &str) -> Child {
    let mut child = Command::new("ip")
        .args(["-n", &ns.name, "-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = script.to_string();
    std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    child
}

/// Link and address churn: a veth pair and an address appear and go away, `rounds` times.
fn churn(ns: &Netns, rounds: usize) -> Child {
    let script: String = (0..rounds)
        .map(|i| {
            let n = i % 4;
            format!(
                "link add cz{n} type veth peer name cy{n}\naddr add 10.99.{n}.1/24 dev cz{n}\n\
                 link del cz{n}\n"
            )
        })
        .collect();
    batch(ns, &script)
}

struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaper {
    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

#[test]
fn dumps_racing_with_link_changes_are_retried_not_failed() {
    let ns = Netns::new("intr");
    many_links(&ns, 150);
    let mut nl = common::netns::netlink_in(&ns.path()).unwrap();
    let mut churner = Reaper(churn(&ns, 1500));
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut dumps, mut failures) = (0, Vec::new());
    while churner.running() && Instant::now() < deadline {
        for result in [
            nl.links().map(|l| l.len()),
            nl.addresses(None, None).map(|a| a.len()),
        ] {
            dumps += 1;
            if let Err(err) = result {
                failures.push(err.to_string());
            }
        }
    }
    assert!(dumps > 20, "the churn ended before the dumps could race it");
    assert!(
        failures.is_empty(),
        "{} of {dumps} dumps failed while links changed, e.g. {}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn add_succeeds_while_the_host_links_change() {
    let host = Netns::new("intradd");
    let container = Netns::new("intrctr");
    let state = TempDir::new("intradd");
    many_links(&host, 150);
    let mut churner = Reaper(churn(&host, 1500));
    let config = conf(
        "1.0.0",
        &state.path,
        json!({"prevResult": prev_result("1.0.0")}),
    );
    let mut failures = Vec::new();
    let mut runs = 0;
    while churner.running() && runs < 30 {
        let id = format!("c{runs}");
        let out = Cni::attach("ADD", &id, &container.path(), "eth0")
            .in_ns(&host)
            .config(&config)
            .run();
        if out.status != 0 {
            failures.push(out.stdout);
        }
        // A fresh baseline each time: recording it is the part that dumps every link.
        let _ = std::fs::remove_file(state.join("baseline.json"));
        runs += 1;
    }
    assert!(runs >= 5, "the churn ended before the ADDs could race it");
    assert!(
        failures.is_empty(),
        "{} of {runs} ADDs failed while links changed: {}",
        failures.len(),
        failures[0]
    );
}
