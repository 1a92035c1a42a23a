//! The baseline on disk and the host it describes: record it, keep it current, guard it.
//! Shared by ADD, CHECK, STATUS and `hostguard baseline`, so all of them mean the same thing by
//! "the host's default routes".

use anyhow::{Context, Result};

use crate::cni::config::{RuleSelector, RulesConfig};
use crate::host::route_guard::{self, GuardOutcome, RefusalCheck};
use crate::host::routes;
use crate::host::rules::{self, GuardedRule, RulesOutcome};
use crate::netlink::Netlink;
use crate::state::{Baseline, StateDir, FORMAT_VERSION};

/// The baseline, recording the host as it is now when there is none yet. The caller holds the
/// `baseline` lock.
pub fn load_or_record(state: &StateDir, nl: &mut Netlink) -> Result<(Baseline, bool)> {
    if let Some(baseline) = state.read_baseline()? {
        return Ok((baseline, false));
    }
    let baseline = observe(nl)?;
    state.write_baseline(&baseline)?;
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
    routes_restore: bool,
    rules: &RulesConfig,
    refused: RefusalCheck,
) -> Result<GuardReport> {
    let mut nl = Netlink::new().context("open netlink socket")?;
    // An uplink move in progress has routes on both the interface and the bridge; the guard
    // must not judge (or "restore") that picture. Lock order everywhere: uplink, then baseline.
    let _uplink = state.lock("uplink")?;
    let _lock = state.lock("baseline")?;
    let (mut baseline, recorded) = load_or_record(state, &mut nl)?;
    let route_outcome = route_guard::guard(&mut nl, &baseline.routes, routes_restore, refused)?;
    let rule_outcome = rules::guard(&mut nl, &baseline.rules, &rules.selectors, rules.restore)?;
    let adopted = routes::adopt(&baseline.routes, &route_outcome.current);
    if adopted != baseline.routes || rule_outcome.baseline != baseline.rules {
        baseline.routes = adopted;
        baseline.rules = rule_outcome.baseline.clone();
        state.write_baseline(&baseline)?;
    }
    Ok(GuardReport {
        recorded,
        routes: route_outcome,
        rules: rule_outcome,
    })
}

/// What STATUS looks at: baseline routes and guarded rules that are missing and that the guards
/// would not put back (device down or gone, refused, restore turned off). A missing route the
/// next guard run restores is not in here. Nothing is changed on the host or on disk.
pub struct Unrestorable {
    pub routes: Vec<route_guard::Unrestored>,
    pub rules: Vec<GuardedRule>,
}

pub fn unrestorable(
    state: &StateDir,
    routes_restore: bool,
    rules: &RulesConfig,
    refused: RefusalCheck,
) -> Result<Unrestorable> {
    let Some(baseline) = state.read_baseline()? else {
        return Ok(Unrestorable {
            routes: Vec::new(),
            rules: Vec::new(),
        });
    };
    let mut nl = Netlink::new().context("open netlink socket")?;
    let routes = route_guard::unrestorable(&mut nl, &baseline.routes, routes_restore, refused)?;
    let rules = if rules.restore {
        Vec::new()
    } else {
        rules::missing(&mut nl, &baseline.rules, &rules.selectors)?.0
    };
    Ok(Unrestorable { routes, rules })
}

/// What CHECK looks at: baseline routes and guarded rules the host no longer has. Nothing is
/// changed on the host or on disk.
pub struct Missing {
    pub routes: Vec<routes::DefaultRoute>,
    pub rules: Vec<GuardedRule>,
}

pub fn missing(state: &StateDir, selectors: &[RuleSelector]) -> Result<Missing> {
    let Some(baseline) = state.read_baseline()? else {
        return Ok(Missing {
            routes: Vec::new(),
            rules: Vec::new(),
        });
    };
    let mut nl = Netlink::new().context("open netlink socket")?;
    let current = route_guard::default_routes_by_lookup(&mut nl)?;
    let diff = routes::diff(&baseline.routes, &current);
    let (gone_rules, _) = rules::missing(&mut nl, &baseline.rules, selectors)?;
    Ok(Missing {
        routes: diff.missing.into_iter().chain(diff.missing_hops).collect(),
        rules: gone_rules,
    })
}
