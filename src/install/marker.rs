//! How hostguard recognises the conflist it wrote: a top-level key naming the file it was written
//! as and the upstream it chains. Runtimes ignore top-level keys they do not know, so the marker
//! costs nothing at load time.
//!
//! A hostguard entry alone proves nothing: an operator's hand-written chain has one, and so does a
//! copy another installer made of our output (Antrea's `05-antrea.conflist` copies the first file).
//! The marker names the output, so such a copy under another name is recognised as not ours, and
//! as a file that would chain our own output into itself if we took it as our upstream.

use serde_json::{Map, Value};

use super::args::DEFAULT_OUTPUT;
use super::validate::{self, HOSTGUARD_TYPE};

pub const MARKER_KEY: &str = "hostguardInstall";

/// The marker for `output`, written by chaining `upstream`.
pub fn marker(output: &str, upstream: &str) -> Value {
    serde_json::json!({ "output": output, "upstream": upstream })
}

/// The output name the marker of `object` claims, if it has one.
pub fn marked_output(object: &Map<String, Value>) -> Option<&str> {
    object.get(MARKER_KEY)?.get("output")?.as_str()
}

/// Whether `object` is the file hostguard install wrote as `output`.
pub fn is_output(object: &Map<String, Value>, output: &str) -> bool {
    marked_output(object) == Some(output) || is_unmarked_older_output(object, output)
}

/// An output an older hostguard install wrote before outputs were marked: the default name, no
/// marker, and a chain that ends in its one hostguard entry. Taken as ours so that an upgraded
/// installer rewrites it, and uninstall removes it, instead of refusing the node's own file.
/// Under any other name such a chain stays an operator's hand-made file.
fn is_unmarked_older_output(object: &Map<String, Value>, output: &str) -> bool {
    output == DEFAULT_OUTPUT
        && !object.contains_key(MARKER_KEY)
        && validate::hostguard_count(object) == 1
        && validate::plugin_types(object).last().map(String::as_str) == Some(HOSTGUARD_TYPE)
}

/// Whether `bytes` parse to the file hostguard install wrote as `output`.
pub fn bytes_are_output(bytes: &[u8], output: &str) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|value| match value {
            Value::Object(object) => Some(object),
            _ => None,
        })
        .is_some_and(|object| is_output(&object, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_the_named_output() {
        let ours = format!(
            r#"{{"cniVersion":"1.0.0","name":"k8s","{MARKER_KEY}":{}, "plugins":[]}}"#,
            marker("00-hostguard.conflist", "10-aws.conflist")
        );
        assert!(bytes_are_output(ours.as_bytes(), "00-hostguard.conflist"));
        // The same bytes copied under another name by another installer are not that file.
        assert!(!bytes_are_output(ours.as_bytes(), "05-antrea.conflist"));
        // What an older install wrote: unmarked, under the default name, hostguard last.
        let older = br#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"},{"type":"hostguard"}]}"#;
        assert!(bytes_are_output(older, "00-hostguard.conflist"));
        assert!(!bytes_are_output(older, "05-calico.conflist"));
        let not_last = br#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"hostguard"},{"type":"calico"}]}"#;
        assert!(!bytes_are_output(not_last, "00-hostguard.conflist"));
        let none = br#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"}]}"#;
        assert!(!bytes_are_output(none, "00-hostguard.conflist"));
        assert!(!bytes_are_output(b"not json", "00-hostguard.conflist"));
    }
}
