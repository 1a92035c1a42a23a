//! DEL: best effort and idempotent. hostguard is last in the chain and runtimes run DEL in
//! reverse order, stopping at the first error: a failing DEL here would keep the interface
//! plugin's and IPAM's DEL from ever running, leaking addresses and sandboxes. So DEL fails only
//! on an environment that would make a file name unsafe (code 4). It succeeds on a second DEL,
//! without prevResult, with an empty or vanished CNI_NETNS, with no state, and with a
//! configuration that does not validate: it reads only `name`, `stateDir` and `runDir` (and the
//! log settings) and logs every other problem. With neither directory usable there is nothing to
//! clean.

use super::config::{self, DelConf};
use super::env::CniEnv;
use super::error::CniResult;
use crate::log::{Logger, Rotation};
use crate::state::StateDir;

/// `input` is stdin as read, or why it could not be read.
pub fn del(env: &CniEnv, input: CniResult<&[u8]>, log: &mut Logger) -> CniResult<()> {
    let conf = match input {
        Ok(bytes) => config::parse_for_del(bytes),
        Err(err) => DelConf {
            problems: vec![err.to_string()],
            ..DelConf::default()
        },
    };
    if let Some(settings) = &conf.log {
        if let Some(path) = &settings.file {
            let rotation = Rotation::from_config(settings.max_size_mb, settings.max_files);
            log.open_file(path, settings.level, rotation);
        }
    }
    for problem in &conf.problems {
        log.warn(&format!("configuration problem ignored by DEL: {problem}"));
    }
    let (Some(id), Some(ifname)) = (&env.container_id, &env.ifname) else {
        return Ok(());
    };
    if conf.state_dir.is_none() && conf.run_dir.is_none() {
        log.warn("DEL has no usable stateDir or runDir, so no record to remove");
        return Ok(());
    }
    let state = match StateDir::open_existing(conf.state_dir.as_deref(), conf.run_dir.as_deref()) {
        Ok(Some(state)) => state,
        Ok(None) => return Ok(()),
        Err(err) => {
            log.warn(&format!("DEL leaves state alone: {err:#}"));
            return Ok(());
        }
    };
    super::uplink::recover_for_del(&state, log);
    let _lock = state.lock("attachments");
    match state.remove_attachment(conf.name.as_deref(), id, ifname) {
        Ok(()) => log.info("attachment record removed"),
        Err(err) => log.warn(&format!("attachment record not removed: {err:#}")),
    }
    Ok(())
}
