//! Netlink bytes from the kernel as hostguard decodes them: a datagram of rtnetlink messages
//! (`NetlinkMessage<RouteNetlinkMessage>::deserialize`, frame by frame), then hostguard's readers
//! on what parsed: default routes (`DefaultRoute::from_message`), links (team classification,
//! NetworkManager facts), rules (the guarded-rule hex round trip), addresses.
//!
//! Invariants checked, beyond "no panic":
//! - a default route read from the kernel, turned into the restore message, emitted to bytes and
//!   read back is the same route (the route guard restores what it recorded, exactly);
//! - a rule kept as a guarded rule decodes to the message it was made from (the rules guard
//!   restores identical attributes).
#![no_main]

use hostguard::host::links::{self, LinkTable};
use hostguard::host::nm::LinkFacts;
use hostguard::host::routes::DefaultRoute;
use hostguard::host::rules::GuardedRule;
use hostguard::netlink::{AddressExt, LinkExt, RouteExt, RuleExt};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{Emitable, NetlinkMessage, NetlinkPayload, Parseable};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::RouteNetlinkMessage;

fn check_route(msg: &RouteMessage) {
    let _ = (msg.table(), msg.oif(), msg.gateway(), msg.destination());
    let _ = (msg.priority(), msg.pref_source(), msg.nexthops());
    let _ = msg.uses_ifindex(1);
    let name_of = |i: u32| Some(format!("if{i}"));
    let index_of = |n: &str| n.strip_prefix("if")?.parse::<u32>().ok();
    let Some(route) = DefaultRoute::from_message(msg, &name_of) else {
        return;
    };
    let _ = route.to_string();
    let restore = route
        .to_message(&index_of)
        .expect("a route read from the kernel can be restored");
    let mut bytes = vec![0u8; restore.buffer_len()];
    restore.emit(&mut bytes);
    let sent = RouteMessage::parse(&bytes[..]).expect("the restore message parses");
    let again = DefaultRoute::from_message(&sent, &name_of);
    assert_eq!(again.as_ref(), Some(&route), "restore changes the route");
}

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    let mut links_seen = Vec::new();
    while offset < data.len() {
        let rest = &data[offset..];
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) else {
            break;
        };
        let len = msg.header.length as usize;
        if len < 16 {
            break;
        }
        offset += (len + 3) & !3;
        let NetlinkPayload::InnerMessage(inner) = msg.payload else {
            continue;
        };
        match inner {
            RouteNetlinkMessage::NewRoute(route) | RouteNetlinkMessage::DelRoute(route) => {
                check_route(&route)
            }
            RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link) => {
                let _ = (link.name(), link.kind(), link.slave_kind(), link.master());
                let _ = (link.parent(), link.is_up(), link.has_carrier(), link.mtu());
                let _ = (link.mac(), link.permanent_mac());
                let _ = LinkFacts::from_message(&link);
                links_seen.push(link);
            }
            RouteNetlinkMessage::NewRule(rule) | RouteNetlinkMessage::DelRule(rule) => {
                let _ = (rule.table(), rule.priority());
                let guarded = GuardedRule::from_message(&rule);
                let back = guarded.to_message().expect("a guarded rule decodes");
                assert_eq!(
                    GuardedRule::from_message(&back),
                    guarded,
                    "the rule's bytes change on the way back"
                );
            }
            RouteNetlinkMessage::NewAddress(addr) | RouteNetlinkMessage::DelAddress(addr) => {
                let _ = (addr.ip(), addr.network());
            }
            _ => {}
        }
    }
    let table = LinkTable::from_links(links_seen.clone());
    for link in &links_seen {
        let _ = links::team::team_evidence(&links_seen, link.header.index);
        let _ = table.name_of(link.header.index);
    }
});
