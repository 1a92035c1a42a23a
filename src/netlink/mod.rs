//! A small synchronous rtnetlink client: links, addresses, routes (both families, every table,
//! multipath) and rules, plus change notifications.
//!
//! Choices, and why:
//! - **Synchronous.** hostguard is a short-lived process that sends a handful of requests per
//!   CNI verb. A blocking socket needs no runtime, no background task and no thought about which
//!   thread a future lands on, which matters because a netlink socket belongs to the network
//!   namespace it was opened in (the tests open one inside a throwaway namespace from a scoped
//!   thread, tests/common/netns.rs): open it in the right namespace once and
//!   every later call is plain function calls.
//! - **Strict checking on** (`NETLINK_GET_STRICT_CHK`). Without it the kernel ignores dump
//!   filters and returns every route of every table; with it, family, table (as `RTA_TABLE`,
//!   since the header byte stops at 255), output interface, protocol, route type and ifindex
//!   filters are applied in the kernel, and a request the kernel cannot honour is an error
//!   instead of a silent "everything". Strict mode wants a zeroed header for link and rule
//!   dumps; the dump functions here build their requests accordingly. The results are checked
//!   again in user space, so a kernel without the option still gives correct answers.
//! - **Errors by errno.** The kernel reports a failed dump in the `NLMSG_DONE` message, not as
//!   `NLMSG_ERROR`; both are honoured, so a failing dump is an `Err`, never an empty list.
//!   `NlError::is_exists` / `is_not_found` / `is_interrupted` decide by errno, never by text.
//!   A dump marked `NLM_F_DUMP_INTR` (it raced with a change) is `EINTR` so callers retry.
//! - **Header peek.** The kernel cannot filter routes by destination, so a "default routes
//!   only" dump on a BGP router still carries every route. Each message's fixed 12-byte rtmsg
//!   header is read first and only routes with a zero-length destination get the full
//!   attribute parse.
//! - **No replace.** Adds are exclusive (`NLM_F_EXCL`) or appending: hostguard never
//!   overwrites what it does not own.
//!
//! Messages are the `netlink-packet-route` types (re-exported here); the `*Ext` traits read the
//! fields hostguard cares about, and `unicast_route`, `address_message` and `lookup_rule` build
//! the common requests.

mod addrs;
mod error;
mod events;
mod links;
mod routes;
mod rules;
mod socket;

#[cfg(test)]
pub(crate) mod tests;

use std::net::IpAddr;

use netlink_packet_core::Parseable;

pub use addrs::{address_message, AddressExt};
pub use error::{NlError, NlResult};
pub use events::{EventSocket, Group, HOST_GUARD_GROUPS};
pub use links::{format_mac, LinkExt};
pub use routes::{unicast_route, AddMode, NextHop, RouteExt, RouteFilter};
pub use rules::{describe_rule, lookup_rule, RuleExt};
pub use socket::Netlink;

pub use netlink_packet_route::address::{AddressAttribute, AddressMessage};
pub use netlink_packet_route::link::{
    InfoKind, InfoPortKind, LinkAttribute, LinkFlags, LinkMessage,
};
pub use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
pub use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
pub use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

// Message types (linux/rtnetlink.h); netlink-packet-route keeps its own copies private.
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_NEWRULE: u16 = 32;
pub(crate) const RTM_DELRULE: u16 = 33;

/// Parses one message body, turning a decode failure into an error that names what it was.
fn parse_payload<T: Parseable<[u8]>>(payload: &[u8], what: &str) -> NlResult<T> {
    T::parse(payload).map_err(|e| NlError::malformed(format!("malformed {what} message: {e}")))
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}
