//! Hostile files: symlinks, FIFOs and directories planted where hostguard keeps state or reads
//! configuration, a state directory that is a file, read-only or on a full disk, and a log file
//! that is a FIFO. Each case ends with a clear CNI error (or, where the contract says so, a
//! success that leaves the planted object alone), no hang, and nothing outside the state
//! directory touched.
//!
//! What is accepted on purpose: a stateDir that is itself a symlink (operators move /var/lib to
//! other disks; the path comes from the conflist, which is trusted). What is refused: a symlink
//! *inside* the state directory, which only someone else could have planted.

use crate::common;
use crate::hostile_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hostile_support::{mkfifo, temp_files, tree, Node};
use serde_json::{json, Value};

fn state_conf(node: &Node) -> Value {
    node.conf("1.1.0", json!({}))
}

/// A directory outside the state directory with a file in it, to check nothing reaches it.
fn victim(node: &Node) -> std::path::PathBuf {
    let dir = node.dir.join("elsewhere");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("precious.json"), b"{\"keep\":true}\n").unwrap();
    fs::write(dir.join("10-calico.conflist"), b"{}\n").unwrap();
    dir
}

#[test]
fn symlinks_and_fifos_in_the_state_directory_are_refused_and_left_alone() {
    let node = Node::new("plant");
    let conf = state_conf(&node);
    let elsewhere = victim(&node);
    let target = elsewhere.join("precious.json");
    let state = node.state();
    // What is planted, how, and then: ADD's code, whether CHECK and STATUS fail. Locks are only
    // taken by writers, the journal only read by ADD, CHECK and DEL.
    type Plant = Box<dyn Fn(&Path)>;
    let link_to = |name: &'static str| -> Plant {
        let target = target.clone();
        Box::new(move |s: &Path| symlink(&target, s.join(name)).unwrap())
    };
    let cases: Vec<(&str, Plant, u64, bool, bool)> = vec![
        (
            "baseline.json -> a file elsewhere",
            link_to("baseline.json"),
            5,
            true,
            true,
        ),
        (
            "baseline.json as a FIFO",
            Box::new(|s: &Path| mkfifo(&s.join("baseline.json"))),
            5,
            true,
            true,
        ),
        (
            "baseline.json as a directory",
            Box::new(|s: &Path| fs::create_dir(s.join("baseline.json")).unwrap()),
            5,
            true,
            true,
        ),
        (
            "baseline.lock -> a file elsewhere",
            link_to("run/baseline.lock"),
            5,
            false,
            false,
        ),
        (
            "attachments.lock as a directory",
            Box::new(|s: &Path| fs::create_dir(s.join("run/attachments.lock")).unwrap()),
            5,
            false,
            false,
        ),
        (
            "uplink.lock -> a file elsewhere",
            link_to("run/uplink.lock"),
            5,
            false,
            false,
        ),
        (
            "uplink-journal.json -> a file elsewhere",
            link_to("run/uplink-journal.json"),
            5,
            true,
            false,
        ),
        (
            "uplink-journal.json as a FIFO",
            Box::new(|s: &Path| mkfifo(&s.join("run/uplink-journal.json"))),
            5,
            true,
            false,
        ),
    ];
    for (what, plant, add_code, check_fails, status_fails) in &cases {
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(state.join("run/attachments")).unwrap();
        plant(&state);
        let outside = tree(&elsewhere);
        let planted = tree(&state);
        let add = node.call("ADD", "c1").config(&conf).run();
        if *add_code == 0 {
            add.ok();
        } else {
            let err = add.error(*add_code);
            assert!(
                err.to_string().contains(&state.display().to_string()),
                "{what}: the error does not name the file: {err}"
            );
        }
        let check = node.call("CHECK", "c1").config(&conf).run();
        assert_eq!(check.status == 1, *check_fails, "{what}: CHECK {check:?}");
        let status = node.call("STATUS", "c1").config(&conf).run();
        assert_eq!(
            status.status == 1,
            *status_fails,
            "{what}: STATUS {status:?}"
        );
        node.call("DEL", "c1").config(&conf).run().ok();
        assert_eq!(
            outside,
            tree(&elsewhere),
            "{what}: something outside changed"
        );
        // The planted object is still exactly there (the baseline may have been recorded
        // beside it: that is the host's, not partial state).
        let after = tree(&state);
        for (path, entry) in &planted {
            assert_eq!(after.get(path), Some(entry), "{what}: {path} was replaced");
        }
    }
}

#[test]
fn planted_records_are_replaced_or_dropped_never_followed() {
    let node = Node::new("record");
    let conf = state_conf(&node);
    let elsewhere = victim(&node);
    let outside = tree(&elsewhere);
    let attachments = node.state().join("run/attachments/hostile");
    node.call("ADD", "c0").config(&conf).run().ok();
    // A symlink and a FIFO where records go, and a FIFO under another record's name.
    symlink(
        elsewhere.join("precious.json"),
        attachments.join("c1@eth0.json"),
    )
    .unwrap();
    mkfifo(&attachments.join("c2@eth0.json"));
    mkfifo(&attachments.join("stray@eth0.json"));
    node.call("ADD", "c1").config(&conf).run().ok();
    node.call("ADD", "c2").config(&conf).run().ok();
    for name in ["c1@eth0.json", "c2@eth0.json"] {
        let meta = fs::symlink_metadata(attachments.join(name)).unwrap();
        assert!(meta.is_file(), "{name} was not replaced by a record");
    }
    // GC keeps the valid ones and drops what is not a record, without reading through it.
    symlink(
        elsewhere.join("precious.json"),
        attachments.join("link@eth0.json"),
    )
    .unwrap();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "c1", "ifname": "eth0"},
        {"containerID": "c2", "ifname": "eth0"},
    ]);
    node.call("GC", "")
        .unset("CNI_CONTAINERID")
        .config(&gc)
        .run()
        .ok();
    assert_eq!(node.records(), ["c1@eth0.json", "c2@eth0.json"]);
    node.call("DEL", "c1").config(&conf).run().ok();
    assert_eq!(
        outside,
        tree(&elsewhere),
        "something outside the state directory changed"
    );
}

/// A symlinked `attachments` directory, or one network's records directory inside it, would make
/// ADD write records, and GC delete files, in a directory hostguard does not own.
#[test]
fn a_symlinked_records_directory_is_refused() {
    for (tag, records_dir) in [
        ("attsym", "run/attachments"),
        ("netsym", "run/attachments/hostile"),
    ] {
        let node = Node::new(tag);
        let conf = state_conf(&node);
        let elsewhere = victim(&node);
        let outside = tree(&elsewhere);
        let link = node.state().join(records_dir);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(&elsewhere, &link).unwrap();
        let err = node.call("ADD", "c1").config(&conf).run().error(5);
        assert!(err.to_string().contains(records_dir), "{err}");
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = json!([]);
        node.call("GC", "")
            .unset("CNI_CONTAINERID")
            .config(&gc)
            .run()
            .error(5);
        node.call("DEL", "c1").config(&conf).run().ok();
        assert_eq!(
            outside,
            tree(&elsewhere),
            "{records_dir}: a call reached through the symlink"
        );
    }
}

#[test]
fn a_symlinked_state_directory_is_followed_on_purpose() {
    let node = Node::new("statesym");
    let real = node.dir.join("real-state");
    fs::create_dir_all(&real).unwrap();
    symlink(&real, node.state()).unwrap();
    node.call("ADD", "c1").config(&state_conf(&node)).run().ok();
    assert!(real.join("baseline.json").is_file());
    assert!(real.join("run/attachments/hostile/c1@eth0.json").is_file());
}

#[test]
fn a_state_directory_that_is_a_file_is_code_5() {
    let node = Node::new("statefile");
    fs::write(node.state(), b"not a directory").unwrap();
    let before = node.picture();
    let conf = state_conf(&node);
    node.call("ADD", "c1").config(&conf).run().error(5);
    node.call("CHECK", "c1").config(&conf).run().error(5);
    node.call("STATUS", "c1").config(&conf).run().error(50);
    node.call("DEL", "c1").config(&conf).run().ok();
    let below = with_state_dir(&conf, &node.state().join("sub"));
    node.call("ADD", "c1").config(&below).run().error(5);
    before.assert_same(&node.picture(), "state directory is a file");
}

fn with_state_dir(conf: &Value, dir: &Path) -> Value {
    let mut conf = conf.clone();
    conf["stateDir"] = json!(dir.display().to_string());
    conf["runDir"] = json!(dir.join("run").display().to_string());
    conf
}

/// A FIFO as the log file: opening it for writing would wait for a reader forever, and every CNI
/// call would hang with it. It must be skipped with a warning, like any log file that cannot be
/// opened.
#[test]
fn a_fifo_symlink_or_directory_as_log_file_never_blocks_a_call() {
    let node = Node::new("logfifo");
    let fifo = node.dir.join("hostguard.log");
    mkfifo(&fifo);
    let link = node.dir.join("linked.log");
    symlink(node.dir.join("elsewhere.log"), &link).unwrap();
    let dir = node.dir.join("logdir");
    fs::create_dir_all(&dir).unwrap();
    for log in [&fifo, &link, &dir] {
        let conf = node.conf("1.1.0", json!({ "logFile": log.display().to_string() }));
        for verb in ["ADD", "DEL"] {
            let out = node
                .call(verb, "c1")
                .config(&conf)
                .run_within(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{verb} hung on log file {}", log.display()));
            assert_eq!(
                out.status,
                0,
                "{verb} with log file {}: {out:?}",
                log.display()
            );
            assert!(out.stderr.contains("log file"), "no warning: {out:?}");
        }
    }
    assert!(
        !node.dir.join("elsewhere.log").exists(),
        "the log symlink was followed"
    );
}

/// Runs `script` with `sh -eu` in a private mount namespace (`unshare -m`, propagation private,
/// so nothing mounted there is seen anywhere else), with `$D` the directory to mount over.
fn in_private_mounts(dir: &Path, script: &str) -> String {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-euc", script])
        .env("D", dir)
        .env("BIN", common::BIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "script failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One CNI call from a shell script: `call VERB ID CONFFILE` prints `VERB ID rc=N <stdout>`.
const CALL: &str = r#"
call() {
    rc=0
    out=$(env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="$NETNS" \
        CNI_IFNAME=eth0 ip netns exec "$HOST" "$BIN" <"$3" 2>/dev/null) || rc=$?
    echo "$1 $2 rc=$rc $out"
}
"#;

fn results(text: &str) -> Vec<(String, i32, Value)> {
    text.lines()
        .filter(|l| l.contains(" rc="))
        .map(|l| {
            let (head, json) = l.split_once(" rc=").unwrap();
            let (rc, body) = json.split_once(' ').unwrap_or((json, ""));
            let value = serde_json::from_str(body).unwrap_or(Value::Null);
            (head.to_string(), rc.parse().unwrap(), value)
        })
        .collect()
}

/// Each call's name, exit status and CNI error code (0 for none).
fn codes(calls: &[(String, i32, Value)]) -> Vec<(String, i32, u64)> {
    calls
        .iter()
        .map(|(what, rc, v)| (what.clone(), *rc, v["code"].as_u64().unwrap_or(0)))
        .collect()
}

/// A tiny tmpfs (64 KiB) as the state directory, filled up: writes fail with ENOSPC, the error is
/// code 5, no temporary file is left, and what was there stays valid. Once there is room again,
/// the next ADD works.
#[test]
fn a_full_disk_is_code_5_and_leaves_no_partial_file() {
    let node = Node::new("full");
    let mount = node.dir.join("mnt");
    fs::create_dir_all(&mount).unwrap();
    let conf_file = node.dir.join("conf.json");
    let conf = with_state_dir(&state_conf(&node), &mount.join("state"));
    fs::write(&conf_file, conf.to_string()).unwrap();
    let script = format!(
        r#"{CALL}
HOST={host}; NETNS={netns}; C={conf}
mount -t tmpfs -o size=64k,mode=0700 hgfull "$D"
fill() {{ dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null || true; }}
fill
call ADD c1 "$C"
echo "after-first: $(ls -A "$D/state" 2>/dev/null | tr '\n' ' ')"
rm "$D/fill"
call ADD c1 "$C"
fill
call ADD c2 "$C"
echo "after-full: $(ls -A "$D/state/run/attachments/hostile" | tr '\n' ' ')"
cat "$D/state/baseline.json" >/dev/null
call CHECK c1 "$C"
call DEL c1 "$C"
rm "$D/fill"
call ADD c2 "$C"
echo "final: $(ls -A "$D/state/run/attachments/hostile" | tr '\n' ' ')"
echo "temps: $(find "$D" -name '.hostguard-tmp-*' | wc -l)"
for f in "$D"/state/baseline.json "$D"/state/run/attachments/*/*.json; do
    jq -e . "$f" >/dev/null || echo "invalid: $f"
done
"#,
        host = node.host.name,
        netns = node.container.path().display(),
        conf = conf_file.display(),
    );
    let text = in_private_mounts(&mount, &script);
    let calls = results(&text);
    assert_eq!(
        codes(&calls),
        [
            ("ADD c1".into(), 1, 5),
            ("ADD c1".into(), 0, 0),
            ("ADD c2".into(), 1, 5),
            ("CHECK c1".into(), 0, 0),
            ("DEL c1".into(), 0, 0),
            ("ADD c2".into(), 0, 0),
        ],
        "{text}"
    );
    assert!(
        calls[0].2["details"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{text}"
    );
    assert!(text.contains("after-full: c1@eth0.json \n"), "{text}");
    assert!(text.contains("final: c2@eth0.json \n"), "{text}");
    assert!(text.contains("temps: 0\n"), "{text}");
    assert!(!text.contains("invalid:"), "{text}");
}

/// A read-only state directory (a read-only bind mount, since root ignores permission bits): ADD
/// cannot record and says so (code 5) without a partial file; CHECK and STATUS only read and
/// work; DEL stays best effort.
#[test]
fn a_read_only_state_directory_is_code_5_for_writers_only() {
    let node = Node::new("ro");
    let conf = state_conf(&node);
    node.call("ADD", "c1").config(&conf).run().ok();
    let conf_file = node.dir.join("conf.json");
    fs::write(&conf_file, conf.to_string()).unwrap();
    let before = tree(&node.state());
    let script = format!(
        r#"{CALL}
HOST={host}; NETNS={netns}; C={conf}
mount --bind "$D" "$D"
mount -o remount,bind,ro "$D"
call ADD c2 "$C"
call CHECK c1 "$C"
call STATUS c1 "$C"
call DEL c1 "$C"
call GC c1 "$C"
"#,
        host = node.host.name,
        netns = node.container.path().display(),
        conf = conf_file.display(),
    );
    let text = in_private_mounts(&node.state(), &script);
    assert_eq!(
        codes(&results(&text)),
        [
            ("ADD c2".into(), 1, 5),
            ("CHECK c1".into(), 0, 0),
            ("STATUS c1".into(), 0, 0),
            ("DEL c1".into(), 0, 0),
            ("GC c1".into(), 1, 5),
        ],
        "{text}"
    );
    assert_eq!(
        before,
        tree(&node.state()),
        "the read-only directory changed"
    );
    assert!(temp_files(&node.state()).is_empty());
}

/// A listing without install's lock file, which install creates.
fn without_lock(
    mut listing: std::collections::BTreeMap<String, hostile_support::FileEntry>,
) -> std::collections::BTreeMap<String, hostile_support::FileEntry> {
    listing.remove(".hostguard.lock");
    listing
}

/// The install side: FIFOs, devices, symlink loops and oversized files under config names in the
/// conf dir. install must neither hang nor read them, must say which file is wrong, and must
/// write nothing; a FIFO as the lock file still serializes.
#[test]
fn hostile_files_in_the_conf_dir_are_named_and_never_read() {
    let node = Node::new("confdir");
    let conf_dir = node.dir.join("net.d");
    let upstream = conf_dir.join("10-calico.conflist");
    let good = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"}]}"#;
    type Plant = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Plant)> = vec![
        ("a FIFO", Box::new(|p: &Path| mkfifo(p))),
        (
            "a symlink loop",
            Box::new(|p: &Path| symlink(p, p).unwrap()),
        ),
        (
            "a link to /dev/zero",
            Box::new(|p: &Path| symlink("/dev/zero", p).unwrap()),
        ),
        (
            "a link to /dev/tty",
            Box::new(|p: &Path| symlink("/dev/tty", p).unwrap()),
        ),
        (
            "2 MiB",
            Box::new(|p: &Path| {
                let mut body = br#"{"cniVersion":"1.0.0","name":"k8s","pad":""#.to_vec();
                body.resize(2 << 20, b'a');
                fs::write(p, body).unwrap()
            }),
        ),
    ];
    for (what, plant) in &cases {
        let _ = fs::remove_dir_all(&conf_dir);
        fs::create_dir_all(&conf_dir).unwrap();
        plant(&upstream);
        let before = without_lock(tree(&conf_dir));
        let out = Command::new(common::BIN)
            .args(["install", "--conf-dir"])
            .arg(&conf_dir)
            .args(["--timeout", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{what}: {stderr}");
        assert!(stderr.contains("10-calico.conflist"), "{what}: {stderr}");
        assert_eq!(
            before,
            without_lock(tree(&conf_dir)),
            "{what}: the conf dir changed"
        );
    }
    // A FIFO as install's lock file and as the output's name: the lock still works, the FIFO at
    // the output is refused (never replaced, never opened for writing).
    let _ = fs::remove_dir_all(&conf_dir);
    fs::create_dir_all(&conf_dir).unwrap();
    fs::write(&upstream, good).unwrap();
    mkfifo(&conf_dir.join(".hostguard.lock"));
    mkfifo(&conf_dir.join("00-hostguard.conflist"));
    let out = Command::new(common::BIN)
        .args(["install", "--conf-dir"])
        .arg(&conf_dir)
        .args(["--timeout", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("00-hostguard.conflist"), "{stderr}");
    assert!(temp_files(&conf_dir).is_empty());
}

/// NetworkManager configuration is read on every ADD while NetworkManager runs (and by doctor):
/// `unmanaged-devices+=` lists spread over several files, each under the 1 MiB cap, must be
/// merged in bounded time, not by comparing every spec with every other.
#[test]
fn networkmanager_lists_growing_over_many_files_are_merged_without_hanging() {
    let dir = common::TempDir::new("nmlists");
    let conf_d = dir.join("etc/NetworkManager/conf.d");
    fs::create_dir_all(&conf_d).unwrap();
    fs::write(
        dir.join("etc/NetworkManager/NetworkManager.conf"),
        "[main]\n",
    )
    .unwrap();
    for file in 0..4 {
        let specs: Vec<String> = (0..90_000).map(|i| format!("f{file}x{i:x}")).collect();
        let body = format!("[keyfile]\nunmanaged-devices+={}\n", specs.join(","));
        assert!(body.len() < 1 << 20);
        fs::write(conf_d.join(format!("{file}0-list.conf")), body).unwrap();
    }
    let mut child = Command::new(common::BIN)
        .env_remove("CNI_COMMAND")
        .args(["doctor", "--json", "--root"])
        .arg(&dir.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + hostile_support::HANG;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "doctor did not finish reading 4 files of 90 000 unmanaged-devices+= specs in {:?}",
                hostile_support::HANG
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
