//! Where the daemon's configuration comes from: the hostguard entry given as a file, or the entry
//! of the config file a runtime loads from the CNI config directory. Either way it goes through
//! the plugin's own parser, so the daemon accepts exactly what the plugin accepts.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use super::args::Options;
use crate::config::{self, PluginConfig};
use crate::install::{discover, inplace};

/// A config file larger than this is not a CNI config.
const MAX_CONFIG: u64 = 1 << 20;

pub fn load(opts: &Options) -> Result<(PluginConfig, String)> {
    let (entry, origin) = match &opts.conf_dir {
        Some(dir) => entry_from_conf_dir(dir)?,
        None => {
            let path = opts.plugin_config.as_deref().expect("checked by args");
            (read_object(path)?, path.display().to_string())
        }
    };
    let plugin = config::parse_entry(&entry).map_err(|err| {
        anyhow!(
            "{origin}: the plugin would refuse this entry: {} ({})",
            err.msg,
            err.details
        )
    })?;
    Ok((plugin, origin))
}

fn read_object(path: &Path) -> Result<Map<String, Value>> {
    let meta = fs::metadata(path).with_context(|| format!("read {}", path.display()))?;
    if meta.len() > MAX_CONFIG {
        bail!("{} is larger than {} KiB", path.display(), MAX_CONFIG >> 10);
    }
    let bytes = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => bail!(
            "{} holds {}, expected a JSON object",
            path.display(),
            config::kind_of(&other)
        ),
        Err(err) => bail!("{} is not valid JSON: {err}", path.display()),
    }
}

/// The hostguard entry of the file a runtime loads from `dir`, chosen as install chooses it
/// (`install::discover`): the first config file in byte order, or, when that is a meta-plugin's
/// config (Multus), the master it delegates to, where `install --in-place` puts the entry. When
/// that file has no hostguard entry, the plugin does not run on this node either, and the daemon
/// says so instead of guessing.
fn entry_from_conf_dir(dir: &Path) -> Result<(Map<String, Value>, String)> {
    let names = discover::config_names(dir)
        .with_context(|| format!("read --conf-dir {}", dir.display()))?;
    if names.is_empty() {
        bail!(
            "--conf-dir {} has no CNI config file yet; run `hostguard install` first",
            dir.display()
        );
    }
    for name in &names {
        let path = dir.join(name);
        let object = read_object(&path)?;
        if inplace::meta_plugin(&object).is_some() {
            continue;
        }
        return only_entry(&object, &path).map(|entry| (entry, path.display().to_string()));
    }
    bail!(
        "--conf-dir {} holds only meta-plugin configs (Multus) and no master they delegate to",
        dir.display()
    )
}

fn only_entry(object: &Map<String, Value>, path: &Path) -> Result<Map<String, Value>> {
    let entries: Vec<&Map<String, Value>> = match object.get("plugins") {
        Some(Value::Array(plugins)) => plugins.iter().filter_map(Value::as_object).collect(),
        _ => vec![object],
    };
    let mut ours = entries
        .into_iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("hostguard"));
    match (ours.next(), ours.next()) {
        (Some(entry), None) => Ok(entry.clone()),
        (None, _) => bail!(
            "{} is the config the runtime loads, and it has no hostguard entry; run `hostguard \
             install` first",
            path.display()
        ),
        (Some(_), Some(_)) => bail!(
            "{} has more than one hostguard entry; `hostguard install` writes exactly one",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn opts(conf_dir: Option<&Path>, plugin_config: Option<&Path>) -> Options {
        Options {
            plugin_config: plugin_config.map(Path::to_path_buf),
            conf_dir: conf_dir.map(Path::to_path_buf),
            metrics_addr: None,
            settle: Duration::ZERO,
        }
    }

    #[test]
    fn reads_the_entry_the_runtime_would_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(load(&opts(Some(d), None)).is_err());
        fs::write(
            d.join("10-calico.conflist"),
            r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"}]}"#,
        )
        .unwrap();
        let err = load(&opts(Some(d), None)).unwrap_err().to_string();
        assert!(err.contains("no hostguard entry"), "{err}");
        fs::write(
            d.join("00-hostguard.conflist"),
            r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"},
               {"type":"hostguard","stateDir":"/s","routes":{"dhcpGraceMs":50}}]}"#,
        )
        .unwrap();
        let (plugin, origin) = load(&opts(Some(d), None)).unwrap();
        assert!(origin.ends_with("00-hostguard.conflist"));
        assert_eq!(plugin.state_dir, PathBuf::from("/s"));
        assert_eq!(plugin.routes_dhcp_grace_ms, 50);
    }

    #[test]
    fn past_a_multus_config_the_entry_is_read_from_its_master() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(
            d.join("00-multus.conflist"),
            r#"{"cniVersion":"1.0.0","name":"multus","plugins":[{"type":"multus-shim"}]}"#,
        )
        .unwrap();
        let err = load(&opts(Some(d), None)).unwrap_err().to_string();
        assert!(err.contains("no master"), "{err}");
        // where install --in-place puts the entry beside Multus
        fs::write(
            d.join("10-calico.conflist"),
            r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"},
               {"type":"hostguard","stateDir":"/m"}]}"#,
        )
        .unwrap();
        let (plugin, origin) = load(&opts(Some(d), None)).unwrap();
        assert!(origin.ends_with("10-calico.conflist"), "{origin}");
        assert_eq!(plugin.state_dir, PathBuf::from("/m"));
    }

    #[test]
    fn a_plugin_config_file_goes_through_the_plugins_parser() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.json");
        fs::write(&path, r#"{"rules":{"match":[{"table":77}]}}"#).unwrap();
        let (plugin, _) = load(&opts(None, Some(&path))).unwrap();
        assert_eq!(plugin.rules.selectors[0].table, Some(77));
        fs::write(&path, r#"{"routes":{"restor":true}}"#).unwrap();
        let err = load(&opts(None, Some(&path))).unwrap_err().to_string();
        assert!(err.contains("routes.restor"), "{err}");
        fs::write(&path, "[]").unwrap();
        assert!(load(&opts(None, Some(&path))).is_err());
    }
}
