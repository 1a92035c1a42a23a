//! `hostguard guard` against the real kernel, with no pod at all: the daemon runs inside a
//! throwaway host namespace, something deletes a route or rule, and it has to come back.
//! Timings (latency, CPU, RSS) are printed (`--nocapture`), never asserted tightly; outcomes are
//! asserted with generous bounded waits.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::guard::Guard;
use common::{Node, BIN};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

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

/// A fight holds back the fought route only: eth1's default, deleted while eth0's is in
/// back-off, comes back at once instead of waiting for eth0's hold to end.
#[test]
fn a_route_in_fight_back_off_holds_back_no_other_route() {
    let node = Node::dual_homed("gH");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 100);
    let eth0 = "route del default via 172.26.0.1 dev eth0 proto static";
    let started = Instant::now();
    // Fight until the back-off reaches its 4 s step, so the hold outlasts the rest of the test.
    while guard.metric("hostguard_fight_backoff_seconds") < 4.0 {
        assert!(
            started.elapsed() < settled(30_000),
            "no 4 s back-off:\n{}",
            guard.logs()
        );
        node.host.try_ip(eth0);
        std::thread::sleep(Duration::from_millis(20));
    }
    node.host.try_ip(eth0);
    let held_from = Instant::now();
    node.host
        .ip("route del default via 172.26.0.33 dev eth1 proto static");
    guard.wait("eth1's default is back", settled(3000), || {
        node.host
            .default_routes()
            .iter()
            .any(|l| l.contains("via 172.26.0.33 dev eth1"))
    });
    let eth0_back = node
        .host
        .default_routes()
        .iter()
        .any(|l| l.contains("via 172.26.0.1 dev eth0"));
    assert!(
        !eth0_back,
        "eth0's default came back within {:?} of its 4 s hold:\n{}",
        held_from.elapsed(),
        guard.logs()
    );
    let (code, why) = guard.get("/readyz");
    assert_eq!(code, 503, "{why}");
    assert!(
        why.contains("dev eth0") && why.contains("fight back-off"),
        "{why}"
    );
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

/// Incident 1's agent moves eth1 into a bridge on its own, in about 30 ms: eth1's default is
/// re-made on the bridge. The daemon must take the bridge's route as eth1's successor, not put
/// a route back onto the port, and be ready afterwards.
#[test]
fn an_uplink_moved_into_a_bridge_by_a_script_is_adopted_not_undone() {
    let node = Node::dual_homed("gU");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 100);
    let script = [
        "link add br-sec type bridge",
        "link set br-sec up",
        "link set eth1 master br-sec",
        "addr del 172.26.0.35/27 dev eth1",
        "addr add 172.26.0.35/27 dev br-sec",
        "route append default via 172.26.0.33 dev br-sec proto static",
    ];
    for step in script {
        node.host.ip(step);
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    let defaults = node.host.default_routes();
    assert!(
        defaults
            .iter()
            .any(|l| l.contains("via 172.26.0.33 dev br-sec")),
        "{defaults:?}"
    );
    assert!(
        defaults
            .iter()
            .any(|l| l.contains("via 172.26.0.1 dev eth0")),
        "{defaults:?}"
    );
    assert!(
        !defaults.iter().any(|l| l.contains("dev eth1")),
        "{defaults:?}"
    );
    guard.wait("ready with the route on the bridge", settled(5000), || {
        guard.get("/readyz").0 == 200
    });
    assert_eq!(
        guard.metric("hostguard_restores_total{kind=\"route\"}"),
        0.0
    );
}

/// The DaemonSet runs the daemon in a container with a PID namespace of its own, where the
/// host's NetworkManager process is invisible. A NetworkManager-managed link going down must
/// still be recognised as one (and logged and counted, never touched).
#[test]
fn networkmanager_is_recognised_from_a_private_pid_namespace() {
    let node = Node::dual_homed("gN");
    node.case_a();
    let nm = common::FakeNetworkManager::start(&node.host);
    node.host.ip("link add nm0 type veth peer name nm0p");
    node.host.ip("link set nm0 up");
    nm.device(node.host.ifindex("nm0"), true);
    let guard = Guard::start_in(
        &node.host,
        &node.state.path,
        json!({"networkManager": nm.config()}),
        100,
        &["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
    );
    node.host.ip("link set nm0 down");
    guard.wait(
        "nm0 counted as a watched link that is down",
        settled(5000),
        || {
            guard
                .get("/metrics")
                .1
                .contains("hostguard_links_down{link=\"nm0\"} 1")
        },
    );
    let logs = guard.logs();
    assert!(
        logs.contains("link nm0 went down (nm0 is managed by NetworkManager"),
        "{logs}"
    );
    assert!(!node.host.ip("link show nm0").contains(",UP"));
}

/// The rule half of a fight: networkd-like deletions of a guarded rule right after each restore
/// end in a back-off, not a loop, and the rule is back once they stop.
#[test]
fn a_rule_fight_backs_off_too() {
    let node = Node::new("gRF");
    node.host
        .ip("rule add pref 100 from 10.244.0.0/16 lookup 77");
    let guard = Guard::start(&node, json!({"rules": {"match": [{"table": 77}]}}), 0);
    let started = Instant::now();
    let mut peak_backoff: f64 = 0.0;
    let mut held_answers = Vec::new();
    for n in 0..150 {
        let _ = node
            .host
            .try_ip("rule del pref 100 from 10.244.0.0/16 lookup 77");
        if n % 10 == 0 {
            let backoff = guard.metric("hostguard_fight_backoff_seconds");
            peak_backoff = peak_backoff.max(backoff);
            if backoff > 0.0 && !node.host.ip("rule show").contains("lookup 77") {
                held_answers.push(guard.get("/readyz"));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let restores = guard.metric("hostguard_restores_total{kind=\"rule\"}");
    println!(
        "rule fight for {:?}: {restores} restores, peak back-off {peak_backoff} s",
        started.elapsed()
    );
    assert!(peak_backoff >= 1.0, "no back-off seen:\n{}", guard.logs());
    assert!(restores <= 10.0, "{restores} restores:\n{}", guard.logs());
    // While the rule is missing and held, the node is not ready, and says why.
    assert!(!held_answers.is_empty());
    assert!(
        held_answers
            .iter()
            .any(|(code, why)| *code == 503 && why.contains("fight back-off")),
        "{held_answers:?}"
    );
    guard.wait("the rule is back after the fight", settled(70_000), || {
        node.host
            .ip("rule show")
            .contains("from 10.244.0.0/16 lookup 77")
    });
}

/// With `--conf-dir` the daemon reads the entry `hostguard install` chained into the conflist a
/// runtime loads: one configuration for the plugin and the daemon.
#[test]
fn with_conf_dir_the_daemon_guards_what_the_installed_entry_says() {
    let node = Node::new("gC");
    node.host.ip("rule add pref 120 lookup 88");
    let conf_dir = node.state.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("10-bridge.conflist"),
        json!({"cniVersion": "1.0.0", "name": "k8s", "plugins": [{"type": "bridge"}]}).to_string(),
    )
    .unwrap();
    let entry = node.state.join("entry.json");
    let state = node.state.join("state");
    std::fs::write(
        &entry,
        json!({
            "stateDir": state.display().to_string(),
            "runDir": common::run_dir(&state).display().to_string(),
            "rules": {"match": [{"table": 88}]}
        })
        .to_string(),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["install", "--timeout", "0", "--conf-dir"])
        .arg(&conf_dir)
        .arg("--plugin-config")
        .arg(&entry)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let args = ["--conf-dir".to_string(), conf_dir.display().to_string()];
    let guard = Guard::spawn(&node.host, &[], &args, entry);
    assert!(
        guard.logs().contains("00-hostguard.conflist"),
        "{}",
        guard.logs()
    );
    node.host.ip("rule del pref 120");
    guard.wait(
        "the rule the installed entry guards is back",
        settled(5000),
        || {
            node.host
                .ip("rule show")
                .contains("120:\tfrom all lookup 88")
        },
    );
    assert!(state.join("baseline.json").is_file());
}

/// An ADD and the daemon repairing the same loss at the same moment take the same locks: one of
/// them restores, the other finds nothing missing, and neither reports a failure.
#[test]
fn an_add_and_the_daemon_never_race_a_restore() {
    let node = Node::dual_homed("gK");
    node.case_a();
    let guard = Guard::start(&node, json!({}), 0);
    let before = node.host.all_routes();
    let conf = {
        let mut conf = node.chained_conf(json!({}));
        conf["stateDir"] = json!(node.state.join("state").display().to_string());
        conf["runDir"] = json!(common::run_dir(&node.state.join("state"))
            .display()
            .to_string());
        conf
    };
    for n in 0..10 {
        node.host
            .ip("route del default via 172.26.0.1 dev eth0 proto static");
        let out = node.attach("ADD", &format!("ctr{n}")).config(&conf).run();
        out.ok();
        assert!(
            !out.stderr.contains("not restored"),
            "ADD {n}: {}\n{}",
            out.stderr,
            guard.logs()
        );
        guard.wait("eth0's default is back", settled(5000), || {
            node.host.all_routes() == before
        });
    }
    let daemon = guard.metric("hostguard_restores_total{kind=\"route\"}");
    println!("10 losses repaired: {daemon} by the daemon, the rest by ADD");
    assert!(!guard.logs().contains("not restored"), "{}", guard.logs());
}
