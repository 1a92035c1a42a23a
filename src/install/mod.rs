//! `hostguard install` and `hostguard uninstall`: files in, files out.
//!
//! install waits (inotify, bounded) for the CNI config a runtime would load from the config
//! directory, checks it, and writes our own conflist that sorts before it: the upstream's keys and
//! plugins with exactly one hostguard entry appended. The upstream file is only ever read, except
//! in the co-tenancy mode (`--in-place`, see `inplace`), which edits only our entry in the list a
//! runtime loads, for nodes where other chain editors make a file of our own unworkable.
//!
//! Decisions worth knowing:
//! - The upstream is the byte-wise first `*.conf|*.conflist|*.json` that is not a directory, as
//!   containerd picks it. If it is invalid we wait for it: containerd would fail on it rather than
//!   skip it, so chaining the next file would chain something no runtime uses.
//! - An upstream that is a symlink is read through (operators link configs in from /var/lib/...)
//!   and, with `--watch`, its target's directory is watched too. Our output is never read or written
//!   through a symlink: a symlink (or directory, FIFO...) at the output path is refused, not replaced.
//! - A file is acted on only when it parses and has not changed for `sync::SETTLE`.
//! - Writes go through `crate::atomic` under the lock file `.hostguard.lock` in the directory; the
//!   same bytes are never rewritten. The binary (`--bin-dir`) is installed before the config.
//! - `--watch` never removes the output on exit: removing it on restarts left nodes NotReady for
//!   Cilium. `hostguard uninstall` removes it.

pub mod args;
pub mod binary;
pub mod chain;
pub mod discover;
pub mod entry;
pub mod fight;
pub mod inplace;
pub mod marker;
pub mod snapshot;
pub mod sync;
pub mod uninstall;
pub mod validate;
pub mod watch;
pub mod write;

use std::fmt;
use std::fs::DirBuilder;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;

use anyhow::{bail, Context, Result};

use args::{InstallOptions, Parsed};

/// `hostguard install ARGS`: returns the exit status.
pub fn run_install(args: &[String]) -> i32 {
    run_subcommand(
        "install",
        args::INSTALL_USAGE,
        args::parse_install(args),
        install,
    )
}

/// `hostguard uninstall ARGS`: returns the exit status.
pub fn run_uninstall(args: &[String]) -> i32 {
    run_subcommand(
        "uninstall",
        args::UNINSTALL_USAGE,
        args::parse_uninstall(args),
        |options| uninstall::run(&options),
    )
}

/// Runs `hostguard SUBCOMMAND` and returns its exit status: 0 after printing the usage `--help`
/// asked for, 2 after a usage error, 1 when `run` fails, else what `run` returns.
fn run_subcommand<T>(
    subcommand: &str,
    usage: &str,
    parsed: Result<Parsed<T>, String>,
    run: impl FnOnce(T) -> Result<i32>,
) -> i32 {
    let options = match parsed {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            report(format_args!("{}", usage.trim_end()));
            return 0;
        }
        Err(message) => {
            eprint!("hostguard {subcommand}: {message}\n\n{usage}");
            return 2;
        }
    };
    match run(options) {
        Ok(status) => status,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "hostguard {subcommand}: {err:#}");
            1
        }
    }
}

fn install(options: InstallOptions) -> Result<i32> {
    let mut warnings = Vec::new();
    let entry = match entry::build(
        options.plugin_config.as_deref(),
        options.state_dir.as_deref(),
        options.run_dir.as_deref(),
        &mut warnings,
    ) {
        Ok(entry) => entry,
        Err(err) => match err.downcast::<entry::Refused>() {
            Ok(refused) => {
                note(format_args!("{refused}"));
                return Ok(2);
            }
            Err(err) => return Err(err),
        },
    };
    for warning in warnings {
        note(format_args!("{warning}"));
    }
    let dir = &options.conf_dir;
    if !dir.is_dir() {
        if dir.exists() {
            bail!("--conf-dir {} is not a directory", dir.display());
        }
        // A fresh node may not have it until the primary CNI starts; waiting needs it to exist.
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("create --conf-dir {}", dir.display()))?;
        note(format_args!("created {}", dir.display()));
    }
    if let Some(state_dir) = &options.state_dir {
        let run_dir = options.run_dir.as_deref();
        record_baseline(
            state_dir,
            run_dir.unwrap_or(crate::config::DEFAULT_RUN_DIR.as_ref()),
        )?;
    }
    warn_about_host_settings(options.host_root.as_deref());
    sync::run(sync::Plan {
        conf_dir: options.conf_dir,
        output: options.output,
        primary: options.primary,
        entry,
        bin_dir: options.bin_dir,
        timeout: options.timeout,
        watch: options.watch,
        in_place: options.in_place,
    })
}

/// The settings that fight a CNI on the host (incident 2), as warnings: the install itself is
/// fine either way, and only the operator can decide to change networkd or NetworkManager. They
/// are looked for under `--host-root` only: in a container `/` is the container's, whose missing
/// /etc/systemd and /etc/NetworkManager would be reported as the host's.
fn warn_about_host_settings(host_root: Option<&std::path::Path>) {
    let Some(root) = host_root else {
        note(format_args!(
            "the host's networkd and NetworkManager settings were not checked: pass --host-root \
             with the host's / (or run `hostguard doctor` on the host)"
        ));
        return;
    };
    for finding in crate::doctor::examine(root).findings {
        note(format_args!(
            "warning: {}: {}; fix: {}",
            finding.subject, finding.evidence, finding.fix
        ));
    }
}

/// Records the host's default routes before any pod exists, so that the first ADD already has
/// something to guard. An existing baseline is kept: a restarted installer must not adopt a
/// host that lost a route in the meantime.
fn record_baseline(state_dir: &std::path::Path, run_dir: &std::path::Path) -> Result<()> {
    let state = crate::state::StateDir::open(state_dir, run_dir)?;
    let mut nl = crate::netlink::Netlink::new().context("open netlink socket")?;
    let _lock = state.lock("baseline")?;
    let (baseline, recorded) = crate::host::baseline::load_or_record(&state, &mut nl)?;
    let verb = if recorded { "recorded" } else { "kept" };
    note(format_args!(
        "baseline {verb} in {}: {} default routes",
        state_dir.display(),
        baseline.routes.len()
    ));
    Ok(())
}

/// A diagnostic line on stderr. Write errors are ignored: a closed stderr must not stop an install.
pub(crate) fn note(message: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "hostguard install: {message}");
}

/// A line of the subcommand's report on stdout.
pub(crate) fn report(message: fmt::Arguments<'_>) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{message}");
    let _ = out.flush();
}
