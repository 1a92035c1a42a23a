//! Command-line mode: used when `CNI_COMMAND` is not set. Each subcommand lives in its own module
//! and takes its arguments (after the subcommand name); this file only dispatches. Every
//! subcommand parses its options with `crate::args`.

use std::io::Write;

use crate::args::{self, Given, Opt, Parsed, Spec};

pub const USAGE: &str = "\
hostguard: a CNI chaining plugin that keeps the node's host network intact

As a CNI plugin it is run by the container runtime with CNI_COMMAND set.
As a tool:
  hostguard install    --conf-dir DIR [--output NAME] [--primary NAME] [--plugin-config FILE]
                       [--timeout SECS] [--bin-dir DIR] [--state-dir DIR] [--run-dir DIR]
                       [--host-root DIR] [--watch] [--in-place]
  hostguard uninstall  --conf-dir DIR [--output NAME] [--bin-dir DIR] [--in-place]
  hostguard baseline   [--state-dir DIR] [--run-dir DIR] [--show] [--update]
  hostguard uplink release --interface IF --bridge BR [--state-dir DIR] [--run-dir DIR]
  hostguard doctor     [--root DIR] [--json] [--fix]
  hostguard validate   --conflist FILE | --plugin-config FILE
  hostguard guard      {--plugin-config FILE | --conf-dir DIR} [--metrics-addr HOST:PORT]
                       [--settle-ms N]
  hostguard --version | --help

`hostguard COMMAND --help` describes a command's options and exit status. Options take their
value as `--opt VALUE` or `--opt=VALUE`.
Exit status: 0 done, 1 failed, 2 usage error.
";

const BASELINE_USAGE: &str = "\
usage: hostguard baseline [--state-dir DIR] [--run-dir DIR] [--show] [--update]

Records the host's default routes (the baseline the route guard restores) in DIR, only if none
is recorded yet, and says so. Guarded policy rules are recorded by the next ADD, which knows the
conflist's rules.match.

  --state-dir DIR  hostguard's state directory (default /var/lib/cni/hostguard)
  --run-dir DIR    hostguard's per-boot directory, for its locks (default /run/hostguard)
  --show           print every recorded default route, marked present or MISSING
  --update         adopt the current default routes as the baseline (after a deliberate change)

Exit status: 0 done, 1 failed (no netlink, unreadable state), 2 usage.
";

const UPLINK_USAGE: &str = "\
usage: hostguard uplink release --interface IF --bridge BR [--state-dir DIR] [--run-dir DIR]

Undoes an uplink attachment: moves IF's addresses and routes back from BR, detaches IF, deletes
BR when hostguard created it, and verifies the baseline default routes.

  --interface IF   the uplink that was moved into the bridge
  --bridge BR      the bridge it was moved into
  --state-dir DIR  hostguard's state directory (default /var/lib/cni/hostguard)
  --run-dir DIR    hostguard's per-boot directory: the uplink journal and locks (default
                   /run/hostguard)

Exit status: 0 released, 1 not released (the reason is printed), 2 usage.
";

/// Runs the subcommand named in `args` (without the program name) and returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let Some((command, rest)) = args.split_first() else {
        // What the reference plugins print when run by hand, on stderr, exit 0.
        eprintln!("{}", about());
        eprintln!("Run `hostguard --help` for the subcommands.");
        return 0;
    };
    match command.as_str() {
        "baseline" => baseline(rest),
        "uplink" => uplink(rest),
        "--version" | "-V" | "version" => {
            print!("{}", version());
            let _ = std::io::stdout().flush();
            0
        }
        "install" => crate::install::run_install(rest),
        "uninstall" => crate::install::run_uninstall(rest),
        "doctor" => crate::doctor::run(rest),
        "validate" => crate::validate::run(rest),
        "guard" => crate::guard::run(rest),
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            let _ = std::io::stdout().flush();
            0
        }
        other => {
            eprintln!("hostguard: unknown command {other:?}\n\n{USAGE}");
            2
        }
    }
}

/// The reference plugins' "about" text: name, version, spec versions.
pub fn about() -> String {
    format!(
        "CNI hostguard plugin v{}\nCNI protocol versions supported: {}",
        env!("CARGO_PKG_VERSION"),
        crate::cni::version::SUPPORTED.join(", ")
    )
}

/// `hostguard --version`: the version, the spec versions and the commit built from.
pub fn version() -> String {
    format!(
        "hostguard {}\nCNI protocol versions supported: {}\ngit commit: {}\n",
        env!("CARGO_PKG_VERSION"),
        crate::cni::version::SUPPORTED.join(", "),
        env!("HOSTGUARD_GIT_COMMIT")
    )
}

/// Parses a subcommand's options; `Err` holds the exit status once help or the usage error is
/// printed.
fn options(command: &str, usage: &str, spec: &Spec, args: &[String]) -> Result<Given, i32> {
    match args::parse(spec, args) {
        Ok(Parsed::Run(given)) => Ok(given),
        Ok(Parsed::Help) => {
            print!("{usage}");
            let _ = std::io::stdout().flush();
            Err(0)
        }
        Err(why) => Err(usage_error(command, usage, &why)),
    }
}

fn usage_error(command: &str, usage: &str, why: &str) -> i32 {
    eprintln!("hostguard {command}: {why}\n\n{usage}");
    2
}

/// `hostguard baseline [--state-dir DIR] [--run-dir DIR] [--show] [--update]`: record the host's default routes
/// (only if none are recorded yet), print them, or adopt the current state.
fn baseline(args: &[String]) -> i32 {
    use crate::host::baseline as hb;

    const SPEC: Spec = Spec {
        options: &[
            Opt::value("--state-dir"),
            Opt::value("--run-dir"),
            Opt::switch("--show"),
            Opt::switch("--update"),
        ],
        from_env: false,
    };
    let flags = match options("baseline", BASELINE_USAGE, &SPEC, args) {
        Ok(given) => given,
        Err(status) => return status,
    };
    let dir = flags
        .get("--state-dir")
        .unwrap_or(crate::config::DEFAULT_STATE_DIR);
    let run_dir = flags
        .get("--run-dir")
        .unwrap_or(crate::config::DEFAULT_RUN_DIR);
    let run = || -> anyhow::Result<()> {
        let state = crate::state::StateDir::open(dir.as_ref(), run_dir.as_ref())?;
        let mut nl = crate::netlink::Netlink::new()?;
        let _lock = state.lock("baseline")?;
        if flags.has("--update") {
            // Rules are picked by the conflist's rules.match, which this command does not see:
            // the next ADD records the rules the selectors pick now.
            let fresh = hb::observe(&mut nl)?;
            hb::write(&state, &fresh)?;
            eprintln!(
                "baseline updated in {}: {} default routes",
                state.root().display(),
                fresh.routes.len()
            );
        }
        let (baseline, recorded) = hb::load_or_record(&state, &mut nl)?;
        if recorded {
            eprintln!(
                "baseline recorded in {}: {} default routes",
                state.root().display(),
                baseline.routes.len()
            );
        }
        if flags.has("--show") || recorded || flags.has("--update") {
            let assessment = crate::host::route_guard::Assessment::take(&mut nl, &baseline.routes)?;
            for (route, present) in baseline.routes.iter().zip(assessment.present()) {
                let gone = !present;
                println!("{} {route}", if gone { "MISSING" } else { "present" });
            }
        } else {
            eprintln!(
                "a baseline is already recorded in {} ({} default routes); --show prints it, \
                 --update adopts the current routes",
                state.root().display(),
                baseline.routes.len()
            );
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("hostguard baseline: {err:#}");
            1
        }
    }
}

/// `hostguard uplink release --interface IF --bridge BR [--state-dir DIR] [--run-dir DIR]`: undo an uplink
/// attachment. Reports on stderr; exit 0 when released, 1 when not (with the reason), 2 on
/// usage errors.
fn uplink(args: &[String]) -> i32 {
    use crate::host::uplink;

    const SPEC: Spec = Spec {
        options: &[
            Opt::value("--interface"),
            Opt::value("--bridge"),
            Opt::value("--state-dir"),
            Opt::value("--run-dir"),
        ],
        from_env: false,
    };
    let rest = match args.split_first() {
        Some((action, rest)) if action == "release" => rest,
        Some((action, _)) if action == "--help" || action == "-h" => {
            print!("{UPLINK_USAGE}");
            let _ = std::io::stdout().flush();
            return 0;
        }
        Some((action, _)) => {
            return usage_error(
                "uplink",
                UPLINK_USAGE,
                &format!("unknown action {action:?}"),
            )
        }
        None => return usage_error("uplink", UPLINK_USAGE, "missing action (release)"),
    };
    let flags = match options("uplink release", UPLINK_USAGE, &SPEC, rest) {
        Ok(given) => given,
        Err(status) => return status,
    };
    let (Some(interface), Some(bridge)) = (flags.get("--interface"), flags.get("--bridge")) else {
        return usage_error(
            "uplink release",
            UPLINK_USAGE,
            "--interface and --bridge are required",
        );
    };
    let dir = flags
        .get("--state-dir")
        .unwrap_or(crate::config::DEFAULT_STATE_DIR);
    let run_dir = flags
        .get("--run-dir")
        .unwrap_or(crate::config::DEFAULT_RUN_DIR);
    let state = match crate::state::StateDir::open(dir.as_ref(), run_dir.as_ref()) {
        Ok(state) => state,
        Err(err) => {
            eprintln!("hostguard uplink release: {err:#}");
            return 1;
        }
    };
    match uplink::release(&state, interface, bridge) {
        Ok(released) => {
            for note in &released.notes {
                eprintln!("hostguard uplink release: note: {note}");
            }
            eprintln!(
                "hostguard uplink release: {interface} released from {bridge}: {} addresses and \
                 {} routes moved back{}; default routes verified",
                released.addresses,
                released.routes,
                if released.bridge_deleted {
                    format!(", bridge {bridge} deleted")
                } else {
                    String::new()
                }
            );
            0
        }
        Err(err) => {
            eprintln!("hostguard uplink release: {err}");
            1
        }
    }
}
