//! Command-line mode: used when `CNI_COMMAND` is not set. Each subcommand lives in its own module
//! and takes its arguments (after the subcommand name); this file only dispatches.

use std::io::Write;

pub const USAGE: &str = "\
hostguard: a CNI chaining plugin that keeps the node's host network intact

As a CNI plugin it is run by the container runtime with CNI_COMMAND set.
As a tool:
  hostguard install    --conf-dir DIR [--output NAME] [--primary NAME] [--plugin-config FILE]
                       [--timeout SECS] [--bin-dir DIR] [--state-dir DIR] [--watch]
  hostguard uninstall  --conf-dir DIR [--output NAME] [--bin-dir DIR]
  hostguard baseline   [--state-dir DIR] [--show] [--update]
  hostguard uplink release --interface IF --bridge BR [--state-dir DIR]
  hostguard doctor     [--root DIR] [--json] [--fix]
  hostguard guard      --plugin-config FILE [--conf-dir DIR] [--metrics-addr HOST:PORT]
                       [--settle-ms N]
  hostguard --version | --help
";

/// Runs the subcommand named in `args` (without the program name) and returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return 2;
    };
    let wants_help = rest.iter().any(|a| a == "--help" || a == "-h");
    match command.as_str() {
        // install and doctor print their own help; these two share the overview.
        "baseline" | "uplink" if wants_help => {
            print!("{USAGE}");
            0
        }
        "baseline" => baseline(rest),
        "uplink" => uplink(rest),
        "--version" | "-V" | "version" => {
            println!("hostguard {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "install" => crate::install::run_install(rest),
        "uninstall" => crate::install::run_uninstall(rest),
        "doctor" => crate::doctor::run(rest),
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

/// Pulls `--flag VALUE` pairs and bare switches out of `args`; anything else is a usage error.
struct Flags<'a> {
    args: &'a [String],
}

impl<'a> Flags<'a> {
    fn value(&self, flag: &str) -> Result<Option<&'a str>, String> {
        match self.args.iter().position(|a| a == flag) {
            None => Ok(None),
            Some(i) => self
                .args
                .get(i + 1)
                .filter(|v| !v.starts_with("--"))
                .map(|v| Some(v.as_str()))
                .ok_or_else(|| format!("{flag} needs a value")),
        }
    }

    fn switch(&self, flag: &str) -> bool {
        self.args.iter().any(|a| a == flag)
    }

    fn reject_unknown(&self, with_value: &[&str], switches: &[&str]) -> Result<(), String> {
        let mut i = 0;
        while i < self.args.len() {
            let arg = self.args[i].as_str();
            if with_value.contains(&arg) {
                i += 2;
            } else if switches.contains(&arg) {
                i += 1;
            } else {
                return Err(format!("unknown argument {arg:?}"));
            }
        }
        Ok(())
    }
}

fn usage_error(command: &str, why: &str) -> i32 {
    eprintln!("hostguard {command}: {why}\n\n{USAGE}");
    2
}

/// `hostguard baseline [--state-dir DIR] [--show] [--update]`: record the host's default routes
/// (only if none are recorded yet), print them, or adopt the current state.
fn baseline(args: &[String]) -> i32 {
    use crate::host::baseline as hb;

    let flags = Flags { args };
    if let Err(why) = flags.reject_unknown(&["--state-dir"], &["--show", "--update"]) {
        return usage_error("baseline", &why);
    }
    let dir = match flags.value("--state-dir") {
        Ok(dir) => dir.unwrap_or(crate::cni::config::DEFAULT_STATE_DIR),
        Err(why) => return usage_error("baseline", &why),
    };
    let run = || -> anyhow::Result<()> {
        let state = crate::state::StateDir::open(std::path::Path::new(dir))?;
        let mut nl = crate::netlink::Netlink::new()?;
        let _lock = state.lock("baseline")?;
        if flags.switch("--update") {
            // Rules are picked by the conflist's rules.match, which this command does not see:
            // the next ADD records the rules the selectors pick now.
            let fresh = hb::observe(&mut nl)?;
            state.write_baseline(&fresh)?;
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
        if flags.switch("--show") || recorded || flags.switch("--update") {
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

/// `hostguard uplink release --interface IF --bridge BR [--state-dir DIR]`: undo an uplink
/// attachment. Reports on stderr; exit 0 when released, 1 when not (with the reason), 2 on
/// usage errors.
fn uplink(args: &[String]) -> i32 {
    use crate::host::uplink;

    let Some((action, rest)) = args.split_first() else {
        return usage_error("uplink", "missing action (release)");
    };
    if action != "release" {
        return usage_error("uplink", &format!("unknown action {action:?}"));
    }
    let flags = Flags { args: rest };
    if let Err(why) = flags.reject_unknown(&["--interface", "--bridge", "--state-dir"], &[]) {
        return usage_error("uplink release", &why);
    }
    let (interface, bridge, dir) = match (
        flags.value("--interface"),
        flags.value("--bridge"),
        flags.value("--state-dir"),
    ) {
        (Ok(Some(i)), Ok(Some(b)), Ok(d)) => {
            (i, b, d.unwrap_or(crate::cni::config::DEFAULT_STATE_DIR))
        }
        (Err(why), _, _) | (_, Err(why), _) | (_, _, Err(why)) => {
            return usage_error("uplink release", &why)
        }
        _ => return usage_error("uplink release", "--interface and --bridge are required"),
    };
    let state = match crate::state::StateDir::open(std::path::Path::new(dir)) {
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
