//! A whole CNI invocation (`cni::invocation`): the CNI_* environment and stdin from the fuzzer,
//! every verb.
//!
//! Safety: the process first moves into a network namespace of its own (ADD, CHECK and STATUS read
//! and may restore routes and rules there; it holds only `lo`), and every path a parsed config
//! names (stateDir, runDir, logFile, networkManager dirs) is rewritten into a scratch directory on
//! tmpfs before the call, so no input can make the target write outside it. waitFor timeouts are
//! cut to zero: a wait is bounded anyway, and the deadline path is what is exercised.
//!
//! Input: `COMMAND \0 CONTAINERID \0 NETNS \0 IFNAME \0 ARGS \0 stdin`. A field that is not UTF-8
//! is an unset variable, as `std::env::var` makes it for the real binary.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hostguard::cni::{self, config};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const NAMES: [&str; 5] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
];

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        hostguard_fuzz::private_network_namespace();
        hostguard_fuzz::scratch("invocation")
    })
}

/// The same configuration with every path it names moved under `dir`.
fn confine(stdin: &[u8], dir: &std::path::Path) -> Option<Vec<u8>> {
    config::parse(stdin).ok()?;
    let Ok(Value::Object(mut root)) = serde_json::from_slice::<Value>(stdin) else {
        return None;
    };
    let path = |rel: &str| Value::String(dir.join(rel).display().to_string());
    root.insert("stateDir".into(), path("state"));
    root.insert("runDir".into(), path("run"));
    if root.get("logFile").is_some_and(|v| !v.is_null()) {
        root.insert("logFile".into(), path("hostguard.log"));
    }
    root.insert(
        "networkManager".into(),
        json!({"runDir": path("nm-run"), "confDir": path("nm-conf")}),
    );
    if let Some(Value::Object(wait)) = root.get_mut("waitFor") {
        wait.insert("timeoutMs".into(), json!(0));
    }
    serde_json::to_vec(&Value::Object(root)).ok()
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let parts = hostguard_fuzz::fields(data, NAMES.len() + 1);
    let env: Vec<(&str, String)> = NAMES
        .iter()
        .zip(&parts)
        .filter_map(|(name, value)| Some((*name, String::from_utf8(value.to_vec()).ok()?)))
        .collect();
    let raw_stdin: &[u8] = if parts.len() > NAMES.len() {
        parts[NAMES.len()]
    } else {
        &[]
    };
    let stdin = confine(raw_stdin, dir).unwrap_or_else(|| raw_stdin.to_vec());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("recreate scratch");

    let lookup = |key: &str| {
        env.iter()
            .find(|(name, _)| *name == key)
            .map(|(_, v)| v.clone())
    };
    let (reply, status) = cni::invocation(&lookup, &mut &stdin[..]);

    assert!(status == 0 || status == 1, "exit status {status}");
    if status == 1 {
        let text = reply.expect("an error always prints a CNI error");
        let err: Value = serde_json::from_str(&text).expect("the error is JSON");
        let code = err["code"].as_u64().expect("the error has a numeric code");
        assert!(code != 0);
        let msg = err["msg"].as_str().expect("the error has a msg");
        assert!(!msg.is_empty());
        assert!(
            !msg.starts_with("internal error"),
            "a panic was caught: {text}"
        );
        assert!(err["cniVersion"].is_string());
    } else if let Some(text) = reply {
        let out: Value = serde_json::from_str(&text).expect("a reply is JSON");
        if lookup("CNI_COMMAND").as_deref() == Some("ADD") {
            // prevResult comes back unchanged except for cniVersion (floats included: serde_json's
            // float_roundtrip is on since this target found them drifting).
            let conf = config::parse(&stdin).expect("a successful ADD had a valid config");
            let mut expected = conf.prev_result.expect("a successful ADD had prevResult");
            expected.insert("cniVersion".into(), Value::String(conf.cni_version));
            assert_eq!(out, Value::Object(expected));
        }
    }
});
