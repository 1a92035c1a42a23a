//! The CNI protocol end to end: the real binary, run as a runtime runs it, inside a throwaway
//! "host" namespace, with a throwaway "container" namespace.

use crate::common;

use common::{conf, prev_result, Cni, Node, VERSIONS};
use serde_json::{json, Value};

impl Node {
    fn conf(&self, version: &str, extra: Value) -> Value {
        conf(version, &self.state.path, extra)
    }

    fn with_prev(&self, version: &str) -> Value {
        self.conf(version, json!({ "prevResult": prev_result(version) }))
    }

    fn records(&self) -> Vec<String> {
        common::attachment_records(&self.state.path)
    }
}

#[test]
fn version_answers_with_every_supported_version_and_needs_no_other_variable() {
    for input in [
        "",
        r#"{"cniVersion":"0.3.0"}"#,
        r#"{"cniVersion":"1.1.0"}"#,
        "not json",
    ] {
        let out = Cni::new("VERSION").stdin(input).run();
        out.ok();
        let json = out.json();
        assert_eq!(json["cniVersion"], "1.1.0");
        assert_eq!(json["supportedVersions"], json!(VERSIONS));
    }
}

#[test]
fn add_passes_prev_result_through_in_every_version() {
    let node = Node::new("add");
    for version in VERSIONS {
        let id = format!("ctr-{}", version.replace('.', ""));
        let out = node
            .attach("ADD", &id)
            .config(&node.with_prev(version))
            .run();
        out.ok();
        let mut expected = prev_result(version);
        expected["cniVersion"] = version.into();
        assert_eq!(out.json(), expected, "version {version}");
    }
    assert_eq!(node.records().len(), VERSIONS.len());
}

/// prevResult is converted between the result shapes of the spec, not relabelled: every pair of
/// versions, with the one field that differs (`ips[].version`) added or dropped and nothing else
/// changed.
#[test]
fn add_converts_prev_result_to_the_config_version() {
    let node = Node::new("conv");
    for (i, from) in VERSIONS.iter().enumerate() {
        for (j, to) in VERSIONS.iter().enumerate() {
            let mut conf = node.conf(to, json!({ "prevResult": prev_result(from) }));
            conf["cniVersion"] = json!(to);
            let out = node.attach("ADD", &format!("c{i}{j}")).config(&conf).run();
            out.ok();
            let mut expected = prev_result(to);
            expected["cniVersion"] = json!(to);
            assert_eq!(out.json(), expected, "{from} -> {to}");
        }
    }
}

/// A result of the 0.1.0/0.2.0 shape, or of a version no spec defines, has no conversion: code 1,
/// and no record.
#[test]
fn add_refuses_a_prev_result_it_cannot_convert() {
    let node = Node::new("noconv");
    let old_shape = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.88.0.5/24"}});
    let mislabelled = json!({"cniVersion": "1.0.0", "ip4": {"ip": "10.88.0.5/24"}});
    let mut future = prev_result("1.0.0");
    future["cniVersion"] = json!("9.9.9");
    for prev in [old_shape, mislabelled, future] {
        let conf = node.conf("1.0.0", json!({ "prevResult": prev }));
        let err = node.attach("ADD", "c1").config(&conf).run().error(1);
        assert_eq!(err["cniVersion"], "1.0.0", "{err}");
    }
    assert!(node.records().is_empty());
}

#[test]
fn add_without_prev_result_is_code_7_and_records_nothing() {
    let node = Node::new("noprev");
    let out = node
        .attach("ADD", "c1")
        .config(&node.conf("1.0.0", json!({})))
        .run();
    let err = out.error(7);
    assert!(err["msg"].as_str().unwrap().contains("prevResult"), "{err}");
    assert!(node.records().is_empty());
}

#[test]
fn check_exists_from_0_4_0_on() {
    let node = Node::new("check");
    for version in VERSIONS {
        node.attach("ADD", "c1")
            .config(&node.with_prev(version))
            .run()
            .ok();
        let out = node
            .attach("CHECK", "c1")
            .config(&node.with_prev(version))
            .run();
        if version.starts_with("0.3") {
            out.error(1);
        } else {
            out.ok_silent();
        }
    }
}

#[test]
fn del_is_idempotent_and_needs_neither_prev_result_nor_netns() {
    let node = Node::new("del");
    node.attach("ADD", "c1")
        .config(&node.with_prev("1.0.0"))
        .run()
        .ok();
    assert_eq!(node.records(), vec!["c1@eth0.json"]);

    node.attach("DEL", "c1")
        .config(&node.with_prev("1.0.0"))
        .run()
        .ok_silent();
    assert!(node.records().is_empty());
    // Second DEL, DEL without prevResult, with empty CNI_NETNS, with a deleted netns path.
    node.attach("DEL", "c1")
        .config(&node.with_prev("1.0.0"))
        .run()
        .ok_silent();
    node.attach("DEL", "c1")
        .config(&node.conf("1.0.0", json!({})))
        .run()
        .ok_silent();
    node.attach("DEL", "c1")
        .env("CNI_NETNS", "")
        .config(&node.conf("0.3.1", json!({})))
        .run()
        .ok_silent();
    node.attach("DEL", "c1")
        .env("CNI_NETNS", "/run/netns/hgt-does-not-exist")
        .config(&node.conf("0.4.0", json!({})))
        .run()
        .ok_silent();
    // DEL with no state directory at all.
    let fresh = conf("1.0.0", &node.state.join("never-created"), json!({}));
    node.attach("DEL", "c2").config(&fresh).run().ok_silent();
}

#[test]
fn del_after_the_container_namespace_is_gone_succeeds() {
    let node = Node::new("gone");
    node.attach("ADD", "c1")
        .config(&node.with_prev("1.1.0"))
        .run()
        .ok();
    let path = node.container.path();
    drop(node.container);
    assert!(!path.exists());
    Cni::attach("DEL", "c1", &path, "eth0")
        .in_ns(&node.host)
        .config(&conf("1.1.0", &node.state.path, json!({})))
        .run()
        .ok_silent();
    assert!(
        std::fs::read_dir(common::run_dir(&node.state.path).join("attachments"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// STATUS and GC concern the plugin, not an attachment: stale attachment variables a runtime
/// leaves in their environment do not fail them. Errors found before the configuration is read
/// still answer in its version, and their details are sentences, not Rust's debug text.
#[test]
fn status_and_gc_ignore_attachment_variables_and_errors_keep_the_callers_version() {
    let node = Node::new("stale");
    for verb in ["STATUS", "GC"] {
        Cni::new(verb)
            .in_ns(&node.host)
            .env("CNI_IFNAME", "a/b")
            .env("CNI_NETNS", "relative")
            .env("CNI_CONTAINERID", "../x")
            .config(&node.conf("1.1.0", json!({})))
            .run()
            .ok_silent();
    }
    let err = Cni::new("FROB")
        .config(&node.conf("0.4.0", json!({})))
        .run()
        .error(4);
    assert_eq!(err["cniVersion"], "0.4.0", "{err}");
    let err = node
        .attach("CHECK", "c1")
        .config(&node.with_prev("0.3.1"))
        .run()
        .error(1);
    let details = err["details"].as_str().unwrap();
    assert!(
        details.contains("0.4.0") && !details.contains("SpecVersion"),
        "{details}"
    );
}

#[test]
fn status_and_gc_exist_from_1_1_0_on() {
    let node = Node::new("stgc");
    for version in VERSIONS {
        for verb in ["STATUS", "GC"] {
            let out = Cni::new(verb)
                .in_ns(&node.host)
                .config(&node.conf(version, json!({})))
                .run();
            if version == "1.1.0" {
                out.ok_silent();
            } else {
                out.error(1);
            }
        }
    }
}

#[test]
fn gc_keeps_exactly_the_valid_attachments() {
    let node = Node::new("gc");
    let add_all = |ids: &[&str]| {
        for id in ids {
            node.attach("ADD", id)
                .config(&node.with_prev("1.1.0"))
                .run()
                .ok();
        }
    };
    add_all(&["a", "b", "c"]);
    let gc = |key: &str, value: Value| {
        Cni::new("GC")
            .in_ns(&node.host)
            .config(&node.conf("1.1.0", json!({ key: value })))
            .run()
            .ok_silent();
    };
    gc(
        "cni.dev/valid-attachments",
        json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "c", "ifname": "eth9"}]),
    );
    assert_eq!(node.records(), vec!["a@eth0.json"]);

    add_all(&["b"]);
    gc(
        "cni.dev/attachments",
        json!([{"containerID": "b", "ifname": "eth0"}]),
    );
    assert_eq!(node.records(), vec!["b@eth0.json"]);

    gc("cni.dev/valid-attachments", Value::Null);
    assert!(node.records().is_empty());
}

/// A container attached to two networks (Multus and the like) through the same interface name:
/// each network's DEL and GC touch only that network's records.
#[test]
fn gc_and_del_touch_only_their_own_networks_records() {
    let node = Node::new("gcnet");
    let on = |network: &str, extra: Value| {
        let mut conf = node.conf("1.1.0", extra);
        conf["name"] = json!(network);
        conf
    };
    let with_prev = |network: &str| on(network, json!({ "prevResult": prev_result("1.1.0") }));
    for (network, id) in [("blue", "c1"), ("red", "c1"), ("red", "c2")] {
        node.attach("ADD", id)
            .config(&with_prev(network))
            .run()
            .ok();
    }
    let records = |network: &str| -> Vec<String> {
        let dir = common::run_dir(&node.state.path)
            .join("attachments")
            .join(network);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(records("blue"), ["c1@eth0.json"]);
    assert_eq!(records("red"), ["c1@eth0.json", "c2@eth0.json"]);

    // blue's runtime knows no attachment of blue any more: red's records stay.
    Cni::new("GC")
        .in_ns(&node.host)
        .config(&on("blue", json!({ "cni.dev/valid-attachments": [] })))
        .run()
        .ok_silent();
    assert!(records("blue").is_empty());
    assert_eq!(records("red"), ["c1@eth0.json", "c2@eth0.json"]);

    node.attach("ADD", "c1")
        .config(&with_prev("blue"))
        .run()
        .ok();
    node.attach("DEL", "c1")
        .config(&on("red", json!({})))
        .run()
        .ok_silent();
    assert_eq!(records("blue"), ["c1@eth0.json"]);
    assert_eq!(records("red"), ["c2@eth0.json"]);
}

/// Records of the older flat layout name their network inside: GC of another network keeps them,
/// GC of theirs judges them; one that names no network is judged by every GC, as before.
#[test]
fn gc_judges_flat_layout_records_by_the_network_they_name() {
    let node = Node::new("gcflat");
    let top = common::run_dir(&node.state.path).join("attachments");
    std::fs::create_dir_all(&top).unwrap();
    for (id, network) in [("old-red", "red"), ("old-blue", "blue"), ("old-none", "")] {
        let record = json!({"version": 1, "containerID": id, "ifname": "eth0",
                            "netns": "/x", "network": network, "created_unix": 1});
        std::fs::write(top.join(format!("{id}@eth0.json")), record.to_string()).unwrap();
    }
    let mut conf = node.conf("1.1.0", json!({ "cni.dev/valid-attachments": [] }));
    conf["name"] = json!("blue");
    Cni::new("GC")
        .in_ns(&node.host)
        .config(&conf)
        .run()
        .ok_silent();
    assert_eq!(node.records(), ["old-red@eth0.json"]);
}

#[test]
fn missing_and_invalid_environment_is_code_4_naming_the_variable() {
    let node = Node::new("env");
    let conf = node.with_prev("1.0.0");
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        let err = node
            .attach("ADD", "c1")
            .unset(var)
            .config(&conf)
            .run()
            .error(4);
        assert!(err["msg"].as_str().unwrap().contains(var), "{err}");
    }
    let err = Cni::new("FROB").config(&conf).run().error(4);
    assert!(err["msg"].as_str().unwrap().contains("FROB"));
    for ifname in ["", "0123456789abcdef", "..", "a/b", "a:b", "a b"] {
        let out = node
            .attach("ADD", "c1")
            .env("CNI_IFNAME", ifname)
            .config(&conf)
            .run();
        out.error(4);
    }
    assert!(node.records().is_empty());
}

#[test]
fn hostile_container_ids_never_escape_the_state_directory() {
    let node = Node::new("hostile");
    let outside = node.state.join("../escaped");
    for id in [
        "../escaped",
        "..",
        "/etc/passwd",
        "a/../../b",
        "-rf",
        ".hidden",
        "a\nb",
        &"x".repeat(4096),
    ] {
        let out = node
            .attach("ADD", id)
            .config(&node.with_prev("1.0.0"))
            .run();
        out.error(4);
        node.attach("DEL", id)
            .config(&node.with_prev("1.0.0"))
            .run()
            .error(4);
    }
    assert!(!outside.exists());
    assert!(node.records().is_empty());
}

#[test]
fn broken_config_gets_the_spec_codes_and_touches_nothing() {
    let node = Node::new("bad");
    let cases: Vec<(Vec<u8>, u64)> = vec![
        (b"".to_vec(), 6),
        (b"{".to_vec(), 6),
        (b"[1,2]".to_vec(), 6),
        (vec![0xff, 0xfe, b'{', b'}'], 6),
        (
            br#"{"cniVersion":"1.0.0","name":"n","type":"hostguard","x":"a\u0000b"#.to_vec(),
            6,
        ),
        (br#"{"name":"n"}"#.to_vec(), 7),
        (br#"{"cniVersion":"1.0.0"}"#.to_vec(), 7),
        (br#"{"cniVersion":"2.0.0","name":"n"}"#.to_vec(), 1),
        (br#"{"cniVersion":1.0,"name":"n"}"#.to_vec(), 7),
        (
            br#"{"cniVersion":"1.0.0","name":"n","routes":{"restor":true}}"#.to_vec(),
            2,
        ),
        (
            br#"{"cniVersion":"1.0.0","name":"n","uplink":"eth1"}"#.to_vec(),
            7,
        ),
        (
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            6,
        ),
    ];
    for (stdin, code) in cases {
        let out = node.attach("ADD", "c1").stdin(stdin.clone()).run();
        out.error(code);
    }
    assert!(!node.state.join("attachments").exists());
    assert!(!common::run_dir(&node.state.path)
        .join("attachments")
        .exists());
}

#[test]
fn oversized_stdin_is_refused() {
    let node = Node::new("big");
    let mut body = br#"{"cniVersion":"1.0.0","name":"n","pad":""#.to_vec();
    body.resize(64 << 20, b'a');
    node.attach("ADD", "c1").stdin(body).run().error(6);
}

#[test]
fn a_corrupt_baseline_is_reported_not_replaced() {
    let node = Node::new("corrupt");
    std::fs::write(
        node.state.join("baseline.json"),
        b"{\"version\":1,\"routes\":[{",
    )
    .unwrap();
    let before = std::fs::read(node.state.join("baseline.json")).unwrap();
    let err = Cni::new("STATUS")
        .in_ns(&node.host)
        .config(&node.conf("1.1.0", json!({})))
        .run()
        .error(50);
    assert!(
        err["details"].as_str().unwrap().contains("baseline.json"),
        "{err}"
    );
    node.attach("ADD", "c1")
        .config(&node.with_prev("1.1.0"))
        .run();
    node.attach("CHECK", "c1")
        .config(&node.with_prev("1.1.0"))
        .run()
        .error(5);
    assert_eq!(
        std::fs::read(node.state.join("baseline.json")).unwrap(),
        before
    );
}

/// A runtime that stopped listening gets an exit status, not a process killed by SIGPIPE.
#[test]
fn a_reply_into_a_closed_pipe_ends_with_a_status_not_a_signal() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let status = Command::new(common::BIN)
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .status()
        .unwrap();
    assert_eq!(status.signal(), None, "{status:?}");
    assert_eq!(status.code(), Some(0));
}
