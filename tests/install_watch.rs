//! install --watch: the output follows the upstream through every kind of change, is restored when
//! someone else deletes or edits it, stops fighting a persistent writer, and exits 0 on SIGTERM.

use crate::install_support;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use install_support::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(10);

fn conflist(name: &str, types: &[&str]) -> Vec<u8> {
    let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
    serde_json::to_vec(&json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins})).unwrap()
}

/// Waits until the output chains exactly `types` (hostguard appended).
fn await_output(node: &Node, types: &[&str], running: &Running) {
    let mut want: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    want.push("hostguard".into());
    let reached = wait_until(LIMIT, || {
        fs::read(node.output())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .is_some_and(|list| plugin_types(&list) == want)
    });
    assert!(
        reached,
        "output never became {want:?}; stderr:\n{}",
        running.stderr()
    );
    assert_chained(&fs::read(node.output()).unwrap());
}

fn start(node: &Node) -> Running {
    node.put("10-calico.conflist", &conflist("k8s", &["calico"]));
    let running = node.spawn_install(&["--watch", "--timeout", "20"]);
    await_output(node, &["calico"], &running);
    running.await_stderr("watching ", LIMIT);
    running
}

#[test]
fn follows_the_upstream_through_every_kind_of_change() {
    let node = Node::new();
    let running = start(&node);

    // Rewritten in place (truncate + write), as Calico does on AKS.
    node.put(
        "10-calico.conflist",
        &conflist("k8s", &["calico", "portmap"]),
    );
    await_output(&node, &["calico", "portmap"], &running);

    // Replaced by rename, as aws-node does.
    node.rename_in(
        "10-calico.conflist",
        &conflist("k8s", &["calico", "bandwidth"]),
    );
    await_output(&node, &["calico", "bandwidth"], &running);

    // Deleted, then created again: the output stays meanwhile.
    fs::remove_file(node.path("10-calico.conflist")).unwrap();
    running.await_stderr("upstream config in", LIMIT);
    assert!(node.output().exists());
    node.put(
        "10-calico.conflist",
        &conflist("k8s", &["calico", "tuning"]),
    );
    await_output(&node, &["calico", "tuning"], &running);

    // A better-sorting config appears: runtimes would use it, so we chain it.
    node.rename_in("05-cilium.conflist", &conflist("cilium", &["cilium-cni"]));
    await_output(&node, &["cilium-cni"], &running);
    assert_eq!(node.output_json()["name"], "cilium");

    // The upstream loses... our entry? It never had it; an upstream that adds one gets it dropped.
    node.put(
        "05-cilium.conflist",
        &conflist("cilium", &["hostguard", "cilium-cni"]),
    );
    await_output(&node, &["cilium-cni"], &running);

    let mut running = running;
    assert!(running.is_running());
    running.signal(Signal::SIGTERM);
    running
        .finish(LIMIT)
        .assert_ok()
        .assert_stderr("stopping on SIGTERM");
    assert!(node.output().exists(), "the output must stay after SIGTERM");
}

#[test]
fn our_output_is_restored_when_deleted_or_edited() {
    let node = Node::new();
    let running = start(&node);
    let ours = fs::read(node.output()).unwrap();

    fs::remove_file(node.output()).unwrap();
    assert!(
        wait_until(LIMIT, || fs::read(node.output()).ok().as_ref()
            == Some(&ours)),
        "not restored after delete"
    );

    fs::write(node.output(), conflist("k8s", &["calico"])).unwrap();
    assert!(
        wait_until(LIMIT, || fs::read(node.output()).ok().as_ref()
            == Some(&ours)),
        "not restored after edit"
    );

    running.signal(Signal::SIGINT);
    running
        .finish(LIMIT)
        .assert_ok()
        .assert_stderr("stopping on SIGINT");
}

#[test]
fn a_symlinked_upstream_is_followed_to_its_target() {
    let node = Node::new();
    let elsewhere = node.root.join("var-lib");
    fs::create_dir(&elsewhere).unwrap();
    let real = elsewhere.join("calico.conflist");
    fs::write(&real, conflist("k8s", &["calico"])).unwrap();
    std::os::unix::fs::symlink(&real, node.path("10-calico.conflist")).unwrap();
    let running = node.spawn_install(&["--watch", "--timeout", "20"]);
    await_output(&node, &["calico"], &running);

    fs::write(&real, conflist("k8s", &["calico", "portmap"])).unwrap();
    await_output(&node, &["calico", "portmap"], &running);
    let staging = elsewhere.join("new");
    fs::write(&staging, conflist("k8s", &["calico", "sbr"])).unwrap();
    fs::rename(&staging, &real).unwrap();
    await_output(&node, &["calico", "sbr"], &running);
}

#[test]
fn a_fighting_writer_gets_backoff_not_a_loop() {
    let node = Node::new();
    let running = start(&node);
    let stop = Arc::new(AtomicBool::new(false));
    let fights = Arc::new(AtomicUsize::new(0));
    let fighter = {
        let (stop, fights, output) = (stop.clone(), fights.clone(), node.output());
        let theirs = conflist("k8s", &["calico", "istio-cni"]);
        thread::spawn(move || {
            // Bounded: at most 300 rewrites, 10 ms apart.
            for _ in 0..300 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let staging = output.with_extension("fighter");
                fs::write(&staging, &theirs).unwrap();
                fs::rename(&staging, &output).unwrap();
                fights.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    running.await_stderr("backing off", LIMIT);
    thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    fighter.join().unwrap();

    let stderr = running.stderr();
    assert!(stderr.contains("was changed by another writer"), "{stderr}");
    assert!(
        stderr.contains("Hint: it now holds [calico, istio-cni] without hostguard"),
        "{stderr}"
    );
    // Initial write + at most THRESHOLD repairs before backing off + one per backoff step (1 s, 2 s, ...).
    let writes = running.stdout().matches("wrote ").count();
    let rewrites = fights.load(Ordering::Relaxed);
    assert!(rewrites > 100, "the fighter only wrote {rewrites} times");
    assert!(
        writes <= 9,
        "{writes} writes against {rewrites} foreign rewrites:\n{stderr}"
    );
    // Once the other writer stops, the next repair after the backoff restores our file.
    await_output(&node, &["calico"], &running);
}

#[test]
fn an_event_overflow_triggers_a_full_rescan() {
    let node = Node::new();
    let running = start(&node);
    let max_queued: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Stopped, the watcher cannot drain its queue; alternating writes to two unrelated files make
    // events that the kernel cannot merge, so the queue overflows and later events are dropped.
    running.signal(Signal::SIGSTOP);
    let (a, b) = (node.path("noise-a"), node.path("noise-b"));
    let (mut fa, mut fb) = (fs::File::create(&a).unwrap(), fs::File::create(&b).unwrap());
    use std::io::Write;
    for _ in 0..max_queued.min(1 << 20) {
        fa.write_all(b"x").unwrap();
        fb.write_all(b"x").unwrap();
    }
    node.put(
        "10-calico.conflist",
        &conflist("k8s", &["calico", "overflowed"]),
    );
    running.signal(Signal::SIGCONT);
    await_output(&node, &["calico", "overflowed"], &running);
}

#[test]
fn a_symlink_planted_at_the_output_is_reported_not_followed() {
    let node = Node::new();
    let mut running = start(&node);
    let victim = node.root.join("victim");
    fs::write(&victim, b"keep").unwrap();
    let planted = node.root.join("planted");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    fs::rename(&planted, node.output()).unwrap();
    running.await_stderr("does not replace a link", LIMIT);
    node.put(
        "10-calico.conflist",
        &conflist("k8s", &["calico", "portmap"]),
    );
    thread::sleep(Duration::from_millis(200));
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert!(fs::symlink_metadata(node.output())
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(running.is_running());
    // Once the operator removes the link, the output comes back, up to date.
    fs::remove_file(node.output()).unwrap();
    await_output(&node, &["calico", "portmap"], &running);
}

/// An init container or a shell may start the installer with stdin, stdout and stderr closed.
/// The files it then holds open for hours (the inotify watch, the lock, a temporary output)
/// would take those numbers, and its progress lines would land inside them; /dev/null must
/// take them first.
#[test]
fn started_with_stdio_closed_it_holds_dev_null_there_not_its_files() {
    use std::os::unix::process::CommandExt;

    let node = Node::new();
    node.put("10-calico.conflist", &conflist("k8s", &["calico"]));
    let mut command = node.command("install", &["--watch", "--timeout", "20"]);
    // SAFETY: close(2) is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for fd in 0..=2 {
                nix::unistd::close(fd)?;
            }
            Ok(())
        });
    }
    let mut running = Running::spawn(command);
    assert!(
        wait_until(LIMIT, || fs::read(node.output()).is_ok()),
        "no output written"
    );
    // A rewrite while it watches: a progress line is printed while the watch and lock are held.
    node.rename_in(
        "10-calico.conflist",
        &conflist("k8s", &["calico", "portmap"]),
    );
    let rechained = wait_until(LIMIT, || {
        fs::read(node.output())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .is_some_and(|list| plugin_types(&list) == ["calico", "portmap", "hostguard"])
    });
    assert!(rechained, "the rewrite was not followed");
    for fd in 0..=2 {
        let target = fs::read_link(format!("/proc/{}/fd/{fd}", running.pid()));
        assert_eq!(
            target.ok().as_deref(),
            Some(std::path::Path::new("/dev/null")),
            "fd {fd}"
        );
    }
    assert!(running.is_running());
    running.signal(Signal::SIGTERM);
    assert_eq!(running.finish(LIMIT).code(), 0);
    assert_chained(&fs::read(node.output()).unwrap());
    assert_eq!(fs::read(node.path(".hostguard.lock")).unwrap(), b"");
}
