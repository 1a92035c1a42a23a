//! The binary is copied onto nodes and into a `FROM scratch` image: it must not need a dynamic
//! loader or any shared library (build.rs links it statically by default).

use crate::common;

/// ELF program header type of the loader's path.
const PT_INTERP: u32 = 3;
/// ELF program header type of the dynamic section, and the tag that names a shared library.
const PT_DYNAMIC: u32 = 2;
const DT_NEEDED: u64 = 1;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn the_binary_has_no_loader_and_needs_no_shared_library() {
    let elf = std::fs::read(common::BIN).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "a 64-bit ELF");
    assert_eq!(elf[5], 1, "little-endian");
    let phoff = u64_at(&elf, 0x20) as usize;
    let phentsize = usize::from(u16_at(&elf, 0x36));
    let phnum = usize::from(u16_at(&elf, 0x38));
    let mut needed = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let kind = u32_at(&elf, ph);
        assert_ne!(kind, PT_INTERP, "the binary asks for a dynamic loader");
        if kind == PT_DYNAMIC {
            let (offset, size) = (
                u64_at(&elf, ph + 8) as usize,
                u64_at(&elf, ph + 32) as usize,
            );
            for entry in elf[offset..offset + size].chunks_exact(16) {
                needed += usize::from(u64_at(entry, 0) == DT_NEEDED);
            }
        }
    }
    assert_eq!(needed, 0, "the binary names shared libraries (DT_NEEDED)");
    if let Ok(out) = std::process::Command::new("ldd").arg(common::BIN).output() {
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("statically linked") || said.contains("not a dynamic executable"),
            "ldd: {said}"
        );
    }
}
