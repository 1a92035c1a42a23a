//! The log file cannot fill the disk: with `logMaxSizeMB` / `logMaxFiles` the real binary rotates
//! it, and plugin processes writing at once lose no line and mix none.

use crate::common;

use std::thread;

use common::{conf, Cni, TempDir};
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

#[test]
fn a_full_log_is_rotated_by_concurrent_plugin_processes_without_losing_a_line() {
    const CALLS: usize = 16;
    let dir = TempDir::new("logrot");
    let log = dir.join("hostguard.log");
    // A log already at its limit: the first line of this run must go into a fresh file.
    let old = "{\"msg\":\"from before\"}\n".repeat(MIB / 22);
    assert!(old.len() <= MIB);
    std::fs::write(&log, old.as_bytes()).unwrap();
    std::fs::write(dir.join("hostguard.log.1"), "{\"msg\":\"oldest\"}\n").unwrap();
    let config = conf(
        "1.1.0",
        &dir.join("state"),
        json!({
            "logFile": log.display().to_string(),
            "logLevel": "debug",
            "logMaxSizeMB": 1,
            "logMaxFiles": 2,
        }),
    );
    // DEL with nothing attached succeeds and logs: many short-lived writers of one file.
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let del = Cni::new("DEL")
                .env("CNI_CONTAINERID", &format!("pod{i}"))
                .env("CNI_IFNAME", "eth0")
                .env("CNI_NETNS", "")
                .config(&config);
            thread::spawn(move || del.run().ok_silent())
        })
        .collect();
    for call in calls {
        call.join().unwrap();
    }

    let rotated = std::fs::read_to_string(dir.join("hostguard.log.1")).unwrap();
    assert_eq!(rotated, old, "the full log is .1 now, unchanged");
    assert!(
        !dir.join("hostguard.log.2").exists(),
        "logMaxFiles 2 keeps two files"
    );
    let live = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = live
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("broken line {l:?}: {e}")))
        .collect();
    for i in 0..CALLS {
        let closing = lines
            .iter()
            .filter(|l| l["containerID"] == format!("pod{i}") && l["durationMs"].is_number())
            .count();
        assert_eq!(closing, 1, "pod{i}'s closing line in {live}");
    }
}

#[test]
fn log_limits_out_of_range_are_a_configuration_error() {
    let dir = TempDir::new("loglimits");
    for bad in [
        json!({"logMaxSizeMB": 0}),
        json!({"logMaxFiles": "3"}),
        json!({"logMaxSizeMB": 10485760}),
    ] {
        let mut config = conf("1.1.0", &dir.join("state"), bad.clone());
        config["prevResult"] = common::prev_result("1.1.0");
        let out = Cni::new("ADD")
            .env("CNI_CONTAINERID", "pod")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_NETNS", "/proc/self/ns/net")
            .config(&config)
            .run();
        assert_eq!(out.status, 1, "{bad}: {out:?}");
        assert!(out.stdout.contains("logMax"), "{bad}: {}", out.stdout);
    }
}
