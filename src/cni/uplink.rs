//! The uplink attachment in CNI terms: which verb does what, and which contract code each
//! outcome of `crate::host::uplink` becomes.
//!
//! - ADD attaches (`uplink` configured): refused link → 101 / 102, nothing changed; not
//!   attempted or rolled back → 104 (the host is as it was before the attempt); a rollback that
//!   could not undo everything, or bookkeeping that failed after a verified move → 5, because
//!   104 promises a host in its prior state and that promise would be false.
//! - CHECK reports an attachment that is no longer in place (the interface is not a port of the
//!   bridge, or one of them is gone) as 104 too: it is the uplink's code, and the host is in the
//!   "not attached" state that 104 describes; the message says which it is and the details say
//!   that the next ADD attaches again.
//! - ADD, CHECK and DEL first finish or roll back a move a killed process left behind
//!   (`recover_interrupted`, called once from the dispatcher). DEL only logs a failure there:
//!   DEL must succeed.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::host::refusal;
use crate::host::uplink::{self, Attached, RefusalKind, UplinkError};
use crate::log::Logger;
use crate::state::StateDir;

/// Finishes or rolls back an interrupted uplink move before ADD or CHECK touches the host.
pub(super) fn recover_interrupted(req: &Request, log: &mut Logger) -> CniResult<()> {
    let state = match super::open_state(&req.conf.plugin) {
        Ok(state) => state,
        // The verb itself reports an unusable state directory.
        Err(_) => return Ok(()),
    };
    match uplink::recover(&state) {
        Ok(None) => Ok(()),
        Ok(Some(recovered)) => {
            log.warn(&format!("uplink recovery: {recovered}"));
            Ok(())
        }
        Err(err) => Err(CniError::new(
            code::IO_FAILURE,
            format!("an interrupted uplink move could not be completed or undone: {err}"),
            format!(
                "hostguard retries on every ADD, CHECK and DEL; inspect {} and the host's \
                 addresses and routes",
                state.journal_path().display()
            ),
        )),
    }
}

/// The same recovery for DEL, which only logs a failure: DEL must succeed.
pub(super) fn recover_for_del(state: &StateDir, log: &mut Logger) {
    match uplink::recover(state) {
        Ok(None) => {}
        Ok(Some(recovered)) => log.warn(&format!("uplink recovery: {recovered}")),
        Err(err) => log.warn(&format!("uplink recovery failed, DEL goes on: {err}")),
    }
}

/// ADD: attach `uplink.interface` to `uplink.bridge` unless it already is a port of it.
pub(super) fn attach(req: &Request, state: &StateDir, log: &mut Logger) -> CniResult<()> {
    let Some(cfg) = &req.conf.plugin.uplink else {
        return Ok(());
    };
    let plugin = &req.conf.plugin;
    let refusal = refusal::check(plugin.refuse, &plugin.network_manager);
    match uplink::attach(state, &cfg.interface, &cfg.bridge, &refusal) {
        Ok(Attached::Already) => Ok(()),
        Ok(Attached::Now {
            bridge_created,
            addresses,
            routes,
            notes,
            left_alone,
        }) => {
            for note in &notes {
                log.warn(&format!("uplink: {note}"));
            }
            for note in &left_alone {
                log.info(&format!("uplink: {note}"));
            }
            log.info(&format!(
                "uplink {} attached to {}{}: {addresses} addresses and {routes} routes moved",
                cfg.interface,
                cfg.bridge,
                if bridge_created {
                    " (bridge created)"
                } else {
                    ""
                }
            ));
            Ok(())
        }
        Err(err) => Err(attach_error(&cfg.interface, &cfg.bridge, err)),
    }
}

/// CHECK: the attachment is still in place.
pub(super) fn check(req: &Request) -> CniResult<()> {
    let Some(cfg) = &req.conf.plugin.uplink else {
        return Ok(());
    };
    match uplink::status(&cfg.interface, &cfg.bridge) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(CniError::new(
            code::UPLINK_ROLLED_BACK,
            format!("uplink attachment not in place: {why}"),
            format!(
                "the next ADD attaches {} to {} again; if it was released on purpose, remove \
                 `uplink` from the conflist",
                cfg.interface, cfg.bridge
            ),
        )),
        Err(err) => Err(CniError::io("cannot read the uplink's links", &err)),
    }
}

fn attach_error(interface: &str, bridge: &str, err: UplinkError) -> CniError {
    let msg = format!("uplink attachment of {interface} to {bridge}: {err}");
    match err {
        UplinkError::Refused { refusal, .. } => CniError::new(
            match refusal.kind {
                RefusalKind::Team => code::REFUSED_TEAM,
                RefusalKind::NetworkManager => code::REFUSED_NETWORK_MANAGER,
            },
            msg,
            "nothing was changed; attach another interface, or take this one out of team / \
             NetworkManager control, or remove `uplink` from the conflist",
        ),
        UplinkError::NotAttempted(_) => CniError::new(
            code::UPLINK_ROLLED_BACK,
            msg,
            "nothing was changed; fix what the message names, the next ADD tries again",
        ),
        UplinkError::RolledBack { .. } => CniError::new(
            code::UPLINK_ROLLED_BACK,
            msg,
            "the host's addresses, routes and links are as they were before the attempt; fix \
             what the message names, the next ADD tries again",
        ),
        UplinkError::RollbackIncomplete { .. } => CniError::new(
            code::IO_FAILURE,
            msg,
            "the host is NOT as it was: restore what the message lists by hand",
        ),
        UplinkError::CleanupFailed { .. } | UplinkError::Io(_) => CniError::new(
            code::IO_FAILURE,
            msg,
            "check that stateDir is writable; the next ADD completes the bookkeeping",
        ),
    }
}
