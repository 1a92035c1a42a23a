//! INI-style configuration files, read the way their owners read them: NetworkManager (GLib key
//! files: one bad line makes the whole file invalid) and systemd (a bad line is logged and
//! skipped). Shared by `host::nm` and `doctor`, which must agree on what a file says.
//!
//! Files come from directories other people control, so reading never follows a FIFO or a device
//! into a hang, never slurps an unbounded file, and every problem names the file and line.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::libc;

/// Configuration files are a few kilobytes; anything past this is not a configuration file.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Whose rules a file is parsed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// GLib `GKeyFile` (NetworkManager): `#` comments only, no continuation lines.
    GKeyFile,
    /// systemd's config parser: `#` and `;` comments, a trailing `\` continues the line.
    Systemd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// 1-based line of the key (the first line of a continued value).
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// A line the owner would reject (GKeyFile: the whole file) or skip (systemd: that line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Sections in file order; a section name that appears twice appears twice here.
    pub sections: Vec<Section>,
    pub problems: Vec<Problem>,
}

impl Parsed {
    /// Every `key=value` of `section` (all sections of that name, file order).
    pub fn entries<'a, 'b>(&'a self, section: &'b str) -> impl Iterator<Item = &'a Entry> + 'b
    where
        'a: 'b,
    {
        self.sections
            .iter()
            .filter(move |s| s.name == section)
            .flat_map(|s| s.entries.iter())
    }

    /// The last assignment of `key` in `section`: the one both GLib and systemd honour.
    pub fn last(&self, section: &str, key: &str) -> Option<&Entry> {
        self.entries(section).filter(|e| e.key == key).last()
    }
}

pub fn parse(text: &str, dialect: Dialect) -> Parsed {
    let mut parsed = Parsed::default();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let number = index + 1;
        let mut line = raw.trim().to_owned();
        if dialect == Dialect::Systemd {
            // systemd joins a line ending in a backslash with the next one (comment lines inside a
            // continuation are dropped), replacing the backslash with a space.
            while line.ends_with('\\') && !is_comment(&line, dialect) {
                line.pop();
                line.push(' ');
                match lines.next() {
                    Some((_, next)) => {
                        let next = next.trim();
                        if !is_comment(next, dialect) {
                            line.push_str(next);
                        }
                    }
                    None => break,
                }
            }
            line = line.trim().to_owned();
        }
        if line.is_empty() || is_comment(&line, dialect) {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            match section_name(rest, dialect) {
                Some(name) => parsed.sections.push(Section {
                    name,
                    line: number,
                    entries: Vec::new(),
                }),
                None => parsed.problems.push(Problem {
                    line: number,
                    message: format!("invalid section header {line:?}"),
                }),
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            parsed.problems.push(Problem {
                line: number,
                message: format!("{line:?} is not a key=value pair, section header or comment"),
            });
            continue;
        };
        let key = key.trim_end();
        if key.is_empty() {
            parsed.problems.push(Problem {
                line: number,
                message: format!("{line:?} has no key before '='"),
            });
            continue;
        }
        let Some(section) = parsed.sections.last_mut() else {
            parsed.problems.push(Problem {
                line: number,
                message: format!("{key}= appears before any [section]"),
            });
            continue;
        };
        section.entries.push(Entry {
            key: key.to_owned(),
            value: value.trim_start().to_owned(),
            line: number,
        });
    }
    parsed
}

fn is_comment(line: &str, dialect: Dialect) -> bool {
    match dialect {
        Dialect::GKeyFile => line.starts_with('#'),
        Dialect::Systemd => line.starts_with('#') || line.starts_with(';'),
    }
}

fn section_name(after_bracket: &str, dialect: Dialect) -> Option<String> {
    let name = match dialect {
        // GLib takes everything up to the last ']' and ignores what follows.
        Dialect::GKeyFile => &after_bracket[..after_bracket.rfind(']')?],
        // systemd requires the line to end with ']'.
        Dialect::Systemd => after_bracket.strip_suffix(']')?,
    };
    if name.is_empty() || name.contains(['[', ']']) || name.chars().any(char::is_control) {
        return None;
    }
    Some(name.to_owned())
}

/// Reads a configuration file that someone else controls. It must be a regular file (a FIFO would
/// block the reader forever, a device could be endless), at most [`MAX_CONFIG_BYTES`], and UTF-8.
pub fn read_config_file(path: &Path) -> Result<String> {
    let metadata = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if !metadata.file_type().is_file() {
        bail!(
            "{} is {}, not a regular file; remove it or replace it with a regular file",
            path.display(),
            describe_type(&metadata)
        );
    }
    // O_NONBLOCK: if the file was swapped for a FIFO after the check, open must not wait for a
    // writer; the fstat below then rejects it.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let opened = file
        .metadata()
        .with_context(|| format!("stat {}", path.display()))?;
    if !opened.file_type().is_file() {
        bail!(
            "{} changed into {} while being opened",
            path.display(),
            describe_type(&opened)
        );
    }
    read_bounded(file, path)
}

fn read_bounded(file: File, path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read {}", path.display()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "{} is larger than {} bytes, which no configuration file is",
            path.display(),
            MAX_CONFIG_BYTES
        );
    }
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        anyhow::anyhow!(
            "{}: line {line}: not valid UTF-8 (is it a binary file?)",
            path.display()
        )
    })
}

pub fn describe_type(metadata: &std::fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// systemd's `parse_boolean()`: 1/yes/y/true/t/on and 0/no/n/false/f/off, any case.
pub fn parse_systemd_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// NetworkManager's boolean keys (`_nm_utils_ascii_str_to_bool`): true/yes/on/1 and
/// false/no/off/0, any case, surrounding whitespace ignored.
pub fn parse_nm_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gkeyfile_sections_keys_and_comments() {
        let parsed = parse(
            "# c\n[main]\nplugins = keyfile\n\n[keyfile]\nunmanaged-devices=interface-name:cali*\n; not a comment\n",
            Dialect::GKeyFile,
        );
        assert_eq!(
            parsed.last("main", "plugins").map(|e| e.value.as_str()),
            Some("keyfile")
        );
        let entry = parsed.last("keyfile", "unmanaged-devices").unwrap();
        assert_eq!(
            (entry.value.as_str(), entry.line),
            ("interface-name:cali*", 6)
        );
        assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
        assert_eq!(parsed.problems[0].line, 7);
    }

    #[test]
    fn systemd_comments_continuations_and_bad_lines() {
        let parsed = parse(
            "; comment\n[Network]\nManageForeignRoutes=\\\n  no\ngarbage line\nKey=1\n",
            Dialect::Systemd,
        );
        assert_eq!(
            parsed
                .last("Network", "ManageForeignRoutes")
                .map(|e| e.value.as_str()),
            Some("no")
        );
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].line, 5);
        assert!(parsed.problems[0].message.contains("garbage line"));
    }

    #[test]
    fn key_before_any_section_is_a_problem() {
        let parsed = parse("a=b\n[x]\n", Dialect::Systemd);
        assert_eq!(parsed.problems.len(), 1);
        assert!(parsed.problems[0].message.contains("before any [section]"));
    }

    #[test]
    fn booleans_in_each_dialect() {
        for yes in ["yes", "TRUE", "on", "1", "y", "t"] {
            assert_eq!(parse_systemd_bool(yes), Some(true), "{yes}");
        }
        for no in ["no", "False", "OFF", "0", "n", "f"] {
            assert_eq!(parse_systemd_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_systemd_bool("nope"), None);
        assert_eq!(parse_systemd_bool(""), None);
        assert_eq!(parse_nm_bool(" Yes "), Some(true));
        assert_eq!(parse_nm_bool("y"), None);
    }

    #[test]
    fn fifo_directory_oversized_and_binary_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("hg-keyfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("x.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = read_config_file(&fifo).unwrap_err().to_string();
        assert!(err.contains("a FIFO, not a regular file"), "{err}");
        let err = read_config_file(&dir).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let big = dir.join("big.conf");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        assert!(read_config_file(&big)
            .unwrap_err()
            .to_string()
            .contains("larger than"));
        let binary = dir.join("bin.conf");
        std::fs::write(&binary, b"[a]\nb=c\n\xff\xfe\n").unwrap();
        let err = read_config_file(&binary).unwrap_err().to_string();
        assert!(err.contains("line 3: not valid UTF-8"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
