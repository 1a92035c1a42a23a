//! DEL: best effort and idempotent. It succeeds on a second DEL, without prevResult, with an
//! empty or vanished CNI_NETNS, and with no state; only a config it cannot parse fails it.

use super::error::CniResult;
use super::Request;
use crate::log::Logger;

pub fn del(req: &Request, log: &mut Logger) -> CniResult<()> {
    let (Some(id), Some(ifname)) = (&req.env.container_id, &req.env.ifname) else {
        return Ok(());
    };
    let state = match super::open_state(&req.conf.plugin.state_dir) {
        Ok(state) => state,
        Err(err) => {
            log.warn(&format!("DEL leaves state alone: {err}"));
            return Ok(());
        }
    };
    let _lock = state.lock("attachments");
    match state.remove_attachment(id, ifname) {
        Ok(()) => log.info("attachment record removed"),
        Err(err) => log.warn(&format!("attachment record not removed: {err:#}")),
    }
    Ok(())
}
