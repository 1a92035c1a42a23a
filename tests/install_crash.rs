//! Crash safety and concurrency of install: SIGKILL at random moments while a reader keeps reading
//! the output (it must never be missing once written, empty, partial or invalid, and no stray file a
//! runtime would load may appear), and eight installers at once (one valid file, one entry).

use crate::install_support;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use install_support::*;

const KILLS: usize = 200;
/// Bounds the loop on a machine where installers finish before any kill can land.
const MAX_ROUNDS: usize = 2_000;

/// xorshift: enough randomness for kill timing without a crate.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Random(seed | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn is_loadable(name: &str) -> bool {
    [".conf", ".conflist", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

#[test]
fn sigkill_at_random_moments_never_exposes_a_bad_file() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    // Two plugin configs, alternated, so that every run has something to write.
    let configs: Vec<String> = ["warn", "debug"]
        .iter()
        .map(|level| {
            let path = node.root.join(format!("pc-{level}.json"));
            fs::write(&path, format!(r#"{{"logLevel":"{level}"}}"#)).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    node.install(&["--timeout", "5", "--plugin-config", &configs[0]])
        .assert_ok();

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let temps_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let reader = {
        let (stop, reads, seen, temps_seen) = (
            stop.clone(),
            reads.clone(),
            seen.clone(),
            temps_seen.clone(),
        );
        let (output, conf) = (node.output(), node.conf.clone());
        thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
                let bytes = fs::read(&output).expect("the output vanished");
                let list = assert_chained(&bytes);
                seen.lock()
                    .unwrap()
                    .insert(list["plugins"][3]["logLevel"].as_str().unwrap().to_string());
                for entry in fs::read_dir(&conf).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    if name.starts_with(".hostguard-tmp-") {
                        temps_seen.fetch_add(1, Ordering::Relaxed);
                    }
                    assert!(
                        !is_loadable(&name) || name == OUTPUT || name == "10-calico.conflist",
                        "a runtime would load {name}"
                    );
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The kill window tracks how long an installer really runs on this machine: one calibration
    // run is a poor guide (the first write pays for cold caches, and a faster CI machine finishes
    // long before it), so the window shrinks after every kill that came too late and grows after
    // every kill that landed. The loop stops once KILLS kills hit a running installer.
    let started = Instant::now();
    node.install(&["--timeout", "5", "--plugin-config", &configs[1]])
        .assert_ok();
    let mut window_us = started.elapsed().as_micros() as u64;

    let mut random = Random::new();
    let mut killed_running = 0;
    let mut rounds = 0;
    while killed_running < KILLS && rounds < MAX_ROUNDS {
        let mut running =
            node.spawn_install(&["--timeout", "5", "--plugin-config", &configs[rounds % 2]]);
        rounds += 1;
        thread::sleep(Duration::from_micros(random.below(window_us)));
        if running.is_running() {
            killed_running += 1;
            window_us += window_us / 16 + 1;
        } else {
            window_us -= window_us / 4;
        }
        let _ = running.child.kill();
        let _ = running.child.wait();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw a bad output");

    assert!(
        reads.load(Ordering::Relaxed) > KILLS,
        "the reader only read {} times",
        reads.load(Ordering::Relaxed)
    );
    assert_eq!(
        killed_running, KILLS,
        "only {killed_running} of {rounds} kills hit a running installer"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the reader never saw a rewrite"
    );

    let leftovers = node
        .listing()
        .iter()
        .filter(|n| n.starts_with(".hostguard-tmp-"))
        .count();
    eprintln!(
        "{rounds} kills, {killed_running} while running, {} reads, temporary files seen {} times, {leftovers} left",
        reads.load(Ordering::Relaxed),
        temps_seen.load(Ordering::Relaxed)
    );
    assert!(
        temps_seen.load(Ordering::Relaxed) > 0,
        "the reader never raced a write in progress"
    );
    // The next install cleans up whatever temporary files the kills left behind, including a
    // half-written one of a writer that is gone.
    let stale = node.path(&format!(".hostguard-tmp-{OUTPUT}.2147483646.000000001"));
    fs::write(&stale, b"{\"cniVersion\":").unwrap();
    node.install(&["--timeout", "5"]).assert_ok();
    let listing = node.listing();
    assert!(
        !listing.iter().any(|n| n.starts_with(".hostguard-tmp-")),
        "{listing:?}"
    );
    assert_eq!(listing, [".hostguard.lock", OUTPUT, "10-calico.conflist"]);
    assert_chained(&fs::read(node.output()).unwrap());
}

#[test]
fn eight_concurrent_installers_leave_one_valid_file() {
    let node = Node::new();
    node.put_testdata("10-calico.conflist", "calico.conflist");
    let configs: Vec<String> = (0..8)
        .map(|n| {
            let path = node.root.join(format!("pc-{n}.json"));
            fs::write(&path, format!(r#"{{"logFile":"/var/log/hg-{n}.log"}}"#)).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let installers: Vec<Running> = configs
        .iter()
        .map(|config| node.spawn_install(&["--timeout", "10", "--plugin-config", config]))
        .collect();
    for installer in installers {
        installer.finish(Duration::from_secs(20)).assert_ok();
    }
    let written = assert_chained(&fs::read(node.output()).unwrap());
    let log_file = written["plugins"][3]["logFile"].as_str().unwrap();
    assert!(
        (0..8).any(|n| log_file == format!("/var/log/hg-{n}.log")),
        "{log_file}"
    );
    assert_eq!(
        node.listing(),
        [".hostguard.lock", OUTPUT, "10-calico.conflist"]
    );
}
