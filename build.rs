//! Link settings of the `hostguard` binary (the library and the test binaries keep the default):
//!
//! - **Static by default.** The binary is copied onto nodes and into a `FROM scratch` image, so it
//!   must not depend on the host's libc. `+crt-static` in rustflags would do it, but without an
//!   explicit `--target` cargo applies rustflags to proc-macros too (serde_derive), which cannot be
//!   built that way, and an explicit `--target` moves the output away from
//!   `target/release/hostguard`. So the link arguments go to the bin target only, from here:
//!   `-static-pie` (glibc's static PIE start files; rustc already compiles position-independent
//!   code), and an empty `libgcc_s.a` first on the search path, because std names `-lgcc_s` and a
//!   static link finds no shared library for it; the unwinder itself comes from libgcc_eh.a
//!   (src/main.rs). `HOSTGUARD_DYNAMIC=1` builds the old dynamic binary.
//! - **The unwinder statically** (see src/main.rs for why: loading libgcc_s.so.1 costs a plugin
//!   process about 110 µs) whenever the C compiler has libgcc_eh.a. A crt-static build links the
//!   archive already, and other targets never load libgcc_s.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hostguard_static_unwinder)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CC");
    if let Ok(target) = std::env::var("TARGET") {
        println!(
            "cargo::rerun-if-env-changed=CC_{}",
            target.replace('-', "_")
        );
    }
    println!("cargo::rerun-if-env-changed=HOSTGUARD_DYNAMIC");
    git_commit();

    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" || features.split(',').any(|f| f == "crt-static")
    {
        return;
    }
    let Some(archive) = libgcc_eh() else {
        return;
    };
    // Only the archive goes on the search path, not the compiler's whole directory: its
    // libgcc_s.so would come before the bin's static stand-in (see static_bin_link_args).
    let dir = out_dir().join("unwinder");
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    let link = dir.join("libgcc_eh.a");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&archive, &link).expect("OUT_DIR is writable");
    println!("cargo::rustc-link-search=native={}", dir.display());
    println!("cargo::rustc-cfg=hostguard_static_unwinder");

    let dynamic = std::env::var("HOSTGUARD_DYNAMIC").is_ok_and(|v| v == "1");
    if !dynamic {
        static_bin_link_args();
    }
}

/// rustc links a `-gnu` binary with `-Wl,-Bdynamic -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc`
/// and link arguments come after those, so `-static-pie` alone still finds the shared libraries.
/// For each of them a linker script of the same name goes first on the bin's search path and
/// names the static archive instead (`-lgcc_s` names nothing: libgcc_eh.a is linked already).
/// Nothing is written when an archive is missing: the binary then stays dynamic.
fn static_bin_link_args() {
    let mut scripts = vec![("gcc_s", String::new())];
    for lib in ["util", "rt", "pthread", "m", "dl"] {
        let Some(archive) = compiler_file(&format!("lib{lib}.a")) else {
            return;
        };
        scripts.push((lib, format!("INPUT({})", archive.display())));
    }
    // static glibc calls back into libgcc (and libgcc_eh) helpers: one group resolves both ways.
    let (Some(libc), Some(libgcc), Some(eh), Some(_)) = (
        compiler_file("libc.a"),
        compiler_file("libgcc.a"),
        compiler_file("libgcc_eh.a"),
        compiler_file("rcrt1.o"),
    ) else {
        return;
    };
    scripts.push((
        "c",
        format!(
            "GROUP({} {} {})",
            libc.display(),
            libgcc.display(),
            eh.display()
        ),
    ));
    let dir = out_dir().join("static-link");
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    for (lib, script) in scripts {
        let text = format!("/* hostguard build.rs: lib{lib} statically */\n{script}\n");
        std::fs::write(dir.join(format!("lib{lib}.so")), text).expect("OUT_DIR is writable");
    }
    println!("cargo::rustc-link-arg-bins=-L{}", dir.display());
    println!("cargo::rustc-link-arg-bins=-static-pie");
}

/// `hostguard --version` names the commit it was built from: `HOSTGUARD_GIT_COMMIT` when set (a
/// build from a source tarball), else what git says, else "unknown". Rebuilt when HEAD moves.
fn git_commit() {
    println!("cargo::rerun-if-env-changed=HOSTGUARD_GIT_COMMIT");
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    let commit = std::env::var("HOSTGUARD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo::rustc-env=HOSTGUARD_GIT_COMMIT={commit}");
    if let Some(head) = git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) {
        println!("cargo::rerun-if-changed={head}");
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        for path in [reference.as_str(), "packed-refs"] {
            // A path that does not exist would make cargo rerun this script on every build.
            let file = git(&["rev-parse", "--path-format=absolute", "--git-path", path]);
            if let Some(file) = file.filter(|f| Path::new(f).exists()) {
                println!("cargo::rerun-if-changed={file}");
            }
        }
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
}

/// The path the C compiler prints for libgcc_eh.a; a compiler without the archive echoes the
/// bare name back, which is not a path to it.
fn libgcc_eh() -> Option<PathBuf> {
    compiler_file("libgcc_eh.a")
}

/// Asks the C compiler of the target (`CC_<target>` when cross-building, as the cc crate names
/// it, else `CC`, else `cc`) where `name` is.
fn compiler_file(name: &str) -> Option<PathBuf> {
    let target = std::env::var("TARGET")
        .unwrap_or_default()
        .replace('-', "_");
    let cc = std::env::var(format!("CC_{target}"))
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let printed = String::from_utf8(output.stdout).ok()?;
    let path = PathBuf::from(printed.trim());
    (output.status.success() && path.is_absolute() && Path::new(&path).is_file()).then_some(path)
}
