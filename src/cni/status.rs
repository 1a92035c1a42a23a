//! STATUS: can hostguard serve an ADD right now? Checked once, without waiting.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::host::wait::{self, WaitError};
use crate::log::Logger;
use crate::netlink::Netlink;

pub fn status(req: &Request, _log: &mut Logger) -> CniResult<()> {
    let state = super::open_state(&req.conf.plugin.state_dir)
        .map_err(|err| CniError::new(code::NOT_AVAILABLE, err.msg, err.details))?;
    state.read_baseline().map_err(|err| {
        CniError::new(
            code::NOT_AVAILABLE,
            "the host baseline cannot be read",
            format!(
                "{err:#}; inspect it, then run `hostguard baseline --update` to record it anew"
            ),
        )
    })?;
    upstream_ready(req)
}

/// The `waitFor` conditions, looked at once: STATUS must answer at once, and the runtime asks
/// again on its own schedule.
fn upstream_ready(req: &Request) -> CniResult<()> {
    let conditions = &req.conf.plugin.wait_for.interfaces;
    if conditions.is_empty() {
        return Ok(());
    }
    let outcome = Netlink::new()
        .map_err(WaitError::from)
        .and_then(|mut nl| wait::check_ready(&mut nl, conditions));
    match outcome {
        Ok(()) => Ok(()),
        Err(WaitError::Unmet(unmet)) => Err(CniError::new(
            code::NOT_AVAILABLE,
            unmet.to_string(),
            "ADD would wait for this waitFor interface of the conflist; the primary CNI has not \
             set it up yet",
        )),
        Err(err @ WaitError::Netlink(_)) => Err(CniError::new(
            code::NOT_AVAILABLE,
            "cannot read the waitFor interfaces",
            err.to_string(),
        )),
    }
}
