//! install started before the upstream exists: it must notice the file as it appears (written in
//! place or renamed in) and never act on it while it is half written.

use crate::install_support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::thread;
use std::time::Duration;

use install_support::*;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_file_written_slowly_in_place_is_used_only_once_complete() {
    let node = Node::new();
    let running = node.spawn_install(&["--timeout", "20"]);
    running.await_stderr("no *.conf, *.conflist or *.json file yet", LIMIT);

    let upstream = testdata_bytes("calico.conflist");
    let (first, second) = upstream.split_at(upstream.len() / 2);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(node.path("10-calico.conflist"))
        .unwrap();
    file.write_all(first).unwrap();
    file.flush().unwrap();
    running.await_stderr("10-calico.conflist is truncated", LIMIT);
    // Half a file for a while: no output may appear, whatever the installer is doing.
    for _ in 0..30 {
        thread::sleep(Duration::from_millis(10));
        assert!(!node.output().exists(), "acted on a half-written file");
    }
    file.write_all(second).unwrap();
    drop(file);

    let run = running.finish(LIMIT);
    run.assert_ok();
    let written = assert_chained(&fs::read(node.output()).unwrap());
    assert_eq!(
        plugin_types(&written),
        ["calico", "portmap", "bandwidth", "hostguard"]
    );
    assert_eq!(fs::read(node.path("10-calico.conflist")).unwrap(), upstream);
}

#[test]
fn a_file_renamed_into_place_is_picked_up() {
    let node = Node::new();
    let running = node.spawn_install(&["--timeout", "20"]);
    running.await_stderr("waiting for a CNI config", LIMIT);
    node.rename_in("10-aws.conflist", &testdata_bytes("calico.conflist"));
    running.finish(LIMIT).assert_ok().assert_stdout("wrote ");
    assert_chained(&fs::read(node.output()).unwrap());
}

#[test]
fn an_empty_file_then_filled_is_waited_for() {
    let node = Node::new();
    node.put("05-antrea.conflist", b"");
    let running = node.spawn_install(&["--timeout", "20"]);
    running.await_stderr("05-antrea.conflist is empty", LIMIT);
    thread::sleep(Duration::from_millis(100));
    assert!(!node.output().exists());
    node.put_testdata("05-antrea.conflist", "calico.conflist");
    running.finish(LIMIT).assert_ok();
    assert_chained(&fs::read(node.output()).unwrap());
}

#[test]
fn a_better_sorting_file_that_appears_during_the_wait_wins() {
    let node = Node::new();
    node.put("20-broken.conflist", b"{");
    let running = node.spawn_install(&["--timeout", "20"]);
    running.await_stderr("20-broken.conflist is truncated", LIMIT);
    node.rename_in("10-bridge.conf", &testdata_bytes("bridge.conf"));
    running.finish(LIMIT).assert_ok();
    assert_eq!(plugin_types(&node.output_json()), ["bridge", "hostguard"]);
}

#[test]
fn a_progress_line_per_state_not_per_event() {
    let node = Node::new();
    node.put("10-calico.conflist", b"");
    let running = node.spawn_install(&["--timeout", "1"]);
    running.await_stderr("is empty", LIMIT);
    // Many events, one state: the file stays empty.
    for _ in 0..50 {
        node.put("10-calico.conflist", b"");
    }
    let run = running.finish(LIMIT);
    run.assert_code(1);
    let lines = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("hostguard install: waiting for a CNI config"))
        .count();
    assert_eq!(lines, 1, "{}", run.stderr);
}

#[test]
fn sigterm_during_the_wait_writes_nothing() {
    let node = Node::new();
    let running = node.spawn_install(&["--timeout", "20"]);
    running.await_stderr("waiting for a CNI config", LIMIT);
    running.signal(nix::sys::signal::Signal::SIGTERM);
    running
        .finish(LIMIT)
        .assert_code(1)
        .assert_stderr("interrupted by SIGTERM");
    assert!(node.listing().is_empty());
}

#[test]
fn a_complete_file_still_held_open_is_used_after_it_settles() {
    let node = Node::new();
    let running = node.spawn_install(&["--timeout", "20"]);
    running.await_stderr("waiting for a CNI config", LIMIT);
    // The writer never closes the file while we wait: no IN_CLOSE_WRITE, only the quiet period.
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(node.path("10-calico.conflist"))
        .unwrap();
    file.write_all(&testdata_bytes("calico.conflist")).unwrap();
    file.flush().unwrap();
    let run = running.finish(LIMIT);
    drop(file);
    run.assert_ok();
    assert_chained(&fs::read(node.output()).unwrap());
}
