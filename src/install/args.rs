//! Hand-parsed options of `hostguard install` and `hostguard uninstall`: every flag is known, a
//! missing or empty value is an error, and nothing is guessed.

use std::path::PathBuf;
use std::time::Duration;

use super::discover;

pub const DEFAULT_OUTPUT: &str = "00-hostguard.conflist";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

pub const INSTALL_USAGE: &str = "\
usage: hostguard install --conf-dir DIR [--output NAME] [--primary NAME] [--plugin-config FILE]
                         [--timeout SECS] [--bin-dir DIR] [--state-dir DIR] [--host-root DIR]
                         [--watch]

Waits for the CNI config a container runtime would load from DIR (the byte-wise first *.conf,
*.conflist or *.json file; an invalid first file is waited for, never skipped), then writes
DIR/NAME: that config's keys and plugins with exactly one {\"type\":\"hostguard\"} entry appended.

  --conf-dir DIR        the runtime's CNI config directory (created if missing), e.g. /etc/cni/net.d
  --output NAME         file to write in DIR; must end in .conflist and sort before every other
                        config file there (default 00-hostguard.conflist)
  --primary NAME        chain this file of DIR instead of the first one
  --plugin-config FILE  JSON object whose keys go into the hostguard entry (\"-\" reads stdin)
  --timeout SECS        how long to wait for a usable upstream config (default 300; 0 = look once)
  --bin-dir DIR         copy this binary to DIR/hostguard first (atomically, mode 0755)
  --state-dir DIR       create this state directory (0700); it becomes the entry's stateDir unless
                        --plugin-config sets one (the host's path, when DIR is a container mount)
  --host-root DIR       where the host's / is (read-only at /host in the DaemonSet; / on the host
                        itself): the networkd and NetworkManager settings that fight a CNI are
                        looked for there and printed as warnings; without it they are not checked
  --watch               stay running and keep DIR/NAME in sync with the upstream config; exits 0
                        on SIGTERM or SIGINT and leaves the file in place

Exit status: 0 written or already up to date, 1 failed or timed out (nothing written), 2 usage.
";

pub const UNINSTALL_USAGE: &str = "\
usage: hostguard uninstall --conf-dir DIR [--output NAME] [--bin-dir DIR]

Removes DIR/NAME if it is hostguard's (it holds a plugin of type hostguard), and DIR/hostguard of
--bin-dir. Upstream config files are never touched. Running it again finds nothing to do.
Pods created while hostguard was chained need its binary for their DEL: omit --bin-dir to keep it
until they are gone.

  --conf-dir DIR   the runtime's CNI config directory
  --output NAME    the file install wrote (default 00-hostguard.conflist)
  --bin-dir DIR    also remove DIR/hostguard

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
    /// The host's `/` as mounted here, for the doctor's checks.
    pub host_root: Option<PathBuf>,
    pub watch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallOptions {
    pub conf_dir: PathBuf,
    pub output: String,
    pub bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<T> {
    Run(T),
    Help,
}

struct Flag {
    name: &'static str,
    takes_value: bool,
}

impl Flag {
    const fn with_value(name: &'static str) -> Flag {
        Flag {
            name,
            takes_value: true,
        }
    }

    const fn switch(name: &'static str) -> Flag {
        Flag {
            name,
            takes_value: false,
        }
    }
}

const INSTALL_FLAGS: &[Flag] = &[
    Flag::with_value("--conf-dir"),
    Flag::with_value("--output"),
    Flag::with_value("--primary"),
    Flag::with_value("--plugin-config"),
    Flag::with_value("--timeout"),
    Flag::with_value("--bin-dir"),
    Flag::with_value("--state-dir"),
    Flag::with_value("--host-root"),
    Flag::switch("--watch"),
];

const UNINSTALL_FLAGS: &[Flag] = &[
    Flag::with_value("--conf-dir"),
    Flag::with_value("--output"),
    Flag::with_value("--bin-dir"),
];

/// Values by flag name, in the order given; a flag without a value maps to an empty string.
struct Given(Vec<(&'static str, String)>);

impl Given {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

pub fn parse_install(args: &[String]) -> Result<Parsed<InstallOptions>, String> {
    let Some(given) = parse_flags(args, INSTALL_FLAGS)? else {
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
    let host_root = match given.get("--host-root") {
        Some(dir) if std::path::Path::new(dir).is_dir() => Some(PathBuf::from(dir)),
        Some(dir) => return Err(format!("--host-root {dir:?} is not a directory")),
        None => None,
    };
    Ok(Parsed::Run(InstallOptions {
        conf_dir,
        output,
        primary,
        plugin_config: given.get("--plugin-config").map(PathBuf::from),
        timeout,
        bin_dir: given.get("--bin-dir").map(PathBuf::from),
        state_dir: given.get("--state-dir").map(PathBuf::from),
        host_root,
        watch: given.has("--watch"),
    }))
}

pub fn parse_uninstall(args: &[String]) -> Result<Parsed<UninstallOptions>, String> {
    let Some(given) = parse_flags(args, UNINSTALL_FLAGS)? else {
        return Ok(Parsed::Help);
    };
    Ok(Parsed::Run(UninstallOptions {
        conf_dir: required_dir(&given)?,
        output: output_name(&given)?,
        bin_dir: given.get("--bin-dir").map(PathBuf::from),
    }))
}

/// `None` when help was asked for.
fn parse_flags(args: &[String], known: &[Flag]) -> Result<Option<Given>, String> {
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        if !arg.starts_with("--") {
            return Err(format!(
                "unexpected argument {arg:?} (every option starts with --)"
            ));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg.as_str(), None),
        };
        let Some(flag) = known.iter().find(|flag| flag.name == name) else {
            let names: Vec<&str> = known.iter().map(|flag| flag.name).collect();
            return Err(format!(
                "unknown option {name} (known: {})",
                names.join(", ")
            ));
        };
        if given.iter().any(|(seen, _)| *seen == flag.name) {
            return Err(format!("{name} is given more than once"));
        }
        let value = match (flag.takes_value, inline) {
            (false, None) => String::new(),
            (false, Some(_)) => return Err(format!("{name} takes no value")),
            (true, Some(value)) => value.to_string(),
            (true, None) => match rest.next() {
                Some(value) if !value.starts_with("--") => value.clone(),
                Some(other) => return Err(format!("{name} needs a value, got the option {other}")),
                None => return Err(format!("{name} needs a value")),
            },
        };
        if flag.takes_value && value.is_empty() {
            return Err(format!("{name} needs a non-empty value"));
        }
        given.push((flag.name, value));
    }
    Ok(Some(Given(given)))
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
