//! The one option parser of every subcommand. Each option is `--name` (a switch) or
//! `--name VALUE` / `--name=VALUE`; nothing else is accepted, nothing is guessed, and every error
//! names the option. A subcommand may also take its options from the environment: the variable
//! is derived from the flag (`--conf-dir` → `HOSTGUARD_CONF_DIR`), and a flag on the command line
//! wins over it. Help is the subcommand's own text, asked for with `--help` or `-h`.

use std::ffi::OsString;

/// One option of a subcommand.
pub struct Opt {
    /// With its dashes: `--conf-dir`.
    pub name: &'static str,
    /// Whether it takes a value (`--conf-dir DIR`) or is a switch (`--watch`).
    pub takes_value: bool,
}

impl Opt {
    pub const fn value(name: &'static str) -> Opt {
        Opt {
            name,
            takes_value: true,
        }
    }

    pub const fn switch(name: &'static str) -> Opt {
        Opt {
            name,
            takes_value: false,
        }
    }

    /// `--conf-dir` → `HOSTGUARD_CONF_DIR`.
    pub fn env_name(&self) -> String {
        let bare = self.name.trim_start_matches('-');
        format!("HOSTGUARD_{}", bare.replace('-', "_").to_ascii_uppercase())
    }
}

/// What a subcommand accepts.
pub struct Spec {
    pub options: &'static [Opt],
    /// Read `HOSTGUARD_*` for the options not given on the command line.
    pub from_env: bool,
}

#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Given),
    Help,
}

/// The options given, by name; a switch maps to an empty string.
#[derive(Debug, PartialEq, Default)]
pub struct Given(Vec<(&'static str, String)>);

impl Given {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Arguments as the process got them: one that is not UTF-8 is a usage error, not a panic.
pub fn utf8(args: Vec<OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .map(|arg| {
            arg.into_string().map_err(|raw| {
                format!(
                    "argument {:?} is not valid UTF-8",
                    raw.to_string_lossy().into_owned()
                )
            })
        })
        .collect()
}

/// Parses `args` (after the subcommand's name) with the process's environment.
pub fn parse(spec: &Spec, args: &[String]) -> Result<Parsed, String> {
    parse_with_env(spec, args, |name| std::env::var_os(name))
}

/// As `parse`, for a subcommand that prints its own help: `None` when help was asked for.
pub fn given(spec: &Spec, args: &[String]) -> Result<Option<Given>, String> {
    match parse(spec, args)? {
        Parsed::Run(given) => Ok(Some(given)),
        Parsed::Help => Ok(None),
    }
}

/// As `parse`, with `env` in place of the process's environment.
pub fn parse_with_env(
    spec: &Spec,
    args: &[String],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Parsed, String> {
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Parsed::Help);
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
        let opt = find(spec, name)?;
        if given.iter().any(|(seen, _)| *seen == opt.name) {
            return Err(format!("{name} is given more than once"));
        }
        let value = match (opt.takes_value, inline) {
            (false, None) => String::new(),
            (false, Some(_)) => return Err(format!("{name} takes no value")),
            (true, Some(value)) => value.to_string(),
            (true, None) => match rest.next() {
                Some(value) if !value.starts_with("--") => value.clone(),
                Some(other) => return Err(format!("{name} needs a value, got the option {other}")),
                None => return Err(format!("{name} needs a value")),
            },
        };
        if opt.takes_value && value.is_empty() {
            return Err(format!("{name} needs a non-empty value"));
        }
        given.push((opt.name, value));
    }
    if spec.from_env {
        for opt in spec.options {
            if given.iter().any(|(seen, _)| *seen == opt.name) {
                continue;
            }
            if let Some(value) = from_env(opt, &env)? {
                given.push((opt.name, value));
            }
        }
    }
    Ok(Parsed::Run(Given(given)))
}

fn find<'a>(spec: &'a Spec, name: &str) -> Result<&'a Opt, String> {
    spec.options
        .iter()
        .find(|opt| opt.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = spec.options.iter().map(|opt| opt.name).collect();
            format!("unknown option {name} (known: {})", names.join(", "))
        })
}

/// An empty variable counts as unset, as a shell's `${VAR:-}` would; a switch is `true` or
/// `false`, so a typo cannot silently turn it off.
fn from_env(opt: &Opt, env: &impl Fn(&str) -> Option<OsString>) -> Result<Option<String>, String> {
    let name = opt.env_name();
    let Some(raw) = env(&name) else {
        return Ok(None);
    };
    let value = raw
        .into_string()
        .map_err(|_| format!("{name} is not valid UTF-8"))?;
    if value.is_empty() {
        return Ok(None);
    }
    if opt.takes_value {
        return Ok(Some(value));
    }
    match value.as_str() {
        "true" | "1" => Ok(Some(String::new())),
        "false" | "0" => Ok(None),
        _ => Err(format!("{name} must be true or false, not {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    const SPEC: Spec = Spec {
        options: &[Opt::value("--conf-dir"), Opt::switch("--watch")],
        from_env: true,
    };

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn given(list: &[&str], env: &[(&str, &str)]) -> Result<Given, String> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse_with_env(&SPEC, &args(list), lookup)? {
            Parsed::Run(given) => Ok(given),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn both_value_spellings_and_switches() {
        let g = given(&["--conf-dir=/a", "--watch"], &[]).unwrap();
        assert_eq!(g.get("--conf-dir"), Some("/a"));
        assert!(g.has("--watch"));
        let g = given(&["--conf-dir", "/b"], &[]).unwrap();
        assert_eq!(g.get("--conf-dir"), Some("/b"));
        assert!(!g.has("--watch"));
    }

    #[test]
    fn environment_names_follow_the_flag_and_the_command_line_wins() {
        assert_eq!(Opt::value("--conf-dir").env_name(), "HOSTGUARD_CONF_DIR");
        let env = [("HOSTGUARD_CONF_DIR", "/env"), ("HOSTGUARD_WATCH", "true")];
        let g = given(&[], &env).unwrap();
        assert_eq!(g.get("--conf-dir"), Some("/env"));
        assert!(g.has("--watch"));
        let g = given(&["--conf-dir=/flag"], &env).unwrap();
        assert_eq!(g.get("--conf-dir"), Some("/flag"));
        let g = given(
            &[],
            &[("HOSTGUARD_CONF_DIR", ""), ("HOSTGUARD_WATCH", "false")],
        )
        .unwrap();
        assert_eq!(g, Given::default());
        let err = given(&[], &[("HOSTGUARD_WATCH", "yes")]).unwrap_err();
        assert!(
            err.contains("HOSTGUARD_WATCH must be true or false"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_option() {
        for (list, wanted) in [
            (&["--conf-dir"][..], "--conf-dir needs a value"),
            (&["--conf-dir", "--watch"][..], "got the option --watch"),
            (&["--bogus"][..], "unknown option --bogus"),
            (&["--watch", "--watch"][..], "more than once"),
            (&["--watch=yes"][..], "takes no value"),
            (&["--conf-dir="][..], "non-empty"),
            (&["stray"][..], "unexpected argument"),
        ] {
            let err = given(list, &[]).unwrap_err();
            assert!(err.contains(wanted), "{list:?}: {err}");
        }
    }

    #[test]
    fn help_only_after_valid_options() {
        assert_eq!(given(&["--watch", "-h"], &[]).unwrap_err(), "help");
        assert!(given(&["--bogus", "--help"], &[])
            .unwrap_err()
            .contains("unknown option"));
    }

    #[test]
    fn non_utf8_arguments_are_an_error() {
        let bad = OsString::from_vec(vec![b'-', b'-', 0xff]);
        let err = utf8(vec![OsString::from("install"), bad]).unwrap_err();
        assert!(err.contains("not valid UTF-8"), "{err}");
        assert_eq!(utf8(vec![OsString::from("x")]).unwrap(), ["x"]);
    }
}
