//! Diagnostics for CNI mode: JSON lines in `logFile` (timestamp, verb, container, interface,
//! message, duration), and warnings and errors also on stderr, which runtimes keep. stdout is
//! reserved for the protocol.
//!
//! The file is rotated so that it cannot fill the disk: a line that would take it past
//! `logMaxSizeMB` first renames it to `logFile.1` (and `.1` to `.2` ..., keeping `logMaxFiles`
//! files in all, the live one included). Many plugin processes write the same file at once, so
//! each line is written under an exclusive `flock` of the file, after checking that the path
//! still names the file this process has open: a writer that finds it renamed reopens the path.
//! Only the holder of the live file's lock renames it, so no line goes into a file that is being
//! rotated away, and one `write(2)` per line keeps lines whole.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::libc;
use serde_json::{json, Value};

use crate::config::LogLevel;

/// How big the log may grow: `max_files` files (the live one included) of at most `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub max_files: u32,
}

impl Rotation {
    pub fn from_config(max_size_mb: u64, max_files: u32) -> Rotation {
        Rotation {
            max_bytes: max_size_mb.saturating_mul(1024 * 1024),
            max_files,
        }
    }
}

/// A line that cannot be written after this many reopenings is dropped (the path keeps
/// changing under us: someone else is replacing it on purpose).
const REOPEN_ATTEMPTS: usize = 16;

struct LogFile {
    path: PathBuf,
    file: File,
    rotation: Rotation,
}

pub struct Logger {
    file: Option<LogFile>,
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
    pub fn open_file(&mut self, path: &Path, level: LogLevel, rotation: Rotation) {
        self.level = level;
        match open_log(path) {
            Ok(file) => {
                self.file = Some(LogFile {
                    path: path.to_path_buf(),
                    file,
                    rotation,
                })
            }
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
        if let Some(file) = self.file.as_mut() {
            if let Err(err) = file.append(text.as_bytes()) {
                eprintln!(
                    "hostguard: cannot write log file {}: {err}",
                    file.path.display()
                );
            }
        }
    }
}

/// Only a regular file is written: `O_NONBLOCK` keeps a FIFO planted at the path from blocking
/// the open (and with it every CNI call) until a reader appears, and the type is checked on the
/// opened descriptor; `O_NOFOLLOW` refuses a symlink.
fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .and_then(|file| match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(file),
            Ok(_) => Err(std::io::Error::other("not a regular file")),
            Err(err) => Err(err),
        })
}

impl LogFile {
    /// Writes one line, rotating first when it would not fit (see the module comment).
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        use fs2::FileExt;
        for _ in 0..REOPEN_ATTEMPTS {
            self.file.lock_exclusive()?;
            let outcome = self.append_locked(line);
            // Closing a descriptor drops its lock too; unlocking first keeps it short.
            let _ = FileExt::unlock(&self.file);
            match outcome? {
                Appended::Written => return Ok(()),
                Appended::Moved => self.file = open_log(&self.path)?,
            }
        }
        Err(std::io::Error::other(
            "the log file kept being replaced; line dropped",
        ))
    }

    fn append_locked(&mut self, line: &[u8]) -> std::io::Result<Appended> {
        let open = self.file.metadata()?;
        let at_path = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Appended::Moved),
            Err(err) => return Err(err),
        };
        if (at_path.dev(), at_path.ino()) != (open.dev(), open.ino()) {
            return Ok(Appended::Moved);
        }
        let size = open.len();
        if size > 0 && size.saturating_add(line.len() as u64) > self.rotation.max_bytes {
            rotate(&self.path, self.rotation.max_files)?;
            return Ok(Appended::Moved);
        }
        // One write(2) per line with O_APPEND keeps lines whole even for a writer without flock.
        self.file.write_all(line)?;
        Ok(Appended::Written)
    }
}

enum Appended {
    Written,
    /// The path names another file now (rotated, removed, replaced): reopen and try again.
    Moved,
}

/// `path.{n-1}` → `path.{n}` ... `path` → `path.1`, oldest first so nothing is overwritten but
/// the file past the limit. Called with the live file's lock held.
fn rotate(path: &Path, max_files: u32) -> std::io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if max_files <= 1 {
        return std::fs::remove_file(path);
    }
    for n in (1..max_files - 1).rev() {
        match std::fs::rename(numbered(n), numbered(n + 1)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    std::fs::rename(path, numbered(1))
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

    /// A directory of the test's own, removed when the test ends, failed or not.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("hg-log-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Every file of the log, the live one first.
    fn log_files(path: &Path) -> Vec<PathBuf> {
        let dir = path.parent().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(name))
            .collect();
        files.sort();
        files
    }

    /// Writers with their own descriptors, as separate plugin processes have, all rotating one
    /// small log: every line is whole JSON, none is lost, no file passes the limit.
    fn hammer(dir: &Scratch, rotation: Rotation) -> (PathBuf, Vec<Value>) {
        const WRITERS: usize = 8;
        const LINES: usize = 400;
        let path = dir.0.join("hostguard.log");
        std::thread::scope(|scope| {
            for writer in 0..WRITERS {
                let path = &path;
                scope.spawn(move || {
                    let mut log = Logger::new("ADD", Some(&format!("writer{writer}")), None);
                    log.open_file(path, LogLevel::Info, rotation);
                    for n in 0..LINES {
                        log.info(&format!("line {n} of writer {writer}"));
                    }
                });
            }
        });
        let mut lines = Vec::new();
        for file in log_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.len() as u64 <= rotation.max_bytes,
                "{} is {} bytes",
                file.display(),
                text.len()
            );
            for line in text.lines() {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: broken line {line:?}: {e}", file.display()));
                lines.push(value);
            }
        }
        (path, lines)
    }

    #[test]
    fn concurrent_writers_rotate_without_losing_or_mixing_lines() {
        let rotation = Rotation {
            max_bytes: 64 * 1024,
            max_files: 100,
        };
        let dir = Scratch::new("all");
        let (path, lines) = hammer(&dir, rotation);
        assert_eq!(lines.len(), 8 * 400, "lines lost");
        let files = log_files(&path);
        assert!(files.len() > 3, "no rotation happened: {files:?}");
        for writer in 0..8 {
            let mine: Vec<&Value> = lines
                .iter()
                .filter(|l| l["containerID"] == format!("writer{writer}"))
                .collect();
            assert_eq!(mine.len(), 400, "writer {writer}");
        }
    }

    #[test]
    fn only_max_files_files_are_kept() {
        let rotation = Rotation {
            max_bytes: 16 * 1024,
            max_files: 3,
        };
        let dir = Scratch::new("capped");
        let (path, lines) = hammer(&dir, rotation);
        let files = log_files(&path);
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["hostguard.log", "hostguard.log.1", "hostguard.log.2"]
        );
        // The oldest went: 3 files of 16 KiB cannot hold 3,200 lines of over 100 bytes.
        assert!(lines.len() < 8 * 400, "{} lines kept", lines.len());
    }

    #[test]
    fn one_file_means_the_log_starts_over() {
        let dir = Scratch::new("one");
        let path = dir.0.join("hostguard.log");
        std::fs::write(&path, vec![b'x'; 2048]).unwrap();
        let mut log = Logger::new("DEL", None, None);
        let rotation = Rotation {
            max_bytes: 1024,
            max_files: 1,
        };
        log.open_file(&path, LogLevel::Info, rotation);
        log.info("fresh");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('{') && text.contains("fresh"), "{text}");
        assert_eq!(log_files(&path), vec![path]);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_305_600, 999), "2026-11-22T00:00:00.999Z");
    }
}
