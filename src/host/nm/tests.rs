use std::fs;
use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::time::Duration;

use netlink_packet_route::link::{LinkAttribute, LinkInfo};

use super::*;
use crate::netlink::{InfoKind, LinkMessage};

/// A fake NetworkManager tree in a temp dir: run/, etc/, lib/ and a fake proc/ with (optionally)
/// a "NetworkManager" process.
struct FakeNm {
    dir: PathBuf,
    paths: NmPaths,
}

impl FakeNm {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hg-nm-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let paths = NmPaths {
            run_dir: dir.join("run"),
            conf_dir: dir.join("etc"),
            lib_dir: dir.join("lib"),
            proc_dir: dir.join("proc"),
            root: PathBuf::from("/"),
        };
        for d in [
            &paths.run_dir,
            &paths.conf_dir,
            &paths.lib_dir,
            &paths.proc_dir,
        ] {
            fs::create_dir_all(d).unwrap();
        }
        FakeNm { dir, paths }
    }

    fn running(self) -> Self {
        self.process(4242, "NetworkManager")
    }

    fn process(self, pid: u32, comm: &str) -> Self {
        let d = self.paths.proc_dir.join(pid.to_string());
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        self
    }

    fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn record(&self, ifindex: u32, managed: &str) {
        self.write(
            &format!("run/devices/{ifindex}"),
            &format!("[device]\nmanaged={managed}\nconnection-uuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\n"),
        );
    }

    fn verdict(&self, link: &LinkFacts) -> NmVerdict {
        nm_verdict(&self.paths, link).unwrap()
    }
}

impl Drop for FakeNm {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn eth1() -> LinkFacts {
    LinkFacts::new("eth1", 3, Some("52:54:00:AB:CD:01"), None)
}

fn unmanaged(verdict: &NmVerdict) -> bool {
    matches!(verdict, NmVerdict::Unmanaged { .. })
}

#[test]
fn managed_true_record_while_running_is_managed() {
    let nm = FakeNm::new("managed-true").running();
    nm.record(3, "true");
    let verdict = nm.verdict(&eth1());
    assert_eq!(
        verdict,
        NmVerdict::Managed {
            evidence: "eth1 is managed by NetworkManager: devices/3 managed=true".into()
        }
    );
}

#[test]
fn managed_false_record_while_running_is_unmanaged_even_if_config_would_manage() {
    let nm = FakeNm::new("managed-false").running();
    nm.record(3, "false");
    let verdict = nm.verdict(&eth1());
    assert!(unmanaged(&verdict), "{verdict:?}");
    assert!(verdict.evidence().contains("devices/3 managed=false"));
    assert!(verdict.evidence().contains("again after a reboot"));
}

#[test]
fn stale_record_while_not_running_does_not_count() {
    let nm = FakeNm::new("stale");
    nm.record(3, "true");
    let verdict = nm.verdict(&eth1());
    assert!(
        matches!(verdict, NmVerdict::NotRunning { .. }),
        "{verdict:?}"
    );
    assert!(
        verdict.evidence().contains("devices/3 is left over"),
        "{verdict:?}"
    );
}

#[test]
fn pid_file_naming_another_process_is_not_running() {
    let nm = FakeNm::new("pidfile-other").process(77, "bash");
    nm.write("run/NetworkManager.pid", "77\n");
    nm.record(3, "true");
    assert!(matches!(nm.verdict(&eth1()), NmVerdict::NotRunning { .. }));
}

#[test]
fn pid_file_naming_networkmanager_is_running() {
    let nm = FakeNm::new("pidfile-nm").process(77, "NetworkManager");
    nm.write("run/NetworkManager.pid", "77");
    nm.record(3, "true");
    assert!(nm.verdict(&eth1()).is_managed());
}

#[test]
fn record_managed_true_wins_over_newer_unmanaged_config_and_says_reload() {
    let nm = FakeNm::new("record-vs-config").running();
    nm.record(3, "true");
    nm.write(
        "etc/conf.d/90-cni.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    let verdict = nm.verdict(&eth1());
    assert!(verdict.is_managed(), "{verdict:?}");
    assert!(verdict.evidence().contains("nmcli general reload conf"));
}

#[test]
fn no_record_and_no_config_while_running_is_managed() {
    let nm = FakeNm::new("default").running();
    let verdict = nm.verdict(&eth1());
    assert!(verdict.is_managed());
    assert!(verdict.evidence().contains("pid 4242"), "{verdict:?}");
}

#[test]
fn unmanaged_by_interface_name() {
    let nm = FakeNm::new("ifname").running();
    let conf = nm.write(
        "etc/NetworkManager.conf",
        "[main]\nplugins=keyfile\n\n[keyfile]\nunmanaged-devices=interface-name:eth1;interface-name:cali*\n",
    );
    let verdict = nm.verdict(&eth1());
    assert!(unmanaged(&verdict), "{verdict:?}");
    assert!(verdict.evidence().contains("\"interface-name:eth1\""));
    assert!(verdict.evidence().contains(&conf.display().to_string()));
    assert!(nm
        .verdict(&LinkFacts::new("eth2", 4, None, None))
        .is_managed());
}

#[test]
fn unmanaged_by_mac_any_case_and_bare_mac() {
    let nm = FakeNm::new("mac").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=mac:52:54:00:ab:cd:01\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=52-54-00-AB-CD-01\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=mac:52:54:00:ab:cd:02\n",
    );
    assert!(nm.verdict(&eth1()).is_managed());
}

#[test]
fn unmanaged_by_wildcards() {
    let nm = FakeNm::new("glob").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=interface-name:et?1\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=interface-name:=eth*\n",
    );
    assert!(
        nm.verdict(&eth1()).is_managed(),
        "'=' makes the name literal"
    );
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=*\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
}

#[test]
fn unmanaged_by_type() {
    let nm = FakeNm::new("type").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=type:team,type:veth\n",
    );
    assert!(unmanaged(&nm.verdict(&LinkFacts::new(
        "team0",
        4,
        None,
        Some("team")
    ))));
    assert!(unmanaged(&nm.verdict(&LinkFacts::new(
        "cali1",
        9,
        None,
        Some("veth")
    ))));
    assert!(nm.verdict(&eth1()).is_managed(), "eth1 is type ethernet");
}

#[test]
fn except_beats_positive_and_except_only_lists_match_the_rest() {
    let nm = FakeNm::new("except").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=*,except:interface-name:eth1\n",
    );
    assert!(nm.verdict(&eth1()).is_managed());
    assert!(unmanaged(
        &nm.verdict(&LinkFacts::new("eth2", 4, None, None))
    ));
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=except:interface-name:eth0\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
    assert!(nm
        .verdict(&LinkFacts::new("eth0", 2, None, None))
        .is_managed());
}

#[test]
fn conf_d_overrides_the_main_file() {
    let nm = FakeNm::new("confd-main").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    nm.write(
        "etc/conf.d/10-other.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth9\n",
    );
    assert!(nm.verdict(&eth1()).is_managed());
    let specs = unmanaged_specs(&nm.paths).unwrap();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].spec, "interface-name:eth9");
    assert!(specs[0].file.ends_with("etc/conf.d/10-other.conf"));
}

#[test]
fn later_conf_d_file_overrides_earlier_and_plus_equals_appends() {
    let nm = FakeNm::new("confd-order").running();
    nm.write(
        "etc/conf.d/20-b.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth9\n",
    );
    nm.write(
        "etc/conf.d/10-a.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    assert!(
        nm.verdict(&eth1()).is_managed(),
        "20-b.conf replaced the list"
    );

    nm.write(
        "etc/conf.d/20-b.conf",
        "[keyfile]\nunmanaged-devices+=interface-name:eth9\n",
    );
    let verdict = nm.verdict(&eth1());
    assert!(unmanaged(&verdict), "{verdict:?}");
    assert!(verdict.evidence().contains("10-a.conf"));
    let specs: Vec<String> = unmanaged_specs(&nm.paths)
        .unwrap()
        .into_iter()
        .map(|s| s.spec)
        .collect();
    assert_eq!(specs, ["interface-name:eth1", "interface-name:eth9"]);

    nm.write(
        "etc/conf.d/30-c.conf",
        "[keyfile]\nunmanaged-devices-=interface-name:eth1\n",
    );
    assert!(nm.verdict(&eth1()).is_managed());
}

#[test]
fn lib_and_run_conf_d_come_first_and_same_names_shadow() {
    let nm = FakeNm::new("shadow").running();
    nm.write(
        "lib/conf.d/50-cni.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
    nm.write("run/conf.d/50-cni.conf", "# shadows lib\n");
    assert!(nm.verdict(&eth1()).is_managed());
    nm.write(
        "run/conf.d/50-cni.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
    // The main file is read after lib and run conf.d, so it overrides them.
    nm.write("etc/NetworkManager.conf", "[keyfile]\nunmanaged-devices=\n");
    assert!(nm.verdict(&eth1()).is_managed());
}

#[test]
fn device_sections_managed_false_and_their_order() {
    let nm = FakeNm::new("device-sections").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[device-eth1]\nmatch-device=interface-name:eth1\nmanaged=false\n\n[device]\nmanaged=true\n",
    );
    let verdict = nm.verdict(&eth1());
    assert!(unmanaged(&verdict), "{verdict:?}");
    assert!(verdict.evidence().contains("[device-eth1]"));
    // A later file's section comes first.
    nm.write(
        "etc/conf.d/10-x.conf",
        "[device-all]\nmatch-device=*\nmanaged=1\n",
    );
    let verdict = nm.verdict(&eth1());
    assert!(verdict.is_managed(), "{verdict:?}");
    assert!(verdict.evidence().contains("[device-all]"));
    // stop-match ends the search at a matching section without managed=.
    nm.write(
        "etc/conf.d/10-x.conf",
        "[device-stop]\nmatch-device=interface-name:eth1\nstop-match=yes\n",
    );
    assert!(nm.verdict(&eth1()).is_managed());
}

#[test]
fn device_managed_true_does_not_override_unmanaged_devices() {
    let nm = FakeNm::new("device-vs-keyfile").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n[device]\nmatch-device=*\nmanaged=true\n",
    );
    assert!(unmanaged(&nm.verdict(&eth1())));
}

#[test]
fn disabled_snippet_is_skipped() {
    let nm = FakeNm::new("enable-false").running();
    nm.write(
        "etc/conf.d/10-off.conf",
        "[.config]\nenable=false\n[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    assert!(nm.verdict(&eth1()).is_managed());
}

#[test]
fn malformed_files_are_clear_errors() {
    let nm = FakeNm::new("malformed").running();
    nm.write(
        "etc/NetworkManager.conf",
        "[main]\nplugins=keyfile\nthis is not a key\n",
    );
    let err = format!("{:#}", nm_verdict(&nm.paths, &eth1()).unwrap_err());
    assert!(err.contains("NetworkManager.conf: line 3"), "{err}");
    assert!(err.contains("fix or remove it"), "{err}");

    let nm = FakeNm::new("malformed-record").running();
    nm.write("run/devices/3", "[device]\nmanaged=perhaps\n");
    let err = format!("{:#}", nm_verdict(&nm.paths, &eth1()).unwrap_err());
    assert!(err.contains("devices/3: line 2"), "{err}");

    let nm = FakeNm::new("binary").running();
    fs::create_dir_all(nm.paths.conf_dir.join("conf.d")).unwrap();
    fs::write(nm.paths.conf_dir.join("conf.d/x.conf"), b"\x00\xff\xfe").unwrap();
    let err = format!("{:#}", nm_verdict(&nm.paths, &eth1()).unwrap_err());
    assert!(err.contains("x.conf: line 1: not valid UTF-8"), "{err}");
}

#[test]
fn symlinked_conf_d_files_are_followed_and_dangling_ones_named() {
    let nm = FakeNm::new("symlink").running();
    let target = nm.write(
        "elsewhere/cni.conf",
        "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    );
    fs::create_dir_all(nm.paths.conf_dir.join("conf.d")).unwrap();
    symlink(&target, nm.paths.conf_dir.join("conf.d/50-cni.conf")).unwrap();
    assert!(unmanaged(&nm.verdict(&eth1())));

    symlink(
        nm.dir.join("missing"),
        nm.paths.conf_dir.join("conf.d/60-gone.conf"),
    )
    .unwrap();
    let err = format!("{:#}", nm_verdict(&nm.paths, &eth1()).unwrap_err());
    assert!(err.contains("60-gone.conf"), "{err}");
}

#[test]
fn fifo_in_conf_d_is_an_error_not_a_hang() {
    let nm = FakeNm::new("fifo").running();
    fs::create_dir_all(nm.paths.conf_dir.join("conf.d")).unwrap();
    nix::unistd::mkfifo(
        &nm.paths.conf_dir.join("conf.d/50-pipe.conf"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let paths = nm.paths.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(nm_verdict(&paths, &eth1()).map_err(|e| format!("{e:#}")));
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("nm_verdict hung on a FIFO");
    let err = outcome.unwrap_err();
    assert!(err.contains("50-pipe.conf is a FIFO"), "{err}");
}

#[test]
fn a_real_process_named_networkmanager_counts_as_running() {
    let nm = FakeNm::new("real-process");
    let binary = nm.dir.join("NetworkManager");
    fs::copy("/bin/sleep", &binary).unwrap();
    let mut child = std::process::Command::new(&binary)
        .arg("30")
        .spawn()
        .unwrap();
    let paths = NmPaths {
        proc_dir: PathBuf::from("/proc"),
        ..nm.paths.clone()
    };
    nm.write("run/NetworkManager.pid", &child.id().to_string());
    let found = find_process(&paths);
    let pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found, NmProcess::Running { pid });
    // Gone now: the pid file is stale.
    assert_ne!(find_process(&paths), NmProcess::Running { pid });
}

#[test]
fn split_specs_handles_separators_escapes_and_whitespace() {
    assert_eq!(
        split_specs(" interface-name:a , mac:00:11:22:33:44:55;type:veth;; "),
        ["interface-name:a", "mac:00:11:22:33:44:55", "type:veth"]
    );
    assert_eq!(
        split_specs(r"interface-name:a\,b,interface-name:c\sd\s"),
        ["interface-name:a,b", "interface-name:c d "]
    );
    assert!(split_specs("").is_empty());
}

#[test]
fn glob_matches_like_glib() {
    assert!(glob_match("cali*", "cali12ab"));
    assert!(glob_match("cali*", "cali"));
    assert!(!glob_match("cali*", "cal"));
    assert!(glob_match("*.calico", "vxlan.calico"));
    assert!(glob_match("e?h*1", "eth0.1"));
    assert!(!glob_match("eth?", "eth10"));
    assert!(glob_match("*a*b*", "xxaxxbxx"));
}

#[test]
fn tags_are_case_insensitive_and_unknown_tags_never_match() {
    let device = DeviceMatch::from(&eth1());
    assert!(matches!(
        match_specs(&["Interface-Name:eth1"], &device),
        SpecMatch::Match(_)
    ));
    assert_eq!(match_specs(&["driver:e1000"], &device), SpecMatch::NoMatch);
    assert_eq!(
        match_specs(&["eth1", "except:type:ethernet"], &device),
        SpecMatch::NegativeMatch("except:type:ethernet".into())
    );
}

#[test]
fn link_facts_from_messages_use_nm_type_names_and_permanent_mac() {
    let mut team = LinkMessage::default();
    team.header.index = 4;
    team.attributes = vec![
        LinkAttribute::IfName("team0".into()),
        LinkAttribute::Address(vec![0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Team)]),
    ];
    let facts = LinkFacts::from_message(&team).unwrap();
    assert_eq!(facts.nm_type, "team");
    assert_eq!(facts.mac.as_deref(), Some("52:54:00:12:34:56"));

    let mut nic = LinkMessage::default();
    nic.header.index = 3;
    nic.attributes = vec![
        LinkAttribute::IfName("eth1".into()),
        LinkAttribute::Address(vec![0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        LinkAttribute::PermAddress(vec![0x52, 0x54, 0, 0xab, 0xcd, 0x01]),
    ];
    let facts = LinkFacts::from_message(&nic).unwrap();
    assert_eq!(facts.nm_type, "ethernet");
    assert_eq!(facts.mac.as_deref(), Some("52:54:00:ab:cd:01"));
    assert_eq!(nm_type_for_kind(Some("ipip"), None), "ip-tunnel");
}

#[test]
fn a_procfs_of_a_private_pid_namespace_presumes_a_networkmanager_that_ran_since_boot() {
    // A mounted procfs has `self`; only the host's shows kthreadd as pid 2.
    let nm = FakeNm::new("private-pidns").process(2, "sh");
    fs::create_dir_all(nm.paths.proc_dir.join("self")).unwrap();
    assert_eq!(find_process(&nm.paths), NmProcess::NotRunning);
    nm.record(3, "true");
    assert_eq!(find_process(&nm.paths), NmProcess::Presumed);
    let verdict = nm.verdict(&eth1());
    assert!(verdict.is_managed(), "{verdict:?}");
    let host = FakeNm::new("host-pidns").process(2, "kthreadd");
    fs::create_dir_all(host.paths.proc_dir.join("self")).unwrap();
    host.record(3, "true");
    assert_eq!(find_process(&host.paths), NmProcess::NotRunning);
}
