//! Which file a container runtime loads from the config directory, and whether ours comes first.
//!
//! containerd (go-cni) and CRI-O list `*.conf`, `*.conflist` and `*.json` entries that are not
//! directories (a symlink counts, whatever it points to), sort the names byte-wise and load the first
//! one; containerd fails hard when that one is invalid rather than moving on. hostguard mirrors that
//! exactly, so the upstream it chains is the one the runtime would otherwise have used.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::atomic;

pub const CONFIG_EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];

/// How a runtime reads a file: a `.conflist` as a plugin list, anything else as one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    List,
    Single,
}

pub fn form_of(name: &OsStr) -> Form {
    if name.as_bytes().ends_with(b".conflist") {
        Form::List
    } else {
        Form::Single
    }
}

pub fn is_config_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    CONFIG_EXTENSIONS
        .iter()
        .any(|ext| bytes.ends_with(ext.as_bytes()))
}

/// The names a runtime considers in `dir`, in the order it considers them. Our temporary files never
/// qualify (their names end in digits) and are excluded by name as well.
pub fn config_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_config_name(&name) || atomic::is_temp_name(&name.to_string_lossy()) {
            continue;
        }
        // An entry removed between readdir and here is simply not a candidate any more.
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => continue,
            Ok(_) => names.push(name),
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        }
    }
    // OsString orders by bytes, as Go's sort.Strings does.
    names.sort();
    Ok(names)
}

/// The file to chain: the pinned one, else the first config that is not our own output.
pub fn upstream_name<'a>(
    names: &'a [OsString],
    output: &str,
    primary: Option<&'a str>,
) -> Option<&'a OsStr> {
    if let Some(primary) = primary {
        return Some(OsStr::new(primary));
    }
    names
        .iter()
        .map(OsString::as_os_str)
        .find(|name| *name != OsStr::new(output))
}

/// The first config file that a runtime would load before our output, if any.
pub fn first_before_output<'a>(names: &'a [OsString], output: &str) -> Option<&'a OsStr> {
    names
        .iter()
        .map(OsString::as_os_str)
        .find(|name| *name != OsStr::new(output))
        .filter(|name| name.as_bytes() < output.as_bytes())
}

/// An `--output` name that sorts before `first` (and so before every other config), made by
/// keeping a prefix of `first` and placing a `0` where `first` has a larger byte.
pub fn output_name_before(first: &OsStr) -> Option<String> {
    let bytes = first.as_bytes();
    (0..bytes.len())
        .filter(|&at| bytes[at] > b'0')
        .find_map(|at| std::str::from_utf8(&bytes[..at]).ok())
        .map(|prefix| format!("{prefix}0-hostguard.conflist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn extensions_and_forms() {
        for name in ["10-a.conf", "10-a.conflist", "x.json", ".conf"] {
            assert!(is_config_name(OsStr::new(name)), "{name}");
        }
        for name in [
            "kubeconfig",
            "10-a.conflist.bak",
            "a.cilium_bak",
            ".hostguard-tmp-00-a.conflist.1.000000001",
        ] {
            assert!(!is_config_name(OsStr::new(name)), "{name}");
        }
        assert_eq!(form_of(OsStr::new("a.conflist")), Form::List);
        assert_eq!(form_of(OsStr::new("a.conf")), Form::Single);
        assert_eq!(form_of(OsStr::new("a.json")), Form::Single);
    }

    #[test]
    fn upstream_is_the_first_that_is_not_ours() {
        let list = names(&["00-hostguard.conflist", "10-calico.conflist", "20-x.conf"]);
        assert_eq!(
            upstream_name(&list, "00-hostguard.conflist", None),
            Some(OsStr::new("10-calico.conflist"))
        );
        assert_eq!(
            upstream_name(&list, "00-hostguard.conflist", Some("20-x.conf")),
            Some(OsStr::new("20-x.conf"))
        );
        assert_eq!(
            upstream_name(
                &names(&["00-hostguard.conflist"]),
                "00-hostguard.conflist",
                None
            ),
            None
        );
    }

    #[test]
    fn sort_order_is_bytewise() {
        let list = names(&["00-Z.conf", "00-hostguard.conflist", "10-a.conflist"]);
        // 'Z' (0x5a) sorts before 'h' (0x68): a runtime would load 00-Z.conf first.
        assert_eq!(
            first_before_output(&list, "00-hostguard.conflist"),
            Some(OsStr::new("00-Z.conf"))
        );
        assert_eq!(
            first_before_output(&list[1..], "00-hostguard.conflist"),
            None
        );
    }

    #[test]
    fn suggested_output_sorts_first() {
        for first in [
            "05-cilium.conflist",
            "00-aaa.conflist",
            "00-multus.conf",
            "000.conf",
            "1.conf",
        ] {
            let suggestion = output_name_before(OsStr::new(first)).unwrap();
            assert!(suggestion.as_str() < first, "{suggestion} vs {first}");
            assert!(suggestion.ends_with(".conflist"));
        }
        assert_eq!(
            output_name_before(OsStr::new("05-cilium.conflist")).unwrap(),
            "00-hostguard.conflist"
        );
    }
}
