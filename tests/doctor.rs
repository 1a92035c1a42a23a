//! `hostguard doctor` run as a real binary against fixture roots (testdata/doctor/*), each copied
//! into a private temp dir so `--fix` never writes into the source tree.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hostguard");
const NETWORKD_DROPIN: &str = "etc/systemd/networkd.conf.d/50-hostguard.conf";
const NM_DROPIN: &str = "etc/NetworkManager/conf.d/50-hostguard.conf";
/// As many CNI patterns as the doctor checks (CNI_PATTERNS in src/doctor/network_manager.rs).
const CNI_PATTERN_COUNT: usize = 21;

/// A copy of a fixture root that is removed when the test ends, pass or fail.
struct Root {
    path: PathBuf,
}

impl Root {
    fn copy_of(fixture: &str) -> Root {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "hg-doctor-{fixture}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/doctor")
            .join(fixture);
        copy_tree(&source, &path);
        Root { path }
    }

    fn file(&self, relative: &str) -> PathBuf {
        self.path.join(relative)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    fn ids(&self) -> Vec<String> {
        self.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn finding(&self, id: &str) -> Value {
        self.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no finding {id} in {}", self.stdout))
    }
}

/// Runs the binary with a deadline, so a hang (a FIFO read, a loop) fails the test instead of
/// stalling the suite.
fn doctor(args: &[&str]) -> Outcome {
    let mut child = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .env_remove("CNI_COMMAND")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hostguard doctor {args:?} did not finish in 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let outcome = Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(
        !outcome.stderr.contains("panicked"),
        "doctor panicked: {}",
        outcome.stderr
    );
    outcome
}

fn on(root: &Root, extra: &[&str]) -> Outcome {
    let mut args = vec!["--root", root.path.to_str().unwrap()];
    args.extend_from_slice(extra);
    doctor(&args)
}

#[test]
fn no_config_reports_both_networkd_defaults() {
    let root = Root::copy_of("no-config");
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.ids(),
        [
            "networkd-manages-foreign-rules",
            "networkd-manages-foreign-routes"
        ]
    );
    let rules = out.finding("networkd-manages-foreign-rules");
    assert_eq!(
        rules["evidence"],
        "ManageForeignRoutingPolicyRules=yes: systemd's default, no file sets it"
    );
    assert!(rules["fix"].as_str().unwrap().contains(NETWORKD_DROPIN));
    assert!(rules["why"].as_str().unwrap().contains("incident 2"));
}

#[test]
fn a_drop_in_that_sets_both_to_no_is_clean() {
    let root = Root::copy_of("dropin-fixes");
    let out = on(&root, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains(
        "ManageForeignRoutingPolicyRules = no (/etc/systemd/networkd.conf.d/10-cni.conf line 3)"
    ));
    assert!(out.stdout.contains("No findings"));
}

#[test]
fn a_later_drop_in_re_enables_rules_and_is_named() {
    let root = Root::copy_of("later-dropin-reenables");
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.ids(), ["networkd-manages-foreign-rules"]);
    assert_eq!(
        out.finding("networkd-manages-foreign-rules")["evidence"],
        "ManageForeignRoutingPolicyRules=yes set by /usr/lib/systemd/networkd.conf.d/60-vendor.conf line 3"
    );
}

#[test]
fn a_run_drop_in_overrides_the_etc_main_file() {
    let root = Root::copy_of("run-overrides-etc");
    let out = on(&root, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains(
        "ManageForeignRoutes = no (/run/systemd/networkd.conf.d/10-runtime.conf line 4)"
    ));
}

#[test]
fn an_etc_drop_in_shadows_the_run_drop_in_of_the_same_name() {
    let root = Root::copy_of("etc-shadows-run");
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.ids().len(), 2);
    let human = on(&root, &[]);
    assert!(human
        .stdout
        .contains("read, in order: /etc/systemd/networkd.conf.d/50-cni.conf\n"));
}

#[test]
fn a_dev_null_symlink_masks_the_vendor_drop_in() {
    let root = Root::copy_of("devnull-mask");
    let out = on(&root, &[]);
    assert_eq!(out.code, 1);
    assert!(out
        .stdout
        .contains("masked: /etc/systemd/networkd.conf.d/50-cni.conf"));
    assert!(out
        .stdout
        .contains("ManageForeignRoutingPolicyRules = yes (systemd's default)"));
}

#[test]
fn networkmanager_without_unmanaged_devices_would_manage_every_cni_pattern() {
    let root = Root::copy_of("nm-without-unmanaged");
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    let ids = out.ids();
    assert_eq!(ids.len(), CNI_PATTERN_COUNT);
    assert!(ids
        .iter()
        .all(|id| id == "networkmanager-manages-cni-interfaces"));
    let first = &out.json()["findings"][0];
    assert_eq!(first["subject"], "interface-name:cali*");
    assert!(first["evidence"]
        .as_str()
        .unwrap()
        .contains("e.g. cali0: no unmanaged-devices spec"));
    assert!(first["why"].as_str().unwrap().contains("incident 5"));
}

#[test]
fn networkmanager_with_calicos_list_reports_only_the_rest_and_live_interfaces() {
    let root = Root::copy_of("nm-calico-only");
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    let subjects: Vec<String> = out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["subject"].as_str().unwrap().to_owned())
        .collect();
    for covered in [
        "interface-name:cali*",
        "interface-name:tunl*",
        "interface-name:cali0",
    ] {
        assert!(
            !subjects.iter().any(|s| s == covered),
            "{covered} is unmanaged"
        );
    }
    for flagged in [
        "interface-name:veth*",
        "interface-name:flannel*",
        "interface-name:flannel.1",
    ] {
        assert!(subjects.iter().any(|s| s == flagged), "{flagged} missing");
    }
    // vxlan.calico is covered by name, other vxlan* names are not.
    assert!(subjects.iter().any(|s| s == "interface-name:vxlan*"));
    assert!(!subjects.iter().any(|s| s == "interface-name:eth0"));
}

#[test]
fn networkmanager_unmanaging_everything_but_the_uplink_is_clean() {
    let root = Root::copy_of("nm-all-unmanaged-except");
    let out = on(&root, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out
        .stdout
        .contains("unmanaged-devices = *;except:interface-name:eth0"));
}

#[test]
fn fix_writes_both_drop_ins_then_a_second_run_is_clean_and_a_third_changes_nothing() {
    let root = Root::copy_of("nm-without-unmanaged");
    // networkd starts out wrong too: drop the operator's networkd fix.
    fs::remove_file(root.file("etc/systemd/networkd.conf.d/10-cni.conf")).unwrap();
    let operator_file = root.file("etc/NetworkManager/NetworkManager.conf");
    let operator_before = fs::read(&operator_file).unwrap();

    let out = on(&root, &["--fix", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let report = out.json();
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    let fixed = report["fixed"].as_array().unwrap();
    assert_eq!(fixed.len(), 2);
    assert_eq!(fixed[0]["file"], format!("/{NETWORKD_DROPIN}"));
    assert_eq!(fixed[0]["action"], "written");
    assert!(fixed[0]["reload"]
        .as_str()
        .unwrap()
        .contains("systemctl restart systemd-networkd"));
    assert_eq!(fixed[1]["file"], format!("/{NM_DROPIN}"));
    assert_eq!(fixed[1]["reload"], "nmcli general reload conf");

    let networkd = fs::read_to_string(root.file(NETWORKD_DROPIN)).unwrap();
    assert!(networkd
        .contains("[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n"));
    let nm = fs::read_to_string(root.file(NM_DROPIN)).unwrap();
    assert!(nm.contains("[keyfile]\nunmanaged-devices+=interface-name:cali*;"));
    for file in [NETWORKD_DROPIN, NM_DROPIN] {
        let mode = fs::metadata(root.file(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{file}");
    }
    let dir_mode = fs::metadata(root.file("etc/systemd/networkd.conf.d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        dir_mode & 0o022,
        0,
        "created directory must not be group/world writable"
    );
    assert_eq!(fs::read(&operator_file).unwrap(), operator_before);
    let leftovers: Vec<_> = fs::read_dir(root.file("etc/NetworkManager/conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["50-hostguard.conf"], "no temporary files left");

    let second = on(&root, &[]);
    assert_eq!(second.code, 0, "{}", second.stdout);
    assert!(second.stdout.contains("No findings"));

    let inode = fs::metadata(root.file(NM_DROPIN)).unwrap().ino();
    let third = on(&root, &["--fix", "--json"]);
    assert_eq!(third.code, 0);
    assert_eq!(third.json()["fixed"].as_array().unwrap().len(), 0);
    assert_eq!(fs::metadata(root.file(NM_DROPIN)).unwrap().ino(), inode);
}

#[test]
fn fix_on_an_identical_existing_drop_in_is_unchanged_and_a_later_file_still_wins() {
    let root = Root::copy_of("later-dropin-reenables");
    let first = on(&root, &["--fix", "--json"]);
    assert_eq!(first.code, 1, "60-vendor.conf still re-enables the rules");
    assert_eq!(first.json()["fixed"][0]["action"], "written");
    let finding = first.finding("networkd-manages-foreign-rules");
    assert!(finding["evidence"]
        .as_str()
        .unwrap()
        .contains("60-vendor.conf line 3, which is read after hostguard's /etc/systemd/networkd.conf.d/50-hostguard.conf and overrides it"));
    assert!(finding["fix"]
        .as_str()
        .unwrap()
        .contains("in /usr/lib/systemd/networkd.conf.d/60-vendor.conf or remove that line"));
    let inode = fs::metadata(root.file(NETWORKD_DROPIN)).unwrap().ino();

    let again = on(&root, &["--fix", "--json"]);
    assert_eq!(again.code, 1);
    assert_eq!(again.json()["fixed"][0]["action"], "unchanged");
    assert_eq!(
        fs::metadata(root.file(NETWORKD_DROPIN)).unwrap().ino(),
        inode
    );
}

/// A file read after hostguard's drop-in that assigns `unmanaged-devices=` replaces its list, but
/// not its `[device-*]` section: after `--fix` NetworkManager leaves the CNI interfaces alone.
/// (tests/nm_oracle.rs shows NetworkManager's own merge agreeing.)
#[test]
fn fix_wins_over_a_later_networkmanager_file_that_replaces_the_list() {
    let root = Root::copy_of("nm-later-override");
    let before = on(&root, &["--json"]);
    assert_eq!(before.code, 1);
    assert!(before
        .ids()
        .iter()
        .all(|id| id == "networkmanager-manages-cni-interfaces"));
    let out = on(&root, &["--fix", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.ids().is_empty(), "{}", out.stdout);
    let dropin = fs::read_to_string(root.file(NM_DROPIN)).unwrap();
    assert!(dropin.contains("\n[device-hostguard-cni]\nmatch-device=interface-name:cali*;"));
    assert!(dropin.contains("\nmanaged=0\n"));
}

#[test]
fn json_schema_is_stable_field_by_field() {
    let root = Root::copy_of("nm-calico-only");
    fs::remove_file(root.file("etc/systemd/networkd.conf.d/10-cni.conf")).unwrap();
    for args in [vec!["--json"], vec!["--json", "--fix"]] {
        let out = on(&root, &args);
        let report = out.json();
        // serde_json's map sorts keys, so the set is checked here and the order in the text.
        let top: Vec<&String> = report.as_object().unwrap().keys().collect();
        assert_eq!(top, ["findings", "fixed"]);
        assert!(out.stdout.find("\"findings\"") < out.stdout.find("\"fixed\""));
        // After --fix nothing may be left to report, and so no finding to check the order of.
        match out.stdout.find("\"id\"") {
            None => assert!(args.contains(&"--fix"), "{}", out.stdout),
            Some(first) => {
                let positions: Vec<usize> = [
                    "\"id\"",
                    "\"severity\"",
                    "\"subject\"",
                    "\"evidence\"",
                    "\"why\"",
                    "\"fix\"",
                ]
                .iter()
                .map(|k| first + out.stdout[first..].find(k).unwrap())
                .collect();
                assert!(
                    positions.windows(2).all(|w| w[0] < w[1]),
                    "field order {positions:?}"
                );
            }
        }
        for finding in report["findings"].as_array().unwrap() {
            let keys: Vec<&String> = finding.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["evidence", "fix", "id", "severity", "subject", "why"],
                "{finding}"
            );
            for key in ["id", "severity", "subject", "evidence", "why", "fix"] {
                assert!(!finding[key].as_str().unwrap().is_empty(), "{key} empty");
            }
            assert!(["error", "warning"].contains(&finding["severity"].as_str().unwrap()));
        }
        for fixed in report["fixed"].as_array().unwrap() {
            let keys: Vec<&String> = fixed.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["action", "file", "reload"]);
            assert!(["written", "unchanged"].contains(&fixed["action"].as_str().unwrap()));
        }
    }
}

#[test]
fn garbage_and_binary_files_are_reported_not_fatal() {
    let root = Root::copy_of("garbage");
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    let ids = out.ids();
    for id in [
        "networkd-config-ignored-lines",
        "networkd-invalid-value",
        "networkd-config-unreadable",
        "networkd-manages-foreign-routes",
        "networkmanager-config-invalid",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }
    // The valid line in the garbage file still counts: rules are off.
    assert!(!ids.iter().any(|i| i == "networkd-manages-foreign-rules"));
    let ignored = out.finding("networkd-config-ignored-lines");
    let evidence = ignored["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("line 2: \"this line has no equals sign\""),
        "{evidence}"
    );
    assert!(evidence.contains("line 5"), "{evidence}");
    assert!(out.finding("networkd-config-unreadable")["evidence"]
        .as_str()
        .unwrap()
        .contains("20-binary.conf: line 1: not valid UTF-8"));
    assert!(out.finding("networkmanager-config-invalid")["evidence"]
        .as_str()
        .unwrap()
        .contains("NetworkManager.conf: line 3"));
    // Human output survives it too.
    assert_eq!(on(&root, &[]).code, 1);
}

#[test]
fn a_fifo_drop_in_does_not_hang_the_doctor() {
    let root = Root::copy_of("dropin-fixes");
    let fifo = root.file("etc/systemd/networkd.conf.d/20-pipe.conf");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let nm_dir = root.file("etc/NetworkManager/conf.d");
    fs::create_dir_all(&nm_dir).unwrap();
    let status = Command::new("mkfifo")
        .arg(nm_dir.join("50-pipe.conf"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 1);
    let unreadable = out.finding("networkd-config-unreadable");
    assert!(unreadable["evidence"]
        .as_str()
        .unwrap()
        .contains("is a FIFO, not a regular file"));
    assert!(out.finding("networkmanager-config-invalid")["evidence"]
        .as_str()
        .unwrap()
        .contains("50-pipe.conf is a FIFO"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(doctor(&["--bogus"]).code, 2);
    assert_eq!(doctor(&["--root"]).code, 2);
    let missing = doctor(&["--root", "/nonexistent/hostguard-doctor-root"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("is not a directory"));
    assert!(missing.stdout.is_empty());
}

/// Most nodes run no systemd-networkd at all: its defaults fight nobody there.
#[test]
fn networkd_settings_are_checked_only_where_networkd_is_installed() {
    let root = Root::copy_of("no-config");
    fs::remove_file(root.file("usr/lib/systemd/system/systemd-networkd.service")).unwrap();
    let out = on(&root, &["--json"]);
    assert_eq!(
        (out.code, out.ids()),
        (0, Vec::<String>::new()),
        "{}",
        out.stdout
    );
    assert!(on(&root, &[]).stdout.contains("not installed"));
    let out = on(&root, &["--fix", "--json"]);
    assert!(out.json()["fixed"].as_array().unwrap().is_empty());
    assert!(!root.file(NETWORKD_DROPIN).exists());

    // The unit reached through a merged-/usr link (lib -> usr/lib) counts.
    fs::remove_dir_all(root.file("usr/lib/systemd/system")).unwrap();
    fs::create_dir_all(root.file("usr/lib/systemd")).unwrap();
    fs::write(root.file("usr/lib/systemd/systemd-networkd"), b"").unwrap();
    assert_eq!(on(&root, &["--json"]).ids().len(), 2);
}

/// A host's absolute symbolic links, read under `--root`, lead to the host's files: inside the
/// root, never to the files of the machine the doctor runs on.
#[test]
fn absolute_links_under_the_root_are_read_inside_it() {
    let root = Root::copy_of("no-config");
    // The host keeps its networkd drop-ins elsewhere and links the directory in, absolutely.
    let kept = root.file("srv/networkd-dropins");
    fs::create_dir_all(&kept).unwrap();
    fs::write(
        kept.join("10-cni.conf"),
        "[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n",
    )
    .unwrap();
    fs::create_dir_all(root.file("etc/systemd")).unwrap();
    symlink(
        "/srv/networkd-dropins",
        root.file("etc/systemd/networkd.conf.d"),
    )
    .unwrap();
    let out = on(&root, &["--json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    // A file linked absolutely to /etc/hostname is the root's /etc/hostname (absent here), not
    // the file of the machine the doctor runs on.
    symlink("/etc/hostname", kept.join("20-host.conf")).unwrap();
    let out = on(&root, &["--json"]);
    assert_eq!(out.ids(), ["networkd-config-unreadable"], "{}", out.stdout);
    assert!(out.finding("networkd-config-unreadable")["evidence"]
        .as_str()
        .unwrap()
        .contains("20-host.conf is a dangling symbolic link"));
}

/// `--fix` writes through a linked directory into the root's target of that link, never into
/// the same path on the machine the doctor runs on.
#[test]
fn fix_writes_inside_the_root_through_absolute_links() {
    let root = Root::copy_of("nm-without-unmanaged");
    let outside = std::env::temp_dir().join(format!("hg-doctor-escape-{}", std::process::id()));
    let _ = fs::remove_dir_all(&outside);
    fs::create_dir_all(&outside).unwrap();
    // The host's conf.d is a link to an absolute path that also exists on this machine.
    let inside = root.path.join(outside.strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    symlink(&outside, root.file("etc/NetworkManager/conf.d")).unwrap();
    let out = on(&root, &["--fix", "--json"]);
    let escaped: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
    let _ = fs::remove_dir_all(&outside);
    assert!(
        escaped.is_empty(),
        "--fix wrote outside the root: {escaped:?}"
    );
    assert!(inside.join("50-hostguard.conf").is_file(), "{}", out.stdout);
    assert_eq!(out.code, 0, "{}", out.stdout);
}
