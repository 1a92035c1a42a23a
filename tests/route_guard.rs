//! The route guard against the real kernel: incident 1's node (eth0 and eth1, two default
//! routes), a hand-made loss, and what ADD, CHECK and `hostguard baseline` do about it.

use crate::common;

use common::{Node, TempDir};
use serde_json::{json, Value};

#[test]
fn first_add_records_every_default_route_of_every_table_and_family() {
    let node = Node::dual_homed("rec");
    node.case_a();
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 table 100 metric 5 onlink");
    node.host
        .ip("-6 route add default via 2001:db8::1 dev eth0 metric 1024");
    node.run_with("ADD", json!({})).ok();
    let routes = node.baseline()["routes"].as_array().unwrap().clone();
    assert_eq!(routes.len(), 4, "{routes:#?}");
    let table100 = routes.iter().find(|r| r["table"] == 100).unwrap();
    assert_eq!(table100["onlink"], true);
    assert_eq!(table100["metric"], 5);
    assert!(routes
        .iter()
        .any(|r| r["family"] == "inet6" && r["gateway"] == "2001:db8::1"));
}

#[test]
fn a_deleted_static_default_is_restored_identically_beside_its_twin() {
    let node = Node::dual_homed("caseA");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    let before = node.host.all_routes();

    node.host
        .ip("route del default via 172.26.0.1 dev eth0 proto static");
    assert_ne!(node.host.all_routes(), before);
    node.run_with("ADD", json!({})).ok();
    assert_eq!(node.host.all_routes(), before);
}

#[test]
fn case_b_metrics_and_rich_attributes_come_back_exactly() {
    let node = Node::dual_homed("caseB");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 metric 100");
    node.host.ip("route add default via 172.26.0.33 dev eth1 metric 200 src 172.26.0.35 mtu 1400 advmss 1360");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 table 1000 proto static onlink");
    node.run_with("ADD", json!({})).ok();
    let before = node.host.all_routes();
    node.host.ip("route del default dev eth1 metric 200");
    node.host.ip("route del default table 1000");
    node.run_with("ADD", json!({})).ok();
    assert_eq!(node.host.all_routes(), before);
}

#[test]
fn an_ipv6_multipath_default_is_restored_as_multipath() {
    let node = Node::dual_homed("mp6");
    node.host
        .ip("-6 route add default via 2001:db8:0::1 dev eth0 metric 1024");
    node.host
        .ip("-6 route append default via 2001:db8:1::1 dev eth1 metric 1024");
    let before = node.host.all_routes();
    assert!(before.iter().any(|l| l.contains("nexthop")), "{before:#?}");
    node.run_with("ADD", json!({})).ok();

    node.host.ip("-6 route del default");
    node.run_with("ADD", json!({})).ok();
    assert_eq!(node.host.all_routes(), before);

    // One hop lost (the collapse of incident 1's IPv6 variant): it is merged back in.
    node.host
        .ip("-6 route del default via 2001:db8:1::1 dev eth1 metric 1024");
    node.run_with("ADD", json!({})).ok();
    assert_eq!(node.host.all_routes(), before);
}

#[test]
fn with_restore_off_check_answers_100_and_add_only_warns() {
    let node = Node::dual_homed("norest");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.run_with("CHECK", json!({})).ok_silent();
    node.host.ip("route del default via 172.26.0.1 dev eth0");
    let off = json!({"routes": {"restore": false}});
    let out = node.run_with("ADD", off.clone());
    out.ok();
    assert!(
        out.stderr.contains("routes.restore is false"),
        "{}",
        out.stderr
    );
    assert!(!node
        .host
        .default_routes()
        .iter()
        .any(|l| l.contains("172.26.0.1 ")));
    let err = node.run_with("CHECK", off).error(100);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("via 172.26.0.1 dev eth0"),
        "{err}"
    );
}

#[test]
fn a_route_whose_device_is_down_is_reported_not_restored() {
    let node = Node::dual_homed("down");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.host.ip("link set eth0 down");
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(out.stderr.contains("device eth0 is down"), "{}", out.stderr);
    node.run_with("CHECK", json!({})).error(100);
    node.host.ip("link set eth0 up");
    node.run_with("ADD", json!({})).ok();
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_dhcp_like_change_in_the_same_slot_is_adopted_not_reverted() {
    let node = Node::dual_homed("dhcp");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 metric 100");
    node.run_with("ADD", json!({})).ok();
    node.host
        .ip("route del default via 172.26.0.1 dev eth0 metric 100");
    node.host
        .ip("route add default via 172.26.0.2 dev eth0 metric 100");
    let before = node.host.all_routes();
    node.run_with("ADD", json!({})).ok();
    assert_eq!(node.host.all_routes(), before);
    let routes = node.baseline()["routes"].clone();
    assert_eq!(routes.as_array().unwrap().len(), 1);
    assert_eq!(routes[0]["gateway"], "172.26.0.2");
}

#[test]
fn a_gateway_that_is_no_longer_on_link_is_reported() {
    let node = Node::dual_homed("offlink");
    node.host
        .ip("route add default via 172.26.0.33 dev eth1 metric 200");
    node.run_with("ADD", json!({})).ok();
    node.host.ip("addr del 172.26.0.35/27 dev eth1");
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(out.stderr.contains("no longer on-link"), "{}", out.stderr);
}

#[test]
fn baseline_command_records_shows_and_updates() {
    let node = Node::dual_homed("cli");
    node.case_a();
    let cmd = |args: &[&str]| {
        let out = node
            .host
            .hostguard(["baseline", "--state-dir"])
            .arg(&node.state.path)
            .arg("--run-dir")
            .arg(common::run_dir(&node.state.path))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (status, shown) = cmd(&[]);
    assert_eq!(status, Some(0));
    assert_eq!(
        shown.lines().filter(|l| l.starts_with("present")).count(),
        2,
        "{shown}"
    );
    node.host.ip("route del default via 172.26.0.33 dev eth1");
    let (_, shown) = cmd(&["--show"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("MISSING") && l.contains("dev eth1")),
        "{shown}"
    );
    let (status, shown) = cmd(&["--update"]);
    assert_eq!(status, Some(0));
    assert_eq!(shown.lines().count(), 1, "{shown}");
    assert_eq!(cmd(&["--bogus"]).0, Some(2));
}

#[test]
fn install_with_state_dir_records_the_baseline_before_any_pod() {
    let node = Node::dual_homed("inst");
    node.case_a();
    let confdir = TempDir::new("instconf");
    std::fs::write(
        confdir.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    let out = node
        .host
        .hostguard(["install", "--timeout", "0", "--conf-dir"])
        .arg(&confdir.path)
        .arg("--state-dir")
        .arg(&node.state.path)
        .arg("--run-dir")
        .arg(common::run_dir(&node.state.path))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let routes = node.baseline()["routes"].as_array().unwrap().len();
    assert_eq!(routes, 2);
    // A later ADD on a host that lost a route restores it from the install-time baseline.
    node.host.ip("route del default via 172.26.0.33 dev eth1");
    node.run_with("ADD", json!({})).ok();
    assert_eq!(node.host.default_routes().len(), 2);
}

/// The IPv4 default routes in the kernel's list order (the first one is used), as
/// `ip route show default` prints them: the gateway of each.
fn default_gateways_in_order(node: &Node) -> Vec<String> {
    node.host
        .ip("-4 route show default")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

/// The device `ip route get` picks for an outside address: the first route of the list.
fn device_for_outside_traffic(node: &Node) -> String {
    let out = node.host.ip("route get 1.1.1.1");
    let mut words = out.split_whitespace();
    words.find(|w| *w == "dev");
    words.next().unwrap_or_default().to_string()
}

#[test]
fn a_restored_leading_static_default_leads_its_twin_again() {
    let node = Node::dual_homed("ordA");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    assert_eq!(
        default_gateways_in_order(&node),
        ["172.26.0.1", "172.26.0.33"]
    );

    node.host
        .ip("route del default via 172.26.0.1 dev eth0 proto static");
    assert_eq!(device_for_outside_traffic(&node), "eth1");
    node.run_with("ADD", json!({})).ok();
    assert_eq!(
        default_gateways_in_order(&node),
        ["172.26.0.1", "172.26.0.33"]
    );
    assert_eq!(device_for_outside_traffic(&node), "eth0");
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_restored_second_static_default_goes_back_behind_the_first() {
    let node = Node::dual_homed("ordB");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.host
        .ip("route del default via 172.26.0.33 dev eth1 proto static");
    node.run_with("ADD", json!({})).ok();
    assert_eq!(
        default_gateways_in_order(&node),
        ["172.26.0.1", "172.26.0.33"]
    );
    assert_eq!(device_for_outside_traffic(&node), "eth0");
}

#[test]
fn two_lost_static_defaults_come_back_in_their_order() {
    let node = Node::dual_homed("ordC");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.host
        .ip("route del default via 172.26.0.1 dev eth0 proto static");
    node.host
        .ip("route del default via 172.26.0.33 dev eth1 proto static");
    assert!(default_gateways_in_order(&node).is_empty());
    node.run_with("ADD", json!({})).ok();
    assert_eq!(
        default_gateways_in_order(&node),
        ["172.26.0.1", "172.26.0.33"]
    );
    assert_eq!(device_for_outside_traffic(&node), "eth0");
}

#[test]
fn a_baseline_led_by_eth1_keeps_eth1_in_the_lead() {
    let node = Node::dual_homed("ordD");
    node.host
        .ip("route add default via 172.26.0.33 dev eth1 proto static");
    node.host
        .ip("route append default via 172.26.0.1 dev eth0 proto static");
    node.run_with("ADD", json!({})).ok();
    let recorded: Vec<Value> = node.baseline()["routes"].as_array().unwrap().clone();
    let devices: Vec<&str> = recorded.iter().filter_map(|r| r["dev"].as_str()).collect();
    assert_eq!(
        devices,
        ["eth1", "eth0"],
        "the kernel's order, not the names'"
    );

    // Each one lost in turn, then both: the lead stays with eth1 every time.
    for lost in [&["eth1"][..], &["eth0"], &["eth0", "eth1"]] {
        for dev in lost {
            node.host
                .ip(&format!("route del default dev {dev} proto static"));
        }
        node.run_with("ADD", json!({})).ok();
        assert_eq!(
            default_gateways_in_order(&node),
            ["172.26.0.33", "172.26.0.1"],
            "after losing {lost:?}"
        );
        assert_eq!(device_for_outside_traffic(&node), "eth1");
    }
}

/// STATUS tells the truth: a baseline route that is missing and that nothing can put back (its
/// device is down) makes the plugin unavailable (50); once it could be restored, STATUS is 0
/// again even before anything restored it.
#[test]
fn status_answers_50_while_a_missing_default_cannot_be_restored() {
    let node = Node::dual_homed("st50");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.run_with("STATUS", json!({})).ok_silent();
    node.host.ip("link set eth0 down");
    let err = node.run_with("STATUS", json!({})).error(50);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("via 172.26.0.1 dev eth0") && msg.contains("eth0 is down"),
        "{err}"
    );
    node.host.ip("link set eth0 up");
    node.run_with("STATUS", json!({})).ok_silent();
    // Missing with restore off: nothing will restore it.
    let off = json!({"routes": {"restore": false}});
    node.run_with("STATUS", off.clone()).error(50);
    node.run_with("ADD", json!({})).ok();
    node.run_with("STATUS", off).ok_silent();
}
