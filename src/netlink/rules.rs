//! Policy routing rules (`ip rule`): dump, exclusive add, delete.

use std::fmt::Write as _;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::RouteHeader;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::error::NlResult;
use super::{parse_payload, Netlink, RTM_NEWRULE};

impl Netlink {
    /// All rules of one family. The request header is zeroed except for the family: strict
    /// checking rejects a rule dump with anything else set (EINVAL inside NLMSG_DONE).
    pub fn rules(&mut self, family: AddressFamily) -> NlResult<Vec<RuleMessage>> {
        let mut request = RuleMessage::default();
        request.header.family = family;
        self.dump(&RouteNetlinkMessage::GetRule(request), |kind, payload| {
            if kind != RTM_NEWRULE {
                return Ok(None);
            }
            let rule = parse_payload::<RuleMessage>(payload, "rule")?;
            Ok((rule.header.family == family).then_some(rule))
        })
        .map_err(|e| e.context(format!("dump {family:?} rules")))
    }

    /// Adds a rule; `EEXIST` if an identical one exists.
    pub fn add_rule(&mut self, msg: RuleMessage) -> NlResult<()> {
        let context = format!("add rule {}", describe_rule(&msg));
        self.ack_request(
            &RouteNetlinkMessage::NewRule(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|e| e.context(context))
    }

    /// Deletes the first rule matching `msg`; `ENOENT` if none does.
    pub fn del_rule(&mut self, msg: RuleMessage) -> NlResult<()> {
        let context = format!("delete rule {}", describe_rule(&msg));
        self.ack_request(&RouteNetlinkMessage::DelRule(msg), NLM_F_ACK)
            .map_err(|e| e.context(context))
    }
}

/// A rule "at `priority`, look up `table`" with no selector (it matches all traffic); push
/// `RuleAttribute::Source`/`Destination` (and set the header's prefix lengths),
/// `Iifname`, `FwMark`, ... to narrow it.
pub fn lookup_rule(family: AddressFamily, priority: u32, table: u32) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = family;
    msg.header.action = RuleAction::ToTable;
    msg.attributes.push(RuleAttribute::Priority(priority));
    msg.set_table(table);
    msg
}

/// "pref 100 from 10.0.0.0/8 lookup 1000", in `ip rule` words.
pub fn describe_rule(msg: &RuleMessage) -> String {
    let mut text = String::new();
    if let Some(priority) = msg.priority() {
        let _ = write!(text, "pref {priority} ");
    }
    for attribute in &msg.attributes {
        match attribute {
            RuleAttribute::Source(ip) => {
                let _ = write!(text, "from {ip}/{} ", msg.header.src_len);
            }
            RuleAttribute::Destination(ip) => {
                let _ = write!(text, "to {ip}/{} ", msg.header.dst_len);
            }
            RuleAttribute::Iifname(name) => {
                let _ = write!(text, "iif {name} ");
            }
            RuleAttribute::Oifname(name) => {
                let _ = write!(text, "oif {name} ");
            }
            RuleAttribute::FwMark(mark) => {
                let _ = write!(text, "fwmark {mark:#x} ");
            }
            _ => {}
        }
    }
    match msg.header.action {
        RuleAction::ToTable => {
            let _ = write!(text, "lookup {}", msg.table());
        }
        RuleAction::Goto => text.push_str("goto"),
        other => {
            let _ = write!(text, "{other:?}");
        }
    }
    text.trim_end().to_owned()
}

/// Readers for rule messages.
pub trait RuleExt {
    /// FRA_TABLE when present (the full 32-bit id), else the header byte.
    fn table(&self) -> u32;
    /// Stores `table` as iproute2 does: FRA_TABLE always, the header byte only when it fits.
    fn set_table(&mut self, table: u32);
    /// FRA_PRIORITY ("pref").
    fn priority(&self) -> Option<u32>;
}

impl RuleExt for RuleMessage {
    fn table(&self) -> u32 {
        self.attributes
            .iter()
            .find_map(|a| match a {
                RuleAttribute::Table(table) => Some(*table),
                _ => None,
            })
            .unwrap_or(u32::from(self.header.table))
    }

    fn set_table(&mut self, table: u32) {
        self.attributes
            .retain(|a| !matches!(a, RuleAttribute::Table(_)));
        self.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        self.attributes.push(RuleAttribute::Table(table));
    }

    fn priority(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            RuleAttribute::Priority(priority) => Some(*priority),
            _ => None,
        })
    }
}
