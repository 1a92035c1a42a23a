//! `--fix`: hostguard's own drop-ins for networkd and NetworkManager, written atomically inside
//! the root; the operator's files are never edited.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::network_manager::CNI_PATTERNS;
use super::{examine, Fixed, NETWORKD_DROPIN, NM_DROPIN};
use crate::keyfile::{self, Dialect};
use crate::rootfs::confine;

pub fn networkd_dropin() -> String {
    "# Written by `hostguard doctor --fix`. systemd-networkd must not delete routing policy rules\n\
     # and routes that it did not create (CNI rules and routes): see incident 2 in hostguard's docs.\n\
     [Network]\n\
     ManageForeignRoutingPolicyRules=no\n\
     ManageForeignRoutes=no\n"
        .to_owned()
}

/// The section of hostguard's NetworkManager drop-in that keeps the CNI interfaces unmanaged.
pub const NM_DEVICE_SECTION: &str = "device-hostguard-cni";

/// hostguard's NetworkManager drop-in. `unmanaged-devices+=` alone loses to any file read after
/// it that assigns the list with `=` (Calico's `calico.conf`, RKE2's `rke2-canal.conf` sort after
/// `50-hostguard.conf`): NetworkManager keeps only the last assignment. A `[device-*]` section with
/// `managed=0` is a setting of its own (NetworkManager's "unmanaged by user configuration"),
/// which those files do not touch, so the file keeps its name and still wins; the list stays for
/// NetworkManager releases older than the per-device `managed` key.
pub fn nm_dropin() -> String {
    let specs: Vec<String> = CNI_PATTERNS
        .iter()
        .map(|(p, _, _)| format!("interface-name:{p}"))
        .collect();
    let specs = specs.join(";");
    format!(
        "# Written by `hostguard doctor --fix`. NetworkManager must leave CNI interfaces alone\n\
         # (incident 5 in hostguard's docs). The [{NM_DEVICE_SECTION}] section keeps them\n\
         # unmanaged even when a file read later assigns unmanaged-devices= and so replaces the\n\
         # list below (`+=` adds to unmanaged-devices from other files).\n\
         [keyfile]\n\
         unmanaged-devices+={specs}\n\
         \n\
         [{NM_DEVICE_SECTION}]\n\
         match-device={specs}\n\
         managed=0\n"
    )
}

/// Writes hostguard's drop-ins for what `examine` finds, atomically, creating directories (0755)
/// as needed; identical content is left alone.
pub fn fix(root: &Path) -> Result<Vec<Fixed>> {
    let before = examine(root);
    let mut fixed = Vec::new();
    if before
        .findings
        .iter()
        .any(|f| f.id.starts_with("networkd-manages-foreign"))
    {
        let action = install(root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd)?;
        fixed.push(Fixed {
            file: format!("/{NETWORKD_DROPIN}"),
            action,
            reload: "systemctl restart systemd-networkd (networkd.conf is read only at startup)"
                .into(),
        });
    }
    if before
        .findings
        .iter()
        .any(|f| f.id == "networkmanager-manages-cni-interfaces")
    {
        let action = install(root, NM_DROPIN, &nm_dropin(), Dialect::GKeyFile)?;
        fixed.push(Fixed {
            file: format!("/{NM_DROPIN}"),
            action,
            reload: "nmcli general reload conf".into(),
        });
    }
    Ok(fixed)
}

/// The drop-in's directory is resolved inside the root, so that a link there (absolute, as the
/// host wrote it) leads to the host's directory, never out of the root; the file itself is
/// replaced by rename, never written through a link.
fn install(root: &Path, relative: &str, content: &str, dialect: Dialect) -> Result<String> {
    let relative = Path::new(relative);
    let dir = confine(root, &root.join(relative.parent().unwrap_or(Path::new(""))));
    let path = dir.join(relative.file_name().unwrap_or_default());
    if keyfile::read_config_file(&path).is_ok_and(|existing| existing == content) {
        return Ok("unchanged".into());
    }
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("create {}", dir.display()))?;
    }
    crate::atomic::write_atomic(&path, content.as_bytes(), 0o644, |written| {
        let text = std::str::from_utf8(written).context("written drop-in is not UTF-8")?;
        let parsed = keyfile::parse(text, dialect);
        anyhow::ensure!(
            parsed.problems.is_empty() && !parsed.sections.is_empty(),
            "written drop-in does not parse back: {:?}",
            parsed.problems
        );
        Ok(())
    })
    .with_context(|| format!("write {}", path.display()))?;
    Ok("written".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::doctor::{examine, NmState};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hg-doctor-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_nm_drop_in_alone_unmanages_every_pattern_and_the_networkd_one_both_keys() {
        let root = scratch("dropins");
        install(&root, NM_DROPIN, &nm_dropin(), Dialect::GKeyFile).unwrap();
        install(&root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd).unwrap();
        let state = examine(&root);
        assert!(state.findings.is_empty(), "{:#?}", state.findings);
        assert!(state.networkd.settings.iter().all(|s| !s.value));
        let NmState::Config(config) = &state.nm else {
            panic!("NetworkManager config not loaded");
        };
        assert_eq!(config.unmanaged.len(), CNI_PATTERNS.len());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn install_leaves_identical_content_alone() {
        let root = scratch("idempotent");
        assert_eq!(
            install(&root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd).unwrap(),
            "written"
        );
        assert_eq!(
            install(&root, NETWORKD_DROPIN, &networkd_dropin(), Dialect::Systemd).unwrap(),
            "unchanged"
        );
        fs::remove_dir_all(root).unwrap();
    }
}
