//! The command line without CNI_COMMAND: help and version for every subcommand, usage errors.

use crate::common;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::BIN)
        .args(args)
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_answers_help_on_stdout_with_status_0() {
    for args in [
        vec!["--help"],
        vec!["install", "--help"],
        vec!["uninstall", "--help"],
        vec!["baseline", "--help"],
        vec!["uplink", "release", "--help"],
        vec!["doctor", "--help"],
    ] {
        let (status, stdout, _) = run(&args);
        assert_eq!(status, 0, "{args:?}");
        assert!(stdout.contains("--"), "{args:?}: {stdout}");
    }
}

#[test]
fn version_and_usage_errors() {
    let (status, stdout, _) = run(&["--version"]);
    assert_eq!(status, 0);
    assert_eq!(
        stdout.trim(),
        format!("hostguard {}", env!("CARGO_PKG_VERSION"))
    );
    let (status, _, stderr) = run(&["frobnicate"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("unknown command"), "{stderr}");
    let (status, _, stderr) = run(&[]);
    assert_eq!(status, 2);
    assert!(stderr.contains("hostguard install"), "{stderr}");
    let (status, _, stderr) = run(&["uplink", "release", "--interface"]);
    assert_eq!(status, 2, "{stderr}");
}
