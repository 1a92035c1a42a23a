//! The route guard follows the device, not its name: a route recorded on eth1 is never put back
//! on eth1 once eth1 is a bridge port, a renamed device keeps its routes, a reused name does not
//! inherit them, every attribute comes back, an IPv4 multipath route that lost a device comes
//! back with its healthy hops, and a DHCP route is left to the client (and the guard daemon).
//! Each test is one of the ways an adversarial agent or operator made the old guard do harm.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{Netns, Node};
use serde_json::{json, Value};

/// Default routes (every table, both families) that leave through `dev`.
fn defaults_via(node: &Node, dev: &str) -> Vec<String> {
    node.host
        .default_routes()
        .into_iter()
        .filter(|l| l.contains(&format!(" dev {dev} ")) || l.ends_with(&format!(" dev {dev}")))
        .collect()
}

/// The device `ip route get` picks for an outside address.
fn egress_device(node: &Node) -> String {
    let out = node.host.ip("route get 192.0.2.10");
    let mut words = out.split_whitespace();
    words.find(|w| *w == "dev");
    words.next().unwrap_or_default().to_string()
}

/// What incident 1's agent does: eth1 becomes a port of br0, which takes eth1's address, and
/// (when `readd`) eth1's default route is re-added on br0.
fn enslave_eth1_to_br0(node: &Node, readd: bool) {
    let h = &node.host;
    h.ip("link add br0 type bridge");
    h.ip("link set br0 up");
    let _ = h.try_ip("route del default via 172.26.0.33 dev eth1");
    h.ip("link set eth1 master br0");
    h.ip("addr del 172.26.0.35/27 dev eth1");
    h.ip("addr add 172.26.0.35/27 dev br0");
    if readd {
        h.ip("route append default via 172.26.0.33 dev br0 proto static");
    }
}

#[test]
fn a_route_of_a_device_that_became_a_bridge_port_is_judged_on_the_bridge() {
    let node = Node::dual_homed("port");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    enslave_eth1_to_br0(&node, true);
    let before = node.host.all_routes();
    node.run_with("CHECK", json!({})).ok_silent();
    node.run_with("ADD", json!({})).ok();
    assert!(
        defaults_via(&node, "eth1").is_empty(),
        "a route was put on the port: {:#?}",
        node.host.default_routes()
    );
    assert_eq!(node.host.all_routes(), before);
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_lost_route_of_a_bridge_port_is_restored_on_the_bridge_never_on_the_port() {
    let node = Node::dual_homed("portr");
    // eth1's route leads its list: a restore on the port would take the host's egress.
    node.host
        .ip("route add default via 172.26.0.33 dev eth1 proto static");
    node.host
        .ip("route append default via 172.26.0.1 dev eth0 proto static");
    node.run_with("ADD", json!({})).ok();
    enslave_eth1_to_br0(&node, false);
    node.run_with("ADD", json!({})).ok();
    assert!(
        defaults_via(&node, "eth1").is_empty(),
        "{:#?}",
        node.host.default_routes()
    );
    let on_bridge = defaults_via(&node, "br0");
    assert_eq!(on_bridge.len(), 1, "{:#?}", node.host.default_routes());
    assert!(
        on_bridge[0].contains("default via 172.26.0.33 dev br0 table main proto static"),
        "every attribute but the device: {on_bridge:?}"
    );
    assert!(!on_bridge[0].contains("onlink"), "{on_bridge:?}");
    assert_eq!(egress_device(&node), "br0", "it leads its list again");
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_port_whose_master_holds_no_address_is_reported_not_restored() {
    let node = Node::dual_homed("portna");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    let h = &node.host;
    h.ip("link add br0 type bridge");
    h.ip("link set br0 up");
    h.ip("link set eth1 master br0");
    let _ = h.try_ip("route del default via 172.26.0.33 dev eth1");
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(
        out.stderr.contains("eth1 is a port of br0"),
        "{}",
        out.stderr
    );
    assert!(defaults_via(&node, "eth1").is_empty());
    assert!(defaults_via(&node, "br0").is_empty());
    let err = node.run_with("CHECK", json!({})).error(100);
    assert!(err["msg"].as_str().unwrap().contains("eth1"), "{err}");
}

/// STATUS asks the route guard's own question ("could it be restored?") on the devices as they
/// are now: a renamed device's route and a port's route on its addressed bridge are no reason
/// for 50, a port whose master cannot take its route is, with the reason ADD gives.
#[test]
fn status_judges_routes_on_todays_devices() {
    let node = Node::dual_homed("stid");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.host.ip("link set eth0 name uplink0");
    node.run_with("STATUS", json!({})).ok_silent();
    // eth1's route lost with the move: the bridge takes it back, so nothing is unrestorable.
    enslave_eth1_to_br0(&node, false);
    node.run_with("STATUS", json!({})).ok_silent();
    node.run_with("ADD", json!({})).ok();
    assert_eq!(defaults_via(&node, "br0").len(), 1);
    node.run_with("STATUS", json!({})).ok_silent();

    let bare = Node::dual_homed("stidna");
    bare.case_a();
    bare.run_with("ADD", json!({})).ok();
    let h = &bare.host;
    h.ip("link add br0 type bridge");
    h.ip("link set br0 up");
    h.ip("link set eth1 master br0");
    let _ = h.try_ip("route del default via 172.26.0.33 dev eth1");
    let err = bare.run_with("STATUS", json!({})).error(50);
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("eth1 is a port of br0"), "{err}");
    assert!(!msg.contains("dev eth0"), "eth0's route is in place: {err}");
}

#[test]
fn a_renamed_device_keeps_its_routes_and_check_answers_0() {
    let node = Node::dual_homed("ren");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    // A live rename: the route follows the ifindex.
    node.host.ip("link set eth0 name uplink0");
    assert_eq!(defaults_via(&node, "uplink0").len(), 1);
    let before = node.host.all_routes();
    node.run_with("CHECK", json!({})).ok_silent();
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(!out.stderr.contains("gone"), "{}", out.stderr);
    assert_eq!(node.host.all_routes(), before);
    node.run_with("CHECK", json!({})).ok_silent();
    // And back again: still the same device.
    node.host.ip("link set uplink0 name eth0");
    node.run_with("CHECK", json!({})).ok_silent();
    node.run_with("ADD", json!({})).ok();
    let mut renamed_back: Vec<String> = before
        .iter()
        .map(|l| l.replace("uplink0", "eth0"))
        .collect();
    renamed_back.sort();
    assert_eq!(node.host.all_routes(), renamed_back);
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_renamed_device_that_lost_its_route_gets_it_back_under_its_new_name() {
    let node = Node::dual_homed("renr");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    node.host.ip("link set eth0 name uplink0");
    node.host
        .ip("route del default via 172.26.0.1 dev uplink0 proto static");
    node.run_with("CHECK", json!({})).error(100);
    node.run_with("ADD", json!({})).ok();
    let routes = defaults_via(&node, "uplink0");
    assert_eq!(routes.len(), 1, "{:#?}", node.host.default_routes());
    assert!(routes[0].contains("via 172.26.0.1"), "{routes:?}");
    assert_eq!(egress_device(&node), "uplink0");
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_reused_name_never_receives_another_devices_route() {
    let node = Node::dual_homed("reuse");
    // Incident 1's case B: the metrics tell the two routes apart, so the slot of eth0's route
    // stays free when eth1 takes eth0's name.
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 metric 100");
    node.host
        .ip("route add default via 172.26.0.33 dev eth1 metric 200");
    node.run_with("ADD", json!({})).ok();
    // eth0 goes away; eth1 takes its name, and eth0's old gateway is on-link there.
    node.host.ip("link del eth0");
    node.host.ip("link set eth1 name eth0");
    node.host.ip("addr add 172.26.0.4/27 dev eth0");
    let before = node.host.all_routes();
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(
        !node
            .host
            .default_routes()
            .iter()
            .any(|l| l.contains("via 172.26.0.1 ")),
        "eth0's route went through the other NIC: {:#?}",
        node.host.default_routes()
    );
    assert_eq!(node.host.all_routes(), before, "nothing was added");
    assert!(
        out.stderr.contains("now belongs to another device"),
        "{}",
        out.stderr
    );
    let err = node.run_with("CHECK", json!({})).error(100);
    assert!(
        err["msg"].as_str().unwrap().contains("via 172.26.0.1"),
        "{err}"
    );
}

#[test]
fn a_renamed_device_and_a_reused_name_together_keep_every_route_on_its_own_device() {
    let node = Node::dual_homed("swap");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    let eth0 = node.host.ifindex("eth0");
    let eth1 = node.host.ifindex("eth1");
    node.host.ip("link set eth0 name uplink0");
    node.host.ip("link set eth1 name eth0");
    node.host
        .ip("route del default via 172.26.0.1 dev uplink0 proto static");
    // The old gateway is on-link on the device now called eth0 too.
    node.host.ip("addr add 172.26.0.4/27 dev eth0");
    node.run_with("ADD", json!({})).ok();
    let text = node.host.ip("-d -4 route show default");
    assert!(
        text.contains("via 172.26.0.1 dev uplink0"),
        "restored on its own device: {text}"
    );
    assert!(!text.contains("via 172.26.0.1 dev eth0"), "{text}");
    assert_eq!(node.host.ifindex("uplink0"), eth0);
    assert_eq!(node.host.ifindex("eth0"), eth1);
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn an_old_baseline_without_identities_is_resolved_by_name_then_identified() {
    let node = Node::dual_homed("oldbl");
    node.case_a();
    // The baseline format of earlier versions: devices by name only.
    let old = json!({
        "version": 1,
        "routes": [
            {"family":"inet","table":254,"metric":0,"protocol":4,"scope":0,"type":1,
             "gateway":"172.26.0.1","dev":"eth0"},
            {"family":"inet","table":254,"metric":0,"protocol":4,"scope":0,"type":1,
             "gateway":"172.26.0.33","dev":"eth1"}
        ]
    });
    std::fs::write(node.state.join("baseline.json"), old.to_string()).unwrap();
    node.run_with("CHECK", json!({})).ok_silent();
    node.run_with("ADD", json!({})).ok();
    let routes = node.baseline()["routes"].as_array().unwrap().clone();
    assert_eq!(routes.len(), 2, "{routes:#?}");
    for route in &routes {
        let dev = route["dev"].as_str().unwrap();
        assert_eq!(
            route["link"]["ifindex"],
            json!(node.host.ifindex(dev)),
            "{route}"
        );
        assert!(route["link"]["mac"].is_string(), "{route}");
    }
    // From now on a rename is followed.
    node.host.ip("link set eth0 name uplink0");
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn an_old_baseline_entry_whose_device_is_gone_is_reported() {
    let node = Node::dual_homed("oldgone");
    node.case_a();
    let old = json!({
        "version": 1,
        "routes": [
            {"family":"inet","table":254,"metric":0,"protocol":4,"scope":0,"type":1,
             "gateway":"172.26.0.1","dev":"eth9"}
        ]
    });
    std::fs::write(node.state.join("baseline.json"), old.to_string()).unwrap();
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(out.stderr.contains("device eth9 is gone"), "{}", out.stderr);
    node.run_with("CHECK", json!({})).error(100);
}

/// Records `route` (an `ip route add` argument list), deletes it, runs ADD, and expects the
/// host's routes back exactly as they were and CHECK at 0.
fn restored_exactly(node: &Node, add: &str, del: &str) {
    node.host.ip(add);
    node.run_with("ADD", json!({})).ok();
    let before = node.host.all_routes();
    node.host.ip(del);
    assert_ne!(node.host.all_routes(), before);
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert_eq!(node.host.all_routes(), before, "{}", out.stderr);
    assert!(
        out.stderr.contains("restored missing default route"),
        "{}",
        out.stderr
    );
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_realm_comes_back() {
    let node = Node::dual_homed("realm");
    restored_exactly(
        &node,
        "route add default via 172.26.0.1 dev eth0 metric 8 realm 5",
        "route del default via 172.26.0.1 dev eth0 metric 8",
    );
    assert!(node.host.ip("route show default").contains("realm 5"));
}

#[test]
fn an_ipv4_route_via_an_ipv6_gateway_comes_back() {
    let node = Node::dual_homed("via6");
    restored_exactly(
        &node,
        "-4 route add default via inet6 2001:db8::1 dev eth0 metric 7",
        "-4 route del default via inet6 2001:db8::1 dev eth0 metric 7",
    );
    let ipv4 = node.host.ip("-4 route show default");
    assert!(
        ipv4.contains("default via inet6 2001:db8::1 dev eth0"),
        "{ipv4}"
    );
}

/// Whether the kernel accepts `add` in a namespace of its own (encap types need modules).
fn kernel_accepts(prepare: &[&str], add: &str) -> bool {
    let probe = Netns::new("probe");
    probe.ip("link add x0 type veth peer name x1");
    probe.ip("link set x0 up");
    probe.ip("addr add 10.0.0.2/24 dev x0");
    probe.ip("-6 addr add 2001:db8::2/64 dev x0 nodad");
    for step in prepare {
        if !probe.try_ip(step).status.success() {
            return false;
        }
    }
    probe.try_ip(add).status.success()
}

#[test]
fn encapsulated_routes_come_back_with_their_encapsulation() {
    let cases = [
        (
            "ip",
            "route add default via 172.26.0.1 dev eth0 metric 5 encap ip id 5 dst 192.0.2.4",
            "route del default metric 5",
            "route add default via 10.0.0.1 dev x0 encap ip id 5 dst 192.0.2.4",
        ),
        (
            "seg6",
            "-6 route add default via 2001:db8::1 dev eth0 metric 900 encap seg6 mode encap segs 2001:db8::9",
            "-6 route del default metric 900",
            "-6 route add default via 2001:db8::1 dev x0 encap seg6 mode encap segs 2001:db8::9",
        ),
        (
            "mpls",
            "route add default via 172.26.0.1 dev eth0 metric 6 encap mpls 100",
            "route del default metric 6",
            "route add default via 10.0.0.1 dev x0 encap mpls 100",
        ),
    ];
    for (name, add, del, probe) in cases {
        if !kernel_accepts(&[], probe) {
            eprintln!("skipped encap {name}: this kernel or iproute2 does not support it");
            continue;
        }
        let node = Node::dual_homed(&format!("encap{name}"));
        restored_exactly(&node, add, del);
        assert!(
            node.host
                .ip("-d route show table all")
                .contains(&format!("encap {name}"))
                || node
                    .host
                    .ip("-d -6 route show table all")
                    .contains(&format!("encap {name}")),
            "{name}"
        );
    }
}

#[test]
fn a_route_through_a_nexthop_object_comes_back_as_that_object_with_and_without_compat_mode() {
    for compat in ["1", "0"] {
        let node = Node::dual_homed(&format!("nhid{compat}"));
        let set = Command::new("ip")
            .args(["netns", "exec", &node.host.name, "sysctl", "-qw"])
            .arg(format!("net.ipv4.nexthop_compat_mode={compat}"))
            .status()
            .unwrap();
        assert!(set.success());
        node.host.ip("nexthop add id 10 via 172.26.0.1 dev eth0");
        restored_exactly(
            &node,
            "route add default nhid 10 metric 3",
            "route del default metric 3",
        );
        assert!(node.host.ip("route show default").contains("nhid 10"));
        // Without its nexthop object the route cannot come back: reported, not faked.
        node.host.ip("nexthop del id 10");
        let out = node.run_with("ADD", json!({}));
        out.ok();
        assert!(out.stderr.contains("nhid 10"), "{}", out.stderr);
        assert!(!out.stderr.contains("restored missing"), "{}", out.stderr);
        node.run_with("CHECK", json!({})).error(100);
    }
}

/// A third uplink, eth2 10.9.0.2/24, its gateway 10.9.0.1 in `gateways`.
fn add_eth2(node: &Node, gateways: &Netns) {
    node.host.ip(&format!(
        "link add eth2 type veth peer name gw2 netns {}",
        gateways.name
    ));
    node.host.ip("link set eth2 up");
    gateways.ip("link set gw2 up");
    node.host.ip("addr add 10.9.0.2/24 dev eth2");
    let _ = gateways.try_ip("addr add 10.9.0.1/24 dev gw2");
}

#[test]
fn an_ipv4_multipath_route_that_lost_a_device_comes_back_with_its_healthy_hops() {
    let node = Node::dual_homed("ecmp");
    let gateways = Netns::new("ecmpg");
    add_eth2(&node, &gateways);
    node.host.ip(
        "route add default proto static nexthop via 172.26.0.1 dev eth0 weight 2 \
         nexthop via 172.26.0.33 dev eth1 weight 3 nexthop via 10.9.0.1 dev eth2 weight 1",
    );
    node.run_with("ADD", json!({})).ok();
    node.host.ip("link del eth2");
    assert!(
        node.host.ip("-4 route show default").is_empty(),
        "the kernel dropped the whole route"
    );
    let out = node.run_with("ADD", json!({}));
    out.ok();
    let text = node.host.ip("-4 route show default");
    assert!(
        text.contains("nexthop via 172.26.0.1 dev eth0 weight 2"),
        "{text}"
    );
    assert!(
        text.contains("nexthop via 172.26.0.33 dev eth1 weight 3"),
        "{text}"
    );
    assert!(!text.contains("eth2"), "{text}");
    assert!(out.stderr.contains("next hop left out"), "{}", out.stderr);
    let err = node.run_with("CHECK", json!({})).error(100);
    assert!(err["msg"].as_str().unwrap().contains("dev eth2"), "{err}");

    // A re-created eth2 is a new device: it does not get its hop back by itself.
    add_eth2(&node, &gateways);
    node.run_with("ADD", json!({})).ok();
    let text = node.host.ip("-4 route show default");
    assert!(!text.contains("eth2"), "{text}");
    node.run_with("CHECK", json!({})).error(100);
}

#[test]
fn a_dhcp_route_is_reported_by_add_not_restored_and_a_renewal_is_adopted() {
    let node = Node::dual_homed("dhcp");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 proto dhcp metric 100");
    node.run_with("ADD", json!({})).ok();
    node.host
        .ip("route del default via 172.26.0.1 dev eth0 metric 100");
    let out = node.run_with("ADD", json!({}));
    out.ok();
    assert!(
        out.stderr.contains("address-configuration daemon"),
        "{}",
        out.stderr
    );
    assert!(node.host.default_routes().is_empty());
    node.run_with("CHECK", json!({})).error(100);
    // Its client or the guard daemon puts it back: no reason for 50, unless its device is down.
    node.run_with("STATUS", json!({})).ok_silent();
    node.host.ip("link set eth0 down");
    let err = node.run_with("STATUS", json!({})).error(50);
    assert!(
        err["msg"].as_str().unwrap().contains("eth0 is down"),
        "{err}"
    );
    node.host.ip("link set eth0 up");
    // The client's add after its delete: no EEXIST, and the new gateway is adopted.
    node.host
        .ip("route add default via 172.26.0.2 dev eth0 proto dhcp metric 100");
    node.run_with("ADD", json!({})).ok();
    node.run_with("CHECK", json!({})).ok_silent();
    let routes = node.baseline()["routes"].clone();
    assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
    assert_eq!(routes[0]["gateway"], "172.26.0.2");
}

#[test]
fn a_dhclient_style_renewal_racing_fifty_adds_always_ends_with_the_new_gateway() {
    let node = Node::dual_homed("dhrace");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 proto dhcp metric 100");
    node.run_with("ADD", json!({})).ok();
    let conf = node.chained_conf(json!({}));
    let adder = node.attach("ADD", "ctr1").config(&conf);
    let adds = std::thread::spawn(move || {
        (0..50)
            .map(|_| {
                adder
                    .clone()
                    .hang_limit(Duration::from_secs(20))
                    .run()
                    .status
            })
            .collect::<Vec<i32>>()
    });
    let mut gateway = 1;
    let mut renewals = 0;
    while !adds.is_finished() && renewals < 200 {
        let next = if gateway == 1 { 2 } else { 1 };
        node.host.ip(&format!(
            "route del default via 172.26.0.{gateway} dev eth0 metric 100"
        ));
        std::thread::sleep(Duration::from_millis(20));
        let add = node.host.try_ip(&format!(
            "route add default via 172.26.0.{next} dev eth0 proto dhcp metric 100"
        ));
        assert!(
            add.status.success(),
            "renewal {renewals}: {}",
            String::from_utf8_lossy(&add.stderr)
        );
        gateway = next;
        renewals += 1;
    }
    let statuses = adds.join().unwrap();
    assert!(statuses.iter().all(|s| *s == 0), "{statuses:?}");
    let defaults = node.host.default_routes();
    assert_eq!(defaults.len(), 1, "{defaults:#?}");
    assert!(
        defaults[0].contains(&format!("via 172.26.0.{gateway} ")),
        "{defaults:#?}"
    );
    node.run_with("ADD", json!({})).ok();
    node.run_with("CHECK", json!({})).ok_silent();
    let routes: Value = node.baseline()["routes"].clone();
    assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
}

#[test]
fn an_ovs_like_move_racing_adds_never_puts_a_route_on_the_port() {
    let node = Node::dual_homed("race");
    node.host
        .ip("route add default via 172.26.0.33 dev eth1 proto static");
    node.host
        .ip("route append default via 172.26.0.1 dev eth0 proto static");
    node.run_with("ADD", json!({})).ok();
    let conf = node.chained_conf(json!({}));
    let adder = node.attach("ADD", "ctr1").config(&conf);
    let ns = node.host.name.clone();
    let monitor = Command::new("ip")
        .args(["-n", &ns, "monitor", "route"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut monitor = monitor;
    // `ip monitor` subscribes before its first read; give it that moment.
    std::thread::sleep(Duration::from_millis(50));
    // The move as a script does it, about 30 ms from first to last step: enslave, move the
    // address (the kernel then drops eth1's routes), re-add the default route on the bridge.
    let mover = std::thread::spawn(move || {
        let ip = |args: &str| {
            Command::new("ip")
                .arg("-n")
                .arg(&ns)
                .args(args.split_whitespace())
                .status()
                .unwrap()
        };
        ip("link add br0 type bridge");
        ip("link set br0 up");
        std::thread::sleep(Duration::from_millis(5));
        ip("link set eth1 master br0");
        std::thread::sleep(Duration::from_millis(10));
        ip("addr del 172.26.0.35/27 dev eth1");
        std::thread::sleep(Duration::from_millis(5));
        ip("addr add 172.26.0.35/27 dev br0");
        std::thread::sleep(Duration::from_millis(10));
        // EEXIST here is fine: a guard run may have restored it on br0 first.
        ip("route prepend default via 172.26.0.33 dev br0 proto static");
    });
    for _ in 0..30 {
        adder.clone().hang_limit(Duration::from_secs(20)).run().ok();
    }
    mover.join().unwrap();
    adder.clone().run().ok();
    // Every route the kernel added meanwhile, as `ip monitor` saw it: none through the port.
    let _ = monitor.kill();
    let seen = monitor.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        !seen
            .lines()
            .any(|l| l.starts_with("default") && l.contains("dev eth1")),
        "a default route was added through the port: {seen}"
    );
    assert!(
        defaults_via(&node, "eth1").is_empty(),
        "{:#?}",
        node.host.default_routes()
    );
    assert_eq!(defaults_via(&node, "br0").len(), 1);
    node.run_with("CHECK", json!({})).ok_silent();
}

#[test]
fn a_port_of_a_bond_in_a_bridge_is_succeeded_by_the_bridge_that_holds_the_address() {
    let node = Node::dual_homed("chain");
    node.case_a();
    node.run_with("ADD", json!({})).ok();
    let h = &node.host;
    if !h.try_ip("link add bond0 type bond").status.success() {
        eprintln!(
            "skipped: this kernel has no bonding module, so eth1 -> bond0 -> br0 cannot be built"
        );
        return;
    }
    h.ip("link add br0 type bridge");
    h.ip("link set br0 up");
    h.ip("link set eth1 down");
    h.ip("link set eth1 master bond0");
    h.ip("link set bond0 master br0");
    h.ip("link set bond0 up");
    h.ip("link set eth1 up");
    let _ = h.try_ip("addr del 172.26.0.35/27 dev eth1");
    h.ip("addr add 172.26.0.35/27 dev br0");
    let _ = h.try_ip("route del default via 172.26.0.33 dev eth1");
    node.run_with("ADD", json!({})).ok();
    assert!(defaults_via(&node, "eth1").is_empty());
    assert!(defaults_via(&node, "bond0").is_empty());
    assert_eq!(
        defaults_via(&node, "br0").len(),
        1,
        "{:#?}",
        node.host.default_routes()
    );
    node.run_with("CHECK", json!({})).ok_silent();
}
