//! One schema: what `install --plugin-config` accepts, the plugin accepts, and the other way
//! round. Every hostile value of the hostile-input suite that lands in the hostguard entry is fed
//! to both the real installer and the real plugin (a STATUS call, which parses the whole entry
//! and touches nothing but the state directory), and so is every valid value the suite starts
//! from. `hostguard validate` must give the plugin's verdict and code too.

use crate::common;
use crate::hostile_support;

use std::fs;
use std::process::Command;

use hostile_support::Node;
use serde_json::{json, Value};

/// The spec's codes for a configuration the plugin refuses.
const CONFIG_CODES: [u64; 4] = [1, 2, 6, 7];

struct Verdicts {
    install_status: Option<i32>,
    install_stderr: String,
    plugin: Option<Value>,
    validate_status: Option<i32>,
    validate_stdout: String,
}

fn judge(node: &Node, entry: &Value, case: usize) -> Verdicts {
    let dir = node.dir.join(&format!("case-{case}"));
    let conf_dir = dir.join("net.d");
    fs::create_dir_all(&conf_dir).unwrap();
    fs::write(
        conf_dir.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.1.0","name":"hostile","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    let plugin_config = dir.join("plugin.json");
    fs::write(&plugin_config, entry.to_string()).unwrap();
    let install = Command::new(common::BIN)
        .env_remove("CNI_COMMAND")
        .arg("install")
        .arg("--conf-dir")
        .arg(&conf_dir)
        .arg("--plugin-config")
        .arg(&plugin_config)
        .args(["--timeout", "0"])
        .output()
        .unwrap();
    let written = conf_dir.join("00-hostguard.conflist");
    if install.status.code() == Some(2) {
        assert!(!written.exists(), "case {case}: refused, but written");
    }
    let validate = Command::new(common::BIN)
        .env_remove("CNI_COMMAND")
        .arg("validate")
        .arg("--plugin-config")
        .arg(&plugin_config)
        .output()
        .unwrap();
    let status = node
        .call("STATUS", "c1")
        .config(&node.conf("1.1.0", entry.clone()))
        .run();
    let plugin = (status.status == 1).then(|| status.json());
    let verdicts = Verdicts {
        install_status: install.status.code(),
        install_stderr: String::from_utf8_lossy(&install.stderr).into_owned(),
        plugin,
        validate_status: validate.status.code(),
        validate_stdout: String::from_utf8_lossy(&validate.stdout).into_owned(),
    };
    let _ = fs::remove_dir_all(&dir);
    verdicts
}

/// `entry` with the value at `pointer` replaced; a top-level key the full entry leaves out (the
/// suite's `stateDir` comes from its node) is added.
fn with(mut entry: Value, pointer: &str, value: Value) -> Value {
    match entry.pointer_mut(pointer) {
        Some(slot) => *slot = value,
        None => {
            let key = pointer.strip_prefix('/').filter(|k| !k.contains('/'));
            let key = key.unwrap_or_else(|| panic!("{pointer} is not in the full entry"));
            entry[key] = value;
        }
    }
    entry
}

#[test]
fn install_accepts_exactly_what_the_plugin_accepts() {
    let node = Node::new("schema");
    let full = hostile_support::full_entry(&node);
    let mut entries = vec![("the full entry".to_string(), full.clone())];
    // Each key of the full entry alone (with its valid value), so that acceptance is tested key
    // by key too, not only as a whole.
    for (key, value) in full.as_object().unwrap() {
        entries.push((format!("only {key}"), json!({ key: value })));
    }
    for (pointer, values) in hostile_support::wrong_values() {
        if ["/cniVersion", "/name", "/prevResult"].contains(&pointer.as_str()) {
            continue; // the conflist's keys, not the entry's
        }
        for value in values {
            let entry = with(full.clone(), &pointer, value.clone());
            entries.push((format!("{pointer} = {value}"), entry));
        }
    }
    // The entries that, before install used the plugin's parser, were written and then failed
    // every ADD on the node.
    for broken in [
        json!({"routes": {"restor": false}}),
        json!({"stateDir": "relative"}),
        json!({"waitFor": {"timeoutMs": 600000}}),
        json!({"logLevel": "verbose"}),
        json!({"uplink": {"interface": "eth1", "bridge": "eth1"}}),
    ] {
        entries.push((broken.to_string(), broken));
    }
    let (mut accepted, mut refused) = (0, 0);
    for (case, (what, entry)) in entries.iter().enumerate() {
        let v = judge(&node, entry, case);
        let plugin_refuses = v
            .plugin
            .as_ref()
            .is_some_and(|err| CONFIG_CODES.contains(&err["code"].as_u64().unwrap_or(0)));
        match (v.install_status, plugin_refuses) {
            (Some(0), false) => {
                accepted += 1;
                assert_eq!(v.validate_status, Some(0), "{what}: validate disagrees");
            }
            (Some(2), true) => {
                refused += 1;
                let err = v.plugin.as_ref().unwrap();
                let msg = err["msg"].as_str().unwrap();
                assert!(
                    v.install_stderr.contains(msg),
                    "{what}: install does not give the plugin's message {msg:?}: {}",
                    v.install_stderr
                );
                assert_eq!(v.validate_status, Some(1), "{what}: validate disagrees");
                let judged: Value =
                    serde_json::from_str(v.validate_stdout.trim()).unwrap_or_else(|e| {
                        panic!("{what}: validate printed {:?}: {e}", v.validate_stdout)
                    });
                assert_eq!(judged["code"], err["code"], "{what}");
                assert_eq!(judged["msg"], err["msg"], "{what}");
            }
            (status, _) => panic!(
                "{what}: install exited {status:?}, the plugin answered {:?}\n{}",
                v.plugin, v.install_stderr
            ),
        }
    }
    println!("{accepted} entries accepted and {refused} refused by install, validate and the plugin alike");
    assert!(
        accepted > 10 && refused > 200,
        "{accepted} accepted, {refused} refused"
    );
}

/// `validate --conflist` judges the entry as the runtime hands it over: with the list's version,
/// so an entry fine in itself fails in a list whose version hostguard does not speak.
#[test]
fn validate_a_conflist_as_the_runtime_hands_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, body: &str| {
        let path = dir.path().join(name);
        fs::write(&path, body).unwrap();
        let out = Command::new(common::BIN)
            .env_remove("CNI_COMMAND")
            .args(["validate", "--conflist"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let list = |version: &str, entry: &str| {
        format!(
            r#"{{"cniVersion":"{version}","name":"k8s","plugins":[{{"type":"bridge"}},{entry}]}}"#
        )
    };
    let (status, stdout) = run("ok.conflist", &list("1.0.0", r#"{"type":"hostguard"}"#));
    assert_eq!(status, Some(0), "{stdout}");
    let (status, stdout) = run(
        "typo.conflist",
        &list("0.4.0", r#"{"type":"hostguard","routes":{"restor":false}}"#),
    );
    assert_eq!(status, Some(1));
    let err: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (err["code"].as_u64(), err["cniVersion"].as_str()),
        (Some(2), Some("0.4.0"))
    );
    assert!(err["msg"].as_str().unwrap().contains("routes.restor"));
    let (status, stdout) = run("future.conflist", &list("9.9.9", r#"{"type":"hostguard"}"#));
    assert_eq!(status, Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap()["code"],
        1
    );
    let missing = Command::new(common::BIN)
        .env_remove("CNI_COMMAND")
        .args(["validate", "--conflist", "/nonexistent/x.conflist"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
