//! The rules guard: policy rules picked by `rules.match` are recorded in the baseline and put
//! back when something (systemd-networkd's ManageForeignRoutingPolicyRules, incident 2) deletes
//! them.
//!
//! A rule has no "slot" as a route does: every attribute is part of its identity. So the baseline
//! keeps each rule as the exact netlink message the kernel dumped, and a restore sends those
//! bytes back, which makes "identical attributes" true by construction rather than by a list of
//! fields someone remembered to copy.

use anyhow::{Context, Result};
use ipnetwork::IpNetwork;
use netlink_packet_core::{Emitable, Parseable};
use serde::{Deserialize, Serialize};

use crate::config::RuleSelector;
use crate::netlink::{describe_rule, Netlink, RuleAttribute, RuleExt, RuleMessage};
use netlink_packet_route::AddressFamily;

/// A baseline rule: readable words for people, the kernel's bytes for the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardedRule {
    pub rule: String,
    pub family: String,
    /// The RTM_NEWRULE body (fib_rule_hdr + attributes) in hex.
    pub message: String,
}

impl GuardedRule {
    pub fn from_message(msg: &RuleMessage) -> GuardedRule {
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.emit(&mut bytes);
        GuardedRule {
            rule: describe_rule(msg),
            family: match msg.header.family {
                AddressFamily::Inet6 => "inet6".into(),
                _ => "inet".into(),
            },
            message: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    pub fn to_message(&self) -> Result<RuleMessage> {
        let hex = self.message.as_bytes();
        if hex.len() % 2 != 0 {
            anyhow::bail!(
                "rule {:?}: message has an odd number of hex digits",
                self.rule
            );
        }
        let bytes = hex
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .with_context(|| format!("rule {:?}: message is not hex", self.rule))
            })
            .collect::<Result<Vec<u8>>>()?;
        RuleMessage::parse(&bytes[..])
            .map_err(|err| anyhow::anyhow!("rule {:?}: message does not parse: {err}", self.rule))
    }
}

/// Whether `msg` is picked by `selector`: every field the selector sets must match. Source and
/// destination match when the rule's prefix lies inside the selector's network.
pub fn selects(selector: &RuleSelector, msg: &RuleMessage) -> bool {
    let attr = |pick: &dyn Fn(&RuleAttribute) -> bool| msg.attributes.iter().any(pick);
    let within = |sel: &IpNetwork, want_src: bool| {
        msg.attributes.iter().any(|a| {
            let (ip, len) = match a {
                RuleAttribute::Source(ip) if want_src => (*ip, msg.header.src_len),
                RuleAttribute::Destination(ip) if !want_src => (*ip, msg.header.dst_len),
                _ => return false,
            };
            len >= sel.prefix() && sel.contains(ip)
        })
    };
    selector.priority.is_none_or(|p| msg.priority() == Some(p))
        && selector.table.is_none_or(|t| msg.table() == t)
        && selector.src.as_ref().is_none_or(|n| within(n, true))
        && selector.dst.as_ref().is_none_or(|n| within(n, false))
        && selector
            .fwmark
            .is_none_or(|m| attr(&|a| matches!(a, RuleAttribute::FwMark(x) if *x == m)))
        && selector
            .iif
            .as_ref()
            .is_none_or(|n| attr(&|a| matches!(a, RuleAttribute::Iifname(x) if x == n)))
        && selector
            .oif
            .as_ref()
            .is_none_or(|n| attr(&|a| matches!(a, RuleAttribute::Oifname(x) if x == n)))
        && selector
            .protocol
            .is_none_or(|p| attr(&|a| matches!(a, RuleAttribute::Protocol(x) if u8::from(*x) == p)))
}

/// The host's rules, both families, that any selector picks.
pub fn selected(nl: &mut Netlink, selectors: &[RuleSelector]) -> Result<Vec<RuleMessage>> {
    if selectors.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let rules = nl.rules(family).context("list policy rules")?;
        out.extend(
            rules
                .into_iter()
                .filter(|r| selectors.iter().any(|s| selects(s, r))),
        );
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub struct RulesOutcome {
    pub restored: Vec<String>,
    pub unrestored: Vec<(String, String)>,
    /// The baseline's rules after this run: the guarded ones still selected, plus new ones.
    pub baseline: Vec<GuardedRule>,
}

/// Baseline rules that the selectors still pick but the host no longer has.
pub fn missing(
    nl: &mut Netlink,
    baseline: &[GuardedRule],
    selectors: &[RuleSelector],
) -> Result<(Vec<GuardedRule>, Vec<RuleMessage>)> {
    let current = selected(nl, selectors)?;
    let mut gone = Vec::new();
    for guarded in baseline {
        let msg = guarded.to_message()?;
        if selectors.iter().any(|s| selects(s, &msg)) && !current.contains(&msg) {
            gone.push(guarded.clone());
        }
    }
    Ok((gone, current))
}

/// ADD's part: restore missing guarded rules (when `restore`), adopt newly selected ones.
pub fn guard(
    nl: &mut Netlink,
    baseline: &[GuardedRule],
    selectors: &[RuleSelector],
    restore: bool,
) -> Result<RulesOutcome> {
    let mut outcome = RulesOutcome::default();
    let (gone, mut current) = missing(nl, baseline, selectors)?;
    for guarded in gone {
        if !restore {
            outcome
                .unrestored
                .push((guarded.rule.clone(), "rules.restore is false".into()));
            outcome.baseline.push(guarded);
            continue;
        }
        let msg = guarded.to_message()?;
        match nl.add_rule(msg.clone()) {
            Ok(()) => {
                outcome.restored.push(guarded.rule.clone());
                current.push(msg);
            }
            Err(err) if err.is_exists() => current.push(msg),
            Err(err) => {
                outcome
                    .unrestored
                    .push((guarded.rule.clone(), err.to_string()));
                outcome.baseline.push(guarded);
            }
        }
    }
    for msg in &current {
        let guarded = GuardedRule::from_message(msg);
        if !outcome.baseline.contains(&guarded) {
            outcome.baseline.push(guarded);
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::lookup_rule;

    fn from(net: &str, mut msg: RuleMessage) -> RuleMessage {
        let net: IpNetwork = net.parse().unwrap();
        msg.header.src_len = net.prefix();
        msg.attributes.push(RuleAttribute::Source(net.ip()));
        msg
    }

    #[test]
    fn selectors_need_every_given_field() {
        let rule = from("10.244.0.0/16", lookup_rule(AddressFamily::Inet, 100, 77));
        let sel = |f: &dyn Fn(&mut RuleSelector)| {
            let mut s = RuleSelector::default();
            f(&mut s);
            selects(&s, &rule)
        };
        assert!(sel(&|s| s.table = Some(77)));
        assert!(sel(&|s| {
            s.priority = Some(100);
            s.table = Some(77);
        }));
        assert!(!sel(&|s| {
            s.priority = Some(100);
            s.table = Some(78);
        }));
        assert!(sel(&|s| s.src = Some("10.0.0.0/8".parse().unwrap())));
        assert!(!sel(&|s| s.src = Some("10.244.1.0/24".parse().unwrap())));
        assert!(!sel(&|s| s.dst = Some("10.0.0.0/8".parse().unwrap())));
        assert!(!sel(&|s| s.fwmark = Some(1)));
    }

    #[test]
    fn a_guarded_rule_round_trips_through_its_bytes() {
        let rule = from("fd00::/64", lookup_rule(AddressFamily::Inet6, 1000, 4000));
        let guarded = GuardedRule::from_message(&rule);
        assert_eq!(guarded.family, "inet6");
        assert!(guarded.rule.contains("pref 1000"), "{}", guarded.rule);
        assert_eq!(guarded.to_message().unwrap(), rule);
        let broken = GuardedRule {
            message: "zz".into(),
            ..guarded
        };
        assert!(broken.to_message().is_err());
    }
}
