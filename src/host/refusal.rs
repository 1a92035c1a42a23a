//! The one decision every host mutation asks first: may hostguard touch this link? A team
//! device, a team port, anything stacked on one, or a link NetworkManager manages is refused
//! (incident 5), and the answer carries the evidence an operator can check.

use crate::config::{NmDirs, RefuseConfig};
use crate::host::links;
use crate::host::links::LinkTable;
use crate::host::nm::{self, LinkFacts, NmPaths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    Team,
    NetworkManager,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub evidence: String,
}

/// The seam for the link classifiers: given the host's links and a link name, say whether
/// hostguard must leave that link alone. The route guard asks it before restoring a route through
/// a device, the uplink attachment for the uplink and the bridge before anything changes; tests
/// pass their own.
pub type RefusalCheck<'a> = &'a dyn Fn(&LinkTable, &str) -> Option<Refusal>;

/// [`refusal`] with the plugin's `refuse` and `networkManager` settings bound, as every caller
/// that builds guard options or attaches an uplink asks it.
pub fn check<'a>(
    refuse: RefuseConfig,
    nm_dirs: &'a NmDirs,
) -> impl Fn(&LinkTable, &str) -> Option<Refusal> + 'a {
    move |table, name| refusal(table, name, refuse, nm_dirs)
}

/// Whether the link named `name` must be left alone. Team checks come first: they need only
/// the link dump, and a team under NetworkManager is refused for being a team either way.
pub fn refusal(
    table: &LinkTable,
    name: &str,
    refuse: RefuseConfig,
    nm_dirs: &NmDirs,
) -> Option<Refusal> {
    let link = table.get(name)?;
    if refuse.team {
        if let Some(evidence) = links::team::team_evidence(table.links(), link.header.index) {
            return Some(Refusal {
                kind: RefusalKind::Team,
                evidence,
            });
        }
    }
    if refuse.network_manager {
        let paths = NmPaths::new(&nm_dirs.run_dir, &nm_dirs.conf_dir);
        let facts = LinkFacts::from_message(link)?;
        match nm::nm_verdict(&paths, &facts) {
            Ok(verdict) if verdict.is_managed() => {
                return Some(Refusal {
                    kind: RefusalKind::NetworkManager,
                    evidence: verdict.evidence().to_string(),
                })
            }
            Ok(_) => {}
            // Refusing is the safe way to be wrong: an unreadable NetworkManager configuration
            // must not let hostguard take a link away from a running NetworkManager.
            Err(err) => {
                return Some(Refusal {
                    kind: RefusalKind::NetworkManager,
                    evidence: format!(
                        "{name}: NetworkManager's state or configuration cannot be read: {err:#}"
                    ),
                })
            }
        }
    }
    None
}

/// Evidence for each of `names` (host-side interfaces of a prevResult) that NetworkManager
/// manages: NetworkManager may later take down or re-address what the CNI just created, so ADD
/// warns about it. Hosts where NetworkManager never ran since boot have no `runDir/devices`, and
/// are answered without looking at any process. Each name is looked up on its own: a link dump
/// grows with the node's pods (with 400 links it made every ADD cost 9 ms and 10 MiB).
pub fn nm_managed(names: &[String], nm_dirs: &NmDirs) -> anyhow::Result<Vec<String>> {
    if names.is_empty() || !nm_dirs.run_dir.join("devices").is_dir() {
        return Ok(Vec::new());
    }
    let mut nl = crate::netlink::Netlink::new()?;
    let paths = NmPaths::new(&nm_dirs.run_dir, &nm_dirs.conf_dir);
    let mut managed = Vec::new();
    for name in names {
        let Some(facts) = nl
            .link_by_name(name)?
            .as_ref()
            .and_then(LinkFacts::from_message)
        else {
            continue;
        };
        match nm::nm_verdict(&paths, &facts) {
            Ok(verdict) if verdict.is_managed() => managed.push(verdict.evidence().to_string()),
            Ok(_) => {}
            Err(err) => managed.push(format!("{name}: {err:#}")),
        }
    }
    Ok(managed)
}
