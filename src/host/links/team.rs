//! The team classification that decides, from the link facts `netlink::LinkExt` reads out of
//! `RTM_NEWLINK` messages, whether hostguard may touch a host link at all (incident 5: a CNI that
//! set NetworkManager-managed team NICs down cut the node off).
//!
//! The input is a full link dump (`&[LinkMessage]`), never a socket, so that the decision is a pure
//! function: unit tests feed it recorded or constructed messages (this kernel has no team driver),
//! and the caller decides when to dump.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::netlink::{InfoKind, InfoPortKind, LinkExt, LinkMessage};

/// Longest chain of master / lower / port hops followed from the link in question. Real stacks are
/// two or three deep (VLAN on a bond on a team); the bound keeps a corrupt or hostile dump (cycles,
/// self-references, a thousand nested links) from costing more than a few hundred steps.
pub const MAX_HOPS: usize = 8;

fn is_team(link: &LinkMessage) -> bool {
    matches!(link.kind(), Some(InfoKind::Team))
}

fn is_team_port(link: &LinkMessage) -> bool {
    matches!(link.slave_kind(), Some(InfoPortKind::Team))
}

/// Whether `IFLA_LINK` names a device this link is stacked on. A veth's (or vxcan's, netkit's)
/// `IFLA_LINK` is its peer, not a lower device, and an index that comes with a netns id belongs to
/// another namespace, where it may well equal the ifindex of an unrelated host link.
fn lower_device(link_msg: &LinkMessage) -> Option<u32> {
    if link_msg.link_netnsid().is_some() {
        return None;
    }
    match link_msg.kind() {
        Some(InfoKind::Veth | InfoKind::Vxcan | InfoKind::Netkit) => None,
        _ => link_msg.parent(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Hop {
    /// From a port to its master (`IFLA_MASTER`).
    Up,
    /// From a stacked device to its lower device (`IFLA_LINK`).
    Lower,
    /// From a master to one of its ports.
    Down,
}

/// Why the link with ifindex `index` must not be touched because of a team, or `None` when no team
/// is involved (or `index` is not in the dump).
///
/// A link is refused when it is a team master (`IFLA_INFO_KIND` team), a team port
/// (`IFLA_INFO_SLAVE_KIND` team, or `IFLA_MASTER` naming a team), or reaches one of those through
/// masters (a port of a bond that is a team port), lower devices (a VLAN or macvlan on a team or on a
/// team port) or ports (a bridge or bond that has a team, or a VLAN on one, as a port). A hop up to a
/// master is never followed by a hop down to another port: a plain NIC in the same bridge as a team is
/// a sibling, and touching it does not touch the team. The search is breadth first, so the evidence
/// names the shortest chain, e.g. "vlan10 is stacked on eth1 (IFLA_LINK); eth1 is a port of team0".
pub fn team_evidence(links: &[LinkMessage], index: u32) -> Option<String> {
    let by_index: HashMap<u32, &LinkMessage> = links.iter().map(|l| (l.header.index, l)).collect();
    let mut ports: HashMap<u32, Vec<u32>> = HashMap::new();
    for l in links {
        if let Some(m) = l.master() {
            ports.entry(m).or_default().push(l.header.index);
        }
    }
    let start = by_index.get(&index)?;
    if let Some(reason) = own_team_reason(start, &by_index) {
        return Some(reason);
    }

    // Each queue entry: (ifindex, the hop that reached it, the path of sentences so far).
    let mut queue: VecDeque<(u32, Option<Hop>, Vec<String>)> = VecDeque::new();
    let mut seen: HashSet<(u32, Option<Hop>)> = HashSet::new();
    queue.push_back((index, None, Vec::new()));
    seen.insert((index, None));
    while let Some((current, arrived_by, path)) = queue.pop_front() {
        if path.len() >= MAX_HOPS {
            continue;
        }
        let Some(msg) = by_index.get(&current) else {
            continue;
        };
        let here = display_name(msg);
        let mut next: Vec<(u32, Hop, String)> = Vec::new();
        if let Some(m) = msg.master() {
            let sentence = format!("{here} is a port of {}", name_of(&by_index, m));
            next.push((m, Hop::Up, sentence));
        }
        if let Some(lower) = lower_device(msg) {
            let sentence = format!(
                "{here} is stacked on {} (IFLA_LINK)",
                name_of(&by_index, lower)
            );
            next.push((lower, Hop::Lower, sentence));
        }
        if arrived_by != Some(Hop::Up) {
            for &port in ports.get(&current).map(Vec::as_slice).unwrap_or(&[]) {
                let sentence = format!("{here} has {} as a port", name_of(&by_index, port));
                next.push((port, Hop::Down, sentence));
            }
        }
        for (target, hop, sentence) in next {
            if !seen.insert((target, Some(hop))) {
                continue;
            }
            let mut path = path.clone();
            path.push(sentence);
            if let Some(target_msg) = by_index.get(&target) {
                if is_team(target_msg) {
                    return Some(path.join("; "));
                }
                if let Some(reason) = own_team_reason(target_msg, &by_index) {
                    path.push(reason);
                    return Some(path.join("; "));
                }
            }
            queue.push_back((target, Some(hop), path));
        }
    }
    None
}

/// The reason that needs no walk: the link is a team, or says itself that it is a team port.
fn own_team_reason(link: &LinkMessage, by_index: &HashMap<u32, &LinkMessage>) -> Option<String> {
    let here = display_name(link);
    if is_team(link) {
        return Some(format!("{here} is a team device (IFLA_INFO_KIND team)"));
    }
    if is_team_port(link) {
        return Some(match link.master() {
            Some(m) => format!("{here} is a port of {}", name_of(by_index, m)),
            None => format!("{here} is a team port (IFLA_INFO_SLAVE_KIND team)"),
        });
    }
    None
}

fn display_name(link: &LinkMessage) -> String {
    link.name()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("ifindex {}", link.header.index))
}

fn name_of(by_index: &HashMap<u32, &LinkMessage>, index: u32) -> String {
    match by_index.get(&index) {
        Some(link) => display_name(link),
        None => format!("ifindex {index} (not in the link dump)"),
    }
}

#[cfg(test)]
mod tests;
