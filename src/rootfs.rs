//! Paths inside another root: the doctor's `--root` and install's `--host-root`, where the host's
//! `/` is mounted (read-only at `/host` in the DaemonSet) or a test fixture lives.
//!
//! A symbolic link inside such a root means what it means on the host: an absolute target
//! starts again at the root, and `..` never climbs above it. Following it with the kernel's own
//! resolution from the container would read (and `--fix` would write) the container's files, or
//! the files of whatever the link names on the machine running the tests. [`confine`] resolves
//! every link itself, component by component, as `openat2(RESOLVE_IN_ROOT)` does, and returns a
//! path with no link left to follow; callers then use ordinary file calls on it. A link that
//! changes between the resolution and the use is outside what this protects against: the root is
//! the host's own configuration, not a hostile tree.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Links followed in one resolution before giving up, as the kernel's ELOOP limit.
const MAX_LINKS: usize = 40;

/// `path` (absolute, under `root` or as seen from inside it) with every symbolic link resolved
/// inside `root`. With `root` = `/` the kernel's own resolution already is that, and the path is
/// returned as it is. A link to `/dev/null` as the last component stays `/dev/null`: that is how
/// systemd masks a file, and it names the same device in every root. A path with more than
/// [`MAX_LINKS`] links resolves to where the resolution stopped (which then does not exist).
pub fn confine(root: &Path, path: &Path) -> PathBuf {
    if root == Path::new("/") {
        return path.to_path_buf();
    }
    let relative = path
        .strip_prefix(root)
        .unwrap_or_else(|_| path.strip_prefix("/").unwrap_or(path));
    let mut pending: VecDeque<OsString> = parts(relative).into();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let here = join(root, &resolved).join(&part);
        let is_link = std::fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            resolved.push(part);
            continue;
        }
        links += 1;
        let Ok(target) = std::fs::read_link(&here) else {
            resolved.push(part);
            continue;
        };
        if links > MAX_LINKS {
            resolved.push(part);
            resolved.push(OsString::from("(too many levels of symbolic links)"));
            break;
        }
        if target == Path::new("/dev/null") && pending.is_empty() {
            return PathBuf::from("/dev/null");
        }
        if target.is_absolute() {
            resolved.clear();
        }
        for (i, next) in parts(&target).into_iter().enumerate() {
            pending.insert(i, next);
        }
    }
    join(root, &resolved)
}

fn parts(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
        symlink("/usr/lib", root.join("lib")).unwrap();
        symlink("/etc/real", root.join("abs")).unwrap();
        symlink("../../../../../../../etc", root.join("usr/lib/up")).unwrap();
        symlink("/dev/null", root.join("masked")).unwrap();
        symlink("loop", root.join("loop")).unwrap();

        assert_eq!(
            confine(root, &root.join("lib/systemd/x")),
            root.join("usr/lib/systemd/x")
        );
        assert_eq!(confine(root, &root.join("abs/f")), root.join("etc/real/f"));
        assert_eq!(
            confine(root, &root.join("usr/lib/up/f")),
            root.join("etc/f")
        );
        assert_eq!(confine(root, &root.join("a/../../../f")), root.join("f"));
        assert_eq!(confine(root, Path::new("/lib/x")), root.join("usr/lib/x"));
        assert_eq!(confine(root, &root.join("masked")), Path::new("/dev/null"));
        assert!(confine(root, &root.join("loop/f")).starts_with(root));
        assert_eq!(
            confine(Path::new("/"), Path::new("/lib/x")),
            Path::new("/lib/x")
        );
    }
}
