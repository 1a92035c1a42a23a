//! Apply and roll back: run the journaled plan one step at a time, recording each step before
//! the next begins, and undo completed steps in reverse when one fails.
//!
//! Every change is one netlink request, which the kernel applies whole or not at all, so a
//! failed step changed nothing and is not undone. Undo accepts "already so" answers by errno
//! (a deleted route that is gone, a re-added address that is there), which makes it safe to
//! repeat after a crash. Routes are added with append, or at the front of their same-key list
//! where the plan says so, never with replace; the only deletions are the copies this move made
//! and the source's own routes and addresses recorded in the journal.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context, Result};

use super::journal::{Faults, Journal, Phase};
use super::model::{hops_through, is_multipath, parse_mac, repoint, SavedRoute};
use super::observe::elapsed_since;
use super::plan::{Operation, Step};
use super::record::{self, UplinkRecord};
use super::verify;
use super::UplinkError;
use crate::host::routes::DefaultRoute;
use crate::netlink::{AddMode, AddressFamily, InfoKind, LinkExt, Netlink, NlError, RouteMessage};
use crate::state::{StateDir, FORMAT_VERSION};

/// How a run of the plan ended: `Ok` when every step is done and the journal is gone, else the
/// `RolledBack`, `RollbackIncomplete` or `CleanupFailed` the caller reports as it is.
pub type Finish = Result<(), UplinkError>;

pub struct Engine<'a> {
    nl: &'a mut Netlink,
    state: &'a StateDir,
    pub journal: Journal,
    faults: Faults,
    /// Things worth telling the operator that did not stop the run.
    pub notes: Vec<String>,
}

impl<'a> Engine<'a> {
    pub fn new(nl: &'a mut Netlink, state: &'a StateDir, journal: Journal) -> Engine<'a> {
        Engine {
            nl,
            state,
            journal,
            faults: Faults::from_env(),
            notes: Vec::new(),
        }
    }

    /// Applies the steps from `journal.done` on. With `uncertain`, the first of them may have
    /// happened already (the previous process died between doing it and recording it).
    pub fn forward(&mut self, uncertain: bool) -> Finish {
        let start = self.journal.done;
        while self.journal.done < self.journal.steps.len() {
            let k = self.journal.done;
            Faults::crash_if(self.faults.crash_before, k);
            let result = if self.faults.fail_at == Some(k) {
                Err(anyhow!(
                    "injected failure at step {k} (fault-injection build)"
                ))
            } else {
                self.apply(k, uncertain && k == start)
            };
            if let Err(cause) = result {
                return self.failed(k, cause);
            }
            Faults::crash_if(self.faults.crash_after, k);
            self.journal.done = k + 1;
            if let Err(cause) = self.journal.save(self.state) {
                if k < self.journal.verify_at {
                    // Without a journal a crash could not be recovered: stop while we can undo.
                    return self.rollback(k + 1, k, cause);
                }
                return Err(UplinkError::CleanupFailed {
                    step: self.describe(k),
                    cause: format!("{cause:#}"),
                });
            }
        }
        if let Err(err) = Journal::remove(self.state) {
            self.notes.push(format!("{err:#}"));
        }
        Ok(())
    }

    fn failed(&mut self, k: usize, cause: anyhow::Error) -> Finish {
        if k > self.journal.verify_at {
            return Err(UplinkError::CleanupFailed {
                step: self.describe(k),
                cause: format!("{cause:#}"),
            });
        }
        // Step k failed whole; only the steps before it are in place.
        self.rollback(k, k, cause)
    }

    /// Undoes `steps[..applied]` in reverse, after step `failed` failed with `cause`.
    pub fn rollback(&mut self, applied: usize, failed: usize, cause: anyhow::Error) -> Finish {
        let step = self.describe(failed);
        let cause = format!("{cause:#}");
        self.journal.phase = Phase::RollingBack;
        self.journal.done = applied.min(self.journal.verify_at);
        self.journal.failure = Some(format!("step {failed} ({step}): {cause}"));
        if let Err(err) = self.journal.save(self.state) {
            self.notes
                .push(format!("rolling back without a journal: {err:#}"));
        }
        self.continue_rollback(step, cause)
    }

    /// Undoes `steps[..journal.done]` in reverse (also after a crash during a rollback).
    pub fn continue_rollback(&mut self, step: String, cause: String) -> Finish {
        let mut leftovers = Vec::new();
        let mut undone = 0;
        while self.journal.done > 0 {
            let i = self.journal.done - 1;
            if let Err(err) = self.undo(i) {
                leftovers.push(format!("undo {}: {err:#}", self.describe(i)));
            }
            undone += 1;
            Faults::crash_if(self.faults.crash_after_undo, undone);
            self.journal.done = i;
            if let Err(err) = self.journal.save(self.state) {
                self.notes.push(format!("{err:#}"));
            }
        }
        if leftovers.is_empty() {
            if let Err(err) = Journal::remove(self.state) {
                self.notes.push(format!("{err:#}"));
            }
            return Err(UplinkError::RolledBack { step, cause });
        }
        let journal = self
            .journal
            .set_aside(self.state, "the rollback could not undo everything")
            .unwrap_or_else(|err| {
                self.notes.push(format!("{err:#}"));
                self.state.journal_path()
            });
        Err(UplinkError::RollbackIncomplete {
            step,
            cause,
            leftovers,
            journal,
        })
    }

    pub fn describe(&self, k: usize) -> String {
        match self.journal.steps.get(k) {
            Some(step) => format!(
                "{} of {}: {}",
                k + 1,
                self.journal.steps.len(),
                step.describe(&self.journal.observed)
            ),
            None => format!("{k}"),
        }
    }

    fn apply(&mut self, k: usize, uncertain: bool) -> Result<()> {
        let step = self.journal.steps[k].clone();
        let elapsed = elapsed_since(self.journal.observed.taken_at);
        match step {
            Step::CreateBridge => match self.nl.create_bridge(&self.journal.bridge) {
                Ok(_) => Ok(()),
                Err(err) if uncertain && err.is_exists() && self.fresh_bridge()?.is_some() => {
                    Ok(())
                }
                Err(err) => Err(err.into()),
            },
            Step::SetBridgeMac { mac } => {
                let bytes =
                    parse_mac(&mac).with_context(|| format!("bad MAC {mac:?} in the journal"))?;
                let bridge = self.bridge_index()?;
                Ok(self.nl.set_mac(bridge, &bytes)?)
            }
            Step::SetBridgeMtu { mtu } => {
                let bridge = self.bridge_index()?;
                Ok(self.nl.set_mtu(bridge, mtu)?)
            }
            Step::SetBridgeUp => {
                let bridge = self.bridge_index()?;
                Ok(self.nl.set_up(bridge, true)?)
            }
            Step::SetBridgeDown => {
                let bridge = self.bridge_index()?;
                Ok(self.nl.set_up(bridge, false)?)
            }
            Step::CopyAddress { address, label } => {
                let target = self.target_index()?;
                let addr = self.address(address)?;
                let result = self.nl.add_address(addr.to_message(target, label, elapsed));
                accept(result, |e| uncertain && e.is_exists())
            }
            Step::CopyRoute { route } | Step::PrependRoute { route } => {
                let mode = match step {
                    Step::PrependRoute { .. } => AddMode::Prepend,
                    _ => AddMode::Append,
                };
                let target = self.target_index()?;
                let msg = self.copied_route(route, target)?;
                let msg = self.saved_route(route)?.with_expiry(msg, elapsed);
                // Prepend refuses an exact duplicate like append does, wherever it sits.
                accept(self.nl.add_route(msg, mode), |e| uncertain && e.is_exists())
            }
            Step::Enslave => {
                let (interface, bridge) = (self.interface_index()?, self.bridge_index()?);
                Ok(self.nl.set_master(interface, Some(bridge))?)
            }
            Step::Unenslave => {
                let interface = self.interface_index()?;
                Ok(self.nl.set_master(interface, None)?)
            }
            Step::RemoveRoute { route } => {
                let msg = self.source_route(route)?;
                accept(self.nl.del_route(msg), NlError::is_not_found)
            }
            Step::RemoveAddress { address } => {
                let addr = self.address(address)?;
                let source = self.journal.observed.source.index;
                let msg = addr.delete_message(source, addr.label.clone());
                accept(self.nl.del_address(msg), NlError::is_not_found)
            }
            Step::DropKernelRoute { route } => {
                let msg = self
                    .journal
                    .observed
                    .kernel_routes
                    .get(route)
                    .context("kernel route index out of range in the journal")?
                    .route()?;
                accept(self.nl.del_route(msg), NlError::is_not_found)
            }
            Step::RepointBaseline => {
                let obs = &self.journal.observed;
                repoint_baseline(
                    self.state,
                    &obs.moved_defaults,
                    &obs.source.name,
                    self.journal.target(),
                )
            }
            Step::Verify => match verify::verify(self.nl, &self.journal)? {
                Ok(()) => Ok(()),
                Err(differences) => bail!("the host does not match the plan: {differences}"),
            },
            Step::WriteRecord => record::write(self.state, &self.record()?),
            Step::DeleteBridge => {
                let Some(bridge) = self.fresh_bridge()? else {
                    self.notes.push(format!(
                        "bridge {} was kept: it has ports again",
                        self.journal.bridge
                    ));
                    return Ok(());
                };
                accept(self.nl.delete_link(bridge), NlError::is_not_found)
            }
            Step::RemoveRecord => record::remove(self.state, &self.journal.bridge),
        }
    }

    fn undo(&mut self, i: usize) -> Result<()> {
        let step = self.journal.steps[i].clone();
        let elapsed = elapsed_since(self.journal.observed.taken_at);
        match step {
            Step::CreateBridge => {
                let Some(link) = self.nl.link_by_name(&self.journal.bridge)? else {
                    return Ok(());
                };
                if !matches!(link.kind(), Some(InfoKind::Bridge)) {
                    bail!("{} is no longer a bridge; left alone", self.journal.bridge);
                }
                let Some(bridge) = self.fresh_bridge()? else {
                    bail!(
                        "{} has ports that hostguard did not add; left alone",
                        self.journal.bridge
                    );
                };
                accept(self.nl.delete_link(bridge), NlError::is_not_found)
            }
            // The bridge these were set on is deleted by undoing CreateBridge.
            Step::SetBridgeMac { .. } | Step::SetBridgeMtu { .. } => Ok(()),
            Step::SetBridgeUp => match self.nl.link_by_name(&self.journal.bridge)? {
                Some(link) => accept(
                    self.nl.set_up(link.header.index, false),
                    NlError::is_not_found,
                ),
                None => Ok(()),
            },
            Step::SetBridgeDown => {
                let bridge = self.bridge_index()?;
                Ok(self.nl.set_up(bridge, true)?)
            }
            Step::CopyAddress { address, label } => {
                let Some(target) = self.maybe_target_index()? else {
                    return Ok(());
                };
                let msg = self.address(address)?.delete_message(target, label);
                accept(self.nl.del_address(msg), NlError::is_not_found)
            }
            Step::CopyRoute { route } | Step::PrependRoute { route } => {
                let Some(target) = self.maybe_target_index()? else {
                    return Ok(());
                };
                let msg = self.copied_route(route, target)?;
                accept(self.nl.del_route(msg), NlError::is_not_found)
            }
            Step::Enslave => {
                let interface = self.interface_index()?;
                accept(self.nl.set_master(interface, None), NlError::is_not_found)
            }
            Step::Unenslave => {
                let (interface, bridge) = (self.interface_index()?, self.bridge_index()?);
                Ok(self.nl.set_master(interface, Some(bridge))?)
            }
            Step::RemoveRoute { route } => {
                let msg = self.source_route(route)?;
                let msg = self.saved_route(route)?.with_expiry(msg, elapsed);
                // A route that led its list goes back to its front; undone in reverse, a run
                // of them keeps its order. The others go back to the end, where they were
                // unless the plan warned.
                let mode = if self.journal.steps.contains(&Step::PrependRoute { route }) {
                    AddMode::Prepend
                } else {
                    AddMode::Append
                };
                accept(self.nl.add_route(msg, mode), is_exists)
            }
            Step::RemoveAddress { address } => {
                let addr = self.address(address)?;
                let source = self.journal.observed.source.index;
                let msg = addr.to_message(source, addr.label.clone(), elapsed);
                accept(self.nl.add_address(msg), is_exists)
            }
            Step::RepointBaseline => {
                let obs = &self.journal.observed;
                let to = self.journal.target();
                let moved: Vec<DefaultRoute> = obs
                    .moved_defaults
                    .iter()
                    .map(|r| r.repointed(&obs.source.name, to))
                    .collect();
                repoint_baseline(self.state, &moved, to, &obs.source.name)
            }
            // Nothing to undo: the kernel recreates dropped routes with the addresses, a check
            // changes nothing, and steps after the check are never rolled back.
            Step::DropKernelRoute { .. }
            | Step::Verify
            | Step::WriteRecord
            | Step::DeleteBridge
            | Step::RemoveRecord => Ok(()),
        }
    }

    fn address(&self, i: usize) -> Result<super::model::Addr> {
        self.journal
            .observed
            .addresses
            .get(i)
            .cloned()
            .context("address index out of range in the journal")
    }

    /// Route `i` as it is on the source. For IPv6 multipath only its next hops through the
    /// source: the other siblings are other routes and stay untouched.
    fn saved_route(&self, i: usize) -> Result<&SavedRoute> {
        self.journal
            .observed
            .routes
            .get(i)
            .context("route index out of range in the journal")
    }

    fn source_route(&self, i: usize) -> Result<RouteMessage> {
        let msg = self.saved_route(i)?.route()?;
        if msg.header.address_family == AddressFamily::Inet6 && is_multipath(&msg) {
            return Ok(hops_through(&msg, self.journal.observed.source.index));
        }
        Ok(msg)
    }

    fn copied_route(&self, i: usize, target: u32) -> Result<RouteMessage> {
        Ok(repoint(
            &self.source_route(i)?,
            self.journal.observed.source.index,
            target,
        ))
    }

    fn bridge_index(&mut self) -> Result<u32> {
        self.index_of(&self.journal.bridge.clone())
    }

    fn interface_index(&mut self) -> Result<u32> {
        self.index_of(&self.journal.interface.clone())
    }

    fn target_index(&mut self) -> Result<u32> {
        let name = self.journal.target().to_string();
        self.index_of(&name)
    }

    fn maybe_target_index(&mut self) -> Result<Option<u32>> {
        let name = self.journal.target().to_string();
        Ok(self.nl.link_by_name(&name)?.map(|l| l.header.index))
    }

    fn index_of(&mut self, name: &str) -> Result<u32> {
        match self.nl.link_by_name(name)? {
            Some(link) => Ok(link.header.index),
            None => bail!("link {name} does not exist"),
        }
    }

    /// The bridge's ifindex if it is a bridge whose only possible port is the uplink.
    fn fresh_bridge(&mut self) -> Result<Option<u32>> {
        let Some(bridge) = self.nl.link_by_name(&self.journal.bridge)? else {
            return Ok(None);
        };
        if !matches!(bridge.kind(), Some(InfoKind::Bridge)) {
            return Ok(None);
        }
        let index = bridge.header.index;
        let interface = self.nl.link_by_name(&self.journal.interface)?;
        let uplink = interface.map(|l| l.header.index);
        let ports = self
            .nl
            .links()?
            .iter()
            .filter(|l| l.master() == Some(index) && Some(l.header.index) != uplink)
            .count();
        Ok((ports == 0).then_some(index))
    }

    fn record(&self) -> Result<UplinkRecord> {
        let obs = &self.journal.observed;
        if self.journal.operation != Operation::Attach {
            bail!("only an attachment writes a record");
        }
        Ok(UplinkRecord {
            version: FORMAT_VERSION,
            interface: self.journal.interface.clone(),
            bridge: self.journal.bridge.clone(),
            bridge_created: self.journal.steps.contains(&Step::CreateBridge),
            bridge_was_up: obs.target.as_ref().is_some_and(|t| t.up),
            interface_index: obs.source.index,
            addresses: obs.addresses.clone(),
            routes: obs.routes.clone(),
            attached: crate::log::rfc3339_now(),
        })
    }
}

fn is_exists(err: &NlError) -> bool {
    err.is_exists()
}

/// `Ok` when the request succeeded or failed in a way `fine` accepts ("already so").
fn accept<T>(result: Result<T, NlError>, fine: impl Fn(&NlError) -> bool) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if fine(&err) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Points the baseline entries of the `moved` default routes from device `from` to `to`, so
/// the route guard expects them where they now are instead of "restoring" them on the old
/// device. Entries are matched by slot (family, table, device, metric), as the guard does.
fn repoint_baseline(state: &StateDir, moved: &[DefaultRoute], from: &str, to: &str) -> Result<()> {
    // By name: the journal's picture names devices, and a re-pointed entry drops its identity
    // (the route guard identifies `to` when it next sees the route).
    let slot_of = |r: &DefaultRoute| (r.family, r.table, r.metric);
    let slots: HashSet<_> = moved
        .iter()
        .filter(|r| r.devices().contains(&from))
        .map(slot_of)
        .collect();
    if slots.is_empty() {
        return Ok(());
    }
    let _lock = state.lock("baseline")?;
    let Some(mut baseline) = crate::host::baseline::read(state)? else {
        return Ok(());
    };
    let mut changed = false;
    for route in &mut baseline.routes {
        if route.devices().contains(&from) && slots.contains(&slot_of(route)) {
            let moved = route.repointed(from, to);
            changed |= moved != *route;
            *route = moved;
        }
    }
    if changed {
        crate::host::baseline::write(state, &baseline)?;
    }
    Ok(())
}
