//! The rules an upstream config must meet before hostguard chains it, and the check every file we
//! write must pass before it is renamed into place. A problem is phrased to follow the file name:
//! "10-calico.conflist is empty", "10-calico.conflist has no \"type\" in plugins[1]".

use std::fmt;

use serde_json::{Map, Value};

use super::discover::Form;
use crate::config::kind_of;

pub const HOSTGUARD_TYPE: &str = "hostguard";

/// The CNI versions hostguard speaks: chaining into any other would make every ADD fail with
/// "incompatible version".
use crate::cni::version::SUPPORTED as SUPPORTED_CNI_VERSIONS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    text: String,
    transient: bool,
}

impl Problem {
    pub fn new(text: impl Into<String>) -> Self {
        Problem {
            text: text.into(),
            transient: false,
        }
    }

    /// The file was caught mid-change: look again shortly rather than report a state.
    pub fn changing(text: impl Into<String>) -> Self {
        Problem {
            text: text.into(),
            transient: true,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks an upstream file's bytes as a runtime would read them (`form` comes from its name) and
/// returns its top-level object.
pub fn upstream(bytes: &[u8], form: Form) -> Result<Map<String, Value>, Problem> {
    let object = parse_object(bytes)?;
    match form {
        Form::List => check_list(&object)?,
        Form::Single => check_single(&object)?,
    }
    Ok(object)
}

/// The check for our own output, run on the bytes read back from the temporary file.
pub fn output(bytes: &[u8]) -> Result<(), Problem> {
    let object = parse_object(bytes)?;
    check_list(&object)?;
    let plugins = plugins_of(&object);
    let ours = hostguard_count(&object);
    if ours != 1 {
        return Err(Problem::new(format!(
            "has {ours} hostguard entries, expected exactly one"
        )));
    }
    if plugins.last().and_then(type_of) != Some(HOSTGUARD_TYPE) {
        return Err(Problem::new("does not end with the hostguard entry"));
    }
    Ok(())
}

/// Parses `bytes` as a JSON object, naming where and how it fails.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Problem> {
    if bytes.is_empty() {
        return Err(Problem::new("is empty"));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::new("holds only whitespace"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(Problem::new(format!(
            "holds {}, expected a JSON object",
            kind_of(&other)
        ))),
        Err(err) => Err(json_problem(bytes, &err)),
    }
}

pub fn hostguard_count(object: &Map<String, Value>) -> usize {
    plugins_of(object)
        .iter()
        .filter(|plugin| type_of(plugin) == Some(HOSTGUARD_TYPE))
        .count()
}

/// The plugin types of a list, for messages ("it now holds calico, portmap").
pub fn plugin_types(object: &Map<String, Value>) -> Vec<String> {
    plugins_of(object)
        .iter()
        .map(|plugin| type_of(plugin).unwrap_or("?").to_string())
        .collect()
}

fn plugins_of(object: &Map<String, Value>) -> &[Value] {
    object
        .get("plugins")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn type_of(plugin: &Value) -> Option<&str> {
    plugin.get("type").and_then(Value::as_str)
}

fn check_list(object: &Map<String, Value>) -> Result<(), Problem> {
    check_version_and_name(object)?;
    let plugins = match object.get("plugins") {
        None if object.contains_key("type") => {
            return Err(Problem::new(
                "has no \"plugins\" key but a top-level \"type\": a single-plugin config belongs in a .conf file",
            ))
        }
        None => return Err(Problem::new("has no \"plugins\" key")),
        Some(Value::Array(plugins)) => plugins,
        Some(other) => {
            return Err(Problem::new(format!("has \"plugins\" as {}, expected an array", kind_of(other))))
        }
    };
    if plugins.is_empty() {
        return Err(Problem::new("has an empty \"plugins\" array"));
    }
    for (index, plugin) in plugins.iter().enumerate() {
        let Value::Object(plugin) = plugin else {
            return Err(Problem::new(format!(
                "has plugins[{index}] as {}, expected an object",
                kind_of(plugin)
            )));
        };
        non_empty_string(plugin, "type", &format!(" in plugins[{index}]"))?;
    }
    if plugins
        .iter()
        .all(|plugin| type_of(plugin) == Some(HOSTGUARD_TYPE))
    {
        return Err(Problem::new(
            "has only hostguard in \"plugins\": there is no network plugin to chain after",
        ));
    }
    Ok(())
}

fn check_single(object: &Map<String, Value>) -> Result<(), Problem> {
    check_version_and_name(object)?;
    if !object.contains_key("type") && object.contains_key("plugins") {
        return Err(Problem::new(
            "has \"plugins\" but no \"type\": runtimes read a .conf or .json file as a single plugin, \
             so a plugin list must be named *.conflist",
        ));
    }
    non_empty_string(object, "type", "")?;
    if object.get("type").and_then(Value::as_str) == Some(HOSTGUARD_TYPE) {
        return Err(Problem::new(
            "is a lone hostguard plugin: there is no network plugin to chain after",
        ));
    }
    Ok(())
}

fn check_version_and_name(object: &Map<String, Value>) -> Result<(), Problem> {
    let version = non_empty_string(object, "cniVersion", "")?;
    if !SUPPORTED_CNI_VERSIONS.contains(&version) {
        return Err(Problem::new(format!(
            "has \"cniVersion\" {version:?}, which hostguard does not speak (it speaks {})",
            SUPPORTED_CNI_VERSIONS.join(", ")
        )));
    }
    non_empty_string(object, "name", "")?;
    Ok(())
}

fn non_empty_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    place: &str,
) -> Result<&'a str, Problem> {
    match object.get(key) {
        None => Err(Problem::new(format!("has no {key:?} key{place}"))),
        Some(Value::String(text)) if text.is_empty() => {
            Err(Problem::new(format!("has an empty {key:?}{place}")))
        }
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(Problem::new(format!(
            "has {key:?}{place} as {}, expected a string",
            kind_of(other)
        ))),
    }
}

fn json_problem(bytes: &[u8], err: &serde_json::Error) -> Problem {
    let (line, column) = (err.line(), err.column());
    let full = err.to_string();
    let reason = full
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&full);
    let what = if err.is_eof() {
        "is truncated (the JSON ends early)"
    } else {
        "is not valid JSON"
    };
    Problem::new(format!(
        "{what} at line {line}, column {column} (byte {}): {reason}",
        byte_offset(bytes, line, column)
    ))
}

/// serde_json counts lines from 1 and bytes within a line from 1 (0 at a line's start).
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(line - 2)
            .map(|(at, _)| at + 1)
            .unwrap_or(bytes.len())
    };
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_problem(text: &str) -> String {
        upstream(text.as_bytes(), Form::List)
            .unwrap_err()
            .to_string()
    }

    fn single_problem(text: &str) -> String {
        upstream(text.as_bytes(), Form::Single)
            .unwrap_err()
            .to_string()
    }

    const GOOD: &str = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"}]}"#;

    #[test]
    fn accepts_a_plain_list_and_a_single_conf() {
        assert!(upstream(GOOD.as_bytes(), Form::List).is_ok());
        assert!(upstream(
            br#"{"cniVersion":"0.3.1","name":"n","type":"bridge"}"#,
            Form::Single
        )
        .is_ok());
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(list_problem(""), "is empty");
        assert_eq!(list_problem(" \n"), "holds only whitespace");
        assert!(list_problem("[1]").contains("holds an array, expected a JSON object"));
        let truncated = list_problem("{\n  \"cniVersion\": \"1.0.0\",\n  \"na");
        assert!(truncated.starts_with("is truncated"), "{truncated}");
        assert!(truncated.contains("line 3"), "{truncated}");
        let invalid = list_problem("{\"a\": 1,, }");
        assert!(
            invalid.contains("is not valid JSON at line 1, column 9 (byte 8)"),
            "{invalid}"
        );
        assert_eq!(
            list_problem(r#"{"name":"n","plugins":[]}"#),
            "has no \"cniVersion\" key"
        );
        assert!(list_problem(r#"{"cniVersion":1}"#).contains("\"cniVersion\" as a number"));
        assert!(list_problem(r#"{"cniVersion":"0.2.0","name":"n"}"#).contains("does not speak"));
        assert_eq!(
            list_problem(r#"{"cniVersion":"1.0.0"}"#),
            "has no \"name\" key"
        );
        assert_eq!(
            list_problem(r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#),
            "has an empty \"plugins\" array"
        );
        assert!(
            list_problem(r#"{"cniVersion":"1.0.0","name":"n","plugins":{}}"#)
                .contains("expected an array")
        );
        assert!(
            list_problem(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},"b"]}"#)
                .contains("plugins[1] as a string")
        );
        assert_eq!(
            list_problem(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{}]}"#),
            "has no \"type\" key in plugins[1]"
        );
        assert!(
            list_problem(r#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#).contains(".conf file")
        );
        assert!(
            single_problem(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"}]}"#)
                .contains("*.conflist")
        );
        assert_eq!(
            single_problem(r#"{"cniVersion":"1.0.0","name":"n"}"#),
            "has no \"type\" key"
        );
    }

    #[test]
    fn refuses_a_chain_of_only_hostguard() {
        let only_ours = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"hostguard"}]}"#;
        assert!(list_problem(only_ours).contains("no network plugin to chain after"));
        assert!(
            single_problem(r#"{"cniVersion":"1.0.0","name":"n","type":"hostguard"}"#)
                .contains("lone hostguard")
        );
    }

    #[test]
    fn output_needs_exactly_one_trailing_entry() {
        let one = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"hostguard"}]}"#;
        assert!(output(one.as_bytes()).is_ok());
        let two = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"hostguard"},{"type":"bridge"},{"type":"hostguard"}]}"#;
        assert!(output(two.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("2 hostguard entries"));
        assert!(output(GOOD.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("0 hostguard entries"));
        let first = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"hostguard"},{"type":"bridge"}]}"#;
        assert!(output(first.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("does not end"));
    }
}
