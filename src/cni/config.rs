//! The network configuration a runtime sends on stdin: the spec's keys here, hostguard's own
//! keys through `crate::config` (the one parser every reader shares), and everything else left
//! alone. `prevResult` stays raw JSON so that passing it through can never drop a field we do not
//! know.

use serde_json::{Map, Value};

use super::error::{code, CniError, CniResult};
use super::version::SpecVersion;
use crate::config::{kind_of, present, ConfigError, ErrorKind};
pub use crate::config::{LogLevel, PluginConfig, DEFAULT_STATE_DIR};

#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: String,
    pub spec: SpecVersion,
    pub name: String,
    pub plugin: PluginConfig,
    pub prev_result: Option<Map<String, Value>>,
    /// GC only: `None` when the key is absent or null.
    pub valid_attachments: Option<Vec<Attachment>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

impl From<ConfigError> for CniError {
    fn from(err: ConfigError) -> CniError {
        let code = match err.kind {
            ErrorKind::UnsupportedField => code::UNSUPPORTED_FIELD,
            ErrorKind::Invalid => code::INVALID_CONFIG,
        };
        CniError::new(code, err.msg, err.details)
    }
}

/// Only the version, for answering errors in the runtime's own version even when the rest of the
/// config is broken.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "cniVersion")]
        cni_version: String,
    }
    serde_json::from_slice::<Peek>(stdin)
        .ok()
        .map(|p| p.cni_version)
        .filter(|v| super::version::SUPPORTED.contains(&v.as_str()))
}

pub fn parse(stdin: &[u8]) -> CniResult<NetConf> {
    let root: Value = serde_json::from_slice(stdin).map_err(|err| {
        CniError::new(
            code::DECODING_FAILURE,
            format!("stdin is not valid JSON: {err}"),
            "the runtime must send the network configuration as a JSON object on stdin",
        )
    })?;
    let Value::Object(mut root) = root else {
        return Err(CniError::new(
            code::DECODING_FAILURE,
            "stdin is not a JSON object",
            "the runtime must send the network configuration as a JSON object on stdin",
        ));
    };
    let cni_version = required_string(&root, "cniVersion")?;
    let spec = SpecVersion::supported(&cni_version)?;
    let name = required_string(&root, "name")?;
    let plugin = crate::config::parse_entry(&root)?;
    let prev_result = match root.remove("prevResult") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(other) => {
            return Err(CniError::invalid_config(format!(
                "prevResult must be an object, not {}",
                kind_of(&other)
            )))
        }
    };
    let valid_attachments = parse_attachments(&root)?;
    Ok(NetConf {
        cni_version,
        spec,
        name,
        plugin,
        prev_result,
        valid_attachments,
    })
}

/// What DEL reads: only what it uses, each key on its own, so that a broken key elsewhere (or a
/// key only a newer hostguard knows) never keeps DEL from cleaning up. Whatever could not be read
/// is in `problems`, for the log.
#[derive(Debug, Default)]
pub struct DelConf {
    /// `None` when unknown: then only records of the older layout can be found.
    pub name: Option<String>,
    /// `None` when unusable: then there is nothing DEL could clean.
    pub state_dir: Option<std::path::PathBuf>,
    /// `None` when unusable: then only what `stateDir` holds can be cleaned.
    pub run_dir: Option<std::path::PathBuf>,
    /// `None` when the log keys themselves are unusable: then DEL logs to stderr only.
    pub log: Option<crate::config::LogSettings>,
    pub problems: Vec<String>,
}

pub fn parse_for_del(stdin: &[u8]) -> DelConf {
    let mut conf = DelConf::default();
    let root = match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(root)) => root,
        Ok(_) => {
            conf.problems.push("stdin is not a JSON object".into());
            return conf;
        }
        Err(err) => {
            conf.problems
                .push(format!("stdin is not valid JSON: {err}"));
            return conf;
        }
    };
    // The whole configuration as ADD would judge it, only for the log.
    if let Err(err) = parse(stdin) {
        conf.problems.push(err.to_string());
    }
    match required_string(&root, "name") {
        Ok(name) => conf.name = Some(name),
        Err(err) => conf.problems.push(err.to_string()),
    }
    match crate::config::state_dir(&root) {
        Ok(dir) => conf.state_dir = Some(dir),
        Err(err) => conf.problems.push(err.to_string()),
    }
    match crate::config::run_dir(&root) {
        Ok(dir) => conf.run_dir = Some(dir),
        Err(err) => conf.problems.push(err.to_string()),
    }
    conf.log = crate::config::log_settings(&root).ok();
    conf
}

fn parse_attachments(root: &Map<String, Value>) -> CniResult<Option<Vec<Attachment>>> {
    // The spec renamed the key after 1.1.0 shipped; libcni sends both.
    let value =
        present(root, "cni.dev/valid-attachments").or_else(|| present(root, "cni.dev/attachments"));
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(CniError::invalid_config(
            "cni.dev/valid-attachments must be an array",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |key: &str| {
                item.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        CniError::invalid_config(format!(
                            "cni.dev/valid-attachments[{i}].{key} must be a string"
                        ))
                    })
            };
            Ok(Attachment {
                container_id: field("containerID")?,
                ifname: field("ifname")?,
            })
        })
        .collect::<CniResult<_>>()
        .map(Some)
}

fn required_string(root: &Map<String, Value>, key: &str) -> CniResult<String> {
    match root.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(CniError::invalid_config(format!(
            "{key} must be a non-empty string, not {}",
            kind_of(other)
        ))),
        None => Err(CniError::invalid_config(format!("{key} is missing"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str) -> CniResult<NetConf> {
        parse(
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"hostguard"{extra}}}"#).as_bytes(),
        )
    }

    #[test]
    fn the_entry_is_read_by_the_shared_parser() {
        let c = conf(r#","stateDir":"/s","x-vendor":1"#).unwrap();
        assert_eq!(c.plugin.state_dir, std::path::PathBuf::from("/s"));
        assert!(c.prev_result.is_none() && c.valid_attachments.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#","routes":{"restor":true}"#, 2, "routes.restor"),
            (r#","routes":{"restore":"yes"}"#, 7, "routes.restore"),
            (r#","uplink":{"interface":"eth1"}"#, 7, "uplink.bridge"),
            (
                r#","uplink":{"interface":"a/b","bridge":"br"}"#,
                7,
                "uplink.interface",
            ),
            (r#","stateDir":"relative""#, 7, "stateDir"),
            (
                r#","waitFor":{"interfaces":[{"name":"x","cidr":"nope"}]}"#,
                7,
                "cidr",
            ),
            (r#","waitFor":{"timeoutMs":-1}"#, 7, "timeoutMs"),
            (r#","rules":{"match":[{}]}"#, 7, "rules.match[0]"),
            (r#","prevResult":[1]"#, 7, "prevResult"),
        ];
        for (extra, code, needle) in cases {
            let err = conf(extra).expect_err(extra);
            assert_eq!(err.code, code, "{extra}: {err}");
            assert!(err.msg.contains(needle), "{extra}: {err}");
        }
    }

    #[test]
    fn spec_keys_are_checked() {
        assert_eq!(parse(b"{").unwrap_err().code, 6);
        assert_eq!(parse(b"[]").unwrap_err().code, 6);
        assert_eq!(parse(br#"{"name":"n"}"#).unwrap_err().code, 7);
        assert_eq!(
            parse(br#"{"cniVersion":"9.9.9","name":"n"}"#)
                .unwrap_err()
                .code,
            1
        );
        assert_eq!(parse(br#"{"cniVersion":"1.0.0"}"#).unwrap_err().code, 7);
        assert_eq!(
            parse(br#"{"cniVersion":1,"name":"n"}"#).unwrap_err().code,
            7
        );
    }

    #[test]
    fn gc_reads_both_attachment_keys_and_null() {
        let a =
            conf(r#","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]"#).unwrap();
        assert_eq!(a.valid_attachments.unwrap()[0].container_id, "c");
        let b = conf(r#","cni.dev/attachments":[{"containerID":"d","ifname":"eth1"}]"#).unwrap();
        assert_eq!(b.valid_attachments.unwrap()[0].ifname, "eth1");
        assert!(conf(r#","cni.dev/valid-attachments":null"#)
            .unwrap()
            .valid_attachments
            .is_none());
        assert_eq!(
            conf(r#","cni.dev/valid-attachments":{}"#).unwrap_err().code,
            7
        );
    }

    #[test]
    fn peek_version_only_trusts_supported_versions() {
        assert_eq!(peek_version(br#"{"cniVersion":"0.4.0","x":"#), None);
        assert_eq!(
            peek_version(br#"{"cniVersion":"0.4.0"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(peek_version(br#"{"cniVersion":"7"}"#), None);
    }
}
