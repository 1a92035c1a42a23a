//! The doctor's command line.

use std::path::PathBuf;

pub(super) const USAGE: &str = "\
usage: hostguard doctor [--root DIR] [--json] [--fix]

Finds the systemd-networkd and NetworkManager settings that fight a CNI (networkd deleting a CNI's
policy rules and routes on restart, NetworkManager managing a CNI's interfaces), says why each
matters and how to fix it. Files only: no daemon is asked and the network is not touched.

  --root DIR  look at DIR as the host's / (a mounted node image, or the host's / in a container)
  --json      print the findings as JSON
  --fix       write hostguard's own drop-ins (never the operator's files), then check again

Exit status: 0 nothing found, 1 something found or --fix failed, 2 usage.
";

pub(super) struct Options {
    pub root: PathBuf,
    pub json: bool,
    pub fix: bool,
}

pub(super) fn parse_args(args: &[String]) -> std::result::Result<Option<Options>, String> {
    use crate::args::{Opt, Spec};
    const SPEC: Spec = Spec {
        options: &[
            Opt::value("--root"),
            Opt::switch("--json"),
            Opt::switch("--fix"),
        ],
        from_env: false,
    };
    let Some(given) = crate::args::given(&SPEC, args)? else {
        return Ok(None);
    };
    let options = Options {
        root: PathBuf::from(given.get("--root").unwrap_or("/")),
        json: given.has("--json"),
        fix: given.has("--fix"),
    };
    if !options.root.is_dir() {
        return Err(format!(
            "--root {} is not a directory",
            options.root.display()
        ));
    }
    Ok(Some(options))
}
