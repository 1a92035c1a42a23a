//! Concurrency on one node: 64 containers' ADD/DEL pairs in parallel in one host namespace, every
//! ADD configured to attach the same uplink, and `hostguard install --state-dir` (which records
//! the baseline under the same lock) running at the same time in a conf dir. Afterwards: every
//! attachment record exists exactly while its container is attached, the uplink was attached
//! once with every default route kept, baseline.json and the chained conflist are valid, no lock
//! is held, no temporary file is left.

use crate::hostile_support;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::thread;

use hostile_support::{assert_state_whole, temp_files, Node};
use serde_json::{json, Value};

const PODS: usize = 64;

fn install(node: &Node, conf_dir: &Path) -> std::process::Child {
    node.host
        .hostguard(["install", "--conf-dir"])
        .arg(conf_dir)
        .arg("--state-dir")
        .arg(node.state())
        .arg("--run-dir")
        .arg(node.state().join("run"))
        .args(["--timeout", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn assert_installed(child: std::process::Child, conf_dir: &Path) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chained: Value =
        serde_json::from_slice(&std::fs::read(conf_dir.join("00-hostguard.conflist")).unwrap())
            .unwrap();
    let plugins = chained["plugins"].as_array().unwrap();
    assert_eq!(plugins.last().unwrap()["type"], "hostguard");
    assert!(temp_files(conf_dir).is_empty());
}

fn expected_records(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = (0..PODS)
        .map(|i| format!("{prefix}{i}@eth0.json"))
        .collect();
    names.sort();
    names
}

#[test]
fn sixty_four_parallel_add_del_pairs_with_an_uplink_attach_and_an_install() {
    let node = Node::new("conc");
    // The uplink: eth1 with an address and a default route in its own table, to be moved into
    // br-up by exactly one of the ADDs.
    node.host.veth_to("eth1", &node.container, "peer1");
    node.host.ip("addr add 172.27.0.3/24 dev eth1");
    node.host
        .ip("route add default via 172.27.0.1 dev eth1 table 100");
    let log = node.dir.join("hostguard.log");
    let conf = node.conf(
        "1.1.0",
        json!({
            "logFile": log.display().to_string(),
            "uplink": {"interface": "eth1", "bridge": "br-up"},
        }),
    );
    let conf_dir = node.dir.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.1.0","name":"k8s","plugins":[{"type":"bridge","bridge":"cni0"}]}"#,
    )
    .unwrap();
    let defaults_before = node.host.default_routes();

    // Phase 1: 64 ADDs and an install at once; each pod sees its own record right after its ADD.
    // Phase 2: with all 64 attached, the main thread sees exactly 64 records.
    // Phase 3: 64 DELs at once; each pod's record is gone right after its DEL.
    let gate = Arc::new(Barrier::new(PODS + 1));
    let installer = install(&node, &conf_dir);
    let pods: Vec<_> = (0..PODS)
        .map(|i| {
            let gate = Arc::clone(&gate);
            let add = node.call("ADD", &format!("p{i}")).config(&conf);
            let del = node.call("DEL", &format!("p{i}")).config(&conf);
            let record = node
                .state()
                .join(format!("run/attachments/hostile/p{i}@eth0.json"));
            thread::spawn(move || {
                let out = add.run();
                assert_eq!(out.status, 0, "ADD p{i}: {out:?}");
                assert!(record.is_file(), "p{i} attached without a record");
                gate.wait();
                gate.wait();
                del.run().ok();
                assert!(!record.exists(), "p{i} detached but its record stayed");
            })
        })
        .collect();
    gate.wait();
    assert_eq!(node.records(), expected_records("p"));
    assert_state_whole(&node, "with 64 attached");
    gate.wait();
    for pod in pods {
        pod.join().unwrap();
    }
    assert!(node.records().is_empty(), "{:?}", node.records());
    assert_installed(installer, &conf_dir);

    // The uplink was attached once and nothing of the host was lost on the way.
    let attached = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("attached to br-up"))
        .count();
    assert_eq!(attached, 1, "the uplink was attached {attached} times");
    assert!(node.host.ip("-d link show eth1").contains("master br-up"));
    assert!(node
        .host
        .ip("addr show dev br-up")
        .contains("172.27.0.3/24"));
    let defaults_after = node.host.default_routes();
    let expected: Vec<String> = defaults_before
        .iter()
        .map(|r| r.replace("dev eth1", "dev br-up"))
        .collect();
    for route in &expected {
        assert!(
            defaults_after.contains(route),
            "lost {route}; now {defaults_after:#?}"
        );
    }

    // Phase 4: pairs without a pause, ADD then DEL per pod, while another install runs.
    let installer = install(&node, &conf_dir);
    let pods: Vec<_> = (0..PODS)
        .map(|i| {
            let add = node.call("ADD", &format!("q{i}")).config(&conf);
            let del = node.call("DEL", &format!("q{i}")).config(&conf);
            let record = node
                .state()
                .join(format!("run/attachments/hostile/q{i}@eth0.json"));
            thread::spawn(move || {
                add.run().ok();
                assert!(record.is_file(), "q{i} attached without a record");
                del.run().ok();
                assert!(!record.exists(), "q{i} detached but its record stayed");
            })
        })
        .collect();
    for pod in pods {
        pod.join().unwrap();
    }
    assert_installed(installer, &conf_dir);
    assert!(node.records().is_empty(), "{:?}", node.records());

    // No lock outlived its holder, nothing half-written, nothing temporary left.
    node.call("ADD", "final").config(&conf).run().ok();
    node.call("CHECK", "final").config(&conf).run().ok();
    assert_eq!(node.records(), ["final@eth0.json"]);
    assert_state_whole(&node, "at the end");
    assert!(temp_files(&node.dir.path).is_empty());
}
