//! CHECK: the host guarantees still hold (baseline default routes, guarded rules, uplink,
//! readiness). It reports; it never repairs.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::log::Logger;

pub fn check(req: &Request, _log: &mut Logger) -> CniResult<()> {
    if req.conf.prev_result.is_none() {
        return Err(CniError::invalid_config(
            "CHECK needs prevResult: hostguard is a chained plugin",
        ));
    }
    let state = super::open_state(&req.conf.plugin.state_dir)?;
    state.read_baseline().map_err(|err| {
        CniError::new(
            code::IO_FAILURE,
            "the host baseline cannot be read",
            format!(
                "{err:#}; inspect it, then run `hostguard baseline --update` to record it anew"
            ),
        )
    })?;
    Ok(())
}
