//! State files as hostguard reads them back: `baseline.json` (default routes and guarded rules
//! with their netlink bytes in hex), attachment records, and the uplink journal, through
//! `StateDir` from a file on tmpfs. Every route of a baseline that loads is turned into the
//! netlink message a restore would send and emitted to bytes; every guarded rule is decoded from
//! its hex and emitted again. A journal is handed to crash recovery (`uplink::recover`), which
//! finishes or rolls back the move it describes: that runs in a network namespace of this
//! process's own, and the journal's `netns` is set to that namespace so recovery does not just
//! set it aside as foreign.
//!
//! Input: one byte choosing the file (0: baseline.json, 1: an attachment record, 2: the uplink
//! journal, modulo 3), then the file.
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use hostguard::host::baseline::{self, Baseline};
use hostguard::host::routes::{self, DefaultRoute};
use hostguard::host::uplink;
use hostguard::state::{self, AttachmentRecord, StateDir};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::Emitable;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        hostguard_fuzz::private_network_namespace();
        hostguard_fuzz::scratch("state")
    })
}

/// The journal bytes with `netns` naming this process's namespace, when they are an object.
fn as_local_journal(body: &[u8]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut journal)) = serde_json::from_slice(body) else {
        return body.to_vec();
    };
    let Ok(meta) = std::fs::metadata("/proc/self/ns/net") else {
        return body.to_vec();
    };
    if journal.contains_key("netns") {
        journal.insert(
            "netns".into(),
            std::os::unix::fs::MetadataExt::ino(&meta).into(),
        );
    }
    serde_json::to_vec(&journal).unwrap_or_else(|_| body.to_vec())
}

fn exercise_journal(state: &StateDir, body: &[u8]) {
    let path = state.journal_path();
    let set_aside = state.root().join("uplink-journal.set-aside.json");
    let _ = std::fs::remove_file(&set_aside);
    std::fs::write(&path, as_local_journal(body)).expect("write journal");
    match uplink::recover(state) {
        // Finished, rolled back or set aside: no journal is left to act on.
        Ok(Some(_)) => assert!(
            !path.exists(),
            "recovery reported done but kept the journal"
        ),
        // Nothing to do only when there was nothing there.
        Ok(None) => assert!(!path.exists()),
        // Whatever went wrong, the journal stays for the next run, or is kept aside for the
        // operator when the rollback could not undo everything.
        Err(err) => assert!(
            path.exists() || set_aside.exists(),
            "recovery failed and lost the journal: {err}"
        ),
    }
    let _ = std::fs::remove_file(&path);
}

fn exercise_route(route: &DefaultRoute) {
    let mut index: HashMap<String, u32> = HashMap::new();
    for (i, dev) in route.devices().into_iter().enumerate() {
        index.entry(dev.to_string()).or_insert(i as u32 + 1);
    }
    let _ = route.to_string();
    let _ = route.slots();
    let _ = route.repointed("eth0", "br0");
    if let Ok(msg) = route.to_message(&|name| index.get(name).copied()) {
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.emit(&mut bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let dir = dir();
    // One directory as stateDir and runDir, the layout of a hostguard before runDir: every
    // file this target plants is where the readers look.
    let state = StateDir::open(dir, dir).expect("open scratch state dir");
    if selector % 3 == 2 {
        exercise_journal(&state, body);
    } else if selector % 3 == 0 {
        // Straight from bytes, and through the reader that guards the real file.
        let direct = serde_json::from_slice::<Baseline>(body);
        std::fs::write(dir.join(state::BASELINE_FILE), body).expect("write baseline");
        let read = baseline::read(&state);
        if let Ok(Some(baseline)) = &read {
            assert_eq!(baseline.version, state::FORMAT_VERSION);
            assert_eq!(Some(baseline), direct.as_ref().ok());
        }
        let Ok(baseline) = direct else {
            return;
        };
        for route in &baseline.routes {
            exercise_route(route);
        }
        let diff = routes::diff(&baseline.routes, &[]);
        assert_eq!(diff.missing.len(), baseline.routes.len());
        let _ = routes::adopt(&baseline.routes, &|at| at % 2 == 0, &baseline.routes);
        for rule in &baseline.rules {
            if let Ok(msg) = rule.to_message() {
                let mut bytes = vec![0u8; msg.buffer_len()];
                msg.emit(&mut bytes);
                let _ = hostguard::netlink::describe_rule(&msg);
            }
        }
    } else {
        let attachments = dir.join(state::ATTACHMENTS_DIR);
        let _ = std::fs::remove_dir_all(&attachments);
        std::fs::create_dir_all(&attachments).expect("mkdir attachments");
        std::fs::write(attachments.join("c@eth0.json"), body).expect("write record");
        // A flat-layout record is listed for the network it names (every network when it names
        // none, or cannot be read).
        let parsed = serde_json::from_slice::<AttachmentRecord>(body);
        let network = parsed.as_ref().map(|r| r.network.as_str()).unwrap_or("n");
        let listed = state.attachments_of(network).expect("list attachments");
        assert_eq!(listed.len(), 1);
        if let Ok(record) = parsed {
            let name = state::attachment_file_name(&record.container_id, &record.ifname);
            assert!(!name.contains('/') && name != "." && name != "..");
            assert_eq!(listed[0].1.as_ref().ok(), Some(&record));
        }
    }
});
