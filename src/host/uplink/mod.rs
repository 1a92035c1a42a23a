//! The uplink attachment: move an interface (`uplink.interface`) into a bridge
//! (`uplink.bridge`) with every address and every route that uses it, without losing any
//! default route of the host, and so that a crash at any instant is finished or undone by the
//! next hostguard invocation.
//!
//! Incident 1 (Antrea) is the list of things this must not do: it captured only the main table,
//! skipped multipath routes, re-added routes with replace (which overwrote a twin default route
//! on another device), matched "file exists" in error text, never checked the result, and left
//! the host half-moved after a kill. Here: routes of every table and both families are captured
//! (multipath included, next hops re-pointed), routes are added with append only, errors are
//! decided by errno, the result is compared with the observed picture, and a journal makes the
//! move all-or-nothing across crashes.
//!
//! The flow is observe (`observe`) → plan as data (`plan`, whose module comment explains the
//! order and the point of no return) → journal (`journal`) → apply, roll back on any failure
//! (`apply`) → verify (`verify`) → record (`record`, for `release`). Crash recovery is
//! `recover`; `release` is the same engine run the other way.

mod apply;
mod journal;
mod model;
mod observe;
mod plan;
mod record;
mod recover;
mod release;
mod verify;

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;

use crate::host::links::LinkTable;
use crate::netlink::{InfoKind, LinkExt, Netlink};
use crate::state::StateDir;
use apply::Engine;
use journal::Journal;
use plan::Operation;

pub use record::check_link_name;
pub use recover::{recover, Recovered};
pub use release::{release, Released};

use crate::host::refusal::RefusalCheck;
pub use crate::host::refusal::{Refusal, RefusalKind};

/// What an attach did.
#[derive(Debug, PartialEq, Eq)]
pub enum Attached {
    /// The interface already was a port of the bridge; nothing changed.
    Already,
    Now {
        bridge_created: bool,
        addresses: usize,
        routes: usize,
        /// Warnings for the operator (a same-key default route order the move cannot keep).
        notes: Vec<String>,
        /// What stayed on the uplink and why (kernel link-locals, privacy addresses).
        left_alone: Vec<String>,
    },
}

/// Why an attach or release did not happen, or did not happen cleanly.
#[derive(Debug)]
pub enum UplinkError {
    /// A link is refused (team / NetworkManager); nothing changed.
    Refused { link: String, refusal: Refusal },
    /// The move was not started, for the reason given; nothing changed.
    NotAttempted(String),
    /// A step failed and the host was rolled back to its state before the attempt; the journal
    /// is gone.
    RolledBack { step: String, cause: String },
    /// A step failed and the rollback could not undo everything; the journal was set aside at
    /// `journal`.
    RollbackIncomplete {
        step: String,
        cause: String,
        leftovers: Vec<String>,
        journal: PathBuf,
    },
    /// The host is in its final state, but bookkeeping after the check failed; the journal
    /// stays and the next invocation completes it.
    CleanupFailed { step: String, cause: String },
    /// State or netlink trouble before anything changed.
    Io(anyhow::Error),
}

impl fmt::Display for UplinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UplinkError::Refused { link, refusal } => {
                write!(f, "hostguard does not touch {link}: {}", refusal.evidence)
            }
            UplinkError::NotAttempted(why) => write!(f, "{why}; nothing was changed"),
            UplinkError::RolledBack { step, cause } => {
                write!(f, "step {step} failed: {cause}; the host was rolled back")
            }
            UplinkError::RollbackIncomplete {
                step,
                cause,
                leftovers,
                journal,
            } => write!(
                f,
                "step {step} failed: {cause}; the rollback could not undo everything: {}; the \
                 journal is kept at {}",
                leftovers.join("; "),
                journal.display()
            ),
            UplinkError::CleanupFailed { step, cause } => write!(
                f,
                "the move is complete and verified, but step {step} failed: {cause}; the next \
                 hostguard invocation completes it"
            ),
            UplinkError::Io(err) => write!(f, "{err:#}"),
        }
    }
}

impl std::error::Error for UplinkError {}

impl From<anyhow::Error> for UplinkError {
    fn from(err: anyhow::Error) -> Self {
        UplinkError::Io(err)
    }
}

/// Attaches `interface` to `bridge` unless it already is a port of it. Runs under the `uplink`
/// lock, so concurrent ADDs attach once: the second finds the port in place.
pub fn attach(
    state: &StateDir,
    interface: &str,
    bridge: &str,
    refusal: RefusalCheck,
) -> Result<Attached, UplinkError> {
    check_names(interface, bridge)?;
    let _lock = state.lock("uplink")?;
    let mut nl = Netlink::new().context("open netlink socket")?;
    // A journal left by a process that died after this one's dispatch-time recovery.
    recover::recover_locked(state, &mut nl)?;

    let links = LinkTable::load(&mut nl)?;
    let Some(uplink) = links.get(interface) else {
        return Err(UplinkError::NotAttempted(format!(
            "uplink.interface {interface} does not exist"
        )));
    };
    let uplink_master = uplink.master();
    if let Some(existing) = links.get(bridge) {
        let kind = existing.kind();
        if !matches!(kind, Some(InfoKind::Bridge)) {
            return Err(UplinkError::NotAttempted(format!(
                "uplink.bridge {bridge} exists but is a {} link, not a bridge; choose another \
                 name or remove it",
                kind.map_or_else(|| "plain".to_owned(), ToString::to_string)
            )));
        }
        if uplink_master == Some(existing.header.index) {
            return Ok(Attached::Already);
        }
    }
    if let Some(master) = uplink_master {
        let name = links
            .name_of(master)
            .unwrap_or_else(|| format!("ifindex {master}"));
        return Err(UplinkError::NotAttempted(format!(
            "uplink.interface {interface} is already a port of {name}; release it from {name} \
             first"
        )));
    }
    for link in [interface, bridge] {
        if links.get(link).is_none() {
            continue;
        }
        if let Some(refusal) = refusal(&links, link) {
            return Err(UplinkError::Refused {
                link: link.to_string(),
                refusal,
            });
        }
    }

    let cannot_plan = |err: anyhow::Error| {
        UplinkError::NotAttempted(format!(
            "cannot plan moving {interface} into {bridge}: {err:#}"
        ))
    };
    let observed =
        observe::observe(&mut nl, &links, interface, bridge, None).map_err(cannot_plan)?;
    let plan = plan::attach(&observed, bridge).map_err(cannot_plan)?;
    let (addresses, routes) = (observed.addresses.len(), observed.routes.len());
    let left_alone = observed.left_alone.clone();
    let journal = Journal::new(Operation::Attach, interface, bridge, observed, &plan);
    journal
        .save(state)
        .context("the journal must be written before the host is changed")?;
    let bridge_created = journal.steps.contains(&plan::Step::CreateBridge);
    let mut engine = Engine::new(&mut nl, state, journal);
    let finish = engine.forward(false);
    let mut notes = plan.notes;
    notes.append(&mut engine.notes);
    finish?;
    Ok(Attached::Now {
        bridge_created,
        addresses,
        routes,
        notes,
        left_alone,
    })
}

/// Whether `interface` is a port of `bridge` right now (for CHECK). `Err` names what is wrong.
pub fn status(interface: &str, bridge: &str) -> anyhow::Result<Result<(), String>> {
    let mut nl = Netlink::new().context("open netlink socket")?;
    let Some(uplink) = nl.link_by_name(interface)? else {
        return Ok(Err(format!("uplink.interface {interface} does not exist")));
    };
    let Some(bridge_link) = nl.link_by_name(bridge)? else {
        return Ok(Err(format!(
            "{interface} is not attached: bridge {bridge} does not exist"
        )));
    };
    if uplink.master() != Some(bridge_link.header.index) {
        return Ok(Err(format!("{interface} is not a port of {bridge}")));
    }
    Ok(Ok(()))
}

fn check_names(interface: &str, bridge: &str) -> Result<(), UplinkError> {
    for name in [interface, bridge] {
        check_link_name(name).map_err(|e| UplinkError::NotAttempted(format!("{e:#}")))?;
    }
    if interface == bridge {
        return Err(UplinkError::NotAttempted(format!(
            "the uplink and the bridge are both {interface}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{address_message, AddressExt};
    use nix::sched::{unshare, CloneFlags};

    fn scratch_state(tag: &str) -> (std::path::PathBuf, StateDir) {
        let dir = std::env::temp_dir().join(format!("hg-uplink-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir, &dir.join("run")).unwrap();
        (dir, state)
    }

    fn refuse(
        name: &'static str,
        kind: RefusalKind,
    ) -> impl Fn(&LinkTable, &str) -> Option<Refusal> {
        move |_: &LinkTable, link: &str| {
            (link == name).then(|| Refusal {
                kind,
                evidence: format!("{link} is classified {kind:?}"),
            })
        }
    }

    #[test]
    fn refused_links_are_left_exactly_as_they_were() {
        // This test's own network namespace, on its own thread.
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        let mut nl = Netlink::new().unwrap();
        let eth1 = nl.create_veth("eth1", "peer1").unwrap();
        nl.set_up(eth1, true).unwrap();
        nl.add_address(address_message(eth1, "10.0.0.2/24".parse().unwrap()))
            .unwrap();
        let (dir, state) = scratch_state("refuse");
        let addresses = |nl: &mut Netlink| -> Vec<String> {
            nl.addresses(None, Some(eth1))
                .unwrap()
                .iter()
                .filter_map(|a| a.network())
                .map(|n| n.to_string())
                .collect()
        };
        let before = addresses(&mut nl);

        let err = attach(&state, "eth1", "br-sec", &refuse("eth1", RefusalKind::Team)).unwrap_err();
        match err {
            UplinkError::Refused { link, refusal } => {
                assert_eq!(link, "eth1");
                assert_eq!(refusal.kind, RefusalKind::Team);
            }
            other => panic!("{other}"),
        }
        assert!(nl.link_by_name("br-sec").unwrap().is_none());
        assert_eq!(addresses(&mut nl), before);
        assert!(!state.journal_path().exists());

        // An existing bridge is asked about too.
        nl.create_bridge("br-sec").unwrap();
        let refuse_bridge = refuse("br-sec", RefusalKind::NetworkManager);
        match attach(&state, "eth1", "br-sec", &refuse_bridge).unwrap_err() {
            UplinkError::Refused { link, refusal } => {
                assert_eq!(link, "br-sec");
                assert_eq!(refusal.kind, RefusalKind::NetworkManager);
            }
            other => panic!("{other}"),
        }
        assert_eq!(addresses(&mut nl), before);

        let no_refusal = |_: &LinkTable, _: &str| None;
        let attached = attach(&state, "eth1", "br-sec", &no_refusal).unwrap();
        assert!(
            matches!(attached, Attached::Now { addresses: 1, .. }),
            "{attached:?}"
        );
        assert_eq!(
            attach(&state, "eth1", "br-sec", &refuse("eth1", RefusalKind::Team)).unwrap(),
            Attached::Already,
            "an attachment in place is not re-examined"
        );
        assert!(addresses(&mut nl).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
