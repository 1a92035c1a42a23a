//! The host's default routes as plain values: what the baseline records, how a route occupies a
//! "slot", which baseline routes are missing now, and the message that puts one back.
//!
//! A slot is (family, table, device, metric): the kernel's own notion of "the same route" is
//! (table, destination, tos, metric), so two defaults that differ only by device are both legal
//! and both must survive (incident 1). A multipath route occupies one slot per next hop.
//!
//! IPv4 keeps same-key routes in a list and uses the first, so the baseline keeps each list in
//! the kernel's order, and a route that led its list goes back to its front.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nexthop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub dev: String,
    pub weight: u16,
    #[serde(default, skip_serializing_if = "is_false")]
    pub onlink: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub family: Family,
    pub table: u32,
    pub dev: Option<String>,
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
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => route.table = *t,
                RouteAttribute::Priority(p) => route.metric = *p,
                RouteAttribute::Gateway(a) => route.gateway = ip_of(a),
                RouteAttribute::PrefSource(a) => route.prefsrc = ip_of(a),
                RouteAttribute::Oif(i) => {
                    route.dev = Some(name_of(*i).unwrap_or_else(|| format!("if{i}")))
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
                        })
                        .collect();
                }
                _ => {}
            }
        }
        if route.table == RT_TABLE_LOCAL {
            return None;
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
        if self.onlink {
            header.flags |= RouteFlags::Onlink;
        }
        let mut attributes = vec![RouteAttribute::Table(self.table)];
        if self.metric != 0 {
            attributes.push(RouteAttribute::Priority(self.metric));
        }
        if let Some(gw) = self.gateway {
            attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(dev) = &self.dev {
            attributes.push(RouteAttribute::Oif(resolve(dev)?));
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
        if !self.nexthops.is_empty() {
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
        let slot = |dev: Option<&str>| Slot {
            family: self.family,
            table: self.table,
            dev: dev.map(str::to_string),
            metric: self.metric,
        };
        if self.nexthops.is_empty() {
            vec![slot(self.dev.as_deref())]
        } else {
            self.nexthops.iter().map(|h| slot(Some(&h.dev))).collect()
        }
    }

    /// The same route sent through `to` wherever it used `from` (an uplink moved into a bridge).
    pub fn repointed(&self, from: &str, to: &str) -> DefaultRoute {
        let mut route = self.clone();
        if route.dev.as_deref() == Some(from) {
            route.dev = Some(to.to_string());
        }
        for hop in &mut route.nexthops {
            if hop.dev == from {
                hop.dev = to.to_string();
            }
        }
        route
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
        for hop in &self.nexthops {
            f.write_str(" nexthop")?;
            if let Some(gw) = hop.gateway {
                write!(f, " via {gw}")?;
            }
            write!(f, " dev {} weight {}", hop.dev, hop.weight)?;
            if hop.onlink {
                f.write_str(" onlink")?;
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
            if free
                .iter()
                .any(|s| s.dev.as_deref() == Some(hop.dev.as_str()))
            {
                out.missing_hops.push(DefaultRoute {
                    gateway: hop.gateway,
                    dev: Some(hop.dev.clone()),
                    onlink: hop.onlink,
                    nexthops: Vec::new(),
                    ..route.clone()
                });
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
/// (so an operator's or DHCP's change is adopted), and baseline routes whose slots are all empty
/// stay recorded, to be restored or reported. Within a same-key list the current routes keep the
/// kernel's order, and a missing route stays behind the route that was ahead of it (or at the
/// front, when none was).
pub fn adopt(baseline: &[DefaultRoute], current: &[DefaultRoute]) -> Vec<DefaultRoute> {
    let occupied: std::collections::HashSet<Slot> =
        current.iter().flat_map(DefaultRoute::slots).collect();
    let is_missing = |r: &DefaultRoute| r.slots().iter().all(|s| !occupied.contains(s));
    let mut merged: Vec<DefaultRoute> = current.to_vec();
    for (at, route) in baseline.iter().enumerate() {
        if !is_missing(route) {
            continue;
        }
        let key = route.list_key();
        let behind = baseline[..at]
            .iter()
            .rev()
            .filter(|ahead| ahead.list_key() == key)
            .find_map(|ahead| {
                if is_missing(ahead) {
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
        }
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
        assert_eq!(adopt(&[old], std::slice::from_ref(&renewed)), vec![renewed]);
    }

    #[test]
    fn missing_routes_stay_in_the_baseline_and_new_ones_join() {
        let a = route("eth0", "172.26.0.1", 100);
        let b = route("eth1", "172.26.0.33", 200);
        let c = route("eth2", "10.0.0.1", 300);
        let merged = adopt(&[a.clone(), b.clone()], &[b.clone(), c.clone()]);
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
            devices_of(&adopt(&[], &current)),
            ["eth1", "eth0", "eth0"],
            "metric 0 list first, eth1 ahead of eth0 as the kernel has them"
        );
        // An old baseline sorted by device name takes the kernel's order on the next ADD.
        let old = [eth0.clone(), eth1.clone()];
        assert_eq!(adopt(&old, &[eth1.clone(), eth0.clone()]), [eth1, eth0]);
    }

    #[test]
    fn adopt_keeps_a_missing_route_where_it_was_in_its_list() {
        let a = route("eth0", "172.26.0.1", 0);
        let b = route("eth1", "172.26.0.33", 0);
        let c = route("eth2", "10.0.0.1", 0);
        let baseline = [a.clone(), b.clone(), c.clone()];
        assert_eq!(
            adopt(&baseline, &[b.clone(), c.clone()]),
            baseline,
            "lost leader"
        );
        assert_eq!(
            adopt(&baseline, &[a.clone(), c.clone()]),
            baseline,
            "lost middle"
        );
        assert_eq!(
            adopt(&baseline, std::slice::from_ref(&c)),
            baseline,
            "lost run"
        );
        // The present routes' order is the kernel's, even when it changed.
        assert_eq!(
            adopt(&baseline, &[c.clone(), a.clone()]),
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
            },
            Nexthop {
                gateway: Some("fe80::2".parse().unwrap()),
                dev: "eth1".into(),
                weight: 1,
                onlink: false,
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
        let names = |i: u32| (i == 7).then(|| "eth0".to_string());
        let index = |n: &str| (n == "eth0").then_some(7);
        let msg = r.to_message(&index).unwrap();
        assert_eq!(msg.header.table, 0, "table 1000 goes in the attribute only");
        assert_eq!(DefaultRoute::from_message(&msg, &names), Some(r));
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
