//! NetworkManager and systemd-networkd configuration text (`keyfile::parse` in both dialects) and
//! NetworkManager's device-spec helpers fed from it: spec splitting, matching, globbing, MAC
//! parsing and booleans. Pure functions: no files.
//!
//! Input: the file text; its first line (up to 15 bytes) is also used as an interface name.
#![no_main]

use hostguard::host::nm::{self, DeviceMatch, SpecMatch};
use hostguard::keyfile::{self, Dialect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let name: String = text
        .split('\n')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();
    for dialect in [Dialect::GKeyFile, Dialect::Systemd] {
        let parsed = keyfile::parse(&text, dialect);
        let lines = text.split('\n').count();
        for section in &parsed.sections {
            assert!(section.line >= 1 && section.line <= lines);
            for entry in &section.entries {
                assert!(entry.line >= 1 && entry.line <= lines);
                assert!(!entry.key.is_empty());
                let _ = keyfile::parse_systemd_bool(&entry.value);
                let _ = keyfile::parse_nm_bool(&entry.value);
            }
        }
        for problem in &parsed.problems {
            assert!(problem.line >= 1 && problem.line <= lines);
        }
        let device = DeviceMatch {
            interface_name: name.clone(),
            device_type: Some("ethernet".into()),
            hwaddr: nm::parse_hwaddr("52:54:00:12:34:56"),
        };
        for section in &parsed.sections {
            for entry in &section.entries {
                let specs = nm::split_specs(&entry.value);
                match nm::match_specs(&specs, &device) {
                    SpecMatch::Match(s) | SpecMatch::NegativeMatch(s) => assert!(!s.is_empty()),
                    SpecMatch::NoMatch => {}
                }
                let _ = nm::parse_hwaddr(&entry.value);
                let _ = nm::glob_match(&entry.key, &entry.value);
            }
        }
    }
    // A pattern equal to the text always matches it (no glob characters are special in text).
    if !name.contains(['*', '?']) {
        assert!(nm::glob_match(&name, &name));
    }
});
