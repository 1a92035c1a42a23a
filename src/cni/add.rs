//! ADD: hostguard is chained, so it needs prevResult and returns it unchanged after guarding the
//! host and recording the attachment.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::error::{CniError, CniResult};
use super::Request;
use crate::log::Logger;
use crate::state::{AttachmentRecord, FORMAT_VERSION};

pub fn add(req: &Request, log: &mut Logger) -> CniResult<Value> {
    let prev = req.conf.prev_result.as_ref().ok_or_else(|| {
        CniError::invalid_config(
            "hostguard is a chained plugin: ADD needs prevResult (put hostguard after the \
             interface plugin in the conflist)",
        )
    })?;
    let state = super::open_state(&req.conf.plugin.state_dir)?;
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
