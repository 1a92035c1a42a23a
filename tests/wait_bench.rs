//! Benchmark, not a test: how fast a waiting ADD reacts to the upstream interface becoming
//! ready (goal ≤ 20 ms median, where Submariner polls in 4–25 s steps).
//!
//! Per run: `tunl0` exists and is up but has no address; ADD (the real binary, inside a
//! throwaway host namespace, timeoutMs 10000) is started and the harness waits for its
//! "waiting up to" log line; then the harness adds 10.244.0.1/16 over its own netlink socket in
//! that namespace and measures from just before that request to the moment the ADD process has
//! exited. That span covers the notification, hostguard's look, the rest of ADD (state
//! directory, baseline, route guard, attachment record) and process exit.
//!
//! For scale it also times a whole ADD whose condition already holds (no waiting at all), and
//! `wait_ready` in-process (a second thread adds the address): the wait's own share.
//!
//! Run: `scripts/bench-wait.sh` (or `cargo test --release --test suite wait_bench:: -- --ignored
//! --nocapture`; `HG_BENCH_RUNS` sets the number of runs, default 30).

use crate::common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{conf, prev_result, Cni, Netns, TempDir};
use hostguard::netlink::{address_message, LinkExt};
use serde_json::{json, Value};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: runs {} median {:.2} ms p95 {:.2} ms min {:.2} ms max {:.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.95)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    );
}

fn log_has(path: &std::path::Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
}

#[test]
#[ignore = "benchmark"]
fn reaction_from_address_to_add_returning() {
    let runs: usize = std::env::var("HG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let host = Netns::new("benchh");
    let container = Netns::new("benchc");
    let dir = TempDir::new("bench");
    let log = dir.join("hostguard.log");
    host.ip("link add tunl0 type bridge");
    host.ip("link set tunl0 up");

    let mut config = conf(
        "1.1.0",
        &dir.join("state"),
        json!({
            "logFile": log.display().to_string(),
            "waitFor": {"interfaces": [{"name": "tunl0", "up": true, "cidr": "10.244.0.0/16"}],
                        "timeoutMs": 10_000},
        }),
    );
    config["prevResult"] = prev_result("1.1.0");
    let add = |config: &Value| {
        Cni::attach("ADD", "bench", &container.path(), "eth0")
            .in_ns(&host)
            .config(config)
    };

    // The harness's own socket in the host namespace: adding the address through it gives a
    // timestamp without a process start in the measured span.
    let mut nl = common::netns::netlink_in(&host.path()).unwrap();
    let tunl0 = nl.link_by_name("tunl0").unwrap().unwrap();
    assert_eq!(tunl0.name(), Some("tunl0"));
    let address = address_message(tunl0.header.index, "10.244.0.1/16".parse().unwrap());

    // One warm-up ADD records the baseline, as on a node that has run pods before.
    nl.add_address(address.clone()).unwrap();
    add(&config).run().ok();
    nl.del_address(address.clone()).unwrap();

    let mut reactions = Vec::with_capacity(runs);
    for run in 0..runs {
        let _ = std::fs::remove_file(&log);
        let cni = add(&config);
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let out = cni.run();
            let _ = done_tx.send(Instant::now());
            out
        });
        let give_up = Instant::now() + Duration::from_secs(10);
        while !log_has(&log, "waiting up to") {
            assert!(
                Instant::now() < give_up,
                "run {run}: ADD never started waiting"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let appeared = Instant::now();
        nl.add_address(address.clone()).unwrap();
        let exited = done_rx.recv().unwrap();
        waiter.join().unwrap().ok();
        reactions.push(exited - appeared);
        nl.del_address(address.clone()).unwrap();
    }

    // For scale: a whole ADD that does not wait (address already there), process start to exit.
    nl.add_address(address.clone()).unwrap();
    let whole: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            add(&config).run().ok();
            started.elapsed()
        })
        .collect();

    report("reaction: address added -> ADD exited", reactions);
    report("whole ADD, condition already met", whole);
}

#[test]
#[ignore = "benchmark"]
fn reaction_of_wait_ready_in_process() {
    use hostguard::config::WaitInterface;
    use hostguard::host::wait::wait_ready;
    use hostguard::netlink::Netlink;
    use nix::sched::{unshare, CloneFlags};

    let runs: usize = std::env::var("HG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // This thread (and the helper threads it spawns) move to a private namespace.
    unshare(CloneFlags::CLONE_NEWNET).unwrap();
    assert_ne!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap()
    );
    let mut nl = Netlink::new().unwrap();
    let index = nl.create_bridge("tunl0").unwrap();
    nl.set_up(index, true).unwrap();
    let address = address_message(index, "10.244.0.1/16".parse().unwrap());
    let conditions = [WaitInterface {
        name: "tunl0".into(),
        up: true,
        cidr: Some("10.244.0.0/16".parse().unwrap()),
    }];
    let mut reactions = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (start_tx, start_rx) = mpsc::channel::<()>();
        let adder = {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut nl = Netlink::new().unwrap();
                start_rx.recv().unwrap();
                let appeared = Instant::now();
                nl.add_address(address).unwrap();
                appeared
            })
        };
        let mut start = Some(start_tx);
        wait_ready(
            &mut nl,
            &conditions,
            Instant::now() + Duration::from_secs(10),
            &mut |_| {
                if let Some(tx) = start.take() {
                    tx.send(()).unwrap();
                }
            },
        )
        .unwrap();
        let ready = Instant::now();
        reactions.push(ready - adder.join().unwrap());
        nl.del_address(address.clone()).unwrap();
    }
    report(
        "in-process: address added -> wait_ready returned",
        reactions,
    );
}
