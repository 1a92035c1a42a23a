//! Function-level figures: where one ADD spends its time once the process is running.
//!
//! `scripts/bench.sh` times whole processes; this splits the ADD into the parts it is made of
//! (config parse, netlink socket, link dump, default-route dump, baseline read, attachment
//! record) and times a whole ADD in-process, so that "process ADD - in-process ADD" is the
//! start-up and exit cost. Each part runs `--iters` times; median and p95 in microseconds.
//!
//! It works in a network namespace of its own (`unshare(CLONE_NEWNET)`; root needed), which
//! vanishes with the process, with `--links` extra veth pairs and `--routes` proto-bird /32
//! routes added by iproute2 inside it, and state under /var/tmp (a disk, so fsync costs what it
//! costs on a node). Run: `cargo bench --bench inprocess -- [--links N] [--routes N] [--iters N]`.
//! Without `--bench` (as `cargo test --benches` runs it) it does nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hostguard::cni::config;
use hostguard::host::links::LinkTable;
use hostguard::host::route_guard;
use hostguard::netlink::{AddressFamily, Netlink, RouteFilter};
use hostguard::state::{AttachmentRecord, StateDir, FORMAT_VERSION};
use nix::sched::{unshare, CloneFlags};

struct Options {
    links: usize,
    routes: usize,
    iters: usize,
}

/// Removes the scratch state directory however the bench ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let number = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let options = Options {
        links: number("--links", 0),
        routes: number("--routes", 0),
        iters: number("--iters", 300).max(1),
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("inprocess: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let status = Command::new("ip").args(args).status().context("run ip")?;
    if !status.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

fn ip_batch(lines: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("run ip -batch")?;
    child
        .stdin
        .take()
        .context("ip stdin")?
        .write_all(lines.as_bytes())
        .context("feed ip -batch")?;
    if !child.wait().context("wait for ip -batch")?.success() {
        bail!("ip -batch failed");
    }
    Ok(())
}

/// A host shaped like the process benchmark's: eth0 with a default route via an on-link
/// gateway, plus `links` veth pairs and `routes` /32 routes.
fn build_host(options: &Options) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root: it creates a network namespace of its own");
    }
    unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
    ip(&["link", "set", "lo", "up"])?;
    ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "up0"])?;
    ip(&["addr", "add", "172.26.0.3/27", "dev", "eth0"])?;
    ip(&["link", "set", "eth0", "up"])?;
    ip(&["link", "set", "up0", "up"])?;
    ip(&[
        "route",
        "add",
        "default",
        "via",
        "172.26.0.1",
        "dev",
        "eth0",
        "proto",
        "static",
    ])?;
    let mut batch = String::new();
    for i in 0..options.links {
        batch.push_str(&format!("link add hv{i} type veth peer name cv{i}\n"));
    }
    for i in 0..options.routes {
        batch.push_str(&format!(
            "route add 100.{}.{}.{}/32 via 172.26.0.1 dev eth0 proto bird\n",
            64 + i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    if !batch.is_empty() {
        ip_batch(&batch)?;
    }
    Ok(())
}

fn time<T>(label: &str, iters: usize, mut f: impl FnMut() -> Result<T>) -> Result<()> {
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f().with_context(|| label.to_string())?;
        samples.push(start.elapsed());
    }
    samples.sort();
    let pick = |p: f64| samples[((p * iters as f64).ceil() as usize).clamp(1, iters) - 1];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{label:<44} median {:>9.1} us  p95 {:>9.1} us  min {:>9.1} us  (n={iters})",
        us(pick(0.5)),
        us(pick(0.95)),
        us(samples[0])
    );
    Ok(())
}

fn run(options: &Options) -> Result<()> {
    build_host(options)?;
    let dir = PathBuf::from(format!("/var/tmp/hg-inprocess-{}", std::process::id()));
    let _scratch = Scratch(dir.clone());
    let netns = format!("/proc/{}/ns/net", std::process::id());
    let stdin = serde_json::json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "hostguard",
        "stateDir": dir.join("state"),
        "runDir": dir.join("run"),
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0", "mac": "6a:1f:0c:4e:2b:01"},
                           {"name": "vethbench", "mac": "6a:1f:0c:4e:2b:02"},
                           {"name": "eth0", "mac": "6a:1f:0c:4e:2b:03", "sandbox": netns}],
            "ips": [{"interface": 2, "address": "10.88.0.5/24", "gateway": "10.88.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.88.0.1"]}
        }
    })
    .to_string();
    println!(
        "in-process ADD parts: {} extra veth pairs, {} extra routes, state in {}",
        options.links,
        options.routes,
        dir.display()
    );
    let iters = options.iters;

    time("config::parse (stdin -> NetConf)", iters, || {
        config::parse(stdin.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    time("Netlink::new (socket, options, bind)", iters, || {
        Ok(Netlink::new()?)
    })?;
    let mut nl = Netlink::new()?;
    time("link dump (LinkTable::load)", iters, || {
        LinkTable::load(&mut nl)
    })?;
    let links = LinkTable::load(&mut nl)?;
    time(
        "default-route dump (all tables, both families)",
        iters,
        || route_guard::default_routes(&mut nl, &links),
    )?;
    // The kernel serves an AF_UNSPEC dump under RTNL, a per-family one without it.
    let defaults = |family| RouteFilter {
        family,
        default_only: true,
        ..RouteFilter::default()
    };
    time("  as one AF_UNSPEC dump", iters, || {
        Ok(nl.routes(&defaults(None))?)
    })?;
    time("  AF_INET table main only (as ip -4 asks)", iters, || {
        let main = RouteFilter {
            table: Some(254),
            ..defaults(Some(AddressFamily::Inet))
        };
        Ok(nl.routes(&main)?)
    })?;
    time("  as AF_INET + AF_INET6 dumps", iters, || {
        let mut out = nl.routes(&defaults(Some(AddressFamily::Inet)))?;
        out.extend(nl.routes(&defaults(Some(AddressFamily::Inet6)))?);
        Ok(out)
    })?;

    // A whole ADD through the CNI entry point, as main() runs it, minus process start and exit.
    let mut round = 0usize;
    let mut add = |verb: &str| {
        round += 1;
        let id = format!("inproc-{round}");
        let lookup = |key: &str| -> Option<String> {
            match key {
                "CNI_COMMAND" => Some(verb.to_string()),
                "CNI_CONTAINERID" => Some(id.clone()),
                "CNI_NETNS" => Some(netns.clone()),
                "CNI_IFNAME" => Some("eth0".into()),
                "CNI_PATH" => Some("/usr/lib/cni".into()),
                _ => None,
            }
        };
        let (out, status) = hostguard::cni::invocation(&lookup, &mut stdin.as_bytes());
        if status != 0 {
            bail!("{verb} failed: {}", out.unwrap_or_default());
        }
        Ok(())
    };
    add("ADD")?; // records the baseline: what follows is steady state
    time("whole ADD in-process (steady state)", iters, || add("ADD"))?;

    let state = StateDir::open(&dir.join("state"), &dir.join("run"))?;
    time("baseline read (host::baseline::read)", iters, || {
        hostguard::host::baseline::read(&state)
    })?;
    let mut n = 0usize;
    let mut record = || {
        n += 1;
        AttachmentRecord {
            version: FORMAT_VERSION,
            container_id: format!("rec-{n}"),
            ifname: "eth0".into(),
            netns: netns.clone(),
            network: "bench".into(),
            created_unix: 0,
        }
    };
    time(
        "attachment record (StateDir::write_attachment)",
        iters,
        || state.write_attachment(&record()),
    )?;
    let durable = dir.join("durable");
    std::fs::create_dir_all(&durable)?;
    time("same bytes, fsynced file and directory", iters, || {
        let rec = record();
        let bytes = serde_json::to_vec_pretty(&rec)?;
        let path: &Path = &durable.join(format!("{}.json", rec.container_id));
        hostguard::atomic::write_atomic_plain(path, &bytes, 0o600)
    })?;
    time("lock + unlock (StateDir::lock)", iters, || {
        state.lock("attachments").map(drop)
    })?;
    Ok(())
}
