//! Interface addresses: dump (filtered by family and ifindex in the kernel), add, delete.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressHeader, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::error::{NlError, NlResult};
use super::{family_of, parse_payload, Netlink, RTM_NEWADDR};

impl Netlink {
    /// Addresses of one family (`None`: IPv4 and IPv6) on one link (`None`: all links). Both
    /// filters go to the kernel, which then sends only what matches.
    pub fn addresses(
        &mut self,
        family: Option<AddressFamily>,
        ifindex: Option<u32>,
    ) -> NlResult<Vec<AddressMessage>> {
        let mut request = AddressMessage::default();
        request.header.family = family.unwrap_or(AddressFamily::Unspec);
        request.header.index = ifindex.unwrap_or(0);
        self.dump(
            &RouteNetlinkMessage::GetAddress(request),
            |kind, payload| {
                if kind != RTM_NEWADDR {
                    return Ok(None);
                }
                // Checked again here because a kernel without strict checking ignores the filter.
                let header = AddressHeader::parse(payload)
                    .map_err(|e| NlError::malformed(format!("malformed address message: {e}")))?;
                if family.is_some_and(|f| f != header.family)
                    || ifindex.is_some_and(|i| i != header.index)
                {
                    return Ok(None);
                }
                parse_payload::<AddressMessage>(payload, "address").map(Some)
            },
        )
        .map_err(|e| e.context("dump addresses"))
    }

    /// Adds an address; `EEXIST` if the link already has it.
    pub fn add_address(&mut self, msg: AddressMessage) -> NlResult<()> {
        let request = RouteNetlinkMessage::NewAddress(msg);
        let result = self.ack_request(&request, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        result.map_err(|e| e.context(format!("add address {}", self.describe_address(&request))))
    }

    /// Deletes an address; `EADDRNOTAVAIL` if the link does not have it.
    pub fn del_address(&mut self, msg: AddressMessage) -> NlResult<()> {
        let request = RouteNetlinkMessage::DelAddress(msg);
        let result = self.ack_request(&request, NLM_F_ACK);
        result.map_err(|e| {
            e.context(format!(
                "delete address {}",
                self.describe_address(&request)
            ))
        })
    }

    fn describe_address(&mut self, request: &RouteNetlinkMessage) -> String {
        let (RouteNetlinkMessage::NewAddress(msg) | RouteNetlinkMessage::DelAddress(msg)) = request
        else {
            return String::new();
        };
        let address = match msg.ip() {
            Some(ip) => format!("{ip}/{}", msg.header.prefix_len),
            None => "(none)".to_owned(),
        };
        format!("{address} dev {}", self.link_label(msg.header.index))
    }
}

/// An address message for `network` (the address and its prefix length) on link `index`.
pub fn address_message(index: u32, network: IpNetwork) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(network.ip());
    msg.header.prefix_len = network.prefix();
    msg.header.index = index;
    // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links and
    // equal to IFA_LOCAL otherwise. `ip addr add` sends both, and so do we.
    msg.attributes.push(AddressAttribute::Local(network.ip()));
    msg.attributes.push(AddressAttribute::Address(network.ip()));
    msg
}

/// Readers for address messages.
pub trait AddressExt {
    /// The interface's own address: IFA_LOCAL when present (it differs from IFA_ADDRESS on
    /// point-to-point links), IFA_ADDRESS otherwise.
    fn ip(&self) -> Option<IpAddr>;
    /// `ip()` with the prefix length.
    fn network(&self) -> Option<IpNetwork>;
}

impl AddressExt for AddressMessage {
    fn ip(&self) -> Option<IpAddr> {
        let local = self.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        local.or_else(|| {
            self.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
    }

    fn network(&self) -> Option<IpNetwork> {
        IpNetwork::new(self.ip()?, self.header.prefix_len).ok()
    }
}
