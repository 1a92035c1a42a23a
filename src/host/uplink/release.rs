//! Release: undo an attachment with the same engine run the other way. The addresses and routes
//! the attachment moved (per its record) go back from the bridge to the interface, the interface
//! leaves the bridge, the default routes are checked again, and the bridge is removed if
//! hostguard made it and nothing else uses it.

use anyhow::Context;

use super::apply::Engine;
use super::journal::Journal;
use super::observe::{self, Selection};
use super::plan::{self, Operation, ReleaseFacts, Step};
use super::{check_names, record, UplinkError};
use crate::host::links::LinkTable;
use crate::netlink::{LinkExt, Netlink};
use crate::state::StateDir;

/// What a release did.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    pub addresses: usize,
    pub routes: usize,
    pub bridge_deleted: bool,
    pub notes: Vec<String>,
}

pub fn release(state: &StateDir, interface: &str, bridge: &str) -> Result<Released, UplinkError> {
    check_names(interface, bridge)?;
    let _lock = state.lock("uplink")?;
    let mut nl = Netlink::new().context("open netlink socket")?;
    let mut notes = Vec::new();
    if let Some(recovered) = super::recover::recover_locked(state, &mut nl)? {
        notes.push(recovered.to_string());
    }
    let Some(record) = record::read(state, bridge)? else {
        return Err(UplinkError::NotAttempted(format!(
            "there is no record of hostguard attaching an uplink to {bridge} in {} (is \
             --state-dir the conflist's stateDir?)",
            state.root().display()
        )));
    };
    if record.interface != interface {
        return Err(UplinkError::NotAttempted(format!(
            "hostguard attached {} to {bridge}, not {interface}",
            record.interface
        )));
    }
    let links = LinkTable::load(&mut nl)?;
    let (Some(uplink), Some(bridge_link)) = (links.get(interface), links.get(bridge)) else {
        return Err(UplinkError::NotAttempted(format!(
            "{interface} or {bridge} does not exist"
        )));
    };
    let bridge_index = bridge_link.header.index;
    if uplink.master() != Some(bridge_index) {
        return Err(UplinkError::NotAttempted(format!(
            "{interface} is not a port of {bridge}"
        )));
    }
    let uplink_index = uplink.header.index;
    let other_ports = links
        .links()
        .iter()
        .any(|l| l.master() == Some(bridge_index) && l.header.index != uplink_index);
    let selection = Selection {
        addresses: &record.addresses,
        routes: &record.routes,
        routes_index: record.interface_index,
        routes_to: bridge_index,
    };
    let cannot_plan =
        |err: anyhow::Error| UplinkError::NotAttempted(format!("cannot plan the release: {err:#}"));
    let observed = observe::observe(&mut nl, &links, bridge, interface, Some(&selection))
        .map_err(cannot_plan)?;
    let facts = ReleaseFacts {
        bridge_created: record.bridge_created,
        bridge_was_up: record.bridge_was_up,
        other_ports,
    };
    let plan = plan::release(&observed, interface, &facts).map_err(cannot_plan)?;
    let (addresses, routes) = (observed.addresses.len(), observed.routes.len());
    let bridge_deleted = plan.steps.contains(&Step::DeleteBridge);
    let journal = Journal::new(Operation::Release, interface, bridge, observed, &plan);
    journal
        .save(state)
        .context("the journal must be written before the host is changed")?;
    let mut engine = Engine::new(&mut nl, state, journal);
    let finish = engine.forward(false);
    notes.extend(plan.notes);
    notes.append(&mut engine.notes);
    finish?;
    Ok(Released {
        addresses,
        routes,
        bridge_deleted,
        notes,
    })
}
