//! stdin of a CNI call: the network configuration with its prevResult, as `cni::config::parse`
//! reads it. Every input either parses or is a CNI error with a spec code and a message.
#![no_main]

use hostguard::cni::config;
use libfuzzer_sys::fuzz_target;

const SPEC_CODES: [u32; 4] = [1, 2, 6, 7];

fuzz_target!(|data: &[u8]| {
    let peeked = config::peek_version(data);
    match config::parse(data) {
        Ok(conf) => {
            // The version errors are answered in never contradicts the one a parse accepted (it
            // may be absent: peek refuses duplicate keys, which the full parse resolves).
            assert!(peeked.is_none() || peeked.as_deref() == Some(conf.cni_version.as_str()));
            assert!(!conf.name.is_empty());
            for wait in &conf.plugin.wait_for.interfaces {
                assert!(hostguard::cni::env::validate_ifname(&wait.name).is_ok());
            }
            assert!(conf.plugin.wait_for.timeout_ms <= hostguard::config::MAX_WAIT_TIMEOUT_MS);
            assert!(conf.plugin.state_dir.is_absolute());
            if let Some(prev) = &conf.prev_result {
                let out = serde_json::to_string(prev).expect("prevResult re-serializes");
                let back: serde_json::Value = serde_json::from_str(&out).expect("and reads back");
                assert!(back.is_object());
            }
        }
        Err(err) => {
            assert!(
                SPEC_CODES.contains(&err.code),
                "unexpected code {}",
                err.code
            );
            assert!(!err.msg.is_empty());
            let json = err.to_json(peeked.as_deref().unwrap_or("1.1.0"));
            let back: serde_json::Value = serde_json::from_str(&json).expect("error is JSON");
            assert_eq!(back["code"], err.code);
        }
    }
});
