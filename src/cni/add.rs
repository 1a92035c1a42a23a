//! ADD: hostguard is chained, so it needs prevResult and returns it unchanged after guarding the
//! host and recording the attachment.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::error::{CniError, CniResult};
use super::Request;
use crate::host::baseline;
use crate::host::route_guard::LinkTable;
use crate::log::Logger;
use crate::state::{AttachmentRecord, StateDir, FORMAT_VERSION};

pub fn add(req: &Request, log: &mut Logger) -> CniResult<Value> {
    let prev = req.conf.prev_result.as_ref().ok_or_else(|| {
        CniError::invalid_config(
            "hostguard is a chained plugin: ADD needs prevResult (put hostguard after the \
             interface plugin in the conflist)",
        )
    })?;
    let state = super::open_state(&req.conf.plugin.state_dir)?;
    super::uplink::attach(req, &state, log)?;
    guard_default_routes(req, &state, log)?;
    let record = AttachmentRecord {
        version: FORMAT_VERSION,
        container_id: req.env.container_id.clone().unwrap_or_default(),
        ifname: req.env.ifname.clone().unwrap_or_default(),
        netns: req
            .env
            .netns
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        network: req.conf.name.clone(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    {
        let _lock = state
            .lock("attachments")
            .map_err(|err| CniError::io("cannot lock the attachment records", &err))?;
        state
            .write_attachment(&record)
            .map_err(|err| CniError::io("cannot record the attachment", &err))?;
    }
    log.info("attachment recorded");
    Ok(super::passthrough(prev, &req.conf.cni_version))
}

/// Restores missing baseline default routes; a route that cannot be restored is a warning on
/// ADD (the pod is not at fault), and CHECK reports it as code 100.
fn guard_default_routes(req: &Request, state: &StateDir, log: &mut Logger) -> CniResult<()> {
    let refused = |_: &LinkTable, _: &str| None;
    let (outcome, recorded) =
        baseline::guard_and_adopt(state, req.conf.plugin.routes_restore, &refused).map_err(
            |err| CniError::io("the route guard could not read the host's routes", &err),
        )?;
    if recorded {
        log.info(&format!(
            "baseline recorded with {} default routes",
            outcome.current.len()
        ));
    }
    for route in &outcome.restored {
        log.warn(&format!("restored missing default route: {route}"));
    }
    for gone in &outcome.unrestored {
        log.warn(&format!(
            "default route missing and not restored: {}: {}",
            gone.route, gone.reason
        ));
    }
    Ok(())
}
