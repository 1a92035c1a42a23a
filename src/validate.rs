//! `hostguard validate [--conflist FILE | --plugin-config FILE]`: would the plugin accept this
//! hostguard entry? Judged by the plugin's own parsers, never a copy of their rules: a conflist's
//! hostguard entries get the stdin a runtime would send for them (the entry with the conflist's
//! `cniVersion` and `name`) and go through `cni::config::parse`; a plugin configuration goes
//! through `config::parse_entry`, as `install --plugin-config` does.
//!
//! Exit 0 and a line on stdout when the plugin would accept it. Exit 1 and, on stdout, the CNI
//! error the plugin would answer with (its code, message and details). Exit 2 on a usage error or a
//! file that cannot be read.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::args::{Opt, Spec};
use crate::cni::error::{code, CniError};
use crate::cni::version;

pub const USAGE: &str = "\
usage: hostguard validate --conflist FILE
       hostguard validate --plugin-config FILE

Says whether the hostguard plugin would accept the hostguard entry, judged by the plugin's own
parser; nothing is written.

  --conflist FILE       a conflist (or a single-plugin .conf): each hostguard entry in it, as a
                        runtime would hand it to the plugin
  --plugin-config FILE  a hostguard entry alone (the file `install --plugin-config` takes)

Exit status: 0 the plugin accepts it, 1 it does not (the plugin's CNI error, with code, msg and
details, on stdout), 2 the file cannot be read, or usage.
";

/// The largest file judged; the plugin reads at most this much from stdin too.
const MAX_FILE: u64 = crate::cni::MAX_STDIN;

enum Source {
    Conflist(PathBuf),
    PluginConfig(PathBuf),
}

/// Runs `hostguard validate ARGS` and returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let source = match parse_args(args) {
        Ok(Some(source)) => source,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(why) => {
            eprint!("hostguard validate: {why}\n\n{USAGE}");
            return 2;
        }
    };
    let (path, judged) = match &source {
        Source::Conflist(path) => (path, read(path).map(|bytes| judge_conflist(&bytes))),
        Source::PluginConfig(path) => (path, read(path).map(|bytes| judge_plugin_config(&bytes))),
    };
    match judged {
        Err(why) => {
            eprintln!("hostguard validate: {why}");
            2
        }
        Ok(Ok(count)) => {
            println!(
                "{}: the hostguard plugin accepts {}",
                path.display(),
                match count {
                    1 => "its hostguard entry".to_string(),
                    n => format!("all {n} hostguard entries"),
                }
            );
            0
        }
        Ok(Err((cni_version, err))) => {
            eprintln!(
                "hostguard validate: {}: the plugin would refuse it with {err}",
                path.display()
            );
            println!("{}", err.to_json(&cni_version));
            1
        }
    }
}

fn parse_args(args: &[String]) -> Result<Option<Source>, String> {
    const SPEC: Spec = Spec {
        options: &[Opt::value("--conflist"), Opt::value("--plugin-config")],
        from_env: false,
    };
    let Some(given) = crate::args::given(&SPEC, args)? else {
        return Ok(None);
    };
    match (given.get("--conflist"), given.get("--plugin-config")) {
        (Some(file), None) => Ok(Some(Source::Conflist(file.into()))),
        (None, Some(file)) => Ok(Some(Source::PluginConfig(file.into()))),
        (None, None) => Err("give --conflist FILE or --plugin-config FILE".into()),
        (Some(_), Some(_)) => {
            Err("give one of --conflist FILE or --plugin-config FILE, not both".into())
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|err| format!("{}: {err}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("{}: {err}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "{} is larger than {} KiB, more than a runtime would hand a plugin",
            path.display(),
            MAX_FILE >> 10
        ));
    }
    Ok(bytes)
}

/// The answer for a refused entry: the version to answer in, and the plugin's error.
type Refusal = (String, CniError);

/// Every hostguard entry of a conflist (or a single-plugin `.conf`) as the plugin receives it.
/// Returns how many entries were judged.
pub fn judge_conflist(bytes: &[u8]) -> Result<usize, Refusal> {
    let current = || version::CURRENT.to_string();
    let root = object(bytes).map_err(|err| (current(), err))?;
    let cni_version = root.get("cniVersion").cloned();
    let reply_version = cni_version
        .as_ref()
        .and_then(Value::as_str)
        .filter(|v| version::SUPPORTED.contains(v))
        .map_or_else(current, str::to_string);
    let entries: Vec<&Map<String, Value>> = match root.get("plugins") {
        Some(Value::Array(plugins)) => plugins.iter().filter_map(Value::as_object).collect(),
        Some(_) => {
            return Err((
                reply_version,
                CniError::invalid_config("the conflist's plugins is not an array"),
            ))
        }
        None => vec![&root],
    };
    let ours: Vec<&Map<String, Value>> = entries
        .into_iter()
        .filter(|entry| entry.get("type").and_then(Value::as_str) == Some("hostguard"))
        .collect();
    if ours.is_empty() {
        return Err((
            reply_version,
            CniError::invalid_config("the conflist has no entry of type hostguard"),
        ));
    }
    for entry in &ours {
        // What libcni hands each plugin of a list: the entry, with the list's name and version.
        let mut stdin = (*entry).clone();
        for key in ["cniVersion", "name"] {
            match root.get(key) {
                Some(value) => stdin.insert(key.into(), value.clone()),
                None => stdin.remove(key),
            };
        }
        let bytes = serde_json::to_vec(&Value::Object(stdin)).unwrap_or_default();
        crate::cni::config::parse(&bytes).map_err(|err| (reply_version.clone(), err))?;
    }
    Ok(ours.len())
}

/// A `--plugin-config` file, judged as `install --plugin-config` judges it.
pub fn judge_plugin_config(bytes: &[u8]) -> Result<usize, Refusal> {
    let answer = |err: CniError| (version::CURRENT.to_string(), err);
    let entry = object(bytes).map_err(answer)?;
    crate::config::check_plugin_config_type(&entry).map_err(|err| answer(err.into()))?;
    crate::config::parse_entry(&entry).map_err(|err| answer(err.into()))?;
    Ok(1)
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(CniError::new(
            code::DECODING_FAILURE,
            format!(
                "the file holds {}, not a JSON object",
                crate::config::kind_of(&other)
            ),
            "A hostguard entry and a conflist are JSON objects.",
        )),
        Err(err) => Err(CniError::new(
            code::DECODING_FAILURE,
            format!("the file is not valid JSON: {err}"),
            "A hostguard entry and a conflist are JSON objects.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflist_entry_is_judged_with_the_lists_version_and_name() {
        let list = |version: &str, entry: &str| {
            format!(
                r#"{{"cniVersion":"{version}","name":"k8s","plugins":[{{"type":"bridge"}},{entry}]}}"#
            )
        };
        let ok = list(
            "1.0.0",
            r#"{"type":"hostguard","routes":{"restore":false}}"#,
        );
        assert_eq!(judge_conflist(ok.as_bytes()), Ok(1));
        let typo = list("0.4.0", r#"{"type":"hostguard","routes":{"restor":false}}"#);
        let (version, err) = judge_conflist(typo.as_bytes()).unwrap_err();
        assert_eq!((version.as_str(), err.code), ("0.4.0", 2));
        let future = list("9.9.9", r#"{"type":"hostguard"}"#);
        assert_eq!(judge_conflist(future.as_bytes()).unwrap_err().1.code, 1);
        let none = list("1.0.0", r#"{"type":"portmap"}"#);
        assert_eq!(judge_conflist(none.as_bytes()).unwrap_err().1.code, 7);
        let single = r#"{"cniVersion":"1.0.0","name":"n","type":"hostguard","stateDir":"x"}"#;
        assert_eq!(judge_conflist(single.as_bytes()).unwrap_err().1.code, 7);
    }

    #[test]
    fn a_plugin_config_is_judged_by_the_entry_parser() {
        assert_eq!(judge_plugin_config(br#"{"logLevel":"debug"}"#), Ok(1));
        assert_eq!(
            judge_plugin_config(br#"{"logLevel":"verbose"}"#)
                .unwrap_err()
                .1
                .code,
            7
        );
        assert_eq!(judge_plugin_config(b"[]").unwrap_err().1.code, 6);
        // install refuses a plugin config that names another plugin's type; so does validate
        assert_eq!(judge_plugin_config(br#"{"type":"hostguard"}"#), Ok(1));
        let other = judge_plugin_config(br#"{"type":"bridge"}"#).unwrap_err().1;
        assert_eq!(other.code, 7);
        assert!(other.msg.contains("leave \"type\" out"), "{}", other.msg);
    }
}
