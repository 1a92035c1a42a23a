//! NetworkManager and systemd-networkd configuration as files on disk, read the way hostguard
//! reads them on a node: `NmConfig::load` and its decision for several devices, `nm_verdict` with
//! a live (fake) NetworkManager and a device record, and the doctor's whole examination and
//! `--fix` under a scratch root. Files are written below a tmpfs scratch directory only.
//!
//! Input, NUL-separated: NetworkManager.conf, conf.d/10-admin.conf (etc), conf.d/20-run.conf
//! (run), devices/7 (the device record), networkd.conf, networkd.conf.d/50-x.conf. An empty field
//! leaves that file out.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use hostguard::doctor;
use hostguard::host::nm::{self, DeviceMatch, LinkFacts, NmConfig, NmPaths};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 6] = [
    "etc/NetworkManager/NetworkManager.conf",
    "etc/NetworkManager/conf.d/10-admin.conf",
    "run/NetworkManager/conf.d/20-run.conf",
    "run/NetworkManager/devices/7",
    "etc/systemd/networkd.conf",
    "etc/systemd/networkd.conf.d/50-x.conf",
];

fn root() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| hostguard_fuzz::scratch("config-dirs"))
}

fuzz_target!(|data: &[u8]| {
    let root = root();
    let _ = fs::remove_dir_all(root);
    for (rel, body) in FILES.iter().zip(hostguard_fuzz::fields(data, FILES.len())) {
        if body.is_empty() {
            continue;
        }
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, body).expect("write");
    }
    // A live NetworkManager as nm_verdict looks for it: a pid file and /proc/<pid>/comm.
    fs::create_dir_all(root.join("proc/4242")).expect("mkdir proc");
    fs::write(root.join("proc/4242/comm"), b"NetworkManager\n").expect("comm");
    fs::create_dir_all(root.join("run/NetworkManager")).expect("mkdir run");
    fs::write(
        root.join("run/NetworkManager/NetworkManager.pid"),
        b"4242\n",
    )
    .expect("pid");

    let paths = NmPaths::under_root(root);
    if let Ok(config) = NmConfig::load(&paths) {
        for (name, kind) in [
            ("eth0", "ethernet"),
            ("cali1234", "veth"),
            ("team0", "team"),
        ] {
            let _ = config.decide(&DeviceMatch {
                interface_name: name.into(),
                device_type: Some(kind.into()),
                hwaddr: nm::parse_hwaddr("52:54:00:12:34:56"),
            });
        }
        assert!(config.files.len() <= 3);
    }
    let link = LinkFacts::new("eth0", 7, Some("52:54:00:12:34:56"), None);
    if let Ok(verdict) = nm::nm_verdict(&paths, &link) {
        assert!(!verdict.evidence().is_empty());
    }
    let exam = doctor::examine(root);
    for finding in &exam.findings {
        assert!(!finding.id.is_empty());
    }
    let _ = doctor::fix(root);
});
