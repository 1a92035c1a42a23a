//! The baseline on disk and the host it describes: record it, keep it current, guard it.
//! Shared by ADD, CHECK, STATUS and `hostguard baseline`, so all of them mean the same thing by
//! "the host's default routes".

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{PluginConfig, RuleSelector, RulesConfig};
use crate::host::refusal::RefusalCheck;
use crate::host::route_guard::{self, Assessment, GuardOptions, GuardOutcome, Unrestored};
use crate::host::routes::{self, DefaultRoute};
use crate::host::rules::{self, GuardedRule, RulesOutcome};
use crate::netlink::Netlink;
use crate::state::{StateDir, FORMAT_VERSION};

/// What the host looked like when hostguard first saw it, kept up to date by ADD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub routes: Vec<DefaultRoute>,
    /// Policy rules selected by `rules.match`.
    #[serde(default)]
    pub rules: Vec<GuardedRule>,
}

/// The recorded baseline, `None` before the first is recorded; one of another format version is
/// refused with a message rather than misread.
pub fn read(state: &StateDir) -> Result<Option<Baseline>> {
    let path = state.baseline_path();
    match state.read_json::<Baseline>(&path)? {
        Some(b) if b.version != FORMAT_VERSION => anyhow::bail!(
            "{} has format version {}, this hostguard reads {FORMAT_VERSION}",
            path.display(),
            b.version
        ),
        other => Ok(other),
    }
}

pub fn write(state: &StateDir, baseline: &Baseline) -> Result<()> {
    state.write_json(&state.baseline_path(), baseline)
}

/// The baseline, recording the host as it is now when there is none yet. The caller holds the
/// `baseline` lock.
pub fn load_or_record(state: &StateDir, nl: &mut Netlink) -> Result<(Baseline, bool)> {
    if let Some(baseline) = read(state)? {
        return Ok((baseline, false));
    }
    let baseline = observe(nl)?;
    write(state, &baseline)?;
    Ok((baseline, true))
}

/// The host's current default routes as a baseline.
pub fn observe(nl: &mut Netlink) -> Result<Baseline> {
    let mut routes = route_guard::default_routes_by_lookup(nl)?;
    // Stable: same-key routes keep the dump's order, which is the kernel's list order (IPv4
    // uses the first), so a restore can put a leading route back in front.
    routes.sort_by_key(routes::DefaultRoute::list_key);
    Ok(Baseline {
        version: FORMAT_VERSION,
        routes,
        rules: Vec::new(),
    })
}

/// The route guard's options from the configuration, as one CNI invocation uses them. It sees
/// one instant: an empty slot of a DHCP or RA route may be a renewal's delete-then-add in
/// flight, so no grace has elapsed and such a route is left to the guard daemon; nothing is
/// held back. The guard daemon replaces those two with its clocks.
pub fn route_options<'a>(plugin: &PluginConfig, refused: RefusalCheck<'a>) -> GuardOptions<'a> {
    GuardOptions {
        restore: plugin.routes_restore,
        restore_on_managed: plugin.routes_restore_on_managed,
        grace_elapsed: &never,
        held: &never,
        refused,
    }
}

fn never(_: &DefaultRoute) -> bool {
    false
}

/// What the guards of one ADD found and did.
pub struct GuardReport {
    pub recorded: bool,
    pub routes: GuardOutcome,
    pub rules: RulesOutcome,
}

/// What ADD does: record or load the baseline, restore missing default routes and guarded rules,
/// adopt what is new, and save the result, all under the baseline lock.
pub fn guard_and_adopt(
    state: &StateDir,
    route_options: &GuardOptions,
    rules: &RulesConfig,
) -> Result<GuardReport> {
    let mut nl = Netlink::new().context("open netlink socket")?;
    // An uplink move in progress has routes on both the interface and the bridge; the guard
    // must not judge (or "restore") that picture. Lock order everywhere: uplink, then baseline.
    let _uplink = state.lock("uplink")?;
    let _lock = state.lock("baseline")?;
    let (mut baseline, recorded) = load_or_record(state, &mut nl)?;
    let route_outcome = route_guard::guard(&mut nl, &baseline.routes, route_options)?;
    let rule_outcome = rules::guard(&mut nl, &baseline.rules, &rules.selectors, rules.restore)?;
    if route_outcome.baseline != baseline.routes || rule_outcome.baseline != baseline.rules {
        baseline.routes = route_outcome.baseline.clone();
        baseline.rules = rule_outcome.baseline.clone();
        write(state, &baseline)?;
    }
    Ok(GuardReport {
        recorded,
        routes: route_outcome,
        rules: rule_outcome,
    })
}

/// What CHECK and STATUS look at: the baseline routes and guarded rules the host no longer has,
/// each missing route judged by the route guard's own decision under `opts`. Nothing is changed
/// on the host or on disk.
pub struct Missing {
    /// Missing routes and next hops that a guard run under these options would put back.
    pub restorable: Vec<DefaultRoute>,
    /// Missing routes and next hops that it would leave missing, and why.
    pub unrestorable: Vec<Unrestored>,
    pub rules: Vec<GuardedRule>,
}

impl Missing {
    pub fn routes_missing(&self) -> bool {
        !self.restorable.is_empty() || !self.unrestorable.is_empty()
    }
}

pub fn missing(
    state: &StateDir,
    route_options: &GuardOptions,
    selectors: &[RuleSelector],
) -> Result<Missing> {
    let mut missing = Missing {
        restorable: Vec::new(),
        unrestorable: Vec::new(),
        rules: Vec::new(),
    };
    let Some(baseline) = read(state)? else {
        return Ok(missing);
    };
    let mut nl = Netlink::new().context("open netlink socket")?;
    let assessment = Assessment::take(&mut nl, &baseline.routes)?;
    for (route, why_not) in assessment.verdicts(&mut nl, route_options)? {
        match why_not {
            None => missing.restorable.push(route),
            Some(reason) => missing.unrestorable.push(Unrestored { route, reason }),
        }
    }
    missing.rules = rules::missing(&mut nl, &baseline.rules, selectors)?.0;
    Ok(missing)
}
