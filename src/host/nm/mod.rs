//! Is a host link managed by NetworkManager? Incident 5: a CNI that took an NM-managed team away
//! from NetworkManager cut the node off, so hostguard refuses to touch NM-managed links (code 102).
//!
//! The answer comes from files only (no D-Bus, which may be absent or slow in a CNI call):
//! NetworkManager's runtime record `runDir/devices/<ifindex>`, whether a NetworkManager process is
//! alive, and its configuration, read in NetworkManager's own order.
//!
//! # Which source wins
//! While NetworkManager runs, its runtime record wins over the configuration: it is what the
//! running daemon decided, including decisions no configuration file shows (`nmcli device set X
//! managed yes|no` over D-Bus, udev's `NM_UNMANAGED`), and configuration edits only take effect
//! after `nmcli general reload conf` or a restart. `managed=true` therefore refuses even when a newer
//! `unmanaged-devices` entry matches (the evidence says a reload is pending), and `managed=false`
//! allows even when the configuration would manage the link (the evidence says it would be managed
//! again once `/run` is cleared at reboot). The configuration decides only when the record has no
//! `managed=` entry: a match in `[keyfile] unmanaged-devices` (which NetworkManager itself treats as
//! authoritative, not overridable) or a matching `[device*]` section with `managed=false` means
//! unmanaged; anything else counts as managed, because refusing is the safe way to be wrong. Nothing
//! counts while NetworkManager is not running: a record left in `/run` by a stopped daemon is stale,
//! and nobody acts on the configuration until it starts again.
//!
//! # Which files, in which order
//! As NetworkManager reads them (`read_entire_config()` in `nm-config.c`): `*.conf` in
//! `libDir/conf.d` (default `/usr/lib/NetworkManager/conf.d`) unless a file of the same name is in
//! the run or etc `conf.d`; then `runDir/conf.d/*.conf` unless shadowed by the etc `conf.d`; then
//! `confDir/NetworkManager.conf`; then `confDir/conf.d/*.conf`. Each directory is sorted by file
//! name (byte order); a later file overrides earlier keys, `unmanaged-devices+=` / `-=` add to or
//! remove from the list instead of replacing it, and a file with `[.config] enable=false` is
//! skipped. So the contract's `networkManager.runDir` holds both the device records and the
//! per-boot `conf.d`, and `networkManager.confDir` the main file and the administrator's `conf.d`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use netlink_packet_route::link::LinkLayerType;

use crate::keyfile::{self, Dialect};
use crate::netlink::{format_mac, InfoKind, LinkExt, LinkMessage};

/// Where NetworkManager keeps its state and configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NmPaths {
    /// `/run/NetworkManager`: `devices/<ifindex>`, `NetworkManager.pid`, per-boot `conf.d`.
    pub run_dir: PathBuf,
    /// `/etc/NetworkManager`: `NetworkManager.conf` and the administrator's `conf.d`.
    pub conf_dir: PathBuf,
    /// `/usr/lib/NetworkManager`: `conf.d` snippets shipped by packages.
    pub lib_dir: PathBuf,
    /// `/proc`, where a live NetworkManager process is looked for.
    pub proc_dir: PathBuf,
    /// The root the files are read in: `/`, or the doctor's `--root`, inside which every
    /// symbolic link is resolved (`crate::rootfs`).
    pub root: PathBuf,
}

impl Default for NmPaths {
    fn default() -> Self {
        NmPaths::new("/run/NetworkManager", "/etc/NetworkManager")
    }
}

impl NmPaths {
    /// The contract's `networkManager.runDir` / `confDir`, with the system's lib dir and /proc.
    pub fn new(run_dir: impl Into<PathBuf>, conf_dir: impl Into<PathBuf>) -> Self {
        NmPaths {
            run_dir: run_dir.into(),
            conf_dir: conf_dir.into(),
            lib_dir: PathBuf::from("/usr/lib/NetworkManager"),
            proc_dir: PathBuf::from("/proc"),
            root: PathBuf::from("/"),
        }
    }

    /// The standard locations below `root` (the doctor's `--root`); processes are looked for in
    /// `root/proc`, which is the real one when `root` is `/`.
    pub fn under_root(root: &Path) -> Self {
        NmPaths {
            run_dir: root.join("run/NetworkManager"),
            conf_dir: root.join("etc/NetworkManager"),
            lib_dir: root.join("usr/lib/NetworkManager"),
            proc_dir: root.join("proc"),
            root: root.to_path_buf(),
        }
    }

    /// `path` with its symbolic links resolved inside [`NmPaths::root`].
    pub fn at(&self, path: &Path) -> PathBuf {
        crate::rootfs::confine(&self.root, path)
    }
}

/// What NetworkManager's matching looks at for one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFacts {
    pub name: String,
    pub ifindex: u32,
    /// Lowercase `aa:bb:cc:dd:ee:ff`; the permanent address when the kernel reports one (that is
    /// what `mac:` specs match), else the current one.
    pub mac: Option<String>,
    /// NetworkManager's device type name, as `type:` specs and `nmcli -f GENERAL.TYPE` spell it.
    pub nm_type: String,
}

impl LinkFacts {
    /// Facts for a link known by name only; `kernel_kind` is `IFLA_INFO_KIND` (None for a NIC).
    pub fn new(name: &str, ifindex: u32, mac: Option<&str>, kernel_kind: Option<&str>) -> Self {
        LinkFacts {
            name: name.to_owned(),
            ifindex,
            mac: mac.map(str::to_ascii_lowercase),
            nm_type: nm_type_for_kind(kernel_kind, None).to_owned(),
        }
    }

    pub fn from_message(msg: &LinkMessage) -> Option<Self> {
        let name = msg.name()?;
        let kind = msg.kind().map(|k| k.to_string());
        let nm_type = match msg.kind() {
            Some(InfoKind::Other(other)) => other.clone(),
            _ => nm_type_for_kind(kind.as_deref(), Some(msg.header.link_layer_type)).to_owned(),
        };
        Some(LinkFacts {
            name: name.to_owned(),
            ifindex: msg.header.index,
            // The permanent address is what NetworkManager's `mac:` specs match; an empty
            // address attribute is no address at all.
            mac: [msg.permanent_mac(), msg.mac()]
                .into_iter()
                .flatten()
                .find(|mac| !mac.is_empty())
                .map(format_mac),
            nm_type,
        })
    }
}

/// NetworkManager's type name for a kernel link kind (`nm_device_get_type_description()`); kinds
/// NetworkManager has no device class for appear as NMDeviceGeneric under their kernel name.
pub fn nm_type_for_kind(kind: Option<&str>, link_layer: Option<LinkLayerType>) -> &str {
    match kind {
        None => match link_layer {
            Some(LinkLayerType::Loopback) => "loopback",
            Some(LinkLayerType::Infiniband) => "infiniband",
            _ => "ethernet",
        },
        Some("macvtap") => "macvlan",
        Some("ipip" | "gre" | "gretap" | "sit" | "ip6tnl" | "ip6gre" | "ip6gretap" | "vti")
        | Some("vti6" | "erspan" | "ip6erspan") => "ip-tunnel",
        Some(other) => other,
    }
}

/// NetworkManager's answer for one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NmVerdict {
    Managed { evidence: String },
    Unmanaged { evidence: String },
    NotRunning { evidence: String },
}

impl NmVerdict {
    pub fn is_managed(&self) -> bool {
        matches!(self, NmVerdict::Managed { .. })
    }

    pub fn evidence(&self) -> &str {
        match self {
            NmVerdict::Managed { evidence }
            | NmVerdict::Unmanaged { evidence }
            | NmVerdict::NotRunning { evidence } => evidence,
        }
    }
}

/// Decides whether NetworkManager manages `link` (see the module documentation for the
/// precedence). Errors (a malformed configuration or state file) name the file and line; callers
/// that guard the host should treat an error as "managed".
pub fn nm_verdict(paths: &NmPaths, link: &LinkFacts) -> Result<NmVerdict> {
    let record_path = paths.at(&paths.run_dir.join("devices").join(link.ifindex.to_string()));
    let record_name = format!("devices/{}", link.ifindex);
    let running = match find_process(paths) {
        NmProcess::Running { pid } => format!("pid {pid}"),
        NmProcess::Presumed => format!(
            "presumed: this PID namespace cannot see the host's processes, and {} shows it ran \
             since boot",
            paths.run_dir.join("devices").display()
        ),
        NmProcess::NotRunning => {
            let stale = if record_path.exists() {
                format!("; {record_name} is left over from an earlier run and is ignored")
            } else {
                String::new()
            };
            return Ok(NmVerdict::NotRunning {
                evidence: format!(
                    "NetworkManager is not running (no live NetworkManager process in {}){stale}",
                    paths.proc_dir.display()
                ),
            });
        }
    };
    let recorded = read_device_record(&record_path)?;
    let config = NmConfig::load(paths)?;
    let decision = config.decide(&DeviceMatch::from(link));
    let name = &link.name;
    Ok(match (recorded, decision) {
        (Some(true), ConfigDecision::Unmanaged { how }) => NmVerdict::Managed {
            evidence: format!(
                "{name} is managed by NetworkManager: {record_name} managed=true (the configuration now says unmanaged: {how}; it takes effect after `nmcli general reload conf`)"
            ),
        },
        (Some(true), _) => NmVerdict::Managed {
            evidence: format!("{name} is managed by NetworkManager: {record_name} managed=true"),
        },
        (Some(false), ConfigDecision::Unmanaged { how }) => NmVerdict::Unmanaged {
            evidence: format!(
                "{name} is not managed by NetworkManager: {record_name} managed=false, and {how}"
            ),
        },
        (Some(false), _) => NmVerdict::Unmanaged {
            evidence: format!(
                "{name} is not managed by NetworkManager: {record_name} managed=false (a runtime decision such as `nmcli device set {name} managed no`; the configuration would manage it again after a reboot)"
            ),
        },
        (None, ConfigDecision::Unmanaged { how }) => NmVerdict::Unmanaged {
            evidence: format!("{name} is not managed by NetworkManager: {how}"),
        },
        (None, ConfigDecision::Managed { how }) => NmVerdict::Managed {
            evidence: format!(
                "{name} is managed by NetworkManager ({running}): {how}, and {record_name} has no managed= entry"
            ),
        },
        (None, ConfigDecision::Default) => NmVerdict::Managed {
            evidence: format!(
                "{name} is treated as managed by NetworkManager: it is running ({running}), {record_name} has no managed= entry, and no unmanaged-devices or [device] managed=false setting matches {name}"
            ),
        },
    })
}

/// The effective `[keyfile] unmanaged-devices` specs, each with the file that contributed it.
pub fn unmanaged_specs(paths: &NmPaths) -> Result<Vec<UnmanagedSpec>> {
    Ok(NmConfig::load(paths)?.unmanaged)
}

/// Reads `devices/<ifindex>`: `Some(managed)` when it says, `None` when there is no file or no key.
fn read_device_record(path: &Path) -> Result<Option<bool>> {
    if !path.exists() {
        return Ok(None);
    }
    let parsed = read_gkeyfile(
        path,
        "read NetworkManager's device state; restarting NetworkManager rewrites it",
        "; restarting NetworkManager rewrites this file",
    )?;
    let Some(entry) = parsed.last("device", "managed") else {
        return Ok(None);
    };
    match keyfile::parse_nm_bool(&entry.value) {
        Some(value) => Ok(Some(value)),
        None => anyhow::bail!(
            "{}: line {}: managed={:?} is not a boolean",
            path.display(),
            entry.line,
            entry.value
        ),
    }
}

/// Reads and parses a GKeyFile of NetworkManager's. A syntax error is an error naming the file and
/// line, followed by `after_problem`, which tells the operator what fixes it.
fn read_gkeyfile(
    path: &Path,
    unreadable: &'static str,
    after_problem: &str,
) -> Result<keyfile::Parsed> {
    let text = keyfile::read_config_file(path).context(unreadable)?;
    let parsed = keyfile::parse(&text, Dialect::GKeyFile);
    if let Some(problem) = parsed.problems.first() {
        anyhow::bail!(
            "{}: line {}: {}{after_problem}",
            path.display(),
            problem.line,
            problem.message
        );
    }
    Ok(parsed)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NmProcess {
    Running {
        pid: u32,
    },
    /// No NetworkManager process is visible, but this PID namespace cannot see the host's
    /// processes (a container without the host's PID namespace), and NetworkManager's per-boot
    /// runtime directory shows it ran since boot: it counts as running, since refusing is the
    /// safe way to be wrong.
    Presumed,
    NotRunning,
}

/// Looks for a live process whose `comm` is `NetworkManager`, in the caller's network namespace
/// (when that cannot be read, it counts: refusing is the safe way to be wrong): first the pid in
/// `runDir/NetworkManager.pid` (written only when NetworkManager daemonizes itself), then every
/// process, because under systemd it runs with `--no-daemon` and writes no pid file.
pub fn find_process(paths: &NmPaths) -> NmProcess {
    // NetworkManager manages the links of its own network namespace only; one running in
    // another namespace (a container's, a test's) has no say over ours.
    let own_netns = std::fs::read_link("/proc/thread-self/ns/net").ok();
    let elsewhere = |pid: u32| {
        let theirs = std::fs::read_link(paths.proc_dir.join(pid.to_string()).join("ns/net"));
        matches!((&own_netns, theirs), (Some(own), Ok(theirs)) if *own != theirs)
    };
    let is_nm = |pid: u32| {
        std::fs::read(paths.proc_dir.join(pid.to_string()).join("comm"))
            .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == b"NetworkManager")
            && !elsewhere(pid)
    };
    let pid_file = paths.at(&paths.run_dir.join("NetworkManager.pid"));
    if let Ok(text) = keyfile::read_config_file(&pid_file) {
        if let Ok(pid) = text.trim().parse::<u32>() {
            if is_nm(pid) {
                return NmProcess::Running { pid };
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(&paths.proc_dir) else {
        return NmProcess::NotRunning;
    };
    let seen = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| is_nm(*pid));
    match seen {
        Some(pid) => NmProcess::Running { pid },
        None if !sees_host_processes(&paths.proc_dir) && paths.run_dir.join("devices").is_dir() => {
            NmProcess::Presumed
        }
        None => NmProcess::NotRunning,
    }
}

/// Whether `proc_dir` shows the host's processes, not only a container's. The host's PID
/// namespace is the only one where pid 2 is the kernel's `kthreadd`. A directory that is not a
/// mounted procfs (no `self`) is taken at its word: tests and `doctor --root` build such trees.
fn sees_host_processes(proc_dir: &Path) -> bool {
    if !proc_dir.join("self").exists() {
        return true;
    }
    std::fs::read(proc_dir.join("2/comm"))
        .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == b"kthreadd")
}

// ----- device specs -----

/// What a device spec is matched against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMatch {
    pub interface_name: String,
    pub device_type: Option<String>,
    pub hwaddr: Option<Vec<u8>>,
}

impl From<&LinkFacts> for DeviceMatch {
    fn from(link: &LinkFacts) -> Self {
        DeviceMatch {
            interface_name: link.name.clone(),
            device_type: Some(link.nm_type.clone()),
            hwaddr: link.mac.as_deref().and_then(parse_hwaddr),
        }
    }
}

/// The outcome of matching a spec list (`nm_match_spec_device()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecMatch {
    /// Matched; the spec that did it (or the except: specs of an except-only list).
    Match(String),
    /// An `except:` spec matched: explicitly not this device.
    NegativeMatch(String),
    NoMatch,
}

/// Splits a device spec list on `,` and `;` with NetworkManager's escapes (`\,` `\;` `\s` `\t`
/// `\n` `\r` `\\`), trimming unescaped whitespace around each spec (`nm_match_spec_split()`).
pub fn split_specs(value: &str) -> Vec<String> {
    let mut specs = Vec::new();
    let mut current = String::new();
    let mut trailing_ws = 0usize;
    let mut chars = value.trim_start().chars();
    let mut push = |current: &mut String, trailing_ws: usize| {
        let keep = current.len() - trailing_ws;
        if keep > 0 {
            specs.push(current[..keep].to_owned());
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                match chars.next() {
                    Some('s') => current.push(' '),
                    Some('t') => current.push('\t'),
                    Some('n') => current.push('\n'),
                    Some('r') => current.push('\r'),
                    Some('\\') => current.push('\\'),
                    Some(sep @ (',' | ';')) => current.push(sep),
                    Some(other) => {
                        current.push('\\');
                        current.push(other);
                    }
                    None => {}
                }
                trailing_ws = 0;
            }
            ',' | ';' => {
                push(&mut current, trailing_ws);
                trailing_ws = 0;
                chars = chars.as_str().trim_start().chars();
            }
            c if c.is_ascii_whitespace() => {
                current.push(c);
                trailing_ws += 1;
            }
            c => {
                current.push(c);
                trailing_ws = 0;
            }
        }
    }
    push(&mut current, trailing_ws);
    specs
}

/// Matches `device` against a spec list with NetworkManager's rules: `*`;
/// `interface-name:NAME` (`*`/`?` globs; `~` also globs; `=` is literal); `mac:HWADDR`;
/// `type:TYPE`; bare `NAME` or `HWADDR`; `except:SPEC` negates and beats every positive match; a
/// list of only `except:` specs matches every device none of them matches. `driver:`,
/// `s390-subchannels:` and `dhcp-plugin:` cannot be evaluated from files and never match.
pub fn match_specs<S: AsRef<str>>(specs: &[S], device: &DeviceMatch) -> SpecMatch {
    let mut has_except = false;
    let mut has_positive = false;
    let mut positive: Option<String> = None;
    let mut negative: Option<String> = None;
    let mut excepts = Vec::new();
    for spec in specs {
        let spec = spec.as_ref();
        if spec.is_empty() {
            continue;
        }
        let (except, body) = match strip_tag(spec, "except:") {
            Some(body) => (true, body),
            None => (false, spec),
        };
        if except {
            has_except = true;
            excepts.push(spec.to_owned());
            if negative.is_none() && spec_matches(body, device, false) {
                negative = Some(spec.to_owned());
            }
        } else {
            has_positive = true;
            if positive.is_none() && spec_matches(body, device, true) {
                positive = Some(spec.to_owned());
            }
        }
    }
    if let Some(spec) = negative {
        return SpecMatch::NegativeMatch(spec);
    }
    if has_except && !has_positive {
        return SpecMatch::Match(excepts.join(","));
    }
    positive.map_or(SpecMatch::NoMatch, SpecMatch::Match)
}

fn strip_tag<'a>(spec: &'a str, tag: &str) -> Option<&'a str> {
    let head = spec.get(..tag.len())?;
    head.eq_ignore_ascii_case(tag).then(|| &spec[tag.len()..])
}

fn spec_matches(spec: &str, device: &DeviceMatch, allow_bare: bool) -> bool {
    if spec == "*" {
        return true;
    }
    if let Some(kind) = strip_tag(spec, "type:") {
        return device.device_type.as_deref() == Some(kind);
    }
    if let Some(mac) = strip_tag(spec, "mac:") {
        return hwaddr_matches(mac, device);
    }
    if let Some(name) = strip_tag(spec, "interface-name:") {
        return match name.strip_prefix('=') {
            Some(literal) => literal == device.interface_name,
            None => {
                let pattern = name.strip_prefix('~').unwrap_or(name);
                pattern == device.interface_name || glob_match(pattern, &device.interface_name)
            }
        };
    }
    if ["driver:", "s390-subchannels:", "dhcp-plugin:"]
        .iter()
        .any(|tag| strip_tag(spec, tag).is_some())
    {
        return false;
    }
    allow_bare && (spec == device.interface_name || hwaddr_matches(spec, device))
}

fn hwaddr_matches(spec: &str, device: &DeviceMatch) -> bool {
    match (parse_hwaddr(spec), &device.hwaddr) {
        (Some(wanted), Some(have)) => &wanted == have,
        _ => false,
    }
}

/// `aa:bb:cc:dd:ee:ff` or `aa-bb-...`, any case.
pub fn parse_hwaddr(text: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = text
        .split([':', '-'])
        .map(|part| {
            (part.len() == 2)
                .then(|| u8::from_str_radix(part, 16).ok())
                .flatten()
        })
        .collect();
    bytes.filter(|b| !b.is_empty() && b.len() <= 20)
}

/// GLib's `g_pattern_match_simple()`: `*` is any run, `?` any one character, nothing else special.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

// ----- configuration -----

/// One effective `unmanaged-devices` spec and the file that put it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmanagedSpec {
    pub spec: String,
    pub file: PathBuf,
}

/// A value in the merged configuration: a plain string, or a device spec list whose every spec
/// remembers its file (so evidence can name it).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Plain { text: String, file: PathBuf },
    Specs(Vec<UnmanagedSpec>),
}

#[derive(Clone, Debug, Default)]
struct Group {
    name: String,
    keys: Vec<(String, Value)>,
}

impl Group {
    fn get(&self, key: &str) -> Option<&Value> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn set(&mut self, key: &str, value: Value) {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key.to_owned(), value)),
        }
    }
}

/// A group of the merged configuration with its keys and values, as `--print-config` prints it.
pub type MergedGroup = (String, Vec<(String, String)>);

/// NetworkManager's configuration merged from all files, in its order.
#[derive(Clone, Debug, Default)]
pub struct NmConfig {
    /// The files read, in reading order.
    pub files: Vec<PathBuf>,
    /// Effective `[keyfile] unmanaged-devices`.
    pub unmanaged: Vec<UnmanagedSpec>,
    /// Every file that assigned (`=`), extended (`+=`) or shrank (`-=`) `unmanaged-devices`, in
    /// reading order, so that a later file replacing an earlier list can be named.
    pub unmanaged_changes: Vec<(PathBuf, &'static str)>,
    groups: Vec<Group>,
}

/// What the configuration alone says about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigDecision {
    Unmanaged { how: String },
    Managed { how: String },
    Default,
}

impl NmConfig {
    /// Reads every configuration file in NetworkManager's order (see the module documentation).
    /// A file NetworkManager would refuse to load (bad syntax, not a regular file, unreadable) is
    /// an error naming it, as it is for NetworkManager.
    pub fn load(paths: &NmPaths) -> Result<NmConfig> {
        let lib = conf_d_files(paths, &paths.lib_dir.join("conf.d"))?;
        let run = conf_d_files(paths, &paths.run_dir.join("conf.d"))?;
        let etc = conf_d_files(paths, &paths.conf_dir.join("conf.d"))?;
        let shadowed = |name: &String, by: &[&Vec<(String, PathBuf)>]| {
            by.iter().any(|list| list.iter().any(|(n, _)| n == name))
        };
        let mut order: Vec<PathBuf> = Vec::new();
        order.extend(
            lib.iter()
                .filter(|(n, _)| !shadowed(n, &[&run, &etc]))
                .map(|(_, p)| p.clone()),
        );
        order.extend(
            run.iter()
                .filter(|(n, _)| !shadowed(n, &[&etc]))
                .map(|(_, p)| p.clone()),
        );
        let main = paths.at(&paths.conf_dir.join("NetworkManager.conf"));
        // NetworkManager skips a missing main file (it tests existence following symlinks).
        let main_present = main.exists();
        if main_present {
            order.push(main.clone());
        }
        order.extend(etc.into_iter().map(|(_, p)| p));

        let mut config = NmConfig::default();
        for path in order {
            let is_main = main_present && path == main;
            config.merge_file(&path, is_main)?;
        }
        config.unmanaged = config
            .groups
            .iter()
            .find(|g| g.name == "keyfile")
            .and_then(|g| g.get("unmanaged-devices"))
            .map(specs_of)
            .unwrap_or_default();
        Ok(config)
    }

    fn merge_file(&mut self, path: &Path, is_main: bool) -> Result<()> {
        let parsed = read_gkeyfile(
            path,
            "NetworkManager refuses to start with a configuration file it cannot read",
            " (NetworkManager rejects the whole file; fix or remove it)",
        )?;
        if !is_main {
            if let Some(enable) = parsed.last(".config", "enable") {
                if keyfile::parse_nm_bool(&enable.value) == Some(false) {
                    return Ok(());
                }
            }
        }
        self.files.push(path.to_owned());

        // Group order within a file: other groups as they come, then [device*] groups reversed;
        // the final lookup reverses all device groups once more (see device_sections()).
        let mut names: Vec<&str> = Vec::new();
        for section in &parsed.sections {
            if !names.contains(&section.name.as_str()) {
                names.push(&section.name);
            }
        }
        let (device, other): (Vec<&str>, Vec<&str>) =
            names.into_iter().partition(|n| n.starts_with("device"));
        for group in other.into_iter().chain(device.into_iter().rev()) {
            if group == ".config" || group.starts_with(".intern") {
                continue;
            }
            for entry in parsed.entries(group) {
                self.merge_key(group, &entry.key, &entry.value, path);
            }
        }
        Ok(())
    }

    fn merge_key(&mut self, group: &str, key: &str, value: &str, file: &Path) {
        let index = match self.groups.iter().position(|g| g.name == group) {
            Some(index) => index,
            None => {
                self.groups.push(Group {
                    name: group.to_owned(),
                    keys: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        if group == "keyfile" {
            let op = match key {
                "unmanaged-devices" => Some("="),
                "unmanaged-devices+" => Some("+="),
                "unmanaged-devices-" => Some("-="),
                _ => None,
            };
            if let Some(op) = op {
                self.unmanaged_changes.push((file.to_owned(), op));
            }
        }
        let slot = &mut self.groups[index];
        let tagged = |text: &str| -> Vec<UnmanagedSpec> {
            split_specs(text)
                .into_iter()
                .map(|spec| UnmanagedSpec {
                    spec,
                    file: file.to_owned(),
                })
                .collect()
        };
        if let Some(base) = key.strip_suffix('+').or_else(|| key.strip_suffix('-')) {
            if base.is_empty() || !is_spec_key(group, base) {
                // NetworkManager drops +=/-= on keys that are not lists.
                return;
            }
            let adding = key.ends_with('+');
            let old = slot.get(base).map(specs_of).unwrap_or_default();
            let new = tagged(value);
            // Sets, not nested scans: lists grow over many files, and every ADD reads them.
            let old_specs: HashSet<&str> = old.iter().map(|o| o.spec.as_str()).collect();
            let new_specs: HashSet<&str> = new.iter().map(|n| n.spec.as_str()).collect();
            let mut merged: Vec<UnmanagedSpec> = old
                .iter()
                .filter(|o| adding || !new_specs.contains(o.spec.as_str()))
                .cloned()
                .collect();
            if adding {
                merged.extend(
                    new.iter()
                        .filter(|n| !old_specs.contains(n.spec.as_str()))
                        .cloned(),
                );
            }
            slot.set(base, Value::Specs(merged));
            return;
        }
        let value = if is_spec_key(group, key) {
            Value::Specs(tagged(value))
        } else {
            Value::Plain {
                text: value.to_owned(),
                file: file.to_owned(),
            }
        };
        slot.set(key, value);
    }

    /// The merged configuration as NetworkManager's `--print-config` shows it: every group in
    /// merge order with its keys and values (a device spec list joined with commas), and the
    /// `[device*]` groups in lookup order (see [`NmConfig::decide`]). Tests hold it against
    /// NetworkManager's own merge.
    pub fn merged(&self) -> (Vec<MergedGroup>, Vec<String>) {
        let groups = self
            .groups
            .iter()
            .map(|group| {
                let keys = group
                    .keys
                    .iter()
                    .map(|(key, value)| {
                        let text = match value {
                            Value::Plain { text, .. } => text.clone(),
                            Value::Specs(specs) => specs
                                .iter()
                                .map(|s| s.spec.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                        };
                        (key.clone(), text)
                    })
                    .collect();
                (group.name.clone(), keys)
            })
            .collect();
        let order = self
            .device_sections()
            .iter()
            .map(|g| g.name.clone())
            .collect();
        (groups, order)
    }

    /// `[device*]` sections in lookup order: later files first, top to bottom within a file, the
    /// plain `[device]` section last.
    fn device_sections(&self) -> Vec<&Group> {
        let mut sections: Vec<&Group> = self
            .groups
            .iter()
            .filter(|g| g.name.starts_with("device"))
            .rev()
            .collect();
        if let Some(plain) = sections.iter().position(|g| g.name == "device") {
            let plain = sections.remove(plain);
            sections.push(plain);
        }
        sections
    }

    /// What the configuration alone says about `device`: `unmanaged-devices` first (NetworkManager
    /// never lets anything override it), then the first matching `[device*]` section that sets
    /// `managed` (stopping at a matching section with `stop-match=yes`).
    pub fn decide(&self, device: &DeviceMatch) -> ConfigDecision {
        if let SpecMatch::Match(spec) = match_specs(&self.unmanaged_spec_strings(), device) {
            let file = self
                .unmanaged
                .iter()
                .find(|u| spec.split(',').any(|s| s == u.spec))
                .map(|u| u.file.display().to_string())
                .unwrap_or_default();
            return ConfigDecision::Unmanaged {
                how: format!("unmanaged-devices matches {spec:?} (set in {file})"),
            };
        }
        for section in self.device_sections() {
            let matched = match section.get("match-device") {
                None => true,
                Some(value) => {
                    let specs: Vec<String> = specs_of(value).into_iter().map(|s| s.spec).collect();
                    matches!(match_specs(&specs, device), SpecMatch::Match(_))
                }
            };
            if !matched {
                continue;
            }
            if let Some(Value::Plain { text, file }) = section.get("managed") {
                let where_ = format!("[{}] in {}", section.name, file.display());
                return match keyfile::parse_nm_bool(text) {
                    Some(false) => ConfigDecision::Unmanaged {
                        how: format!("{where_} sets managed={text}"),
                    },
                    Some(true) => ConfigDecision::Managed {
                        how: format!("{where_} sets managed={text}"),
                    },
                    None => ConfigDecision::Default,
                };
            }
            let stop = match section.get("stop-match") {
                Some(Value::Plain { text, .. }) => keyfile::parse_nm_bool(text) == Some(true),
                _ => false,
            };
            if stop {
                break;
            }
        }
        ConfigDecision::Default
    }

    fn unmanaged_spec_strings(&self) -> Vec<&str> {
        self.unmanaged.iter().map(|u| u.spec.as_str()).collect()
    }
}

fn is_spec_key(group: &str, key: &str) -> bool {
    (group == "keyfile" && key == "unmanaged-devices")
        || (group == "main"
            && ["no-auto-default", "ignore-carrier", "assume-ipv6ll-only"].contains(&key))
        || ((group.starts_with("device") || group.starts_with("connection"))
            && key == "match-device")
}

fn specs_of(value: &Value) -> Vec<UnmanagedSpec> {
    match value {
        Value::Specs(specs) => specs.clone(),
        Value::Plain { text, file } => split_specs(text)
            .into_iter()
            .map(|spec| UnmanagedSpec {
                spec,
                file: file.clone(),
            })
            .collect(),
    }
}

/// `*.conf` entries of a `conf.d` directory as (file name, path), sorted by name in byte order,
/// as NetworkManager lists them (hidden files included, file type checked when read). A missing
/// directory is empty. The paths have their links resolved inside the root.
fn conf_d_files(paths: &NmPaths, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = &paths.at(dir);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(err).with_context(|| format!("list {}", dir.display()));
        }
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("list {}", dir.display()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".conf") {
            files.push((name, paths.at(&entry.path())));
        }
    }
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(files)
}

#[cfg(test)]
mod tests;
