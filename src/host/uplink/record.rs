//! The attachment record, `stateDir/uplink-<bridge>.json`: what an attachment moved and whether
//! hostguard made the bridge, so `hostguard uplink release` can undo exactly that and nothing
//! else.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::model::{Addr, SavedRoute};
use crate::state::{StateDir, FORMAT_VERSION};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UplinkRecord {
    pub version: u32,
    pub interface: String,
    pub bridge: String,
    /// hostguard created the bridge, so release may delete it.
    pub bridge_created: bool,
    /// The bridge was up before the attachment (only meaningful when it was not created).
    pub bridge_was_up: bool,
    /// The uplink's ifindex when it was attached; the routes below use it.
    pub interface_index: u32,
    pub addresses: Vec<Addr>,
    pub routes: Vec<SavedRoute>,
    /// When the attachment finished (RFC 3339, UTC).
    pub attached: String,
}

pub fn path(state: &StateDir, bridge: &str) -> Result<PathBuf> {
    check_link_name(bridge)?;
    Ok(state.root().join(format!("uplink-{bridge}.json")))
}

pub fn read(state: &StateDir, bridge: &str) -> Result<Option<UplinkRecord>> {
    let path = path(state, bridge)?;
    let record: Option<UplinkRecord> = state.read_json(&path)?;
    match record {
        Some(r) if r.version != FORMAT_VERSION => bail!(
            "{} has format version {}, this hostguard reads {FORMAT_VERSION}",
            path.display(),
            r.version
        ),
        other => Ok(other),
    }
}

pub fn write(state: &StateDir, record: &UplinkRecord) -> Result<()> {
    state.write_json(&path(state, &record.bridge)?, record)
}

pub fn remove(state: &StateDir, bridge: &str) -> Result<()> {
    crate::atomic::remove_durable(&path(state, bridge)?)
}

/// A link name as the kernel accepts it (1 to 15 bytes, no '/', no whitespace, not "." or
/// ".."), which also makes it safe inside a file name.
pub fn check_link_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if bad {
        bail!("{name:?} is not a valid link name (1-15 bytes, no '/', ':' or whitespace)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_that_could_escape_the_directory_are_refused() {
        for bad in ["", "..", "a/b", "br sec", "0123456789abcdef", "br:0"] {
            assert!(check_link_name(bad).is_err(), "{bad:?}");
        }
        for good in ["br-sec", "eth1", "br_0.100"] {
            assert!(check_link_name(good).is_ok(), "{good:?}");
        }
    }
}
