//! The network configuration a runtime sends on stdin: the spec's keys, hostguard's own keys
//! (typed, with errors that name the key), and everything else left alone. `prevResult` stays raw
//! JSON so that passing it through can never drop a field we do not know.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use super::env::validate_ifname;
use super::error::{code, CniError, CniResult};
use super::version::SpecVersion;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/hostguard";
pub const DEFAULT_NM_RUN_DIR: &str = "/run/NetworkManager";
pub const DEFAULT_NM_CONF_DIR: &str = "/etc/NetworkManager";
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 15_000;
/// How long a default route owned by an address-configuration daemon (DHCP, router
/// advertisements) may stay missing before hostguard puts it back: a lease renewal deletes and
/// re-adds it within milliseconds, and a restore in between would make the daemon's add fail.
pub const DEFAULT_DHCP_GRACE_MS: u64 = 2_000;
/// Runtimes give a whole CNI ADD about two to four minutes; waiting longer than this inside one
/// ADD would only turn "try again later" into a runtime-side timeout with no message.
pub const MAX_WAIT_TIMEOUT_MS: u64 = 120_000;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub log_file: Option<PathBuf>,
    pub log_level: LogLevel,
    pub state_dir: PathBuf,
    pub routes_restore: bool,
    /// `routes.restoreOnManaged`: re-adding a recorded route through a team or
    /// NetworkManager-managed device is not a link change, so it is allowed unless this is false.
    pub routes_restore_on_managed: bool,
    /// `routes.dhcpGraceMs`: how long the slot of a DHCP- or RA-owned route must stay empty
    /// before the guard daemon restores it (a renewal deletes, then adds).
    pub routes_dhcp_grace_ms: u64,
    pub rules: RulesConfig,
    pub uplink: Option<UplinkConfig>,
    pub refuse: RefuseConfig,
    pub network_manager: NmDirs,
    pub wait_for: WaitFor,
}

#[derive(Debug, Clone, Default)]
pub struct RulesConfig {
    pub selectors: Vec<RuleSelector>,
    pub restore: bool,
}

/// Picks policy rules into the baseline; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSelector {
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub src: Option<IpNetwork>,
    pub dst: Option<IpNetwork>,
    pub fwmark: Option<u32>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub protocol: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    pub interface: String,
    pub bridge: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefuseConfig {
    pub team: bool,
    pub network_manager: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmDirs {
    pub run_dir: PathBuf,
    pub conf_dir: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitFor {
    pub interfaces: Vec<WaitInterface>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitInterface {
    pub name: String,
    pub up: bool,
    pub cidr: Option<IpNetwork>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            log_file: None,
            log_level: LogLevel::Info,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            routes_restore: true,
            routes_restore_on_managed: true,
            routes_dhcp_grace_ms: DEFAULT_DHCP_GRACE_MS,
            rules: RulesConfig {
                selectors: Vec::new(),
                restore: true,
            },
            uplink: None,
            refuse: RefuseConfig {
                team: true,
                network_manager: true,
            },
            network_manager: NmDirs {
                run_dir: PathBuf::from(DEFAULT_NM_RUN_DIR),
                conf_dir: PathBuf::from(DEFAULT_NM_CONF_DIR),
            },
            wait_for: WaitFor {
                interfaces: Vec::new(),
                timeout_ms: DEFAULT_WAIT_TIMEOUT_MS,
            },
        }
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
    let plugin = parse_plugin(&root)?;
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

/// hostguard's own keys of one plugin entry (the conflist's hostguard object, or the file given to
/// `install --plugin-config` and `guard --plugin-config`): the one schema every reader uses.
pub fn parse_plugin(root: &Map<String, Value>) -> CniResult<PluginConfig> {
    let mut cfg = PluginConfig::default();
    if let Some(v) = present(root, "logFile") {
        cfg.log_file = Some(absolute_path(v, "logFile")?);
    }
    if let Some(v) = present(root, "logLevel") {
        cfg.log_level = match string(v, "logLevel")?.as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            other => {
                return Err(CniError::invalid_config(format!(
                    "logLevel {other:?} is not one of error, warn, info, debug"
                )))
            }
        };
    }
    if let Some(v) = present(root, "stateDir") {
        cfg.state_dir = absolute_path(v, "stateDir")?;
    }
    if let Some(v) = present(root, "routes") {
        let obj = object(v, "routes", &["restore", "restoreOnManaged", "dhcpGraceMs"])?;
        cfg.routes_restore = opt_bool(obj, "routes.restore", "restore")?.unwrap_or(true);
        cfg.routes_restore_on_managed =
            opt_bool(obj, "routes.restoreOnManaged", "restoreOnManaged")?.unwrap_or(true);
        if let Some(v) = present(obj, "dhcpGraceMs") {
            cfg.routes_dhcp_grace_ms = v.as_u64().filter(|ms| *ms <= 600_000).ok_or_else(|| {
                CniError::invalid_config(
                    "routes.dhcpGraceMs must be a whole number of milliseconds, at most 600000",
                )
            })?;
        }
    }
    if let Some(v) = present(root, "rules") {
        let obj = object(v, "rules", &["match", "restore"])?;
        cfg.rules.restore = opt_bool(obj, "rules.restore", "restore")?.unwrap_or(true);
        if let Some(list) = present(obj, "match") {
            let Value::Array(items) = list else {
                return Err(CniError::invalid_config(
                    "rules.match must be an array of selectors",
                ));
            };
            cfg.rules.selectors = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_selector(item, &format!("rules.match[{i}]")))
                .collect::<CniResult<_>>()?;
        }
    }
    if let Some(v) = present(root, "uplink") {
        let obj = object(v, "uplink", &["interface", "bridge"])?;
        let interface = ifname_key(obj, "uplink", "interface")?;
        let bridge = ifname_key(obj, "uplink", "bridge")?;
        if interface == bridge {
            return Err(CniError::invalid_config(format!(
                "uplink.interface and uplink.bridge are both {interface:?}"
            )));
        }
        cfg.uplink = Some(UplinkConfig { interface, bridge });
    }
    if let Some(v) = present(root, "refuse") {
        let obj = object(v, "refuse", &["team", "networkManager"])?;
        cfg.refuse.team = opt_bool(obj, "refuse.team", "team")?.unwrap_or(true);
        cfg.refuse.network_manager =
            opt_bool(obj, "refuse.networkManager", "networkManager")?.unwrap_or(true);
    }
    if let Some(v) = present(root, "networkManager") {
        let obj = object(v, "networkManager", &["runDir", "confDir"])?;
        if let Some(dir) = present(obj, "runDir") {
            cfg.network_manager.run_dir = absolute_path(dir, "networkManager.runDir")?;
        }
        if let Some(dir) = present(obj, "confDir") {
            cfg.network_manager.conf_dir = absolute_path(dir, "networkManager.confDir")?;
        }
    }
    if let Some(v) = present(root, "waitFor") {
        let obj = object(v, "waitFor", &["interfaces", "timeoutMs"])?;
        if let Some(ms) = present(obj, "timeoutMs") {
            let ms = ms.as_u64().ok_or_else(|| {
                CniError::invalid_config("waitFor.timeoutMs must be a non-negative integer")
            })?;
            if ms > MAX_WAIT_TIMEOUT_MS {
                return Err(CniError::invalid_config(format!(
                    "waitFor.timeoutMs {ms} is above {MAX_WAIT_TIMEOUT_MS}; the runtime would time \
                     the ADD out first"
                )));
            }
            cfg.wait_for.timeout_ms = ms;
        }
        if let Some(list) = present(obj, "interfaces") {
            let Value::Array(items) = list else {
                return Err(CniError::invalid_config(
                    "waitFor.interfaces must be an array",
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("waitFor.interfaces[{i}]");
                let obj = object(item, &path, &["name", "up", "cidr"])?;
                let name = ifname_key(obj, &path, "name")?;
                let up = opt_bool(obj, &format!("{path}.up"), "up")?.unwrap_or(false);
                let cidr = match present(obj, "cidr") {
                    Some(v) => Some(network(v, &format!("{path}.cidr"))?),
                    None => None,
                };
                cfg.wait_for
                    .interfaces
                    .push(WaitInterface { name, up, cidr });
            }
        }
    }
    Ok(cfg)
}

fn parse_selector(item: &Value, path: &str) -> CniResult<RuleSelector> {
    const KEYS: [&str; 8] = [
        "priority", "table", "src", "dst", "fwmark", "iif", "oif", "protocol",
    ];
    let obj = object(item, path, &KEYS)?;
    if obj.is_empty() {
        return Err(CniError::invalid_config(format!(
            "{path} is empty; it would select every rule of the host"
        )));
    }
    let u32_key = |key: &str| -> CniResult<Option<u32>> {
        match present(obj, key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    CniError::invalid_config(format!("{path}.{key} must be an integer 0..2^32"))
                }),
        }
    };
    let ifname = |key: &str| -> CniResult<Option<String>> {
        match present(obj, key) {
            None => Ok(None),
            Some(_) => ifname_key(obj, path, key).map(Some),
        }
    };
    Ok(RuleSelector {
        priority: u32_key("priority")?,
        table: u32_key("table")?,
        src: present(obj, "src")
            .map(|v| network(v, &format!("{path}.src")))
            .transpose()?,
        dst: present(obj, "dst")
            .map(|v| network(v, &format!("{path}.dst")))
            .transpose()?,
        fwmark: u32_key("fwmark")?,
        iif: ifname("iif")?,
        oif: ifname("oif")?,
        protocol: present(obj, "protocol")
            .map(|v| rule_protocol(v, &format!("{path}.protocol")))
            .transpose()?,
    })
}

/// `ip rule` protocol names from iproute2's rt_protos, or a number.
fn rule_protocol(v: &Value, path: &str) -> CniResult<u8> {
    if let Some(n) = v.as_u64() {
        return u8::try_from(n)
            .map_err(|_| CniError::invalid_config(format!("{path} {n} is above 255")));
    }
    let name = string(v, path)?;
    Ok(match name.as_str() {
        "unspec" => 0,
        "redirect" => 1,
        "kernel" => 2,
        "boot" => 3,
        "static" => 4,
        other => {
            return Err(CniError::invalid_config(format!(
                "{path} {other:?} is not a number or one of unspec, redirect, kernel, boot, static"
            )))
        }
    })
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

/// A key whose value is JSON null counts as absent, as the spec's optional fields do.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
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

/// Our own sections reject keys they do not know: a typo such as `routes.restor` would otherwise
/// silently turn a guard off.
fn object<'a>(v: &'a Value, path: &str, known: &[&str]) -> CniResult<&'a Map<String, Value>> {
    let Value::Object(obj) = v else {
        return Err(CniError::invalid_config(format!(
            "{path} must be an object, not {}",
            kind_of(v)
        )));
    };
    if let Some((key, value)) = obj.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        let mut shown = value.to_string();
        shown.truncate(80);
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("unsupported field {path}.{key} = {shown}"),
            format!("{path} accepts {}", known.join(", ")),
        ));
    }
    Ok(obj)
}

fn opt_bool(obj: &Map<String, Value>, path: &str, key: &str) -> CniResult<Option<bool>> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(CniError::invalid_config(format!(
            "{path} must be true or false, not {}",
            kind_of(other)
        ))),
    }
}

fn string(v: &Value, path: &str) -> CniResult<String> {
    v.as_str().map(str::to_string).ok_or_else(|| {
        CniError::invalid_config(format!("{path} must be a string, not {}", kind_of(v)))
    })
}

fn ifname_key(obj: &Map<String, Value>, path: &str, key: &str) -> CniResult<String> {
    let v = present(obj, key)
        .ok_or_else(|| CniError::invalid_config(format!("{path}.{key} is missing")))?;
    let name = string(v, &format!("{path}.{key}"))?;
    validate_ifname(&name)
        .map_err(|why| CniError::invalid_config(format!("{path}.{key} {why}")))?;
    Ok(name)
}

fn absolute_path(v: &Value, path: &str) -> CniResult<PathBuf> {
    let text = string(v, path)?;
    if !text.starts_with('/') || text.contains('\0') {
        return Err(CniError::invalid_config(format!(
            "{path} must be an absolute path, not {text:?}"
        )));
    }
    Ok(PathBuf::from(text))
}

fn network(v: &Value, path: &str) -> CniResult<IpNetwork> {
    let text = string(v, path)?;
    let net: IpNetwork = text.parse().map_err(|_| {
        CniError::invalid_config(format!(
            "{path} {text:?} is not a CIDR such as 10.244.0.0/16"
        ))
    })?;
    // Normalize 10.244.1.7/16 to 10.244.0.0/16 so that containment checks mean what they say.
    IpNetwork::new(normalize(net), net.prefix())
        .map_err(|_| CniError::invalid_config(format!("{path} {text:?} is not a valid CIDR")))
}

fn normalize(net: IpNetwork) -> IpAddr {
    net.network()
}

/// A JSON value's type as error messages name it ("is a number, expected ..."); the installer's
/// conflist checks word their messages the same way.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
    fn defaults_apply_when_keys_are_absent() {
        let c = conf("").unwrap();
        assert_eq!(c.plugin.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert!(c.plugin.routes_restore && c.plugin.rules.restore);
        assert!(c.plugin.refuse.team && c.plugin.refuse.network_manager);
        assert_eq!(c.plugin.wait_for.timeout_ms, DEFAULT_WAIT_TIMEOUT_MS);
        assert_eq!(c.plugin.routes_dhcp_grace_ms, DEFAULT_DHCP_GRACE_MS);
        let c = conf(r#","routes":{"dhcpGraceMs":250}"#).unwrap();
        assert_eq!(c.plugin.routes_dhcp_grace_ms, 250);
        assert_eq!(
            conf(r#","routes":{"dhcpGraceMs":"2s"}"#).unwrap_err().code,
            7
        );
        assert!(c.prev_result.is_none() && c.valid_attachments.is_none());
    }

    #[test]
    fn full_contract_example_parses() {
        let c = conf(
            r#","logFile":"/var/log/hostguard.log","logLevel":"debug","stateDir":"/s",
            "routes":{"restore":false},"rules":{"match":[{"priority":100,"table":77}],"restore":true},
            "uplink":{"interface":"eth1","bridge":"br-sec"},"refuse":{"team":true,"networkManager":false},
            "networkManager":{"runDir":"/r","confDir":"/c"},
            "waitFor":{"interfaces":[{"name":"tunl0","up":true,"cidr":"10.244.1.7/16"}],"timeoutMs":500}"#,
        )
        .unwrap();
        let p = c.plugin;
        assert_eq!(p.log_level, LogLevel::Debug);
        assert!(!p.routes_restore);
        assert_eq!(p.rules.selectors[0].table, Some(77));
        assert_eq!(p.uplink.unwrap().bridge, "br-sec");
        assert!(!p.refuse.network_manager);
        assert_eq!(p.network_manager.run_dir, PathBuf::from("/r"));
        let w = &p.wait_for.interfaces[0];
        assert_eq!(w.cidr.unwrap().to_string(), "10.244.0.0/16");
        assert!(w.up);
        assert_eq!(p.wait_for.timeout_ms, 500);
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
