//! install beside other chain editors: a file that install did not write is never replaced or
//! removed, the co-tenancy mode (`--in-place`) keeps every foreign entry and rests when nothing
//! changes, Multus' config is passed over to its master, and the cycles a file of our own would
//! form with Multus or Antrea are refused, not written. The full pairings (stand-ins of Istio's,
//! Multus' and Antrea's installers, start orders, restarts, a container run) are in
//! scripts/e2e-coexist.sh.

use crate::install_support;

use std::fs;
use std::thread;
use std::time::Duration;

use install_support::*;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(10);

fn conflist(types: &[&str]) -> Vec<u8> {
    let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
    serde_json::to_vec(&json!({"cniVersion": "1.0.0", "name": "k8s", "plugins": plugins})).unwrap()
}

fn types_of(node: &Node, name: &str) -> Vec<String> {
    plugin_types(&serde_json::from_slice(&fs::read(node.path(name)).unwrap()).unwrap())
}

#[test]
fn an_existing_output_install_did_not_write_is_refused_and_kept() {
    let node = Node::new();
    let calico = testdata_bytes("calico.conflist");
    node.put("05-calico.conflist", &calico);
    node.put("10-flannel.conflist", &conflist(&["flannel"]));
    node.install(&["--output", "05-calico.conflist", "--timeout", "1"])
        .assert_code(1)
        .assert_stderr("05-calico.conflist exists and hostguard install did not write it")
        .assert_stderr("nothing written");
    assert_eq!(fs::read(node.path("05-calico.conflist")).unwrap(), calico);

    // A hostguard entry alone does not make it ours: an operator's hand-made chain.
    let hand_made = conflist(&["calico", "hostguard"]);
    node.put("05-calico.conflist", &hand_made);
    node.install(&["--output", "05-calico.conflist", "--timeout", "1"])
        .assert_code(1)
        .assert_stderr("did not write it");
    node.uninstall(&["--output", "05-calico.conflist"])
        .assert_code(1)
        .assert_stderr("hostguard install did not write it")
        .assert_stderr("nothing removed");
    assert_eq!(
        fs::read(node.path("05-calico.conflist")).unwrap(),
        hand_made
    );
}

#[test]
fn an_older_installs_unmarked_output_is_taken_over_on_upgrade() {
    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    // What install wrote before outputs were marked: the default name, hostguard last.
    node.put(OUTPUT, &conflist(&["aws-cni", "hostguard"]));
    node.install(&["--timeout", "5"]).assert_ok();
    let upgraded = node.output_json();
    assert_eq!(
        upgraded["hostguardInstall"],
        json!({"output": OUTPUT, "upstream": "10-aws.conflist"})
    );
    assert_eq!(types_of(&node, OUTPUT), ["aws-cni", "hostguard"]);

    node.put(OUTPUT, &conflist(&["aws-cni", "hostguard"]));
    node.uninstall(&[]).assert_ok();
    assert!(!node.path(OUTPUT).exists());
    assert!(node.path("10-aws.conflist").exists());
}

#[test]
fn uninstall_removes_only_the_file_install_wrote_under_that_name() {
    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    node.install(&["--timeout", "5"]).assert_ok();
    let ours = node.output_json();
    assert_eq!(
        ours["hostguardInstall"],
        json!({"output": OUTPUT, "upstream": "10-aws.conflist"})
    );
    // Another installer's copy of our output, under its own name, is not ours to remove.
    let mut copy = ours.clone();
    copy["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "antrea"}));
    let copy = serde_json::to_vec(&copy).unwrap();
    node.put("05-antrea.conflist", &copy);
    node.uninstall(&["--output", "05-antrea.conflist"])
        .assert_code(1);
    assert_eq!(fs::read(node.path("05-antrea.conflist")).unwrap(), copy);
    node.uninstall(&[]).assert_ok().assert_stdout("removed ");
    assert!(!node.output().exists());

    // Istio's installer added itself to our file: uninstall says what goes with it.
    fs::remove_file(node.path("05-antrea.conflist")).unwrap();
    node.install(&["--timeout", "5"]).assert_ok();
    let mut edited = node.output_json();
    edited["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "istio-cni"}));
    node.put(OUTPUT, &serde_json::to_vec(&edited).unwrap());
    node.uninstall(&[])
        .assert_ok()
        .assert_stderr("also holds [istio-cni], which another tool added to it");
}

#[test]
fn own_file_refuses_to_chain_a_copy_of_itself_or_a_multus_config() {
    // Antrea's chaining copied our output (the first file) and added itself: chaining that copy
    // would put our output inside itself and never see the primary's changes again.
    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    node.install(&["--timeout", "5"]).assert_ok();
    let before = fs::read(node.output()).unwrap();
    let mut copy = node.output_json();
    copy["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "antrea"}));
    node.put("05-antrea.conflist", &serde_json::to_vec(&copy).unwrap());
    node.install(&["--timeout", "1"])
        .assert_code(1)
        .assert_stderr("05-antrea.conflist is another installer's copy of hostguard's")
        .assert_stderr("--in-place");
    assert_eq!(fs::read(node.output()).unwrap(), before);

    // Multus started after us took our output as its master; its file sorts after ours.
    let node = Node::new();
    node.put("10-calico.conflist", &conflist(&["calico"]));
    node.install(&["--timeout", "5"]).assert_ok();
    let before = fs::read(node.output()).unwrap();
    let multus = json!({"cniVersion": "1.0.0", "name": "multus-cni-network",
        "plugins": [{"type": "multus", "delegates": [node.output_json()]}]});
    node.put("00-multus.conflist", &serde_json::to_vec(&multus).unwrap());
    node.install(&["--timeout", "1"])
        .assert_code(1)
        .assert_stderr("00-multus.conflist is a multus config")
        .assert_stderr("--in-place");
    assert_eq!(fs::read(node.output()).unwrap(), before);

    // Multus started first: our file would shadow it and run hostguard beside it.
    let node = Node::new();
    node.put(
        "00-multus.conf",
        br#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[]}"#,
    );
    node.put("10-calico.conflist", &conflist(&["calico"]));
    node.install(&["--timeout", "1"])
        .assert_code(1)
        .assert_stderr("00-multus.conf is a multus config")
        .assert_stderr("--in-place");
    assert!(!node.output().exists());
    // An output sorting after it: a name that sorts before would bypass Multus, so none is offered.
    let run = node.install(&["--output", "01-hostguard.conflist", "--timeout", "1"]);
    run.assert_code(1)
        .assert_stderr("would bypass multus")
        .assert_stderr("--in-place");
    assert!(!run.stderr.contains("use --output"), "{}", run.stderr);
}

#[test]
fn in_place_inserts_once_keeps_foreign_entries_and_rests() {
    let node = Node::new();
    let mut list = json!({"cniVersion": "1.0.0", "name": "k8s", "disableCheck": true,
        "plugins": [{"type": "aws-cni", "mtu": 9001}, {"type": "istio-cni", "kubernetes": {"k": 1}}]});
    node.put("10-aws.conflist", &serde_json::to_vec(&list).unwrap());
    node.install(&["--in-place", "--timeout", "5"])
        .assert_ok()
        .assert_stdout("inserted the hostguard entry into");
    assert!(!node.output().exists(), "{:?}", node.listing());
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "hostguard"}));
    let edited: Value =
        serde_json::from_slice(&fs::read(node.path("10-aws.conflist")).unwrap()).unwrap();
    assert_eq!(edited, list);

    // At rest: a second run, and one after another tool appended its entry behind ours, write nothing.
    let at_rest = identity(&node.path("10-aws.conflist"));
    node.install(&["--in-place", "--timeout", "5"])
        .assert_ok()
        .assert_stdout("already holds the hostguard entry");
    assert_eq!(identity(&node.path("10-aws.conflist")), at_rest);
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "linkerd-cni"}));
    node.put("10-aws.conflist", &serde_json::to_vec(&list).unwrap());
    let at_rest = identity(&node.path("10-aws.conflist"));
    node.install(&["--in-place", "--timeout", "5"]).assert_ok();
    assert_eq!(identity(&node.path("10-aws.conflist")), at_rest);

    node.uninstall(&["--in-place"])
        .assert_ok()
        .assert_stdout("removed the hostguard entry from");
    assert_eq!(
        types_of(&node, "10-aws.conflist"),
        ["aws-cni", "istio-cni", "linkerd-cni"]
    );
    node.uninstall(&["--in-place"])
        .assert_ok()
        .assert_stdout("nothing to do");
}

#[test]
fn in_place_goes_into_multus_master_never_into_multus() {
    let node = Node::new();
    let multus = br#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"}]}]}"#;
    node.put("00-multus.conf", multus);
    node.put("10-calico.conflist", &conflist(&["calico"]));
    node.install(&["--in-place", "--timeout", "5"])
        .assert_ok()
        .assert_stderr("00-multus.conf is a multus config: hostguard goes into its master");
    assert_eq!(fs::read(node.path("00-multus.conf")).unwrap(), multus);
    assert_eq!(
        types_of(&node, "10-calico.conflist"),
        ["calico", "hostguard"]
    );
    node.uninstall(&["--in-place"]).assert_ok();
    assert_eq!(types_of(&node, "10-calico.conflist"), ["calico"]);
    assert_eq!(fs::read(node.path("00-multus.conf")).unwrap(), multus);
}

#[test]
fn in_place_watch_follows_a_primary_rewrite_and_leaves_a_co_tenant_alone() {
    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    let running = node.spawn_install(&["--in-place", "--watch", "--timeout", "20"]);
    let has = |types: &[&str]| {
        wait_until(LIMIT, || {
            fs::read(node.path("10-aws.conflist"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .is_some_and(|list| plugin_types(&list) == types)
        })
    };
    assert!(has(&["aws-cni", "hostguard"]), "{}", running.stderr());
    // The primary rewrites its file at node restart (by rename): hostguard goes back in.
    node.rename_in("10-aws.conflist", &conflist(&["aws-cni", "egress"]));
    assert!(
        has(&["aws-cni", "egress", "hostguard"]),
        "{}",
        running.stderr()
    );
    // A co-tenant appends its own entry: hostguard leaves the file alone.
    let mut list: Value =
        serde_json::from_slice(&fs::read(node.path("10-aws.conflist")).unwrap()).unwrap();
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "istio-cni"}));
    node.rename_in("10-aws.conflist", &serde_json::to_vec(&list).unwrap());
    let theirs = identity(&node.path("10-aws.conflist"));
    thread::sleep(Duration::from_millis(500));
    assert_eq!(identity(&node.path("10-aws.conflist")), theirs);
    assert_eq!(running.stdout().matches("inserted ").count(), 2);
}

#[test]
fn a_failing_sync_waits_out_its_delay_whatever_events_arrive() {
    let node = Node::new();
    node.put("10-calico.conflist", &conflist(&["calico"]));
    // --bin-dir names a file: every sync fails before anything is written.
    fs::write(&node.bin, b"not a directory").unwrap();
    let bin = node.bin.to_string_lossy().into_owned();
    let running = node.spawn_install(&["--watch", "--timeout", "20", "--bin-dir", &bin]);
    running.await_stderr("trying again in", LIMIT);
    // Another writer busy in the directory: 100 events over about a second.
    for n in 0..100 {
        fs::write(node.path("noise"), format!("{n}")).unwrap();
        thread::sleep(Duration::from_millis(10));
    }
    let attempts = running.stderr().matches("trying again in").count();
    // The delays double from 1 s: about two attempts in that second, not one per event.
    assert!(attempts <= 3, "{attempts} attempts:\n{}", running.stderr());
    assert!(!node.output().exists());
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn at_rest_the_watcher_sleeps_in_both_modes() {
    for in_place in [false, true] {
        let node = Node::new();
        node.put("10-calico.conflist", &conflist(&["calico"]));
        let mut args = vec!["--watch", "--timeout", "20"];
        if in_place {
            args.push("--in-place");
        }
        let running = node.spawn_install(&args);
        running.await_stderr("watching ", LIMIT);
        thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(running.pid());
        thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(running.pid()) - before;
        // Woken by its own lock file, it looked again and again: a third of a core at rest.
        assert!(
            used <= 5,
            "in_place={in_place}: {used} ticks of CPU in a second at rest:\n{}",
            running.stderr()
        );
        let writes = running.stdout().matches("wrote ").count()
            + running.stdout().matches("inserted ").count();
        assert_eq!(writes, 1, "in_place={in_place}: {}", running.stdout());
    }
}

/// Istio's installer against a file of our own: it appends istio-cni to the first config file,
/// ours, whenever its entry is missing, and we restore ours. hostguard backs off, names the way
/// out, and keeps following the primary while it backs off: a stale chain is what the back-off
/// must not cost.
#[test]
fn own_file_against_istio_backs_off_but_follows_the_primary() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    let running = node.spawn_install(&["--watch", "--timeout", "20"]);
    running.await_stderr("watching ", LIMIT);
    let stop = Arc::new(AtomicBool::new(false));
    let istio = {
        let (stop, output) = (stop.clone(), node.output());
        thread::spawn(move || {
            // Bounded: at most 2000 looks, 5 ms apart.
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(mut list) = fs::read(&output)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                {
                    if !plugin_types(&list).contains(&"istio-cni".to_string()) {
                        list["plugins"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"type": "istio-cni"}));
                        let staging = output.with_extension("istio");
                        fs::write(&staging, serde_json::to_vec(&list).unwrap()).unwrap();
                        fs::rename(&staging, &output).unwrap();
                    }
                }
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    running.await_stderr("backing off 4s", LIMIT);
    node.rename_in("10-aws.conflist", &conflist(&["aws-cni", "egress"]));
    // Within half the back-off in force: the primary is followed, not held back with the repairs.
    let followed = wait_until(Duration::from_secs(2), || {
        fs::read(node.output())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .is_some_and(|list| plugin_types(&list)[..2] == ["aws-cni", "egress"])
    });
    stop.store(true, Ordering::Relaxed);
    istio.join().unwrap();
    assert!(
        followed,
        "the primary's rewrite was held back:\n{}",
        running.stderr()
    );
    running.await_stderr("another chain editor added [istio-cni]", LIMIT);
    running.await_stderr("--in-place", LIMIT);
}

#[test]
fn in_place_refuses_while_a_file_of_our_own_is_loaded() {
    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    node.install(&["--timeout", "5"]).assert_ok();
    let upstream = fs::read(node.path("10-aws.conflist")).unwrap();
    node.install(&["--in-place", "--timeout", "1"])
        .assert_code(1)
        .assert_stderr("is hostguard's own conflist from an install without --in-place");
    assert_eq!(fs::read(node.path("10-aws.conflist")).unwrap(), upstream);
    node.uninstall(&[]).assert_ok();
    node.install(&["--in-place", "--timeout", "1"]).assert_ok();
    assert_eq!(types_of(&node, "10-aws.conflist"), ["aws-cni", "hostguard"]);
}

/// A writer that keeps rewriting the loaded list without other tools' entries: hostguard's
/// insertions are counted and backed off from, never a loop.
#[test]
fn in_place_backs_off_from_a_writer_that_keeps_dropping_its_entry() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let node = Node::new();
    node.put("10-aws.conflist", &conflist(&["aws-cni"]));
    let running = node.spawn_install(&["--in-place", "--watch", "--timeout", "20"]);
    running.await_stderr("watching ", LIMIT);
    let stop = Arc::new(AtomicBool::new(false));
    let rewrites = Arc::new(AtomicUsize::new(0));
    let stripper = {
        let (stop, rewrites) = (stop.clone(), rewrites.clone());
        let path = node.path("10-aws.conflist");
        let theirs = conflist(&["aws-cni"]);
        thread::spawn(move || {
            // Bounded: at most 300 looks, 10 ms apart.
            for _ in 0..300 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if fs::read(&path).is_ok_and(|bytes| bytes != theirs) {
                    let staging = path.with_extension("stripper");
                    fs::write(&staging, &theirs).unwrap();
                    fs::rename(&staging, &path).unwrap();
                    rewrites.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    running.await_stderr("backing off", LIMIT);
    thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    stripper.join().unwrap();
    let stderr = running.stderr();
    assert!(
        stderr.contains("the hostguard entry was removed from 10-aws.conflist"),
        "{stderr}"
    );
    // The first insertion, at most THRESHOLD before backing off, and one per back-off step.
    let inserts = running.stdout().matches("inserted ").count();
    assert!(inserts <= 9, "{inserts} insertions:\n{}", running.stdout());
    assert!(inserts <= rewrites.load(Ordering::Relaxed) + 1);
    // Once the other writer stops, the entry goes back in after the back-off.
    let back = wait_until(LIMIT, || {
        types_of(&node, "10-aws.conflist") == ["aws-cni", "hostguard"]
    });
    assert!(back, "{}", running.stderr());
}
