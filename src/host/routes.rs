//! The host's default routes as plain values: what the baseline records, how a route occupies a
//! "slot", which baseline routes are missing now, and the message that puts one back.
//!
//! A slot is (family, table, device, metric): the kernel's own notion of "the same route" is
//! (table, destination, tos, metric), so two defaults that differ only by device are both legal
//! and both must survive (incident 1). A multipath route occupies one slot per next hop, and a
//! route through a nexthop object (`nhid`) occupies that object's slot. The device of a slot is
//! its ifindex when known: names are reused and changed, ifindexes are not (`route_identity`
//! resolves a recorded device to today's).
//!
//! Every attribute the kernel gives a route is kept: the common ones as fields, the rest (via,
//! encap, realm, nhid, and any the kernel adds later) as the kernel's own bytes, sent back
//! unchanged on a restore.
//!
//! IPv4 keeps same-key routes in a list and uses the first, so the baseline keeps each list in
//! the kernel's order, and a route that led its list goes back to its front.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use netlink_packet_core::{DefaultNla, Emitable, NLA_F_NESTED, NLA_F_NET_BYTEORDER};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteNextHop,
    RouteNextHopFlags, RoutePreference, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use serde::{Deserialize, Serialize};

pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn address_family(self) -> AddressFamily {
        match self {
            Family::Inet => AddressFamily::Inet,
            Family::Inet6 => AddressFamily::Inet6,
        }
    }
}

/// One default route with every attribute that `ip route add` could have given it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    pub family: Family,
    pub table: u32,
    pub metric: u32,
    pub protocol: u8,
    pub scope: u8,
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tos: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub onlink: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    /// RTAX_* values by iproute2's names (mtu, advmss, hoplimit, lock, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congctl: Option<String>,
    /// IPv6 router preference (RTA_PREF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pref: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<Nexthop>,
    /// Which device `dev` is. Absent in baselines written before devices were identified:
    /// such a route is resolved by name once and identified at the next ADD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkId>,
    /// The attributes kept as the kernel's bytes (via, encap, realm, nhid, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<RawAttr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nexthop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub dev: String,
    pub weight: u16,
    #[serde(default, skip_serializing_if = "is_false")]
    pub onlink: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkId>,
    /// This hop's own attributes as the kernel's bytes (via, encap, realm).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<RawAttr>,
}

/// A device beyond its name: the ifindex (stable for the device's life in its namespace), the
/// MAC (which survives a driver re-probe that gives a new ifindex) and the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkId {
    pub ifindex: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One route attribute as the kernel gave it: its type (with the nested and byte-order flags)
/// and its value in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAttr {
    #[serde(rename = "type")]
    pub kind: u16,
    pub value: String,
}

pub const RTA_FLOW: u16 = 11;
pub const RTA_VIA: u16 = 18;
pub const RTA_ENCAP_TYPE: u16 = 21;
pub const RTA_ENCAP: u16 = 22;
pub const RTA_NH_ID: u16 = 30;

impl RawAttr {
    fn of(attr: &RouteAttribute) -> RawAttr {
        let mut bytes = vec![0u8; attr.buffer_len()];
        attr.emit(&mut bytes);
        let len = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]])).min(bytes.len());
        RawAttr {
            kind: u16::from_ne_bytes([bytes[2], bytes[3]]),
            value: bytes[4..len].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The attribute's type without the nested / byte-order flags.
    pub fn number(&self) -> u16 {
        self.kind & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
    }

    pub fn bytes(&self) -> Result<Vec<u8>> {
        let hex = self.value.as_bytes();
        if hex.len() % 2 != 0 {
            bail!(
                "route attribute {} has an odd number of hex digits",
                self.kind
            );
        }
        hex.chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or_else(|| anyhow!("route attribute {} is not hex", self.kind))
            })
            .collect()
    }

    fn to_attribute(&self) -> Result<RouteAttribute> {
        Ok(RouteAttribute::Other(DefaultNla::new(
            self.kind,
            self.bytes()?,
        )))
    }

    fn u32_value(&self) -> Option<u32> {
        let bytes = self.bytes().ok()?;
        Some(u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
    }

    /// `RTA_VIA`: an `rtvia` (family, then the address).
    fn via(&self) -> Option<IpAddr> {
        let bytes = self.bytes().ok()?;
        let family = u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
        let addr = bytes.get(2..)?;
        match (family, addr.len()) {
            (2, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(addr).ok()?)),
            (10, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(addr).ok()?)),
            _ => None,
        }
    }

    /// How `ip route` would name it.
    fn describe(&self) -> String {
        match self.number() {
            RTA_VIA => match self.via() {
                Some(IpAddr::V6(a)) => format!("via inet6 {a}"),
                Some(IpAddr::V4(a)) => format!("via inet {a}"),
                None => "via (unreadable)".into(),
            },
            RTA_FLOW => match self.u32_value() {
                Some(v) if v >> 16 == 0 => format!("realm {}", v & 0xffff),
                Some(v) => format!("realms {}/{}", v >> 16, v & 0xffff),
                None => "realm (unreadable)".into(),
            },
            RTA_NH_ID => format!("nhid {}", self.u32_value().unwrap_or(0)),
            RTA_ENCAP_TYPE => {
                let kind = self
                    .bytes()
                    .ok()
                    .and_then(|b| b.get(..2).map(|b| [b[0], b[1]]));
                let name = match kind.map(u16::from_ne_bytes) {
                    Some(1) => "mpls".to_string(),
                    Some(2) => "ip".into(),
                    Some(3) => "ila".into(),
                    Some(4) => "ip6".into(),
                    Some(5) => "seg6".into(),
                    Some(6) => "bpf".into(),
                    Some(7) => "seg6local".into(),
                    Some(8) => "rpl".into(),
                    Some(9) => "ioam6".into(),
                    Some(10) => "xfrm".into(),
                    Some(other) => other.to_string(),
                    None => "?".into(),
                };
                format!("encap {name}")
            }
            RTA_ENCAP => format!("encap-data {}", self.value),
            other => format!("attribute {other} {}", self.value),
        }
    }
}

/// The device part of a slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotDev {
    Index(u32),
    /// A recorded device never identified by ifindex (resolved by name before the diff).
    Name(String),
    /// A route through a nexthop object: the object, not a device, is its slot.
    Nexthop(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub family: Family,
    pub table: u32,
    pub dev: Option<SlotDev>,
    pub metric: u32,
}

/// The kernel's key of a default route: routes with equal keys share one list (IPv4) and only
/// the first is used. Ordered so that a baseline sorted by it groups each list together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListKey {
    pub family: Family,
    pub table: u32,
    pub metric: u32,
    pub tos: u8,
}

/// Where a restored route goes in its same-key list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// At the end (`NLM_F_APPEND`): behind the routes still there, or merged into an IPv6
    /// multipath route.
    Back,
    /// At the front (create without append): the route led its IPv4 list, and every route that
    /// was ahead of it is gone too.
    Front,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl DefaultRoute {
    /// Reads a kernel route message; `None` for anything that is not a default route we guard
    /// (other prefixes, the `local` table, cloned cache entries, MPLS).
    pub fn from_message(
        msg: &RouteMessage,
        name_of: &dyn Fn(u32) -> Option<String>,
    ) -> Option<Self> {
        let header = &msg.header;
        let family = match header.address_family {
            AddressFamily::Inet => Family::Inet,
            AddressFamily::Inet6 => Family::Inet6,
            _ => return None,
        };
        if header.destination_prefix_length != 0 || header.flags.contains(RouteFlags::Cloned) {
            return None;
        }
        let mut route = DefaultRoute {
            family,
            table: u32::from(header.table),
            metric: 0,
            protocol: header.protocol.into(),
            scope: header.scope.into(),
            kind: header.kind.into(),
            tos: header.tos,
            gateway: None,
            dev: None,
            onlink: header.flags.contains(RouteFlags::Onlink),
            prefsrc: None,
            metrics: BTreeMap::new(),
            congctl: None,
            pref: None,
            nexthops: Vec::new(),
            link: None,
            attrs: Vec::new(),
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => route.table = *t,
                RouteAttribute::Priority(p) => route.metric = *p,
                RouteAttribute::Gateway(a) => route.gateway = ip_of(a),
                RouteAttribute::PrefSource(a) => route.prefsrc = ip_of(a),
                RouteAttribute::Oif(i) => {
                    route.dev = Some(name_of(*i).unwrap_or_else(|| format!("if{i}")));
                    route.link = Some(LinkId::index(*i));
                }
                RouteAttribute::Preference(p) => route.pref = Some(u8::from(*p)),
                RouteAttribute::Metrics(list) => {
                    for metric in list {
                        if let RouteMetric::CcAlgo(name) = metric {
                            route.congctl = Some(name.clone());
                        } else if let Some((key, value)) = metric_entry(metric) {
                            route.metrics.insert(key.to_string(), value);
                        }
                    }
                }
                RouteAttribute::MultiPath(hops) => {
                    route.nexthops = hops
                        .iter()
                        .map(|hop| Nexthop {
                            gateway: hop.attributes.iter().find_map(|a| match a {
                                RouteAttribute::Gateway(g) => ip_of(g),
                                _ => None,
                            }),
                            dev: name_of(hop.interface_index)
                                .unwrap_or_else(|| format!("if{}", hop.interface_index)),
                            weight: u16::from(hop.hops) + 1,
                            onlink: hop.flags.contains(RouteNextHopFlags::Onlink),
                            link: Some(LinkId::index(hop.interface_index)),
                            attrs: hop
                                .attributes
                                .iter()
                                .filter(|a| !matches!(a, RouteAttribute::Gateway(_)))
                                .map(RawAttr::of)
                                .collect(),
                        })
                        .collect();
                }
                // The kernel's bookkeeping, not part of what was added: cache statistics and
                // the remaining lifetime of an expiring route.
                RouteAttribute::CacheInfo(_)
                | RouteAttribute::Expires(_)
                | RouteAttribute::MulticastExpires(_)
                | RouteAttribute::Destination(_) => {}
                other => route.attrs.push(RawAttr::of(other)),
            }
        }
        if route.table == RT_TABLE_LOCAL {
            return None;
        }
        if route.nhid().is_some() {
            // The device, gateway and next hops a compat-mode dump adds belong to the nexthop
            // object, and the kernel refuses them beside its id: the route is the object.
            route.gateway = None;
            route.dev = None;
            route.link = None;
            route.onlink = false;
            route.nexthops.clear();
        }
        Some(route)
    }

    /// The message that adds this route back, resolving device names to today's ifindexes.
    pub fn to_message(&self, index_of: &dyn Fn(&str) -> Option<u32>) -> Result<RouteMessage> {
        let resolve =
            |dev: &str| index_of(dev).ok_or_else(|| anyhow!("device {dev} does not exist"));
        let mut header = RouteHeader {
            address_family: self.family.address_family(),
            destination_prefix_length: 0,
            source_prefix_length: 0,
            tos: self.tos,
            // Tables above 255 only fit the attribute; the header then says "see attribute".
            table: u8::try_from(self.table).unwrap_or(0),
            protocol: RouteProtocol::from(self.protocol),
            scope: RouteScope::from(self.scope),
            kind: RouteType::from(self.kind),
            flags: RouteFlags::empty(),
        };
        // A route through a nexthop object names only the object: the kernel refuses a device,
        // gateway or next hops beside it (a dump in compat mode shows them, for reading only).
        let through_object = self.nhid().is_some();
        if self.onlink && !through_object {
            header.flags |= RouteFlags::Onlink;
        }
        let mut attributes = vec![RouteAttribute::Table(self.table)];
        if self.metric != 0 {
            attributes.push(RouteAttribute::Priority(self.metric));
        }
        if let Some(gw) = self.gateway.filter(|_| !through_object) {
            attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(dev) = self.dev.as_ref().filter(|_| !through_object) {
            attributes.push(RouteAttribute::Oif(resolve(dev)?));
        }
        for attr in &self.attrs {
            attributes.push(attr.to_attribute()?);
        }
        if let Some(src) = self.prefsrc {
            attributes.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        if let Some(pref) = self.pref {
            attributes.push(RouteAttribute::Preference(RoutePreference::from(pref)));
        }
        let mut metrics: Vec<RouteMetric> = self
            .metrics
            .iter()
            .map(|(k, v)| metric_from(k, *v))
            .collect::<Result<_>>()?;
        if let Some(cc) = &self.congctl {
            metrics.push(RouteMetric::CcAlgo(cc.clone()));
        }
        if !metrics.is_empty() {
            attributes.push(RouteAttribute::Metrics(metrics));
        }
        if !self.nexthops.is_empty() && !through_object {
            let hops = self
                .nexthops
                .iter()
                .map(|hop| {
                    let mut next = RouteNextHop::default();
                    next.interface_index = resolve(&hop.dev)?;
                    next.hops = u8::try_from(hop.weight.saturating_sub(1)).unwrap_or(u8::MAX);
                    if hop.onlink {
                        next.flags |= RouteNextHopFlags::Onlink;
                    }
                    if let Some(gw) = hop.gateway {
                        next.attributes
                            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
                    }
                    for attr in &hop.attrs {
                        next.attributes.push(attr.to_attribute()?);
                    }
                    Ok(next)
                })
                .collect::<Result<Vec<_>>>()?;
            attributes.push(RouteAttribute::MultiPath(hops));
        }
        let mut msg = RouteMessage::default();
        msg.header = header;
        msg.attributes = attributes;
        Ok(msg)
    }

    /// One next hop of this multipath route as a single-path route with its attributes.
    pub fn hop_as_route(&self, hop: &Nexthop) -> DefaultRoute {
        DefaultRoute {
            gateway: hop.gateway,
            dev: Some(hop.dev.clone()),
            onlink: hop.onlink,
            nexthops: Vec::new(),
            link: hop.link.clone(),
            attrs: self.attrs.iter().chain(&hop.attrs).cloned().collect(),
            ..self.clone()
        }
    }

    /// Every device the route sends through, next hops included.
    pub fn devices(&self) -> Vec<&str> {
        let mut devs: Vec<&str> = self.dev.iter().map(String::as_str).collect();
        devs.extend(self.nexthops.iter().map(|h| h.dev.as_str()));
        devs
    }

    pub fn list_key(&self) -> ListKey {
        ListKey {
            family: self.family,
            table: self.table,
            metric: self.metric,
            tos: self.tos,
        }
    }

    pub fn slots(&self) -> Vec<Slot> {
        let slot = |dev: Option<SlotDev>| Slot {
            family: self.family,
            table: self.table,
            dev,
            metric: self.metric,
        };
        if let Some(id) = self.nhid() {
            return vec![slot(Some(SlotDev::Nexthop(id)))];
        }
        if self.nexthops.is_empty() {
            vec![slot(slot_dev(self.link.as_ref(), self.dev.as_deref()))]
        } else {
            self.nexthops
                .iter()
                .map(|h| slot(slot_dev(h.link.as_ref(), Some(&h.dev))))
                .collect()
        }
    }

    /// The nexthop object the route goes through (`nhid`), if any.
    pub fn nhid(&self) -> Option<u32> {
        self.attrs
            .iter()
            .find(|a| a.number() == RTA_NH_ID)
            .and_then(RawAttr::u32_value)
    }

    /// The address the route's traffic is handed to: its gateway, or its `RTA_VIA` (an IPv4
    /// route via an IPv6 neighbour).
    pub fn next_hop_address(&self) -> Option<IpAddr> {
        self.gateway.or_else(|| {
            self.attrs
                .iter()
                .find(|a| a.number() == RTA_VIA)
                .and_then(RawAttr::via)
        })
    }

    /// The same route sent through `to` wherever it used `from` (an uplink moved into a bridge).
    /// The identity of a re-pointed device is dropped: `to` is identified when next seen.
    pub fn repointed(&self, from: &str, to: &str) -> DefaultRoute {
        let mut route = self.clone();
        if route.dev.as_deref() == Some(from) {
            route.dev = Some(to.to_string());
            route.link = None;
        }
        for hop in &mut route.nexthops {
            if hop.dev == from {
                hop.dev = to.to_string();
                hop.link = None;
            }
        }
        route
    }

    /// Fills in the MAC and kind of each identified device from `describe(ifindex)`.
    pub fn describe_links(&mut self, describe: &dyn Fn(u32) -> Option<LinkId>) {
        let fill = |link: &mut Option<LinkId>| {
            if let Some(id) = link.as_ref().and_then(|l| describe(l.ifindex)) {
                *link = Some(id);
            }
        };
        fill(&mut self.link);
        for hop in &mut self.nexthops {
            fill(&mut hop.link);
        }
    }

    /// The route without device identities, for comparing pictures taken by name.
    pub fn without_identity(mut self) -> DefaultRoute {
        self.link = None;
        for hop in &mut self.nexthops {
            hop.link = None;
        }
        self
    }
}

impl LinkId {
    pub fn index(ifindex: u32) -> LinkId {
        LinkId {
            ifindex,
            mac: None,
            kind: None,
        }
    }
}

fn slot_dev(link: Option<&LinkId>, name: Option<&str>) -> Option<SlotDev> {
    match (link, name) {
        (Some(link), _) => Some(SlotDev::Index(link.ifindex)),
        (None, Some(name)) => Some(SlotDev::Name(name.to_string())),
        (None, None) => None,
    }
}

/// `ip route`-style text, used in messages and `baseline --show`.
impl fmt::Display for DefaultRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind != u8::from(RouteType::Unicast) {
            write!(f, "{} ", type_name(self.kind))?;
        }
        f.write_str("default")?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if self.table != RT_TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        write!(f, " proto {}", protocol_name(self.protocol))?;
        if self.metric != 0 {
            write!(f, " metric {}", self.metric)?;
        }
        if let Some(src) = self.prefsrc {
            write!(f, " src {src}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        for (key, value) in &self.metrics {
            write!(f, " {key} {value}")?;
        }
        for attr in self.attrs.iter().filter(|a| a.number() != RTA_ENCAP) {
            write!(f, " {}", attr.describe())?;
        }
        for hop in &self.nexthops {
            f.write_str(" nexthop")?;
            if let Some(gw) = hop.gateway {
                write!(f, " via {gw}")?;
            }
            write!(f, " dev {} weight {}", hop.dev, hop.weight)?;
            if hop.onlink {
                f.write_str(" onlink")?;
            }
            for attr in hop.attrs.iter().filter(|a| a.number() != RTA_ENCAP) {
                write!(f, " {}", attr.describe())?;
            }
        }
        if self.family == Family::Inet6 {
            f.write_str(" (ipv6)")?;
        }
        Ok(())
    }
}

/// What the route guard found when it compared the baseline with the host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteDiff {
    /// Baseline routes none of whose slots is occupied now: re-add the whole route.
    pub missing: Vec<DefaultRoute>,
    /// Multipath routes that lost some next hops while others remain: the lost hops as
    /// single-path routes (IPv6 merges them back into the multipath route on append).
    pub missing_hops: Vec<DefaultRoute>,
}

impl RouteDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.missing_hops.is_empty()
    }
}

/// Whether every slot of each baseline route is occupied in `current`, for [`adopt`]: a route
/// that lost even one next hop stays recorded.
pub fn fully_present(baseline: &[DefaultRoute], current: &[DefaultRoute]) -> Vec<bool> {
    let occupied: std::collections::HashSet<Slot> =
        current.iter().flat_map(DefaultRoute::slots).collect();
    baseline
        .iter()
        .map(|r| r.slots().iter().all(|s| occupied.contains(s)))
        .collect()
}

/// Compares by slot, never by attributes: a route whose slot is taken by a changed route (a DHCP
/// renewal with a new gateway) is not missing, and must never be "restored" over.
pub fn diff(baseline: &[DefaultRoute], current: &[DefaultRoute]) -> RouteDiff {
    let occupied: std::collections::HashSet<Slot> =
        current.iter().flat_map(DefaultRoute::slots).collect();
    let mut out = RouteDiff::default();
    for route in baseline {
        let slots = route.slots();
        let free: Vec<&Slot> = slots.iter().filter(|s| !occupied.contains(s)).collect();
        if free.is_empty() {
            continue;
        }
        if free.len() == slots.len() {
            out.missing.push(route.clone());
            continue;
        }
        for hop in &route.nexthops {
            let dev = slot_dev(hop.link.as_ref(), Some(&hop.dev));
            if free.iter().any(|s| s.dev == dev) {
                out.missing_hops.push(route.hop_as_route(hop));
            }
        }
    }
    out
}

/// The missing baseline routes in the order to re-add them, each with its place. An IPv4 route
/// goes to the front of its list when every route ahead of it in the baseline is missing too;
/// the fronts come last and last-first, so a run of them keeps its own order. IPv6 routes and
/// lost next hops go to the back: same-metric IPv6 defaults merge into one multipath route,
/// whose order does not matter.
pub fn restore_plan(baseline: &[DefaultRoute], found: RouteDiff) -> Vec<(DefaultRoute, Placement)> {
    let mut plan = Vec::new();
    let mut fronts = Vec::new();
    for (at, route) in baseline.iter().enumerate() {
        if !found.missing.contains(route) {
            continue;
        }
        let leads = route.family == Family::Inet
            && baseline[..at]
                .iter()
                .filter(|ahead| ahead.list_key() == route.list_key())
                .all(|ahead| found.missing.contains(ahead));
        if leads {
            fronts.push(route.clone());
        } else {
            plan.push((route.clone(), Placement::Back));
        }
    }
    plan.extend(fronts.into_iter().rev().map(|r| (r, Placement::Front)));
    plan.extend(found.missing_hops.into_iter().map(|r| (r, Placement::Back)));
    plan
}

/// The baseline after observing `current`: every current route takes over the slots it occupies
/// (so an operator's or DHCP's change is adopted), and the baseline routes `kept` says are
/// still missing (in whole or in part) stay recorded, to be restored or reported. Within a
/// same-key list the current routes keep the kernel's order, and a missing route stays behind
/// the route that was ahead of it (or at the front, when none was).
pub fn adopt(
    baseline: &[DefaultRoute],
    kept: &dyn Fn(usize) -> bool,
    current: &[DefaultRoute],
) -> Vec<DefaultRoute> {
    let is_missing = |at: usize| kept(at);
    let mut merged: Vec<DefaultRoute> = current.to_vec();
    for (at, route) in baseline.iter().enumerate() {
        if !is_missing(at) {
            continue;
        }
        let key = route.list_key();
        let behind = baseline[..at]
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, ahead)| ahead.list_key() == key)
            .find_map(|(before, ahead)| {
                if is_missing(before) {
                    merged.iter().position(|m| m == ahead)
                } else {
                    let slots = ahead.slots();
                    merged.iter().rposition(|m| {
                        m.list_key() == key && m.slots().iter().any(|s| slots.contains(s))
                    })
                }
            });
        let place = match behind {
            Some(i) => i + 1,
            None => merged
                .iter()
                .position(|m| m.list_key() == key)
                .unwrap_or(merged.len()),
        };
        merged.insert(place, route.clone());
    }
    // Stable: each list keeps the order built above.
    merged.sort_by_key(DefaultRoute::list_key);
    merged
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn metric_entry(metric: &RouteMetric) -> Option<(&'static str, u32)> {
    Some(match metric {
        RouteMetric::Lock(v) => ("lock", *v),
        RouteMetric::Mtu(v) => ("mtu", *v),
        RouteMetric::Window(v) => ("window", *v),
        RouteMetric::Rtt(v) => ("rtt", *v),
        RouteMetric::RttVar(v) => ("rttvar", *v),
        RouteMetric::SsThresh(v) => ("ssthresh", *v),
        RouteMetric::Cwnd(v) => ("cwnd", *v),
        RouteMetric::Advmss(v) => ("advmss", *v),
        RouteMetric::Reordering(v) => ("reordering", *v),
        RouteMetric::Hoplimit(v) => ("hoplimit", *v),
        RouteMetric::InitCwnd(v) => ("initcwnd", *v),
        RouteMetric::Features(v) => ("features", *v),
        RouteMetric::RtoMin(v) => ("rto_min", *v),
        RouteMetric::InitRwnd(v) => ("initrwnd", *v),
        RouteMetric::QuickAck(v) => ("quickack", *v),
        RouteMetric::FastopenNoCookie(v) => ("fastopen_no_cookie", *v),
        _ => return None,
    })
}

fn metric_from(key: &str, v: u32) -> Result<RouteMetric> {
    Ok(match key {
        "lock" => RouteMetric::Lock(v),
        "mtu" => RouteMetric::Mtu(v),
        "window" => RouteMetric::Window(v),
        "rtt" => RouteMetric::Rtt(v),
        "rttvar" => RouteMetric::RttVar(v),
        "ssthresh" => RouteMetric::SsThresh(v),
        "cwnd" => RouteMetric::Cwnd(v),
        "advmss" => RouteMetric::Advmss(v),
        "reordering" => RouteMetric::Reordering(v),
        "hoplimit" => RouteMetric::Hoplimit(v),
        "initcwnd" => RouteMetric::InitCwnd(v),
        "features" => RouteMetric::Features(v),
        "rto_min" => RouteMetric::RtoMin(v),
        "initrwnd" => RouteMetric::InitRwnd(v),
        "quickack" => RouteMetric::QuickAck(v),
        "fastopen_no_cookie" => RouteMetric::FastopenNoCookie(v),
        other => bail!("unknown route metric {other:?} in the baseline"),
    })
}

pub fn protocol_name(proto: u8) -> String {
    match proto {
        0 => "unspec".into(),
        1 => "redirect".into(),
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        9 => "ra".into(),
        16 => "dhcp".into(),
        12 => "bird".into(),
        other => other.to_string(),
    }
}

fn type_name(kind: u8) -> String {
    match RouteType::from(kind) {
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        _ => format!("type{kind}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A static IPv4 default route in the main table, as `ip route add default via` makes it.
    pub(crate) fn route(dev: &str, gw: &str, metric: u32) -> DefaultRoute {
        DefaultRoute {
            family: Family::Inet,
            table: RT_TABLE_MAIN,
            metric,
            protocol: 4,
            scope: 0,
            kind: 1,
            tos: 0,
            gateway: Some(gw.parse().unwrap()),
            dev: Some(dev.into()),
            onlink: false,
            prefsrc: None,
            metrics: BTreeMap::new(),
            congctl: None,
            pref: None,
            nexthops: Vec::new(),
            link: None,
            attrs: Vec::new(),
        }
    }

    /// [`adopt`] keeping what `current` does not fully hold, as the route guard calls it.
    fn adopt_now(baseline: &[DefaultRoute], current: &[DefaultRoute]) -> Vec<DefaultRoute> {
        let present = fully_present(baseline, current);
        adopt(baseline, &|at| !present[at], current)
    }

    #[test]
    fn two_static_defaults_on_two_devices_are_two_slots() {
        let a = route("eth0", "172.26.0.1", 0);
        let b = route("eth1", "172.26.0.33", 0);
        let baseline = vec![a.clone(), b.clone()];
        assert!(diff(&baseline, &baseline).is_empty());
        assert_eq!(
            diff(&baseline, std::slice::from_ref(&b)).missing,
            vec![a.clone()]
        );
    }

    #[test]
    fn a_changed_gateway_in_the_same_slot_is_not_missing_and_is_adopted() {
        let old = route("eth0", "172.26.0.1", 100);
        let renewed = route("eth0", "172.26.0.9", 100);
        assert!(diff(std::slice::from_ref(&old), std::slice::from_ref(&renewed)).is_empty());
        assert_eq!(
            adopt_now(&[old], std::slice::from_ref(&renewed)),
            vec![renewed]
        );
    }

    #[test]
    fn missing_routes_stay_in_the_baseline_and_new_ones_join() {
        let a = route("eth0", "172.26.0.1", 100);
        let b = route("eth1", "172.26.0.33", 200);
        let c = route("eth2", "10.0.0.1", 300);
        let merged = adopt_now(&[a.clone(), b.clone()], &[b.clone(), c.clone()]);
        assert_eq!(merged, vec![a, b, c]);
    }

    fn devices_of(routes: &[DefaultRoute]) -> Vec<&str> {
        routes.iter().filter_map(|r| r.dev.as_deref()).collect()
    }

    fn planned(plan: &[(DefaultRoute, Placement)]) -> Vec<(&str, Placement)> {
        plan.iter()
            .map(|(r, p)| (r.dev.as_deref().unwrap_or(""), *p))
            .collect()
    }

    #[test]
    fn adopt_keeps_the_kernels_order_within_a_list_not_the_device_names() {
        let eth1 = route("eth1", "172.26.0.33", 0);
        let eth0 = route("eth0", "172.26.0.1", 0);
        let other = route("eth0", "172.26.0.1", 100);
        let current = [eth1.clone(), other.clone(), eth0.clone()];
        assert_eq!(
            devices_of(&adopt_now(&[], &current)),
            ["eth1", "eth0", "eth0"],
            "metric 0 list first, eth1 ahead of eth0 as the kernel has them"
        );
        // An old baseline sorted by device name takes the kernel's order on the next ADD.
        let old = [eth0.clone(), eth1.clone()];
        assert_eq!(adopt_now(&old, &[eth1.clone(), eth0.clone()]), [eth1, eth0]);
    }

    #[test]
    fn adopt_keeps_a_missing_route_where_it_was_in_its_list() {
        let a = route("eth0", "172.26.0.1", 0);
        let b = route("eth1", "172.26.0.33", 0);
        let c = route("eth2", "10.0.0.1", 0);
        let baseline = [a.clone(), b.clone(), c.clone()];
        assert_eq!(
            adopt_now(&baseline, &[b.clone(), c.clone()]),
            baseline,
            "lost leader"
        );
        assert_eq!(
            adopt_now(&baseline, &[a.clone(), c.clone()]),
            baseline,
            "lost middle"
        );
        assert_eq!(
            adopt_now(&baseline, std::slice::from_ref(&c)),
            baseline,
            "lost run"
        );
        // The present routes' order is the kernel's, even when it changed.
        assert_eq!(
            adopt_now(&baseline, &[c.clone(), a.clone()]),
            [c.clone(), a.clone(), b.clone()],
            "b stays behind a"
        );
    }

    #[test]
    fn a_lost_leader_goes_to_the_front_and_the_others_to_the_back() {
        let a = route("eth0", "172.26.0.1", 0);
        let b = route("eth1", "172.26.0.33", 0);
        let c = route("eth2", "10.0.0.1", 0);
        let baseline = [a.clone(), b.clone(), c.clone()];
        use Placement::{Back, Front};
        let plan = |current: &[DefaultRoute]| restore_plan(&baseline, diff(&baseline, current));
        assert_eq!(planned(&plan(&[b.clone(), c.clone()])), [("eth0", Front)]);
        assert_eq!(planned(&plan(&[a.clone(), c.clone()])), [("eth1", Back)]);
        assert_eq!(planned(&plan(&[a.clone(), b.clone()])), [("eth2", Back)]);
        // A run at the front goes back last-first; a route behind a present one is appended.
        assert_eq!(
            planned(&plan(std::slice::from_ref(&c))),
            [("eth1", Front), ("eth0", Front)]
        );
        assert_eq!(
            planned(&plan(std::slice::from_ref(&b))),
            [("eth2", Back), ("eth0", Front)]
        );
        assert_eq!(
            planned(&plan(&[])),
            [("eth2", Front), ("eth1", Front), ("eth0", Front)]
        );
    }

    #[test]
    fn only_routes_of_the_same_list_count_as_ahead() {
        let low = route("eth0", "172.26.0.1", 100);
        let high = route("eth1", "172.26.0.33", 200);
        let baseline = [low.clone(), high.clone()];
        let plan = restore_plan(&baseline, diff(&baseline, std::slice::from_ref(&low)));
        assert_eq!(planned(&plan), [("eth1", Placement::Front)]);
    }

    #[test]
    fn ipv6_routes_are_always_appended() {
        let mut a = route("eth0", "2001:db8::1", 1024);
        a.family = Family::Inet6;
        let mut b = route("eth1", "2001:db8:1::1", 1024);
        b.family = Family::Inet6;
        let baseline = [a, b.clone()];
        let plan = restore_plan(&baseline, diff(&baseline, std::slice::from_ref(&b)));
        assert_eq!(planned(&plan), [("eth0", Placement::Back)]);
    }

    #[test]
    fn a_multipath_route_that_lost_one_hop_yields_that_hop() {
        let mut multi = route("eth0", "fe80::1", 1024);
        multi.family = Family::Inet6;
        multi.gateway = None;
        multi.dev = None;
        multi.nexthops = vec![
            Nexthop {
                gateway: Some("fe80::1".parse().unwrap()),
                dev: "eth0".into(),
                weight: 1,
                onlink: false,
                link: None,
                attrs: Vec::new(),
            },
            Nexthop {
                gateway: Some("fe80::2".parse().unwrap()),
                dev: "eth1".into(),
                weight: 1,
                onlink: false,
                link: None,
                attrs: Vec::new(),
            },
        ];
        let mut survivor = multi.clone();
        survivor.nexthops.truncate(1);
        let found = diff(&[multi.clone()], &[survivor]);
        assert!(found.missing.is_empty());
        assert_eq!(found.missing_hops.len(), 1);
        assert_eq!(found.missing_hops[0].dev.as_deref(), Some("eth1"));
        assert_eq!(
            found.missing_hops[0].gateway,
            Some("fe80::2".parse().unwrap())
        );
    }

    #[test]
    fn message_round_trip_keeps_every_attribute() {
        let mut r = route("eth0", "172.26.0.1", 100);
        r.table = 1000;
        r.onlink = true;
        r.prefsrc = Some("172.26.0.3".parse().unwrap());
        r.metrics.insert("mtu".into(), 1400);
        r.metrics.insert("advmss".into(), 1360);
        r.link = Some(LinkId::index(7));
        r.gateway = None;
        // Kept as the kernel's bytes: a realm and an IPv4 route's IPv6 neighbour.
        r.attrs.push(RawAttr::of(&RouteAttribute::Realm(
            netlink_packet_route::route::RouteRealm {
                source: 0,
                destination: 5,
            },
        )));
        r.attrs.push(RawAttr::of(&RouteAttribute::Via(
            netlink_packet_route::route::RouteVia::Inet6("fe80::1".parse().unwrap()),
        )));
        let names = |i: u32| (i == 7).then(|| "eth0".to_string());
        let index = |n: &str| (n == "eth0").then_some(7);
        let msg = r.to_message(&index).unwrap();
        assert_eq!(msg.header.table, 0, "table 1000 goes in the attribute only");
        let back = DefaultRoute::from_message(&msg, &names).unwrap();
        assert_eq!(back, r);
        assert!(
            back.to_string().contains("realm 5 via inet6 fe80::1"),
            "{back}"
        );
        assert_eq!(back.next_hop_address(), Some("fe80::1".parse().unwrap()));
    }

    #[test]
    fn an_old_baseline_entry_without_identity_loads_and_keys_by_name() {
        let old = r#"{"family":"inet","table":254,"metric":0,"protocol":4,"scope":0,
            "type":1,"gateway":"172.26.0.1","dev":"eth0"}"#;
        let route: DefaultRoute = serde_json::from_str(old).unwrap();
        assert_eq!(route.link, None);
        assert_eq!(route.slots()[0].dev, Some(SlotDev::Name("eth0".into())));
    }

    #[test]
    fn a_route_through_a_nexthop_object_is_sent_as_the_object_alone() {
        let mut r = route("eth0", "172.26.0.1", 0);
        r.link = Some(LinkId::index(7));
        r.attrs.push(RawAttr::of(&RouteAttribute::NhId(12)));
        assert_eq!(r.nhid(), Some(12));
        assert_eq!(r.slots()[0].dev, Some(SlotDev::Nexthop(12)));
        let msg = r.to_message(&|_| Some(7)).unwrap();
        assert!(!msg
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Oif(_) | RouteAttribute::Gateway(_))));
        // A compat-mode dump shows the object's device and gateway too: read as the object.
        let mut dumped = msg.clone();
        dumped.attributes.push(RouteAttribute::Oif(7));
        let names = |_| Some("eth0".to_string());
        let read = DefaultRoute::from_message(&dumped, &names).unwrap();
        assert_eq!((read.dev.as_deref(), read.gateway), (None, None));
        let again = DefaultRoute::from_message(&read.to_message(&|_| None).unwrap(), &names);
        assert_eq!(again, Some(read), "the restore message reads back the same");
    }

    #[test]
    fn non_default_and_local_routes_are_ignored() {
        let names = |_| None;
        let mut msg = route("eth0", "10.0.0.1", 0)
            .to_message(&|_| Some(1))
            .unwrap();
        msg.header.destination_prefix_length = 24;
        assert!(DefaultRoute::from_message(&msg, &names).is_none());
        msg.header.destination_prefix_length = 0;
        msg.attributes
            .retain(|a| !matches!(a, RouteAttribute::Table(_)));
        msg.header.table = 255;
        assert!(DefaultRoute::from_message(&msg, &names).is_none());
    }

    #[test]
    fn display_reads_like_ip_route() {
        let r = route("eth0", "172.26.0.1", 100);
        assert_eq!(
            r.to_string(),
            "default via 172.26.0.1 dev eth0 proto static metric 100"
        );
    }
}
