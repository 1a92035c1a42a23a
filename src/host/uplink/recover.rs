//! Crash recovery: finish or roll back a move a killed process left in the journal. Called at
//! the start of every verb that touches the host (ADD, CHECK, DEL), by `uplink release`, and
//! again inside attach under the lock.
//!
//! The rule (see `plan` for why): an attempt that recorded its enslave (or release) step is
//! finished, then verified, and rolled back if the check fails; an earlier one is rolled back;
//! an interrupted rollback is continued. The one step that may have happened without being
//! recorded is redone or undone accepting "already so". A journal from another boot or another
//! network namespace describes links that are gone: it is set aside for the operator, not
//! replayed.

use std::path::PathBuf;

use anyhow::{anyhow, Context};

use super::apply::Engine;
use super::journal::{Journal, Phase};
use super::plan::Operation;
use super::UplinkError;
use crate::netlink::Netlink;
use crate::state::StateDir;

/// What recovery found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    /// The interrupted attach or release was completed and verified.
    Finished { what: String },
    /// The interrupted attempt was undone; the host is as it was before it.
    RolledBack { what: String },
    /// The journal described another boot or namespace and was kept aside at `path`.
    SetAside { why: String, path: PathBuf },
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovered::Finished { what } => write!(f, "finished the interrupted {what}"),
            Recovered::RolledBack { what } => write!(f, "rolled back the interrupted {what}"),
            Recovered::SetAside { why, path } => write!(
                f,
                "an uplink journal was set aside at {} because {why}",
                path.display()
            ),
        }
    }
}

/// Finishes or rolls back an interrupted move, if there is one.
pub fn recover(state: &StateDir) -> Result<Option<Recovered>, UplinkError> {
    state.adopt_old_journal().map_err(|err| {
        UplinkError::Io(err.context(
            "an uplink journal left in stateDir by an older hostguard cannot be moved to runDir",
        ))
    })?;
    if !state.journal_path().exists() {
        return Ok(None);
    }
    let _lock = state.lock("uplink")?;
    let mut nl = Netlink::new().context("open netlink socket")?;
    recover_locked(state, &mut nl)
}

/// `recover` for a caller that holds the `uplink` lock.
pub(super) fn recover_locked(
    state: &StateDir,
    nl: &mut Netlink,
) -> Result<Option<Recovered>, UplinkError> {
    let journal = Journal::load(state).map_err(|err| {
        UplinkError::Io(err.context(format!(
            "an interrupted uplink move cannot be read; inspect {} (it names the interface, the \
             bridge and the steps done), restore the host by hand, then delete it",
            state.journal_path().display()
        )))
    })?;
    let Some(journal) = journal else {
        return Ok(None);
    };
    if let Some(why) = journal.foreign_host() {
        let path = journal.set_aside(state, &why)?;
        return Ok(Some(Recovered::SetAside { why, path }));
    }
    let what = format!(
        "{} of {} {} {} (started {})",
        match journal.operation {
            Operation::Attach => "attachment",
            Operation::Release => "release",
        },
        journal.interface,
        match journal.operation {
            Operation::Attach => "to",
            Operation::Release => "from",
        },
        journal.bridge,
        journal.started
    );
    let phase = journal.phase;
    let done = journal.done;
    let past_no_return = done >= journal.point_of_no_return;
    let failure = journal.failure.clone().unwrap_or_default();
    let in_flight = done.min(journal.steps.len().saturating_sub(1));
    let mut engine = Engine::new(nl, state, journal);
    let finish = match phase {
        Phase::RollingBack => engine.continue_rollback(failure.clone(), "interrupted".into()),
        Phase::Applying if past_no_return => engine.forward(true),
        Phase::Applying => {
            let cause = anyhow!("the process was killed during this step or after it");
            let applied = (done + 1).min(engine.journal.steps.len());
            engine.rollback(applied, in_flight, cause)
        }
    };
    match finish {
        Ok(()) => Ok(Some(Recovered::Finished { what })),
        Err(UplinkError::RolledBack { .. }) => Ok(Some(Recovered::RolledBack { what })),
        Err(other) => Err(other),
    }
}
