//! The hostguard entry that install appends: `{"type":"hostguard"}` plus the keys of
//! `--plugin-config`, and `stateDir` from `--state-dir` (unless the plugin config names it) so the
//! plugin reads the baseline where install recorded it.
//!
//! The entry is judged by the plugin's own parser (`crate::config::parse_entry`) before anything
//! is written: an entry the plugin would refuse fails every ADD on the node, so install refuses it
//! with [`Refused`] and the plugin's own code and message.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::validate::{self, HOSTGUARD_TYPE};
use crate::cni::error::CniError;
use crate::config::ENTRY_KEYS;

/// An entry the plugin would refuse, with the error the plugin would answer every ADD with.
#[derive(Debug)]
pub struct Refused {
    pub source: String,
    pub error: CniError,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the hostguard entry from {} would fail every pod on this node, so nothing was \
             written: {}",
            self.source, self.error
        )
    }
}

impl std::error::Error for Refused {}

/// Keys every CNI plugin entry may carry besides its own settings.
const CNI_KEYS: [&str; 3] = ["capabilities", "runtimeConfig", "args"];

/// Builds the entry and judges it as the plugin will. Top-level keys the plugin does not read are
/// kept (the runtime may use them, or a newer hostguard) but reported in `warnings`; an entry the
/// plugin would refuse is a [`Refused`] error.
pub fn build(
    plugin_config: Option<&Path>,
    state_dir: Option<&Path>,
    run_dir: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>> {
    let mut entry = match plugin_config {
        Some(path) => load(path)?,
        None => Map::new(),
    };
    if let Err(err) = crate::config::check_plugin_config_type(&entry) {
        bail!("--plugin-config {}: {}", display(plugin_config), err.msg);
    }
    entry.insert("type".into(), Value::String(HOSTGUARD_TYPE.into()));
    let dirs = [
        ("stateDir", "--state-dir", state_dir),
        ("runDir", "--run-dir", run_dir),
    ];
    for (key, flag, dir) in dirs {
        let Some(dir) = dir else { continue };
        let wanted = dir.to_string_lossy().into_owned();
        match entry.get(key) {
            None => {
                entry.insert(key.into(), Value::String(wanted));
            }
            Some(Value::String(given)) if *given == wanted => {}
            // In a container the directory is mounted somewhere else than on the host; the entry
            // must carry the host's path, so an explicit key wins.
            Some(given) => warnings.push(format!(
                "the entry keeps \"{key}\" {given} from --plugin-config {}; {flag} {wanted} is only \
                 used here (right when it is where the host's {given} is mounted)",
                display(plugin_config)
            )),
        }
    }
    for key in entry.keys() {
        if !ENTRY_KEYS.contains(&key.as_str()) && !CNI_KEYS.contains(&key.as_str()) {
            warnings.push(format!(
                "--plugin-config {} has key {key:?}, which hostguard does not know (known: {}); keeping it",
                display(plugin_config),
                ENTRY_KEYS.join(", ")
            ));
        }
    }
    if let Err(err) = crate::config::parse_entry(&entry) {
        let source = match plugin_config {
            Some(path) => format!("--plugin-config {}", path.display()),
            None => "--state-dir / --run-dir".to_string(),
        };
        return Err(Refused {
            source,
            error: err.into(),
        }
        .into());
    }
    Ok(entry)
}

fn load(path: &Path) -> Result<Map<String, Value>> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("read --plugin-config from standard input")?;
        bytes
    } else {
        fs::read(path).with_context(|| format!("read --plugin-config {}", path.display()))?
    };
    validate::parse_object(&bytes)
        .map_err(|problem| anyhow::anyhow!("--plugin-config {} {problem}", path.display()))
}

fn display(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_a_bare_entry_with_state_dir() {
        let mut warnings = Vec::new();
        let entry = build(None, Some(Path::new("/var/lib/hg")), None, &mut warnings).unwrap();
        assert_eq!(
            Value::Object(entry),
            serde_json::json!({"type": "hostguard", "stateDir": "/var/lib/hg"})
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn checks_the_plugin_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pc.json");
        fs::write(&path, br#"{"logLevel":"debug","uplnk":{}}"#).unwrap();
        let mut warnings = Vec::new();
        let entry = build(Some(&path), None, None, &mut warnings).unwrap();
        assert_eq!(entry["type"], "hostguard");
        assert_eq!(entry["logLevel"], "debug");
        assert!(warnings[0].contains("\"uplnk\""), "{warnings:?}");

        fs::write(&path, br#"{"type":"bridge"}"#).unwrap();
        assert!(build(Some(&path), None, None, &mut warnings)
            .unwrap_err()
            .to_string()
            .contains("leave \"type\" out"));
        fs::write(&path, br#"{"stateDir":"/a"}"#).unwrap();
        warnings.clear();
        let mounted = build(Some(&path), Some(Path::new("/host/a")), None, &mut warnings).unwrap();
        assert_eq!(mounted["stateDir"], "/a");
        assert!(
            warnings[0].contains("keeps \"stateDir\" \"/a\""),
            "{warnings:?}"
        );
        for (refused, code, needle) in [
            (r#"{"routes":{"restor":false}}"#, 2, "routes.restor"),
            (r#"{"stateDir":"relative"}"#, 7, "stateDir"),
            (
                r#"{"waitFor":{"timeoutMs":600000}}"#,
                7,
                "waitFor.timeoutMs",
            ),
            (r#"{"logLevel":"verbose"}"#, 7, "logLevel"),
            (
                r#"{"uplink":{"interface":"eth1","bridge":"eth1"}}"#,
                7,
                "uplink",
            ),
        ] {
            fs::write(&path, refused).unwrap();
            let err = build(Some(&path), None, None, &mut warnings).unwrap_err();
            let err = err.downcast_ref::<Refused>().expect(refused);
            assert_eq!(err.error.code, code, "{refused}");
            assert!(err.error.msg.contains(needle), "{refused}: {err}");
        }
        let err = build(None, Some(Path::new("relative")), None, &mut warnings).unwrap_err();
        assert_eq!(err.downcast_ref::<Refused>().unwrap().error.code, 7);
        fs::write(&path, b"[]").unwrap();
        assert!(build(Some(&path), None, None, &mut warnings)
            .unwrap_err()
            .to_string()
            .contains("expected a JSON object"));
    }
}
