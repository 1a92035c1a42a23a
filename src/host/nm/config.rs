//! NetworkManager's configuration, merged as NetworkManager merges it, and what it decides for a
//! device.
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

use super::specs::{match_specs, split_specs, DeviceMatch, SpecMatch};
use super::NmPaths;
use crate::keyfile::{self, Dialect};

/// Reads and parses a GKeyFile of NetworkManager's. A syntax error is an error naming the file and
/// line, followed by `after_problem`, which tells the operator what fixes it.
pub(super) fn read_gkeyfile(
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
