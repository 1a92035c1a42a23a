//! The process entry. A plugin process lives about a millisecond and runs once per pod and verb,
//! so start-up is most of what it costs. Two pieces of the usual Rust start-up are
//! dropped because they cost more than the rest of a VERSION call:
//! - std's `main` wrapper finds the main thread's stack guard through glibc, which reads and
//!   parses `/proc/self/maps` (about 100 µs here). Its only use is the "has overflowed its stack"
//!   message; without it an overflow is still a crash (SIGSEGV), just a terser one.
//! - `libgcc_s.so.1`, which std loads for unwinding, runs CPU-feature probes (`cpuid`, a trap
//!   under a hypervisor) when loaded (about 110 µs). build.rs links the same unwinder statically.
//!
//! What std's wrapper did that hostguard relies on is done here: fds 0–2 are guaranteed open,
//! and SIGPIPE is ignored so a closed stdout is an error, not a silent death.

#![no_main]

use std::ffi::{c_char, c_int};

// The static unwinder (libgcc_eh.a, the archive `gcc -static-libgcc` uses) is named here, in the
// binary, so that it comes before std's `-lgcc_s` on the link line and the shared one is left
// out; the library and the test binaries keep the default. build.rs sets the cfg only when the
// toolchain has the archive and the build is not already fully static.
#[cfg_attr(
    hostguard_static_unwinder,
    link(name = "gcc_eh", kind = "static", modifiers = "-bundle")
)]
extern "C" {}

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if let Err(err) = prepare_process() {
        // stderr may be the very descriptor that is missing; the exit status still tells.
        eprintln!("hostguard: cannot start: {err}");
        return 1;
    }
    // Arguments and environment come from std: on glibc it captures them before `main` runs.
    let status = std::panic::catch_unwind(|| {
        // The runtime sets CNI_COMMAND; an operator at a shell does not.
        if std::env::var_os("CNI_COMMAND").is_some() {
            hostguard::cni::run()
        } else {
            // std::env::args would panic on an argument that is not UTF-8: a usage error here.
            match hostguard::args::utf8(std::env::args_os().skip(1).collect()) {
                Ok(args) => hostguard::cli::run(&args),
                Err(why) => {
                    eprintln!("hostguard: {why}");
                    2
                }
            }
        }
    })
    // The panic hook has printed the message; 101 is what a Rust program exits with then.
    .unwrap_or(101);
    // process::exit flushes std's stdout buffer; returning from a foreign `main` would not.
    std::process::exit(status)
}

/// A runtime or a shell may start hostguard with stdin, stdout or stderr closed. The first file
/// hostguard opens (a state record, the log) would then get that descriptor, and a reply or a
/// message would land inside it; /dev/null takes the empty places first.
fn prepare_process() -> nix::Result<()> {
    use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
    use nix::sys::signal::{signal, SigHandler, Signal};
    use nix::sys::stat::Mode;
    use std::os::fd::{BorrowedFd, IntoRawFd};

    for fd in 0..=2 {
        // SAFETY: only asks the kernel about the descriptor number; nothing is read or closed.
        let probe = unsafe { BorrowedFd::borrow_raw(fd) };
        if fcntl(probe, FcntlArg::F_GETFD) == Err(nix::errno::Errno::EBADF) {
            // open returns the lowest free descriptor, which is `fd`: the lower ones are open.
            // It must stay open for the life of the process, so it is released from the OwnedFd.
            let _ = open("/dev/null", OFlag::O_RDWR, Mode::empty())?.into_raw_fd();
        }
    }
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }?;
    Ok(())
}
