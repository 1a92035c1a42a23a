//! STATUS: can hostguard serve an ADD right now? Checked once, without waiting.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::log::Logger;

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
    // Looked at once: STATUS must answer at once, and the runtime asks again on its schedule.
    super::upstream_ready_now(
        req,
        code::NOT_AVAILABLE,
        code::NOT_AVAILABLE,
        "ADD would wait for this waitFor interface of the conflist; the primary CNI has not set \
         it up yet",
    )
}
