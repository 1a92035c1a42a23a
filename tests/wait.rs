//! waitFor through the real binary (incident 3): ADD runs inside a throwaway host namespace and
//! waits while the test creates, addresses, raises, deletes and re-creates the upstream
//! interface there with `ip -n`. ipip is not available here, so `tunl0` is a bridge of that name;
//! what hostguard checks (name, IFF_UP, addresses) is the same for any link kind.
//!
//! Each step waits for ADD's own log line saying what it now waits for, so the test knows the
//! waiter saw the previous change before making the next one; no step depends on timing.

mod common;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{conf, prev_result, Cni, CniOutput, Node};
use serde_json::{json, Value};

impl Node {
    fn log_path(&self) -> PathBuf {
        self.state.join("hostguard.log")
    }

    fn cni(&self, verb: &str, wait_for: Value) -> Cni {
        let mut conf = conf(
            "1.1.0",
            &self.state.join("state"),
            json!({
                "logFile": self.log_path().display().to_string(),
                "logLevel": "debug",
                "waitFor": wait_for,
            }),
        );
        conf["prevResult"] = prev_result("1.1.0");
        let cni = if verb == "STATUS" {
            Cni::new(verb).in_ns(&self.host)
        } else {
            self.attach(verb, "ctr1")
        };
        cni.config(&conf)
    }

    fn run(&self, verb: &str, wait_for: Value) -> CniOutput {
        self.cni(verb, wait_for).run()
    }

    /// Starts ADD and returns once it has logged that it is waiting.
    fn start_add(&self, wait_for: Value) -> JoinHandle<CniOutput> {
        let cni = self.cni("ADD", wait_for);
        let add = std::thread::spawn(move || cni.run());
        self.await_log("waiting up to");
        add
    }

    /// The log messages written so far.
    fn log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|v| v["msg"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits (bounded) until a log message contains `needle`.
    fn await_log(&self, needle: &str) -> String {
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.log().into_iter().find(|m| m.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < give_up,
                "no log line with {needle:?}; log: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn has_baseline(&self) -> bool {
        self.state.join("state/baseline.json").exists()
    }
}

fn tunl0(up: bool, cidr: Option<&str>, timeout_ms: u64) -> Value {
    let mut interface = json!({"name": "tunl0", "up": up});
    if let Some(cidr) = cidr {
        interface["cidr"] = cidr.into();
    }
    json!({"interfaces": [interface], "timeoutMs": timeout_ms})
}

/// ADD succeeded and passed prevResult through.
fn assert_added(out: &CniOutput) {
    out.ok();
    let result = out.json();
    assert_eq!(result["x-unknown-vendor-field"]["kept"], true, "{result}");
    assert_eq!(result["ips"][0]["address"], "10.88.0.5/24");
}

#[test]
fn add_waits_for_a_missing_interface_to_be_created() {
    let node = Node::new("create");
    let add = node.start_add(tunl0(false, None, 20_000));
    let first = node.await_log("waiting up to");
    assert!(first.ends_with(": tunl0 does not exist"), "{first}");
    assert!(!add.is_finished(), "ADD returned before tunl0 existed");
    assert!(
        !node.has_baseline(),
        "ADD touched the host before tunl0 was ready"
    );

    node.host.ip("link add tunl0 type bridge");
    assert_added(&add.join().unwrap());
    node.await_log("waitFor interfaces ready after");
    assert!(node.has_baseline());
}

#[test]
fn add_waits_for_the_address_of_a_created_interface() {
    let node = Node::new("addr");
    let add = node.start_add(tunl0(true, Some("10.244.0.0/16"), 20_000));
    node.host.ip("link add tunl0 type bridge");
    node.host.ip("link set tunl0 up");
    node.await_log("still waiting: tunl0 exists but has no address in 10.244.0.0/16");
    assert!(
        !add.is_finished(),
        "ADD returned before tunl0 had its address"
    );

    node.host.ip("addr add 10.244.5.1/16 dev tunl0");
    assert_added(&add.join().unwrap());
}

#[test]
fn add_waits_for_a_down_interface_to_come_up() {
    let node = Node::new("up");
    node.host.ip("link add tunl0 type bridge");
    node.host.ip("addr add 10.244.5.1/16 dev tunl0");
    let add = node.start_add(tunl0(true, Some("10.244.0.0/16"), 20_000));
    let first = node.await_log("waiting up to");
    assert!(first.ends_with(": tunl0 exists but is down"), "{first}");
    assert!(!add.is_finished());

    node.host.ip("link set tunl0 up");
    assert_added(&add.join().unwrap());
}

#[test]
fn add_follows_an_interface_deleted_and_recreated_while_it_waits() {
    let node = Node::new("recreate");
    node.host.ip("link add tunl0 type bridge");
    node.host.ip("addr add 10.244.5.1/16 dev tunl0");
    let add = node.start_add(tunl0(true, Some("10.244.0.0/16"), 20_000));
    node.await_log("tunl0 exists but is down");

    node.host.ip("link del tunl0");
    node.await_log("still waiting: tunl0 does not exist");
    assert!(!add.is_finished());

    // The new tunl0 has a new ifindex; its address and state are what count now.
    node.host.ip("link add tunl0 type bridge");
    node.await_log("still waiting: tunl0 exists but is down and has no address");
    node.host.ip("addr add 10.244.9.1/16 dev tunl0");
    node.host.ip("link set tunl0 up");
    assert_added(&add.join().unwrap());
}

#[test]
fn add_answers_try_again_later_at_the_deadline_and_leaves_the_host_alone() {
    let node = Node::new("never");
    let before = node.host.snapshot();
    let started = Instant::now();
    let out = node.run("ADD", tunl0(true, Some("10.244.0.0/16"), 1_000));
    let elapsed = started.elapsed();
    let err = out.error(11);
    assert_eq!(err["msg"], "tunl0 does not exist");
    let details = err["details"].as_str().unwrap();
    assert!(
        details.contains("tunl0 up with an address in 10.244.0.0/16"),
        "{details}"
    );
    assert!(details.contains("retry"), "{details}");
    // Only proves it waited and then returned; precision is the benchmark's business.
    assert!(elapsed >= Duration::from_millis(1_000), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert!(
        !node.has_baseline(),
        "nothing may be recorded before readiness"
    );
    assert_eq!(node.host.snapshot(), before);
}

#[test]
fn an_address_of_the_wrong_family_is_not_enough() {
    let node = Node::new("family");
    node.host.ip("link add tunl0 type bridge");
    node.host.ip("-6 addr add fd00:244::1/64 dev tunl0 nodad");
    let out = node.run("ADD", tunl0(false, Some("10.244.0.0/16"), 200));
    let err = out.error(11);
    assert_eq!(
        err["msg"],
        "tunl0 exists but has no address in 10.244.0.0/16 (it has fd00:244::1/64)"
    );
    // The same address satisfies an IPv6 CIDR.
    assert_added(&node.run("ADD", tunl0(false, Some("fd00:244::/48"), 200)));
}

#[test]
fn an_address_outside_the_cidr_is_named_in_the_error() {
    let node = Node::new("outside");
    node.host.ip("link add tunl0 type bridge");
    node.host.ip("addr add 10.1.2.3/8 dev tunl0");
    let err = node
        .run("ADD", tunl0(false, Some("10.244.0.0/16"), 200))
        .error(11);
    assert_eq!(
        err["msg"],
        "tunl0 exists but has no address in 10.244.0.0/16 (it has 10.1.2.3/8)"
    );
}

#[test]
fn every_interface_must_hold_before_add_goes_on() {
    let node = Node::new("several");
    let wait_for = json!({
        "interfaces": [
            {"name": "tunl0", "up": true},
            {"name": "cni0", "cidr": "10.88.0.0/16"}
        ],
        "timeoutMs": 20_000
    });
    let add = node.start_add(wait_for);
    node.await_log(": tunl0 does not exist");

    node.host.ip("link add tunl0 type bridge");
    node.host.ip("link set tunl0 up");
    node.await_log("still waiting: cni0 does not exist");
    assert!(!add.is_finished(), "ADD went on with cni0 missing");

    node.host.ip("link add cni0 type bridge");
    node.await_log("still waiting: cni0 exists but has no address in 10.88.0.0/16");
    assert!(!add.is_finished(), "ADD went on without cni0's address");

    node.host.ip("addr add 10.88.0.1/16 dev cni0");
    assert_added(&add.join().unwrap());
}

#[test]
fn status_reports_readiness_without_waiting() {
    let node = Node::new("status");
    let wait_for = tunl0(true, Some("10.244.0.0/16"), 60_000);
    let started = Instant::now();
    let err = node.run("STATUS", wait_for.clone()).error(50);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "STATUS waited for the timeout"
    );
    assert_eq!(err["msg"], "tunl0 does not exist");

    node.host.ip("link add tunl0 type bridge");
    node.host.ip("addr add 10.244.0.1/16 dev tunl0");
    let err = node.run("STATUS", wait_for.clone()).error(50);
    assert_eq!(err["msg"], "tunl0 exists but is down");

    node.host.ip("link set tunl0 up");
    node.run("STATUS", wait_for).ok_silent();
}

#[test]
fn check_reports_an_upstream_interface_that_went_away() {
    let node = Node::new("check");
    node.host.ip("link add tunl0 type bridge");
    node.host.ip("addr add 10.244.0.1/16 dev tunl0");
    node.host.ip("link set tunl0 up");
    let wait_for = tunl0(true, Some("10.244.0.0/16"), 60_000);
    assert_added(&node.run("ADD", wait_for.clone()));
    node.run("CHECK", wait_for.clone()).ok_silent();

    node.host.ip("addr del 10.244.0.1/16 dev tunl0");
    let started = Instant::now();
    let err = node.run("CHECK", wait_for.clone()).error(11);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "CHECK waited for the timeout"
    );
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .starts_with("tunl0 exists but has no address in 10.244.0.0/16 (it has "),
        "{err}"
    );

    node.host.ip("link del tunl0");
    let err = node.run("CHECK", wait_for).error(11);
    assert_eq!(err["msg"], "tunl0 does not exist");
}

#[test]
fn add_without_wait_for_does_not_wait() {
    let node = Node::new("nowait");
    assert_added(&node.run("ADD", json!({})));
    assert!(!node.log().iter().any(|m| m.contains("waiting")));
}
