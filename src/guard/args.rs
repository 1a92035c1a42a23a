//! `hostguard guard` arguments.

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{Opt, Spec};

pub const USAGE: &str = "\
usage: hostguard guard {--plugin-config FILE | --conf-dir DIR} [--metrics-addr HOST:PORT]
                       [--settle-ms N]

Runs in the foreground and repairs the baseline default routes and guarded policy rules of the
network namespace it runs in, as a pod ADD would, whenever the kernel reports a change.

  --plugin-config FILE   the hostguard entry (the file `install --plugin-config` takes)
  --conf-dir DIR         read the hostguard entry from the config file a runtime loads in DIR
                         instead, so the plugin and the daemon use one configuration
  --metrics-addr ADDR    serve /healthz, /readyz and /metrics over HTTP on ADDR
  --settle-ms N          look once the events have been quiet this long (default 100)

SIGHUP re-reads the configuration; SIGTERM and SIGINT stop it.

Exit status: 0 stopped by SIGTERM or SIGINT, 1 failed (configuration unreadable or refused, no
netlink, --metrics-addr taken), 2 usage.
";

pub const DEFAULT_SETTLE: Duration = Duration::from_millis(100);
/// A settle longer than this would leave the node broken for longer than any operator expects.
const MAX_SETTLE_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub plugin_config: Option<PathBuf>,
    pub conf_dir: Option<PathBuf>,
    pub metrics_addr: Option<String>,
    pub settle: Duration,
}

/// `Ok(None)` for `--help`.
pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
    const SPEC: Spec = Spec {
        options: &[
            Opt::value("--plugin-config"),
            Opt::value("--conf-dir"),
            Opt::value("--metrics-addr"),
            Opt::value("--settle-ms"),
        ],
        from_env: false,
    };
    let Some(given) = crate::args::given(&SPEC, args)? else {
        return Ok(None);
    };
    let settle = match given.get("--settle-ms") {
        None => DEFAULT_SETTLE,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= MAX_SETTLE_MS)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                format!("--settle-ms {text:?} is not a number of milliseconds 0..={MAX_SETTLE_MS}")
            })?,
    };
    let opts = Options {
        plugin_config: given.get("--plugin-config").map(PathBuf::from),
        conf_dir: given.get("--conf-dir").map(PathBuf::from),
        metrics_addr: given.get("--metrics-addr").map(str::to_string),
        settle,
    };
    if opts.plugin_config.is_none() && opts.conf_dir.is_none() {
        return Err("--plugin-config FILE or --conf-dir DIR is required".into());
    }
    Ok(Some(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_refuses_mistakes() {
        let opts = parse(&args(&[
            "--plugin-config",
            "/e.json",
            "--metrics-addr",
            "127.0.0.1:9",
            "--settle-ms",
            "0",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(opts.plugin_config, Some(PathBuf::from("/e.json")));
        assert_eq!(opts.settle, Duration::ZERO);
        assert_eq!(opts.metrics_addr.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(
            parse(&args(&["--conf-dir", "/d"])).unwrap().unwrap().settle,
            DEFAULT_SETTLE
        );
        assert_eq!(parse(&args(&["--help"])), Ok(None));
        let spelled_inline = parse(&args(&["--conf-dir=/d", "--settle-ms=7"]))
            .unwrap()
            .unwrap();
        assert_eq!(spelled_inline.conf_dir, Some(PathBuf::from("/d")));
        assert_eq!(spelled_inline.settle, Duration::from_millis(7));
        for bad in [
            &["--plugin-config"][..],
            &["--plugin-config", "/e", "--settle-ms", "-1"],
            &["--plugin-config", "/e", "--settle-ms", "99999999"],
            &["--plugin-config", "/e", "--bogus"],
            &["--settle-ms", "5"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
