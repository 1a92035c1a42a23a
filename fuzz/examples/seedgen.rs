//! Writes the seed corpora under `fuzz/seeds/<target>/` from the repository's `testdata/` and from
//! a private network namespace (real kernel messages for links, addresses, default routes and
//! rules). Run by `scripts/fuzz.sh --seeds`; the result is committed so that fuzzing starts from
//! the shapes hostguard meets on a node.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use hostguard::netlink::{Netlink, RouteFilter};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde_json::{json, Value};

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

struct Seeds {
    root: PathBuf,
}

impl Seeds {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("mkdir seeds");
        fs::write(dir.join(name), bytes).expect("write seed");
    }
}

fn prev_result(version: &str) -> Value {
    let mut ip = json!({"address": "10.88.0.5/24", "gateway": "10.88.0.1", "interface": 2});
    if version.starts_with("0.") {
        ip["version"] = "4".into();
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/x"}
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.88.0.1"]}
    })
}

fn full_config(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": "k8s-pod-network",
        "type": "hostguard",
        "logFile": "/var/log/hostguard.log",
        "logLevel": "debug",
        "stateDir": "/var/lib/cni/hostguard",
        "routes": {"restore": true},
        "rules": {"match": [{"priority": 100, "table": 77, "src": "10.244.0.0/16",
                             "fwmark": 1, "iif": "eth0", "protocol": "static"}],
                  "restore": true},
        "uplink": {"interface": "eth1", "bridge": "br-sec"},
        "refuse": {"team": true, "networkManager": true},
        "networkManager": {"runDir": "/run/NetworkManager", "confDir": "/etc/NetworkManager"},
        "waitFor": {"interfaces": [{"name": "tunl0", "up": true, "cidr": "10.244.0.0/16"}],
                    "timeoutMs": 15000},
        "prevResult": prev_result(version),
    })
}

fn cni(seeds: &Seeds) {
    for version in VERSIONS {
        let full = full_config(version);
        seeds.put(
            "cni_config",
            &format!("full-{version}"),
            full.to_string().as_bytes(),
        );
        let minimal = json!({"cniVersion": version, "name": "n", "type": "hostguard",
                             "prevResult": prev_result(version)});
        seeds.put(
            "cni_config",
            &format!("minimal-{version}"),
            minimal.to_string().as_bytes(),
        );
        for verb in ["ADD", "CHECK", "DEL", "STATUS", "GC", "VERSION"] {
            let mut conf = if verb == "ADD" || verb == "CHECK" {
                minimal.clone()
            } else {
                json!({"cniVersion": version, "name": "n", "type": "hostguard"})
            };
            if verb == "GC" {
                conf["cni.dev/valid-attachments"] =
                    json!([{"containerID": "c1", "ifname": "eth0"}]);
            }
            if verb == "ADD" && version == "1.1.0" {
                conf["rules"] = json!({"match": [{"priority": 32766}]});
                conf["waitFor"] = json!({"interfaces": [{"name": "lo"}], "timeoutMs": 10});
            }
            let mut input =
                format!("{verb}\0c1\0/run/netns/x\0eth0\0K8S_POD_NAME=a\0").into_bytes();
            input.extend_from_slice(conf.to_string().as_bytes());
            seeds.put("cni_invocation", &format!("{verb}-{version}"), &input);
        }
    }
    let gc_old = json!({"cniVersion": "1.1.0", "name": "n", "type": "hostguard",
                        "cni.dev/attachments": [{"containerID": "c", "ifname": "e"}]});
    seeds.put("cni_config", "gc-old-key", gc_old.to_string().as_bytes());
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => files_under(&path, out),
            Ok(kind) if kind.is_file() => out.push(path),
            _ => {}
        }
    }
}

fn install(seeds: &Seeds, testdata: &Path) {
    let mut files = Vec::new();
    files_under(&testdata.join("install"), &mut files);
    files_under(&testdata.join("e2e"), &mut files);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let selector = if name.ends_with(".conflist") {
            0u8
        } else {
            1u8
        };
        let mut input = vec![selector];
        input.extend(fs::read(&path).expect("read testdata"));
        seeds.put("conflist", &name, &input);
    }
}

fn config_files(seeds: &Seeds, testdata: &Path) {
    let doctor = testdata.join("doctor");
    let mut files = Vec::new();
    files_under(&doctor, &mut files);
    for path in &files {
        let rel = path
            .strip_prefix(&doctor)
            .unwrap()
            .to_string_lossy()
            .replace('/', "_");
        seeds.put("keyfile", &rel, &fs::read(path).expect("read testdata"));
    }
    // One config_dirs seed per doctor case: the files that case has, at the fields' positions.
    let Ok(cases) = fs::read_dir(&doctor) else {
        return;
    };
    for case in cases.flatten().filter(|e| e.path().is_dir()) {
        let root = case.path();
        let read = |rel: &str| fs::read(root.join(rel)).unwrap_or_default();
        let first_in = |rel: &str| {
            let mut found = Vec::new();
            files_under(&root.join(rel), &mut found);
            found.sort();
            found
                .first()
                .map(|p| fs::read(p).unwrap_or_default())
                .unwrap_or_default()
        };
        let fields = [
            read("etc/NetworkManager/NetworkManager.conf"),
            first_in("etc/NetworkManager/conf.d"),
            first_in("run/NetworkManager/conf.d"),
            b"[device]\nmanaged=true\n".to_vec(),
            read("etc/systemd/networkd.conf"),
            first_in("etc/systemd/networkd.conf.d"),
        ];
        let input = fields.join(&0u8);
        let name = case.file_name().to_string_lossy().into_owned();
        seeds.put("config_dirs", &name, &input);
    }
}

fn state(seeds: &Seeds) {
    let baseline = json!({
        "version": 1,
        "routes": [
            {"family": "inet", "table": 254, "metric": 100, "protocol": 4, "scope": 0, "type": 1,
             "gateway": "172.26.0.1", "dev": "eth0", "onlink": true, "prefsrc": "172.26.0.3",
             "metrics": {"mtu": 1400, "advmss": 1360, "lock": 2}, "congctl": "cubic"},
            {"family": "inet", "table": 1000, "metric": 0, "protocol": 3, "scope": 0, "type": 1,
             "gateway": "10.0.0.1", "dev": "eth1"},
            {"family": "inet6", "table": 254, "metric": 1024, "protocol": 9, "scope": 0, "type": 1,
             "pref": 1, "nexthops": [
                {"gateway": "fe80::1", "dev": "eth0", "weight": 1},
                {"gateway": "fe80::2", "dev": "eth1", "weight": 3, "onlink": true}]},
            {"family": "inet", "table": 254, "metric": 0, "protocol": 4, "scope": 0, "type": 6}
        ],
        "rules": [
            {"rule": "from 10.244.0.0/16 lookup 77 pref 100", "family": "inet",
             "message": "0200100000000000004d00010800060064000000080002000af40000080006004d000000"}
        ]
    });
    let mut input = vec![0u8];
    input.extend(serde_json::to_vec_pretty(&baseline).unwrap());
    seeds.put("state_files", "baseline", &input);
    let record = json!({"version": 1, "containerID": "c1", "ifname": "eth0",
                        "netns": "/run/netns/x", "network": "n", "created_unix": 1});
    let mut input = vec![1u8];
    input.extend(serde_json::to_vec(&record).unwrap());
    seeds.put("state_files", "attachment", &input);
}

fn hex_fixture(path: &Path) -> Vec<u8> {
    let text = fs::read_to_string(path).expect("read hex fixture");
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| c.is_ascii_hexdigit()))
        .collect();
    (0..digits.len() / 2)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args}");
}

fn frame(msg: RouteNetlinkMessage) -> Vec<u8> {
    let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let mut bytes = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut bytes);
    bytes
}

/// Builds links, addresses, default routes and rules in a namespace of this process's own (the
/// `ip` children inherit it) and records what the kernel reports, one datagram-like seed per kind.
fn netlink(seeds: &Seeds, testdata: &Path) {
    let mut fixtures = Vec::new();
    files_under(&testdata.join("netlink"), &mut fixtures);
    let mut all_links = Vec::new();
    for path in fixtures
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
    {
        let bytes = hex_fixture(path);
        all_links.extend_from_slice(&bytes);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        seeds.put("netlink_messages", &name, &bytes);
    }
    seeds.put("netlink_messages", "all-fixture-links", &all_links);

    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    for cmd in [
        "link set lo up",
        "link add v0 type veth peer name v1",
        "link add br0 type bridge",
        "link set v1 master br0",
        "link set v0 up",
        "link set v1 up",
        "link set br0 up",
        "addr add 172.26.0.3/24 dev v0",
        "addr add fd00::3/64 dev v0 nodad",
        "addr add 10.244.0.1/16 dev br0",
        "route add default via 172.26.0.1 dev v0 metric 100 mtu 1400 advmss 1360 congctl cubic",
        "route add default via 172.26.0.9 dev v0 table 1000 onlink",
        "route add default dev br0 metric 300 src 10.244.0.1",
        "route add blackhole default metric 4000",
        "-6 route add default metric 1024 pref high nexthop via fd00::1 dev v0 weight 1 nexthop via fd00::2 dev v0 weight 3",
        "rule add from 10.244.0.0/16 table 77 pref 100",
        "rule add fwmark 0x10/0xff iif v0 table 1000 pref 200",
        "-6 rule add to fd00::/64 table 77 pref 300 protocol static",
    ] {
        ip(cmd);
    }
    let mut nl = Netlink::new().expect("netlink socket");
    let mut datagram = Vec::new();
    for link in nl.links().expect("links") {
        datagram.extend(frame(RouteNetlinkMessage::NewLink(link)));
    }
    seeds.put("netlink_messages", "kernel-links", &datagram);
    let mut datagram = Vec::new();
    for addr in nl.addresses(None, None).expect("addresses") {
        datagram.extend(frame(RouteNetlinkMessage::NewAddress(addr)));
    }
    seeds.put("netlink_messages", "kernel-addresses", &datagram);
    let filter = RouteFilter {
        default_only: true,
        ..RouteFilter::default()
    };
    for (i, route) in nl.routes(&filter).expect("routes").into_iter().enumerate() {
        seeds.put(
            "netlink_messages",
            &format!("kernel-default-route-{i}"),
            &frame(RouteNetlinkMessage::NewRoute(route)),
        );
    }
    let mut datagram = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        for rule in nl.rules(family).expect("rules") {
            datagram.extend(frame(RouteNetlinkMessage::NewRule(rule)));
        }
    }
    seeds.put("netlink_messages", "kernel-rules", &datagram);
}

/// Uplink journals as a killed attach leaves them: the release binary is run (in this process's
/// namespace, set up by `netlink`) with the uplink code's own crash hook after several steps. The
/// hook exists only in a build with the `fault-injection` feature.
fn journals(seeds: &Seeds, repo: &Path) {
    let bin = repo.join("target/release/hostguard");
    if !bin.exists() {
        eprintln!(
            "no {}: journal seeds skipped (cargo build --release --features fault-injection)",
            bin.display()
        );
        return;
    }
    for cmd in [
        "link add eth1 type veth peer name p1",
        "link set eth1 up",
        "addr add 172.27.0.3/24 dev eth1",
        "-6 addr add fd01::3/64 dev eth1 nodad",
        "route add default via 172.27.0.1 dev eth1 table 100",
        "route add 10.9.0.0/16 via 172.27.0.1 dev eth1",
    ] {
        ip(cmd);
    }
    let state = PathBuf::from(format!("/dev/shm/hg-seedgen-{}", std::process::id()));
    let run = |verb: &str, conf: &Value, crash_after: Option<usize>| {
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", "c1")
            .env("CNI_NETNS", "/run/netns/none")
            .env("CNI_IFNAME", "eth0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(step) = crash_after {
            cmd.env("HOSTGUARD_TEST_CRASH_AFTER_STEP", step.to_string());
        }
        let mut child = cmd.spawn().expect("run hostguard");
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes());
        let _ = child.wait();
    };
    let conf = json!({"cniVersion": "1.1.0", "name": "n", "type": "hostguard",
                      "stateDir": state.display().to_string(),
                      "runDir": state.join("run").display().to_string(), "prevResult": {},
                      "uplink": {"interface": "eth1", "bridge": "br-seed"}});
    for step in [0, 2, 4, 6, 8] {
        let _ = fs::remove_dir_all(&state);
        run("ADD", &conf, Some(step));
        if let Ok(journal) = fs::read(state.join("uplink-journal.json")) {
            let mut input = vec![2u8];
            input.extend(journal);
            seeds.put("state_files", &format!("journal-after-step-{step}"), &input);
        }
        // DEL recovers (rolls back) so the next attempt starts from the same host.
        run("DEL", &conf, None);
    }
    let _ = fs::remove_dir_all(&state);
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let testdata = repo.join("testdata");
    let seeds = Seeds {
        root: repo.join("fuzz/seeds"),
    };
    let _ = fs::remove_dir_all(&seeds.root);
    cni(&seeds);
    install(&seeds, &testdata);
    config_files(&seeds, &testdata);
    state(&seeds);
    netlink(&seeds, &testdata);
    journals(&seeds, &repo);
    println!("seeds written to {}", seeds.root.display());
}
