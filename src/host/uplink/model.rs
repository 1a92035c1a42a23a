//! Plain-data copies of what the kernel reported about the uplink: its link state, its
//! addresses and the routes through it. They are what the journal stores, so a later process can
//! finish or undo the move without asking the kernel what the host looked like before.
//!
//! Addresses are modelled field by field: every attribute `ip addr add` can set is one of them.
//! Routes are kept as the kernel's own message bytes with only the read-only parts removed, so
//! that attributes hostguard has no name for (encapsulations, realms, future ones) still travel
//! with the route instead of being silently dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use netlink_packet_core::{Emitable, Nla, Parseable};
use netlink_packet_route::address::{
    AddressFlags, AddressHeaderFlags, AddressProtocol, AddressScope, CacheInfo,
};
use netlink_packet_route::route::{RouteFlags, RouteNextHop, RouteNextHopFlags};
use serde::{Deserialize, Serialize};

use crate::host::routes::{protocol_name, Family};
use crate::netlink::{
    format_mac, AddressAttribute, AddressFamily, AddressMessage, LinkExt, LinkMessage,
    RouteAttribute, RouteExt, RouteMessage, RouteType,
};

/// `ifa_valid` / `ifa_preferred` value meaning "forever".
const LIFETIME_FOREVER: u32 = u32::MAX;
/// `rta_expires` in route cache info is in clock ticks of USER_HZ, which the kernel fixes at 100
/// for its user ABI on every architecture Kubernetes runs on.
const USER_HZ: u32 = 100;
/// Flags a user may pass when adding an address; the kernel derives the rest (secondary,
/// permanent, tentative, deprecated, dadfailed) from the address's place and lifetimes.
pub const SETTABLE_ADDRESS_FLAGS: u32 = AddressFlags::Nodad.bits()
    | AddressFlags::Optimistic.bits()
    | AddressFlags::Homeaddress.bits()
    | AddressFlags::Managetempaddr.bits()
    | AddressFlags::Noprefixroute.bits()
    | AddressFlags::Mcautojoin.bits();
pub const NOPREFIXROUTE: u32 = AddressFlags::Noprefixroute.bits();
/// IPv6 reuses bit 0 (secondary) for privacy ("temporary") addresses.
pub const IFA_F_TEMPORARY: u32 = AddressFlags::Secondary.bits();
const IFAPROT_KERNEL_LL: u8 = 3;

/// A link as it was before the move: what the move changes and rollback restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkState {
    pub name: String,
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<u32>,
}

impl LinkState {
    pub fn from_link(link: &LinkMessage) -> Option<LinkState> {
        Some(LinkState {
            name: link.name()?.to_string(),
            index: link.header.index,
            kind: link.kind().map(ToString::to_string),
            mac: link.mac().map(format_mac),
            mtu: link.mtu(),
            up: link.is_up(),
            master: link.master(),
        })
    }
}

pub fn parse_mac(text: &str) -> Option<Vec<u8>> {
    text.split(':')
        .map(|part| u8::from_str_radix(part, 16).ok())
        .collect()
}

/// One interface address with every attribute that can be given back to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Addr {
    pub family: Family,
    /// IFA_LOCAL: the interface's own address.
    pub local: IpAddr,
    /// IFA_ADDRESS when it differs from IFA_LOCAL (the peer of a point-to-point address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    pub prefix_len: u8,
    pub scope: u8,
    /// IFA_FLAGS (all 32 bits), as reported.
    pub flags: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ipv4Addr>,
    /// Remaining seconds when observed; `None` is forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_lft: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_lft: Option<u32>,
    /// IFA_RT_PRIORITY: the metric of the prefix route the kernel makes for the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// IFA_PROTO: who made the address (kernel_ll, kernel_ra, or a user value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
}

impl Addr {
    pub fn from_message(msg: &AddressMessage) -> Option<Addr> {
        let family = match msg.header.family {
            AddressFamily::Inet => Family::Inet,
            AddressFamily::Inet6 => Family::Inet6,
            _ => return None,
        };
        let mut local = None;
        let mut address = None;
        let mut addr = Addr {
            family,
            local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            peer: None,
            prefix_len: msg.header.prefix_len,
            scope: u8::from(msg.header.scope),
            flags: u32::from(msg.header.flags.bits()),
            label: None,
            broadcast: None,
            valid_lft: None,
            preferred_lft: None,
            metric: None,
            proto: None,
        };
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Label(label) => addr.label = Some(label.clone()),
                AddressAttribute::Broadcast(ip) => addr.broadcast = Some(*ip),
                AddressAttribute::Flags(flags) => addr.flags = flags.bits(),
                AddressAttribute::RoutePriority(metric) => addr.metric = Some(*metric),
                AddressAttribute::Protocol(proto) => addr.proto = Some(u8::from(*proto)),
                AddressAttribute::CacheInfo(info) => {
                    addr.valid_lft = finite(info.ifa_valid);
                    addr.preferred_lft = finite(info.ifa_preferred);
                }
                _ => {}
            }
        }
        addr.local = local.or(address)?;
        addr.peer = address.filter(|a| *a != addr.local);
        Some(addr)
    }

    /// The request that adds this address to link `index`, `elapsed` seconds after it was
    /// observed (finite lifetimes keep running), labelled for `device` when the label was the
    /// old device's.
    pub fn to_message(&self, index: u32, label: Option<String>, elapsed: u32) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = match self.family {
            Family::Inet => AddressFamily::Inet,
            Family::Inet6 => AddressFamily::Inet6,
        };
        msg.header.prefix_len = self.prefix_len;
        msg.header.scope = AddressScope::from(self.scope);
        msg.header.index = index;
        let settable = self.flags & SETTABLE_ADDRESS_FLAGS;
        msg.header.flags = AddressHeaderFlags::from_bits_truncate(settable as u8);
        msg.attributes.push(AddressAttribute::Local(self.local));
        msg.attributes
            .push(AddressAttribute::Address(self.peer.unwrap_or(self.local)));
        // IPv6 has no labels; the kernel would ignore one at best.
        if self.family == Family::Inet {
            if let Some(label) = label {
                msg.attributes.push(AddressAttribute::Label(label));
            }
            if let Some(brd) = self.broadcast {
                msg.attributes.push(AddressAttribute::Broadcast(brd));
            }
        }
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                settable,
            )));
        if self.valid_lft.is_some() || self.preferred_lft.is_some() {
            // A lifetime that ran out while we worked is given one second, not zero: zero
            // means "deprecated now" for preferred and is refused for valid.
            let remaining = |lft: Option<u32>| match lft {
                None => LIFETIME_FOREVER,
                Some(secs) => secs.saturating_sub(elapsed).max(1),
            };
            let mut info = CacheInfo::default();
            info.ifa_valid = remaining(self.valid_lft);
            info.ifa_preferred = match self.preferred_lft {
                Some(0) => 0,
                other => remaining(other).min(info.ifa_valid),
            };
            msg.attributes.push(AddressAttribute::CacheInfo(info));
        }
        if let Some(metric) = self.metric {
            msg.attributes.push(AddressAttribute::RoutePriority(metric));
        }
        if let Some(proto) = self.proto.filter(|p| *p != 0) {
            msg.attributes
                .push(AddressAttribute::Protocol(AddressProtocol::from(proto)));
        }
        msg
    }

    /// The request that deletes this address from link `index`: address, prefix, peer and (for
    /// IPv4) label identify it, so a same-address twin elsewhere is never hit.
    pub fn delete_message(&self, index: u32, label: Option<String>) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = match self.family {
            Family::Inet => AddressFamily::Inet,
            Family::Inet6 => AddressFamily::Inet6,
        };
        msg.header.prefix_len = self.prefix_len;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(self.local));
        msg.attributes
            .push(AddressAttribute::Address(self.peer.unwrap_or(self.local)));
        if self.family == Family::Inet {
            if let Some(label) = label {
                msg.attributes.push(AddressAttribute::Label(label));
            }
        }
        msg
    }

    /// Same address, prefix and peer: the kernel's identity of an address on one link.
    pub fn same_address(&self, other: &Addr) -> bool {
        self.local == other.local && self.prefix_len == other.prefix_len && self.peer == other.peer
    }

    pub fn is_temporary(&self) -> bool {
        self.family == Family::Inet6 && self.flags & IFA_F_TEMPORARY != 0
    }

    pub fn is_tentative(&self) -> bool {
        self.flags & AddressFlags::Tentative.bits() != 0
    }

    /// An IPv6 link-local address the kernel made for the link by itself (from the MAC or a
    /// stable secret). The bridge makes its own, and the port keeps its own.
    pub fn is_kernel_link_local(&self, mac: Option<&str>) -> bool {
        let IpAddr::V6(v6) = self.local else {
            return false;
        };
        if v6.segments()[0] & 0xffc0 != 0xfe80 {
            return false;
        }
        if self.proto == Some(IFAPROT_KERNEL_LL)
            || self.flags & AddressFlags::StablePrivacy.bits() != 0
        {
            return true;
        }
        // Kernels before IFA_PROTO (5.18) do not say who made it: compare with the EUI-64.
        mac.and_then(parse_mac)
            .and_then(|mac| eui64_link_local(&mac))
            .is_some_and(|eui| eui == v6)
    }

    /// The label this address gets on `to` when it moves from `from`: a label that names the
    /// old device (`eth1`, `eth1:sec`) names the new one; any other label is kept.
    pub fn label_on(&self, from: &str, to: &str) -> Result<Option<String>> {
        let Some(label) = &self.label else {
            return Ok(None);
        };
        let renamed = if label == from {
            to.to_string()
        } else if let Some(rest) = label.strip_prefix(&format!("{from}:")) {
            format!("{to}:{rest}")
        } else {
            label.clone()
        };
        // IFNAMSIZ is 16 including the terminating zero.
        if renamed.len() > 15 {
            anyhow::bail!(
                "address {}/{} has label {label:?}, which becomes {renamed:?} on {to}: longer \
                 than the kernel's 15 bytes; shorten the label or the bridge name",
                self.local,
                self.prefix_len
            );
        }
        Ok(Some(renamed))
    }

    /// `172.26.0.35/27 brd 172.26.0.63 label eth1:sec valid_lft 300`, for messages.
    pub fn describe(&self) -> String {
        let mut text = format!("{}/{}", self.local, self.prefix_len);
        if let Some(peer) = self.peer {
            let _ = write!(text, " peer {peer}");
        }
        if let Some(brd) = self.broadcast {
            let _ = write!(text, " brd {brd}");
        }
        if let Some(label) = &self.label {
            let _ = write!(text, " label {label}");
        }
        if let Some(metric) = self.metric {
            let _ = write!(text, " metric {metric}");
        }
        if let Some(valid) = self.valid_lft {
            let _ = write!(text, " valid_lft {valid}");
        }
        if let Some(preferred) = self.preferred_lft {
            let _ = write!(text, " preferred_lft {preferred}");
        }
        text
    }
}

fn finite(lifetime: u32) -> Option<u32> {
    (lifetime != LIFETIME_FOREVER).then_some(lifetime)
}

fn eui64_link_local(mac: &[u8]) -> Option<std::net::Ipv6Addr> {
    let mac: [u8; 6] = mac.try_into().ok()?;
    let mut bytes = [0u8; 16];
    bytes[0] = 0xfe;
    bytes[1] = 0x80;
    bytes[8] = mac[0] ^ 0x02;
    bytes[9] = mac[1];
    bytes[10] = mac[2];
    bytes[11] = 0xff;
    bytes[12] = 0xfe;
    bytes[13] = mac[3];
    bytes[14] = mac[4];
    bytes[15] = mac[5];
    Some(std::net::Ipv6Addr::from(bytes))
}

/// A route as the kernel reported it, minus what the kernel alone may set (cache counters,
/// dead/linkdown/offload flags), plus its remaining lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedRoute {
    /// `ip route`-style text for an operator reading the journal; never parsed.
    pub text: String,
    /// The RTM_NEWROUTE body (rtmsg header and attributes), hex-encoded.
    #[serde(with = "hex_bytes")]
    pub message: Vec<u8>,
    /// Seconds the route had left (IPv6 routes learned with a lifetime); `None` is forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u32>,
}

impl SavedRoute {
    pub fn new(msg: &RouteMessage, names: &dyn Fn(u32) -> Option<String>) -> SavedRoute {
        let expires = msg.attributes.iter().find_map(|a| match a {
            RouteAttribute::CacheInfo(info) if info.expires > 0 => {
                Some(info.expires.div_ceil(USER_HZ))
            }
            _ => None,
        });
        let clean = settable(msg);
        let mut message = vec![0u8; clean.buffer_len()];
        clean.emit(&mut message);
        SavedRoute {
            text: describe_route(&clean, names),
            message,
            expires,
        }
    }

    pub fn route(&self) -> Result<RouteMessage> {
        RouteMessage::parse(self.message.as_slice())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("journal route {:?} does not decode", self.text))
    }

    /// The message that adds this route again `elapsed` seconds after it was observed.
    pub fn with_expiry(&self, mut msg: RouteMessage, elapsed: u32) -> RouteMessage {
        if let Some(secs) = self.expires {
            msg.attributes
                .push(RouteAttribute::Expires(secs.saturating_sub(elapsed).max(1)));
        }
        msg
    }
}

/// The route without what only the kernel may set: cache info and lifetime (volatile), and
/// the dead / linkdown / offload / cloned flags (an add carrying them is refused with EINVAL).
pub fn settable(msg: &RouteMessage) -> RouteMessage {
    let mut clean = msg.clone();
    clean.header.flags &= RouteFlags::Onlink | RouteFlags::Pervasive;
    clean.attributes.retain(|a| {
        !matches!(
            a,
            RouteAttribute::CacheInfo(_)
                | RouteAttribute::Expires(_)
                | RouteAttribute::MfcStats(_)
                | RouteAttribute::MulticastExpires(_)
        )
    });
    for attr in &mut clean.attributes {
        if let RouteAttribute::MultiPath(hops) = attr {
            for hop in hops {
                hop.flags &= RouteNextHopFlags::Onlink;
            }
        }
    }
    clean
}

/// The same route sent through link `to` wherever it used link `from`.
pub fn repoint(msg: &RouteMessage, from: u32, to: u32) -> RouteMessage {
    let mut out = msg.clone();
    for attr in &mut out.attributes {
        match attr {
            RouteAttribute::Oif(index) if *index == from => *index = to,
            RouteAttribute::MultiPath(hops) => {
                for hop in hops.iter_mut().filter(|h| h.interface_index == from) {
                    hop.interface_index = to;
                }
            }
            _ => {}
        }
    }
    out
}

/// An IPv6 multipath route reduced to its next hops through `index`. IPv6 keeps each next hop
/// as its own route (siblings), so adding or deleting these hops touches no other sibling; the
/// weights travel in RTA_MULTIPATH.
pub fn hops_through(msg: &RouteMessage, index: u32) -> RouteMessage {
    let mut out = msg.clone();
    for attr in &mut out.attributes {
        if let RouteAttribute::MultiPath(hops) = attr {
            hops.retain(|h| h.interface_index == index);
        }
    }
    out
}

pub fn is_multipath(msg: &RouteMessage) -> bool {
    msg.attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::MultiPath(_)))
}

/// A comparable form of a route: settable attributes only, in a fixed order, next hops sorted.
/// Two routes with equal fingerprints are the same route with the same attributes.
pub fn fingerprint(msg: &RouteMessage) -> Vec<u8> {
    let mut clean = settable(msg);
    // The kernel reports RTA_TABLE; a request may rely on the header byte. Make both say it.
    let table = clean.table();
    clean.set_table(table);
    for attr in &mut clean.attributes {
        if let RouteAttribute::MultiPath(hops) = attr {
            hops.sort_by_key(emitted_hop);
        }
    }
    clean
        .attributes
        .sort_by_key(|a| (a.kind(), emitted_attr(a)));
    let mut bytes = vec![0u8; clean.buffer_len()];
    clean.emit(&mut bytes);
    bytes
}

fn emitted_attr(attr: &RouteAttribute) -> Vec<u8> {
    let mut bytes = vec![0u8; attr.buffer_len()];
    attr.emit(&mut bytes);
    bytes
}

fn emitted_hop(hop: &RouteNextHop) -> Vec<u8> {
    let mut bytes = vec![0u8; hop.buffer_len()];
    hop.emit(&mut bytes);
    bytes
}

/// `10.5.0.0/16 via 172.26.0.33 dev eth1 table 254 proto static metric 5 src ... mtu 1400`.
pub fn describe_route(msg: &RouteMessage, names: &dyn Fn(u32) -> Option<String>) -> String {
    let name = |i: u32| names(i).unwrap_or_else(|| format!("if{i}"));
    let mut text = match msg.destination() {
        Some(_) if msg.is_default() => "default".to_string(),
        Some(dst) => dst.to_string(),
        None => "?".to_string(),
    };
    if msg.header.kind != RouteType::Unicast {
        text.insert_str(0, &format!("{:?} ", msg.header.kind).to_lowercase());
    }
    if msg.header.address_family == AddressFamily::Inet6 {
        text.insert_str(0, "inet6 ");
    }
    if let Some(gw) = msg.gateway() {
        let _ = write!(text, " via {gw}");
    }
    if let Some(oif) = msg.oif() {
        let _ = write!(text, " dev {}", name(oif));
    }
    let _ = write!(
        text,
        " table {} proto {}",
        msg.table(),
        protocol_name(u8::from(msg.header.protocol))
    );
    if let Some(metric) = msg.priority() {
        let _ = write!(text, " metric {metric}");
    }
    if let Some(src) = msg.pref_source() {
        let _ = write!(text, " src {src}");
    }
    if msg.header.flags.contains(RouteFlags::Onlink) {
        text.push_str(" onlink");
    }
    let mut metrics = BTreeMap::new();
    for attr in &msg.attributes {
        if let RouteAttribute::Metrics(list) = attr {
            for m in list {
                // `Mtu(1400)` reads as `mtu 1400`, the way `ip route` prints it.
                let text = format!("{m:?}")
                    .to_lowercase()
                    .replace('(', " ")
                    .replace(')', "");
                metrics.insert(text, ());
            }
        }
    }
    for key in metrics.keys() {
        let _ = write!(text, " {key}");
    }
    for hop in msg.nexthops().iter().filter(|_| is_multipath(msg)) {
        text.push_str(" nexthop");
        if let Some(gw) = hop.gateway {
            let _ = write!(text, " via {gw}");
        }
        if let Some(i) = hop.ifindex {
            let _ = write!(text, " dev {}", name(i));
        }
        let _ = write!(text, " weight {}", hop.weight);
    }
    text
}

/// Serde helper: bytes as a lowercase hex string.
mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 || !text.is_ascii() {
            return Err(D::Error::custom("hex string of odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::unicast_route;
    use netlink_packet_route::route::RouteCacheInfo;

    fn route_via(dev: u32) -> RouteMessage {
        let mut msg = unicast_route(
            "10.5.0.0/16".parse().unwrap(),
            Some("172.26.0.33".parse().unwrap()),
            Some(dev),
            254,
        );
        msg.attributes.push(RouteAttribute::Priority(5));
        msg
    }

    #[test]
    fn saved_routes_round_trip_without_volatile_parts() {
        let mut msg = route_via(3);
        msg.header.flags = RouteFlags::Onlink | RouteFlags::Linkdown;
        let mut raw = [0u8; 32];
        raw[8..12].copy_from_slice(&29_950u32.to_ne_bytes()); // rta_expires
        let info = RouteCacheInfo::parse(&raw).unwrap();
        msg.attributes.push(RouteAttribute::CacheInfo(info));
        let saved = SavedRoute::new(&msg, &|i| (i == 3).then(|| "eth1".into()));
        assert_eq!(saved.expires, Some(300));
        let back = saved.route().unwrap();
        assert_eq!(back.header.flags, RouteFlags::Onlink);
        assert!(!back
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::CacheInfo(_))));
        assert_eq!(
            saved.text,
            "10.5.0.0/16 via 172.26.0.33 dev eth1 table 254 proto static metric 5 onlink"
        );
        let json = serde_json::to_string(&saved).unwrap();
        assert_eq!(serde_json::from_str::<SavedRoute>(&json).unwrap(), saved);
    }

    #[test]
    fn repointing_changes_only_the_device_and_fingerprints_see_it() {
        let on_eth1 = route_via(3);
        let moved = repoint(&on_eth1, 3, 9);
        assert_eq!(moved.oif(), Some(9));
        assert_ne!(fingerprint(&on_eth1), fingerprint(&moved));
        assert_eq!(fingerprint(&moved), fingerprint(&route_via(9)));
        let mut reordered = route_via(9);
        reordered.attributes.reverse();
        assert_eq!(fingerprint(&reordered), fingerprint(&moved));
    }

    #[test]
    fn multipath_hops_are_repointed_and_selected() {
        let mut msg = unicast_route("::/0".parse().unwrap(), None, None, 254);
        let hop = |dev: u32, weight: u8| {
            let mut h = RouteNextHop::default();
            h.interface_index = dev;
            h.hops = weight;
            h
        };
        msg.attributes
            .push(RouteAttribute::MultiPath(vec![hop(2, 0), hop(3, 2)]));
        let only = hops_through(&msg, 3);
        assert_eq!(only.nexthop_ifindexes(), vec![3]);
        assert_eq!(only.nexthops()[0].weight, 3);
        let moved = repoint(&msg, 3, 9);
        assert_eq!(moved.nexthop_ifindexes(), vec![2, 9]);
    }

    #[test]
    fn labels_follow_the_device_name() {
        let mut addr = Addr {
            family: Family::Inet,
            local: "172.26.0.36".parse().unwrap(),
            peer: None,
            prefix_len: 27,
            scope: 0,
            flags: 0,
            label: Some("eth1:sec".into()),
            broadcast: None,
            valid_lft: None,
            preferred_lft: None,
            metric: None,
            proto: None,
        };
        assert_eq!(
            addr.label_on("eth1", "br-sec").unwrap().as_deref(),
            Some("br-sec:sec")
        );
        addr.label = Some("eth1".into());
        assert_eq!(
            addr.label_on("eth1", "br-sec").unwrap().as_deref(),
            Some("br-sec")
        );
        addr.label = Some("other".into());
        assert_eq!(
            addr.label_on("eth1", "br-sec").unwrap().as_deref(),
            Some("other")
        );
        addr.label = Some("eth1:abcdefghij".into());
        assert!(addr.label_on("eth1", "br-sec").is_err());
    }

    #[test]
    fn address_messages_carry_lifetimes_that_keep_running() {
        let addr = Addr {
            family: Family::Inet6,
            local: "2001:db8:1::3".parse().unwrap(),
            peer: None,
            prefix_len: 64,
            scope: 0,
            flags: AddressFlags::Nodad.bits() | AddressFlags::Tentative.bits(),
            label: Some("ignored".into()),
            broadcast: None,
            valid_lft: Some(3600),
            preferred_lft: Some(1800),
            metric: Some(50),
            proto: None,
        };
        let msg = addr.to_message(9, Some("x".into()), 10);
        assert_eq!(msg.header.index, 9);
        let back = Addr::from_message(&msg).unwrap();
        assert_eq!(back.valid_lft, Some(3590));
        assert_eq!(back.preferred_lft, Some(1790));
        assert_eq!(
            back.flags,
            AddressFlags::Nodad.bits(),
            "tentative is not ours to set"
        );
        assert_eq!(back.label, None, "IPv6 has no labels");
        assert_eq!(back.metric, Some(50));
    }

    #[test]
    fn kernel_link_locals_are_recognised() {
        let mut addr = Addr {
            family: Family::Inet6,
            local: "fe80::5cd1:17ff:fe5f:1b6".parse().unwrap(),
            peer: None,
            prefix_len: 64,
            scope: 253,
            flags: 0,
            label: None,
            broadcast: None,
            valid_lft: None,
            preferred_lft: None,
            metric: None,
            proto: None,
        };
        assert!(addr.is_kernel_link_local(Some("5e:d1:17:5f:01:b6")));
        assert!(!addr.is_kernel_link_local(Some("5e:d1:17:5f:01:b7")));
        addr.local = "fe80::1".parse().unwrap();
        assert!(!addr.is_kernel_link_local(Some("5e:d1:17:5f:01:b6")));
        addr.proto = Some(IFAPROT_KERNEL_LL);
        assert!(addr.is_kernel_link_local(None));
    }
}
