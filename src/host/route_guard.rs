//! The route guard: observe the host's default routes, find the baseline routes that are gone,
//! and put them back exactly, through the same device (or its successor, see
//! `route_identity`), gateway and attributes, without ever replacing or deleting a route
//! hostguard did not create.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use anyhow::{Context, Result};
use nix::libc;

use crate::host::links::LinkTable;
use crate::host::refusal::RefusalCheck;
use crate::host::route_identity::{self, Devices, LinkSource, Resolution};
use crate::host::routes::{self, DefaultRoute, Placement, Slot};
use crate::netlink::{
    AddMode, LinkExt, LinkMessage, Netlink, NlError, RouteAttribute, RouteFilter, RouteMessage,
};

/// `RTPROT_RA` from linux/rtnetlink.h (not exported by the libc crate).
const RTPROT_RA: u8 = 9;

/// Every default route of the host: both families, every table but `local`, one dump, each
/// device identified (ifindex, MAC, kind).
pub fn default_routes(nl: &mut Netlink, links: &LinkTable) -> Result<Vec<DefaultRoute>> {
    let messages = nl
        .routes(&default_routes_filter())
        .context("list default routes")?;
    Ok(read_routes(&messages, &|i| links.by_index(i)))
}

/// As [`default_routes`], with each device asked of the kernel by ifindex instead of taken
/// from a link dump. The default routes name one or two devices, while a node's link dump grows
/// with its pods (a veth each) at about 13 us of kernel time per link: 5.3 ms at 400 links,
/// against a few microseconds per lookup.
pub fn default_routes_by_lookup(nl: &mut Netlink) -> Result<Vec<DefaultRoute>> {
    default_routes_through(&mut Devices::new(nl))
}

/// As [`default_routes_by_lookup`], asking `devices`, whose answers the resolution of the
/// baseline's devices that follows on every ADD and CHECK then reuses instead of asking again.
fn default_routes_through(devices: &mut Devices) -> Result<Vec<DefaultRoute>> {
    let messages = devices
        .netlink()
        .routes(&default_routes_filter())
        .context("list default routes")?;
    let mut found: HashMap<u32, Option<LinkMessage>> = HashMap::new();
    for index in messages.iter().flat_map(device_indexes) {
        if let Entry::Vacant(slot) = found.entry(index) {
            let link = devices.by_index(index).with_context(|| {
                format!("look up the device of a default route (ifindex {index})")
            })?;
            slot.insert(link);
        }
    }
    Ok(read_routes(&messages, &|i| {
        found.get(&i).and_then(Option::as_ref)
    }))
}

/// The default routes of `messages`, each device named and identified through `link_of`.
fn read_routes<'a>(
    messages: &[RouteMessage],
    link_of: &dyn Fn(u32) -> Option<&'a LinkMessage>,
) -> Vec<DefaultRoute> {
    let name_of = |i: u32| link_of(i).and_then(|l| l.name().map(str::to_string));
    let describe = |i: u32| link_of(i).map(route_identity::link_id);
    messages
        .iter()
        .filter_map(|m| DefaultRoute::from_message(m, &name_of))
        .map(|mut r| {
            r.describe_links(&describe);
            r
        })
        .collect()
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
    /// Re-added, and the kernel now holds exactly these.
    pub restored: Vec<DefaultRoute>,
    pub unrestored: Vec<Unrestored>,
    /// Recorded devices read as their successor ("eth1 -> br0"), for the log.
    pub successions: Vec<String>,
    /// The host's default routes after the guard ran.
    pub current: Vec<DefaultRoute>,
    /// The baseline to keep: the current routes, plus the recorded ones still missing in whole
    /// or in part, each device under its current name and identity.
    pub baseline: Vec<DefaultRoute>,
}

/// `RTPROT_DHCP` from linux/rtnetlink.h.
const RTPROT_DHCP: u8 = 16;

/// How the route guard may act; one value, so the ADD path and the guard daemon call it alike.
pub struct GuardOptions<'a> {
    /// `routes.restore`: re-add missing routes at all.
    pub restore: bool,
    /// `routes.restoreOnManaged`: re-adding a recorded route through a team or
    /// NetworkManager-managed device is allowed (it changes no link).
    pub restore_on_managed: bool,
    /// May this route owned by an address-configuration daemon (proto dhcp, ra) be restored
    /// now? Only a caller that saw its slot stay empty for the whole grace period can say yes;
    /// the ADD path answers no for every route (it reports them instead). The route is asked
    /// about as it would be restored (on today's device names, a port's on its successor), so
    /// a caller that times slots should key them by [`DefaultRoute::slots`] of the routes
    /// [`Assessment::verdicts`] and [`GuardOutcome::unrestored`] name.
    pub grace_elapsed: &'a dyn Fn(&DefaultRoute) -> bool,
    /// Is this route's restore held back now, whoever owns it? The guard daemon holds a route
    /// that something keeps deleting right after each restore (its fight back-off); ADD, CHECK
    /// and STATUS hold nothing. Asked about every route first, unlike
    /// [`GuardOptions::grace_elapsed`].
    pub held: &'a dyn Fn(&DefaultRoute) -> bool,
    pub refused: RefusalCheck<'a>,
}

/// Whether an address-configuration daemon owns the route: it deletes and re-adds it on a
/// renewal, so an empty slot may be the middle of a renewal rather than a loss.
pub fn daemon_owned(route: &DefaultRoute) -> bool {
    route.protocol == RTPROT_DHCP || route.protocol == RTPROT_RA
}

/// The baseline held against the host, without changing either.
pub struct Assessment {
    pub resolutions: Vec<Resolution>,
    pub current: Vec<DefaultRoute>,
}

impl Assessment {
    pub fn take(nl: &mut Netlink, baseline: &[DefaultRoute]) -> Result<Assessment> {
        let mut devices = Devices::new(nl);
        let current = default_routes_through(&mut devices)?;
        let resolutions = baseline
            .iter()
            .map(|r| route_identity::resolve(r, &mut devices))
            .collect::<Result<Vec<_>>>()?;
        Ok(Assessment {
            resolutions,
            current,
        })
    }

    /// The routes to look for, in baseline order.
    fn effective(&self) -> Vec<DefaultRoute> {
        self.resolutions
            .iter()
            .filter_map(|r| r.effective.clone())
            .collect()
    }

    /// Per baseline route: whether it is fully in place now.
    pub fn present(&self) -> Vec<bool> {
        let effective: Vec<Option<DefaultRoute>> = self
            .resolutions
            .iter()
            .map(|r| r.effective.clone())
            .collect();
        let placed: Vec<DefaultRoute> = effective.iter().flatten().cloned().collect();
        let mut full = routes::fully_present(&placed, &self.current).into_iter();
        self.resolutions
            .iter()
            .zip(effective)
            .map(|(r, e)| {
                let ok = e.is_some() && full.next().unwrap_or(false);
                ok && r.problems.is_empty()
            })
            .collect()
    }

    /// Each missing route or next hop with why `guard` under `opts` would leave it missing
    /// (`None`: it would put it back), by the guard's own decision (`why_not_restorable`) and
    /// without changing anything. A dry run cannot foresee the kernel refusing the add itself
    /// (a gateway no longer on-link).
    pub fn verdicts(
        &self,
        nl: &mut Netlink,
        opts: &GuardOptions,
    ) -> Result<Vec<(DefaultRoute, Option<String>)>> {
        let problems = self
            .resolutions
            .iter()
            .flat_map(|r| &r.problems)
            .map(|(route, reason)| (route.clone(), Some(reason.clone())));
        let effective = self.effective();
        let diff = routes::diff(&effective, &self.current);
        if diff.is_empty() {
            return Ok(problems.collect());
        }
        let links = LinkTable::load(nl)?;
        let mut out: Vec<(DefaultRoute, Option<String>)> = Vec::new();
        for (route, _) in routes::restore_plan(&effective, diff) {
            // As in `guard`: two baseline entries that mean one route today are one verdict.
            if out.iter().any(|(judged, _)| same_route(judged, &route)) {
                continue;
            }
            let why_not = why_not_restorable(&route, &links, opts);
            out.push((route, why_not));
        }
        out.extend(problems);
        Ok(out)
    }

    fn adopted(&self) -> Vec<DefaultRoute> {
        let recorded: Vec<DefaultRoute> = self
            .resolutions
            .iter()
            .map(|r| r.recorded.clone())
            .collect();
        let present = self.present();
        routes::adopt(&recorded, &|at| !present[at], &self.current)
    }
}

/// Compares the host with `baseline` and, when `opts.restore` is set, re-adds each missing route
/// whose devices are up and not refused, on the devices the baseline's devices are today
/// (`route_identity`). Restores never replace: a same-key route on another device (incident 1,
/// case A) stays. An IPv4 route that led its same-key list, with every route ahead of it gone
/// too, goes back to the front; the rest are appended (`NLM_F_APPEND`), which for IPv6 merges a
/// hop back into its multipath route. A route counts as restored only when the kernel then
/// holds it exactly as recorded.
pub fn guard(
    nl: &mut Netlink,
    baseline: &[DefaultRoute],
    opts: &GuardOptions,
) -> Result<GuardOutcome> {
    let assessment = Assessment::take(nl, baseline)?;
    let mut outcome = GuardOutcome {
        successions: assessment
            .resolutions
            .iter()
            .flat_map(|r| r.successions.clone())
            .collect(),
        ..GuardOutcome::default()
    };
    let effective = assessment.effective();
    let diff = routes::diff(&effective, &assessment.current);
    let problems: Vec<Unrestored> = assessment
        .resolutions
        .iter()
        .flat_map(|r| &r.problems)
        .map(|(route, reason)| Unrestored {
            route: route.clone(),
            reason: reason.clone(),
        })
        .collect();
    if diff.is_empty() {
        outcome.unrestored = problems;
        outcome.baseline = assessment.adopted();
        outcome.current = assessment.current;
        return Ok(outcome);
    }
    // Only now the whole link table: whether a route may go back depends on its devices being
    // up and on masters and lower devices (refusal), and this is the rare path.
    let links = LinkTable::load(nl)?;
    let mut added: Vec<DefaultRoute> = Vec::new();
    for (route, placement) in routes::restore_plan(&effective, diff) {
        // Two baseline entries can mean one route today (a port's route and its master's own,
        // or a multipath route recorded whole and as restored without a lost hop): add it once.
        if added.iter().any(|a| same_route(a, &route)) {
            continue;
        }
        match why_not_restorable(&route, &links, opts) {
            Some(reason) => outcome.unrestored.push(Unrestored { route, reason }),
            None => match add_back(nl, &route, placement, &links) {
                Ok(()) => added.push(route),
                Err(reason) => outcome.unrestored.push(Unrestored { route, reason }),
            },
        }
    }
    outcome.unrestored.extend(problems);
    let after = Assessment::take(nl, baseline)?;
    // Trust the kernel's view over our own bookkeeping: "restored" means the kernel now holds
    // the route exactly as recorded.
    for route in added {
        match held_as(&route, &after.current) {
            None => outcome.restored.push(route),
            Some(reason) => outcome.unrestored.push(Unrestored { route, reason }),
        }
    }
    outcome.baseline = after.adopted();
    outcome.current = after.current;
    Ok(outcome)
}

/// `None` when `current` holds `route` attribute for attribute (a next hop merged into an
/// IPv6 multipath route counts), else what the kernel shows instead.
fn held_as(route: &DefaultRoute, current: &[DefaultRoute]) -> Option<String> {
    let want = comparable(route.clone());
    let mut same_slot = Vec::new();
    for have in current {
        let shares = have.slots().iter().any(|s| route.slots().contains(s));
        if !shares {
            continue;
        }
        let candidates: Vec<DefaultRoute> =
            if route.nexthops.is_empty() && !have.nexthops.is_empty() {
                have.nexthops.iter().map(|h| have.hop_as_route(h)).collect()
            } else {
                vec![have.clone()]
            };
        if candidates.into_iter().any(|c| comparable(c) == want) {
            return None;
        }
        same_slot.push(have.to_string());
    }
    Some(if same_slot.is_empty() {
        "re-added, but the kernel does not show it afterwards".into()
    } else {
        format!(
            "re-added, but the kernel holds it differently: {}",
            same_slot.join("; ")
        )
    })
}

/// Whether two planned restores are one route in the kernel.
fn same_route(a: &DefaultRoute, b: &DefaultRoute) -> bool {
    comparable(a.clone()) == comparable(b.clone())
}

/// A route as compared after a restore: devices by name, next hops in a fixed order.
fn comparable(route: DefaultRoute) -> DefaultRoute {
    let mut route = route.without_identity();
    route
        .nexthops
        .sort_by(|a, b| (&a.dev, a.gateway).cmp(&(&b.dev, b.gateway)));
    route
}

/// The one decision whether a missing route may go back now: `guard` acts on it, and
/// [`Assessment::verdicts`] reports it (CHECK, STATUS, the guard daemon's readiness).
fn why_not_restorable(
    route: &DefaultRoute,
    links: &LinkTable,
    opts: &GuardOptions,
) -> Option<String> {
    if (opts.held)(route) {
        return Some(
            "its restore is held back: something deleted it right after each of the last \
             restores, so the guard daemon waits before the next one"
                .into(),
        );
    }
    if daemon_owned(route) && !(opts.grace_elapsed)(route) {
        return Some(
            "it belongs to an address-configuration daemon (proto dhcp or ra), which may be \
             renewing it; only the guard daemon restores it, once its slot stayed empty for \
             routes.dhcpGraceMs"
                .into(),
        );
    }
    for dev in route.devices() {
        let Some(link) = links.get(dev) else {
            return Some(format!("device {dev} is gone"));
        };
        if !link.is_up() {
            return Some(format!("device {dev} is down"));
        }
        if let Some(master) = link.master() {
            let master = links.name_of(master).unwrap_or_else(|| master.to_string());
            return Some(format!("device {dev} is a port of {master}"));
        }
        // Re-adding a recorded route changes no link; refusal is about link changes, and the
        // operator may extend it to routes with routes.restoreOnManaged = false.
        if !opts.restore_on_managed {
            if let Some(refusal) = (opts.refused)(links, dev) {
                return Some(format!(
                    "hostguard does not touch {dev} (routes.restoreOnManaged is false): {}",
                    refusal.evidence
                ));
            }
        }
    }
    if !opts.restore {
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
        Some(libc::ENETUNREACH) => match route.next_hop_address() {
            Some(gw) => format!("gateway {gw} is no longer on-link"),
            None => "a gateway is no longer on-link".into(),
        },
        Some(libc::EEXIST) => "an identical route already exists".into(),
        Some(libc::EINVAL) if route.nhid().is_some() => format!(
            "the kernel refused it; its nexthop object {} may be gone ({err})",
            route.nhid().unwrap_or_default()
        ),
        _ => err.to_string(),
    }
}

/// Slots of `routes`, for callers that compare before and after a change.
pub fn slots_of(routes: &[DefaultRoute]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = routes.iter().flat_map(DefaultRoute::slots).collect();
    slots.sort();
    slots
}
