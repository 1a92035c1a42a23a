//! Routes: filtered dumps (both families, any table, multipath), exclusive, appending or
//! prepending adds, deletes, and readers for the fields the host model keys routes by.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
    RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::error::{NlError, NlResult};
use super::{family_of, parse_payload, Netlink, RTM_NEWROUTE};

/// What header value the kernel reports for tables above 255 (their real id is in RTA_TABLE).
const RT_TABLE_COMPAT: u8 = 252;
const ROUTE_HEADER_LEN: usize = 12;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Which routes a dump returns. The family, table, output interface, protocol and type are
/// filtered by the kernel; `default_only` is applied while reading (the kernel cannot filter
/// on the destination).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// `None`: IPv4 and IPv6.
    pub family: Option<AddressFamily>,
    /// `None`: all tables (main, local, and every numbered table).
    pub table: Option<u32>,
    /// Routes leaving through this ifindex, including multipath routes with a nexthop on it.
    pub oif: Option<u32>,
    /// Only routes with a zero-length destination (`default`).
    pub default_only: bool,
    pub protocol: Option<RouteProtocol>,
    pub kind: Option<RouteType>,
}

impl RouteFilter {
    /// Default routes of one family in one table, the question hostguard asks most.
    pub fn defaults(family: AddressFamily, table: u32) -> Self {
        RouteFilter {
            family: Some(family),
            table: Some(table),
            default_only: true,
            ..RouteFilter::default()
        }
    }
}

/// How an add treats an existing route with the same key (destination, table, metric, tos).
/// There is deliberately no "replace": hostguard never overwrites a route it does not own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddMode {
    /// `NLM_F_CREATE | NLM_F_EXCL`: fail with `EEXIST` if the key exists.
    Exclusive,
    /// `NLM_F_CREATE | NLM_F_APPEND`: add beside an existing route with the same key. For IPv4
    /// the two routes coexist (the first one wins lookups); for IPv6 the kernel merges the new
    /// nexthop into the existing route, making it multipath.
    Append,
    /// `NLM_F_CREATE` alone: for IPv4, add ahead of every existing route with the same key, so
    /// the new one wins lookups (`fib_table_insert` inserts at the front of the same-key list
    /// unless told to append). Never overwrites: an exact duplicate still answers `EEXIST`.
    /// IPv6 has no such order: a same-metric route with a gateway joins the existing one as a
    /// multipath sibling, as with `Append`.
    Prepend,
}

impl Netlink {
    pub fn routes(&mut self, filter: &RouteFilter) -> NlResult<Vec<RouteMessage>> {
        let mut request = RouteMessage::default();
        request.header.address_family = filter.family.unwrap_or(AddressFamily::Unspec);
        // Under strict checking the header's dst_len, src_len, tos and scope must be zero;
        // protocol and type are filters. The table goes in RTA_TABLE because the header byte
        // cannot hold ids above 255 (and 0 there means "all").
        request.header.table = RouteHeader::RT_TABLE_UNSPEC;
        request.header.protocol = filter.protocol.unwrap_or(RouteProtocol::Unspec);
        request.header.kind = filter.kind.unwrap_or(RouteType::Unspec);
        if let Some(table) = filter.table {
            request.attributes.push(RouteAttribute::Table(table));
        }
        if let Some(oif) = filter.oif {
            request.attributes.push(RouteAttribute::Oif(oif));
        }
        self.dump(&RouteNetlinkMessage::GetRoute(request), |kind, payload| {
            decode_route(filter, kind, payload)
        })
        .map_err(|e| e.context(format!("dump routes{}", describe_filter(filter))))
    }

    pub fn add_route(&mut self, msg: RouteMessage, mode: AddMode) -> NlResult<()> {
        let flags = match mode {
            AddMode::Exclusive => NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            AddMode::Append => NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            AddMode::Prepend => NLM_F_ACK | NLM_F_CREATE,
        };
        let request = RouteNetlinkMessage::NewRoute(msg);
        let result = self.ack_request(&request, flags);
        result.map_err(|e| {
            let verb = match mode {
                AddMode::Exclusive => "add",
                AddMode::Append => "append",
                AddMode::Prepend => "prepend",
            };
            e.context(format!("{verb} route {}", self.describe_route(&request)))
        })
    }

    /// Deletes the route matching `msg`; `ESRCH` if there is none. Include the metric: without
    /// it the kernel deletes the first route with that destination, whatever its metric.
    pub fn del_route(&mut self, msg: RouteMessage) -> NlResult<()> {
        let request = RouteNetlinkMessage::DelRoute(msg);
        let result = self.ack_request(&request, NLM_F_ACK);
        result.map_err(|e| e.context(format!("delete route {}", self.describe_route(&request))))
    }

    /// "default via 10.0.0.1 dev eth0 table 254", in `ip route` words, for error messages.
    fn describe_route(&mut self, request: &RouteNetlinkMessage) -> String {
        let (RouteNetlinkMessage::NewRoute(msg) | RouteNetlinkMessage::DelRoute(msg)) = request
        else {
            return String::new();
        };
        let mut text = match msg.destination() {
            Some(_) if msg.is_default() => "default".to_owned(),
            Some(dst) => dst.to_string(),
            None => "(unknown destination)".to_owned(),
        };
        if let Some(gateway) = msg.gateway() {
            let _ = write!(text, " via {gateway}");
        }
        if let Some(oif) = msg.oif() {
            let _ = write!(text, " dev {}", self.link_label(oif));
        }
        for hop in multipath(msg) {
            text.push_str(" nexthop");
            if let Some(gateway) = hop.gateway {
                let _ = write!(text, " via {gateway}");
            }
            if let Some(ifindex) = hop.ifindex {
                let _ = write!(text, " dev {}", self.link_label(ifindex));
            }
        }
        let _ = write!(text, " table {}", msg.table());
        if let Some(metric) = msg.priority() {
            let _ = write!(text, " metric {metric}");
        }
        text
    }
}

fn describe_filter(filter: &RouteFilter) -> String {
    let mut text = String::new();
    if let Some(family) = filter.family {
        let _ = write!(text, " family {family:?}");
    }
    if filter.default_only {
        text.push_str(" default");
    }
    if let Some(table) = filter.table {
        let _ = write!(text, " table {table}");
    }
    if let Some(oif) = filter.oif {
        let _ = write!(text, " oif {oif}");
    }
    if let Some(protocol) = filter.protocol {
        let _ = write!(text, " proto {protocol:?}");
    }
    if let Some(kind) = filter.kind {
        let _ = write!(text, " type {kind:?}");
    }
    text
}

/// Decides from the fixed 12-byte rtmsg header whether a route can match before paying for
/// the attribute parse. On a BGP host with 100,000 routes and a `default_only` filter this
/// turns 100,000 parses into a handful.
pub(super) fn decode_route(
    filter: &RouteFilter,
    kind: u16,
    payload: &[u8],
) -> NlResult<Option<RouteMessage>> {
    if kind != RTM_NEWROUTE {
        return Ok(None);
    }
    let Some(header) = payload.get(..ROUTE_HEADER_LEN) else {
        return Err(NlError::malformed(format!(
            "route message of {} bytes is shorter than its header",
            payload.len()
        )));
    };
    let (family, dst_len, table, protocol, route_type) =
        (header[0], header[1], header[4], header[5], header[7]);
    let family_matches = match filter.family {
        Some(wanted) => family == u8::from(wanted),
        // An AF_UNSPEC dump also walks the multicast (RTNL_FAMILY_IPMR) and MPLS tables.
        None => family == AF_INET || family == AF_INET6,
    };
    if !family_matches
        || (filter.default_only && dst_len != 0)
        || filter.protocol.is_some_and(|p| u8::from(p) != protocol)
        || filter.kind.is_some_and(|k| u8::from(k) != route_type)
    {
        return Ok(None);
    }
    if let Some(wanted) = filter.table {
        let header_can_match = if wanted < u32::from(RT_TABLE_COMPAT) {
            u32::from(table) == wanted
        } else {
            // 252 is both a real table and the stand-in for every table above 255.
            table == RT_TABLE_COMPAT || u32::from(table) == wanted
        };
        if !header_can_match {
            return Ok(None);
        }
    }
    let route = parse_payload::<RouteMessage>(payload, "route")?;
    // The kernel filtered already; these checks keep results right where strict checking is
    // missing and settle the ambiguous 252 header value.
    if filter.table.is_some_and(|t| t != route.table())
        || filter.oif.is_some_and(|oif| !route.uses_ifindex(oif))
    {
        return Ok(None);
    }
    Ok(Some(route))
}

/// One way out of a route: a single-path route has one, a multipath route one per nexthop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// ECMP weight (the kernel's `rtnh_hops + 1`); 1 for single-path routes.
    pub weight: u16,
}

/// A unicast route to `destination` in `table`. The scope is `link` when there is no gateway
/// (an on-link route, as `ip route add ... dev X` makes), `universe` otherwise; the protocol
/// is `static`. Set `header.protocol` or push `RouteAttribute::Priority` for anything else.
pub fn unicast_route(
    destination: IpNetwork,
    gateway: Option<IpAddr>,
    oif: Option<u32>,
    table: u32,
) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family_of(destination.ip());
    msg.header.destination_prefix_length = destination.prefix();
    msg.header.protocol = RouteProtocol::Static;
    msg.header.kind = RouteType::Unicast;
    msg.header.scope = if gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if destination.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_address(destination.ip())));
    }
    if let Some(gateway) = gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(gateway)));
    }
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg.set_table(table);
    msg
}

pub(crate) fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn gateway_in(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(address) => ip_of(address),
        // RTA_VIA: a gateway of the other family (an IPv4 route via an IPv6 nexthop).
        RouteAttribute::Via(RouteVia::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Via(RouteVia::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

fn multipath(msg: &RouteMessage) -> Vec<NextHop> {
    msg.attributes
        .iter()
        .filter_map(|a| match a {
            RouteAttribute::MultiPath(hops) => Some(hops),
            _ => None,
        })
        .flatten()
        .map(|hop| NextHop {
            ifindex: (hop.interface_index != 0).then_some(hop.interface_index),
            gateway: gateway_in(&hop.attributes),
            weight: u16::from(hop.hops) + 1,
        })
        .collect()
}

/// Readers (and the one setter that has a kernel rule behind it) for route messages.
pub trait RouteExt {
    /// RTA_TABLE when present (it holds the full 32-bit id), else the header byte.
    fn table(&self) -> u32;
    /// Stores `table` the way the kernel and iproute2 do: RTA_TABLE always, the header byte
    /// only when the id fits (0, "unspecified", otherwise).
    fn set_table(&mut self, table: u32);
    /// RTA_OIF.
    fn oif(&self) -> Option<u32>;
    /// RTA_GATEWAY (or RTA_VIA) of a single-path route.
    fn gateway(&self) -> Option<IpAddr>;
    /// The destination with its prefix length; `0.0.0.0/0` or `::/0` for default routes.
    fn destination(&self) -> Option<IpNetwork>;
    /// RTA_PRIORITY, the metric. Absent means 0 to the kernel.
    fn priority(&self) -> Option<u32>;
    /// RTA_PREFSRC.
    fn pref_source(&self) -> Option<IpAddr>;
    /// A zero-length destination.
    fn is_default(&self) -> bool;
    /// The ways out: one entry for a single-path route, one per RTA_MULTIPATH nexthop.
    fn nexthops(&self) -> Vec<NextHop>;
    /// Every ifindex the route leaves through (RTA_OIF and each multipath nexthop's).
    fn nexthop_ifindexes(&self) -> Vec<u32>;
    fn uses_ifindex(&self, ifindex: u32) -> bool;
}

impl RouteExt for RouteMessage {
    fn table(&self) -> u32 {
        self.attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(table) => Some(*table),
                _ => None,
            })
            .unwrap_or(u32::from(self.header.table))
    }

    fn set_table(&mut self, table: u32) {
        self.attributes
            .retain(|a| !matches!(a, RouteAttribute::Table(_)));
        self.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        self.attributes.push(RouteAttribute::Table(table));
    }

    fn oif(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(index) => Some(*index),
            _ => None,
        })
    }

    fn gateway(&self) -> Option<IpAddr> {
        gateway_in(&self.attributes)
    }

    fn destination(&self) -> Option<IpNetwork> {
        let len = self.header.destination_prefix_length;
        let ip = self
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Destination(address) => ip_of(address),
                _ => None,
            })
            .or(match self.header.address_family {
                AddressFamily::Inet => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                AddressFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                _ => None,
            })?;
        IpNetwork::new(ip, len).ok()
    }

    fn priority(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            RouteAttribute::Priority(metric) => Some(*metric),
            _ => None,
        })
    }

    fn pref_source(&self) -> Option<IpAddr> {
        self.attributes.iter().find_map(|a| match a {
            RouteAttribute::PrefSource(address) => ip_of(address),
            _ => None,
        })
    }

    fn is_default(&self) -> bool {
        self.header.destination_prefix_length == 0
    }

    fn nexthops(&self) -> Vec<NextHop> {
        let hops = multipath(self);
        if !hops.is_empty() {
            return hops;
        }
        if self.oif().is_none() && self.gateway().is_none() {
            return Vec::new();
        }
        vec![NextHop {
            ifindex: self.oif(),
            gateway: self.gateway(),
            weight: 1,
        }]
    }

    fn nexthop_ifindexes(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self.oif().into_iter().collect();
        for hop in multipath(self) {
            if let Some(ifindex) = hop.ifindex {
                if !out.contains(&ifindex) {
                    out.push(ifindex);
                }
            }
        }
        out
    }

    fn uses_ifindex(&self, ifindex: u32) -> bool {
        self.nexthop_ifindexes().contains(&ifindex)
    }
}
