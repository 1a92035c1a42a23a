//! Verify: after the move, compare the host with the picture taken before it. Every default
//! route of the host is still there (re-pointed where it used the source), attribute for
//! attribute; every moved address and route is on the target; the kernel's own routes for the
//! moved addresses reappeared; and the uplink is (or, after release, is no longer) a port of the
//! bridge. Any difference is a failure, and the caller rolls back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::journal::Journal;
use super::model::{fingerprint, repoint, Addr, SETTABLE_ADDRESS_FLAGS};
use super::observe::addresses_of;
use super::plan::{Operation, Step};
use crate::host::links::LinkTable;
use crate::host::route_guard;
use crate::host::routes::{DefaultRoute, Family, RT_TABLE_LOCAL};
use crate::netlink::{EventSocket, Group, LinkExt, Netlink, RouteExt, RouteFilter};
use netlink_packet_route::address::AddressFlags;

/// At most this many differences are named in the failure; the rest are counted.
const MAX_NAMED: usize = 4;

/// How long the check waits for the kernel's own routes of moved addresses. The kernel adds an
/// address's local and prefix routes asynchronously (an IPv6 address's local route is created
/// from a work queue even with `nodad`), usually within milliseconds; a host where it takes
/// longer than this has a real problem.
const KERNEL_ROUTES_WAIT: Duration = Duration::from_secs(2);

/// `Ok(Ok(()))` when the host is as planned, `Ok(Err(differences))` when it is not, `Err` when
/// it could not be read. When the only difference is kernel routes not recreated yet, waits for
/// route notifications (bounded by [`KERNEL_ROUTES_WAIT`]) and looks again, instead of failing
/// an attachment that is complete.
pub fn verify(nl: &mut Netlink, journal: &Journal) -> Result<Result<(), String>> {
    // Subscribed before the first look, so a route added between the look and the wait is
    // already queued. Without a subscription the check is done once, as before.
    let mut events = EventSocket::subscribe(&[Group::Ipv4Route, Group::Ipv6Route]).ok();
    let deadline = Instant::now() + KERNEL_ROUTES_WAIT;
    loop {
        let (mut problems, pending) = differences(nl, journal)?;
        if problems.is_empty() && pending.is_empty() {
            return Ok(Ok(()));
        }
        if problems.is_empty() {
            if let Some(events) = events.as_mut() {
                match events.next_batch(deadline) {
                    Ok(Some(_)) => continue,
                    Err(err) if err.is_overrun() => continue,
                    Ok(None) | Err(_) => {}
                }
            }
        }
        problems.extend(pending);
        let extra = problems.len().saturating_sub(MAX_NAMED);
        problems.truncate(MAX_NAMED);
        let mut text = problems.join("; ");
        if extra > 0 {
            text.push_str(&format!("; and {extra} more"));
        }
        return Ok(Err(text));
    }
}

/// What differs from the plan: (differences, kernel routes of moved addresses not there yet).
fn differences(nl: &mut Netlink, journal: &Journal) -> Result<(Vec<String>, Vec<String>)> {
    let obs = &journal.observed;
    let mut pending = Vec::new();
    let links = LinkTable::load(nl)?;
    let mut problems = Vec::new();
    let target_name = journal.target();
    let Some(target) = links.index_of(target_name) else {
        return Ok((vec![format!("{target_name} does not exist")], pending));
    };
    let source = obs.source.index;

    let bridge = links.index_of(&journal.bridge);
    let master = links.get(&journal.interface).and_then(LinkExt::master);
    match journal.operation {
        Operation::Attach if master.is_none() || master != bridge => problems.push(format!(
            "{} is not a port of {}",
            journal.interface, journal.bridge
        )),
        Operation::Release if master.is_some() && master == bridge => problems.push(format!(
            "{} is still a port of {}",
            journal.interface, journal.bridge
        )),
        _ => {}
    }

    let present = addresses_of(nl, target)?;
    let copied_labels: Vec<(usize, Option<String>)> = journal
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CopyAddress { address, label } => Some((*address, label.clone())),
            _ => None,
        })
        .collect();
    for (i, label) in &copied_labels {
        let Some(want) = obs.addresses.get(*i) else {
            continue;
        };
        match present.iter().find(|p| p.same_address(want)) {
            None => problems.push(format!(
                "address {} is not on {target_name}",
                want.describe()
            )),
            Some(got) => {
                if let Some(diff) = address_difference(want, got, label.as_deref()) {
                    problems.push(format!(
                        "address {} on {target_name} differs: {diff}",
                        want.describe()
                    ));
                }
            }
        }
    }
    for i in &obs.addresses_on_target {
        if let Some(want) = obs.addresses.get(*i) {
            if !present.iter().any(|p| p.same_address(want)) {
                problems.push(format!("address {} left {target_name}", want.describe()));
            }
        }
    }

    let through_target: HashSet<Vec<u8>> = nl
        .routes(&RouteFilter {
            oif: Some(target),
            ..RouteFilter::default()
        })?
        .iter()
        .map(fingerprint)
        .collect();
    for saved in &obs.routes {
        let moved = repoint(&saved.route()?, source, target);
        if !through_target.contains(&fingerprint(&moved)) {
            problems.push(format!(
                "route {} is not through {target_name} with the same attributes",
                saved.text
            ));
        }
    }
    let tentative: Vec<&Addr> = present.iter().filter(|a| a.is_tentative()).collect();
    for saved in &obs.kernel_routes {
        let route = saved.route()?;
        // An IPv6 address still doing duplicate address detection gets its local route when
        // DAD completes, which takes about a second; its absence now is not a failure.
        let waiting_for_dad = route.table() == RT_TABLE_LOCAL
            && route
                .destination()
                .is_some_and(|d| tentative.iter().any(|a| a.local == d.ip()));
        if waiting_for_dad {
            continue;
        }
        if !through_target.contains(&fingerprint(&repoint(&route, source, target))) {
            pending.push(format!(
                "the kernel did not recreate {} on {target_name}",
                saved.text
            ));
        }
    }

    let after: Vec<DefaultRoute> = route_guard::default_routes(nl, &links)?
        .into_iter()
        .map(canonical)
        .collect();
    for want in expected_defaults(journal) {
        if !after.contains(&want) {
            problems.push(format!("default route {want} is missing"));
        }
    }

    Ok((problems, pending))
}

/// The host's default routes as they must be after the move: the moved ones re-pointed, every
/// other one unchanged.
pub fn expected_defaults(journal: &Journal) -> Vec<DefaultRoute> {
    let obs = &journal.observed;
    let moved: Vec<DefaultRoute> = obs.moved_defaults.iter().cloned().map(canonical).collect();
    obs.defaults
        .iter()
        .cloned()
        .map(canonical)
        .map(|route| {
            if moved.contains(&route) {
                canonical(route.repointed(&obs.source.name, journal.target()))
            } else {
                route
            }
        })
        .collect()
}

/// Next hops in a fixed order: IPv6 lists siblings in the order they were added, which a move
/// may change without changing the route.
pub fn canonical(route: DefaultRoute) -> DefaultRoute {
    // Devices by name: the picture before the move and the one after are compared by name,
    // and a re-pointed route names the bridge without knowing its identity.
    let mut route = route.without_identity();
    route
        .nexthops
        .sort_by(|a, b| (&a.dev, a.gateway).cmp(&(&b.dev, b.gateway)));
    route
}

/// What differs between the address as it was and as it is now, beyond what the kernel alone
/// decides (tentative while DAD runs, remaining lifetimes that keep counting down).
fn address_difference(want: &Addr, got: &Addr, label: Option<&str>) -> Option<String> {
    let mut mask = SETTABLE_ADDRESS_FLAGS | AddressFlags::Permanent.bits();
    if want.family == Family::Inet {
        mask |= AddressFlags::Secondary.bits();
    }
    let mut diffs = Vec::new();
    if want.family == Family::Inet && got.label.as_deref() != label {
        diffs.push(format!("label {:?} instead of {label:?}", got.label));
    }
    if want.scope != got.scope {
        diffs.push(format!("scope {} instead of {}", got.scope, want.scope));
    }
    if want.flags & mask != got.flags & mask {
        diffs.push(format!(
            "flags {:#x} instead of {:#x}",
            got.flags & mask,
            want.flags & mask
        ));
    }
    if want.broadcast != got.broadcast {
        diffs.push(format!(
            "broadcast {:?} instead of {:?}",
            got.broadcast, want.broadcast
        ));
    }
    if want.metric != got.metric {
        diffs.push(format!(
            "metric {:?} instead of {:?}",
            got.metric, want.metric
        ));
    }
    if want.proto.unwrap_or(0) != got.proto.unwrap_or(0) {
        diffs.push(format!("proto {:?} instead of {:?}", got.proto, want.proto));
    }
    for (what, w, g) in [
        ("valid_lft", want.valid_lft, got.valid_lft),
        ("preferred_lft", want.preferred_lft, got.preferred_lft),
    ] {
        match (w, g) {
            (None, None) => {}
            (Some(w), Some(g)) if g <= w.saturating_add(1) => {}
            _ => diffs.push(format!("{what} {g:?} instead of {w:?}")),
        }
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}
