//! `hostguard install` / `uninstall` run once, as an init container would: what ends up on disk,
//! what is refused, and what is said.

use crate::install_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use install_support::*;
use serde_json::{json, Value};

const SHORT: &str = "0.3";

#[test]
fn no_upstream_times_out_and_writes_nothing() {
    let node = Node::new();
    node.install(&["--timeout", SHORT])
        .assert_code(1)
        .assert_stderr("no *.conf, *.conflist or *.json file yet")
        .assert_stderr("nothing written");
    assert!(node.listing().is_empty(), "{:?}", node.listing());
}

#[test]
fn a_broken_upstream_is_waited_for_and_named() {
    let cases = [
        ("empty", &b""[..], "10-calico.conflist is empty"),
        (
            "whitespace",
            &b" \n\t"[..],
            "10-calico.conflist holds only whitespace",
        ),
        (
            "truncated",
            &testdata_bytes("truncated.conflist")[..],
            "10-calico.conflist is truncated (the JSON ends early) at line 7",
        ),
        (
            "invalid",
            &testdata_bytes("invalid.conflist")[..],
            "10-calico.conflist is not valid JSON at line 5, column 25 (byte 95)",
        ),
        (
            "no type",
            &testdata_bytes("missing-type.conflist")[..],
            "has no \"type\" key in plugins[1]",
        ),
        (
            "no name",
            &testdata_bytes("missing-name.conflist")[..],
            "10-calico.conflist has no \"name\" key",
        ),
        (
            "no version",
            &testdata_bytes("missing-cniversion.conflist")[..],
            "10-calico.conflist has no \"cniVersion\" key",
        ),
        (
            "no plugins",
            &testdata_bytes("empty-plugins.conflist")[..],
            "has an empty \"plugins\" array",
        ),
        (
            "old version",
            &testdata_bytes("old-version.conflist")[..],
            "\"0.2.0\", which hostguard does not speak",
        ),
        (
            "not an object",
            &b"[]"[..],
            "holds an array, expected a JSON object",
        ),
    ];
    for (case, bytes, message) in cases {
        let node = Node::new();
        node.put("10-calico.conflist", bytes);
        let run = node.install(&["--timeout", SHORT]);
        assert_eq!(run.code(), 1, "{case}: {}", run.stderr);
        assert!(
            run.stderr.contains(message),
            "{case}: stderr lacks {message:?}:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("gave up after 0.3s"),
            "{case}: {}",
            run.stderr
        );
        assert!(!node.output().exists(), "{case}: output written");
        assert_eq!(
            fs::read(node.path("10-calico.conflist")).unwrap(),
            bytes,
            "{case}: upstream changed"
        );
    }
}

#[test]
fn a_conflist_in_a_conf_file_is_named_as_such() {
    let node = Node::new();
    node.put_testdata("10-k8s.conf", "list-in-a.conf");
    node.install(&["--timeout", "0"])
        .assert_code(1)
        .assert_stderr("10-k8s.conf has \"plugins\" but no \"type\"")
        .assert_stderr("*.conflist");
}

#[test]
fn the_first_file_is_never_skipped_for_a_later_one() {
    let node = Node::new();
    node.put("10-antrea.conflist", b"");
    node.put_testdata("20-azure.conflist", "calico.conflist");
    node.install(&["--timeout", SHORT])
        .assert_code(1)
        .assert_stderr("10-antrea.conflist is empty")
        .assert_stderr("instead of chaining 20-azure.conflist");
    assert!(!node.output().exists());
}

#[test]
fn chains_a_conflist_keeping_keys_and_order() {
    let node = Node::new();
    let upstream = node.put_testdata("10-calico.conflist", "calico.conflist");
    node.install(&["--timeout", "5"])
        .assert_ok()
        .assert_stdout("wrote ")
        .assert_stdout("10-calico.conflist + hostguard, 4 plugins");
    let written = assert_chained(&fs::read(node.output()).unwrap());
    let mut expected = testdata_json("calico.conflist");
    expected["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "hostguard"}));
    // The marker names the file and its source; runtimes ignore top-level keys they do not know.
    expected["hostguardInstall"] = json!({"output": OUTPUT, "upstream": "10-calico.conflist"});
    assert_eq!(written, expected);
    assert_eq!(fs::read(node.path("10-calico.conflist")).unwrap(), upstream);
    assert_eq!(
        fs::metadata(node.output()).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        node.listing(),
        [".hostguard.lock", OUTPUT, "10-calico.conflist"]
    );
}

#[test]
fn converts_a_single_plugin_conf_and_json() {
    for (name, testdata, version, network, kind) in [
        ("10-bridge.conf", "bridge.conf", "0.4.0", "mynet", "bridge"),
        ("10-ptp.json", "ptp.json", "1.0.0", "ptp-net", "ptp"),
    ] {
        let node = Node::new();
        let upstream = node.put_testdata(name, testdata);
        node.install(&["--timeout", "5"]).assert_ok();
        let written = assert_chained(&fs::read(node.output()).unwrap());
        assert_eq!(written["cniVersion"], version);
        assert_eq!(written["name"], network);
        let mut plugin = testdata_json(testdata);
        plugin.as_object_mut().unwrap().remove("cniVersion");
        plugin.as_object_mut().unwrap().remove("name");
        assert_eq!(written["plugins"][0], plugin, "{name}");
        assert_eq!(plugin_types(&written), [kind, "hostguard"]);
        assert_eq!(fs::read(node.path(name)).unwrap(), upstream);
    }
}

#[test]
fn earlier_hostguard_entries_become_exactly_one() {
    let node = Node::new();
    node.put_testdata("10-flannel.conflist", "with-two-hostguard.conflist");
    node.install(&["--timeout", "5"])
        .assert_ok()
        .assert_stderr("already had 2 hostguard entries");
    let written = assert_chained(&fs::read(node.output()).unwrap());
    assert_eq!(plugin_types(&written), ["flannel", "portmap", "hostguard"]);
    assert_eq!(written["plugins"][2], json!({"type": "hostguard"}));
    assert_eq!(written["disableCheck"], false);
}

#[test]
fn a_second_run_rewrites_nothing() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    node.install(&["--timeout", "5"]).assert_ok();
    let before = identity(&node.output());
    let content = fs::read(node.output()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    node.install(&["--timeout", "5"])
        .assert_ok()
        .assert_stdout("is up to date");
    assert_eq!(identity(&node.output()), before);
    assert_eq!(fs::read(node.output()).unwrap(), content);
}

#[test]
fn refuses_when_another_config_would_load_first() {
    let node = Node::new();
    node.put_testdata("00-aaa.conflist", "calico.conflist");
    let run = node.install(&["--timeout", "5"]);
    run.assert_code(1)
        .assert_stderr("00-aaa.conflist sorts before 00-hostguard.conflist")
        .assert_stderr("nothing written");
    assert_eq!(node.listing(), ["00-aaa.conflist"]);
    // The suggested name works.
    let suggested = run
        .stderr
        .split("use --output ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim();
    node.install(&["--timeout", "5", "--output", suggested])
        .assert_ok();
    assert_chained(&fs::read(node.path(suggested)).unwrap());
}

#[test]
fn a_symlink_at_the_output_is_refused_and_left_alone() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let victim = node.root.join("victim");
    fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, node.output()).unwrap();
    node.install(&["--timeout", "5"])
        .assert_code(1)
        .assert_stderr("is a symbolic link to")
        .assert_stderr("does not replace a link");
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert!(fs::symlink_metadata(node.output())
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!node
        .listing()
        .iter()
        .any(|n| n.starts_with(".hostguard-tmp-")));
}

#[test]
fn a_directory_at_the_output_is_refused() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    fs::create_dir(node.output()).unwrap();
    node.install(&["--timeout", "5"])
        .assert_code(1)
        .assert_stderr("a directory");
    assert!(node.output().is_dir());
}

#[test]
fn primary_pins_the_upstream() {
    let node = Node::new();
    node.put_testdata("10-bridge.conf", "bridge.conf");
    node.put_testdata("20-calico.conflist", "calico.conflist");
    node.install(&["--timeout", "5", "--primary", "20-calico.conflist"])
        .assert_ok();
    let written = node.output_json();
    assert_eq!(
        plugin_types(&written),
        ["calico", "portmap", "bandwidth", "hostguard"]
    );
    // A pinned file that is missing is waited for by name.
    let other = Node::new();
    other.put_testdata("10-bridge.conf", "bridge.conf");
    other
        .install(&["--timeout", "0", "--primary", "30-x.conflist"])
        .assert_code(1)
        .assert_stderr("30-x.conflist (--primary) does not exist yet");
}

#[test]
fn a_symlinked_upstream_is_read_through() {
    let node = Node::new();
    let real = node.root.join("calico-real.conflist");
    fs::write(&real, testdata_bytes("calico.conflist")).unwrap();
    std::os::unix::fs::symlink(&real, node.path("10-calico.conflist")).unwrap();
    node.install(&["--timeout", "5"]).assert_ok();
    assert_eq!(plugin_types(&node.output_json())[0], "calico");

    let dangling = Node::new();
    std::os::unix::fs::symlink(
        "/nonexistent/calico.conflist",
        dangling.path("10-calico.conflist"),
    )
    .unwrap();
    dangling
        .install(&["--timeout", "0"])
        .assert_code(1)
        .assert_stderr("is a symbolic link to /nonexistent/calico.conflist, which does not exist");
}

#[test]
fn plugin_config_and_state_dir_fill_the_entry() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let config = node.root.join("pc.json");
    fs::write(&config, testdata_bytes("plugin-config.json")).unwrap();
    let state = node.state.to_string_lossy().into_owned();
    let run = node.state.join("run").to_string_lossy().into_owned();
    node.install(&[
        "--timeout",
        "5",
        "--plugin-config",
        config.to_str().unwrap(),
        "--state-dir",
        &state,
        "--run-dir",
        &run,
    ])
    .assert_ok();
    let mut expected = testdata_json("plugin-config.json");
    expected["type"] = json!("hostguard");
    expected["stateDir"] = json!(state);
    expected["runDir"] = json!(run);
    assert_eq!(node.output_json()["plugins"][3], expected);
    assert_eq!(
        fs::metadata(&node.state).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Inline JSON on stdin, as the install-cni script passes it.
    let piped = Node::new();
    piped.put_testdata("10-calico.conflist", "calico.conflist");
    let mut child = piped
        .command("install", &["--timeout", "5", "--plugin-config", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"logLevel":"warn"}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        piped.output_json()["plugins"][3],
        json!({"type": "hostguard", "logLevel": "warn"})
    );
}

#[test]
fn a_bad_plugin_config_is_refused_before_anything_is_written() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let config = node.root.join("pc.json");
    fs::write(&config, br#"{"type":"bridge"}"#).unwrap();
    node.install(&[
        "--timeout",
        "5",
        "--plugin-config",
        config.to_str().unwrap(),
    ])
    .assert_code(1)
    .assert_stderr("leave \"type\" out");
    fs::write(&config, b"{").unwrap();
    node.install(&[
        "--timeout",
        "5",
        "--plugin-config",
        config.to_str().unwrap(),
    ])
    .assert_code(1)
    .assert_stderr("is truncated");
    assert!(!node.output().exists());
}

#[test]
fn bin_dir_gets_the_binary_first_and_once() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let bin = node.bin.to_string_lossy().into_owned();
    node.install(&["--timeout", "5", "--bin-dir", &bin])
        .assert_ok()
        .assert_stdout("installed ");
    let copied = node.bin.join("hostguard");
    assert_eq!(fs::read(&copied).unwrap(), fs::read(BIN).unwrap());
    assert_eq!(
        fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let before = identity(&copied);
    node.install(&["--timeout", "5", "--bin-dir", &bin])
        .assert_ok()
        .assert_stdout("hostguard is up to date");
    assert_eq!(identity(&copied), before);
    // Nothing is written anywhere while there is no upstream.
    let empty = Node::new();
    let bin = empty.bin.to_string_lossy().into_owned();
    empty
        .install(&["--timeout", "0", "--bin-dir", &bin])
        .assert_code(1);
    assert!(!empty.bin.join("hostguard").exists());
}

#[test]
fn uninstall_removes_only_ours_and_is_idempotent() {
    let node = Node::new();
    let upstream = node.put_testdata("10-calico.conflist", "calico.conflist");
    let bin = node.bin.to_string_lossy().into_owned();
    node.install(&["--timeout", "5", "--bin-dir", &bin])
        .assert_ok();
    node.uninstall(&["--bin-dir", &bin])
        .assert_ok()
        .assert_stdout("removed ");
    assert_eq!(node.listing(), ["10-calico.conflist"]);
    assert_eq!(fs::read(node.path("10-calico.conflist")).unwrap(), upstream);
    assert!(!node.bin.join("hostguard").exists());
    node.uninstall(&["--bin-dir", &bin])
        .assert_ok()
        .assert_stdout("nothing to do");
    assert_eq!(node.listing(), ["10-calico.conflist"]);
}

#[test]
fn uninstall_refuses_a_file_that_is_not_ours() {
    let node = Node::new();
    let foreign = testdata_bytes("calico.conflist");
    node.put(OUTPUT, &foreign);
    node.uninstall(&[])
        .assert_code(1)
        .assert_stderr("has no plugin of type hostguard");
    assert_eq!(fs::read(node.output()).unwrap(), foreign);
    let victim = node.root.join("victim");
    fs::write(&victim, b"keep").unwrap();
    fs::remove_file(node.output()).unwrap();
    std::os::unix::fs::symlink(&victim, node.output()).unwrap();
    node.uninstall(&[])
        .assert_code(1)
        .assert_stderr("symbolic link");
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
}

#[test]
fn uninstall_keeps_the_binary_while_another_config_names_hostguard() {
    let node = Node::new();
    node.put_testdata("10-flannel.conflist", "with-two-hostguard.conflist");
    let bin = node.bin.to_string_lossy().into_owned();
    node.install(&["--timeout", "5", "--bin-dir", &bin])
        .assert_ok();
    node.uninstall(&["--bin-dir", &bin])
        .assert_ok()
        .assert_stderr("still names hostguard");
    assert!(node.bin.join("hostguard").exists());
    assert!(!node.output().exists());
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let node = Node::new();
    node.install(&["--bogus"])
        .assert_code(2)
        .assert_stderr("unknown option --bogus");
    node.install(&["--timeout"])
        .assert_code(2)
        .assert_stderr("--timeout needs a value");
    node.install(&["--output", "x.conf"])
        .assert_code(2)
        .assert_stderr("must end in .conflist");
    node.uninstall(&["--watch"])
        .assert_code(2)
        .assert_stderr("unknown option --watch");
    let help = Run::from(
        std::process::Command::new(BIN)
            .args(["install", "--help"])
            .output()
            .unwrap(),
    );
    help.assert_ok()
        .assert_stdout("usage: hostguard install --conf-dir DIR");
    let help = Run::from(
        std::process::Command::new(BIN)
            .args(["uninstall", "-h"])
            .output()
            .unwrap(),
    );
    help.assert_ok()
        .assert_stdout("usage: hostguard uninstall --conf-dir DIR");
}

#[test]
fn a_missing_conf_dir_is_created_and_waited_in() {
    let node = Node::new();
    let nested = node.root.join("fresh/net.d");
    let run = Run::from(
        std::process::Command::new(BIN)
            .args(["install", "--timeout", "0", "--conf-dir"])
            .arg(&nested)
            .output()
            .unwrap(),
    );
    run.assert_code(1).assert_stderr("created ");
    assert!(nested.is_dir());
}

#[test]
fn output_is_stable_json_with_the_upstream_values() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    node.install(&["--timeout", "5"]).assert_ok();
    let written: Value = node.output_json();
    assert_eq!(written["name"], "k8s-pod-network");
    assert_eq!(written["cniVersion"], "0.3.1");
    assert_eq!(written["plugins"][0]["mtu"], 1440);
}
