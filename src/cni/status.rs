//! STATUS: can hostguard serve an ADD right now? Checked once, without waiting.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::host::route_guard::GuardOptions;
use crate::host::{baseline, refusal};
use crate::log::Logger;

pub fn status(req: &Request, _log: &mut Logger) -> CniResult<()> {
    let plugin = &req.conf.plugin;
    let state = super::open_state(plugin)
        .map_err(|err| CniError::new(code::NOT_AVAILABLE, err.msg, err.details))?;
    crate::host::baseline::read(&state).map_err(|err| {
        CniError::new(
            code::NOT_AVAILABLE,
            "the host baseline cannot be read",
            format!(
                "{err:#}; inspect it, then run `hostguard baseline --update` to record it anew"
            ),
        )
    })?;
    // A missing route or rule that the next guard run puts back is no reason to stop scheduling
    // pods; one that nothing will put back (its device is down, restore is off) is. The question
    // is "can it be restored at all", so a DHCP or RA route counts as past its grace: its own
    // daemon or the guard daemon puts it back.
    let refused = refusal::check(plugin.refuse, &plugin.network_manager);
    let options = GuardOptions {
        grace_elapsed: &|_| true,
        ..baseline::route_options(plugin, &refused)
    };
    let lost = baseline::missing(&state, &options, &plugin.rules.selectors).map_err(|err| {
        CniError::new(
            code::NOT_AVAILABLE,
            "the host baseline cannot be compared with the host",
            format!("{err:#}"),
        )
    })?;
    if !lost.unrestorable.is_empty() {
        let routes: Vec<String> = lost
            .unrestorable
            .iter()
            .map(|gone| format!("{}: {}", gone.route, gone.reason))
            .collect();
        return Err(CniError::new(
            code::NOT_AVAILABLE,
            format!(
                "baseline default route missing and not restorable: {}",
                routes.join("; ")
            ),
            "bring its device back up (hostguard restores the route then), or run `hostguard \
             baseline --update` if it was removed on purpose",
        ));
    }
    if !lost.rules.is_empty() && !plugin.rules.restore {
        let rules: Vec<&str> = lost.rules.iter().map(|r| r.rule.as_str()).collect();
        return Err(CniError::new(
            code::NOT_AVAILABLE,
            format!(
                "guarded policy rule missing and rules.restore is false: {}",
                rules.join("; ")
            ),
            "re-add the rule, or set rules.restore to true; `hostguard doctor` names the \
             networkd or NetworkManager setting that deletes foreign rules",
        ));
    }
    // Looked at once: STATUS must answer at once, and the runtime asks again on its schedule.
    super::upstream_ready_now(
        req,
        code::NOT_AVAILABLE,
        code::NOT_AVAILABLE,
        "ADD would wait for this waitFor interface of the conflist; the primary CNI has not set \
         it up yet",
    )
}
