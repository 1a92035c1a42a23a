//! Faults around a CNI call: the container namespace vanishing while ADD runs, a waitFor
//! interface deleted while ADD waits for it, corrupt state files, and SIGKILL at random moments
//! of every state-writing verb followed by a normal call that must work. Nothing half-written is
//! ever read as valid, stale temporary files are ignored, locks die with their holder.

use crate::common;
use crate::hostile_support;

use std::fs;
use std::time::{Duration, Instant};

use hostile_support::{temp_files, Node};
use serde_json::{json, Value};

fn log_has(path: &std::path::Path, needle: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// Waits (bounded) until the log at `path` contains `needle`.
fn await_log(path: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_has(path, needle) {
        assert!(Instant::now() < deadline, "the log never said {needle:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// ADD is waiting for the primary CNI when the pod's namespace is deleted (the runtime gave up on
/// the sandbox). hostguard never enters CNI_NETNS, so ADD finishes normally once the interface
/// appears; CHECK and DEL after the namespace is gone still work, and DEL removes the record.
#[test]
fn the_container_namespace_vanishing_mid_add_is_survived() {
    let node = Node::new("vanish");
    let log = node.dir.join("hostguard.log");
    let conf = node.conf(
        "1.1.0",
        json!({
            "logFile": log.display().to_string(),
            "waitFor": {"interfaces": [{"name": "tunl0", "up": true}], "timeoutMs": 10000},
        }),
    );
    // A namespace of its own: node.container holds the peer of the host's uplink, and deleting
    // it would take the uplink and its default routes with it (a few milliseconds later, when
    // the kernel's namespace cleanup runs), which is another fault than this test's.
    let doomed = common::Netns::new("vanishx");
    let container = doomed.path();
    let add = {
        let call = node
            .call("ADD", "c1")
            .env("CNI_NETNS", &container.display().to_string())
            .config(&conf);
        std::thread::spawn(move || call.run())
    };
    await_log(&log, "waiting up to");
    common::run_ok(std::process::Command::new("ip").args(["netns", "del", &doomed.name]));
    assert!(!container.exists());
    node.host.ip("link add tunl0 type veth peer name tunl0p");
    node.host.ip("link set tunl0 up");
    node.host.ip("link set tunl0p up");
    add.join().unwrap().ok();
    assert_eq!(node.records(), ["c1@eth0.json"]);
    let gone_netns = container.display().to_string();
    for verb in ["CHECK", "DEL", "DEL"] {
        node.call(verb, "c1")
            .env("CNI_NETNS", &gone_netns)
            .config(&conf)
            .run()
            .ok();
    }
    assert!(node.records().is_empty());
}

/// The waitFor interface appears and is deleted again while ADD waits: ADD keeps waiting, ends
/// at its deadline with code 11 naming the interface, and has recorded nothing.
#[test]
fn a_wait_for_interface_deleted_mid_wait_ends_in_code_11_with_nothing_recorded() {
    let node = Node::new("waitdel");
    let log = node.dir.join("hostguard.log");
    let conf = node.conf(
        "1.1.0",
        json!({
            "logFile": log.display().to_string(),
            "logLevel": "debug",
            "waitFor": {"interfaces": [{"name": "tunl0", "up": true, "cidr": "10.244.0.0/16"}],
                        "timeoutMs": 1500},
        }),
    );
    let before = node.picture();
    let add = {
        let call = node.call("ADD", "c1").config(&conf);
        std::thread::spawn(move || call.run())
    };
    await_log(&log, "waiting up to");
    node.host.ip("link add tunl0 type veth peer name tunl0p");
    node.host.ip("link set tunl0 up");
    await_log(&log, "tunl0 exists");
    node.host.ip("link del tunl0");
    let err = add.join().unwrap().error(11);
    assert!(err["msg"].as_str().unwrap().contains("tunl0"), "{err}");
    // Nothing recorded (the dispatcher creates the empty state directory to look for an
    // interrupted uplink move; no file is written in it), the host as before.
    let mut after = node.picture();
    after.files.retain(|path, entry| {
        path != "hostguard.log" && !matches!(entry, hostile_support::FileEntry::Dir { .. })
    });
    let written: Vec<&String> = after.files.keys().collect();
    assert!(written.is_empty(), "ADD wrote {written:?}");
    assert_eq!(before.host, after.host, "the host changed");
}

fn baseline_with(routes: Value) -> Value {
    json!({"version": 1, "routes": routes, "rules": []})
}

/// A baseline.json that is not what hostguard wrote: reported by name, never replaced, and
/// never a reason for DEL to fail.
#[test]
fn a_corrupt_baseline_is_reported_and_kept() {
    let node = Node::new("corrupt");
    let conf = node.conf("1.1.0", json!({}));
    node.call("ADD", "c0").config(&conf).run().ok();
    let path = node.state().join("baseline.json");
    let good = fs::read(&path).unwrap();
    let huge = {
        let mut v = br#"{"version":1,"routes":[],"pad":""#.to_vec();
        v.resize(17 << 20, b'a');
        v.extend_from_slice(b"\"}");
        v
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("null", b"null".to_vec()),
        ("garbage", vec![0x00, 0xff, 0x13, 0x37]),
        (
            "version 2",
            json!({"version": 2, "routes": []}).to_string().into_bytes(),
        ),
        (
            "routes is a string",
            json!({"version": 1, "routes": "all"})
                .to_string()
                .into_bytes(),
        ),
        (
            "unknown family",
            baseline_with(
                json!([{"family": "ipx", "table": 254, "metric": 0, "protocol": 4,
                                  "scope": 0, "type": 1}]),
            )
            .to_string()
            .into_bytes(),
        ),
        (
            "gateway is not an address",
            baseline_with(
                json!([{"family": "inet", "table": 254, "metric": 0, "protocol": 4,
                                  "scope": 0, "type": 1, "gateway": "router"}]),
            )
            .to_string()
            .into_bytes(),
        ),
        (
            "rule bytes are not hex",
            json!({"version": 1, "routes": [], "rules": [
                {"rule": "x", "family": "inet", "message": "zz"}]})
            .to_string()
            .into_bytes(),
        ),
        ("17 MiB", huge),
    ];
    for (what, bytes) in &cases {
        fs::write(&path, bytes).unwrap();
        let add = node.call("ADD", "c1").config(&conf).run();
        assert_eq!(add.status, 1, "{what}: ADD {add:?}");
        let err = add.error(5).to_string();
        // Reported to the lead, not fixed here: undecodable rule bytes are named by the rule
        // only ("rule \"x\": message is not hex"), under "could not read the host's routes".
        let named = err.contains("baseline.json")
            || (*what == "rule bytes are not hex" && err.contains("rule \\\"x\\\""));
        assert!(named, "{what}: {err}");
        node.call("CHECK", "c0").config(&conf).run().error(5);
        // STATUS compares the baseline with the host, as ADD does: a rule it cannot decode
        // means an ADD would fail, so the plugin is not available either.
        node.call("STATUS", "c0").config(&conf).run().error(50);
        node.call("DEL", "c0").config(&conf).run().ok();
        assert_eq!(
            &fs::read(&path).unwrap(),
            bytes,
            "{what}: baseline.json was rewritten"
        );
        assert!(temp_files(&node.state()).is_empty(), "{what}");
    }
    // Restoring the file heals everything.
    fs::write(&path, &good).unwrap();
    node.call("ADD", "c1").config(&conf).run().ok();
    node.call("CHECK", "c1").config(&conf).run().ok();
}

/// An uplink journal that cannot be read stops ADD and CHECK (they must not touch a host that may
/// be half-moved) with its path in the error; DEL goes on; the journal is kept for the operator.
#[test]
fn a_corrupt_uplink_journal_is_reported_and_kept() {
    let node = Node::new("journal");
    let conf = node.conf("1.1.0", json!({}));
    node.call("ADD", "c0").config(&conf).run().ok();
    let path = node.state().join("run/uplink-journal.json");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "truncated",
            br#"{"version":1,"operation":"attach","interface":"eth0","#.to_vec(),
        ),
        ("not a journal", br#"{"version":1}"#.to_vec()),
        ("an array", b"[]".to_vec()),
        ("garbage", vec![0xde, 0xad, 0xbe, 0xef]),
    ];
    for (what, bytes) in &cases {
        fs::write(&path, bytes).unwrap();
        let err = node.call("ADD", "c1").config(&conf).run().error(5);
        assert!(
            err.to_string().contains("uplink-journal.json"),
            "{what}: {err}"
        );
        node.call("CHECK", "c0").config(&conf).run().error(5);
        node.call("DEL", "c0").config(&conf).run().ok();
        assert_eq!(
            &fs::read(&path).unwrap(),
            bytes,
            "{what}: the journal was rewritten"
        );
    }
    fs::remove_file(&path).unwrap();
    node.call("ADD", "c1").config(&conf).run().ok();
}

/// Tiny xorshift: reproducible "random" kill moments without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// SIGKILL at random moments of ADD (which records the baseline and the attachment), DEL, GC and
/// `hostguard baseline --update`, on a fresh state directory every few rounds so the first-ADD
/// baseline write is hit too. After
/// each kill a normal ADD must complete (no lock outlives its holder) and every file a reader
/// would load must be whole.
#[test]
fn sigkill_at_random_moments_of_every_writer_leaves_whole_files_and_free_locks() {
    let node = Node::new("kill");
    let conf = node.conf("1.1.0", json!({}));
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut killed, mut finished, mut stale) = (0, 0, 0);
    let mut windows = [20_000u64; 4];
    for round in 0..80 {
        if round % 6 == 0 {
            let _ = fs::remove_dir_all(node.state());
        }
        let id = format!("k{round}");
        let call: common::Cni = match round % 4 {
            0 => node.call("ADD", &id).config(&conf),
            1 => node.call("DEL", &format!("k{}", round - 1)).config(&conf),
            2 => node.call("GC", &id).config(&gc),
            _ => node.call("ADD", &id).config(&conf),
        };
        let mut command = call.command();
        if round % 4 == 3 {
            // `hostguard baseline --update` rewrites the baseline from the host.
            command
                .env_remove("CNI_COMMAND")
                .args(["baseline", "--update", "--state-dir"]);
            command.arg(node.state());
            command.arg("--run-dir").arg(node.state().join("run"));
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let body = if round % 3 == 2 {
                gc.to_string()
            } else {
                conf.to_string()
            };
            let _ = stdin.write_all(body.as_bytes());
        }
        // The window adapts per verb so that most runs die somewhere inside, whatever the
        // machine's speed: shorter after a run that finished first, longer after a kill.
        let window = &mut windows[round % 4];
        std::thread::sleep(Duration::from_micros(rng.below(*window)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_some() {
            finished += 1;
            *window = (*window * 3 / 4).max(500);
        } else {
            killed += 1;
            *window = (*window * 5 / 4).min(40_000);
        }
        stale +=
            hostile_support::assert_state_whole(&node, &format!("round {round} after the kill"));
        let after = node
            .call("ADD", "keep")
            .config(&conf)
            .run_within(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("round {round}: a lock outlived the killed process"));
        assert_eq!(after.status, 0, "round {round}: {after:?}");
        hostile_support::assert_state_whole(&node, &format!("round {round} after the next ADD"));
    }
    // Readers skip stale temporary files: GC lists records without tripping on them.
    node.call("GC", "x").config(&gc).run().ok();
    assert_eq!(node.records(), ["keep@eth0.json"]);
    eprintln!(
        "{killed} runs killed, {finished} finished first, {stale} stale temporary files seen"
    );
    assert!(killed >= 25, "only {killed} of 80 runs were killed mid-way");
}

/// The uplink disappears (its driver unloaded, a veth peer's namespace deleted) after an attach
/// was killed part-way: the next calls must finish, undo or set aside the interrupted move and
/// say what happened, without hanging, failing DEL, or touching the host's other links.
#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the crash hooks: cargo test --features fault-injection"
)]
fn the_uplink_deleted_after_a_killed_attach_is_recovered_or_reported() {
    let node = Node::new("uplinkgone");
    let conf = node.conf(
        "1.1.0",
        json!({"uplink": {"interface": "eth1", "bridge": "br-up"}}),
    );
    let eth0_defaults: Vec<String> = node
        .host
        .default_routes()
        .into_iter()
        .filter(|r| r.contains("dev eth0"))
        .collect();
    for step in [0, 2, 4, 6, 8, 12, 16] {
        let _ = fs::remove_dir_all(node.state());
        let _ = node.host.try_ip("link del br-up");
        node.host.veth_to("eth1", &node.container, "peer1");
        node.host.ip("addr add 172.27.0.3/24 dev eth1");
        node.host
            .ip("route add default via 172.27.0.1 dev eth1 table 100");
        let killed = node
            .call("ADD", "c1")
            .env("HOSTGUARD_TEST_CRASH_AFTER_STEP", &step.to_string())
            .config(&conf)
            .run();
        node.host.ip("link del eth1");
        // DEL recovers what it can and succeeds whatever it finds.
        node.call("DEL", "c1").config(&conf).run().ok();
        let add = node.call("ADD", "c2").config(&conf).run();
        let err = add.json();
        assert_eq!(
            add.status, 1,
            "step {step} (first ADD {}): {add:?}",
            killed.status
        );
        let code = err["code"].as_u64().unwrap();
        eprintln!(
            "step {step}: first ADD {}, then {code}: {}",
            killed.status, err["msg"]
        );
        assert!(code == 104 || code == 5, "step {step}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("eth1") || text.contains("journal"),
            "step {step}: {err}"
        );
        // The journal was acted on: no later call finds it half-done.
        let journal = node.state().join("run/uplink-journal.json");
        if journal.exists() {
            let again = node.call("DEL", "c2").config(&conf).run();
            again.ok();
        }
        let now = node.host.default_routes();
        for route in &eth0_defaults {
            assert!(
                now.contains(route),
                "step {step}: lost {route}; now {now:#?}"
            );
        }
        hostile_support::assert_state_whole(&node, &format!("step {step}"));
    }
}

/// Attachment records that are not what hostguard wrote: ADD replaces its own, DEL removes its
/// own without reading it, GC drops those it cannot read, and none of them stops another pod.
#[test]
fn corrupt_attachment_records_are_replaced_removed_or_dropped() {
    let node = Node::new("badrec");
    let conf = node.conf("1.1.0", json!({}));
    node.call("ADD", "ok").config(&conf).run().ok();
    let dir = node.state().join("run/attachments");
    let garbage: [&[u8]; 4] = [b"", b"{\"containerID\":", b"\xff\xfe", b"[]"];
    for (i, bytes) in garbage.iter().enumerate() {
        fs::write(dir.join(format!("a{i}@eth0.json")), bytes).unwrap();
        fs::write(dir.join(format!("d{i}@eth0.json")), bytes).unwrap();
        fs::write(dir.join(format!("g{i}@eth0.json")), bytes).unwrap();
        node.call("ADD", &format!("a{i}")).config(&conf).run().ok();
        node.call("DEL", &format!("d{i}")).config(&conf).run().ok();
        node.call("CHECK", "ok").config(&conf).run().ok();
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "ok", "ifname": "eth0"},
        {"containerID": "a0", "ifname": "eth0"}, {"containerID": "a1", "ifname": "eth0"},
        {"containerID": "a2", "ifname": "eth0"}, {"containerID": "a3", "ifname": "eth0"},
    ]);
    node.call("GC", "x").config(&gc).run().ok();
    assert_eq!(
        node.records(),
        [
            "a0@eth0.json",
            "a1@eth0.json",
            "a2@eth0.json",
            "a3@eth0.json",
            "ok@eth0.json"
        ]
    );
    hostile_support::assert_state_whole(&node, "after GC");
}
