//! The rules guard against the real kernel: rules picked by `rules.match` are recorded, deleted
//! by hand (as systemd-networkd does on restart, incident 2), and restored identically.

use crate::common;

use common::Node;
use serde_json::{json, Value};

/// A node with kube-router's rules: pod CIDR to its own table, plus an fwmark rule and IPv6
/// twins.
fn kube_router(tag: &str) -> Node {
    let node = Node::new(tag);
    node.host
        .ip("rule add pref 100 from 10.244.0.0/16 lookup 77 proto static");
    node.host
        .ip("rule add pref 101 fwmark 0x1000/0xf000 lookup 78");
    node.host
        .ip("-6 rule add pref 100 from fd00:244::/56 lookup 77");
    node.host.ip("rule add pref 200 iif eth9 lookup 90");
    node
}

impl Node {
    fn run(&self, verb: &str, rules: Value) -> common::CniOutput {
        self.run_with(verb, json!({ "rules": rules }))
    }

    fn rules(&self) -> String {
        format!(
            "{}\n{}",
            self.host.ip("-d -4 rule show"),
            self.host.ip("-d -6 rule show")
        )
    }
}

fn guarded() -> Value {
    json!({"match": [{"table": 77}, {"fwmark": 4096}]})
}

#[test]
fn deleted_rules_of_both_families_are_restored_identically() {
    let node = kube_router("rules");
    let before = node.rules();
    node.run("ADD", guarded()).ok();
    let baseline: Value =
        serde_json::from_slice(&std::fs::read(node.state.join("baseline.json")).unwrap()).unwrap();
    assert_eq!(
        baseline["rules"].as_array().unwrap().len(),
        3,
        "{baseline:#}"
    );

    node.host
        .ip("rule del pref 100 from 10.244.0.0/16 lookup 77");
    node.host.ip("rule del pref 101");
    node.host.ip("-6 rule del pref 100");
    node.run("CHECK", guarded()).error(103);
    let out = node.run("ADD", guarded());
    out.ok();
    assert!(
        out.stderr.contains("restored missing policy rule"),
        "{}",
        out.stderr
    );
    assert_eq!(node.rules(), before);
    node.run("CHECK", guarded()).ok_silent();
}

#[test]
fn with_restore_off_check_answers_103_naming_the_rule() {
    let node = kube_router("rulesoff");
    let off = json!({"match": [{"table": 77, "priority": 100}], "restore": false});
    node.run("ADD", off.clone()).ok();
    node.host
        .ip("rule del pref 100 from 10.244.0.0/16 lookup 77");
    node.run("ADD", off.clone()).ok();
    assert!(!node.host.ip("rule show").contains("lookup 77"));
    let err = node.run("CHECK", off).error(103);
    assert!(err["msg"].as_str().unwrap().contains("pref 100"), "{err}");
}

#[test]
fn rules_that_no_selector_picks_are_never_touched() {
    let node = kube_router("rulesfree");
    node.run("ADD", guarded()).ok();
    node.host.ip("rule del pref 200");
    node.run("ADD", guarded()).ok();
    assert!(!node.host.ip("rule show").contains("lookup 90"));
    node.run("CHECK", guarded()).ok_silent();
}

#[test]
fn a_rule_added_later_joins_the_guard() {
    let node = kube_router("rulesnew");
    node.run("ADD", guarded()).ok();
    node.host.ip("rule add pref 150 to 10.96.0.0/12 lookup 77");
    node.run("ADD", guarded()).ok();
    node.host.ip("rule del pref 150");
    node.run("ADD", guarded()).ok();
    assert!(node
        .host
        .ip("rule show")
        .contains("150:\tfrom all to 10.96.0.0/12 lookup 77"));
}

#[test]
fn status_answers_50_while_a_guarded_rule_is_missing_with_restore_off() {
    let node = kube_router("rulestat");
    let off = json!({"match": [{"table": 77, "priority": 100}], "restore": false});
    node.run("ADD", off.clone()).ok();
    node.run("STATUS", off.clone()).ok_silent();
    node.host
        .ip("rule del pref 100 from 10.244.0.0/16 lookup 77");
    let err = node.run("STATUS", off).error(50);
    assert!(err["msg"].as_str().unwrap().contains("pref 100"), "{err}");
    // With restore on, the next ADD puts it back: no reason to stop scheduling pods.
    node.run("STATUS", guarded()).ok_silent();
}
