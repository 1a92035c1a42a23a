//! GC: drop this network's attachment records the runtime no longer lists as valid; other
//! networks' records are not even read (records of the older, flat layout that name no network
//! are judged by every network's GC, as they always were). Unreadable records are
//! dropped too (they name no attachment that could still be valid); errors are collected, not
//! fatal, as the spec asks.

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::log::Logger;

pub fn gc(req: &Request, log: &mut Logger) -> CniResult<()> {
    let valid = req.conf.valid_attachments.as_deref().unwrap_or_default();
    let state = super::open_state(&req.conf.plugin)?;
    let _lock = state
        .lock("attachments")
        .map_err(|err| CniError::io("cannot lock the attachment records", &err))?;
    let records = state
        .attachments_of(&req.conf.name)
        .map_err(|err| CniError::io("cannot list the attachment records", &err))?;
    let mut failures = Vec::new();
    let mut removed = 0;
    for (path, record) in records {
        let keep = match &record {
            Ok(rec) => valid
                .iter()
                .any(|a| a.container_id == rec.container_id && a.ifname == rec.ifname),
            Err(err) => {
                log.warn(&format!("dropping unreadable record: {err:#}"));
                false
            }
        };
        if keep {
            continue;
        }
        match crate::atomic::remove_durable(&path) {
            Ok(()) => removed += 1,
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    log.info(&format!("gc removed {removed} stale attachment records"));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::IO_FAILURE,
            format!("gc could not remove {} records", failures.len()),
            failures.join("; "),
        ))
    }
}
