//! Diagnostics for CNI mode: JSON lines in `logFile` (timestamp, verb, container, interface,
//! message, duration), and warnings and errors also on stderr, which runtimes keep. stdout is
//! reserved for the protocol.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::libc;
use serde_json::{json, Value};

use crate::cni::config::LogLevel;

pub struct Logger {
    file: Option<File>,
    /// The guard daemon's lines also go to stdout, where `kubectl logs` shows them; there they
    /// replace the plain-text copy of warnings on stderr.
    stdout: bool,
    level: LogLevel,
    verb: &'static str,
    container_id: String,
    ifname: String,
    started: Instant,
}

impl Logger {
    pub fn new(verb: &'static str, container_id: Option<&str>, ifname: Option<&str>) -> Logger {
        Logger {
            file: None,
            stdout: false,
            level: LogLevel::Info,
            verb,
            container_id: container_id.unwrap_or_default().to_string(),
            ifname: ifname.unwrap_or_default().to_string(),
            started: Instant::now(),
        }
    }

    /// A logger for a long-running subcommand: every line at `level` or above, as JSON on stdout.
    pub fn for_daemon(verb: &'static str, level: LogLevel) -> Logger {
        let mut log = Logger::new(verb, None, None);
        log.stdout = true;
        log.level = level;
        log
    }

    /// Starts writing to `path`. A log file that cannot be opened is reported on stderr and does
    /// not fail the CNI call: losing a log line is better than failing a pod.
    ///
    /// Only a regular file is written: `O_NONBLOCK` keeps a FIFO planted at the path from
    /// blocking the open (and with it every CNI call) until a reader appears, and the type is
    /// checked on the opened descriptor.
    pub fn open_file(&mut self, path: &Path, level: LogLevel) {
        self.level = level;
        let opened = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .and_then(|file| match file.metadata() {
                Ok(meta) if meta.is_file() => Ok(file),
                Ok(_) => Err(std::io::Error::other("not a regular file")),
                Err(err) => Err(err),
            });
        match opened {
            Ok(file) => self.file = Some(file),
            Err(err) => eprintln!("hostguard: cannot open log file {}: {err}", path.display()),
        }
    }

    pub fn error(&mut self, msg: &str) {
        self.log(LogLevel::Error, msg, None);
    }

    pub fn warn(&mut self, msg: &str) {
        self.log(LogLevel::Warn, msg, None);
    }

    pub fn info(&mut self, msg: &str) {
        self.log(LogLevel::Info, msg, None);
    }

    pub fn debug(&mut self, msg: &str) {
        self.log(LogLevel::Debug, msg, None);
    }

    /// The closing line of a call, with how long it took.
    pub fn finish(&mut self, level: LogLevel, msg: &str) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.log(level, msg, Some(json!((ms * 1000.0).round() / 1000.0)));
    }

    fn log(&mut self, level: LogLevel, msg: &str, duration_ms: Option<Value>) {
        if level <= LogLevel::Warn && !self.stdout {
            eprintln!("hostguard {} {}: {msg}", self.verb, level.as_str());
        }
        if level > self.level || (self.file.is_none() && !self.stdout) {
            return;
        }
        let mut line = json!({
            "ts": rfc3339_now(),
            "level": level.as_str(),
            "verb": self.verb,
            "containerID": self.container_id,
            "ifname": self.ifname,
            "msg": msg,
        });
        if let (Some(ms), Some(obj)) = (duration_ms, line.as_object_mut()) {
            obj.insert("durationMs".into(), ms);
        }
        let mut text = line.to_string();
        text.push('\n');
        if self.stdout {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        // One write(2) per line with O_APPEND keeps lines whole when several plugins share a file.
        if let Some(file) = self.file.as_mut() {
            let _ = file.write_all(text.as_bytes());
        }
    }
}

/// UTC time as `2026-11-22T10:04:05.123Z`, without a date crate: the civil-from-days algorithm.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_millis())
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_305_600, 999), "2026-11-22T00:00:00.999Z");
    }
}
