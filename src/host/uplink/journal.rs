//! The journal, `stateDir/uplink-journal.json`: the observed host, the plan, and how far the
//! plan got. Written (atomically, fsynced) before the first change and after every step, so a
//! process killed at any instant leaves enough behind for the next one to finish or undo the
//! move. Removed when the move is complete or fully rolled back.
//!
//! Format (JSON, camelCase): `version`, `operation` ("attach" | "release"), `interface`,
//! `bridge`, `bootId` and `netns` (whose host it describes), `started`, `observed` (see
//! `Observed`), `steps` (each `{"op": ...}`), `pointOfNoReturn`, `verifyAt`, `phase`
//! ("applying" | "rollingBack"), `done`, and `failure` once a rollback started.
//!
//! `done` counts steps: while applying, `steps[..done]` are complete and `steps[done]` may or
//! may not have happened (a kill between the change and the record); while rolling back,
//! `steps[..done]` are still in place, and the undo of `steps[done]` may have happened. Every
//! undo, and the redo of that one uncertain step, accept "already so" from the kernel.

use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::observe::Observed;
use super::plan::{Operation, Plan, Step};
use crate::state::{StateDir, FORMAT_VERSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Applying,
    RollingBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub version: u32,
    pub operation: Operation,
    pub interface: String,
    pub bridge: String,
    /// `/proc/sys/kernel/random/boot_id` when written: a journal from before a reboot describes
    /// links and routes that no longer exist.
    pub boot_id: String,
    /// Inode of the network namespace it describes.
    pub netns: u64,
    pub started: String,
    pub observed: Observed,
    pub steps: Vec<Step>,
    pub point_of_no_return: usize,
    pub verify_at: usize,
    pub phase: Phase,
    pub done: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Journal {
    pub fn new(
        operation: Operation,
        interface: &str,
        bridge: &str,
        observed: Observed,
        plan: &Plan,
    ) -> Journal {
        let host = HostIdentity::current();
        Journal {
            version: FORMAT_VERSION,
            operation,
            interface: interface.to_string(),
            bridge: bridge.to_string(),
            boot_id: host.boot_id,
            netns: host.netns,
            started: crate::log::rfc3339_now(),
            observed,
            steps: plan.steps.clone(),
            point_of_no_return: plan.point_of_no_return,
            verify_at: plan.verify_at,
            phase: Phase::Applying,
            done: 0,
            failure: None,
        }
    }

    /// The link the addresses and routes move to, by name.
    pub fn target(&self) -> &str {
        match self.operation {
            Operation::Attach => &self.bridge,
            Operation::Release => &self.interface,
        }
    }

    pub fn load(state: &StateDir) -> Result<Option<Journal>> {
        let path = state.journal_path();
        let journal: Option<Journal> = state.read_json(&path)?;
        if let Some(j) = &journal {
            if j.version != FORMAT_VERSION {
                anyhow::bail!(
                    "{} has format version {}, this hostguard reads {FORMAT_VERSION}",
                    path.display(),
                    j.version
                );
            }
            if j.done > j.steps.len()
                || j.verify_at >= j.steps.len()
                || j.point_of_no_return > j.verify_at
            {
                anyhow::bail!(
                    "{} is inconsistent: step counts out of range",
                    path.display()
                );
            }
        }
        Ok(journal)
    }

    /// Without fsync: the journal guards against a killed process, whose writes the page cache
    /// keeps. A power cut resets the addresses and routes the journal describes, and a journal
    /// from another boot is set aside, never replayed; syncing each of an attach's ~28 steps cost
    /// about 10 ms apiece on a node's disk for no protection.
    pub fn save(&self, state: &StateDir) -> Result<()> {
        state
            .write_json_unsynced(&state.journal_path(), self)
            .context("write the uplink journal")
    }

    pub fn remove(state: &StateDir) -> Result<()> {
        crate::atomic::remove_durable(&state.journal_path()).context("remove the uplink journal")
    }

    /// Keeps a journal that cannot be acted on for the operator, under a name no later run
    /// reads as a journal.
    pub fn set_aside(&self, state: &StateDir, why: &str) -> Result<std::path::PathBuf> {
        let mut kept = self.clone();
        kept.failure = Some(match &self.failure {
            Some(before) => format!("{before}; set aside: {why}"),
            None => format!("set aside: {why}"),
        });
        let path = state.root().join("uplink-journal.set-aside.json");
        state.write_json(&path, &kept)?;
        Journal::remove(state)?;
        Ok(path)
    }

    /// Why this journal does not describe the host this process runs on, if it does not.
    pub fn foreign_host(&self) -> Option<String> {
        let host = HostIdentity::current();
        if !self.boot_id.is_empty() && !host.boot_id.is_empty() && self.boot_id != host.boot_id {
            return Some("it was written before the last reboot".into());
        }
        if self.netns != 0 && host.netns != 0 && self.netns != host.netns {
            return Some(format!(
                "it describes network namespace {} and this is {}",
                self.netns, host.netns
            ));
        }
        None
    }
}

struct HostIdentity {
    boot_id: String,
    netns: u64,
}

impl HostIdentity {
    fn current() -> HostIdentity {
        HostIdentity {
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            netns: std::fs::metadata("/proc/thread-self/ns/net")
                .map(|m| m.ino())
                .unwrap_or(0),
        }
    }
}

/// Test-only fault injection, read from the environment. Production never sets these; unset
/// (or unparsable) means no effect.
///
/// - `HOSTGUARD_TEST_CRASH_BEFORE_STEP=k`: abort when the journal says k steps are done and
///   step k has not started.
/// - `HOSTGUARD_TEST_CRASH_AFTER_STEP=k`: abort right after step k changed the host, before the
///   journal records it (the uncertain case recovery must handle).
/// - `HOSTGUARD_TEST_FAIL_AT_STEP=k`: make step k fail without changing anything.
/// - `HOSTGUARD_TEST_CRASH_AFTER_UNDO=j`: abort right after the j-th undo of a rollback changed
///   the host, before the journal records it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    pub crash_before: Option<usize>,
    pub crash_after: Option<usize>,
    pub fail_at: Option<usize>,
    pub crash_after_undo: Option<usize>,
}

impl Faults {
    /// The hooks exist only in builds with the `fault-injection` feature (the test suite's), so a
    /// node's binary cannot be made to crash or fail a step through its environment.
    #[cfg(not(feature = "fault-injection"))]
    pub fn from_env() -> Faults {
        Faults::default()
    }

    #[cfg(feature = "fault-injection")]
    pub fn from_env() -> Faults {
        let read = |key: &str| std::env::var(key).ok().and_then(|v| v.trim().parse().ok());
        Faults {
            crash_before: read("HOSTGUARD_TEST_CRASH_BEFORE_STEP"),
            crash_after: read("HOSTGUARD_TEST_CRASH_AFTER_STEP"),
            fail_at: read("HOSTGUARD_TEST_FAIL_AT_STEP"),
            crash_after_undo: read("HOSTGUARD_TEST_CRASH_AFTER_UNDO"),
        }
    }

    /// Kills the process with SIGKILL when `point` matches: no unwinding, no destructors, no
    /// flushing, exactly what an OOM kill or a node agent's SIGKILL does mid-move.
    pub fn crash_if(point: Option<usize>, at: usize) {
        if point == Some(at) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            std::process::abort();
        }
    }
}
