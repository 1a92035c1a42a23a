//! What install checks before it writes: the hostguard entry, judged by the plugin's own parser
//! (nothing written when the plugin would refuse it, with `--watch` too), and the host's
//! networkd / NetworkManager settings, looked for under `--host-root` and nowhere else.

use crate::install_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use install_support::Node;

const UPSTREAM: &[u8] = br#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"}]}"#;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/doctor")
        .join(name)
}

/// The entries that install used to write and that then failed every ADD on the node.
const BROKEN: [(&str, &str); 5] = [
    (r#"{"routes":{"restor":false}}"#, "routes.restor"),
    (r#"{"stateDir":"relative"}"#, "stateDir"),
    (r#"{"waitFor":{"timeoutMs":600000}}"#, "waitFor.timeoutMs"),
    (r#"{"logLevel":"verbose"}"#, "logLevel"),
    (
        r#"{"uplink":{"interface":"eth1","bridge":"eth1"}}"#,
        "uplink",
    ),
];

#[test]
fn an_entry_the_plugin_would_refuse_is_never_written() {
    for watch in [false, true] {
        for (entry, key) in BROKEN {
            let node = Node::new();
            node.put("10-bridge.conflist", UPSTREAM);
            let plugin_config = node.root.join("plugin.json");
            std::fs::write(&plugin_config, entry).unwrap();
            let mut args = vec![
                "--plugin-config",
                plugin_config.to_str().unwrap(),
                "--timeout",
                "0",
            ];
            if watch {
                args.push("--watch");
            }
            // With --watch a refused entry must end the installer at once, not after a sync.
            let run = node.spawn_install(&args).finish(Duration::from_secs(20));
            let stderr = run.stderr;
            assert_eq!(
                run.status.code(),
                Some(2),
                "{entry} watch={watch}: {stderr}"
            );
            assert!(stderr.contains(key), "{entry}: {stderr}");
            assert!(!node.output().exists(), "{entry} watch={watch}: written");
            assert_eq!(node.listing(), ["10-bridge.conflist"], "{entry}");
        }
    }
}

#[test]
fn host_settings_are_checked_under_host_root_only() {
    let node = Node::new();
    node.put("10-bridge.conflist", UPSTREAM);
    // A host with networkd at its defaults: both settings are reported, from the host's files.
    let root = fixture("no-config");
    let run = node.install(&["--timeout", "0", "--host-root", root.to_str().unwrap()]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: systemd-networkd ManageForeignRoutingPolicyRules"),
        "{}",
        run.stderr
    );
    // A host whose networkd is set right: no warning.
    let fixed = fixture("dropin-fixes");
    let run = node.install(&["--timeout", "0", "--host-root", fixed.to_str().unwrap()]);
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    // Without it the container's own / is not taken for the host's.
    let run = node.install(&["--timeout", "0"]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    assert!(run.stderr.contains("not checked"), "{}", run.stderr);
    let run = node.install(&["--timeout", "0", "--host-root", "/nonexistent-host-root"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
}
