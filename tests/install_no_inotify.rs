//! Without inotify, install must fail loudly rather than wait or watch blind (a Linkerd installer
//! kept running without it and later lost its config). This file holds one test on purpose: it
//! lowers the open-file limit of the whole test process, which would break tests running beside it.

use std::fs;

#[test]
fn install_fails_when_inotify_cannot_be_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("net.d");
    fs::create_dir(&conf).unwrap();
    fs::write(
        conf.join("10-calico.conflist"),
        br#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"calico"}]}"#,
    )
    .unwrap();
    let args: Vec<String> = [
        "--conf-dir",
        conf.to_str().unwrap(),
        "--watch",
        "--timeout",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // The lowest free descriptor is `first_free`; with the limit there, no new descriptor can be
    // allocated, so inotify_init1 fails with EMFILE.
    let probe = fs::File::open("/dev/null").unwrap();
    let first_free = std::os::fd::AsRawFd::as_raw_fd(&probe) as u64;
    drop(probe);
    let mut old = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut old), 0);
    }
    let lowered = nix::libc::rlimit {
        rlim_cur: first_free,
        rlim_max: old.rlim_max,
    };
    unsafe {
        assert_eq!(nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lowered), 0);
    }
    let status = hostguard::install::run_install(&args);
    let watcher = hostguard::install::watch::Watcher::new(&conf).map(|_| ());
    unsafe {
        assert_eq!(nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &old), 0);
    }

    assert_eq!(status, 1);
    assert!(!conf.join("00-hostguard.conflist").exists());
    let message = format!("{:#}", watcher.unwrap_err());
    assert!(message.contains("cannot initialise inotify"), "{message}");
    assert!(message.contains("max_user_instances"), "{message}");
}
