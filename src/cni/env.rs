//! The CNI_* environment, validated the way libcni validates it before anything touches the host
//! or the state directory (a container ID or interface name ends up in file names).

use std::path::PathBuf;

use super::error::{code, CniError, CniResult};
use crate::config::shorten;
pub use crate::config::validate_ifname;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Del,
    Check,
    Status,
    Version,
    Gc,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
            Verb::Status => "STATUS",
            Verb::Version => "VERSION",
            Verb::Gc => "GC",
        }
    }
}

/// Longer IDs would not fit the attachment file name (NAME_MAX is 255); no runtime sends more
/// than a 64-character hex ID plus a short namespace prefix.
pub const MAX_CONTAINER_ID: usize = 192;

#[derive(Debug, Clone, Default)]
pub struct CniEnv {
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    pub args: Option<String>,
}

/// Reads `CNI_COMMAND` alone, so that VERSION never depends on the rest.
pub fn verb_from(lookup: &dyn Fn(&str) -> Option<String>) -> CniResult<Verb> {
    let raw = lookup("CNI_COMMAND").unwrap_or_default();
    match raw.as_str() {
        "ADD" => Ok(Verb::Add),
        "DEL" => Ok(Verb::Del),
        "CHECK" => Ok(Verb::Check),
        "STATUS" => Ok(Verb::Status),
        "VERSION" => Ok(Verb::Version),
        "GC" => Ok(Verb::Gc),
        other => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("invalid CNI_COMMAND {other:?}"),
            "CNI_COMMAND must be one of ADD, DEL, CHECK, STATUS, VERSION, GC",
        )),
    }
}

/// Reads and validates the variables `verb` needs; names every missing or invalid one at once.
pub fn env_for(verb: Verb, lookup: &dyn Fn(&str) -> Option<String>) -> CniResult<CniEnv> {
    let non_empty = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let required: &[&str] = match verb {
        Verb::Add | Verb::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
        Verb::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
        Verb::Status | Verb::Version | Verb::Gc => &[],
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| non_empty(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("missing environment variables: {}", missing.join(", ")),
            format!("{} needs {}", verb.as_str(), required.join(", ")),
        ));
    }
    // STATUS and GC concern the plugin as a whole: a runtime may leave a stale CNI_IFNAME or
    // CNI_NETNS in their environment, and what a verb never reads must not fail it.
    let attachment = matches!(verb, Verb::Add | Verb::Check | Verb::Del);
    let used = |name: &str| non_empty(name).filter(|_| attachment);
    let env = CniEnv {
        container_id: used("CNI_CONTAINERID"),
        netns: used("CNI_NETNS").map(PathBuf::from),
        ifname: used("CNI_IFNAME"),
        args: used("CNI_ARGS"),
    };
    let mut invalid = Vec::new();
    if let Some(id) = &env.container_id {
        if let Err(why) = validate_container_id(id) {
            invalid.push(format!("CNI_CONTAINERID {}", why));
        }
    }
    if let Some(name) = &env.ifname {
        if let Err(why) = validate_ifname(name) {
            invalid.push(format!("CNI_IFNAME {}", why));
        }
    }
    if let Some(path) = &env.netns {
        if !path.is_absolute() && verb != Verb::Del {
            invalid.push(format!("CNI_NETNS {:?} is not an absolute path", path));
        }
    }
    if !invalid.is_empty() {
        return Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("invalid environment variables: {}", invalid.join("; ")),
            "the runtime passed values libcni itself would reject",
        ));
    }
    Ok(env)
}

/// libcni's rule: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, plus a length cap for file names.
pub fn validate_container_id(id: &str) -> Result<(), String> {
    let shown = shorten(id);
    let mut chars = id.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return Err(format!("{shown:?} must start with a letter or digit")),
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{shown:?} contains {bad:?}; only letters, digits, _ . - are allowed"
        ));
    }
    if id.len() > MAX_CONTAINER_ID {
        return Err(format!(
            "is {} bytes long; at most {MAX_CONTAINER_ID}",
            id.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn container_ids_follow_libcni() {
        for good in ["a", "0abc", "k8s.io-1234_x", "A.b-c_d"] {
            assert!(validate_container_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "../x",
            "a/b",
            "a b",
            "ä",
            "a\0b",
            &"a".repeat(193),
        ] {
            assert!(validate_container_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_variables_are_all_named() {
        let err = env_for(Verb::Add, &lookup(&[("CNI_IFNAME", "eth0")])).unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("CNI_CONTAINERID") && err.msg.contains("CNI_NETNS"));
    }

    #[test]
    fn del_does_not_need_netns() {
        let env = env_for(
            Verb::Del,
            &lookup(&[
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", ""),
            ]),
        )
        .unwrap();
        assert!(env.netns.is_none());
    }

    #[test]
    fn status_and_gc_ignore_attachment_variables_they_never_use() {
        let stale = [
            ("CNI_CONTAINERID", "../x"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_NETNS", "relative"),
        ];
        for verb in [Verb::Status, Verb::Gc] {
            let env = env_for(verb, &lookup(&stale)).unwrap();
            assert!(env.ifname.is_none() && env.netns.is_none(), "{verb:?}");
        }
        assert_eq!(env_for(Verb::Add, &lookup(&stale)).unwrap_err().code, 4);
    }

    #[test]
    fn unknown_command_is_code_4() {
        assert_eq!(
            verb_from(&lookup(&[("CNI_COMMAND", "FOO")]))
                .unwrap_err()
                .code,
            4
        );
    }
}
