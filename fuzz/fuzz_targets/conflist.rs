//! Files in the CNI config directory as `hostguard install` reads them: the upstream check,
//! chaining, and the check of our own output. Whatever upstream passes the check must chain into
//! an output that passes the output check (install would otherwise refuse its own file).
//!
//! Input: one byte choosing the form (even: `.conflist`, odd: `.conf`/`.json`), then the file.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use hostguard::install::{chain, discover, validate};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let form = if selector % 2 == 0 {
        discover::Form::List
    } else {
        discover::Form::Single
    };
    // The file name side: a name made of the same bytes must not trip the name helpers.
    let name = OsStr::from_bytes(&bytes[..bytes.len().min(255)]);
    let _ = discover::form_of(name);
    let _ = discover::is_config_name(name);
    if let Some(out) = discover::output_name_before(name) {
        assert!(
            out.as_bytes() < name.as_bytes(),
            "{out} must sort before {name:?}"
        );
    }

    let _ = validate::output(bytes);
    if let Ok(object) = validate::parse_object(bytes) {
        let _ = validate::hostguard_count(&object);
        let _ = validate::plugin_types(&object);
    }
    let Ok(upstream) = validate::upstream(bytes, form) else {
        return;
    };
    let mut entry = Map::new();
    entry.insert("type".into(), Value::String("hostguard".into()));
    let names = chain::Names {
        output: "00-hostguard.conflist",
        upstream: "10-upstream.conflist",
    };
    let chained = chain::chain(&upstream, form, &entry, names).expect("a valid upstream chains");
    if let Err(problem) = validate::output(&chained.bytes) {
        panic!("chained output of a valid upstream fails its own check: {problem}");
    }
    // Chaining is idempotent: chaining our own output again gives the same bytes (floats
    // included, with serde_json's float_roundtrip; this target found them drifting without it).
    let again = validate::upstream(&chained.bytes, discover::Form::List)
        .map(|o| chain::chain(&o, discover::Form::List, &entry, names).expect("chains"));
    if let Ok(again) = again {
        assert_eq!(again.bytes, chained.bytes);
    }
});
