//! `runDir`: per-boot state (attachment records, the uplink journal, locks) lives there, the
//! baseline in `stateDir`; records a hostguard before `runDir` left in `stateDir` are still
//! removed by DEL and judged by GC.

use std::path::Path;

use crate::common;
use common::{Cni, Node, TempDir};
use serde_json::{json, Value};

/// Everything under `dir`, as relative paths, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(top: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(top).unwrap().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(top, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A node whose runDir is a directory of its own, beside (not inside) its stateDir, and its
/// configuration.
fn apart(tag: &str) -> (Node, TempDir, Value) {
    let node = Node::new(tag);
    let run = TempDir::new(&format!("{tag}-run"));
    let mut conf = node.chained_conf(json!({}));
    conf["runDir"] = json!(run.path.display().to_string());
    (node, run, conf)
}

/// GC of `conf`'s network with the runtime knowing the attachments of `valid` (on eth0).
fn gc(node: &Node, conf: &Value, valid: &[&str]) {
    let mut conf = conf.clone();
    conf["cni.dev/valid-attachments"] = valid
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    Cni::new("GC")
        .in_ns(&node.host)
        .config(&conf)
        .run()
        .ok_silent();
}

fn record(id: &str, network: &str) -> String {
    json!({"version": 1, "containerID": id, "ifname": "eth0", "netns": "/x",
           "network": network, "created_unix": 1})
    .to_string()
}

#[test]
fn records_and_locks_land_in_run_dir_and_the_baseline_in_state_dir() {
    let (node, run, conf) = apart("rundir");
    for id in ["c1", "c2", "c3"] {
        node.attach("ADD", id).config(&conf).run().ok();
    }
    assert_eq!(listing(&node.state.path), ["baseline.json"]);
    assert_eq!(
        common::records_in(&run.path),
        ["c1@eth0.json", "c2@eth0.json", "c3@eth0.json"]
    );
    let locks: Vec<String> = listing(&run.path)
        .into_iter()
        .filter(|p| p.ends_with(".lock"))
        .collect();
    assert_eq!(locks, ["attachments.lock", "baseline.lock", "uplink.lock"]);

    node.attach("DEL", "c1").config(&conf).run().ok_silent();
    assert_eq!(
        common::records_in(&run.path),
        ["c2@eth0.json", "c3@eth0.json"]
    );
    gc(&node, &conf, &["c3"]);
    assert_eq!(common::records_in(&run.path), ["c3@eth0.json"]);
    assert_eq!(listing(&node.state.path), ["baseline.json"]);
}

/// An upgrade keeps the records of the pods that ran before it: they are in `stateDir`, where
/// the older hostguard wrote them, in either of its layouts.
#[test]
fn records_an_older_hostguard_left_in_state_dir_are_removed_by_del_and_judged_by_gc() {
    let (node, run, conf) = apart("runold");
    node.attach("ADD", "new").config(&conf).run().ok();
    let old = node.state.join("attachments");
    std::fs::create_dir_all(old.join("hgtest")).unwrap();
    for id in ["gone", "kept", "stale"] {
        std::fs::write(
            old.join("hgtest").join(format!("{id}@eth0.json")),
            record(id, "hgtest"),
        )
        .unwrap();
    }
    std::fs::write(old.join("flat@eth0.json"), record("flat", "hgtest")).unwrap();
    std::fs::write(old.join("other@eth0.json"), record("other", "red")).unwrap();

    node.attach("DEL", "gone").config(&conf).run().ok_silent();
    node.attach("DEL", "flat").config(&conf).run().ok_silent();
    assert_eq!(
        common::records_in(&node.state.path),
        ["kept@eth0.json", "other@eth0.json", "stale@eth0.json"]
    );

    gc(&node, &conf, &["new", "kept"]);
    // Another network's record is not this GC's to judge.
    assert_eq!(
        common::records_in(&node.state.path),
        ["kept@eth0.json", "other@eth0.json"]
    );
    assert_eq!(common::records_in(&run.path), ["new@eth0.json"]);
}

/// DEL reads runDir on its own: a broken key elsewhere does not keep it from the record, and an
/// unusable runDir is logged, never a failed DEL.
#[test]
fn del_reads_run_dir_alone_and_never_fails_on_it() {
    let (node, run, conf) = apart("rundel");
    node.attach("ADD", "c1").config(&conf).run().ok();
    node.attach("ADD", "c2").config(&conf).run().ok();
    let mut broken = conf.clone();
    broken["routes"] = json!({"restor": true});
    node.attach("DEL", "c1").config(&broken).run().ok_silent();
    assert_eq!(common::records_in(&run.path), ["c2@eth0.json"]);
    for bad in [json!("relative/run"), json!(7), json!("")] {
        let mut conf = conf.clone();
        conf["runDir"] = bad;
        node.attach("DEL", "c2").config(&conf).run().ok_silent();
    }
    // The unusable runDir was not guessed at: the record is still there for a DEL that can find it.
    assert_eq!(common::records_in(&run.path), ["c2@eth0.json"]);
    node.attach("ADD", "c3")
        .config(&{
            let mut conf = conf.clone();
            conf["runDir"] = json!("relative/run");
            conf
        })
        .run()
        .error(7);
}
