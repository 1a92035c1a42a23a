//! Plan: the move as plain data, decided before anything changes.
//!
//! The order is chosen so that the host keeps every address and route it had at every instant,
//! and so that no step collides with the kernel's own bookkeeping (checked on kernel 6.18):
//!
//! 1. **Create the bridge down, copy the uplink's MAC and MTU, bring it up.** Same MAC: DHCP
//!    leases, neighbours' ARP/NDP caches and switch port security keep matching; the bridge then
//!    also keeps that address when ports come and go.
//! 2. **Copy addresses to the bridge before removing them from the uplink.** The kernel allows
//!    the same address on two links. Removing first would be worse in two ways: while no link
//!    holds an IPv4 address the kernel flushes every route that names it as `src`, and the
//!    routes through the bridge could not be added (their gateways would not be on-link).
//!    Copies go in the kernel's order so a subnet's primary stays primary.
//! 3. **Copy routes to the bridge with append.** Same key (table, destination, tos, metric) as
//!    the uplink's route is legal: IPv4 keeps both in a list and uses the first (the uplink's
//!    stays ahead, so lookups do not change yet), IPv6 makes them siblings. Append never
//!    overwrites another route; an exact duplicate answers EEXIST, which is a failure here (the
//!    plan skipped what the bridge had). Held back: an IPv4 default route of the uplink that
//!    leads its same-key list ahead of another device's route. Appended, its copy would end up
//!    behind that route once the original goes, and the host's traffic would silently switch
//!    to the other device (incident 1). See 4a.
//! 4. **Enslave the uplink.** From here frames arriving on it are the bridge's: this is the
//!    point of no return (see below).
//!
//!    4a. **Put the held-back routes on the bridge ahead of their list** (add without append:
//!    the kernel inserts at the front of the same-key list), last one first so a run of them
//!    keeps its own order. Only now: ahead of the uplink's route, the bridge's copy takes the
//!    traffic, and before the enslave the bridge had no port to send it through. The uplink's
//!    original stays in the list until step 5, so there is no instant without the list's first
//!    route. Rollback re-adds those originals at the front too, in reverse, for the same order.
//!    What this cannot keep, and the plan warns about: a moved route with another device's
//!    route both ahead of it and behind it (a middle place: a copy goes only first or last),
//!    and a route the bridge already had a copy of, with another device's route between the
//!    two (only the copy stays). Non-default routes are not compared: the picture holds the
//!    host's default routes only. `uplink release` runs the same plan the other way.
//! 5. **Remove the uplink's routes, then its addresses** (secondaries before primaries: removing
//!    a primary first takes its secondaries with it unless `promote_secondaries` is set). The
//!    kernel removes the uplink's prefix, local and broadcast routes with the addresses, except
//!    an IPv6 prefix route of an address with a finite lifetime, which it leaves to expire: those
//!    leftovers are dropped explicitly ("drop kernel route", absent already is fine).
//! 6. **Re-point the baseline, verify, record.** The route guard's baseline follows the move so
//!    it does not "restore" the uplink's old routes; the post-check compares the host with the
//!    observed picture; the attachment record lets `uplink release` undo it later.
//!
//! Point of no return: crash recovery rolls back an attempt that stopped before the enslave step
//! was recorded, and finishes one that stopped after. Before it, the uplink still carries all its
//! traffic and everything done so far is an addition the uplink does not see, so removing the
//! additions is free. After it, the bridge is already the live path (the uplink's frames arrive
//! there and neighbours have answered through it), and what is left is to put the held-back
//! copies in front and remove the uplink's duplicates: finishing is fewer changes and no second
//! interruption. A live failure (not a crash) always rolls back, from any step, because the
//! caller asked for all or nothing.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::observe::Observed;
use crate::host::routes::{DefaultRoute, Family, ListKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Move the uplink's addresses and routes to the bridge and enslave the uplink.
    Attach,
    /// The reverse (`hostguard uplink release`).
    Release,
}

/// One change to the host, or one bookkeeping action, in the order it is applied. Indexes point
/// into the `Observed` picture stored beside the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Step {
    CreateBridge,
    SetBridgeMac {
        mac: String,
    },
    SetBridgeMtu {
        mtu: u32,
    },
    SetBridgeUp,
    /// Add `addresses[address]` to the target link, with `label` (already renamed).
    CopyAddress {
        address: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// Add `routes[route]` through the target link (append).
    CopyRoute {
        route: usize,
    },
    /// Add `routes[route]` through the target link ahead of its same-key routes (IPv4: it led
    /// its list, and its copy must lead it too). Only after the switch.
    PrependRoute {
        route: usize,
    },
    Enslave,
    Unenslave,
    /// Delete exactly `routes[route]` (for IPv6 multipath: only its next hops via the source).
    RemoveRoute {
        route: usize,
    },
    RemoveAddress {
        address: usize,
    },
    /// Delete `kernel_routes[route]` from the source if the kernel left it behind.
    DropKernelRoute {
        route: usize,
    },
    /// Point the route guard's baseline entries for the moved default routes at the target.
    RepointBaseline,
    Verify,
    WriteRecord,
    SetBridgeDown,
    DeleteBridge,
    RemoveRecord,
}

impl Step {
    /// "copy route default via 172.26.0.33 dev eth1 ..." for messages.
    pub fn describe(&self, obs: &Observed) -> String {
        let address = |i: &usize| {
            obs.addresses
                .get(*i)
                .map(|a| a.describe())
                .unwrap_or_else(|| format!("#{i}"))
        };
        let route = |i: &usize, list: &[super::model::SavedRoute]| {
            list.get(*i)
                .map(|r| r.text.clone())
                .unwrap_or_else(|| format!("#{i}"))
        };
        match self {
            Step::CreateBridge => "create bridge".into(),
            Step::SetBridgeMac { mac } => format!("set bridge MAC {mac}"),
            Step::SetBridgeMtu { mtu } => format!("set bridge MTU {mtu}"),
            Step::SetBridgeUp => "bring bridge up".into(),
            Step::CopyAddress { address: i, .. } => format!("copy address {}", address(i)),
            Step::CopyRoute { route: i } => format!("copy route {}", route(i, &obs.routes)),
            Step::PrependRoute { route: i } => format!(
                "copy route {} ahead of its same-key routes",
                route(i, &obs.routes)
            ),
            Step::Enslave => "enslave uplink".into(),
            Step::Unenslave => "release uplink from bridge".into(),
            Step::RemoveRoute { route: i } => format!("remove route {}", route(i, &obs.routes)),
            Step::RemoveAddress { address: i } => format!("remove address {}", address(i)),
            Step::DropKernelRoute { route: i } => {
                format!("drop kernel route {}", route(i, &obs.kernel_routes))
            }
            Step::RepointBaseline => "re-point the baseline".into(),
            Step::Verify => "verify".into(),
            Step::WriteRecord => "write the attachment record".into(),
            Step::SetBridgeDown => "bring bridge down".into(),
            Step::DeleteBridge => "delete bridge".into(),
            Step::RemoveRecord => "remove the attachment record".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Index of the first step after the enslave / release step: a crash with at least this
    /// many steps recorded is finished, an earlier one rolled back.
    pub point_of_no_return: usize,
    /// Index of `Step::Verify`. Steps after it are clean-up that never rolls back.
    pub verify_at: usize,
    /// Warnings for the operator that do not stop the move.
    pub notes: Vec<String>,
}

/// The plan that attaches `obs.source` (the uplink) to `bridge`.
pub fn attach(obs: &Observed, bridge: &str) -> Result<Plan> {
    let mut steps = Vec::new();
    match &obs.target {
        None => {
            steps.push(Step::CreateBridge);
            if let Some(mac) = &obs.source.mac {
                steps.push(Step::SetBridgeMac { mac: mac.clone() });
            }
            if let Some(mtu) = obs.source.mtu {
                steps.push(Step::SetBridgeMtu { mtu });
            }
            steps.push(Step::SetBridgeUp);
        }
        // An existing bridge keeps its MAC and MTU: it may already serve other ports.
        Some(existing) if !existing.up => steps.push(Step::SetBridgeUp),
        Some(_) => {}
    }
    let mut plan = move_steps(obs, &obs.source.name, bridge, steps, Step::Enslave)?;
    plan.steps.push(Step::WriteRecord);
    Ok(plan)
}

/// What a release needs to know beyond the picture of the bridge.
pub struct ReleaseFacts {
    pub bridge_created: bool,
    pub bridge_was_up: bool,
    /// The bridge has ports other than the uplink.
    pub other_ports: bool,
}

/// The plan that moves what the attachment moved back from the bridge (`obs.source`) to
/// `interface`, releases it, and removes the bridge if hostguard made it and nothing else
/// uses it.
pub fn release(obs: &Observed, interface: &str, facts: &ReleaseFacts) -> Result<Plan> {
    let mut plan = move_steps(
        obs,
        &obs.source.name,
        interface,
        Vec::new(),
        Step::Unenslave,
    )?;
    let bridge = &obs.source.name;
    if facts.other_ports || !obs.foreign.is_empty() {
        let why = if facts.other_ports {
            "it has other ports".to_string()
        } else {
            format!("it still carries {}", obs.foreign.join(", "))
        };
        plan.notes.push(format!("bridge {bridge} is kept: {why}"));
    } else if facts.bridge_created {
        plan.steps.push(Step::DeleteBridge);
    } else if !facts.bridge_was_up {
        plan.steps.push(Step::SetBridgeDown);
    }
    plan.steps.push(Step::RemoveRecord);
    Ok(plan)
}

/// Copy, switch, remove, check: the part attach and release share.
fn move_steps(
    obs: &Observed,
    from: &str,
    to: &str,
    mut steps: Vec<Step>,
    switch: Step,
) -> Result<Plan> {
    let on_target: HashSet<usize> = obs.addresses_on_target.iter().copied().collect();
    for (i, addr) in obs.addresses.iter().enumerate() {
        let label = addr.label_on(from, to)?;
        if !on_target.contains(&i) {
            steps.push(Step::CopyAddress { address: i, label });
        }
    }
    let order = same_key_order(obs, to)?;
    let routes_on_target: HashSet<usize> = obs.routes_on_target.iter().copied().collect();
    for i in 0..obs.routes.len() {
        if !routes_on_target.contains(&i) && !order.ahead.contains(&i) {
            steps.push(Step::CopyRoute { route: i });
        }
    }
    steps.push(switch);
    let point_of_no_return = steps.len();
    // Each goes to the front, so the last of a run goes first.
    for &i in order.ahead.iter().rev() {
        steps.push(Step::PrependRoute { route: i });
    }
    for i in 0..obs.routes.len() {
        steps.push(Step::RemoveRoute { route: i });
    }
    for i in (0..obs.addresses.len()).rev() {
        steps.push(Step::RemoveAddress { address: i });
    }
    for i in 0..obs.kernel_routes.len() {
        steps.push(Step::DropKernelRoute { route: i });
    }
    steps.push(Step::RepointBaseline);
    let verify_at = steps.len();
    steps.push(Step::Verify);
    Ok(Plan {
        steps,
        point_of_no_return,
        verify_at,
        notes: order.notes,
    })
}

/// Which moved routes must be copied ahead of their same-key routes, and what order the move
/// cannot keep.
#[derive(Debug, Default, PartialEq, Eq)]
struct SameKeyOrder {
    /// Indexes into `routes`, in the kernel's list order.
    ahead: Vec<usize>,
    notes: Vec<String>,
}

/// One entry of a same-key list of IPv4 default routes, as the move sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `routes[i]`, copied to the target by this move.
    Copied(usize),
    /// `routes[i]`, which the target already has: only removed from the source.
    OnTarget(usize),
    /// The target's copy of `routes[i]`, there before the move: it stays where it is.
    StandIn(usize),
    /// Another device's route (at `defaults[i]`): it stays where it is.
    Other(usize),
}

/// IPv4 keeps same-key routes (table, destination, tos, metric) in a list and uses the first
/// that works. An appended copy lands at the end of the list, so a moved route that led it
/// ahead of another device's route would end up behind it. Those that lead are copied with
/// prepend after the switch instead (see the module comment, step 4a). Moved routes after
/// another device's route are appended, which keeps their place when nothing but moved routes
/// follows them; a middle place cannot be kept, and is reported.
fn same_key_order(obs: &Observed, to: &str) -> Result<SameKeyOrder> {
    let source = obs.source.name.as_str();
    let on_target: HashSet<usize> = obs.routes_on_target.iter().copied().collect();
    // `moved_defaults` holds the default routes among `routes`, in their order: pair them up
    // with the same test observe used, then find each in the host's list.
    let mut moved_at: HashMap<usize, usize> = HashMap::new();
    let mut moved_defaults = obs.moved_defaults.iter();
    for (i, saved) in obs.routes.iter().enumerate() {
        if DefaultRoute::from_message(&saved.route()?, &|_| None).is_none() {
            continue;
        }
        let Some(moved) = moved_defaults.next() else {
            break;
        };
        let found = (0..obs.defaults.len())
            .find(|at| obs.defaults[*at] == *moved && !moved_at.contains_key(at));
        if let Some(at) = found {
            moved_at.insert(at, i);
        }
    }
    // The target's own copies of routes it already had: what stays of those routes.
    let stand_ins: Vec<(DefaultRoute, usize)> = moved_at
        .iter()
        .filter(|(_, i)| on_target.contains(i))
        .map(|(at, i)| (obs.defaults[*at].repointed(source, to), *i))
        .collect();

    // In order of first appearance, so notes come out in the host's order.
    let mut groups: Vec<(ListKey, Vec<Entry>)> = Vec::new();
    for (at, route) in obs.defaults.iter().enumerate() {
        if route.family != Family::Inet {
            continue;
        }
        let entry = match moved_at.get(&at) {
            Some(&i) if on_target.contains(&i) => Entry::OnTarget(i),
            Some(&i) => Entry::Copied(i),
            None => match stand_ins.iter().find(|(copy, _)| copy == route) {
                Some((_, i)) => Entry::StandIn(*i),
                None => Entry::Other(at),
            },
        };
        let key = route.list_key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }

    let mut order = SameKeyOrder::default();
    let text = |entry: &Entry| match entry {
        Entry::Copied(i) | Entry::OnTarget(i) | Entry::StandIn(i) => obs
            .routes
            .get(*i)
            .map_or_else(|| format!("route #{i}"), |r| r.text.clone()),
        Entry::Other(at) => obs.defaults[*at].to_string(),
    };
    for (_, entries) in &groups {
        let Some(last_other) = entries.iter().rposition(|e| matches!(e, Entry::Other(_))) else {
            continue;
        };
        let first_other = entries
            .iter()
            .position(|e| matches!(e, Entry::Other(_)))
            .unwrap_or(last_other);
        for (k, entry) in entries.iter().enumerate() {
            match entry {
                Entry::Copied(i) if k < first_other => order.ahead.push(*i),
                Entry::OnTarget(i) => {
                    // Only the copy stays: another device's route between the two changes
                    // places with it.
                    let copy = entries.iter().position(|e| *e == Entry::StandIn(*i));
                    let (from, until) = (k.min(copy.unwrap_or(k)), k.max(copy.unwrap_or(k)));
                    if let Some(other) = entries[from..until]
                        .iter()
                        .find(|e| matches!(e, Entry::Other(_)))
                    {
                        order.notes.push(format!(
                            "{} and {to}'s copy of it are on either side of {} (same table and \
                             metric); only the copy stays, so that route changes places with \
                             it. Give them different metrics to make the preference explicit",
                            text(entry),
                            text(other),
                        ));
                    }
                }
                Entry::Copied(_) if k < last_other => {
                    let before = entries[..k]
                        .iter()
                        .rfind(|e| matches!(e, Entry::Other(_)))
                        .unwrap_or(&entries[first_other]);
                    order.notes.push(format!(
                        "{} was behind {} and ahead of {} (same table and metric); a moved \
                         route can only go first or last in that list, so after the move it \
                         comes after {}. Give them different metrics to make the preference \
                         explicit",
                        text(entry),
                        text(before),
                        text(&entries[last_other]),
                        text(&entries[last_other]),
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::routes::tests::route as default_route;
    use crate::host::uplink::model::{Addr, LinkState, SavedRoute};
    use crate::netlink::unicast_route;

    fn link(name: &str, index: u32) -> LinkState {
        LinkState {
            name: name.into(),
            index,
            kind: None,
            mac: Some("5e:d1:17:5f:01:b6".into()),
            mtu: Some(1500),
            up: true,
            master: None,
        }
    }

    fn addr(ip: &str, len: u8, label: &str) -> Addr {
        Addr {
            family: Family::Inet,
            local: ip.parse().unwrap(),
            peer: None,
            prefix_len: len,
            scope: 0,
            flags: 0,
            label: Some(label.into()),
            broadcast: None,
            valid_lft: None,
            preferred_lft: None,
            metric: None,
            proto: None,
        }
    }

    fn node() -> Observed {
        let route = unicast_route(
            "0.0.0.0/0".parse().unwrap(),
            Some("172.26.0.33".parse().unwrap()),
            Some(3),
            254,
        );
        Observed {
            source: link("eth1", 3),
            target: None,
            addresses: vec![
                addr("172.26.0.35", 27, "eth1"),
                addr("172.26.0.36", 27, "eth1:sec"),
            ],
            addresses_on_target: Vec::new(),
            routes: vec![SavedRoute::new(&route, &|_| Some("eth1".into()))],
            routes_on_target: Vec::new(),
            kernel_routes: Vec::new(),
            defaults: vec![
                default_route("eth0", "172.26.0.1", 0),
                default_route("eth1", "172.26.0.33", 0),
            ],
            moved_defaults: vec![default_route("eth1", "172.26.0.33", 0)],
            taken_at: 0,
            left_alone: Vec::new(),
            foreign: Vec::new(),
        }
    }

    #[test]
    fn attach_adds_everything_before_it_removes_anything() {
        let plan = attach(&node(), "br-sec").unwrap();
        assert_eq!(
            plan.steps,
            vec![
                Step::CreateBridge,
                Step::SetBridgeMac {
                    mac: "5e:d1:17:5f:01:b6".into()
                },
                Step::SetBridgeMtu { mtu: 1500 },
                Step::SetBridgeUp,
                Step::CopyAddress {
                    address: 0,
                    label: Some("br-sec".into())
                },
                Step::CopyAddress {
                    address: 1,
                    label: Some("br-sec:sec".into())
                },
                Step::CopyRoute { route: 0 },
                Step::Enslave,
                Step::RemoveRoute { route: 0 },
                Step::RemoveAddress { address: 1 },
                Step::RemoveAddress { address: 0 },
                Step::RepointBaseline,
                Step::Verify,
                Step::WriteRecord,
            ]
        );
        assert_eq!(plan.steps[plan.point_of_no_return - 1], Step::Enslave);
        assert_eq!(plan.steps[plan.verify_at], Step::Verify);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    }

    #[test]
    fn an_existing_bridge_keeps_its_mac_and_what_it_already_has() {
        let mut obs = node();
        let mut bridge = link("br-sec", 9);
        bridge.up = false;
        obs.target = Some(bridge);
        obs.addresses_on_target = vec![0];
        obs.routes_on_target = vec![0];
        let plan = attach(&obs, "br-sec").unwrap();
        assert_eq!(plan.steps[0], Step::SetBridgeUp);
        assert!(!plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::CreateBridge | Step::SetBridgeMac { .. })));
        assert!(!plan.steps.contains(&Step::CopyAddress {
            address: 0,
            label: Some("br-sec".into())
        }));
        assert!(!plan.steps.contains(&Step::CopyRoute { route: 0 }));
        // What the bridge had is not copied, but the uplink's copy still goes.
        assert!(plan.steps.contains(&Step::RemoveAddress { address: 0 }));
        assert!(plan.steps.contains(&Step::RemoveRoute { route: 0 }));
    }

    #[test]
    fn a_label_that_cannot_be_renamed_stops_the_plan() {
        let mut obs = node();
        obs.addresses[1].label = Some("eth1:abcdefghij".into());
        let err = attach(&obs, "br-secondary").unwrap_err();
        assert!(format!("{err:#}").contains("longer than"), "{err:#}");
    }

    /// `node()` with eth1's defaults via `gateways` (in this order) and the host's IPv4 default
    /// list `order` ("eth0:172.26.0.1", "eth1:172.26.0.33", ...), all in main with metric 0.
    fn node_with(gateways: &[&str], order: &[&str]) -> Observed {
        let mut obs = node();
        obs.routes = gateways
            .iter()
            .map(|gw| {
                let msg = unicast_route(
                    "0.0.0.0/0".parse().unwrap(),
                    Some(gw.parse().unwrap()),
                    Some(3),
                    254,
                );
                SavedRoute::new(&msg, &|_| Some("eth1".into()))
            })
            .collect();
        obs.moved_defaults = gateways
            .iter()
            .map(|gw| default_route("eth1", gw, 0))
            .collect();
        obs.defaults = order
            .iter()
            .map(|entry| {
                let (dev, gw) = entry.split_once(':').unwrap();
                default_route(dev, gw, 0)
            })
            .collect();
        obs
    }

    fn position(plan: &Plan, step: &Step) -> Option<usize> {
        plan.steps.iter().position(|s| s == step)
    }

    #[test]
    fn a_default_that_led_its_list_is_put_ahead_after_the_enslave() {
        let obs = node_with(&["172.26.0.33"], &["eth1:172.26.0.33", "eth0:172.26.0.1"]);
        let plan = attach(&obs, "br-sec").unwrap();
        assert!(!plan.steps.contains(&Step::CopyRoute { route: 0 }));
        let ahead = position(&plan, &Step::PrependRoute { route: 0 }).unwrap();
        assert_eq!(plan.steps[ahead - 1], Step::Enslave);
        assert_eq!(
            ahead, plan.point_of_no_return,
            "finished, never undone, after a crash"
        );
        assert!(ahead < position(&plan, &Step::RemoveRoute { route: 0 }).unwrap());
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        assert_eq!(
            Step::PrependRoute { route: 0 }.describe(&obs),
            "copy route default via 172.26.0.33 dev eth1 table 254 proto static ahead of its \
             same-key routes"
        );
    }

    #[test]
    fn a_leading_run_is_prepended_last_first_and_the_rest_appended() {
        let obs = node_with(
            &["172.26.0.33", "172.26.0.34", "172.26.0.35"],
            &[
                "eth1:172.26.0.33",
                "eth1:172.26.0.34",
                "eth0:172.26.0.1",
                "eth1:172.26.0.35",
            ],
        );
        let plan = attach(&obs, "br-sec").unwrap();
        let at = |step: Step| position(&plan, &step);
        let enslave = at(Step::Enslave).unwrap();
        assert_eq!(at(Step::PrependRoute { route: 1 }), Some(enslave + 1));
        assert_eq!(at(Step::PrependRoute { route: 0 }), Some(enslave + 2));
        // The last one is last already: appended before the enslave, as before.
        assert!(at(Step::CopyRoute { route: 2 }).unwrap() < enslave);
        assert_eq!(at(Step::PrependRoute { route: 2 }), None);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    }

    #[test]
    fn order_that_cannot_be_kept_is_reported_and_the_rest_is_left_as_it_was() {
        // Behind eth0's and ahead of another: a copy can only go first or last.
        let middle = node_with(
            &["172.26.0.33"],
            &["eth0:172.26.0.1", "eth1:172.26.0.33", "eth0:172.26.0.2"],
        );
        let plan = attach(&middle, "br-sec").unwrap();
        assert!(plan.steps.contains(&Step::CopyRoute { route: 0 }));
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
        assert!(
            plan.notes[0].contains("behind default via 172.26.0.1 dev eth0")
                && plan.notes[0].contains("after the move it comes after default via 172.26.0.2"),
            "{:?}",
            plan.notes
        );

        // Last, alone, or under another metric: append keeps the place; nothing to say.
        for order in [
            &["eth0:172.26.0.1", "eth1:172.26.0.33"][..],
            &["eth1:172.26.0.33"][..],
        ] {
            let plan = attach(&node_with(&["172.26.0.33"], order), "br-sec").unwrap();
            assert!(
                plan.steps.contains(&Step::CopyRoute { route: 0 }),
                "{order:?}"
            );
            assert!(plan.notes.is_empty(), "{order:?}: {:?}", plan.notes);
        }
        let mut metrics = node_with(&["172.26.0.33"], &["eth1:172.26.0.33", "eth0:172.26.0.1"]);
        metrics.defaults[1].metric = 200;
        let plan = attach(&metrics, "br-sec").unwrap();
        assert!(plan.steps.contains(&Step::CopyRoute { route: 0 }));
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);

        // IPv6 keeps no order among same-key routes (they are siblings of one route).
        let mut v6 = node_with(&["172.26.0.33"], &["eth1:172.26.0.33", "eth0:172.26.0.1"]);
        for route in &mut v6.defaults {
            route.family = Family::Inet6;
        }
        v6.moved_defaults[0].family = Family::Inet6;
        assert!(attach(&v6, "br-sec")
            .unwrap()
            .steps
            .contains(&Step::CopyRoute { route: 0 }));
    }

    #[test]
    fn a_route_the_bridge_already_has_is_reported_only_if_another_sits_between() {
        let mut obs = node_with(
            &["172.26.0.33"],
            &["eth1:172.26.0.33", "br-sec:172.26.0.33", "eth0:172.26.0.1"],
        );
        obs.routes_on_target = vec![0];
        let plan = attach(&obs, "br-sec").unwrap();
        assert!(!plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::CopyRoute { .. } | Step::PrependRoute { .. })));
        assert!(
            plan.notes.is_empty(),
            "its copy leads after the move: {:?}",
            plan.notes
        );

        obs.defaults.swap(1, 2);
        let plan = attach(&obs, "br-sec").unwrap();
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
        assert!(
            plan.notes[0].contains("only the copy stays"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn release_deletes_only_a_bridge_hostguard_made_and_nothing_else_uses() {
        let mut obs = node();
        obs.source = link("br-sec", 9);
        obs.target = Some(link("eth1", 3));
        let facts = ReleaseFacts {
            bridge_created: true,
            bridge_was_up: false,
            other_ports: false,
        };
        let plan = release(&obs, "eth1", &facts).unwrap();
        assert_eq!(plan.steps[plan.point_of_no_return - 1], Step::Unenslave);
        assert_eq!(
            &plan.steps[plan.verify_at..],
            &[Step::Verify, Step::DeleteBridge, Step::RemoveRecord]
        );
        assert_eq!(
            plan.steps[0],
            Step::CopyAddress {
                address: 0,
                label: Some("eth1".into())
            }
        );

        let kept = release(
            &obs,
            "eth1",
            &ReleaseFacts {
                other_ports: true,
                ..facts
            },
        )
        .unwrap();
        assert!(!kept.steps.contains(&Step::DeleteBridge));
        assert!(kept.notes.iter().any(|n| n.contains("other ports")));

        obs.foreign = vec!["route 10.9.0.0/16 dev br-sec".into()];
        let kept = release(&obs, "eth1", &facts).unwrap();
        assert!(!kept.steps.contains(&Step::DeleteBridge));

        obs.foreign.clear();
        let existing = release(
            &obs,
            "eth1",
            &ReleaseFacts {
                bridge_created: false,
                bridge_was_up: false,
                other_ports: false,
            },
        )
        .unwrap();
        assert!(existing.steps.contains(&Step::SetBridgeDown));
        assert!(!existing.steps.contains(&Step::DeleteBridge));
    }

    #[test]
    fn steps_serialize_with_their_operation_name() {
        let json = serde_json::to_string(&Step::CopyRoute { route: 2 }).unwrap();
        assert_eq!(json, r#"{"op":"copyRoute","route":2}"#);
        let back: Step = serde_json::from_str(r#"{"op":"removeAddress","address":1}"#).unwrap();
        assert_eq!(back, Step::RemoveAddress { address: 1 });
    }
}
