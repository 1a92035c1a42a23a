//! Benchmark, not a test: how fast `hostguard guard` puts back a deleted default route, with
//! settle 0 and the default 100 ms (goal: p99 ≤ settle + 20 ms).
//!
//! Per run: the harness deletes eth0's default over its own netlink socket inside a throwaway
//! host namespace and measures from just before that request to the kernel's notification that
//! the route exists again. Runs are at least 200 ms apart after each restore, so the daemon never
//! sees a fight. The daemon's CPU time and peak RSS over the whole series are printed too.
//!
//! Run: `scripts/bench-guard.sh` (or `cargo test --release --test suite guard_bench:: --
//! --ignored --nocapture`; `HG_BENCH_RUNS` sets the number of deletions, default 200).

use crate::common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::guard::Guard;
use common::Node;
use hostguard::netlink::{
    EventSocket, Group, Netlink, RouteAddress, RouteAttribute, RouteFilter, RouteMessage,
    RouteNetlinkMessage,
};
use serde_json::json;

const GATEWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 26, 0, 1));

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn is_eth0_default(msg: &RouteMessage) -> bool {
    msg.header.destination_prefix_length == 0
        && msg
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Gateway(RouteAddress::Inet(gw)) if IpAddr::V4(*gw) == GATEWAY))
}

fn measure(node: &Node, runs: usize) -> anyhow::Result<Vec<Duration>> {
    common::netns::run_in(&node.host.path(), || {
        let mut events = EventSocket::subscribe(&[Group::Ipv4Route])?;
        let mut nl = Netlink::new()?;
        let mut samples = Vec::with_capacity(runs);
        for run in 0..runs {
            let route = nl
                .routes(&RouteFilter {
                    default_only: true,
                    ..RouteFilter::default()
                })?
                .into_iter()
                .find(is_eth0_default)
                .with_context(|| format!("run {run}: eth0's default is not there"))?;
            // Whatever was queued (the previous restore's echoes) is older than this run.
            while events.next_batch(Instant::now())?.is_some() {}
            let started = Instant::now();
            nl.del_route(route)?;
            'wait: loop {
                let Some(batch) = events.next_batch(started + Duration::from_secs(10))? else {
                    bail!("run {run}: not restored within 10 s");
                };
                for message in batch {
                    if matches!(&message, RouteNetlinkMessage::NewRoute(r) if is_eth0_default(r)) {
                        break 'wait;
                    }
                }
            }
            samples.push(started.elapsed());
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(samples)
    })
}

#[test]
#[ignore = "benchmark: run by scripts/bench-guard.sh"]
fn deletion_to_restored_latency() {
    let runs: usize = std::env::var("HG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for settle in [0u64, 100] {
        let node = Node::dual_homed("bench");
        node.case_a();
        let guard = Guard::start(&node, json!({}), settle);
        let cpu_before = guard.cpu();
        let started = Instant::now();
        let mut samples = measure(&node, runs).expect("measure");
        let wall = started.elapsed();
        let cpu = guard.cpu() - cpu_before;
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "settle {settle:>3} ms: {runs} deletions: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms (goal p99 <= {} ms); daemon CPU {:.0} ms over {:.1} s; peak RSS {} KiB",
            ms(percentile(&samples, 0.50)),
            ms(percentile(&samples, 0.95)),
            ms(percentile(&samples, 0.99)),
            ms(*samples.last().unwrap()),
            settle + 20,
            ms(cpu),
            wall.as_secs_f64(),
            guard.peak_rss_kib()
        );
    }
}
