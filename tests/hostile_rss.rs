//! 64 MiB on stdin: refused at the 1 MiB cap without reading the rest and without the memory to
//! hold it. Alone in its binary on purpose: the peak RSS of children (`getrusage(RUSAGE_CHILDREN)`)
//! is per process, so no other test's children may run beside it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use nix::libc;

const SENT: usize = 64 << 20;
const CAP: usize = 1 << 20;

fn peak_rss_of_children_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given and nothing else.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialized by the successful call above.
    unsafe { usage.assume_init() }.ru_maxrss
}

#[test]
fn sixty_four_mib_on_stdin_is_refused_with_bounded_reading_and_memory() {
    let host = common::Netns::new("rss");
    let dir = common::TempDir::new("rss");
    let conf_head = format!(
        r#"{{"cniVersion":"1.0.0","name":"n","type":"hostguard","stateDir":"{}","runDir":"{}","pad":""#,
        dir.join("state").display(),
        dir.join("run").display()
    );
    let before_kib = peak_rss_of_children_kib();
    let mut child = common::Cni::attach("ADD", "c1", Path::new("/run/netns/none"), "eth0")
        .in_ns(&host)
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    let mut written = 0usize;
    let mut chunk = conf_head.into_bytes();
    chunk.resize(64 << 10, b'a');
    while written < SENT {
        match stdin.write(&chunk) {
            Ok(n) => written += n,
            // The plugin stopped reading and went away: what we got rid of is what it read,
            // plus what the pipe buffered.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(err) => panic!("write stdin: {err}"),
        }
        chunk.fill(b'a');
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let peak_kib = peak_rss_of_children_kib();
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err["code"], 6, "{err}");
    assert!(
        err["msg"].as_str().unwrap().contains("larger than"),
        "{err}"
    );
    // Read: the cap plus at most a pipe's buffer (64 KiB by default, 1 MiB at most).
    assert!(
        written <= CAP + (2 << 20),
        "{written} bytes of {SENT} went into the pipe before it was closed"
    );
    // Memory: the binary itself plus the capped buffer, nowhere near what was sent.
    assert!(
        peak_kib < 16 * 1024,
        "peak RSS of hostguard was {peak_kib} KiB (before: {before_kib} KiB)"
    );
    assert!(!dir.join("state").exists());
    // Reported, not asserted: tests make no timing claims.
    eprintln!(
        "64 MiB stdin: refused after {:.1} ms, {} KiB taken from the pipe, peak RSS {peak_kib} KiB",
        elapsed.as_secs_f64() * 1e3,
        written >> 10
    );
}
