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
//!    the uplink's route is legal: IPv4 keeps both (the uplink's stays first, so lookups do not
//!    change yet), IPv6 makes them siblings. Append never overwrites another route; an exact
//!    duplicate answers EEXIST, which is a failure here (the plan skipped what the bridge had).
//! 4. **Enslave the uplink.** From here frames arriving on it are the bridge's: this is the
//!    point of no return (see below).
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
//! there and neighbours have answered through it), and what is left is only to remove the
//! uplink's duplicates: finishing is fewer changes and no second interruption. A live failure
//! (not a crash) always rolls back, from any step, because the caller asked for all or nothing.

use std::collections::HashSet;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::observe::Observed;
use crate::host::routes::Family;

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
    plan.notes.extend(order_notes(obs));
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
    let routes_on_target: HashSet<usize> = obs.routes_on_target.iter().copied().collect();
    for i in 0..obs.routes.len() {
        if !routes_on_target.contains(&i) {
            steps.push(Step::CopyRoute { route: i });
        }
    }
    steps.push(switch);
    let point_of_no_return = steps.len();
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
        notes: Vec::new(),
    })
}

/// IPv4 keeps same-key routes in a list and uses the first live one. A moved route is appended,
/// so one that was ahead of another device's route with the same key ends up behind it: traffic
/// then prefers the other device. The kernel has no "insert at position", so say so.
fn order_notes(obs: &Observed) -> Vec<String> {
    let source = obs.source.name.as_str();
    let mut notes = Vec::new();
    for (i, route) in obs.defaults.iter().enumerate() {
        if route.family != Family::Inet || route.dev.as_deref() != Some(source) {
            continue;
        }
        let behind = obs.defaults[i + 1..].iter().find(|later| {
            later.family == Family::Inet
                && later.table == route.table
                && later.metric == route.metric
                && later.tos == route.tos
                && later.dev.as_deref() != Some(source)
        });
        if let Some(later) = behind {
            notes.push(format!(
                "{route} was ahead of {later} (same table and metric); after the move it comes \
                 second, so the kernel prefers the other one. Give them different metrics to \
                 make the preference explicit"
            ));
        }
    }
    notes
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
            moved_defaults: Vec::new(),
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

    #[test]
    fn a_moved_default_that_was_first_in_its_group_is_reported() {
        let mut obs = node();
        obs.defaults.reverse();
        let plan = attach(&obs, "br-sec").unwrap();
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("comes second"), "{:?}", plan.notes);
        // Different metrics are different keys: no preference changes.
        obs.defaults[0].metric = 200;
        assert!(attach(&obs, "br-sec").unwrap().notes.is_empty());
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
