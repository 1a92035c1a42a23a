//! The hostguard entry of a conflist: its types, its defaults, and the one function that reads it.
//!
//! Every reader goes through [`parse_entry`]: the plugin in CNI mode, `install --plugin-config`,
//! `hostguard validate`, and the guard daemon. An entry that one of them accepts, all of them
//! accept, so an installer can never write an entry that fails every pod on the node.
//!
//! The entry is read from the JSON object a runtime sends, which also carries the spec's keys
//! (`cniVersion`, `name`, `prevResult`, ...) and whatever else the operator put there: top-level
//! keys this module does not own are left alone. Inside hostguard's own sections an unknown key
//! is refused, because a typo such as `routes.restor` would otherwise silently turn a guard off.
//!
//! Errors say which key and why, and whether the key is unknown ([`ErrorKind::UnsupportedField`])
//! or its value is wrong ([`ErrorKind::Invalid`]); `crate::cni` turns these into CNI codes 2 and 7.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/hostguard";
pub const DEFAULT_RUN_DIR: &str = "/run/hostguard";
pub const DEFAULT_NM_RUN_DIR: &str = "/run/NetworkManager";
pub const DEFAULT_NM_CONF_DIR: &str = "/etc/NetworkManager";
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 15_000;
/// Runtimes give a whole CNI ADD about two to four minutes; waiting longer than this inside one
/// ADD would only turn "try again later" into a runtime-side timeout with no message.
pub const MAX_WAIT_TIMEOUT_MS: u64 = 120_000;
pub const DEFAULT_DHCP_GRACE_MS: u64 = 2_000;
/// A route an address daemon owns is left to that daemon for this long at most: a lease renewal
/// takes milliseconds, and a grace longer than an ADD may wait would never end inside one.
pub const MAX_DHCP_GRACE_MS: u64 = 60_000;
pub const DEFAULT_LOG_MAX_SIZE_MB: u64 = 10;
/// A log of a short-lived plugin that needs more than a GiB per file is a misconfiguration.
pub const MAX_LOG_MAX_SIZE_MB: u64 = 1024;
pub const DEFAULT_LOG_MAX_FILES: u32 = 3;
pub const MAX_LOG_MAX_FILES: u32 = 100;

/// The keys the entry may carry at its top level, besides the spec's own.
pub const ENTRY_KEYS: [&str; 13] = [
    "type",
    "logFile",
    "logLevel",
    "logMaxSizeMB",
    "logMaxFiles",
    "stateDir",
    "runDir",
    "routes",
    "rules",
    "uplink",
    "refuse",
    "networkManager",
    "waitFor",
];

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
    pub log_max_size_mb: u64,
    pub log_max_files: u32,
    /// Persistent: the baseline and the uplink records.
    pub state_dir: PathBuf,
    /// Per boot (a tmpfs): attachment records, the uplink journal, locks.
    pub run_dir: PathBuf,
    pub routes_restore: bool,
    /// Re-adding a recorded route on a NetworkManager-managed or team device is not a link
    /// change, so it is allowed unless this is false.
    pub routes_restore_on_managed: bool,
    /// How long a route owned by an address daemon (`proto dhcp`, `ra`, NetworkManager's) must
    /// stay missing before hostguard restores it.
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
            log_max_size_mb: DEFAULT_LOG_MAX_SIZE_MB,
            log_max_files: DEFAULT_LOG_MAX_FILES,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A key hostguard does not know inside one of its own sections.
    UnsupportedField,
    /// A known key with a value hostguard cannot use.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub msg: String,
    pub details: String,
}

/// What to tell the operator about a wrong value.
const FIX_THE_ENTRY: &str =
    "Fix the hostguard entry of the conflist; README.md lists every key and its values.";

impl ConfigError {
    fn invalid(msg: impl Into<String>) -> ConfigError {
        ConfigError {
            kind: ErrorKind::Invalid,
            msg: msg.into(),
            details: FIX_THE_ENTRY.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)
    }
}

impl std::error::Error for ConfigError {}

pub type ConfigResult<T> = Result<T, ConfigError>;

/// A plugin config file (`install --plugin-config`, `validate --plugin-config`) configures the
/// hostguard entry: install sets its `type`, so a `type` in the file may only say hostguard.
pub fn check_plugin_config_type(entry: &Map<String, Value>) -> ConfigResult<()> {
    match entry.get("type") {
        None => Ok(()),
        Some(Value::String(kind)) if kind == "hostguard" => Ok(()),
        Some(other) => Err(ConfigError::invalid(format!(
            "\"type\" is {other}; a plugin config configures the hostguard entry, so leave \
             \"type\" out"
        ))),
    }
}

/// The one parser of the hostguard entry. `entry` is the object the runtime sends (or the entry
/// as it stands in a conflist); keys outside hostguard's own are ignored.
pub fn parse_entry(entry: &Map<String, Value>) -> ConfigResult<PluginConfig> {
    let mut cfg = PluginConfig::default();
    let log = log_settings(entry)?;
    (cfg.log_file, cfg.log_level) = (log.file, log.level);
    (cfg.log_max_size_mb, cfg.log_max_files) = (log.max_size_mb, log.max_files);
    cfg.state_dir = state_dir(entry)?;
    cfg.run_dir = run_dir(entry)?;
    if let Some(v) = present(entry, "routes") {
        let obj = object(v, "routes", &["restore", "restoreOnManaged", "dhcpGraceMs"])?;
        cfg.routes_restore = opt_bool(obj, "routes.restore", "restore")?.unwrap_or(true);
        cfg.routes_restore_on_managed =
            opt_bool(obj, "routes.restoreOnManaged", "restoreOnManaged")?.unwrap_or(true);
        if let Some(ms) = present(obj, "dhcpGraceMs") {
            cfg.routes_dhcp_grace_ms = bounded(ms, "routes.dhcpGraceMs", 0, MAX_DHCP_GRACE_MS)?;
        }
    }
    if let Some(v) = present(entry, "rules") {
        let obj = object(v, "rules", &["match", "restore"])?;
        cfg.rules.restore = opt_bool(obj, "rules.restore", "restore")?.unwrap_or(true);
        if let Some(list) = present(obj, "match") {
            let Value::Array(items) = list else {
                return Err(ConfigError::invalid(
                    "rules.match must be an array of selectors",
                ));
            };
            cfg.rules.selectors = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_selector(item, &format!("rules.match[{i}]")))
                .collect::<ConfigResult<_>>()?;
        }
    }
    if let Some(v) = present(entry, "uplink") {
        let obj = object(v, "uplink", &["interface", "bridge"])?;
        let interface = ifname_key(obj, "uplink", "interface")?;
        let bridge = ifname_key(obj, "uplink", "bridge")?;
        if interface == bridge {
            return Err(ConfigError::invalid(format!(
                "uplink.interface and uplink.bridge are both {interface:?}; the interface moves \
                 into a bridge of another name"
            )));
        }
        cfg.uplink = Some(UplinkConfig { interface, bridge });
    }
    if let Some(v) = present(entry, "refuse") {
        let obj = object(v, "refuse", &["team", "networkManager"])?;
        cfg.refuse.team = opt_bool(obj, "refuse.team", "team")?.unwrap_or(true);
        cfg.refuse.network_manager =
            opt_bool(obj, "refuse.networkManager", "networkManager")?.unwrap_or(true);
    }
    if let Some(v) = present(entry, "networkManager") {
        let obj = object(v, "networkManager", &["runDir", "confDir"])?;
        if let Some(dir) = present(obj, "runDir") {
            cfg.network_manager.run_dir = absolute_path(dir, "networkManager.runDir")?;
        }
        if let Some(dir) = present(obj, "confDir") {
            cfg.network_manager.conf_dir = absolute_path(dir, "networkManager.confDir")?;
        }
    }
    if let Some(v) = present(entry, "waitFor") {
        cfg.wait_for = wait_for(v)?;
    }
    Ok(cfg)
}

/// `stateDir` alone, read as [`parse_entry`] reads it: for DEL, which needs nothing else.
pub fn state_dir(entry: &Map<String, Value>) -> ConfigResult<PathBuf> {
    match present(entry, "stateDir") {
        Some(v) => absolute_path(v, "stateDir"),
        None => Ok(PathBuf::from(DEFAULT_STATE_DIR)),
    }
}

/// `runDir` alone, read as [`parse_entry`] reads it: for DEL, which needs nothing else.
pub fn run_dir(entry: &Map<String, Value>) -> ConfigResult<PathBuf> {
    match present(entry, "runDir") {
        Some(v) => absolute_path(v, "runDir"),
        None => Ok(PathBuf::from(DEFAULT_RUN_DIR)),
    }
}

/// `logFile` and `logLevel` alone, read as [`parse_entry`] reads them: DEL logs where the
/// operator asked even when another key of the entry is broken.
/// The log keys alone, for DEL, which logs whatever else is wrong with its configuration.
#[derive(Debug)]
pub struct LogSettings {
    pub file: Option<PathBuf>,
    pub level: LogLevel,
    pub max_size_mb: u64,
    pub max_files: u32,
}

pub fn log_settings(entry: &Map<String, Value>) -> ConfigResult<LogSettings> {
    let file = present(entry, "logFile")
        .map(|v| absolute_path(v, "logFile"))
        .transpose()?;
    let level = match present(entry, "logLevel") {
        None => LogLevel::Info,
        Some(v) => match string(v, "logLevel")?.as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            other => {
                return Err(ConfigError::invalid(format!(
                    "logLevel {:?} is not one of error, warn, info, debug",
                    shorten(other)
                )))
            }
        },
    };
    let max_size_mb = match present(entry, "logMaxSizeMB") {
        Some(v) => bounded(v, "logMaxSizeMB", 1, MAX_LOG_MAX_SIZE_MB)?,
        None => DEFAULT_LOG_MAX_SIZE_MB,
    };
    let max_files = match present(entry, "logMaxFiles") {
        Some(v) => bounded(v, "logMaxFiles", 1, u64::from(MAX_LOG_MAX_FILES))? as u32,
        None => DEFAULT_LOG_MAX_FILES,
    };
    Ok(LogSettings {
        file,
        level,
        max_size_mb,
        max_files,
    })
}

fn wait_for(v: &Value) -> ConfigResult<WaitFor> {
    let obj = object(v, "waitFor", &["interfaces", "timeoutMs"])?;
    let mut out = WaitFor {
        interfaces: Vec::new(),
        timeout_ms: DEFAULT_WAIT_TIMEOUT_MS,
    };
    if let Some(ms) = present(obj, "timeoutMs") {
        let ms = ms.as_u64().ok_or_else(|| {
            ConfigError::invalid("waitFor.timeoutMs must be a non-negative integer")
        })?;
        if ms > MAX_WAIT_TIMEOUT_MS {
            return Err(ConfigError::invalid(format!(
                "waitFor.timeoutMs {ms} is above {MAX_WAIT_TIMEOUT_MS}; the runtime would time \
                 the ADD out first"
            )));
        }
        out.timeout_ms = ms;
    }
    if let Some(list) = present(obj, "interfaces") {
        let Value::Array(items) = list else {
            return Err(ConfigError::invalid("waitFor.interfaces must be an array"));
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
            out.interfaces.push(WaitInterface { name, up, cidr });
        }
    }
    Ok(out)
}

fn parse_selector(item: &Value, path: &str) -> ConfigResult<RuleSelector> {
    const KEYS: [&str; 8] = [
        "priority", "table", "src", "dst", "fwmark", "iif", "oif", "protocol",
    ];
    let obj = object(item, path, &KEYS)?;
    if obj.is_empty() {
        return Err(ConfigError::invalid(format!(
            "{path} is empty; it would select every rule of the host"
        )));
    }
    let u32_key = |key: &str| -> ConfigResult<Option<u32>> {
        match present(obj, key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    ConfigError::invalid(format!("{path}.{key} must be an integer 0..2^32"))
                }),
        }
    };
    let ifname = |key: &str| -> ConfigResult<Option<String>> {
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
fn rule_protocol(v: &Value, path: &str) -> ConfigResult<u8> {
    if let Some(n) = v.as_u64() {
        return u8::try_from(n)
            .map_err(|_| ConfigError::invalid(format!("{path} {n} is above 255")));
    }
    let name = string(v, path)?;
    Ok(match name.as_str() {
        "unspec" => 0,
        "redirect" => 1,
        "kernel" => 2,
        "boot" => 3,
        "static" => 4,
        other => {
            return Err(ConfigError::invalid(format!(
                "{path} {:?} is not a number or one of unspec, redirect, kernel, boot, static",
                shorten(other)
            )))
        }
    })
}

/// A key whose value is JSON null counts as absent, as the spec's optional fields do.
pub fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, path: &str, known: &[&str]) -> ConfigResult<&'a Map<String, Value>> {
    let Value::Object(obj) = v else {
        return Err(ConfigError::invalid(format!(
            "{path} must be an object, not {}",
            kind_of(v)
        )));
    };
    if let Some((key, value)) = obj.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        let mut shown = value.to_string();
        shown.truncate(80);
        return Err(ConfigError {
            kind: ErrorKind::UnsupportedField,
            msg: format!("unsupported field {path}.{} = {shown}", shorten(key)),
            details: format!(
                "{path} accepts {}. Correct the key's spelling, or remove it if it belongs to a \
                 newer hostguard.",
                known.join(", ")
            ),
        });
    }
    Ok(obj)
}

fn opt_bool(obj: &Map<String, Value>, path: &str, key: &str) -> ConfigResult<Option<bool>> {
    match present(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ConfigError::invalid(format!(
            "{path} must be true or false, not {}",
            kind_of(other)
        ))),
    }
}

/// An integer in `min..=max`, the bounds named in the error.
fn bounded(v: &Value, path: &str, min: u64, max: u64) -> ConfigResult<u64> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::invalid(format!(
            "{path} must be an integer from {min} to {max}, not {}",
            shorten(&v.to_string())
        ))),
    }
}

fn string(v: &Value, path: &str) -> ConfigResult<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| ConfigError::invalid(format!("{path} must be a string, not {}", kind_of(v))))
}

fn ifname_key(obj: &Map<String, Value>, path: &str, key: &str) -> ConfigResult<String> {
    let v = present(obj, key)
        .ok_or_else(|| ConfigError::invalid(format!("{path}.{key} is missing")))?;
    let name = string(v, &format!("{path}.{key}"))?;
    validate_ifname(&name).map_err(|why| ConfigError::invalid(format!("{path}.{key} {why}")))?;
    Ok(name)
}

fn absolute_path(v: &Value, path: &str) -> ConfigResult<PathBuf> {
    let text = string(v, path)?;
    if !text.starts_with('/') || text.contains('\0') {
        return Err(ConfigError::invalid(format!(
            "{path} must be an absolute path, not {:?}",
            shorten(&text)
        )));
    }
    Ok(PathBuf::from(text))
}

fn network(v: &Value, path: &str) -> ConfigResult<IpNetwork> {
    let text = string(v, path)?;
    let net: IpNetwork = text.parse().map_err(|_| {
        ConfigError::invalid(format!(
            "{path} {:?} is not a CIDR such as 10.244.0.0/16",
            shorten(&text)
        ))
    })?;
    // Normalize 10.244.1.7/16 to 10.244.0.0/16 so that containment checks mean what they say.
    IpNetwork::new(normalize(net), net.prefix())
        .map_err(|_| ConfigError::invalid(format!("{path} {text:?} is not a valid CIDR")))
}

fn normalize(net: IpNetwork) -> IpAddr {
    net.network()
}

/// libcni's `ValidateInterfaceName`: 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    let shown = shorten(name);
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 15 {
        return Err(format!("{shown:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(format!("{shown:?} contains {bad:?}"));
    }
    Ok(())
}

/// Hostile values can be megabytes long; error messages quote only their start.
pub fn shorten(text: &str) -> String {
    const KEEP: usize = 64;
    match text.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A JSON value's type as error messages name it ("is a number, expected ..."); the installer's
/// conflist checks word their messages the same way.
pub fn kind_of(v: &Value) -> &'static str {
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

    fn entry(extra: &str) -> ConfigResult<PluginConfig> {
        let text = format!(r#"{{"type":"hostguard"{extra}}}"#);
        let map: Map<String, Value> = serde_json::from_str(&text).unwrap();
        parse_entry(&map)
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let c = entry("").unwrap();
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(c.run_dir, PathBuf::from("/run/hostguard"));
        assert!(c.routes_restore && c.rules.restore && c.routes_restore_on_managed);
        assert_eq!(c.routes_dhcp_grace_ms, 2000);
        assert_eq!((c.log_max_size_mb, c.log_max_files), (10, 3));
        assert!(c.refuse.team && c.refuse.network_manager);
        assert_eq!(c.wait_for.timeout_ms, DEFAULT_WAIT_TIMEOUT_MS);
    }

    #[test]
    fn full_contract_example_parses() {
        let p = entry(
            r#","logFile":"/var/log/hostguard.log","logLevel":"debug","stateDir":"/s",
            "runDir":"/run/hg",
            "logMaxSizeMB":20,"logMaxFiles":5,
            "routes":{"restore":false,"restoreOnManaged":false,"dhcpGraceMs":500},
            "rules":{"match":[{"priority":100,"table":77}],"restore":true},
            "uplink":{"interface":"eth1","bridge":"br-sec"},"refuse":{"team":true,"networkManager":false},
            "networkManager":{"runDir":"/r","confDir":"/c"},
            "waitFor":{"interfaces":[{"name":"tunl0","up":true,"cidr":"10.244.1.7/16"}],"timeoutMs":500}"#,
        )
        .unwrap();
        assert_eq!(p.log_level, LogLevel::Debug);
        assert_eq!(p.state_dir, PathBuf::from("/s"));
        assert_eq!(p.run_dir, PathBuf::from("/run/hg"));
        assert_eq!((p.log_max_size_mb, p.log_max_files), (20, 5));
        assert!(!p.routes_restore && !p.routes_restore_on_managed);
        assert_eq!(p.routes_dhcp_grace_ms, 500);
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
    fn errors_name_the_key_and_their_kind() {
        use ErrorKind::{Invalid, UnsupportedField};
        let cases = [
            (
                r#","routes":{"restor":true}"#,
                UnsupportedField,
                "routes.restor",
            ),
            (r#","routes":{"restore":"yes"}"#, Invalid, "routes.restore"),
            (r#","routes":{"dhcpGraceMs":60001}"#, Invalid, "dhcpGraceMs"),
            (r#","routes":{"dhcpGraceMs":-1}"#, Invalid, "dhcpGraceMs"),
            (r#","routes":{"dhcpGraceMs":"1"}"#, Invalid, "dhcpGraceMs"),
            (
                r#","routes":{"restoreOnManaged":1}"#,
                Invalid,
                "restoreOnManaged",
            ),
            (r#","logMaxSizeMB":0"#, Invalid, "logMaxSizeMB"),
            (r#","logMaxSizeMB":1025"#, Invalid, "logMaxSizeMB"),
            (r#","logMaxFiles":0"#, Invalid, "logMaxFiles"),
            (r#","logMaxFiles":1.5"#, Invalid, "logMaxFiles"),
            (r#","logLevel":"verbose""#, Invalid, "logLevel"),
            (
                r#","uplink":{"interface":"eth1"}"#,
                Invalid,
                "uplink.bridge",
            ),
            (
                r#","uplink":{"interface":"eth1","bridge":"eth1"}"#,
                Invalid,
                "uplink.interface",
            ),
            (
                r#","uplink":{"interface":"a/b","bridge":"br"}"#,
                Invalid,
                "uplink.interface",
            ),
            (r#","stateDir":"relative""#, Invalid, "stateDir"),
            (r#","runDir":"run/hostguard""#, Invalid, "runDir"),
            (r#","runDir":"""#, Invalid, "runDir"),
            (r#","runDir":7"#, Invalid, "runDir"),
            (r#","runDir":"/run/a\u0000b""#, Invalid, "runDir"),
            (
                r#","waitFor":{"interfaces":[{"name":"x","cidr":"nope"}]}"#,
                Invalid,
                "cidr",
            ),
            (r#","waitFor":{"timeoutMs":600000}"#, Invalid, "timeoutMs"),
            (r#","rules":{"match":[{}]}"#, Invalid, "rules.match[0]"),
        ];
        for (extra, kind, needle) in cases {
            let err = entry(extra).expect_err(extra);
            assert_eq!(err.kind, kind, "{extra}: {err}");
            assert!(err.msg.contains(needle), "{extra}: {err}");
        }
    }

    #[test]
    fn foreign_top_level_keys_are_left_alone() {
        let c = entry(r#","x-vendor":{"a":1},"capabilities":{"portMappings":true}"#).unwrap();
        assert!(c.uplink.is_none());
    }

    #[test]
    fn del_reads_state_dir_alone() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"stateDir":"/s","runDir":"/r","routes":{"restor":1}}"#)
                .unwrap();
        assert!(parse_entry(&map).is_err());
        assert_eq!(state_dir(&map).unwrap(), PathBuf::from("/s"));
        assert_eq!(run_dir(&map).unwrap(), PathBuf::from("/r"));
        let bare = Map::new();
        assert_eq!(run_dir(&bare).unwrap(), PathBuf::from(DEFAULT_RUN_DIR));
    }

    #[test]
    fn ifnames_follow_libcni() {
        for good in ["eth0", "a", "123456789012345", "net-1.2"] {
            assert!(validate_ifname(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "1234567890123456",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }
}
