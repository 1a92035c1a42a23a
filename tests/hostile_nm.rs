//! Hostile files among NetworkManager's: FIFOs, endless devices and symlink loops planted in its
//! run and configuration directories while it runs. ADD reads them to decide whether a link may
//! be touched; it must never block on one, and when it cannot tell, it must not touch the link
//! (refusing is the safe way to be wrong) and say why.
//!
//! In a binary of its own: it starts a stand-in NetworkManager process, which every hostguard
//! running meanwhile in that namespace would see (see tests/refusal_nm.rs).

use crate::common;
use crate::hostile_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use hostile_support::{mkfifo, tree, Node};
use serde_json::json;

const ROUTE: &str = "default via 172.26.0.1 dev eth0 metric 100";

#[test]
fn planted_network_manager_files_never_block_add_and_refuse_safely() {
    let node = Node::new("nmfiles");
    let nm = common::FakeNetworkManager::start(&node.host);
    let eth0 = node.host.ifindex("eth0");
    nm.device(eth0, false);
    let conf = node.conf("1.1.0", json!({ "networkManager": nm.config() }));
    node.call("ADD", "c0").config(&conf).run().ok();
    let run = nm.run_dir.path.clone();
    let etc = nm.conf_dir.path.clone();
    let record = run.join(format!("devices/{eth0}"));
    type Plant = Box<dyn Fn()>;
    let cases: Vec<(&str, Plant)> = vec![
        ("the device record is a FIFO", {
            let record = record.clone();
            Box::new(move || {
                fs::remove_file(&record).unwrap();
                mkfifo(&record);
            })
        }),
        ("NetworkManager.conf is a FIFO", {
            let etc = etc.clone();
            Box::new(move || mkfifo(&etc.join("NetworkManager.conf")))
        }),
        ("a conf.d file is a FIFO", {
            let etc = etc.clone();
            Box::new(move || {
                fs::create_dir_all(etc.join("conf.d")).unwrap();
                mkfifo(&etc.join("conf.d/10-fifo.conf"));
            })
        }),
        ("a run conf.d file links to /dev/zero", {
            let run = run.clone();
            Box::new(move || {
                fs::create_dir_all(run.join("conf.d")).unwrap();
                symlink("/dev/zero", run.join("conf.d/10-zero.conf")).unwrap();
            })
        }),
        ("a conf.d file is a symlink loop", {
            let etc = etc.clone();
            Box::new(move || {
                fs::create_dir_all(etc.join("conf.d")).unwrap();
                let loop_ = etc.join("conf.d/20-loop.conf");
                symlink(&loop_, &loop_).unwrap();
            })
        }),
        ("the pid file is a FIFO", {
            let run = run.clone();
            Box::new(move || {
                fs::remove_file(run.join("NetworkManager.pid")).unwrap();
                mkfifo(&run.join("NetworkManager.pid"));
            })
        }),
    ];
    for (what, plant) in &cases {
        plant();
        let planted_run = tree(&run);
        let planted_etc = tree(&etc);
        node.host.ip(&format!("route del {ROUTE}"));
        let add = node
            .call("ADD", "c1")
            .config(&conf)
            .run_within(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{what}: ADD hung"));
        assert_eq!(add.status, 0, "{what}: {add:?}");
        let restored = node
            .host
            .default_routes()
            .iter()
            .any(|r| r.contains("default via 172.26.0.1 dev eth0") && r.contains("metric 100"));
        let check = node.call("CHECK", "c1").config(&conf).run();
        if restored {
            check.ok();
        } else {
            // Not restored: the reason is on stderr, and CHECK reports the route.
            assert!(add.stderr.contains("not restored"), "{what}: {add:?}");
            check.error(100);
        }
        assert_eq!(
            planted_run,
            tree(&run),
            "{what}: NetworkManager's run dir changed"
        );
        assert_eq!(
            planted_etc,
            tree(&etc),
            "{what}: NetworkManager's conf dir changed"
        );
        // Back to a sane NetworkManager and a host with the route, for the next case.
        clean(&run, &etc, &record);
        if !restored {
            node.host.ip(&format!("route add {ROUTE}"));
        }
    }
}

fn clean(run: &Path, etc: &Path, record: &Path) {
    for dir in [run.join("conf.d"), etc.join("conf.d")] {
        let _ = fs::remove_dir_all(dir);
    }
    let _ = fs::remove_file(etc.join("NetworkManager.conf"));
    let _ = fs::remove_file(record);
    fs::write(record, "[device]\nmanaged=false\n").unwrap();
    let pid = run.join("NetworkManager.pid");
    if fs::symlink_metadata(&pid).is_ok_and(|m| !m.is_file()) {
        fs::remove_file(&pid).unwrap();
    }
}
