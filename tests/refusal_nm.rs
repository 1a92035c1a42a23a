//! Refusal on the route guard's path: a default route through a NetworkManager-managed device is
//! restored unless `routes.restoreOnManaged` is false (then reported), and
//! NetworkManager-managed host interfaces of prevResult are warned about.
//!
//! These tests start a stand-in NetworkManager process. hostguard finds NetworkManager by its
//! process name, as it must on a real node, so any hostguard run on this machine meanwhile sees
//! "NetworkManager is running". That is why they live in their own test binary: cargo runs test
//! binaries one after another, so no other test shares the machine with the stand-in.

use crate::common;

use common::Node;
use serde_json::json;

/// Incident 1's node with case A's default routes.
fn two_defaults(tag: &str) -> Node {
    let node = Node::dual_homed(tag);
    node.case_a();
    node
}

/// Re-adding a recorded route changes no link, so a NetworkManager-managed device gets its
/// default route back by default (the RHEL default node would otherwise never recover one);
/// `routes.restoreOnManaged: false` extends the refusal to routes.
#[test]
fn a_route_on_a_network_manager_managed_device_is_restored_unless_restore_on_managed_is_off() {
    let node = two_defaults("nm");
    let nm = common::FakeNetworkManager::start(&node.host);
    nm.device(node.host.ifindex("eth0"), true);
    nm.device(node.host.ifindex("eth1"), false);
    let extra = json!({ "networkManager": nm.config() });
    node.run_with("ADD", extra.clone()).ok();
    let before = node.host.all_routes();

    node.host.ip("route del default via 172.26.0.1 dev eth0");
    node.host.ip("route del default via 172.26.0.33 dev eth1");
    node.run_with("ADD", extra.clone()).ok();
    assert_eq!(
        node.host.all_routes(),
        before,
        "both restored, in their order"
    );
    node.run_with("CHECK", extra.clone()).ok_silent();

    let mut off = extra.clone();
    off["routes"] = json!({"restoreOnManaged": false});
    node.host.ip("route del default via 172.26.0.1 dev eth0");
    node.host.ip("route del default via 172.26.0.33 dev eth1");
    let out = node.run_with("ADD", off.clone());
    out.ok();
    assert!(
        out.stderr
            .contains("hostguard does not touch eth0 (routes.restoreOnManaged is false): eth0 is managed by NetworkManager"),
        "{}",
        out.stderr
    );
    let defaults = node.host.default_routes();
    assert_eq!(defaults.len(), 1, "{defaults:#?}");
    assert!(
        defaults[0].contains("dev eth1"),
        "eth1 (managed=false) is restored: {defaults:#?}"
    );
    node.run_with("CHECK", off.clone()).error(100);
    // With refuse.networkManager off, the same route is restored.
    off["refuse"] = json!({"networkManager": false});
    node.run_with("ADD", off).ok();
    assert_eq!(node.host.all_routes(), before);
}

#[test]
fn network_manager_managed_host_interfaces_of_prev_result_are_warned_about() {
    let node = two_defaults("nmwarn");
    let nm = common::FakeNetworkManager::start(&node.host);
    node.host
        .ip("link add veth1234 type veth peer name vethpeer");
    nm.device(node.host.ifindex("veth1234"), true);
    let out = node.run_with("ADD", json!({ "networkManager": nm.config() }));
    out.ok();
    assert!(
        out.stderr.contains("veth1234 is managed by NetworkManager"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hostguard doctor --fix"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_uplink_managed_by_network_manager_is_refused_with_102_and_the_host_is_identical() {
    let node = two_defaults("nmup");
    let nm = common::FakeNetworkManager::start(&node.host);
    nm.device(node.host.ifindex("eth1"), true);
    let uplink = json!({
        "networkManager": nm.config(),
        "uplink": {"interface": "eth1", "bridge": "br-sec"},
    });
    let before = node.host.snapshot();
    let err = node.run_with("ADD", uplink.clone()).error(102);
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("eth1 is managed by NetworkManager"), "{err}");
    assert!(
        msg.contains(&format!(
            "devices/{} managed=true",
            node.host.ifindex("eth1")
        )),
        "{err}"
    );
    assert_eq!(
        node.host.snapshot(),
        before,
        "a refused attachment changed the host"
    );

    // The same link with managed=false is attached.
    nm.device(node.host.ifindex("eth1"), false);
    node.run_with("ADD", uplink).ok();
    assert!(node.host.ip("-d link show eth1").contains("master br-sec"));
    let defaults = node.host.default_routes();
    assert!(
        defaults
            .iter()
            .any(|l| l.contains("via 172.26.0.33 dev br-sec")),
        "{defaults:#?}"
    );
    assert!(
        defaults
            .iter()
            .any(|l| l.contains("via 172.26.0.1 dev eth0")),
        "{defaults:#?}"
    );
}

#[test]
fn a_network_manager_in_another_namespace_has_no_say() {
    let node = two_defaults("nmelse");
    // NetworkManager runs, but in the container's namespace: it manages those links, not ours.
    let nm = common::FakeNetworkManager::start(&node.container);
    nm.device(node.host.ifindex("eth1"), true);
    let uplink = json!({
        "networkManager": nm.config(),
        "uplink": {"interface": "eth1", "bridge": "br-sec"},
    });
    node.run_with("ADD", uplink).ok();
    assert!(node.host.ip("-d link show eth1").contains("master br-sec"));
}
