//! Which device a recorded default route means today. A name is not an identity: devices are
//! renamed (the route follows the ifindex), names are reused by other devices, and an agent may
//! turn a device into a port of a bridge and move its address to the bridge. Restoring by name
//! alone puts the host's egress through the wrong device.
//!
//! The rules:
//! - The same ifindex is the same device, whatever its name now.
//! - A recorded ifindex that is gone is the same device only if a device of the recorded name
//!   has the recorded MAC (a NIC whose driver was re-probed); any other holder of the name is a
//!   different device and never receives the route.
//! - A route recorded without an ifindex (an older baseline) is resolved by name, once; the
//!   identity is recorded from then on.
//! - A device that is now a port of a master (bridge, bond, team, OVS) is succeeded by the first
//!   master up its chain that holds the address the gateway was reached through. The route's
//!   slot is judged, and a restore made, on the successor, never on the port. With no such
//!   master the route is reported.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnetwork::IpNetwork;

use crate::host::routes::{DefaultRoute, Family, LinkId, Nexthop};
use crate::netlink::{format_mac, AddressExt, LinkExt, LinkMessage, Netlink};

/// Masters above masters (a port of a bond in a bridge) are followed this far.
const MAX_CHAIN: usize = 8;

/// The identity of a device as the baseline records it.
pub fn link_id(link: &LinkMessage) -> LinkId {
    LinkId {
        ifindex: link.header.index,
        mac: link.mac().filter(|m| !m.is_empty()).map(format_mac),
        kind: link.kind().map(ToString::to_string),
    }
}

/// Where resolution reads devices from: the kernel ([`Devices`]), or a fixed picture in tests
/// (bonds and teams, which this kernel cannot create, are tested that way).
pub trait LinkSource {
    fn by_index(&mut self, index: u32) -> Result<Option<LinkMessage>>;
    fn by_name(&mut self, name: &str) -> Result<Option<LinkMessage>>;
    /// The addresses (with prefix) a device holds.
    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>>;
}

/// Links and addresses asked of the kernel one device at a time, each at most once.
pub struct Devices<'a> {
    nl: &'a mut Netlink,
    by_index: HashMap<u32, Option<LinkMessage>>,
    by_name: HashMap<String, Option<LinkMessage>>,
    addresses: HashMap<u32, Vec<IpNetwork>>,
}

impl<'a> Devices<'a> {
    pub fn new(nl: &'a mut Netlink) -> Self {
        Devices {
            nl,
            by_index: HashMap::new(),
            by_name: HashMap::new(),
            addresses: HashMap::new(),
        }
    }
}

impl Devices<'_> {
    /// The socket the lookups go through, for the requests around them.
    pub fn netlink(&mut self) -> &mut Netlink {
        self.nl
    }
}

impl LinkSource for Devices<'_> {
    fn by_index(&mut self, index: u32) -> Result<Option<LinkMessage>> {
        if let Some(found) = self.by_index.get(&index) {
            return Ok(found.clone());
        }
        let found = self
            .nl
            .link_by_index(index)
            .with_context(|| format!("look up device ifindex {index}"))?;
        self.by_index.insert(index, found.clone());
        Ok(found)
    }

    fn by_name(&mut self, name: &str) -> Result<Option<LinkMessage>> {
        if let Some(found) = self.by_name.get(name) {
            return Ok(found.clone());
        }
        let found = self
            .nl
            .link_by_name(name)
            .with_context(|| format!("look up device {name}"))?;
        self.by_name.insert(name.to_string(), found.clone());
        Ok(found)
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>> {
        if let Some(found) = self.addresses.get(&index) {
            return Ok(found.clone());
        }
        let found: Vec<IpNetwork> = self
            .nl
            .addresses(None, Some(index))
            .with_context(|| format!("list the addresses of ifindex {index}"))?
            .iter()
            .filter_map(AddressExt::network)
            .collect();
        self.addresses.insert(index, found.clone());
        Ok(found)
    }
}

/// A recorded route against today's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The route as recorded, with each device that is still the same device under its
    /// current name and identity (a rename, or an old entry identified for the first time).
    pub recorded: DefaultRoute,
    /// The route as it must be in the kernel now: on today's names, a port's share on its
    /// successor, without the next hops whose devices are gone. `None` when nothing of it can
    /// be placed.
    pub effective: Option<DefaultRoute>,
    /// What cannot be placed, and why: the whole route, or the next hops left out.
    pub problems: Vec<(DefaultRoute, String)>,
    /// Devices read as their successor, for the log: "eth1 -> br0".
    pub successions: Vec<String>,
}

/// Where a recorded device is now.
enum Found {
    Same(LinkMessage),
    Successor {
        port: LinkMessage,
        master: LinkMessage,
    },
    Gone(String),
}

/// What a device was used for: the master that succeeds it must hold this.
struct Reach {
    family: Family,
    gateway: Option<IpAddr>,
    prefsrc: Option<IpAddr>,
    onlink: bool,
}

pub fn resolve(route: &DefaultRoute, devices: &mut dyn LinkSource) -> Result<Resolution> {
    let mut resolution = Resolution {
        recorded: route.clone(),
        effective: Some(route.clone()),
        problems: Vec::new(),
        successions: Vec::new(),
    };
    // The devices of a route through a nexthop object belong to the object; the route's slot
    // is the object itself.
    if route.nhid().is_some() {
        return Ok(resolution);
    }
    if route.nexthops.is_empty() {
        let Some(dev) = route.dev.clone() else {
            return Ok(resolution);
        };
        let reach = Reach {
            family: route.family,
            gateway: route.next_hop_address(),
            prefsrc: route.prefsrc,
            onlink: route.onlink,
        };
        match find(&dev, route.link.as_ref(), &reach, devices)? {
            Found::Same(link) => {
                set(
                    &mut resolution.recorded.dev,
                    &mut resolution.recorded.link,
                    &link,
                );
                let effective = resolution.effective.as_mut().expect("set above");
                set(&mut effective.dev, &mut effective.link, &link);
            }
            Found::Successor { port, master } => {
                set(
                    &mut resolution.recorded.dev,
                    &mut resolution.recorded.link,
                    &port,
                );
                let effective = resolution.effective.as_mut().expect("set above");
                set(&mut effective.dev, &mut effective.link, &master);
                resolution
                    .successions
                    .push(format!("{} -> {}", name(&port), name(&master)));
            }
            Found::Gone(reason) => {
                resolution.effective = None;
                resolution.problems.push((route.clone(), reason));
            }
        }
        return Ok(resolution);
    }
    let mut kept: Vec<Nexthop> = Vec::new();
    for (at, hop) in route.nexthops.iter().enumerate() {
        let reach = Reach {
            family: route.family,
            gateway: hop
                .gateway
                .or_else(|| route.hop_as_route(hop).next_hop_address()),
            prefsrc: route.prefsrc,
            onlink: hop.onlink,
        };
        match find(&hop.dev, hop.link.as_ref(), &reach, devices)? {
            Found::Same(link) => {
                let recorded = &mut resolution.recorded.nexthops[at];
                set_hop(recorded, &link);
                let mut hop = hop.clone();
                set_hop(&mut hop, &link);
                kept.push(hop);
            }
            Found::Successor { port, master } => {
                set_hop(&mut resolution.recorded.nexthops[at], &port);
                let mut hop = hop.clone();
                set_hop(&mut hop, &master);
                kept.push(hop);
                resolution
                    .successions
                    .push(format!("{} -> {}", name(&port), name(&master)));
            }
            Found::Gone(reason) => resolution.problems.push((
                route.hop_as_route(hop),
                format!("next hop left out: {reason}"),
            )),
        }
    }
    resolution.effective = match kept.len() {
        0 => None,
        // One next hop left is a plain route: that is how the kernel keeps and shows it.
        1 => Some(route.hop_as_route(&kept[0])),
        _ => Some(DefaultRoute {
            nexthops: kept,
            ..route.clone()
        }),
    };
    Ok(resolution)
}

fn name(link: &LinkMessage) -> String {
    link.name().unwrap_or("?").to_string()
}

fn set(dev: &mut Option<String>, id: &mut Option<crate::host::routes::LinkId>, link: &LinkMessage) {
    *dev = Some(name(link));
    *id = Some(link_id(link));
}

fn set_hop(hop: &mut Nexthop, link: &LinkMessage) {
    hop.dev = name(link);
    hop.link = Some(link_id(link));
}

fn find(
    dev: &str,
    recorded: Option<&LinkId>,
    reach: &Reach,
    devices: &mut dyn LinkSource,
) -> Result<Found> {
    let device = match recorded {
        Some(id) => match devices.by_index(id.ifindex)? {
            Some(link) => link,
            None => match devices.by_name(dev)? {
                Some(link)
                    if id.mac.is_some()
                        && link_id(&link).mac == id.mac
                        && !is_zero_mac(&id.mac) =>
                {
                    link
                }
                Some(other) => {
                    return Ok(Found::Gone(format!(
                        "device {dev} (ifindex {}) is gone; the name {dev} now belongs to \
                         another device (ifindex {}), which never receives its routes",
                        id.ifindex, other.header.index
                    )))
                }
                None => {
                    return Ok(Found::Gone(format!(
                        "device {dev} (ifindex {}) is gone",
                        id.ifindex
                    )))
                }
            },
        },
        None => match devices.by_name(dev)? {
            Some(link) => link,
            None => return Ok(Found::Gone(format!("device {dev} is gone"))),
        },
    };
    let Some(mut master_index) = device.master() else {
        return Ok(Found::Same(device));
    };
    let port = name(&device);
    for _ in 0..MAX_CHAIN {
        let Some(master) = devices.by_index(master_index)? else {
            break;
        };
        if holds(&master, reach, devices)? {
            return Ok(Found::Successor {
                port: device,
                master,
            });
        }
        match master.master() {
            Some(next) => master_index = next,
            None => {
                return Ok(Found::Gone(format!(
                    "{port} is a port of {} and no master up its chain holds the address {} \
                     was reached through; the route is never put on a port",
                    name(&master),
                    reach
                        .gateway
                        .map_or_else(|| "the route".to_string(), |g| g.to_string())
                )))
            }
        }
    }
    Ok(Found::Gone(format!(
        "{port} is a port, and its masters cannot be followed to one that holds its address"
    )))
}

fn is_zero_mac(mac: &Option<String>) -> bool {
    mac.as_deref()
        .is_some_and(|m| m.chars().all(|c| c == '0' || c == ':'))
}

/// Whether `master` holds the address its port reached the route's gateway through: the
/// route's preferred source, else an address whose subnet holds the gateway, else (an onlink
/// or gateway-less route) any address of the family.
fn holds(master: &LinkMessage, reach: &Reach, devices: &mut dyn LinkSource) -> Result<bool> {
    let addresses = devices.addresses(master.header.index)?;
    let of_family: Vec<&IpNetwork> = addresses
        .iter()
        .filter(|a| match reach.family {
            Family::Inet => a.is_ipv4(),
            Family::Inet6 => a.is_ipv6(),
        })
        .collect();
    if let Some(src) = reach.prefsrc {
        return Ok(addresses.iter().any(|a| a.ip() == src));
    }
    match reach.gateway {
        // An IPv4 route via an IPv6 neighbour is reached through the IPv6 addresses.
        Some(gw) if !reach.onlink => Ok(addresses.iter().any(|a| a.contains(gw))),
        _ => Ok(!of_family.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::routes::tests::route;
    use crate::netlink::LinkAttribute;

    /// A fixed picture of devices: what a node with a bond (which this kernel cannot create)
    /// looks like through netlink.
    #[derive(Default)]
    struct Picture {
        links: Vec<LinkMessage>,
        addresses: HashMap<u32, Vec<IpNetwork>>,
    }

    impl Picture {
        fn link(mut self, index: u32, name: &str, mac: [u8; 6], master: Option<u32>) -> Self {
            let mut link = LinkMessage::default();
            link.header.index = index;
            link.attributes.push(LinkAttribute::IfName(name.into()));
            link.attributes.push(LinkAttribute::Address(mac.to_vec()));
            if let Some(master) = master {
                link.attributes.push(LinkAttribute::Controller(master));
            }
            self.links.push(link);
            self
        }

        fn address(mut self, index: u32, net: &str) -> Self {
            self.addresses
                .entry(index)
                .or_default()
                .push(net.parse().unwrap());
            self
        }
    }

    impl LinkSource for Picture {
        fn by_index(&mut self, index: u32) -> Result<Option<LinkMessage>> {
            Ok(self.links.iter().find(|l| l.header.index == index).cloned())
        }
        fn by_name(&mut self, name: &str) -> Result<Option<LinkMessage>> {
            Ok(self.links.iter().find(|l| l.name() == Some(name)).cloned())
        }
        fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>> {
            Ok(self.addresses.get(&index).cloned().unwrap_or_default())
        }
    }

    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn eth1_route(ifindex: u32, mac: [u8; 6]) -> DefaultRoute {
        let mut r = route("eth1", "172.26.0.33", 0);
        r.link = Some(LinkId {
            ifindex,
            mac: Some(format_mac(&mac)),
            kind: None,
        });
        r
    }

    #[test]
    fn a_port_of_a_bond_in_a_bridge_is_succeeded_by_the_addressed_bridge() {
        let mut picture = Picture::default()
            .link(3, "eth1", MAC1, Some(7))
            .link(7, "bond0", MAC1, Some(8))
            .link(8, "br0", MAC1, None)
            .address(8, "172.26.0.35/27");
        let got = resolve(&eth1_route(3, MAC1), &mut picture).unwrap();
        let effective = got.effective.unwrap();
        assert_eq!(effective.dev.as_deref(), Some("br0"));
        assert_eq!(effective.link.unwrap().ifindex, 8);
        assert_eq!(effective.gateway, Some("172.26.0.33".parse().unwrap()));
        assert_eq!(
            got.recorded.dev.as_deref(),
            Some("eth1"),
            "the record stays eth1's"
        );
        assert_eq!(got.successions, ["eth1 -> br0"]);
    }

    #[test]
    fn a_bond_holding_the_address_succeeds_before_the_bridge_above_it() {
        let mut picture = Picture::default()
            .link(3, "eth1", MAC1, Some(7))
            .link(7, "bond0", MAC1, Some(8))
            .link(8, "br0", MAC1, None)
            .address(7, "172.26.0.35/27")
            .address(8, "172.26.0.35/27");
        let got = resolve(&eth1_route(3, MAC1), &mut picture).unwrap();
        assert_eq!(got.effective.unwrap().dev.as_deref(), Some("bond0"));
    }

    #[test]
    fn a_port_whose_masters_hold_another_subnet_is_reported() {
        let mut picture = Picture::default()
            .link(3, "eth1", MAC1, Some(7))
            .link(7, "bond0", MAC1, None)
            .address(7, "10.0.0.2/24");
        let got = resolve(&eth1_route(3, MAC1), &mut picture).unwrap();
        assert_eq!(got.effective, None);
        assert!(
            got.problems[0].1.contains("eth1 is a port of bond0"),
            "{got:?}"
        );
    }

    #[test]
    fn a_reprobed_nic_with_the_recorded_mac_is_the_same_device_a_stranger_is_not() {
        let mut reprobed = Picture::default().link(9, "eth1", MAC1, None);
        let got = resolve(&eth1_route(3, MAC1), &mut reprobed).unwrap();
        assert_eq!(got.effective.unwrap().link.unwrap().ifindex, 9);
        assert_eq!(got.recorded.link.unwrap().ifindex, 9, "identified anew");

        let mut stranger = Picture::default().link(9, "eth1", MAC2, None);
        let got = resolve(&eth1_route(3, MAC1), &mut stranger).unwrap();
        assert_eq!(got.effective, None);
        assert!(got.problems[0].1.contains("now belongs to another device"));
    }

    #[test]
    fn a_rename_is_followed_and_recorded() {
        let mut picture = Picture::default().link(3, "uplink1", MAC1, None);
        let got = resolve(&eth1_route(3, MAC1), &mut picture).unwrap();
        assert_eq!(got.effective.unwrap().dev.as_deref(), Some("uplink1"));
        assert_eq!(got.recorded.dev.as_deref(), Some("uplink1"));
    }
}
