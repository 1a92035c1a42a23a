use std::path::{Path, PathBuf};
use std::process::Command;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::{InfoKind, InfoPortKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::netlink::format_mac;

use super::*;

const RTM_NEWLINK: u16 = 16;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/netlink")
}

/// Reads an annotated hex fixture: everything after `#` on a line is a comment, whitespace is
/// ignored, the rest is hex digits.
fn fixture_bytes(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    let digits: String = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert_eq!(digits.len() % 2, 0, "{name}: odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn parse_link(bytes: &[u8]) -> LinkMessage {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).unwrap();
    assert_eq!(msg.header.message_type, RTM_NEWLINK);
    assert_eq!(
        msg.header.length as usize,
        bytes.len(),
        "nlmsg_len must cover the fixture"
    );
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => link,
        other => panic!("not an RTM_NEWLINK: {other:?}"),
    }
}

fn fixture_link(name: &str) -> LinkMessage {
    parse_link(&fixture_bytes(name))
}

/// The constructed dump: eth0 (plain NIC), eth1 (team port), team0, team0.10 (VLAN on the team),
/// veth0 (a veth whose peer lives in another netns under an ifindex that collides with team0's).
fn constructed_dump() -> Vec<LinkMessage> {
    [
        "constructed-eth0-plain.hex",
        "constructed-eth1-team-port.hex",
        "constructed-team0-master.hex",
        "constructed-team0.10-vlan.hex",
        "constructed-veth0-plain.hex",
    ]
    .iter()
    .map(|f| fixture_link(f))
    .collect()
}

fn index_of(links: &[LinkMessage], wanted: &str) -> u32 {
    links
        .iter()
        .find(|l| l.name() == Some(wanted))
        .map(|l| l.header.index)
        .unwrap()
}

#[test]
fn team_master_from_constructed_rtm_newlink_fixture() {
    let links = constructed_dump();
    let team0 = fixture_link("constructed-team0-master.hex");
    assert_eq!(team0.name(), Some("team0"));
    assert_eq!(team0.kind(), Some(&InfoKind::Team));
    assert_eq!(team0.slave_kind(), None);
    assert!(team0.is_up());
    assert_eq!(
        team0.mac().map(format_mac).as_deref(),
        Some("52:54:00:12:34:56")
    );
    assert_eq!(
        team_evidence(&links, index_of(&links, "team0")).as_deref(),
        Some("team0 is a team device (IFLA_INFO_KIND team)")
    );
}

#[test]
fn team_port_from_constructed_rtm_newlink_fixture() {
    let links = constructed_dump();
    let eth1 = fixture_link("constructed-eth1-team-port.hex");
    assert_eq!(eth1.kind(), None, "a physical NIC has no IFLA_INFO_KIND");
    assert_eq!(eth1.slave_kind(), Some(&InfoPortKind::Team));
    assert_eq!(eth1.master(), Some(index_of(&links, "team0")));
    assert_eq!(
        team_evidence(&links, index_of(&links, "eth1")).as_deref(),
        Some("eth1 is a port of team0")
    );
}

#[test]
fn vlan_on_team_from_constructed_rtm_newlink_fixture() {
    let links = constructed_dump();
    let vlan = fixture_link("constructed-team0.10-vlan.hex");
    assert_eq!(vlan.kind(), Some(&InfoKind::Vlan));
    assert_eq!(vlan.parent(), Some(index_of(&links, "team0")));
    assert_eq!(
        team_evidence(&links, index_of(&links, "team0.10")).as_deref(),
        Some("team0.10 is stacked on team0 (IFLA_LINK)")
    );
}

#[test]
fn plain_nic_and_foreign_netns_veth_from_constructed_fixtures_are_not_team() {
    let links = constructed_dump();
    assert_eq!(team_evidence(&links, index_of(&links, "eth0")), None);
    let veth0 = fixture_link("constructed-veth0-plain.hex");
    // Its IFLA_LINK equals team0's ifindex, but it names the peer in another namespace.
    assert_eq!(veth0.parent(), Some(index_of(&links, "team0")));
    assert_eq!(veth0.link_netnsid(), Some(0));
    assert_eq!(team_evidence(&links, index_of(&links, "veth0")), None);
}

#[test]
fn unknown_index_is_not_classified() {
    assert_eq!(team_evidence(&constructed_dump(), 999), None);
}

// ----- synthetic dumps for the walk (built with nprt types, not fixtures) -----

fn synth(index: u32, ifname: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes
        .push(LinkAttribute::IfName(ifname.to_owned()));
    msg
}

fn with_kind(mut msg: LinkMessage, kind: InfoKind) -> LinkMessage {
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
    msg
}

fn with_master(mut msg: LinkMessage, master: u32) -> LinkMessage {
    msg.attributes.push(LinkAttribute::Controller(master));
    msg
}

fn with_link(mut msg: LinkMessage, lower: u32) -> LinkMessage {
    msg.attributes.push(LinkAttribute::Link(lower));
    msg
}

#[test]
fn vlan_on_team_port_names_the_chain() {
    let links = vec![
        with_kind(synth(4, "team0"), InfoKind::Team),
        with_master(synth(3, "eth1"), 4),
        with_link(with_kind(synth(9, "eth1.10"), InfoKind::Vlan), 3),
    ];
    assert_eq!(
        team_evidence(&links, 9).as_deref(),
        Some("eth1.10 is stacked on eth1 (IFLA_LINK); eth1 is a port of team0")
    );
}

#[test]
fn bridge_with_team_port_and_macvlan_on_vlan_on_team_are_refused() {
    let links = vec![
        with_kind(synth(4, "team0"), InfoKind::Team),
        with_master(with_kind(synth(10, "br0"), InfoKind::Bridge), 0),
        with_link(with_kind(synth(11, "team0.7"), InfoKind::Vlan), 4),
        with_link(with_kind(synth(12, "mv0"), InfoKind::MacVlan), 11),
    ];
    let mut links = links;
    // team0.7 is a port of br0.
    links[2].attributes.push(LinkAttribute::Controller(10));
    assert_eq!(
        team_evidence(&links, 10).as_deref(),
        Some("br0 has team0.7 as a port; team0.7 is stacked on team0 (IFLA_LINK)")
    );
    assert_eq!(
        team_evidence(&links, 12).as_deref(),
        Some("mv0 is stacked on team0.7 (IFLA_LINK); team0.7 is stacked on team0 (IFLA_LINK)")
    );
}

#[test]
fn port_of_a_bond_that_is_a_team_port_is_refused() {
    let links = vec![
        with_kind(synth(4, "team0"), InfoKind::Team),
        with_master(with_kind(synth(5, "bond0"), InfoKind::Bond), 4),
        with_master(synth(6, "eth3"), 5),
    ];
    assert_eq!(
        team_evidence(&links, 6).as_deref(),
        Some("eth3 is a port of bond0; bond0 is a port of team0")
    );
}

#[test]
fn sibling_port_of_a_bridge_that_holds_a_team_is_not_refused() {
    let links = vec![
        with_master(with_kind(synth(4, "team0"), InfoKind::Team), 10),
        with_kind(synth(10, "br0"), InfoKind::Bridge),
        with_master(synth(2, "eth2"), 10),
    ];
    assert!(team_evidence(&links, 10).is_some());
    assert_eq!(team_evidence(&links, 2), None);
}

#[test]
fn cycles_and_self_references_terminate() {
    let links = vec![
        with_link(with_master(with_kind(synth(1, "a"), InfoKind::Vlan), 2), 1),
        with_link(with_master(with_kind(synth(2, "b"), InfoKind::Vlan), 1), 2),
    ];
    assert_eq!(team_evidence(&links, 1), None);
}

#[test]
fn a_chain_longer_than_the_bound_is_not_followed() {
    // l1 -> l2 -> ... -> l20 -> team0 through IFLA_LINK.
    let mut links = vec![with_kind(synth(100, "team0"), InfoKind::Team)];
    for i in 1..=20u32 {
        let lower = if i == 20 { 100 } else { i + 1 };
        links.push(with_link(
            with_kind(synth(i, &format!("l{i}")), InfoKind::Vlan),
            lower,
        ));
    }
    assert!(team_evidence(&links, 20).is_some());
    assert!(team_evidence(&links, 20 - MAX_HOPS as u32 + 2).is_some());
    assert_eq!(team_evidence(&links, 1), None);
}

// ----- real messages from this kernel -----

/// Dumps every link of the calling thread's network namespace and returns each RTM_NEWLINK as
/// the raw bytes the kernel sent.
fn dump_raw_links() -> Vec<Vec<u8>> {
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    let mut socket = Socket::new(NETLINK_ROUTE).unwrap();
    socket.bind_auto().unwrap();
    socket.connect(&SocketAddr::new(0, 0)).unwrap();
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    request.finalize();
    let mut buf = vec![0u8; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0).unwrap();

    let mut out = Vec::new();
    loop {
        let (bytes, _) = socket.recv_from_full().unwrap();
        let mut offset = 0;
        while offset + 16 <= bytes.len() {
            let len = u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(bytes[offset + 4..offset + 6].try_into().unwrap());
            assert!(len >= 16 && offset + len <= bytes.len());
            match kind {
                3 => return out, // NLMSG_DONE
                2 => panic!("netlink error in link dump"),
                RTM_NEWLINK => out.push(bytes[offset..offset + len].to_vec()),
                _ => {}
            }
            offset += (len + 3) & !3;
        }
    }
}

fn ip(args: &str) {
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|chunk| {
            chunk
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Builds veth + bridge + macvlan in a private netns of this test thread, dumps them, and checks
/// the classifier and accessors on what the kernel really sends. With HOSTGUARD_RECORD_NETLINK=1
/// it (re)writes the `real-*.hex` fixtures that the layout comparison below reads.
#[test]
fn real_kernel_links_in_a_private_netns_are_not_team() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    ip("link add v0 address 02:00:00:00:00:01 mtu 1400 type veth peer name v1 address 02:00:00:00:00:02");
    ip("link add br0 address 02:00:00:00:00:03 type bridge");
    ip("link set v1 master br0");
    ip("link add link v0 name mv0 address 02:00:00:00:00:04 type macvlan mode bridge");
    ip("link set v0 up");
    ip("link set br0 up");
    // A veth whose peer lives in another namespace (a child process's), so that the dump carries
    // IFLA_LINK_NETNSID the way a pod's host-side veth does.
    // The pair dies with that namespace, so the child lives until the dump is taken.
    let mut peer_ns = Command::new("unshare")
        .args(["-n", "sleep", "30"])
        .spawn()
        .unwrap();
    let peer_pid = peer_ns.id();
    let own_ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let child_ns = format!("/proc/{peer_pid}/ns/net");
    for _ in 0..200 {
        if std::fs::read_link(&child_ns).is_ok_and(|ns| ns != own_ns) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ip("link add v2 address 02:00:00:00:00:05 type veth peer name v3");
    let moved = Command::new("ip")
        .args(["link", "set", "v3", "netns", &peer_pid.to_string()])
        .status();
    let raw = dump_raw_links();
    let _ = peer_ns.kill();
    let _ = peer_ns.wait();
    assert!(moved.unwrap().success(), "ip link set v3 netns {peer_pid}");

    let links: Vec<LinkMessage> = raw.iter().map(|bytes| parse_link(bytes)).collect();
    let v0 = index_of(&links, "v0");
    let v1 = index_of(&links, "v1");
    let br0 = index_of(&links, "br0");
    let mv0 = index_of(&links, "mv0");
    let by_name = |n: &str| links.iter().find(|l| l.name() == Some(n)).unwrap();
    assert_eq!(by_name("v0").kind(), Some(&InfoKind::Veth));
    assert_eq!(
        by_name("v0").parent(),
        Some(v1),
        "a veth's IFLA_LINK is its peer"
    );
    assert_eq!(
        by_name("v0").mac().map(format_mac).as_deref(),
        Some("02:00:00:00:00:01")
    );
    assert!(by_name("v0").is_up());
    assert!(!by_name("v1").is_up());
    assert_eq!(by_name("v1").slave_kind(), Some(&InfoPortKind::Bridge));
    assert_eq!(by_name("v1").master(), Some(br0));
    assert_eq!(by_name("mv0").kind(), Some(&InfoKind::MacVlan));
    assert_eq!(by_name("mv0").parent(), Some(v0));
    let v2 = by_name("v2");
    assert!(
        v2.link_netnsid().is_some(),
        "peer in another netns must carry IFLA_LINK_NETNSID"
    );
    assert!(v2.parent().is_some());
    for index in [v0, v1, br0, mv0, v2.header.index] {
        assert_eq!(team_evidence(&links, index), None);
    }

    if std::env::var_os("HOSTGUARD_RECORD_NETLINK").is_some() {
        for (ifname, file, what) in [
            ("v0", "real-veth.hex", "veth v0 (peer v1), up"),
            (
                "v1",
                "real-veth-bridge-port.hex",
                "veth v1, port of bridge br0",
            ),
            ("br0", "real-bridge.hex", "bridge br0, up"),
            ("mv0", "real-macvlan.hex", "macvlan mv0 on v0 (IFLA_LINK)"),
            (
                "v2",
                "real-veth-peer-in-other-netns.hex",
                "veth v2 whose peer v3 is in another netns",
            ),
        ] {
            let bytes = raw
                .iter()
                .zip(&links)
                .find(|(_, l)| l.name() == Some(ifname))
                .map(|(b, _)| b)
                .unwrap();
            let text = format!(
                "# RECORDED from the running kernel ({}) by real_kernel_links_in_a_private_netns_are_not_team:\n# one RTM_NEWLINK of {what}, {} bytes, native byte order (little endian).\n{}\n",
                std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim(),
                bytes.len(),
                hex_lines(bytes)
            );
            std::fs::write(fixture_dir().join(file), text).unwrap();
        }
    }
}

#[test]
fn recorded_real_messages_parse_as_recorded() {
    let veth = fixture_link("real-veth.hex");
    let port = fixture_link("real-veth-bridge-port.hex");
    let bridge = fixture_link("real-bridge.hex");
    let macvlan = fixture_link("real-macvlan.hex");
    assert_eq!(veth.kind(), Some(&InfoKind::Veth));
    assert_eq!(bridge.kind(), Some(&InfoKind::Bridge));
    assert_eq!(port.slave_kind(), Some(&InfoPortKind::Bridge));
    assert_eq!(port.master(), Some(bridge.header.index));
    assert_eq!(macvlan.kind(), Some(&InfoKind::MacVlan));
    assert_eq!(macvlan.parent(), Some(veth.header.index));
    let foreign_peer = fixture_link("real-veth-peer-in-other-netns.hex");
    assert!(foreign_peer.link_netnsid().is_some());
    let dump = vec![veth, port, bridge, macvlan, foreign_peer];
    for l in &dump {
        assert_eq!(team_evidence(&dump, l.header.index), None);
    }
}

// ----- layout: constructed fixtures against what the kernel really sends -----

/// (type, payload length) of each top-level attribute, read with a walker of our own so that the
/// comparison does not depend on the parser under test. NLA_F_NESTED/NLA_F_NET_BYTEORDER stripped.
fn attribute_layout(message: &[u8], skip: usize) -> Vec<(u16, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = skip;
    while offset + 4 <= message.len() {
        let len = u16::from_le_bytes([message[offset], message[offset + 1]]) as usize;
        let kind = u16::from_le_bytes([message[offset + 2], message[offset + 3]]) & 0x3fff;
        assert!(
            len >= 4 && offset + len <= message.len(),
            "bad nla at {offset}"
        );
        out.push((kind, len - 4, message[offset + 4..offset + len].to_vec()));
        offset += (len + 3) & !3;
    }
    assert_eq!(
        offset,
        message.len(),
        "attributes must end exactly at nlmsg_len"
    );
    out
}

const NLMSG_AND_IFINFO: usize = 16 + 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_SLAVE_KIND: u16 = 4;

#[test]
fn constructed_fixtures_follow_the_layout_the_kernel_sends() {
    let real_veth = fixture_bytes("real-veth.hex");
    let real_port = fixture_bytes("real-veth-bridge-port.hex");
    let real_macvlan = fixture_bytes("real-macvlan.hex");
    let real_foreign_peer = fixture_bytes("real-veth-peer-in-other-netns.hex");
    let real = [&real_veth, &real_port, &real_macvlan, &real_foreign_peer];

    // Same header sizes and message type.
    for bytes in real {
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), RTM_NEWLINK);
    }
    // Every top-level attribute the constructed fixtures use is sent by the kernel with the same
    // payload length (names vary, so IFLA_IFNAME is compared by NUL termination instead), and any
    // two of them appear in the order of a real message that carries both.
    let real_layouts: Vec<Vec<u16>> = real
        .iter()
        .map(|b| {
            attribute_layout(b, NLMSG_AND_IFINFO)
                .iter()
                .map(|(k, _, _)| *k)
                .collect()
        })
        .collect();
    let real_len = |kind: u16| {
        real.iter()
            .flat_map(|b| attribute_layout(b, NLMSG_AND_IFINFO))
            .find(|(k, _, _)| *k == kind)
            .map(|(_, len, _)| len)
            .unwrap_or_else(|| panic!("attribute {kind} never sent by the kernel"))
    };
    for file in [
        "constructed-eth0-plain.hex",
        "constructed-eth1-team-port.hex",
        "constructed-team0-master.hex",
        "constructed-team0.10-vlan.hex",
        "constructed-veth0-plain.hex",
    ] {
        let bytes = fixture_bytes(file);
        let layout = attribute_layout(&bytes, NLMSG_AND_IFINFO);
        for (kind, len, payload) in &layout {
            match *kind {
                IFLA_IFNAME => assert_eq!(payload.last(), Some(&0), "{file}: IFNAME NUL"),
                IFLA_ADDRESS | IFLA_MTU | IFLA_LINK | IFLA_MASTER => {
                    assert_eq!(*len, real_len(*kind), "{file}: attribute {kind} length")
                }
                _ => {}
            }
        }
        for pair in layout.windows(2) {
            let (a, b) = (pair[0].0, pair[1].0);
            let witness = real_layouts
                .iter()
                .find(|order| order.contains(&a) && order.contains(&b))
                .unwrap_or_else(|| panic!("{file}: no real message has both {a} and {b}"));
            let pos = |k| witness.iter().position(|x| *x == k).unwrap();
            assert!(
                pos(a) < pos(b),
                "{file}: attribute {a} before {b} is not kernel order"
            );
        }
    }

    // Inside IFLA_LINKINFO the kernel puts IFLA_INFO_KIND (+ DATA) before IFLA_INFO_SLAVE_KIND,
    // unnested-flag free, NUL-terminated strings: the team port fixture must do the same.
    let linkinfo = |bytes: &[u8]| {
        let (_, _, payload) = attribute_layout(bytes, NLMSG_AND_IFINFO)
            .into_iter()
            .find(|(k, _, _)| *k == IFLA_LINKINFO)
            .unwrap();
        attribute_layout(&payload, 0)
    };
    let real_port_info = linkinfo(&real_port);
    let kinds: Vec<u16> = real_port_info.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(&kinds[..1], &[IFLA_INFO_KIND]);
    assert!(kinds.contains(&IFLA_INFO_SLAVE_KIND));
    let slave = real_port_info
        .iter()
        .find(|(k, _, _)| *k == IFLA_INFO_SLAVE_KIND)
        .unwrap();
    assert_eq!(slave.2, b"bridge\0");
    let team_port_info = linkinfo(&fixture_bytes("constructed-eth1-team-port.hex"));
    assert_eq!(
        team_port_info,
        vec![(IFLA_INFO_SLAVE_KIND, 5, b"team\0".to_vec())]
    );
    let team_info = linkinfo(&fixture_bytes("constructed-team0-master.hex"));
    assert_eq!(team_info, vec![(IFLA_INFO_KIND, 5, b"team\0".to_vec())]);
}
