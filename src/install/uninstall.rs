//! `hostguard uninstall`: removes what install wrote and nothing else. Our output goes only if it
//! carries our marker naming it (else it is someone else's file, or a copy); with `--in-place` our
//! entry leaves every plugin list, and every other entry stays. The binary goes only if no other
//! config in the directory still names hostguard, since a runtime would then fail to find it.

use std::ffi::OsStr;

use anyhow::{Context, Result};

use super::args::UninstallOptions;
use super::binary;
use super::discover::{self, Form};
use super::inplace::{self, Check};
use super::report;
use super::snapshot::{self, Links};
use super::validate;
use super::write::{self, Existing, LOCK_NAME};

pub fn run(options: &UninstallOptions) -> Result<i32> {
    let dir = &options.conf_dir;
    if !dir.is_dir() {
        report(format_args!(
            "nothing to do: {} does not exist",
            dir.display()
        ));
        return Ok(0);
    }
    let output = dir.join(&options.output);
    let lock = write::lock_dir(dir)?;
    // Check everything before removing anything, so a refusal leaves the node as it was.
    if let Existing::Foreign(reason) = write::existing(&output) {
        say(format_args!("{reason}; nothing removed"));
        return Ok(1);
    }
    let mut done = Vec::new();
    if options.in_place {
        done.extend(remove_entries(dir)?);
    }
    let still_named_by = other_configs_naming_hostguard(dir, &options.output)?;
    if let Some(note) = foreign_entries_note(dir, &output) {
        say(format_args!("{note}"));
    }
    match write::remove_output(&output) {
        Ok(true) => done.push(format!("removed {}", output.display())),
        Ok(false) => {}
        Err(err) => {
            say(format_args!("{err:#}; nothing removed"));
            return Ok(1);
        }
    }
    if let Some(bin_dir) = &options.bin_dir {
        if let Some(other) = &still_named_by {
            say(format_args!(
                "{} still names hostguard, so {} stays (a runtime would fail to find it)",
                dir.join(other).display(),
                bin_dir.join(binary::BINARY_NAME).display()
            ));
        } else if binary::remove(bin_dir)? {
            done.push(format!(
                "removed {}",
                bin_dir.join(binary::BINARY_NAME).display()
            ));
        }
        write::remove_stale_temps(bin_dir, binary::BINARY_NAME)
            .with_context(|| format!("clean up temporary files in {}", bin_dir.display()))?;
    }
    write::remove_stale_temps(dir, &options.output)
        .with_context(|| format!("clean up temporary files in {}", dir.display()))?;
    // Removed while held: an installer still waiting on the old lock file would lock an orphan, but
    // install and uninstall racing each other have no right outcome anyway.
    crate::atomic::remove_durable(&dir.join(LOCK_NAME))?;
    drop(lock);
    if done.is_empty() {
        report(format_args!(
            "nothing to do: no hostguard files in {}",
            dir.display()
        ));
    }
    for line in done {
        report(format_args!("{line}"));
    }
    Ok(0)
}

/// Takes the hostguard entry out of every plugin list in `dir`, keeping everything else. Multus'
/// own file is left to Multus, which rebuilds it from its master; a list that would be left
/// empty is not ours to judge and stays as it is, with a note.
fn remove_entries(dir: &std::path::Path) -> Result<Vec<String>> {
    let names = discover::config_names(dir).with_context(|| format!("list {}", dir.display()))?;
    let mut done = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let shown = name.to_string_lossy();
        if discover::form_of(&name) != Form::List {
            continue;
        }
        let found = match snapshot::read(&path, Links::Refuse) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(problem) => {
                say(format_args!("{shown} {problem}: not edited"));
                continue;
            }
        };
        let Ok(object) = validate::parse_object(&found.bytes) else {
            continue;
        };
        if inplace::meta_plugin(&object).is_some() {
            continue;
        }
        let Some(bytes) = inplace::remove(&object) else {
            continue;
        };
        if validate::hostguard_count(&object) == validate::plugin_types(&object).len() {
            say(format_args!(
                "{shown} holds nothing but hostguard entries: left as it is"
            ));
            continue;
        }
        inplace::rewrite(&path, &found, &bytes, Check::Removed)
            .with_context(|| format!("remove the hostguard entry from {}", path.display()))?;
        done.push(format!(
            "removed the hostguard entry from {} (every other entry kept)",
            path.display()
        ));
    }
    Ok(done)
}

/// A warning when our output holds entries that neither its upstream nor we put there: another
/// chain editor (Istio's installer) added itself to our file, and goes with it until it inserts
/// itself again into the file the runtime loads next.
fn foreign_entries_note(dir: &std::path::Path, output: &std::path::Path) -> Option<String> {
    let found = snapshot::read(output, Links::Refuse).ok()??;
    let object = validate::parse_object(&found.bytes).ok()?;
    let upstream_name = object
        .get(super::marker::MARKER_KEY)?
        .get("upstream")?
        .as_str()?
        .to_string();
    let upstream = snapshot::read(&dir.join(&upstream_name), Links::Follow).ok()??;
    let upstream_types = validate::parse_object(&upstream.bytes)
        .map(|object| {
            // A single-plugin .conf names its one type at the top.
            let single = object
                .get("type")
                .and_then(|t| t.as_str())
                .map(String::from);
            let mut types = validate::plugin_types(&object);
            types.extend(single);
            types
        })
        .unwrap_or_default();
    let added: Vec<String> = validate::plugin_types(&object)
        .into_iter()
        .filter(|kind| kind != validate::HOSTGUARD_TYPE && !upstream_types.contains(kind))
        .collect();
    (!added.is_empty()).then(|| {
        format!(
            "warning: {} also holds [{}], which another tool added to it (Istio's installer inserts \
             into the first config file); it goes with the file until that tool inserts itself into \
             {upstream_name} (on a node with such a tool, install with --in-place)",
            output.display(),
            added.join(", ")
        )
    })
}

/// The first config other than our output that still has a hostguard plugin (an older installer
/// that edited it in place, or an operator's hand edit).
fn other_configs_naming_hostguard(dir: &std::path::Path, output: &str) -> Result<Option<String>> {
    let names = discover::config_names(dir).with_context(|| format!("list {}", dir.display()))?;
    for name in names
        .iter()
        .filter(|name| name.as_os_str() != OsStr::new(output))
    {
        let Ok(Some(found)) = snapshot::read(&dir.join(name), Links::Follow) else {
            continue;
        };
        let Ok(object) = validate::parse_object(&found.bytes) else {
            continue;
        };
        let single_ours =
            object.get("type").and_then(|t| t.as_str()) == Some(validate::HOSTGUARD_TYPE);
        if single_ours || validate::hostguard_count(&object) > 0 {
            return Ok(Some(name.to_string_lossy().into_owned()));
        }
    }
    Ok(None)
}

fn say(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "hostguard uninstall: {message}");
}
