//! The baseline on disk and the host it describes: record it, keep it current, guard it.
//! Shared by ADD, CHECK, STATUS and `hostguard baseline`, so all of them mean the same thing by
//! "the host's default routes".

use anyhow::{Context, Result};

use crate::host::route_guard::{self, GuardOutcome, LinkTable, RefusalCheck};
use crate::host::routes;
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
    let links = LinkTable::load(nl)?;
    let mut routes = route_guard::default_routes(nl, &links)?;
    routes.sort_by_key(routes::DefaultRoute::slots);
    Ok(Baseline {
        version: FORMAT_VERSION,
        routes,
        rules: Vec::new(),
    })
}

/// What ADD does for default routes: record or load the baseline, restore what is missing,
/// adopt what is new, and save the result.
pub fn guard_and_adopt(
    state: &StateDir,
    restore: bool,
    refused: RefusalCheck,
) -> Result<(GuardOutcome, bool)> {
    let mut nl = Netlink::new().context("open netlink socket")?;
    let _lock = state.lock("baseline")?;
    let (mut baseline, recorded) = load_or_record(state, &mut nl)?;
    let outcome = route_guard::guard(&mut nl, &baseline.routes, restore, refused)?;
    let adopted = routes::adopt(&baseline.routes, &outcome.current);
    if adopted != baseline.routes {
        baseline.routes = adopted;
        state.write_baseline(&baseline)?;
    }
    Ok((outcome, recorded))
}

/// What CHECK does: the same comparison, nothing changed on the host or on disk.
pub fn missing_routes(state: &StateDir) -> Result<Vec<routes::DefaultRoute>> {
    let Some(baseline) = state.read_baseline()? else {
        return Ok(Vec::new());
    };
    let mut nl = Netlink::new().context("open netlink socket")?;
    let links = LinkTable::load(&mut nl)?;
    let current = route_guard::default_routes(&mut nl, &links)?;
    let diff = routes::diff(&baseline.routes, &current);
    Ok(diff.missing.into_iter().chain(diff.missing_hops).collect())
}
