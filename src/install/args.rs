//! Hand-parsed options of `hostguard install` and `hostguard uninstall`: every flag is known, a
//! missing or empty value is an error, and nothing is guessed.

use std::path::PathBuf;
use std::time::Duration;

use super::discover;
use crate::args::{Given, Opt, Spec};

pub const DEFAULT_OUTPUT: &str = "00-hostguard.conflist";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

pub const INSTALL_USAGE: &str = "\
usage: hostguard install --conf-dir DIR [--output NAME] [--primary NAME] [--plugin-config FILE]
                         [--timeout SECS] [--bin-dir DIR] [--state-dir DIR] [--run-dir DIR]
                         [--host-root DIR] [--watch] [--in-place]

Waits for the CNI config a container runtime would load from DIR (the byte-wise first *.conf,
*.conflist or *.json file; an invalid first file is waited for, never skipped), then writes
DIR/NAME: that config's keys and plugins with exactly one {\"type\":\"hostguard\"} entry appended,
marked as install's own. An existing DIR/NAME that install did not write is never replaced.

  --conf-dir DIR        the runtime's CNI config directory (created if missing), e.g. /etc/cni/net.d
  --output NAME         file to write in DIR; must end in .conflist and sort before every other
                        config file there (default 00-hostguard.conflist)
  --primary NAME        chain this file of DIR instead of the first one
  --plugin-config FILE  JSON object whose keys go into the hostguard entry (\"-\" reads stdin)
  --timeout SECS        how long to wait for a usable upstream config (default 300; 0 = look once)
  --bin-dir DIR         copy this binary to DIR/hostguard first (atomically, mode 0755)
  --state-dir DIR       create this state directory (0700); it becomes the entry's stateDir unless
                        --plugin-config sets one (the host's path, when DIR is a container mount),
                        and the baseline is recorded there
  --run-dir DIR         hostguard's per-boot directory, where the baseline lock is taken (default
                        /run/hostguard); it becomes the entry's runDir unless --plugin-config sets one
  --host-root DIR       where the host's / is (read-only at /host in the DaemonSet; / on the host
                        itself): the networkd and NetworkManager settings that fight a CNI are
                        looked for there and printed as warnings; without it they are not checked
  --watch               stay running and keep DIR/NAME in sync with the upstream config; exits 0
                        on SIGTERM or SIGINT and leaves the file in place
  --in-place            write no file of its own: insert the hostguard entry into the plugin list
                        a runtime loads (past a Multus config, into its master), keeping every other
                        entry; for nodes where Istio CNI, Multus or Antrea also edit DIR

Every option can also come from the environment, named after the flag: --conf-dir is
HOSTGUARD_CONF_DIR, --watch is HOSTGUARD_WATCH=true (an empty variable is unset; a flag wins).

Exit status: 0 written or already up to date, 1 failed or timed out (nothing written), 2 usage.
";

pub const UNINSTALL_USAGE: &str = "\
usage: hostguard uninstall --conf-dir DIR [--output NAME] [--bin-dir DIR] [--in-place]

Removes DIR/NAME if install wrote it (its \"hostguardInstall\" key names it), and DIR/hostguard of
--bin-dir. Upstream config files are never touched. Running it again finds nothing to do.
Pods created while hostguard was chained need its binary for their DEL: omit --bin-dir to keep it
until they are gone.

  --conf-dir DIR   the runtime's CNI config directory
  --output NAME    the file install wrote (default 00-hostguard.conflist)
  --bin-dir DIR    also remove DIR/hostguard
  --in-place       undo install --in-place: remove the hostguard entry from every plugin list in
                   DIR (Multus' own file excepted: Multus rebuilds it from its master), keeping
                   every other entry; no file is removed

Exit status: 0 removed or nothing to do, 1 refused or failed (nothing removed), 2 usage.
";

#[derive(Debug, Clone, PartialEq)]
pub struct InstallOptions {
    pub conf_dir: PathBuf,
    pub output: String,
    pub primary: Option<String>,
    /// `-` means standard input.
    pub plugin_config: Option<PathBuf>,
    pub timeout: Duration,
    pub bin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    /// The host's `/` as mounted in a container: where the host-settings checks look.
    pub host_root: Option<PathBuf>,
    pub watch: bool,
    pub in_place: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallOptions {
    pub conf_dir: PathBuf,
    pub output: String,
    pub bin_dir: Option<PathBuf>,
    pub in_place: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<T> {
    Run(T),
    Help,
}

const INSTALL: Spec = Spec {
    options: &[
        Opt::value("--conf-dir"),
        Opt::value("--output"),
        Opt::value("--primary"),
        Opt::value("--plugin-config"),
        Opt::value("--timeout"),
        Opt::value("--bin-dir"),
        Opt::value("--state-dir"),
        Opt::value("--run-dir"),
        Opt::value("--host-root"),
        Opt::switch("--watch"),
        Opt::switch("--in-place"),
    ],
    // A container image's entry point is hostguard itself: its options come from the pod's env.
    from_env: true,
};

const UNINSTALL: Spec = Spec {
    options: &[
        Opt::value("--conf-dir"),
        Opt::value("--output"),
        Opt::value("--bin-dir"),
        Opt::switch("--in-place"),
    ],
    // Not from the environment: an install container's HOSTGUARD_BIN_DIR must never turn an
    // uninstall into one that also removes the binary running pods still need.
    from_env: false,
};

pub fn parse_install(args: &[String]) -> Result<Parsed<InstallOptions>, String> {
    let Some(given) = crate::args::given(&INSTALL, args)? else {
        return Ok(Parsed::Help);
    };
    let conf_dir = required_dir(&given)?;
    let output = output_name(&given)?;
    let primary = match given.get("--primary") {
        Some(name) => {
            file_name("--primary", name)?;
            if !discover::is_config_name(name.as_ref()) {
                return Err(format!(
                    "--primary {name:?} must name a *.conf, *.conflist or *.json file: runtimes load no other"
                ));
            }
            if name == output {
                return Err(format!("--primary and --output both name {name:?}"));
            }
            Some(name.to_string())
        }
        None => None,
    };
    let timeout = match given.get("--timeout") {
        Some(text) => parse_seconds(text)?,
        None => DEFAULT_TIMEOUT,
    };
    let host_root = given.get("--host-root").map(PathBuf::from);
    if let Some(root) = host_root.as_ref().filter(|root| !root.is_dir()) {
        return Err(format!("--host-root {} is not a directory", root.display()));
    }
    Ok(Parsed::Run(InstallOptions {
        conf_dir,
        output,
        primary,
        plugin_config: given.get("--plugin-config").map(PathBuf::from),
        timeout,
        bin_dir: given.get("--bin-dir").map(PathBuf::from),
        state_dir: given.get("--state-dir").map(PathBuf::from),
        run_dir: given.get("--run-dir").map(PathBuf::from),
        host_root,
        watch: given.has("--watch"),
        in_place: in_place(&given)?,
    }))
}

pub fn parse_uninstall(args: &[String]) -> Result<Parsed<UninstallOptions>, String> {
    let Some(given) = crate::args::given(&UNINSTALL, args)? else {
        return Ok(Parsed::Help);
    };
    Ok(Parsed::Run(UninstallOptions {
        conf_dir: required_dir(&given)?,
        output: output_name(&given)?,
        bin_dir: given.get("--bin-dir").map(PathBuf::from),
        in_place: in_place(&given)?,
    }))
}

/// `--in-place` writes no file of its own, so naming one is a mistake worth stopping at.
fn in_place(given: &Given) -> Result<bool, String> {
    let in_place = given.has("--in-place");
    if in_place && given.has("--output") {
        return Err("--in-place writes no file of its own, so --output does not apply".into());
    }
    Ok(in_place)
}

fn required_dir(given: &Given) -> Result<PathBuf, String> {
    given.get("--conf-dir").map(PathBuf::from).ok_or_else(|| {
        "--conf-dir DIR is required (the runtime's CNI config directory)".to_string()
    })
}

fn output_name(given: &Given) -> Result<String, String> {
    let name = given.get("--output").unwrap_or(DEFAULT_OUTPUT);
    file_name("--output", name)?;
    if !name.ends_with(".conflist") {
        return Err(format!(
            "--output {name:?} must end in .conflist: hostguard writes a plugin list, and runtimes read \
             *.conf and *.json files as a single plugin"
        ));
    }
    if crate::atomic::is_temp_name(name) {
        return Err(format!(
            "--output {name:?} looks like one of hostguard's temporary files"
        ));
    }
    Ok(name.to_string())
}

fn file_name(flag: &str, name: &str) -> Result<(), String> {
    if name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(format!(
            "{flag} {name:?} must be a file name inside --conf-dir, not a path"
        ));
    }
    Ok(())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("--timeout expects seconds (a number, 0 or more), got {text:?}"))?;
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(format!(
            "--timeout {text:?} is out of range (0 to 1000000000 seconds)"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn install(list: &[&str]) -> Result<InstallOptions, String> {
        match parse_install(&args(list))? {
            Parsed::Run(options) => Ok(options),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults_and_both_value_spellings() {
        let options = install(&["--conf-dir", "/d", "--timeout=1.5", "--watch"]).unwrap();
        assert_eq!(options.conf_dir, PathBuf::from("/d"));
        assert_eq!(options.output, DEFAULT_OUTPUT);
        assert_eq!(options.timeout, Duration::from_millis(1500));
        assert!(options.watch);
        assert_eq!(options.primary, None);
        assert!(!options.in_place);
        assert!(
            install(&["--conf-dir", "/d", "--in-place"])
                .unwrap()
                .in_place
        );
        assert!(install(&[
            "--conf-dir",
            "/d",
            "--in-place",
            "--output",
            "01-a.conflist"
        ])
        .unwrap_err()
        .contains("--output does not apply"));
    }

    #[test]
    fn errors_name_the_flag() {
        assert!(install(&["--conf-dir"])
            .unwrap_err()
            .contains("--conf-dir needs a value"));
        assert!(install(&["--conf-dir", "--watch"])
            .unwrap_err()
            .contains("got the option --watch"));
        assert!(install(&["--conf-dir", "/d", "--bogus"])
            .unwrap_err()
            .contains("unknown option --bogus"));
        assert!(install(&["--watch"])
            .unwrap_err()
            .contains("--conf-dir DIR is required"));
        assert!(install(&["--conf-dir", "/d", "--conf-dir", "/e"])
            .unwrap_err()
            .contains("more than once"));
        assert!(install(&["--conf-dir", "/d", "--watch=yes"])
            .unwrap_err()
            .contains("takes no value"));
        assert!(install(&["--conf-dir", "/d", "--timeout", "-1"])
            .unwrap_err()
            .contains("out of range"));
        assert!(install(&["--conf-dir", "/d", "--timeout", "soon"])
            .unwrap_err()
            .contains("seconds"));
        assert!(install(&["--conf-dir", "/d", "stray"])
            .unwrap_err()
            .contains("unexpected argument"));
        assert!(install(&["--conf-dir="]).unwrap_err().contains("non-empty"));
    }

    #[test]
    fn names_are_checked() {
        assert!(install(&["--conf-dir", "/d", "--output", "x.conf"])
            .unwrap_err()
            .contains(".conflist"));
        assert!(install(&["--conf-dir", "/d", "--output", "a/b.conflist"])
            .unwrap_err()
            .contains("file name"));
        assert!(install(&["--conf-dir", "/d", "--primary", "kubeconfig"])
            .unwrap_err()
            .contains("*.conf"));
        let clash = install(&["--conf-dir", "/d", "--primary", "00-hostguard.conflist"]);
        assert!(clash.unwrap_err().contains("both name"));
    }

    #[test]
    fn help_is_recognised_after_valid_flags_only() {
        assert_eq!(
            parse_install(&args(&["--bogus", "--help"])).map_err(|_| ()),
            Err(())
        );
        assert_eq!(parse_install(&args(&["--help"])).unwrap(), Parsed::Help);
        assert_eq!(parse_uninstall(&args(&["-h"])).unwrap(), Parsed::Help);
    }
}
