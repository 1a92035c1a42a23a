//! Decides whether the `hostguard` binary links the unwinder statically (see src/main.rs for
//! why: loading libgcc_s.so.1 costs a plugin process about 110 µs). It does so only when the
//! C compiler that links the binary has libgcc_eh.a, and the build is a dynamic glibc one: a
//! crt-static build links the archive already, and other targets never load libgcc_s.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hostguard_static_unwinder)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CC");

    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" || features.split(',').any(|f| f == "crt-static")
    {
        return;
    }
    if let Some(archive) = libgcc_eh() {
        if let Some(dir) = archive.parent() {
            println!("cargo::rustc-link-search=native={}", dir.display());
            println!("cargo::rustc-cfg=hostguard_static_unwinder");
        }
    }
}

/// The path the C compiler prints for libgcc_eh.a; a compiler without the archive echoes the
/// bare name back, which is not a path to it.
fn libgcc_eh() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let printed = String::from_utf8(output.stdout).ok()?;
    let path = PathBuf::from(printed.trim());
    (output.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}
