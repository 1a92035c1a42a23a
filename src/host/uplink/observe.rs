//! Observe: one look at the host before anything changes. What moves (addresses, routes), what
//! the kernel will redo by itself (and must be seen again afterwards), and every default route
//! of the host, for the post-check.

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::model::{fingerprint, repoint, Addr, LinkState, SavedRoute, NOPREFIXROUTE};
use crate::host::links::LinkTable;
use crate::host::route_guard;
use crate::host::routes::{DefaultRoute, Family, RT_TABLE_LOCAL};
use crate::netlink::{
    AddressExt, Netlink, RouteAttribute, RouteExt, RouteFilter, RouteMessage, RouteProtocol,
};

/// The host as it was when the move was planned. Stored in the journal: recovery and rollback
/// work from it, never from a fresh look at a half-changed host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// The link the addresses and routes leave (the uplink on attach, the bridge on release).
    pub source: LinkState,
    /// The link they go to; `None` when it is the bridge and it does not exist yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<LinkState>,
    /// Addresses to move, in the kernel's order: a subnet's primary before its secondaries.
    pub addresses: Vec<Addr>,
    /// Which of `addresses` the target already has (an existing bridge): not copied, and
    /// therefore never deleted from the target on rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses_on_target: Vec<usize>,
    /// Routes to move, through the source, as the kernel reported them.
    pub routes: Vec<SavedRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes_on_target: Vec<usize>,
    /// Routes the kernel made for the moved addresses (prefix, local, broadcast). The kernel
    /// makes them again on the target when the addresses arrive; the post-check demands it.
    pub kernel_routes: Vec<SavedRoute>,
    /// Every default route of the host, both families, every table but `local`.
    pub defaults: Vec<DefaultRoute>,
    /// The default routes among `routes`, in the route guard's terms: these are the ones that
    /// must reappear re-pointed, and whose baseline entries follow the move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved_defaults: Vec<DefaultRoute>,
    /// CLOCK_BOOTTIME seconds when observed: finite lifetimes keep running from here.
    pub taken_at: u64,
    /// What stays behind and why, for the log (kernel link-locals, privacy addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_alone: Vec<String>,
    /// Non-kernel addresses and routes on the source that are not being moved (release only:
    /// things on the bridge that hostguard did not put there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<String>,
}

/// What a release moves back: what the attachment record says was moved.
pub struct Selection<'a> {
    pub addresses: &'a [Addr],
    pub routes: &'a [SavedRoute],
    /// The ifindex those routes used (the uplink's when it was attached).
    pub routes_index: u32,
    pub routes_to: u32,
}

/// Looks at the host. `source` must exist; `target` may not (a bridge still to be created).
/// With `selection`, only the selected addresses and routes of the source move (release).
pub fn observe(
    nl: &mut Netlink,
    links: &LinkTable,
    source: &str,
    target: &str,
    selection: Option<&Selection>,
) -> Result<Observed> {
    let source_link = links
        .get(source)
        .and_then(LinkState::from_link)
        .with_context(|| format!("link {source} does not exist"))?;
    let target_link = links.get(target).and_then(LinkState::from_link);
    let names = |i: u32| links.name_of(i);

    let mut left_alone = Vec::new();
    let mut foreign = Vec::new();
    let mut addresses = Vec::new();
    let all = nl
        .addresses(None, Some(source_link.index))
        .with_context(|| format!("list addresses of {source}"))?;
    for msg in &all {
        let Some(addr) = Addr::from_message(msg) else {
            continue;
        };
        if addr.is_kernel_link_local(source_link.mac.as_deref()) {
            left_alone.push(format!(
                "{} stays on {source}: the kernel made it, and makes {target}'s own",
                addr.describe()
            ));
            continue;
        }
        if addr.is_temporary() {
            left_alone.push(format!(
                "{} stays on {source}: a privacy address; the kernel makes new ones on {target}",
                addr.describe()
            ));
            continue;
        }
        if let Some(sel) = selection {
            if !sel.addresses.iter().any(|a| a.same_address(&addr)) {
                foreign.push(format!("address {}", addr.describe()));
                continue;
            }
        }
        addresses.push(addr);
    }

    let through_source = nl
        .routes(&RouteFilter {
            oif: Some(source_link.index),
            ..RouteFilter::default()
        })
        .with_context(|| format!("list routes through {source}"))?;
    let mut routes = Vec::new();
    let mut kernel_routes = Vec::new();
    let selected: Option<HashSet<Vec<u8>>> = match selection {
        None => None,
        Some(sel) => Some(
            sel.routes
                .iter()
                .map(|r| {
                    Ok(fingerprint(&repoint(
                        &r.route()?,
                        sel.routes_index,
                        sel.routes_to,
                    )))
                })
                .collect::<Result<_>>()?,
        ),
    };
    for msg in &through_source {
        if msg
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::NhId(_)))
        {
            bail!(
                "route {} uses a nexthop object; hostguard cannot move nexthop objects, so it \
                 leaves {source} alone (move the nexthop to the bridge by hand, or use plain routes)",
                SavedRoute::new(msg, &names).text
            );
        }
        if is_kernel_route(msg) {
            if tied_to(msg, &addresses) {
                kernel_routes.push(SavedRoute::new(msg, &names));
            }
            continue;
        }
        if let Some(selected) = &selected {
            if !selected.contains(&fingerprint(msg)) {
                foreign.push(format!("route {}", SavedRoute::new(msg, &names).text));
                continue;
            }
        }
        routes.push(SavedRoute::new(msg, &names));
    }

    let mut addresses_on_target = Vec::new();
    let mut routes_on_target = Vec::new();
    if let Some(target_link) = &target_link {
        let present: Vec<Addr> = nl
            .addresses(None, Some(target_link.index))
            .with_context(|| format!("list addresses of {target}"))?
            .iter()
            .filter_map(Addr::from_message)
            .collect();
        for (i, addr) in addresses.iter().enumerate() {
            if present.iter().any(|p| p.same_address(addr)) {
                addresses_on_target.push(i);
            }
        }
        let present: HashSet<Vec<u8>> = nl
            .routes(&RouteFilter {
                oif: Some(target_link.index),
                ..RouteFilter::default()
            })
            .with_context(|| format!("list routes through {target}"))?
            .iter()
            .map(fingerprint)
            .collect();
        for (i, route) in routes.iter().enumerate() {
            let moved = repoint(&route.route()?, source_link.index, target_link.index);
            if present.contains(&fingerprint(&moved)) {
                routes_on_target.push(i);
            }
        }
    }

    // By name, as the rest of the journal: the move compares pictures of one instant, in
    // which a name is one device, and re-points routes from one name to another.
    let defaults: Vec<DefaultRoute> = route_guard::default_routes(nl, links)?
        .into_iter()
        .map(DefaultRoute::without_identity)
        .collect();
    let mut moved_defaults = Vec::new();
    for saved in &routes {
        if let Some(route) = DefaultRoute::from_message(&saved.route()?, &names) {
            moved_defaults.push(route.without_identity());
        }
    }
    Ok(Observed {
        source: source_link,
        target: target_link,
        addresses,
        addresses_on_target,
        routes,
        routes_on_target,
        kernel_routes,
        defaults,
        moved_defaults,
        taken_at: boottime_secs(),
        left_alone,
        foreign,
    })
}

/// Routes the kernel owns: made for an address (prefix, local, broadcast, anycast, multicast)
/// and removed with it. Moving them by hand would collide with the kernel's own copies.
pub fn is_kernel_route(msg: &RouteMessage) -> bool {
    msg.header.protocol == RouteProtocol::Kernel
}

/// Whether a kernel route exists because of one of `moved`: its local route (destination is
/// the address), its prefix route (destination is the address's subnet), or a route that names
/// it as preferred source (IPv4 prefix and broadcast routes).
pub fn tied_to(msg: &RouteMessage, moved: &[Addr]) -> bool {
    let Some(dst) = msg.destination() else {
        return false;
    };
    let prefsrc = msg.pref_source();
    moved.iter().any(|addr| {
        if prefsrc == Some(addr.local) {
            return true;
        }
        let host_len = match addr.family {
            Family::Inet => 32,
            Family::Inet6 => 128,
        };
        if msg.table() == RT_TABLE_LOCAL {
            return dst.prefix() == host_len && dst.ip() == addr.local;
        }
        let noprefixroute = addr.flags & NOPREFIXROUTE != 0;
        !noprefixroute
            && addr.prefix_len < host_len
            && dst.prefix() == addr.prefix_len
            && IpNetwork::new(addr.local, addr.prefix_len)
                .map(|net| net.network() == dst.ip())
                .unwrap_or(false)
    })
}

/// Seconds on CLOCK_BOOTTIME, which keeps counting through suspend like address lifetimes do.
pub fn boottime_secs() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| u64::try_from(t.tv_sec()).unwrap_or(0))
        .unwrap_or(0)
}

/// Seconds since `taken_at`, for lifetimes.
pub fn elapsed_since(taken_at: u64) -> u32 {
    u32::try_from(boottime_secs().saturating_sub(taken_at)).unwrap_or(u32::MAX)
}

/// The addresses of link `index` as plain data.
pub fn addresses_of(nl: &mut Netlink, index: u32) -> Result<Vec<Addr>> {
    Ok(nl
        .addresses(None, Some(index))
        .context("list addresses")?
        .iter()
        .filter(|m| m.ip().is_some())
        .filter_map(Addr::from_message)
        .collect())
}
