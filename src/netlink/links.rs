//! Links: dump, look up, create (bridge, veth), change (master, up, MTU, MAC) and delete, plus
//! readers for the attributes the host model classifies links by.

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoPortKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use nix::libc;

use super::error::{NlError, NlResult};
use super::{parse_payload, Netlink, RTM_NEWLINK};

impl Netlink {
    /// Every link in the namespace. Statistics are left out: they are most of a link message's
    /// bytes and nothing here reads them.
    pub fn links(&mut self) -> NlResult<Vec<LinkMessage>> {
        // A dump filtered by ifindex in the header is EINVAL under strict checking, so the
        // header stays zeroed.
        let mut request = LinkMessage::default();
        request.attributes.push(skip_stats());
        self.dump(&RouteNetlinkMessage::GetLink(request), decode_link)
            .map_err(|e| e.context("dump links"))
    }

    /// The link called `name`, or `None` if there is none (`ENODEV`).
    pub fn link_by_name(&mut self, name: &str) -> NlResult<Option<LinkMessage>> {
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        request.attributes.push(skip_stats());
        self.get_link(request)
            .map_err(|e| e.context(format!("look up link {name}")))
    }

    /// The link with ifindex `index`, or `None` if there is none (`ENODEV`).
    pub fn link_by_index(&mut self, index: u32) -> NlResult<Option<LinkMessage>> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.attributes.push(skip_stats());
        self.get_link(request)
            .map_err(|e| e.context(format!("look up link {index}")))
    }

    fn get_link(&mut self, request: LinkMessage) -> NlResult<Option<LinkMessage>> {
        let answer = self.get_one(&RouteNetlinkMessage::GetLink(request), |kind, payload| {
            decode_link(kind, payload)?
                .ok_or_else(|| NlError::malformed(format!("unexpected reply type {kind}")))
        });
        match answer {
            Ok(link) => Ok(Some(link)),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge (failing with `EEXIST` if the name is taken) and returns its ifindex.
    pub fn create_bridge(&mut self, name: &str) -> NlResult<u32> {
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        request
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create_link(request, name)
            .map_err(|e| e.context(format!("create bridge {name}")))
    }

    /// Creates a veth pair `name` <-> `peer` and returns the ifindex of `name`.
    pub fn create_veth(&mut self, name: &str, peer: &str) -> NlResult<u32> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        request.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.create_link(request, name)
            .map_err(|e| e.context(format!("create veth {name} peer {peer}")))
    }

    fn create_link(&mut self, request: LinkMessage, name: &str) -> NlResult<u32> {
        self.ack_request(
            &RouteNetlinkMessage::NewLink(request),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        // RTM_NEWLINK does not answer with the new ifindex, so ask for it by name.
        match self.link_by_name(name)? {
            Some(link) => Ok(link.header.index),
            None => Err(NlError::from_errno(
                libc::ENODEV,
                Some("the link vanished right after it was created".into()),
            )),
        }
    }

    /// Enslaves link `index` to `master`, or frees it from its master with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> NlResult<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        // IFLA_MASTER 0 is the kernel's way to say "no master".
        request
            .attributes
            .push(LinkAttribute::Controller(master.unwrap_or(0)));
        let result = self.set_link(request);
        result.map_err(|e| {
            let what = match master {
                Some(m) => format!(
                    "set master of {} to {}",
                    self.link_label(index),
                    self.link_label(m)
                ),
                None => format!("release {} from its master", self.link_label(index)),
            };
            e.context(what)
        })
    }

    /// Brings link `index` administratively up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> NlResult<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.header.change_mask = LinkFlags::Up;
        if up {
            request.header.flags = LinkFlags::Up;
        }
        let result = self.set_link(request);
        result.map_err(|e| {
            let state = if up { "up" } else { "down" };
            e.context(format!("set link {} {state}", self.link_label(index)))
        })
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> NlResult<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.attributes.push(LinkAttribute::Mtu(mtu));
        let result = self.set_link(request);
        result.map_err(|e| e.context(format!("set mtu {mtu} on link {}", self.link_label(index))))
    }

    /// Sets the hardware (MAC) address of link `index`.
    pub fn set_mac(&mut self, index: u32, mac: &[u8]) -> NlResult<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        let result = self.set_link(request);
        result.map_err(|e| {
            e.context(format!(
                "set address {} on link {}",
                format_mac(mac),
                self.link_label(index)
            ))
        })
    }

    fn set_link(&mut self, request: LinkMessage) -> NlResult<()> {
        self.ack_request(&RouteNetlinkMessage::SetLink(request), NLM_F_ACK)
    }

    /// Deletes link `index` (a veth takes its peer with it). `ENODEV` if it is gone already.
    pub fn delete_link(&mut self, index: u32) -> NlResult<()> {
        let label = self.link_label(index);
        let mut request = LinkMessage::default();
        request.header.index = index;
        self.ack_request(&RouteNetlinkMessage::DelLink(request), NLM_F_ACK)
            .map_err(|e| e.context(format!("delete link {label}")))
    }

    /// "eth0 (ifindex 2)" for error messages; just the number if the name cannot be read.
    pub(super) fn link_label(&mut self, index: u32) -> String {
        match self.link_by_index(index) {
            Ok(Some(link)) => match link.name() {
                Some(name) => name.to_owned(),
                None => format!("ifindex {index}"),
            },
            _ => format!("ifindex {index}"),
        }
    }
}

fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

fn decode_link(kind: u16, payload: &[u8]) -> NlResult<Option<LinkMessage>> {
    if kind != RTM_NEWLINK {
        return Ok(None);
    }
    parse_payload::<LinkMessage>(payload, "link").map(Some)
}

/// A hardware address as `ip link` and NetworkManager write it: lowercase `aa:bb:..`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Readers for the link attributes hostguard decides by.
pub trait LinkExt {
    /// IFLA_IFNAME.
    fn name(&self) -> Option<&str>;
    /// IFLA_INFO_KIND: bridge, veth, team, vxlan, ...; `None` for plain devices (physical NICs).
    fn kind(&self) -> Option<&InfoKind>;
    /// IFLA_INFO_SLAVE_KIND: what kind of master this link is a port of (bridge, team).
    fn slave_kind(&self) -> Option<&InfoPortKind>;
    /// IFLA_MASTER: the ifindex of the bridge/team/bond this link belongs to.
    fn master(&self) -> Option<u32>;
    /// IFLA_LINK: the ifindex of the lower device (a VLAN's or macvlan's parent, a veth's peer).
    /// Read it together with [`LinkExt::link_netnsid`]: with a netns id present the index belongs
    /// to another namespace.
    fn parent(&self) -> Option<u32>;
    /// IFLA_LINK_NETNSID: present when IFLA_LINK names a device in another network namespace.
    fn link_netnsid(&self) -> Option<i32>;
    /// IFF_UP (administratively up; the carrier may still be down).
    fn is_up(&self) -> bool;
    /// IFF_LOWER_UP: the carrier is up.
    fn has_carrier(&self) -> bool;
    /// IFLA_ADDRESS: the current hardware address.
    fn mac(&self) -> Option<&[u8]>;
    /// IFLA_PERM_ADDRESS: the permanent hardware address, which NetworkManager's `mac:` specs
    /// match; absent for most virtual devices.
    fn permanent_mac(&self) -> Option<&[u8]>;
    fn mtu(&self) -> Option<u32>;
}

impl LinkExt for LinkMessage {
    fn name(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.as_str()),
            _ => None,
        })
    }

    fn kind(&self) -> Option<&InfoKind> {
        link_infos(self).find_map(|info| match info {
            LinkInfo::Kind(kind) => Some(kind),
            _ => None,
        })
    }

    fn slave_kind(&self) -> Option<&InfoPortKind> {
        link_infos(self).find_map(|info| match info {
            LinkInfo::PortKind(kind) => Some(kind),
            _ => None,
        })
    }

    fn master(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::Controller(index) if *index != 0 => Some(*index),
            _ => None,
        })
    }

    fn parent(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::Link(index) if *index != 0 => Some(*index),
            _ => None,
        })
    }

    fn link_netnsid(&self) -> Option<i32> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkNetNsId(id) => Some(*id),
            _ => None,
        })
    }

    fn is_up(&self) -> bool {
        self.header.flags.contains(LinkFlags::Up)
    }

    fn has_carrier(&self) -> bool {
        self.header.flags.contains(LinkFlags::LowerUp)
    }

    fn mac(&self) -> Option<&[u8]> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac.as_slice()),
            _ => None,
        })
    }

    fn permanent_mac(&self) -> Option<&[u8]> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::PermAddress(mac) => Some(mac.as_slice()),
            _ => None,
        })
    }

    fn mtu(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        })
    }
}

fn link_infos(link: &LinkMessage) -> impl Iterator<Item = &LinkInfo> {
    link.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => Some(infos.iter()),
            _ => None,
        })
        .flatten()
}
