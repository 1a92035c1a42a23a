//! `hostguard guard` against the real kernel, with no pod at all: the daemon runs inside a
//! throwaway host namespace, something deletes a route or rule, and it has to come back.
//! Timings (latency, CPU, RSS) are printed (`--nocapture`), never asserted tightly; outcomes are
//! asserted with generous bounded waits.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Netns, Node, BIN};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// Every namespace has its own loopback, so one port serves every test.
const METRICS: &str = "127.0.0.1:9465";

/// The daemon, started inside `host`; killed by its PID on drop.
struct Guard {
    child: Child,
    netns: std::path::PathBuf,
    stdout: Arc<Mutex<String>>,
    entry: std::path::PathBuf,
}

impl Guard {
    fn start(node: &Node, entry: Value, settle_ms: u64) -> Guard {
        Guard::start_in(&node.host, &node.state.path, entry, settle_ms)
    }

    fn start_in(host: &Netns, state: &Path, mut entry: Value, settle_ms: u64) -> Guard {
        entry["stateDir"] = json!(state.join("state").display().to_string());
        let path = state.join("entry.json");
        std::fs::write(&path, entry.to_string()).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.name, BIN, "guard", "--plugin-config"])
            .arg(&path)
            .args([
                "--metrics-addr",
                METRICS,
                "--settle-ms",
                &settle_ms.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hostguard guard");
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stdout);
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let guard = Guard {
            child,
            netns: host.path(),
            stdout,
            entry: path,
        };
        guard.wait(
            "the daemon answers /readyz with 200",
            Duration::from_secs(10),
            || guard.get("/readyz").0 == 200,
        );
        guard
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// One HTTP GET from inside the host namespace: (status, body), or (0, error) when nothing
    /// answers.
    fn get(&self, path: &str) -> (u16, String) {
        let path = path.to_string();
        hostguard::netns::run_in(&self.netns, move || {
            let mut stream = TcpStream::connect(METRICS)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            let code = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            Ok((code, body.to_string()))
        })
        .unwrap_or_else(|err| (0, err.to_string()))
    }

    /// The value of one sample line of /metrics, e.g. `hostguard_restores_total{kind="route"}`.
    fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{body}"))
    }

    /// Waits (bounded) until `done`; returns how long it took.
    fn wait(&self, what: &str, limit: Duration, done: impl Fn() -> bool) -> Duration {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < limit,
                "not within {limit:?}: {what}\ndaemon stdout:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        started.elapsed()
    }

    fn logs(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// User + system CPU time of the daemon so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap_or(100) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Peak resident set size over the daemon's life, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settled(limit_ms: u64) -> Duration {
    Duration::from_millis(limit_ms)
}

#[test]
fn incident_1_case_a_a_deleted_default_comes_back_with_no_pod() {
    let node = Node::dual_homed("gA");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 100);
    let before = node.host.all_routes();
    let mut took = Vec::new();
    for _ in 0..5 {
        // The agent of incident 1 (or anyone) drops eth0's default.
        node.host
            .ip("route del default via 172.26.0.1 dev eth0 proto static");
        took.push(guard.wait("eth0's default is back", settled(5000), || {
            node.host.all_routes() == before
        }));
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("case A: deletion -> restored, settle 100 ms: {took:?}");
    guard.wait("five restores counted", settled(5000), || {
        guard.metric("hostguard_restores_total{kind=\"route\"}") == 5.0
    });
    assert_eq!(guard.metric("hostguard_routes_missing"), 0.0);
    assert!(guard
        .logs()
        .contains("restored missing default route: default via 172.26.0.1 dev eth0 proto static"));
    assert_eq!(guard.get("/readyz").0, 200);
    assert_eq!(guard.get("/healthz"), (200, "ok\n".into()));
}

#[test]
fn case_b_metric_routes_and_an_ipv6_multipath_hop_come_back_exactly() {
    let node = Node::dual_homed("gB");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 metric 100");
    node.host
        .ip("route add default via 172.26.0.33 dev eth1 metric 200 src 172.26.0.35 mtu 1400");
    node.host
        .ip("-6 route add default via 2001:db8:0::1 dev eth0 metric 1024");
    node.host
        .ip("-6 route append default via 2001:db8:1::1 dev eth1 metric 1024");
    let guard = Guard::start(&node, json!({}), 100);
    let before = node.host.all_routes();
    assert!(before.iter().any(|l| l.contains("nexthop")), "{before:#?}");

    node.host.ip("route del default dev eth1 metric 200");
    let took = guard.wait("eth1's metric-200 default is back", settled(5000), || {
        node.host.all_routes() == before
    });
    println!("case B: restored in {took:?}");
    // Incident 1's IPv6 collapse: one hop of the multipath default lost.
    node.host
        .ip("-6 route del default via 2001:db8:1::1 dev eth1 metric 1024");
    let took = guard.wait("the IPv6 hop is merged back", settled(5000), || {
        node.host.all_routes() == before
    });
    println!("IPv6 multipath hop: restored in {took:?}");
}

#[test]
fn incident_2_a_deleted_guarded_rule_comes_back_identically() {
    let node = Node::new("gR");
    node.host
        .ip("rule add pref 100 from 10.244.0.0/16 lookup 77 proto static");
    node.host
        .ip("-6 rule add pref 100 from fd00:244::/56 lookup 77");
    let rules = || {
        format!(
            "{}\n{}",
            node.host.ip("-d -4 rule show"),
            node.host.ip("-d -6 rule show")
        )
    };
    let before = rules();
    let guard = Guard::start(&node, json!({"rules": {"match": [{"table": 77}]}}), 100);
    // What `systemctl restart systemd-networkd` does to foreign rules.
    node.host
        .ip("rule del pref 100 from 10.244.0.0/16 lookup 77");
    let took = guard.wait("the IPv4 rule is back", settled(5000), || rules() == before);
    node.host.ip("-6 rule del pref 100");
    let took6 = guard.wait("the IPv6 rule is back", settled(5000), || rules() == before);
    println!("incident 2: rule restored in {took:?} (IPv4), {took6:?} (IPv6)");
    // The kernel shows the rule a moment before the daemon has counted it.
    guard.wait("both restores counted", settled(5000), || {
        guard.metric("hostguard_restores_total{kind=\"rule\"}") == 2.0
    });
    assert!(guard.logs().contains("restored missing policy rule"));
}

/// A DHCP client renewing its lease deletes the default and adds it back 20 ms later with a new
/// gateway. Its add must never meet an EEXIST made by hostguard, and the new gateway stays.
#[test]
fn a_dhclient_style_renewal_is_never_broken() {
    for settle in [0, 100] {
        let node = Node::dual_homed("gD");
        node.host
            .ip("route add default via 172.26.0.1 dev eth0 proto dhcp metric 100");
        let guard = Guard::start(&node, json!({}), settle);
        let gateways = ["172.26.0.2", "172.26.0.4", "172.26.0.5", "172.26.0.6"];
        let mut old = "172.26.0.1";
        for new in gateways {
            node.host.ip(&format!(
                "route del default via {old} dev eth0 proto dhcp metric 100"
            ));
            std::thread::sleep(Duration::from_millis(20));
            let added = node.host.try_ip(&format!(
                "route add default via {new} dev eth0 proto dhcp metric 100"
            ));
            assert!(
                added.status.success(),
                "settle {settle}: the client's add failed: {}\n{}",
                String::from_utf8_lossy(&added.stderr),
                guard.logs()
            );
            old = new;
            std::thread::sleep(Duration::from_millis(300));
        }
        // Well past the grace: nothing was "restored" over the client's route.
        std::thread::sleep(Duration::from_millis(2500));
        let defaults = node.host.default_routes();
        assert_eq!(defaults.len(), 1, "settle {settle}: {defaults:?}");
        assert!(
            defaults[0].contains("default via 172.26.0.6 dev eth0 table main proto dhcp"),
            "settle {settle}: {defaults:?}"
        );
        assert_eq!(
            guard.metric("hostguard_restores_total{kind=\"route\"}"),
            0.0
        );
        assert_eq!(guard.get("/readyz").0, 200);
    }
}

#[test]
fn a_dhcp_route_that_stays_gone_comes_back_after_the_grace() {
    let node = Node::dual_homed("gG");
    node.host
        .ip("route add default via 172.26.0.1 dev eth0 proto dhcp metric 100");
    let guard = Guard::start(&node, json!({"routes": {"dhcpGraceMs": 600}}), 0);
    let before = node.host.all_routes();
    node.host.ip("route del default dev eth0 metric 100");
    // Inside its grace the route is missing but the node is ready: the client may be renewing.
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(node.host.all_routes(), before);
    assert_eq!(guard.get("/readyz").0, 200);
    let took = guard.wait("the dhcp default is back", settled(5000), || {
        node.host.all_routes() == before
    });
    println!(
        "dhcp route with grace 600 ms: restored after {:?}",
        took + Duration::from_millis(300)
    );
    assert!(took + Duration::from_millis(300) >= Duration::from_millis(550));
}

/// Something deletes the restored route 50 times a second for 5 s: hostguard backs off instead
/// of fighting, shows it in /metrics, and repairs the route once the fight stops.
#[test]
fn a_fight_backs_off_and_recovers_when_it_stops() {
    let node = Node::dual_homed("gF");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 100);
    let before = node.host.all_routes();
    let cpu_before = guard.cpu();
    let started = Instant::now();
    let mut peak_backoff: f64 = 0.0;
    let mut fighter_deletions = 0;
    for n in 0..250 {
        if node
            .host
            .try_ip("route del default via 172.26.0.1 dev eth0 proto static")
            .status
            .success()
        {
            fighter_deletions += 1;
        }
        if n % 25 == 0 {
            peak_backoff = peak_backoff.max(guard.metric("hostguard_fight_backoff_seconds"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let fight = started.elapsed();
    let cpu = guard.cpu() - cpu_before;
    let restores = guard.metric("hostguard_restores_total{kind=\"route\"}");
    println!(
        "fight for {fight:?}: {restores} restores, {fighter_deletions} deletions by the fighter, \
         daemon CPU {cpu:?} ({:.2}% of one core), peak back-off {peak_backoff} s",
        cpu.as_secs_f64() * 100.0 / fight.as_secs_f64()
    );
    assert!(peak_backoff >= 1.0, "no back-off seen:\n{}", guard.logs());
    // Without back-off this would be about one restore per settle period (40 or more).
    assert!(restores <= 15.0, "{restores} restores:\n{}", guard.logs());
    assert!(guard.logs().contains("deleted again within 100 ms"));
    let took = guard.wait("the route is back after the fight", settled(70_000), || {
        node.host.all_routes() == before
    });
    guard.wait("the back-off clears", settled(5000), || {
        guard.metric("hostguard_fight_backoff_seconds") == 0.0
    });
    assert_eq!(guard.get("/readyz").0, 200);
    println!("recovered {took:?} after the fight stopped");
}

#[test]
fn readyz_is_503_while_a_route_cannot_be_restored_and_200_once_it_is_back() {
    let node = Node::dual_homed("gY");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 100);
    // Only the defaults: a link going down and up also renews its IPv6 link-local routes.
    let before = node.host.default_routes();
    node.host.ip("link set eth0 down");
    guard.wait("/readyz says 503", settled(5000), || {
        guard.get("/readyz").0 == 503
    });
    let (_, why) = guard.get("/readyz");
    assert!(
        why.contains("172.26.0.1 dev eth0") && why.contains("eth0 is down"),
        "{why}"
    );
    assert_eq!(why.lines().count(), 1, "{why}");
    assert_eq!(guard.metric("hostguard_links_down{link=\"eth0\"}"), 1.0);
    assert_eq!(guard.metric("hostguard_routes_missing"), 1.0);
    assert_eq!(
        guard.metric("hostguard_restore_failures_total{kind=\"route\",reason=\"device_down\"}"),
        1.0
    );
    assert!(guard.logs().contains("link eth0 went down"));
    // hostguard never brings a link up itself.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!node.host.ip("link show eth0").contains(",UP"));
    node.host.ip("link set eth0 up");
    guard.wait("/readyz says 200 again", settled(5000), || {
        guard.get("/readyz").0 == 200
    });
    guard.wait("the route is back", settled(5000), || {
        node.host.default_routes() == before
    });
    assert!(!guard.get("/metrics").1.contains("hostguard_links_down{"));
}

#[test]
fn sighup_rereads_the_entry_and_sigterm_exits_0() {
    let node = Node::new("gS");
    node.host.ip("rule add pref 300 lookup 99");
    let mut guard = Guard::start(&node, json!({}), 0);
    // Not guarded yet: the deletion stays.
    node.host.ip("rule del pref 300");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!node.host.ip("rule show").contains("lookup 99"));
    node.host.ip("rule add pref 300 lookup 99");
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&guard.entry).unwrap()).unwrap();
    entry["rules"] = json!({"match": [{"table": 99}]});
    std::fs::write(&guard.entry, entry.to_string()).unwrap();
    guard.signal(Signal::SIGHUP);
    guard.wait("the reload is logged", settled(5000), || {
        guard.logs().contains("SIGHUP: configuration re-read")
    });
    // A broken file on SIGHUP keeps the configuration in use.
    std::fs::write(&guard.entry, br#"{"routes":{"restor":1}}"#).unwrap();
    guard.signal(Signal::SIGHUP);
    guard.wait("the bad reload is refused", settled(5000), || {
        guard.logs().contains("keeping the configuration in use")
    });
    node.host.ip("rule del pref 300");
    guard.wait("the now-guarded rule is back", settled(5000), || {
        node.host
            .ip("rule show")
            .contains("300:\tfrom all lookup 99")
    });
    guard.signal(Signal::SIGTERM);
    let status = guard.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", guard.logs());
    for line in guard.logs().lines() {
        let json: Value = serde_json::from_str(line).expect("stdout is JSON lines");
        assert_eq!(json["verb"], "GUARD");
        assert!(json["ts"].is_string() && json["msg"].is_string());
    }
}

/// The daemon is stopped while 10,000 routes come and go and eth0's default is deleted: its
/// notification queue overruns, and on waking it resynchronizes and repairs.
#[test]
fn an_overrun_while_stopped_ends_in_a_resync_and_the_right_state() {
    let node = Node::dual_homed("gO");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 100);
    let before = node.host.all_routes();
    guard.signal(Signal::SIGSTOP);
    let batch = common::TempDir::new("batch");
    let mut add = String::new();
    let mut del = String::new();
    for n in 0..10_000u32 {
        let net = format!("10.{}.{}.0/24", 100 + n / 256, n % 256);
        add.push_str(&format!("route add {net} dev eth1\n"));
        del.push_str(&format!("route del {net} dev eth1\n"));
    }
    std::fs::write(batch.join("add"), add).unwrap();
    std::fs::write(batch.join("del"), del).unwrap();
    node.host
        .ip(&format!("-batch {}", batch.join("add").display()));
    node.host
        .ip("route del default via 172.26.0.1 dev eth0 proto static");
    node.host
        .ip(&format!("-batch {}", batch.join("del").display()));
    guard.signal(Signal::SIGCONT);
    let took = guard.wait("eth0's default is back", settled(10_000), || {
        node.host.all_routes() == before
    });
    println!("after SIGCONT: restored in {took:?}");
    assert!(guard.metric("hostguard_event_overruns_total") >= 1.0);
    assert_eq!(guard.get("/readyz").0, 200);
}

#[test]
fn idle_costs_next_to_nothing() {
    let node = Node::dual_homed("gI");
    node.case_a();
    let guard = Guard::start(&node, json!({"rules": {"match": [{"table": 77}]}}), 100);
    let cpu_before = guard.cpu();
    std::thread::sleep(Duration::from_secs(10));
    let idle = guard.cpu() - cpu_before;
    // Some work, then the peak RSS over the whole life.
    node.host
        .ip("route del default via 172.26.0.1 dev eth0 proto static");
    guard.wait("restored", settled(5000), || {
        guard.metric("hostguard_routes_missing") == 0.0 && node.host.default_routes().len() == 2
    });
    println!(
        "idle 10 s: {idle:?} CPU; peak RSS {} KiB",
        guard.peak_rss_kib()
    );
    // Zero polling: with clock ticks of 10 ms, idle must not even reach a few ticks.
    assert!(idle <= Duration::from_millis(50), "{idle:?}");
}

#[test]
fn bad_arguments_and_configs_exit_with_a_message() {
    let out = Command::new(BIN).args(["guard"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plugin-config"));
    let dir = common::TempDir::new("gbad");
    let path = dir.join("entry.json");
    std::fs::write(&path, br#"{"rules":{"match":[{}]}}"#).unwrap();
    let out = Command::new(BIN)
        .args(["guard", "--plugin-config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rules.match[0]"),
        "{out:?}"
    );
    let out = Command::new(BIN)
        .args(["guard", "--conf-dir"])
        .arg(&dir.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hostguard install"));
}
