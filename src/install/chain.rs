//! The chained conflist: the upstream's top-level keys and plugins in their order, every earlier
//! hostguard entry removed, and exactly one hostguard entry appended. A single-plugin upstream is
//! turned into a list first, keeping its own `name` and `cniVersion`. The list carries our marker
//! (`marker`), so that the file is known as ours later and a copy of it is known as a copy.

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::discover::Form;
use super::marker::{self, MARKER_KEY};
use super::validate::HOSTGUARD_TYPE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chained {
    pub bytes: Vec<u8>,
    /// hostguard entries found in the upstream and dropped.
    pub removed: usize,
    /// plugins in the written list, ours included.
    pub plugins: usize,
}

/// Where the chained list is written and what it chains, for its marker.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub output: &'a str,
    pub upstream: &'a str,
}

/// `upstream` must have passed `validate::upstream` for `form`.
pub fn chain(
    upstream: &Map<String, Value>,
    form: Form,
    entry: &Map<String, Value>,
    names: Names<'_>,
) -> Result<Chained> {
    let mut list = match form {
        Form::List => upstream.clone(),
        Form::Single => as_list(upstream),
    };
    list.insert(
        MARKER_KEY.into(),
        marker::marker(names.output, names.upstream),
    );
    let plugins = match list.remove("plugins") {
        Some(Value::Array(plugins)) => plugins,
        _ => Vec::new(),
    };
    let before = plugins.len();
    let mut plugins: Vec<Value> = plugins
        .into_iter()
        .filter(|plugin| plugin.get("type").and_then(Value::as_str) != Some(HOSTGUARD_TYPE))
        .collect();
    let removed = before - plugins.len();
    plugins.push(Value::Object(entry.clone()));
    let count = plugins.len();
    list.insert("plugins".into(), Value::Array(plugins));
    let mut bytes =
        serde_json::to_vec_pretty(&Value::Object(list)).context("render the chained conflist")?;
    bytes.push(b'\n');
    Ok(Chained {
        bytes,
        removed,
        plugins: count,
    })
}

/// A `.conf` becomes a one-plugin list: `name` and `cniVersion` move to the list, every other key
/// stays with the plugin.
fn as_list(single: &Map<String, Value>) -> Map<String, Value> {
    let mut plugin = single.clone();
    plugin.remove(MARKER_KEY);
    let mut list = Map::new();
    for key in ["cniVersion", "name"] {
        if let Some(value) = plugin.remove(key) {
            list.insert(key.into(), value);
        }
    }
    list.insert("plugins".into(), Value::Array(vec![Value::Object(plugin)]));
    list
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

    fn entry() -> Map<String, Value> {
        object(json!({"type": "hostguard", "logLevel": "debug"}))
    }

    const NAMES: Names<'static> = Names {
        output: "00-hostguard.conflist",
        upstream: "10-up.conflist",
    };

    #[test]
    fn keeps_keys_and_order_and_replaces_old_entries() {
        let upstream = object(json!({
            "cniVersion": "1.0.0", "name": "k8s", "disableCheck": true,
            "plugins": [{"type": "hostguard"}, {"type": "calico"}, {"type": "hostguard", "old": 1}, {"type": "portmap"}]
        }));
        let chained = chain(&upstream, Form::List, &entry(), NAMES).unwrap();
        assert_eq!(chained.removed, 2);
        assert_eq!(chained.plugins, 3);
        let written: Value = serde_json::from_slice(&chained.bytes).unwrap();
        assert_eq!(
            written,
            json!({
                "cniVersion": "1.0.0", "name": "k8s", "disableCheck": true,
                "hostguardInstall": {"output": "00-hostguard.conflist", "upstream": "10-up.conflist"},
                "plugins": [{"type": "calico"}, {"type": "portmap"}, {"type": "hostguard", "logLevel": "debug"}]
            })
        );
        assert!(chained.bytes.ends_with(b"}\n"));
    }

    #[test]
    fn converts_a_single_conf() {
        let upstream = object(
            json!({"cniVersion": "0.4.0", "name": "br", "type": "bridge", "ipam": {"type": "host-local"}}),
        );
        let chained = chain(&upstream, Form::Single, &entry(), NAMES).unwrap();
        let written: Value = serde_json::from_slice(&chained.bytes).unwrap();
        assert_eq!(
            written,
            json!({
                "cniVersion": "0.4.0", "name": "br",
                "hostguardInstall": {"output": "00-hostguard.conflist", "upstream": "10-up.conflist"},
                "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}}, {"type": "hostguard", "logLevel": "debug"}]
            })
        );
    }

    #[test]
    fn same_input_same_bytes() {
        let upstream =
            object(json!({"cniVersion": "1.0.0", "name": "k8s", "plugins": [{"type": "calico"}]}));
        assert_eq!(
            chain(&upstream, Form::List, &entry(), NAMES).unwrap(),
            chain(&upstream, Form::List, &entry(), NAMES).unwrap()
        );
    }
}
