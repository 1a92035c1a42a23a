//! The route guard: observe the host's default routes, find the baseline routes that are gone,
//! and put them back exactly, through the same device, gateway and attributes, without ever
//! replacing or deleting a route hostguard did not create.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use anyhow::{Context, Result};
use nix::libc;

use crate::host::routes::{self, DefaultRoute, Placement, Slot};
use crate::netlink::{
    AddMode, LinkExt, LinkMessage, Netlink, NlError, RouteAttribute, RouteFilter, RouteMessage,
};

/// `RTPROT_RA` from linux/rtnetlink.h (not exported by the libc crate).
const RTPROT_RA: u8 = 9;
/// `RTPROT_DHCP` from linux/rtnetlink.h.
const RTPROT_DHCP: u8 = 16;

/// Whether an address-configuration daemon (a DHCP client, router advertisements) owns `route`:
/// it deletes and re-adds such a route on its own schedule (a lease renewal), so the route may
/// go back only after its slot stayed empty for a grace period.
pub fn owned_by_address_daemon(route: &DefaultRoute) -> bool {
    matches!(route.protocol, RTPROT_DHCP | RTPROT_RA)
}

/// One link dump, looked up by name or index, taken once per invocation.
pub struct LinkTable {
    links: Vec<LinkMessage>,
    by_name: HashMap<String, usize>,
    by_index: HashMap<u32, usize>,
}

impl LinkTable {
    pub fn load(nl: &mut Netlink) -> Result<LinkTable> {
        Ok(LinkTable::from_links(nl.links().context("list links")?))
    }

    pub fn from_links(links: Vec<LinkMessage>) -> LinkTable {
        let mut by_name = HashMap::new();
        let mut by_index = HashMap::new();
        for (i, link) in links.iter().enumerate() {
            by_index.insert(link.header.index, i);
            if let Some(name) = link.name() {
                by_name.insert(name.to_string(), i);
            }
        }
        LinkTable {
            links,
            by_name,
            by_index,
        }
    }

    pub fn links(&self) -> &[LinkMessage] {
        &self.links
    }

    pub fn get(&self, name: &str) -> Option<&LinkMessage> {
        self.by_name.get(name).map(|&i| &self.links[i])
    }

    pub fn name_of(&self, index: u32) -> Option<String> {
        self.by_index
            .get(&index)
            .and_then(|&i| self.links[i].name())
            .map(str::to_string)
    }

    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.get(name).map(|l| l.header.index)
    }
}

/// Every default route of the host: both families, every table but `local`, one dump.
pub fn default_routes(nl: &mut Netlink, links: &LinkTable) -> Result<Vec<DefaultRoute>> {
    let messages = nl
        .routes(&default_routes_filter())
        .context("list default routes")?;
    let name_of = |i: u32| links.name_of(i);
    Ok(messages
        .iter()
        .filter_map(|m| DefaultRoute::from_message(m, &name_of))
        .collect())
}

/// As [`default_routes`], with each device name asked of the kernel by ifindex instead of
/// taken from a link dump. The default routes name one or two devices, while a node's link
/// dump grows with its pods (a veth each) at about 13 us of kernel time per link: 5.3 ms at
/// 400 links, against a few microseconds per lookup.
pub fn default_routes_by_lookup(nl: &mut Netlink) -> Result<Vec<DefaultRoute>> {
    let messages = nl
        .routes(&default_routes_filter())
        .context("list default routes")?;
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    for index in messages.iter().flat_map(device_indexes) {
        if let Entry::Vacant(slot) = names.entry(index) {
            let link = nl.link_by_index(index).with_context(|| {
                format!("look up the device of a default route (ifindex {index})")
            })?;
            slot.insert(link.and_then(|l| l.name().map(str::to_string)));
        }
    }
    let name_of = |i: u32| names.get(&i).cloned().flatten();
    Ok(messages
        .iter()
        .filter_map(|m| DefaultRoute::from_message(m, &name_of))
        .collect())
}

fn default_routes_filter() -> RouteFilter {
    RouteFilter {
        default_only: true,
        ..RouteFilter::default()
    }
}

/// The ifindexes a route leaves through: its RTA_OIF and each multipath next hop's.
fn device_indexes(msg: &RouteMessage) -> Vec<u32> {
    let mut out = Vec::new();
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Oif(index) => out.push(*index),
            RouteAttribute::MultiPath(hops) => {
                out.extend(hops.iter().map(|hop| hop.interface_index));
            }
            _ => {}
        }
    }
    out
}

/// Why a missing route was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrestored {
    pub route: DefaultRoute,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct GuardOutcome {
    pub restored: Vec<DefaultRoute>,
    pub unrestored: Vec<Unrestored>,
    /// The host's default routes after the guard ran.
    pub current: Vec<DefaultRoute>,
}

/// Decides whether a link may be touched; `Some(evidence)` refuses it (team, NetworkManager).
pub type RefusalCheck<'a> = &'a dyn Fn(&LinkTable, &str) -> Option<String>;

/// Compares the host with `baseline` and, when `restore` is set, re-adds each missing route
/// whose devices exist, are up, and are not refused. Restores never replace: a same-key route on
/// another device (incident 1, case A) stays. An IPv4 route that led its same-key list, with
/// every route ahead of it gone too, goes back to the front, so the host's traffic returns to
/// it; the rest are appended (`NLM_F_APPEND`), which for IPv6 merges a hop back into its
/// multipath route.
pub fn guard(
    nl: &mut Netlink,
    baseline: &[DefaultRoute],
    restore: bool,
    refused: RefusalCheck,
) -> Result<GuardOutcome> {
    let current = default_routes_by_lookup(nl)?;
    let diff = routes::diff(baseline, &current);
    let mut outcome = GuardOutcome::default();
    if diff.is_empty() {
        outcome.current = current;
        return Ok(outcome);
    }
    // Only now the whole link table: whether a route may go back depends on its devices being
    // up and on masters and lower devices (refusal), and this is the rare path.
    let links = LinkTable::load(nl)?;
    for (route, placement) in routes::restore_plan(baseline, diff) {
        match why_not_restorable(&route, &links, restore, refused) {
            Some(reason) => outcome.unrestored.push(Unrestored { route, reason }),
            None => match add_back(nl, &route, placement, &links) {
                Ok(()) => outcome.restored.push(route),
                Err(reason) => outcome.unrestored.push(Unrestored { route, reason }),
            },
        }
    }
    let links_after = LinkTable::load(nl)?;
    outcome.current = default_routes(nl, &links_after)?;
    // Trust the kernel's view over our own bookkeeping: a restore that "succeeded" but left its
    // slot empty is reported, not claimed.
    let occupied: std::collections::HashSet<Slot> = outcome
        .current
        .iter()
        .flat_map(DefaultRoute::slots)
        .collect();
    let (kept, lost): (Vec<_>, Vec<_>) = outcome
        .restored
        .drain(..)
        .partition(|r| r.slots().iter().all(|s| occupied.contains(s)));
    outcome.restored = kept;
    outcome
        .unrestored
        .extend(lost.into_iter().map(|route| Unrestored {
            route,
            reason: "re-added, but the kernel does not show it afterwards".into(),
        }));
    Ok(outcome)
}

/// The baseline routes missing now that the guard could not put back, with why: what `guard`
/// would leave unrestored, decided by the same rules, without changing anything. STATUS asks this.
pub fn unrestorable(
    nl: &mut Netlink,
    baseline: &[DefaultRoute],
    restore: bool,
    refused: RefusalCheck,
) -> Result<Vec<Unrestored>> {
    let current = default_routes_by_lookup(nl)?;
    let diff = routes::diff(baseline, &current);
    if diff.is_empty() {
        return Ok(Vec::new());
    }
    let links = LinkTable::load(nl)?;
    Ok(routes::restore_plan(baseline, diff)
        .into_iter()
        .filter_map(|(route, _)| {
            why_not_restorable(&route, &links, restore, refused)
                .map(|reason| Unrestored { route, reason })
        })
        .collect())
}

fn why_not_restorable(
    route: &DefaultRoute,
    links: &LinkTable,
    restore: bool,
    refused: RefusalCheck,
) -> Option<String> {
    // Router advertisements own these: the kernel removes them when the router goes quiet, and
    // putting one back would keep a dead router in use.
    if route.protocol == RTPROT_RA {
        return Some("it was learned from router advertisements; the kernel manages it".into());
    }
    for dev in route.devices() {
        let Some(link) = links.get(dev) else {
            return Some(format!("device {dev} is gone"));
        };
        if !link.is_up() {
            return Some(format!("device {dev} is down"));
        }
        if let Some(evidence) = refused(links, dev) {
            return Some(format!("hostguard does not touch {dev}: {evidence}"));
        }
    }
    if !restore {
        return Some("routes.restore is false".into());
    }
    None
}

fn add_back(
    nl: &mut Netlink,
    route: &DefaultRoute,
    placement: Placement,
    links: &LinkTable,
) -> Result<(), String> {
    let message = route
        .to_message(&|name| links.index_of(name))
        .map_err(|err| format!("{err:#}"))?;
    let mode = match placement {
        Placement::Back => AddMode::Append,
        // Prepend still answers EEXIST for an exact duplicate: it never overwrites.
        Placement::Front => AddMode::Prepend,
    };
    match nl.add_route(message, mode) {
        Ok(()) => Ok(()),
        Err(err) => Err(explain_add_failure(route, &err)),
    }
}

fn explain_add_failure(route: &DefaultRoute, err: &NlError) -> String {
    match err.errno() {
        Some(libc::ENETUNREACH) => match route.gateway {
            Some(gw) => format!("gateway {gw} is no longer on-link"),
            None => "a gateway is no longer on-link".into(),
        },
        Some(libc::EEXIST) => "an identical route already exists".into(),
        _ => err.to_string(),
    }
}

/// Slots of `routes`, for callers that compare before and after a change.
pub fn slots_of(routes: &[DefaultRoute]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = routes.iter().flat_map(DefaultRoute::slots).collect();
    slots.sort();
    slots
}
