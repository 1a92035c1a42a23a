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
        vec!["validate", "--help"],
        vec!["guard", "--help"],
    ] {
        let (status, stdout, _) = run(&args);
        assert_eq!(status, 0, "{args:?}");
        assert!(stdout.contains("--"), "{args:?}: {stdout}");
    }
}

#[test]
fn usage_errors() {
    let (status, _, stderr) = run(&["frobnicate"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("unknown command"), "{stderr}");
    let (status, _, stderr) = run(&["uplink", "release", "--interface"]);
    assert_eq!(status, 2, "{stderr}");
}
#[test]
fn every_subcommand_documents_its_options_and_exit_status() {
    for (args, options) in [
        (
            vec!["install", "--help"],
            &["--conf-dir", "--host-root", "--watch"][..],
        ),
        (
            vec!["uninstall", "--help"],
            &["--conf-dir", "--bin-dir"][..],
        ),
        (
            vec!["baseline", "--help"],
            &["--state-dir", "--run-dir", "--show", "--update"][..],
        ),
        (
            vec!["uplink", "release", "--help"],
            &["--interface", "--bridge"][..],
        ),
        (vec!["uplink", "--help"], &["--interface"][..]),
        (vec!["doctor", "--help"], &["--root", "--json", "--fix"][..]),
        (
            vec!["validate", "--help"],
            &["--conflist", "--plugin-config"][..],
        ),
        (
            vec!["guard", "--help"],
            &[
                "--plugin-config",
                "--conf-dir",
                "--metrics-addr",
                "--settle-ms",
            ][..],
        ),
    ] {
        let (status, stdout, _) = run(&args);
        assert_eq!(status, 0, "{args:?}");
        assert!(stdout.contains("Exit status"), "{args:?}: {stdout}");
        for option in options {
            assert!(
                stdout.contains(option),
                "{args:?} does not describe {option}"
            );
        }
    }
}

#[test]
fn version_names_the_spec_versions_and_the_commit() {
    let (status, stdout, _) = run(&["--version"]);
    assert_eq!(status, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("hostguard {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(
        lines[1],
        "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    );
    let commit = lines[2]
        .strip_prefix("git commit: ")
        .expect("a commit line");
    assert!(!commit.is_empty(), "{stdout}");
}

#[test]
fn bare_hostguard_prints_what_the_reference_plugins_print() {
    let (status, stdout, stderr) = run(&[]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "");
    let mut lines = stderr.lines();
    assert_eq!(
        lines.next(),
        Some(format!("CNI hostguard plugin v{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert_eq!(
        lines.next(),
        Some("CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0")
    );
}

#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error_not_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    for (command, option) in [
        ("doctor", &b"--root=/\xff"[..]),
        ("validate", b"--conflist=/\xff"),
        ("guard", b"--plugin-config=/\xff"),
    ] {
        let out = Command::new(common::BIN)
            .args([OsStr::new(command), OsStr::from_bytes(option)])
            .env_remove("CNI_COMMAND")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("not valid UTF-8"), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
}

#[test]
fn every_subcommand_takes_opt_equals_value() {
    let tmp = common::TempDir::new("cli-eq");
    let root = tmp.path.display().to_string();
    // doctor says which root it examines; 0 (nothing under an empty root fights a CNI), not 2
    // (usage).
    let (status, stdout, stderr) = run(&["doctor", &format!("--root={root}")]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains(&format!("examining {root}")), "{stdout}");
    // an empty state dir has no baseline to release: 1 (not 2) proves the options parsed.
    let (status, _, stderr) = run(&[
        "uplink",
        "release",
        "--interface=eth9",
        "--bridge=br9",
        &format!("--state-dir={root}/state"),
        &format!("--run-dir={root}/state/run"),
    ]);
    assert_eq!(status, 1, "{stderr}");
    let (status, _, stderr) = run(&["baseline", "--state-dir=", "--show"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("--state-dir needs a non-empty value"),
        "{stderr}"
    );
    let (status, _, stderr) = run(&["uninstall", &format!("--conf-dir={root}")]);
    assert_eq!(status, 0, "{stderr}");
    // validate judges the file it was given: 0, the entry is accepted.
    let conflist = tmp.path.join("k8s.conflist");
    std::fs::write(
        &conflist,
        r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"},{"type":"hostguard"}]}"#,
    )
    .unwrap();
    let (status, stdout, stderr) =
        run(&["validate", &format!("--conflist={}", conflist.display())]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("accepts"), "{stdout}");
    // guard reads the entry it was given before anything else, so a missing one is 1 (it failed,
    // naming the file) and not 2 (usage): the option parsed, and nothing was started.
    let missing = format!("{root}/no-such-entry.json");
    let (status, _, stderr) = run(&[
        "guard",
        &format!("--plugin-config={missing}"),
        "--settle-ms=5",
    ]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
}

#[test]
fn install_takes_its_options_from_hostguard_environment_variables() {
    let tmp = common::TempDir::new("cli-env");
    let conf = tmp.path.join("net.d");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    let out = Command::new(common::BIN)
        .arg("install")
        .env_remove("CNI_COMMAND")
        .env("HOSTGUARD_CONF_DIR", &conf)
        .env("HOSTGUARD_OUTPUT", "00-env.conflist")
        .env("HOSTGUARD_TIMEOUT", "0")
        .env("HOSTGUARD_WATCH", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let written = std::fs::read_to_string(conf.join("00-env.conflist")).unwrap();
    assert!(written.contains("\"hostguard\""), "{written}");
    // A switch's variable must be true or false.
    let out = Command::new(common::BIN)
        .args(["install", "--timeout=0"])
        .env_remove("CNI_COMMAND")
        .env("HOSTGUARD_CONF_DIR", &conf)
        .env("HOSTGUARD_WATCH", "yes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn install_checks_the_host_settings_under_host_root() {
    let tmp = common::TempDir::new("cli-hostroot");
    let conf = tmp.path.join("net.d");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    // A host with networkd installed and left at its defaults.
    let empty_root = tmp.path.join("root");
    let units = empty_root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("systemd-networkd.service"), "").unwrap();
    let fixed_root = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/doctor/dropin-fixes");
    let install = |root: &str| {
        let out = Command::new(common::BIN)
            .args(["install", "--timeout=0"])
            .arg(format!("--conf-dir={}", conf.display()))
            .arg(format!("--host-root={root}"))
            .env_remove("CNI_COMMAND")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // networkd without settings of its own: systemd's defaults fight a CNI, and install says so.
    let (status, stderr) = install(&empty_root.display().to_string());
    assert_eq!(status, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: systemd-networkd ManageForeignRoutingPolicyRules"),
        "{stderr}"
    );
    // The same install looking at a root whose drop-in turns both off warns about nothing.
    let (status, stderr) = install(fixed_root);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    let (status, stderr) = install("/nonexistent-host-root");
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("--host-root"), "{stderr}");
}
