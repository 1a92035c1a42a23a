//! Hostile bytes on stdin and in the environment, fed to the real binary inside a throwaway host
//! namespace: truncated and 100k-deep JSON, 8 MiB strings, wrong types for every configuration
//! key of the contract, invalid UTF-8, NUL bytes, path traversal in container IDs and interface
//! names. Each must end as a CNI error with the expected code (exit 1) while the host namespace
//! and every file stay exactly as they were.

use crate::hostile_support;

use hostile_support::Node;
use serde_json::{json, Value};

/// A configuration that sets every key of the contract, so that each case below can replace one.
fn full(node: &Node) -> Value {
    node.conf("1.1.0", hostile_support::full_entry(node))
}

/// `a.b[0].c` for the JSON pointer `/a/b/0/c`, as error messages name keys.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn with(mut conf: Value, pointer: &str, value: Value) -> Value {
    *conf
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the full config")) = value;
    conf
}

/// Runs ADD and DEL with `stdin`: ADD must fail with `code`, DEL must succeed (a failed DEL
/// would keep the runtime from running the rest of the chain's DEL), both must change nothing, and
/// the state directory must not even be created. Returns ADD's error.
fn refused(node: &Node, stdin: &[u8], code: u64, what: &str) -> Vec<Value> {
    let add = node.call("ADD", "c1").stdin(stdin.to_vec()).run();
    let err = std::panic::catch_unwind(|| add.error(code))
        .unwrap_or_else(|_| panic!("ADD {what}: expected code {code}, got {add:?}"));
    assert!(
        !node.state().exists(),
        "ADD {what}: the state directory was created"
    );
    let del = node.call("DEL", "c1").stdin(stdin.to_vec()).run();
    assert!(
        del.status == 0 && del.stdout.trim().is_empty(),
        "DEL {what}: expected success, got {del:?}"
    );
    assert!(
        !node.state().exists(),
        "DEL {what}: the state directory was created"
    );
    vec![err]
}

#[test]
fn truncated_json_is_code_6_wherever_it_is_cut() {
    let node = Node::new("trunc");
    let before = node.picture();
    let whole = full(&node).to_string().into_bytes();
    for cut in (0..whole.len()).step_by(7) {
        let err = refused(&node, &whole[..cut], 6, &format!("cut at {cut}"));
        assert!(err[0]["msg"].as_str().unwrap().contains("not valid JSON") || cut == 0);
    }
    before.assert_same(&node.picture(), "truncated JSON");
}

#[test]
fn json_nested_100k_deep_is_refused_without_recursing() {
    let node = Node::new("deep");
    let before = node.picture();
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let base = full(&node).to_string();
    let body = &base[1..]; // the config's keys, to put a deep value in front of them
    for (place, deep) in [("arrays", &arrays), ("objects", &objects)] {
        for key in ["prevResult", "x-vendor", "rules", "waitFor"] {
            let stdin = format!(r#"{{"{key}":{deep},{body}"#);
            refused(&node, stdin.as_bytes(), 6, &format!("{place} in {key}"));
        }
        refused(&node, deep.as_bytes(), 6, &format!("top-level {place}"));
    }
    before.assert_same(&node.picture(), "deep JSON");
}

#[test]
fn eight_mib_strings_are_refused_at_the_stdin_cap() {
    let node = Node::new("big");
    let before = node.picture();
    let big = "a".repeat(8 << 20);
    for pointer in [
        "/name",
        "/stateDir",
        "/logFile",
        "/prevResult/dns",
        "/uplink/interface",
    ] {
        let value = if pointer.ends_with("Dir") || pointer.ends_with("File") {
            format!("/{big}")
        } else {
            big.clone()
        };
        let conf = with(full(&node), pointer, Value::String(value));
        let err = refused(&node, conf.to_string().as_bytes(), 6, pointer);
        assert!(
            err[0]["msg"].as_str().unwrap().contains("larger than"),
            "{err:?}"
        );
        // The answer quotes nothing of the input.
        assert!(err[0].to_string().len() < 1024, "{pointer}: a huge error");
    }
    before.assert_same(&node.picture(), "8 MiB strings");
}

/// Every key of the contract with values of every wrong JSON type (and a few out-of-range
/// values of the right type): code 7 (1 for an unsupported cniVersion) and a message that names
/// the key for ADD; DEL succeeds whatever the configuration.
#[test]
fn every_key_with_a_wrong_type_is_code_7_naming_the_key() {
    let node = Node::new("types");
    let before = node.picture();
    let cases = hostile_support::wrong_values();

    let mut runs = 0;
    for (pointer, values) in &cases {
        let key = dotted(pointer);
        for value in values {
            let conf = with(full(&node), pointer, value.clone());
            let what = format!("{key} = {value}");
            for err in refused(&node, conf.to_string().as_bytes(), 7, &what) {
                let msg = err["msg"].as_str().unwrap();
                // A wrong type inside a selector or interface entry is named by its parent when
                // the parent itself is the wrong type.
                assert!(
                    msg.contains(&key),
                    "{what}: the message does not name {key}: {msg}"
                );
            }
            runs += 2;
        }
    }
    // The GC key, and a version that exists in no spec.
    let gc = with(full(&node), "/name", json!("n"));
    for value in [
        json!(1),
        json!("x"),
        json!({}),
        json!([{"containerID": 1, "ifname": "e"}]),
    ] {
        let mut conf = gc.clone();
        conf["cni.dev/valid-attachments"] = value.clone();
        let err = refused(
            &node,
            conf.to_string().as_bytes(),
            7,
            &format!("attachments {value}"),
        );
        assert!(err[0]["msg"]
            .as_str()
            .unwrap()
            .contains("cni.dev/valid-attachments"));
    }
    let conf = with(full(&node), "/cniVersion", json!("9.9.9"));
    refused(&node, conf.to_string().as_bytes(), 1, "cniVersion 9.9.9");
    assert!(runs > 200, "only {runs} runs");
    before.assert_same(&node.picture(), "wrong types");
}

#[test]
fn invalid_utf8_and_nul_bytes_are_refused() {
    let node = Node::new("utf8");
    let before = node.picture();
    let base = full(&node).to_string();
    let splice = |needle: &str, bytes: &[u8]| -> Vec<u8> {
        let at = base.find(needle).unwrap() + needle.len();
        [&base.as_bytes()[..at], bytes, &base.as_bytes()[at..]].concat()
    };
    let decoding: Vec<(&str, Vec<u8>)> = vec![
        (
            "0xff in the name",
            splice(r#""name":"#, b"\"\xff\xfe\",\"x\":"),
        ),
        (
            "overlong slash in stateDir",
            splice(r#""stateDir":""#, b"\xc0\xaf"),
        ),
        (
            "a lone surrogate escape",
            splice(r#""name":"#, br#""\ud800","x":"#),
        ),
        (
            "invalid UTF-8 as a key",
            splice("{", b"\"\xed\xa0\x80\":1,"),
        ),
        ("a raw NUL inside a string", splice(r#""name":""#, b"a\0b")),
        ("a raw NUL between tokens", splice("{", b"\0")),
        (
            "a UTF-16 byte order mark",
            [&[0xfe, 0xff][..], base.as_bytes()].concat(),
        ),
        (
            "UTF-16 text",
            base.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        ),
    ];
    for (what, stdin) in &decoding {
        refused(&node, stdin, 6, what);
    }
    // Escaped NULs are valid JSON, but no path may hold one.
    for pointer in ["/stateDir", "/runDir", "/logFile", "/networkManager/runDir"] {
        let conf = with(full(&node), pointer, json!("/var/lib/a\u{0}b"));
        refused(&node, conf.to_string().as_bytes(), 7, pointer);
    }
    before.assert_same(&node.picture(), "invalid UTF-8 and NUL");
}

#[test]
fn hostile_environment_is_code_4_and_touches_nothing() {
    let node = Node::new("env");
    let before = node.picture();
    let conf = full(&node);
    let long = "x".repeat(1 << 16);
    let ids = [
        "../../etc/cni",
        "..",
        ".",
        "/abs",
        "a/../../b",
        "a\\b",
        "-rf",
        "%2e%2e",
        "a b",
        &long,
    ];
    for id in ids {
        for verb in ["ADD", "CHECK", "DEL"] {
            let out = node.call(verb, id).config(&conf).run();
            out.error(4);
        }
    }
    let ifnames = [
        "../x",
        "..",
        ".",
        "a/b",
        "a:b",
        "a b",
        "a\tb",
        "0123456789abcdef",
        &long,
    ];
    for ifname in ifnames {
        for verb in ["ADD", "CHECK", "DEL"] {
            let out = node
                .call(verb, "c1")
                .env("CNI_IFNAME", ifname)
                .config(&conf)
                .run();
            let err = out.error(4);
            assert!(err["msg"].as_str().unwrap().contains("CNI_IFNAME"), "{err}");
            assert!(
                err.to_string().len() < 2048,
                "the error quotes all of {ifname:.20}"
            );
        }
    }
    for netns in ["relative/ns", "ns"] {
        node.call("ADD", "c1")
            .env("CNI_NETNS", netns)
            .config(&conf)
            .run()
            .error(4);
    }
    for command in ["add", "ADD\n", " ADD", "ADDX", "", &long] {
        node.call(command, "c1").config(&conf).run().error(4);
    }
    // Bytes that are not UTF-8 cannot reach a String: the variable counts as missing.
    let mut cmd = node.call("ADD", "c1").command();
    use std::os::unix::ffi::OsStringExt;
    cmd.env(
        "CNI_CONTAINERID",
        std::ffi::OsString::from_vec(b"c\xff1".to_vec()),
    );
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 4, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("CNI_CONTAINERID"));
    assert!(!node.state().exists());
    before.assert_same(&node.picture(), "hostile environment");
}

/// Interface names may hold nearly any byte; the file names made from them must stay inside the
/// attachments directory, fit a file name, and be removed by DEL. With the longest container ID
/// hostguard accepts, an escaped interface name must still fit the writer's temporary name.
#[test]
fn unusual_but_valid_names_stay_inside_the_state_directory() {
    let node = Node::new("names");
    let conf = node.conf("1.0.0", json!({}));
    let longest = "a".repeat(192);
    let cases = [
        ("c1", "%2F.."),
        ("c1", "eth0.json"),
        ("c1", "@@@"),
        ("c1", "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
        ("c.-_1", "-"),
        (longest.as_str(), "eth0"),
        (longest.as_str(), "%%%%%%%%%%%%%%%"),
        (
            longest.as_str(),
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ),
    ];
    for (id, ifname) in cases {
        let out = node
            .call("ADD", id)
            .env("CNI_IFNAME", ifname)
            .config(&conf)
            .run();
        assert_eq!(out.status, 0, "ADD {id:.12}… {ifname:?}: {out:?}");
        let records = node.records();
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(!records[0].contains('/') && records[0].len() <= 255);
        let record: Value = serde_json::from_slice(
            &std::fs::read(
                node.state()
                    .join("run/attachments/hostile")
                    .join(&records[0]),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(record["ifname"], ifname);
        assert_eq!(record["containerID"], id);
        node.call("DEL", id)
            .env("CNI_IFNAME", ifname)
            .config(&conf)
            .run()
            .ok();
        assert!(node.records().is_empty(), "DEL left {:?}", node.records());
    }
    assert!(hostile_support::temp_files(&node.dir.path).is_empty());
    // Nothing escaped the state directory.
    let top: Vec<String> = hostile_support::tree(&node.dir.path)
        .into_keys()
        .filter(|p| !p.starts_with("state"))
        .collect();
    assert!(top.is_empty(), "{top:?}");
}

/// prevResult is passed through unchanged, numbers included. serde_json reads some decimals to a
/// neighbouring f64 unless its `float_roundtrip` feature is on (it is), so ADD's result could
/// differ from its prevResult in the last digits of a float (found by the cni_invocation fuzz
/// target).
#[test]
fn prev_result_numbers_pass_through_exactly() {
    let node = Node::new("floats");
    let text =
        r#"{"cniVersion":"1.0.0","x-float":1.0226222222222221e+99,"x-big":1.2222222222422225e37}"#;
    let conf = node.conf("1.0.0", json!({}));
    let stdin = conf
        .to_string()
        .replacen(&conf["prevResult"].to_string(), text, 1);
    let out = node.call("ADD", "c1").stdin(stdin).run();
    out.ok();
    assert!(
        out.stdout.contains("1.0226222222222221e+99"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1.2222222222422225e+37"),
        "{}",
        out.stdout
    );
}
