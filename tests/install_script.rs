//! scripts/install-cni.sh: the container entrypoint turns its environment into install arguments.

use crate::install_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use install_support::*;
use serde_json::json;

fn script(node: &Node) -> Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-cni.sh");
    let mut command = Command::new("bash");
    command.arg(path);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOSTGUARD_BIN", BIN);
    command
        .env("CNI_CONF_DIR", &node.conf)
        .env("CNI_BIN_DIR", &node.bin);
    command
}

#[test]
fn environment_becomes_arguments() {
    let node = Node::new();
    node.put_testdata("10-bridge.conf", "bridge.conf");
    node.put_testdata("20-calico.conflist", "calico.conflist");
    let run = Run::from(
        script(&node)
            .env("HOSTGUARD_OUTPUT", "01-hg.conflist")
            .env("HOSTGUARD_PRIMARY", "20-calico.conflist")
            .env("HOSTGUARD_PLUGIN_CONFIG", r#"  {"logLevel":"debug"}"#)
            .env("HOSTGUARD_TIMEOUT", "5")
            .env("HOSTGUARD_STATE_DIR", &node.state)
            .env("HOSTGUARD_RUN_DIR", node.state.join("run"))
            .env("HOSTGUARD_WATCH", "false")
            .output()
            .unwrap(),
    );
    run.assert_ok();
    let written: serde_json::Value =
        serde_json::from_slice(&fs::read(node.path("01-hg.conflist")).unwrap()).unwrap();
    assert_eq!(
        plugin_types(&written),
        ["calico", "portmap", "bandwidth", "hostguard"]
    );
    assert_eq!(
        written["plugins"][3],
        json!({
            "type": "hostguard",
            "logLevel": "debug",
            "stateDir": node.state.to_string_lossy(),
            "runDir": node.state.join("run").to_string_lossy(),
        })
    );
    assert!(node.bin.join("hostguard").exists());
    assert!(node.state.is_dir());
}

#[test]
fn a_plugin_config_file_and_defaults() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let config = node.root.join("pc.json");
    fs::write(&config, br#"{"logFile":"/var/log/hg.log"}"#).unwrap();
    Run::from(
        script(&node)
            .env("HOSTGUARD_PLUGIN_CONFIG", &config)
            .env("CNI_BIN_DIR", "")
            .output()
            .unwrap(),
    )
    .assert_ok();
    assert_eq!(
        node.output_json()["plugins"][3],
        json!({"type": "hostguard", "logFile": "/var/log/hg.log"})
    );
    assert!(!node.bin.exists(), "CNI_BIN_DIR empty must skip the binary");
}

#[test]
fn bad_settings_are_refused() {
    let node = Node::new();
    Run::from(
        script(&node)
            .env("HOSTGUARD_WATCH", "yes")
            .output()
            .unwrap(),
    )
    .assert_code(2)
    .assert_stderr("HOSTGUARD_WATCH must be true or false");
    Run::from(
        script(&node)
            .env("HOSTGUARD_PLUGIN_CONFIG", "/nonexistent.json")
            .output()
            .unwrap(),
    )
    .assert_code(2)
    .assert_stderr("is not readable");
    Run::from(
        script(&node)
            .env("HOSTGUARD_TIMEOUT", "0")
            .output()
            .unwrap(),
    )
    .assert_code(1)
    .assert_stderr("gave up after 0s");
}

#[test]
fn watch_mode_stops_cleanly_on_sigterm() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let running = Running::spawn({
        let mut command = script(&node);
        command.env("HOSTGUARD_WATCH", "true");
        command
    });
    running.await_stderr("watching ", std::time::Duration::from_secs(10));
    // exec: the script's PID is hostguard's.
    running.signal(nix::sys::signal::Signal::SIGTERM);
    running
        .finish(std::time::Duration::from_secs(10))
        .assert_ok();
    assert_chained(&fs::read(node.output()).unwrap());
}
