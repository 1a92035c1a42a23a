//! `hostguard guard` arguments.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: hostguard guard --plugin-config FILE [--conf-dir DIR] [--metrics-addr HOST:PORT]
                       [--settle-ms N]

Runs in the foreground and repairs the baseline default routes and guarded policy rules of the
network namespace it runs in, as a pod ADD would, whenever the kernel reports a change.

  --plugin-config FILE   the hostguard entry (the file `install --plugin-config` takes)
  --conf-dir DIR         read the hostguard entry from the config file a runtime loads in DIR
                         instead, so the plugin and the daemon use one configuration
  --metrics-addr ADDR    serve /healthz, /readyz and /metrics over HTTP on ADDR
  --settle-ms N          look once the events have been quiet this long (default 100)

SIGHUP re-reads the configuration; SIGTERM and SIGINT stop it (exit 0).
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
    let mut opts = Options {
        plugin_config: None,
        conf_dir: None,
        metrics_addr: None,
        settle: DEFAULT_SETTLE,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let mut value = || {
            rest.next()
                .filter(|v| !v.starts_with("--"))
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--plugin-config" => opts.plugin_config = Some(PathBuf::from(value()?)),
            "--conf-dir" => opts.conf_dir = Some(PathBuf::from(value()?)),
            "--metrics-addr" => opts.metrics_addr = Some(value()?),
            "--settle-ms" => {
                let text = value()?;
                let ms = text
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= MAX_SETTLE_MS)
                    .ok_or_else(|| {
                        format!("--settle-ms {text:?} is not a number of milliseconds 0..={MAX_SETTLE_MS}")
                    })?;
                opts.settle = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
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
