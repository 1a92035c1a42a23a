//! The co-tenancy mode (`--in-place`): hostguard's entry goes into the plugin list a runtime
//! actually runs, and nothing else in that file changes.
//!
//! Why a mode of its own: every other chain editor on a node keys off "the first config file" too.
//! Istio inserts its plugin into the first valid conflist (ours, if we write one), Multus takes the
//! first file not named `00-multus*` as its master and Antrea copies the first non-Antrea file into
//! `05-antrea.conflist`. A separate hostguard file that sorts first either gets edited by them,
//! shadows them, or is embedded by them and embeds them back. Editing the loaded list in place is
//! what Istio does, and two tools that each only add and remove their own entry converge.
//!
//! Rules kept here:
//! - The file to edit is the first config file a runtime would load, except that a meta-plugin's
//!   file (Multus, which delegates to a master config) is passed over for the next one, its master:
//!   hostguard then runs inside the master chain that Multus delegates to, never beside Multus.
//! - Every foreign entry stays, in its order, with its keys. hostguard's own entry is replaced
//!   where it is, appended when missing, and de-duplicated; a list already holding exactly our
//!   entry is not rewritten at all, so two tools at rest write nothing.
//! - Uninstall removes only hostguard entries and never a file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::{Map, Value};

use super::snapshot::{self, Links, Snapshot};
use super::validate::{self, HOSTGUARD_TYPE};
use crate::atomic;

/// Plugin types that run another config (their master) rather than a chain of their own. Their
/// files embed the master, so an entry put there would run beside the master, not in it.
pub const META_PLUGINS: [&str; 2] = ["multus", "multus-shim"];

/// The meta-plugin type of a config (single plugin or list), if it is one.
pub fn meta_plugin(object: &Map<String, Value>) -> Option<&'static str> {
    let single = object.get("type").and_then(Value::as_str);
    let listed = object
        .get("plugins")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|plugin| plugin.get("type").and_then(Value::as_str));
    single
        .into_iter()
        .chain(listed)
        .find_map(|kind| META_PLUGINS.iter().copied().find(|meta| *meta == kind))
}

/// The list with exactly one hostguard entry equal to `entry`, or `None` when `list` already is
/// that. The first hostguard entry is replaced where it stands; with none, ours is appended.
pub fn insert(list: &Map<String, Value>, entry: &Map<String, Value>) -> Option<Vec<u8>> {
    let plugins = plugins(list);
    let ours: Vec<usize> = positions(plugins);
    if ours.len() == 1 && plugins[ours[0]] == Value::Object(entry.clone()) {
        return None;
    }
    let mut edited = Vec::with_capacity(plugins.len() + 1);
    let mut placed = false;
    for plugin in plugins {
        if !is_hostguard(plugin) {
            edited.push(plugin.clone());
        } else if !placed {
            edited.push(Value::Object(entry.clone()));
            placed = true;
        }
    }
    if !placed {
        edited.push(Value::Object(entry.clone()));
    }
    Some(render(list, edited))
}

/// The list without any hostguard entry, or `None` when it has none.
pub fn remove(list: &Map<String, Value>) -> Option<Vec<u8>> {
    let plugins = plugins(list);
    if positions(plugins).is_empty() {
        return None;
    }
    let kept = plugins
        .iter()
        .filter(|plugin| !is_hostguard(plugin))
        .cloned()
        .collect();
    Some(render(list, kept))
}

/// Atomically replaces `path` (a file of another tool) with `bytes`, keeping its mode, and only
/// if it still is the version `based_on` that `bytes` were computed from: another writer's change
/// in between is never overwritten with a stale copy (the caller looks again).
pub fn rewrite(path: &Path, based_on: &Snapshot, bytes: &[u8], check: Check) -> Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("inspect {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    atomic::write_atomic(path, bytes, mode, |written| {
        let object = validate::upstream(written, super::discover::Form::List)
            .map_err(|problem| anyhow!("the edited {} {problem}", path.display()))?;
        let count = validate::hostguard_count(&object);
        let wanted = match check {
            Check::Inserted => 1,
            Check::Removed => 0,
        };
        if count != wanted {
            return Err(anyhow!(
                "the edited {} has {count} hostguard entries, expected {wanted}",
                path.display()
            ));
        }
        match snapshot::read(path, Links::Refuse) {
            Ok(Some(now)) if now == *based_on => Ok(()),
            _ => Err(anyhow!(
                "{} changed while hostguard edited it; looking again",
                path.display()
            )),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Inserted,
    Removed,
}

fn plugins(list: &Map<String, Value>) -> &[Value] {
    list.get("plugins")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn is_hostguard(plugin: &Value) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some(HOSTGUARD_TYPE)
}

fn positions(plugins: &[Value]) -> Vec<usize> {
    plugins
        .iter()
        .enumerate()
        .filter(|(_, plugin)| is_hostguard(plugin))
        .map(|(at, _)| at)
        .collect()
}

fn render(list: &Map<String, Value>, plugins: Vec<Value>) -> Vec<u8> {
    let mut list = list.clone();
    list.insert("plugins".into(), Value::Array(plugins));
    // Rendering a map of JSON values cannot fail.
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(list)).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn types(bytes: &[u8]) -> Vec<String> {
        let list: Value = serde_json::from_slice(bytes).unwrap();
        list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn keeps_foreign_entries_and_their_order() {
        let entry = object(json!({"type": "hostguard", "logLevel": "debug"}));
        let list = object(json!({"cniVersion": "1.0.0", "name": "k8s", "x": 1,
            "plugins": [{"type": "aws-cni"}, {"type": "istio-cni", "k": [1]}, {"type": "portmap"}]}));
        let edited = insert(&list, &entry).unwrap();
        assert_eq!(
            types(&edited),
            ["aws-cni", "istio-cni", "portmap", "hostguard"]
        );
        let reread = object(serde_json::from_slice(&edited).unwrap());
        assert_eq!(reread["x"], 1);
        assert_eq!(reread["plugins"][1], json!({"type": "istio-cni", "k": [1]}));
        // At rest: nothing to write.
        assert_eq!(insert(&reread, &entry), None);
        // Another tool appended after us: still nothing to write, nobody moves.
        let mut later = reread.clone();
        later["plugins"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "linkerd-cni"}));
        assert_eq!(insert(&later, &entry), None);
        let removed = remove(&later).unwrap();
        assert_eq!(
            types(&removed),
            ["aws-cni", "istio-cni", "portmap", "linkerd-cni"]
        );
        assert_eq!(
            remove(&object(serde_json::from_slice(&removed).unwrap())),
            None
        );
    }

    #[test]
    fn replaces_in_place_and_drops_duplicates() {
        let entry = object(json!({"type": "hostguard", "logLevel": "info"}));
        let list = object(json!({"cniVersion": "1.0.0", "name": "k8s", "plugins": [
            {"type": "calico"}, {"type": "hostguard", "logLevel": "debug"},
            {"type": "istio-cni"}, {"type": "hostguard"}]}));
        let edited = insert(&list, &entry).unwrap();
        assert_eq!(types(&edited), ["calico", "hostguard", "istio-cni"]);
        let reread: Value = serde_json::from_slice(&edited).unwrap();
        assert_eq!(reread["plugins"][1]["logLevel"], "info");
    }

    #[test]
    fn knows_multus_in_both_shapes() {
        let thin = object(json!({"cniVersion": "0.3.1", "name": "multus-cni-network",
            "type": "multus", "delegates": [{"cniVersion": "0.3.1", "name": "k8s", "plugins": []}]}));
        let thick = object(json!({"cniVersion": "1.0.0", "name": "multus-cni-network",
            "plugins": [{"type": "multus-shim"}]}));
        let plain = object(json!({"cniVersion": "1.0.0", "name": "k8s",
            "plugins": [{"type": "calico"}]}));
        assert_eq!(meta_plugin(&thin), Some("multus"));
        assert_eq!(meta_plugin(&thick), Some("multus-shim"));
        assert_eq!(meta_plugin(&plain), None);
    }
}
