//! NetworkManager itself as the oracle of hostguard's reading of its configuration.
//!
//! `NetworkManager --print-config` merges the configuration files exactly as the daemon does and
//! prints the result without starting a daemon (`--intern-config` points into a temp dir, so it
//! writes nothing on the machine). For every NetworkManager fixture root of the doctor's tests,
//! before and after `hostguard doctor --fix`, and for the two files that used to beat hostguard's
//! drop-in (Calico's `calico.conf`, RKE2's `rke2-canal.conf`), hostguard's merged view must be
//! NetworkManager's: the same groups with the same keys and values, and the `[device*]` sections
//! in the same order of priority. Skipped, with a line saying so, where the Debian package
//! network-manager is not installed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use hostguard::host::nm::{ConfigDecision, DeviceMatch, NmConfig, NmPaths};

const NM: &str = "/usr/sbin/NetworkManager";
const BIN: &str = env!("CARGO_BIN_EXE_hostguard");

type Groups = BTreeMap<String, BTreeMap<String, String>>;

/// A merged configuration: its groups, and the `[device-*]` names in priority order.
#[derive(Debug, PartialEq)]
struct View {
    groups: Groups,
    device_order: Vec<String>,
}

fn network_manager() -> bool {
    if !Path::new(NM).exists() {
        println!("skip: NetworkManager is not installed (Debian package network-manager)");
        return false;
    }
    // The daemon also reads /run/NetworkManager/conf.d, which no option moves.
    if Path::new("/run/NetworkManager/conf.d").exists() {
        println!("skip: /run/NetworkManager/conf.d exists on this machine and would be merged in");
        return false;
    }
    true
}

/// NetworkManager's merge of the configuration under `root`, or its error.
fn oracle(root: &Path) -> Result<View, String> {
    let scratch = tempfile::tempdir().unwrap();
    let mut main = root.join("etc/NetworkManager/NetworkManager.conf");
    if !main.exists() {
        // Named explicitly, a missing main file is an error; at its default place it is skipped.
        main = scratch.path().join("empty.conf");
        fs::write(&main, "").unwrap();
    }
    let out = Command::new(NM)
        .arg("--print-config")
        .arg("--config")
        .arg(&main)
        .arg("--config-dir")
        .arg(root.join("etc/NetworkManager/conf.d"))
        .arg("--system-config-dir")
        .arg(root.join("usr/lib/NetworkManager/conf.d"))
        .arg("--intern-config")
        .arg(scratch.path().join("intern.conf"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut groups = Groups::new();
    let mut device_order = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            if current.starts_with("device-") {
                device_order.push(current.clone());
            }
            continue;
        }
        let (key, value) = line.split_once('=').unwrap();
        // The one key NetworkManager adds by itself (from its command line).
        if current == "main" && key == "configure-and-quit" {
            continue;
        }
        groups
            .entry(current.clone())
            .or_default()
            .insert(key.to_string(), normal(&current, key, value));
    }
    Ok(View {
        groups,
        device_order,
    })
}

/// A device spec list as a list: NetworkManager prints an assigned list as written (`;` or `,`)
/// and a list it built from `+=` joined with `,`.
fn normal(group: &str, key: &str, value: &str) -> String {
    let list_key = key == "unmanaged-devices"
        || key == "match-device"
        || (group == "main" && ["no-auto-default", "ignore-carrier"].contains(&key));
    if list_key {
        hostguard::host::nm::split_specs(value).join(",")
    } else {
        value.to_string()
    }
}

fn hostguards(root: &Path) -> Result<View, String> {
    let config = NmConfig::load(&NmPaths::under_root(root)).map_err(|e| format!("{e:#}"))?;
    let (merged, order) = config.merged();
    let mut groups = Groups::new();
    for (name, keys) in merged {
        for (key, value) in keys {
            let value = normal(&name, &key, &value);
            groups.entry(name.clone()).or_default().insert(key, value);
        }
    }
    Ok(View {
        groups,
        device_order: order
            .into_iter()
            .filter(|n| n.starts_with("device-"))
            .collect(),
    })
}

fn assert_agree(root: &Path, what: &str) {
    match (oracle(root), hostguards(root)) {
        (Ok(theirs), Ok(ours)) => assert_eq!(ours, theirs, "{what}: hostguard's merge differs"),
        (Err(_), Err(_)) => {}
        (theirs, ours) => panic!("{what}: NetworkManager {theirs:?}, hostguard {ours:?}"),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn fix(root: &Path) {
    let out = Command::new(BIN)
        .env_remove("CNI_COMMAND")
        .args(["doctor", "--fix", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "doctor --fix died");
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/doctor");
    let mut roots: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|root| {
            root.join("etc/NetworkManager").exists() || root.join("usr/lib/NetworkManager").exists()
        })
        .collect();
    roots.sort();
    roots
}

#[test]
fn hostguards_merge_is_network_managers_for_every_fixture() {
    if !network_manager() {
        return;
    }
    let roots = fixtures();
    assert!(roots.len() >= 5, "{roots:?}");
    for fixture in roots {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        assert_agree(&fixture, &name);
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&fixture, copy.path());
        fix(copy.path());
        assert_agree(copy.path(), &format!("{name} after doctor --fix"));
    }
}

/// Files read after hostguard's `50-hostguard.conf` that assign `unmanaged-devices=` (and so
/// replace the list) cannot take the CNI interfaces back: the drop-in's `[device-*]` section with
/// `managed=0` is a setting of its own, which no file but one with the same section name changes.
#[test]
fn the_drop_in_wins_over_calico_and_rke2_canal() {
    if !network_manager() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let conf_d = root.path().join("etc/NetworkManager/conf.d");
    fs::create_dir_all(&conf_d).unwrap();
    fs::write(
        root.path().join("etc/NetworkManager/NetworkManager.conf"),
        "[main]\nplugins=ifupdown,keyfile\n",
    )
    .unwrap();
    // As Calico's and RKE2's documentation write them.
    fs::write(
        conf_d.join("calico.conf"),
        "[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:tunl*;\
         interface-name:vxlan.calico;interface-name:vxlan-v6.calico;\
         interface-name:wireguard.cali;interface-name:wg-v6.cali\n",
    )
    .unwrap();
    fs::write(
        conf_d.join("rke2-canal.conf"),
        "[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:flannel*\n",
    )
    .unwrap();
    fix(root.path());
    assert!(conf_d.join("50-hostguard.conf").is_file());
    let theirs = oracle(root.path()).unwrap();
    // NetworkManager's merge: rke2-canal.conf's list replaced every earlier one ...
    assert_eq!(
        theirs.groups["keyfile"]["unmanaged-devices"],
        "interface-name:cali*,interface-name:flannel*"
    );
    // ... and hostguard's device section stands, unmanaging every CNI pattern.
    let ours = theirs
        .groups
        .iter()
        .find(|(name, keys)| name.starts_with("device-") && keys.contains_key("match-device"))
        .map(|(_, keys)| keys)
        .expect("hostguard's [device-*] section in NetworkManager's merge");
    assert_eq!(ours["managed"], "0");
    for pattern in ["veth*", "vxlan*", "cni0", "lxc*", "antrea-*", "ovn-*"] {
        assert!(
            ours["match-device"].contains(&format!("interface-name:{pattern}")),
            "{pattern}: {}",
            ours["match-device"]
        );
    }
    assert_eq!(hostguards(root.path()).unwrap(), theirs);
    // hostguard's decision from that merge: the CNI's interfaces are unmanaged, the uplink is not.
    let config = NmConfig::load(&NmPaths::under_root(root.path())).unwrap();
    let decide = |name: &str| {
        config.decide(&DeviceMatch {
            interface_name: name.into(),
            device_type: None,
            hwaddr: None,
        })
    };
    for cni in ["veth1234", "vxlan.calico", "cni0", "flannel.1", "cali0"] {
        assert!(
            matches!(decide(cni), ConfigDecision::Unmanaged { .. }),
            "{cni}: {:?}",
            decide(cni)
        );
    }
    assert!(matches!(decide("eth0"), ConfigDecision::Default));
    // And the doctor agrees: nothing left to report about NetworkManager.
    let out = Command::new(BIN)
        .env_remove("CNI_COMMAND")
        .args(["doctor", "--json", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nm_findings: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("networkmanager"))
        .collect();
    assert!(nm_findings.is_empty(), "{nm_findings:?}");
}
