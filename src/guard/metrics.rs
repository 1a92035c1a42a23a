//! What the daemon knows about itself, shared with the HTTP thread: readiness and the figures of
//! `/metrics`, rendered in the Prometheus text format.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Upper bounds (seconds) of the event-to-restored latency histogram.
const REPAIR_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
pub struct Status {
    /// Set once a look has loaded (or recorded) the baseline.
    pub baseline_loaded: bool,
    /// Why the node is not ready, when it is not: the first missing-and-unrestorable item, or a
    /// look that failed.
    pub not_ready: Option<String>,
    pub routes_missing: usize,
    pub rules_missing: usize,
    pub restores: BTreeMap<&'static str, u64>,
    pub failures: BTreeMap<(&'static str, &'static str), u64>,
    pub fight_backoff_seconds: f64,
    pub links_down: BTreeSet<String>,
    pub overruns: u64,
    pub looks: u64,
    repair_counts: [u64; REPAIR_BUCKETS.len()],
    repair_count: u64,
    repair_sum: f64,
}

impl Status {
    pub fn observe_repair(&mut self, seconds: f64) {
        for (bound, count) in REPAIR_BUCKETS.iter().zip(&mut self.repair_counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.repair_count += 1;
        self.repair_sum += seconds;
    }

    /// `/readyz`: `Ok` when ready, else the one-line reason.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.baseline_loaded {
            return Err(self
                .not_ready
                .clone()
                .unwrap_or_else(|| "the baseline is not loaded yet".into()));
        }
        match &self.not_ready {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        family(
            &mut out,
            "hostguard_routes_missing",
            "gauge",
            "Baseline default routes missing after the last look.",
        );
        let _ = writeln!(out, "hostguard_routes_missing {}", self.routes_missing);
        family(
            &mut out,
            "hostguard_rules_missing",
            "gauge",
            "Guarded policy rules missing after the last look.",
        );
        let _ = writeln!(out, "hostguard_rules_missing {}", self.rules_missing);
        family(
            &mut out,
            "hostguard_restores_total",
            "counter",
            "Routes and rules hostguard put back.",
        );
        for kind in ["route", "rule"] {
            let n = self.restores.get(kind).copied().unwrap_or(0);
            let _ = writeln!(out, "hostguard_restores_total{{kind=\"{kind}\"}} {n}");
        }
        family(
            &mut out,
            "hostguard_restore_failures_total",
            "counter",
            "Missing routes and rules found unrestorable, counted when the reason first appears.",
        );
        for ((kind, reason), n) in &self.failures {
            let _ = writeln!(
                out,
                "hostguard_restore_failures_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            );
        }
        family(
            &mut out,
            "hostguard_fight_backoff_seconds",
            "gauge",
            "Back-off delay of the current step of the hottest restore fight; 0 when none.",
        );
        let _ = writeln!(
            out,
            "hostguard_fight_backoff_seconds {}",
            self.fight_backoff_seconds
        );
        family(
            &mut out,
            "hostguard_links_down",
            "gauge",
            "Watched links (baseline devices, team or NetworkManager-managed) that are down.",
        );
        for link in &self.links_down {
            let _ = writeln!(out, "hostguard_links_down{{link=\"{}\"}} 1", escape(link));
        }
        family(
            &mut out,
            "hostguard_repair_seconds",
            "histogram",
            "From the first event of a burst to the route or rule being back.",
        );
        for (bound, count) in REPAIR_BUCKETS.iter().zip(&self.repair_counts) {
            let _ = writeln!(
                out,
                "hostguard_repair_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "hostguard_repair_seconds_bucket{{le=\"+Inf\"}} {}",
            self.repair_count
        );
        let _ = writeln!(out, "hostguard_repair_seconds_sum {}", self.repair_sum);
        let _ = writeln!(out, "hostguard_repair_seconds_count {}", self.repair_count);
        family(
            &mut out,
            "hostguard_event_overruns_total",
            "counter",
            "Times the kernel dropped notifications and a full resync followed.",
        );
        let _ = writeln!(out, "hostguard_event_overruns_total {}", self.overruns);
        family(
            &mut out,
            "hostguard_looks_total",
            "counter",
            "Full looks at the host (after a settled burst, a resync or a back-off).",
        );
        let _ = writeln!(out, "hostguard_looks_total {}", self.looks);
        family(
            &mut out,
            "hostguard_build_info",
            "gauge",
            "The running hostguard.",
        );
        let _ = writeln!(
            out,
            "hostguard_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_cumulative_buckets() {
        let mut status = Status::default();
        status.observe_repair(0.003);
        status.observe_repair(0.2);
        status.links_down.insert("te\"am0".into());
        *status.restores.entry("route").or_default() += 2;
        *status.failures.entry(("rule", "restore_off")).or_default() += 1;
        let text = status.render();
        for needle in [
            "hostguard_restores_total{kind=\"route\"} 2",
            "hostguard_restores_total{kind=\"rule\"} 0",
            "hostguard_restore_failures_total{kind=\"rule\",reason=\"restore_off\"} 1",
            "hostguard_links_down{link=\"te\\\"am0\"} 1",
            "hostguard_repair_seconds_bucket{le=\"0.001\"} 0",
            "hostguard_repair_seconds_bucket{le=\"0.005\"} 1",
            "hostguard_repair_seconds_bucket{le=\"0.25\"} 2",
            "hostguard_repair_seconds_bucket{le=\"+Inf\"} 2",
            "hostguard_repair_seconds_count 2",
            "# TYPE hostguard_repair_seconds histogram",
            "hostguard_build_info{version=\"",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }

    #[test]
    fn not_ready_until_loaded_and_while_a_reason_stands() {
        let mut status = Status::default();
        assert!(status.readiness().is_err());
        status.baseline_loaded = true;
        assert_eq!(status.readiness(), Ok(()));
        status.not_ready = Some("default via 192.0.2.1 dev eth0: device eth0 is down".into());
        assert!(status.readiness().unwrap_err().contains("eth0 is down"));
    }
}
