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
  hostguard --version | --help
";

/// Runs the subcommand named in `args` (without the program name) and returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return 2;
    };
    let _ = rest;
    match command.as_str() {
        "--version" | "-V" | "version" => {
            println!("hostguard {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "doctor" => crate::doctor::run(rest),
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
