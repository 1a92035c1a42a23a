//! CHECK: the host guarantees still hold (baseline default routes, guarded rules, uplink,
//! readiness). It reports; it never repairs.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::host::baseline;
use crate::log::Logger;

pub fn check(req: &Request, _log: &mut Logger) -> CniResult<()> {
    if req.conf.prev_result.is_none() {
        return Err(CniError::invalid_config(
            "CHECK needs prevResult: hostguard is a chained plugin",
        ));
    }
    let state = super::open_state(&req.conf.plugin.state_dir)?;
    let missing = baseline::missing_routes(&state).map_err(|err| {
        CniError::new(
            code::IO_FAILURE,
            "the host baseline cannot be compared with the host",
            format!(
                "{err:#}; inspect it, then run `hostguard baseline --update` to record it anew"
            ),
        )
    })?;
    if !missing.is_empty() {
        let routes: Vec<String> = missing.iter().map(ToString::to_string).collect();
        return Err(CniError::new(
            code::DEFAULT_ROUTE_MISSING,
            format!("baseline default route missing: {}", routes.join("; ")),
            "the next ADD restores it when routes.restore is true and its device is up; \
             otherwise re-add it, or run `hostguard baseline --update` if it was removed on purpose",
        ));
    }
    super::uplink::check(req)
}
