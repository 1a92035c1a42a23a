//! ADD: hostguard is chained, so it needs prevResult and returns it unchanged after guarding the
//! host and recording the attachment.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::error::{code, CniError, CniResult};
use super::Request;
use crate::host::wait::{self, WaitError};
use crate::host::{baseline, refusal};
use crate::log::Logger;
use crate::netlink::Netlink;
use crate::state::{AttachmentRecord, StateDir, FORMAT_VERSION};

pub fn add(req: &Request, log: &mut Logger) -> CniResult<Value> {
    let prev = req.conf.prev_result.as_ref().ok_or_else(|| {
        CniError::invalid_config(
            "hostguard is a chained plugin: ADD needs prevResult (put hostguard after the \
             interface plugin in the conflist)",
        )
    })?;
    // A result that cannot be given in the configuration's version is refused before anything
    // touches the host.
    let result = super::result::convert(prev, &req.conf.cni_version)?;
    // Then, before anything else touches the host: guarding routes or recording state for a node
    // whose primary CNI is not up yet would record the wrong picture.
    wait_for_upstream(req, log)?;
    let state = super::open_state(&req.conf.plugin)?;
    super::uplink::attach(req, &state, log)?;
    guard_default_routes(req, &state, log)?;
    warn_nm_managed_host_interfaces(req, prev, log);
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
    Ok(result)
}

/// Restores missing baseline default routes and guarded rules; what cannot be restored is a
/// warning on ADD (the pod is not at fault), and CHECK reports it as code 100 or 103.
fn guard_default_routes(req: &Request, state: &StateDir, log: &mut Logger) -> CniResult<()> {
    let plugin = &req.conf.plugin;
    let refused = refusal::check(plugin.refuse, &plugin.network_manager);
    let options = baseline::route_options(plugin, &refused);
    let report = baseline::guard_and_adopt(state, &options, &plugin.rules).map_err(|err| {
        CniError::io(
            "the host guards could not read the host's routes and rules",
            &err,
        )
    })?;
    if report.recorded {
        log.info(&format!(
            "baseline recorded with {} default routes",
            report.routes.current.len()
        ));
    }
    for succession in &report.routes.successions {
        log.debug(&format!(
            "a recorded device is now a port; its routes are judged on its master: {succession}"
        ));
    }
    for route in &report.routes.restored {
        log.warn(&format!("restored missing default route: {route}"));
    }
    for gone in &report.routes.unrestored {
        log.warn(&format!(
            "default route missing and not restored: {}: {}",
            gone.route, gone.reason
        ));
    }
    for rule in &report.rules.restored {
        log.warn(&format!("restored missing policy rule: {rule}"));
    }
    for (rule, reason) in &report.rules.unrestored {
        log.warn(&format!(
            "policy rule missing and not restored: {rule}: {reason}"
        ));
    }
    Ok(())
}

/// Waits for the `waitFor` interfaces, bounded by `timeoutMs`. At the deadline the answer is
/// "try again later": the upstream agent is usually still starting, and the runtime retries the
/// sandbox, which is what incident 3's one-shot lookup never did.
fn wait_for_upstream(req: &Request, log: &mut Logger) -> CniResult<()> {
    let wait_for = &req.conf.plugin.wait_for;
    if wait_for.interfaces.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(wait_for.timeout_ms);
    let mut nl = Netlink::new().map_err(|err| {
        CniError::new(
            code::IO_FAILURE,
            "cannot open a netlink socket to watch the waitFor interfaces",
            err.to_string(),
        )
    })?;
    let wanted = wait_for
        .interfaces
        .iter()
        .map(wait::describe)
        .collect::<Vec<_>>()
        .join(", ");
    let mut waited = false;
    let outcome = wait::wait_ready(&mut nl, &wait_for.interfaces, deadline, &mut |unmet| {
        if waited {
            log.debug(&format!("still waiting: {unmet}"));
        } else {
            log.info(&format!(
                "waiting up to {} ms for {wanted}: {unmet}",
                wait_for.timeout_ms
            ));
            waited = true;
        }
    });
    match outcome {
        Ok(()) => {
            if waited {
                log.info(&format!(
                    "waitFor interfaces ready after {:.1} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                ));
            }
            Ok(())
        }
        Err(WaitError::Unmet(unmet)) => Err(CniError::new(
            code::TRY_AGAIN_LATER,
            unmet.to_string(),
            format!(
                "hostguard waited {} ms for {wanted} (waitFor in the conflist) and the primary \
                 CNI has not finished setting it up; the runtime will retry the ADD. If this \
                 persists, check the primary CNI's agent on this node",
                wait_for.timeout_ms
            ),
        )),
        Err(err @ WaitError::Netlink(_)) => Err(CniError::new(
            code::IO_FAILURE,
            "cannot watch the waitFor interfaces",
            err.to_string(),
        )),
    }
}

/// Host-side interfaces of prevResult (those without a `sandbox`) that NetworkManager manages are
/// a warning, not an error: the CNI created them, and hostguard does not touch them.
fn warn_nm_managed_host_interfaces(req: &Request, prev: &Map<String, Value>, log: &mut Logger) {
    let names: Vec<String> = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("sandbox")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        })
        .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    match refusal::nm_managed(&names, &req.conf.plugin.network_manager) {
        Ok(managed) => {
            for evidence in managed {
                log.warn(&format!(
                    "{evidence}; add the CNI's interfaces to NetworkManager's unmanaged-devices \
                     (`hostguard doctor --fix`)"
                ));
            }
        }
        Err(err) => log.warn(&format!(
            "cannot check prevResult interfaces against NetworkManager: {err:#}"
        )),
    }
}
