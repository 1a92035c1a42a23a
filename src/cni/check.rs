//! CHECK: the host guarantees still hold (baseline default routes, guarded rules, uplink,
//! readiness). It reports; it never repairs.
//!
//! An unmet `waitFor` condition is code 11, not 50: the container itself is fine, and the
//! condition (the primary CNI's interface going away, e.g. while its agent restarts) is the
//! transient kind the spec gives "try again later" for, so the runtime should check again rather
//! than treat the container as broken. 50 is STATUS's answer for the plugin as a whole.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::host::{baseline, refusal};
use crate::log::Logger;

pub fn check(req: &Request, _log: &mut Logger) -> CniResult<()> {
    if req.conf.prev_result.is_none() {
        return Err(CniError::invalid_config(
            "CHECK needs prevResult: hostguard is a chained plugin",
        ));
    }
    let state = super::open_state(&req.conf.plugin)?;
    let plugin = &req.conf.plugin;
    let refused = refusal::check(plugin.refuse, &plugin.network_manager);
    let options = baseline::route_options(plugin, &refused);
    let missing = baseline::missing(&state, &options, &plugin.rules.selectors).map_err(|err| {
        CniError::new(
            code::IO_FAILURE,
            "the host baseline cannot be compared with the host",
            format!(
                "{err:#}; inspect it, then run `hostguard baseline --update` to record it anew"
            ),
        )
    })?;
    if missing.routes_missing() {
        let routes: Vec<String> = missing
            .restorable
            .iter()
            .map(|route| format!("{route} (nothing occupies its slot; the next ADD restores it)"))
            .chain(
                missing
                    .unrestorable
                    .iter()
                    .map(|gone| format!("{} ({})", gone.route, gone.reason)),
            )
            .collect();
        return Err(CniError::new(
            code::DEFAULT_ROUTE_MISSING,
            format!("baseline default route missing: {}", routes.join("; ")),
            "the next ADD restores it when routes.restore is true and its device is up (a DHCP or \
             RA route only the guard daemon restores, after its grace period); otherwise re-add \
             it, or run `hostguard baseline --update` if it was removed on purpose",
        ));
    }
    if !missing.rules.is_empty() {
        let rules: Vec<&str> = missing.rules.iter().map(|r| r.rule.as_str()).collect();
        return Err(CniError::new(
            code::RULE_MISSING,
            format!("guarded policy rule missing: {}", rules.join("; ")),
            "the next ADD restores it when rules.restore is true; `hostguard doctor` names the \
             networkd or NetworkManager setting that deletes foreign rules",
        ));
    }
    super::uplink::check(req)?;
    super::upstream_ready_now(
        req,
        code::TRY_AGAIN_LATER,
        code::IO_FAILURE,
        "a waitFor interface of the conflist is not ready; the primary CNI's agent may be \
         restarting. Check that agent on this node",
    )
}
