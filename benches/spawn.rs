//! The process-level benchmark driver behind `scripts/bench.sh`.
//!
//! A container runtime starts a CNI plugin as a fresh process for every verb, so the figure that
//! matters is fork + exec + run + exit, measured from outside. This driver does exactly that for a
//! set of commands described in a JSON plan, and interleaves them: round r runs every command of a
//! step once, in an order rotated by r, so drift on a busy machine (other builds, frequency
//! changes) falls on every side alike instead of on whichever ran last.
//!
//! Per command it reports median, p95, p99 and minimum wall time, median CPU time and the largest
//! peak RSS; per comparison the raw ratio of medians and the net ratio
//! `(subject - floor) / (reference - floor)`, where the floor is `/bin/true` spawned the same way.
//! In parallel mode it starts N instances at once and reports throughput and tail latency.
//!
//! Usage: `spawn PLAN.json [--summary FILE]` (the script finds the binary with
//! `cargo bench --no-run`). Without a plan it does nothing, so `cargo bench` and
//! `cargo test --all-targets` stay harmless.
//!
//! The plan (every string in `argv`, `env` and `stdin` may use `{r}`, the round, or `{i}`, the
//! instance in parallel mode):
//!
//! ```json
//! { "rounds": 300, "warmup": 5, "env": {"PATH": "/usr/bin"},
//!   "steps": [ { "name": "ADD", "commands": [
//!       { "name": "hostguard", "argv": ["/path/hostguard"], "stdin": "{...}",
//!         "env": {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c{r}"} } ] } ],
//!   "compare": [ { "step": "ADD", "subject": "hostguard", "reference": "tuning", "floor": "true" } ],
//!   "parallel": 64 }
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::libc;
use serde::Deserialize;
use serde_json::json;

/// Pipe capacity on Linux; stdin is written whole before the child starts, so it must fit.
const MAX_STDIN: usize = 60 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    rounds: usize,
    #[serde(default)]
    warmup: usize,
    #[serde(default)]
    env: BTreeMap<String, String>,
    steps: Vec<Step>,
    #[serde(default)]
    compare: Vec<Compare>,
    /// Instances started at once per round; absent: one at a time.
    #[serde(default)]
    parallel: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    commands: Vec<Spec>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    argv: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    stdin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Compare {
    step: String,
    subject: String,
    reference: String,
    floor: Option<String>,
}

/// What one process cost, from the clock around it and its own rusage.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
}

#[derive(Default)]
struct Series {
    samples: Vec<Sample>,
    /// Parallel mode: from the first spawn of a round to the last exit.
    makespans: Vec<Duration>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // cargo passes --bench (and test harness flags under `cargo test`); only a plan means work.
    let Some(plan_path) = args
        .iter()
        .find(|a| !a.starts_with("--") && a.ends_with(".json"))
    else {
        return ExitCode::SUCCESS;
    };
    let summary = args
        .iter()
        .position(|a| a == "--summary")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    match run(Path::new(plan_path), summary.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("spawn: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan_path: &Path, summary: Option<&Path>) -> Result<()> {
    let text = std::fs::read_to_string(plan_path)
        .with_context(|| format!("read plan {}", plan_path.display()))?;
    let plan: Plan = serde_json::from_str(&text)
        .with_context(|| format!("plan {} is not valid", plan_path.display()))?;
    if plan.rounds == 0 || plan.steps.is_empty() {
        bail!("the plan needs rounds > 0 and at least one step");
    }
    let stderr_dir = plan_path.parent().unwrap_or(Path::new("."));
    let mut results: Vec<Vec<Series>> = plan
        .steps
        .iter()
        .map(|s| s.commands.iter().map(|_| Series::default()).collect())
        .collect();
    for round in 0..plan.warmup + plan.rounds {
        let measured = round >= plan.warmup;
        let tag = if measured {
            (round - plan.warmup).to_string()
        } else {
            format!("w{round}")
        };
        for (s, step) in plan.steps.iter().enumerate() {
            let n = step.commands.len();
            for k in 0..n {
                let c = (k + round) % n;
                let spec = &step.commands[c];
                let series = &mut results[s][c];
                match plan.parallel {
                    None => {
                        let sample = run_one(&plan, spec, &tag, None, stderr_dir)
                            .with_context(|| format!("{} {} round {tag}", step.name, spec.name))?;
                        if measured {
                            series.samples.push(sample);
                        }
                    }
                    Some(instances) => {
                        let (samples, makespan) = run_parallel(
                            &plan, spec, &tag, instances, stderr_dir,
                        )
                        .with_context(|| format!("{} {} round {tag}", step.name, spec.name))?;
                        if measured {
                            series.samples.extend(samples);
                            series.makespans.push(makespan);
                        }
                    }
                }
            }
        }
    }
    report(&plan, &results, summary)
}

fn expand(template: &str, round: &str, instance: Option<usize>) -> String {
    let text = template.replace("{r}", round);
    match instance {
        Some(i) => text.replace("{i}", &i.to_string()),
        None => text,
    }
}

/// The command, its stdin already written into a pipe, ready to spawn. Everything here happens
/// before the clock starts.
fn prepare(
    plan: &Plan,
    spec: &Spec,
    round: &str,
    instance: Option<usize>,
    stderr_path: &Path,
) -> Result<Command> {
    let argv: Vec<String> = spec
        .argv
        .iter()
        .map(|a| expand(a, round, instance))
        .collect();
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| anyhow!("{}: empty argv", spec.name))?;
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
    for (key, value) in plan.env.iter().chain(&spec.env) {
        cmd.env(key, expand(value, round, instance));
    }
    let input = expand(&spec.stdin, round, instance);
    if input.len() > MAX_STDIN {
        bail!(
            "{}: stdin of {} bytes does not fit a pipe",
            spec.name,
            input.len()
        );
    }
    let (read_end, write_end) = nix::unistd::pipe().context("pipe")?;
    File::from(write_end)
        .write_all(input.as_bytes())
        .context("write stdin")?;
    let stderr = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(stderr_path)
        .with_context(|| format!("open {}", stderr_path.display()))?;
    cmd.stdin(Stdio::from(read_end))
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    // SAFETY: the hook does nothing; its presence makes std use fork() instead of
    // posix_spawn's vfork. With vfork the child execs from the driver's own address space and the
    // kernel carries that space's peak RSS into the child's ru_maxrss; with fork only the
    // driver's few anonymous pages are copied, so the figure is the plugin's own.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    Ok(cmd)
}

fn run_one(
    plan: &Plan,
    spec: &Spec,
    round: &str,
    instance: Option<usize>,
    dir: &Path,
) -> Result<Sample> {
    let stderr_path = dir.join(format!("{}.stderr", spec.name));
    let mut cmd = prepare(plan, spec, round, instance, &stderr_path)?;
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {:?}", spec.argv))?;
    let (status, usage) = wait4(child.id() as libc::pid_t)?;
    let wall = start.elapsed();
    check_status(status, spec, &stderr_path)?;
    Ok(sample(wall, &usage))
}

fn run_parallel(
    plan: &Plan,
    spec: &Spec,
    round: &str,
    instances: usize,
    dir: &Path,
) -> Result<(Vec<Sample>, Duration)> {
    let mut commands = Vec::with_capacity(instances);
    for i in 0..instances {
        let path = dir.join(format!("{}.{i}.stderr", spec.name));
        commands.push((prepare(plan, spec, round, Some(i), &path)?, path));
    }
    let first = Instant::now();
    let mut running = BTreeMap::new();
    for (cmd, path) in &mut commands {
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {:?}", spec.argv))?;
        running.insert(child.id() as libc::pid_t, (start, path.clone()));
    }
    let mut samples = Vec::with_capacity(instances);
    let mut failure = None;
    while !running.is_empty() {
        let (pid, status, usage) = wait4_any()?;
        let Some((start, path)) = running.remove(&pid) else {
            continue;
        };
        samples.push(sample(start.elapsed(), &usage));
        if failure.is_none() {
            failure = check_status(status, spec, &path).err();
        }
    }
    let makespan = first.elapsed();
    match failure {
        Some(err) => Err(err),
        None => Ok((samples, makespan)),
    }
}

fn check_status(status: libc::c_int, spec: &Spec, stderr_path: &Path) -> Result<()> {
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Ok(());
    }
    let mut text = String::new();
    if let Ok(mut f) = File::open(stderr_path) {
        let _ = f.read_to_string(&mut text);
    }
    bail!(
        "{} failed (wait status {status:#x}); its stderr:\n{}",
        spec.name,
        text.trim_end()
    )
}

fn wait4(pid: libc::pid_t) -> Result<(libc::c_int, libc::rusage)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain old data; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals; pid is our own child.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
}

fn wait4_any() -> Result<(libc::pid_t, libc::c_int, libc::rusage)> {
    loop {
        let mut status = 0;
        // SAFETY: as in wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals.
        let rc = unsafe { libc::wait4(-1, &mut status, 0, &mut usage) };
        if rc > 0 {
            return Ok((rc, status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

fn sample(wall: Duration, usage: &libc::rusage) -> Sample {
    Sample {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_of(series: &Series) -> Duration {
    let mut walls: Vec<Duration> = series.samples.iter().map(|s| s.wall).collect();
    walls.sort();
    percentile(&walls, 0.5)
}

fn report(plan: &Plan, results: &[Vec<Series>], summary: Option<&Path>) -> Result<()> {
    let mut lines = Vec::new();
    for (step, per_command) in plan.steps.iter().zip(results) {
        for (spec, series) in step.commands.iter().zip(per_command) {
            let mut walls: Vec<Duration> = series.samples.iter().map(|s| s.wall).collect();
            walls.sort();
            let mut cpus: Vec<Duration> = series.samples.iter().map(|s| s.cpu).collect();
            cpus.sort();
            let rss = series
                .samples
                .iter()
                .map(|s| s.max_rss_kib)
                .max()
                .unwrap_or(0);
            let n = walls.len();
            let (median, p95, p99) = (
                percentile(&walls, 0.5),
                percentile(&walls, 0.95),
                percentile(&walls, 0.99),
            );
            print!(
                "{:<14} {:<22} median {:>8.3} ms  p95 {:>8.3} ms  p99 {:>8.3} ms  min {:>8.3} ms  \
                 cpu {:>7.3} ms  peak RSS {:>6} KiB  (n={n})",
                step.name,
                spec.name,
                ms(median),
                ms(p95),
                ms(p99),
                ms(walls[0]),
                ms(percentile(&cpus, 0.5)),
                rss,
            );
            let mut line = json!({
                "step": step.name, "command": spec.name, "n": n,
                "median_ms": ms(median), "p95_ms": ms(p95), "p99_ms": ms(p99),
                "min_ms": ms(walls[0]), "cpu_ms": ms(percentile(&cpus, 0.5)), "maxrss_kib": rss,
            });
            if let Some(instances) = plan.parallel {
                let mut spans = series.makespans.clone();
                spans.sort();
                let span = percentile(&spans, 0.5);
                let throughput = instances as f64 / span.as_secs_f64();
                print!(
                    "  | {instances} at once: {throughput:.0}/s, all done in {:.1} ms (median)",
                    ms(span)
                );
                line["parallel"] = json!(instances);
                line["makespan_ms"] = json!(ms(span));
                line["throughput_per_s"] = json!(throughput);
            }
            println!();
            lines.push(line);
        }
    }
    for cmp in &plan.compare {
        let find = |name: &str| -> Result<Duration> {
            plan.steps
                .iter()
                .zip(results)
                .filter(|(step, _)| step.name == cmp.step)
                .flat_map(|(step, per)| step.commands.iter().zip(per))
                .find(|(spec, _)| spec.name == name)
                .map(|(_, series)| median_of(series))
                .ok_or_else(|| anyhow!("compare: no command {name} in step {}", cmp.step))
        };
        let subject = find(&cmp.subject)?;
        let reference = find(&cmp.reference)?;
        let raw = ms(subject) / ms(reference);
        print!(
            "{:<14} {} / {}: raw ratio {raw:.2}",
            cmp.step, cmp.subject, cmp.reference
        );
        let mut line = json!({"step": cmp.step, "subject": cmp.subject,
                              "reference": cmp.reference, "raw_ratio": raw});
        if let Some(floor_name) = &cmp.floor {
            let floor = find(floor_name)?;
            let net = (ms(subject) - ms(floor)) / (ms(reference) - ms(floor));
            print!(
                ", net ratio {net:.2}  (({} - {floor_name}) / ({} - {floor_name}) = \
                 ({:.3} - {:.3}) / ({:.3} - {:.3}) ms)",
                cmp.subject,
                cmp.reference,
                ms(subject),
                ms(floor),
                ms(reference),
                ms(floor)
            );
            line["floor"] = json!(floor_name);
            line["net_ratio"] = json!(net);
        }
        println!();
        lines.push(line);
    }
    if let Some(path) = summary {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        for line in lines {
            writeln!(file, "{line}").with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}
