//! CNI mode: the protocol only. Parse the environment and stdin, dispatch one verb, print its
//! result or a CNI error on stdout. Host work lives in `crate::host`; nothing here speaks netlink.

pub mod config;
pub mod env;
pub mod error;
pub mod version;

mod add;
mod check;
mod del;
mod gc;
mod result;
mod status;
mod uplink;

use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};

use crate::log::Logger;
use crate::state::StateDir;
use config::{LogLevel, NetConf};
use env::{CniEnv, Verb};
use error::{code, CniError, CniResult};

/// The largest network configuration we read. Real ones are a few KiB; the cap bounds memory
/// and time whatever a caller pipes in.
pub const MAX_STDIN: u64 = 1 << 20;

/// One parsed invocation, handed to a verb.
pub struct Request {
    pub verb: Verb,
    pub env: CniEnv,
    pub conf: NetConf,
}

/// Runs one CNI invocation from the process environment and stdio; returns the exit status.
pub fn run() -> i32 {
    let lookup = |key: &str| std::env::var(key).ok();
    let (reply, status) = invocation(&lookup, &mut std::io::stdin().lock());
    let mut out = std::io::stdout().lock();
    if let Some(text) = reply {
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
    status
}

/// The whole invocation as a function of its inputs: what to print on stdout and the exit status.
pub fn invocation(
    lookup: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
) -> (Option<String>, i32) {
    let verb = env::verb_from(lookup);
    if let Ok(Verb::Version) = verb {
        // VERSION needs nothing but CNI_COMMAND, and stdin may be anything or nothing.
        return (Some(version::version_reply()), 0);
    }
    let input = read_capped(stdin);
    // Every error, even one about the environment, answers in the caller's version once stdin
    // names one we speak.
    let reply_version = input
        .as_deref()
        .ok()
        .and_then(config::peek_version)
        .unwrap_or_else(|| version::CURRENT.to_string());
    let verb = match verb {
        Ok(verb) => verb,
        Err(err) => return (Some(err.to_json(&reply_version)), 1),
    };
    let mut log = Logger::new(
        verb.as_str(),
        lookup("CNI_CONTAINERID").as_deref(),
        lookup("CNI_IFNAME").as_deref(),
    );
    // A panic is a bug, but the runtime must still get a CNI error, not a backtrace.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| dispatch(verb, lookup, input, &mut log)))
        .unwrap_or_else(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(CniError::new(
                code::IO_FAILURE,
                format!("internal error: {what}"),
                "this is a hostguard bug; please report it with the log file",
            ))
        });
    match outcome {
        Ok(out) => {
            log.finish(LogLevel::Info, "ok");
            (out, 0)
        }
        Err(err) => {
            log.finish(LogLevel::Error, &err.to_string());
            (Some(err.to_json(&reply_version)), 1)
        }
    }
}

fn dispatch(
    verb: Verb,
    lookup: &dyn Fn(&str) -> Option<String>,
    input: CniResult<Vec<u8>>,
    log: &mut Logger,
) -> CniResult<Option<String>> {
    let env = env::env_for(verb, lookup)?;
    if verb == Verb::Del {
        // DEL never fails on its configuration; it reads what it uses by itself.
        return del::del(&env, input.as_deref().map_err(Clone::clone), log).map(|()| None);
    }
    let conf = config::parse(&input?)?;
    if let Some(path) = &conf.plugin.log_file {
        let rotation = crate::log::Rotation::from_config(
            conf.plugin.log_max_size_mb,
            conf.plugin.log_max_files,
        );
        log.open_file(path, conf.plugin.log_level, rotation);
    }
    let needed = match verb {
        Verb::Check => Some(version::SpecVersion::CHECK),
        Verb::Status | Verb::Gc => Some(version::SpecVersion::STATUS_GC),
        _ => None,
    };
    if let Some(minimum) = needed {
        if conf.spec < minimum {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("{} is not part of CNI {}", verb.as_str(), conf.cni_version),
                format!(
                    "{} needs cniVersion {minimum} or later; raise the conflist's cniVersion if \
                     the runtime and every plugin of the chain support it.",
                    verb.as_str()
                ),
            ));
        }
    }
    let req = Request { verb, env, conf };
    log.debug(&format!(
        "network {} spec {}",
        req.conf.name, req.conf.cni_version
    ));
    if matches!(verb, Verb::Add | Verb::Check) {
        uplink::recover_interrupted(&req, log)?;
    }
    match verb {
        Verb::Add => add::add(&req, log).map(|v| Some(v.to_string())),
        Verb::Check => check::check(&req, log).map(|()| None),
        Verb::Del => unreachable!("DEL returned above"),
        Verb::Status => status::status(&req, log).map(|()| None),
        Verb::Gc => gc::gc(&req, log).map(|()| None),
        Verb::Version => Ok(Some(version::version_reply())),
    }
}

fn read_capped(stdin: &mut dyn Read) -> CniResult<Vec<u8>> {
    let mut bytes = Vec::new();
    stdin
        .take(MAX_STDIN + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| CniError::new(code::IO_FAILURE, format!("cannot read stdin: {err}"), ""))?;
    if bytes.len() as u64 > MAX_STDIN {
        return Err(CniError::new(
            code::DECODING_FAILURE,
            format!("stdin is larger than {} KiB", MAX_STDIN >> 10),
            "a CNI network configuration is a few KiB; the caller sent something else",
        ));
    }
    Ok(bytes)
}

/// The `waitFor` conditions looked at once, answered with the calling verb's codes: `unmet_code`
/// when a condition does not hold, `failure_code` when the interfaces cannot be read at all.
pub(crate) fn upstream_ready_now(
    req: &Request,
    unmet_code: u32,
    failure_code: u32,
    hint: &str,
) -> CniResult<()> {
    use crate::host::wait::{check_ready_here, WaitError};
    match check_ready_here(&req.conf.plugin.wait_for.interfaces) {
        Ok(()) => Ok(()),
        Err(WaitError::Unmet(unmet)) => Err(CniError::new(unmet_code, unmet.to_string(), hint)),
        Err(err @ WaitError::Netlink(_)) => Err(CniError::new(
            failure_code,
            "cannot read the waitFor interfaces",
            err.to_string(),
        )),
    }
}

pub(crate) fn open_state(plugin: &crate::config::PluginConfig) -> CniResult<StateDir> {
    StateDir::open(&plugin.state_dir, &plugin.run_dir).map_err(|err| {
        CniError::new(
            code::IO_FAILURE,
            format!(
                "cannot use state directory {} or run directory {}",
                plugin.state_dir.display(),
                plugin.run_dir.display()
            ),
            format!(
                "{err:#}; check stateDir and runDir in the conflist and that they are writable \
                 by root"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashMap;

    fn call(pairs: &[(&str, &str)], stdin: &[u8]) -> (Option<Value>, i32) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (out, status) = invocation(&|k| map.get(k).cloned(), &mut &stdin[..]);
        (out.map(|t| serde_json::from_str(&t).unwrap()), status)
    }

    #[test]
    fn version_needs_only_the_command() {
        let (out, status) = call(&[("CNI_COMMAND", "VERSION")], b"garbage");
        assert_eq!(status, 0);
        let out = out.unwrap();
        assert_eq!(out["cniVersion"], "1.1.0");
        assert_eq!(out["supportedVersions"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn oversized_stdin_is_refused_without_reading_it_all() {
        let big = vec![b' '; (MAX_STDIN + 10) as usize];
        let (out, status) = call(&[("CNI_COMMAND", "STATUS")], &big);
        assert_eq!(status, 1);
        assert_eq!(out.unwrap()["code"], 6);
    }

    #[test]
    fn errors_answer_in_the_callers_version() {
        let (out, status) = call(
            &[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "e"),
            ],
            br#"{"cniVersion":"0.3.1","name":"n"}"#,
        );
        assert_eq!(status, 1);
        let out = out.unwrap();
        assert_eq!(out["code"], 1);
        assert_eq!(out["cniVersion"], "0.3.1");
    }

    #[test]
    fn environment_errors_answer_in_the_callers_version_too() {
        let (out, _) = call(
            &[("CNI_COMMAND", "FROB")],
            br#"{"cniVersion":"0.4.0","name":"n"}"#,
        );
        assert_eq!(out.unwrap()["cniVersion"], "0.4.0");
        let (out, _) = call(
            &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "../x")],
            br#"{"cniVersion":"1.0.0","name":"n"}"#,
        );
        let out = out.unwrap();
        assert_eq!(
            (out["code"].as_u64(), out["cniVersion"].as_str()),
            (Some(4), Some("1.0.0"))
        );
    }

    #[test]
    fn details_are_sentences_not_debug_text() {
        let (out, _) = call(
            &[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "e"),
            ],
            br#"{"cniVersion":"0.3.1","name":"n"}"#,
        );
        let details = out.unwrap()["details"].as_str().unwrap().to_string();
        assert!(
            details.contains("0.4.0") && !details.contains("SpecVersion"),
            "{details}"
        );
    }

    /// hostguard is last in the chain, and a failed DEL stops the runtime from running the
    /// interface plugin's and IPAM's DEL: no configuration problem may fail it.
    #[test]
    fn del_succeeds_whatever_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let s = state.display();
        let broken = [
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","stateDir":"{s}","routes":{{"restor":false}}}}"#
            ),
            format!(r#"{{"cniVersion":"1.0.0","name":"n","stateDir":"{s}","logLevel":"verbose"}}"#),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","stateDir":"{s}","waitFor":{{"timeoutMs":600000}}}}"#
            ),
            format!(r#"{{"cniVersion":"9.9.9","name":"n","stateDir":"{s}"}}"#),
            format!(r#"{{"cniVersion":"1.0.0","stateDir":"{s}"}}"#),
            r#"{"cniVersion":"1.0.0","name":"n","stateDir":"relative"}"#.to_string(),
            r#"{"cniVersion":"1.0.0","name":"n","#.to_string(),
            "[]".to_string(),
        ];
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ];
        for stdin in &broken {
            let (out, status) = call(&env, stdin.as_bytes());
            assert_eq!((out, status), (None, 0), "{stdin}");
            assert!(!state.exists(), "{stdin}: DEL created the state directory");
        }
    }
}
