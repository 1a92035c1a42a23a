//! Readiness of the upstream CNI's host interfaces (incident 3): each `waitFor` interface exists,
//! is up if asked, and carries an address inside its CIDR if one is given.
//!
//! Why an address and not a name: the ipip module creates an address-less `tunl0` in every
//! namespace the moment it loads, so "tunl0 exists" says nothing about calico-node having set
//! it up. The address from the pod CIDR is what the upstream agent adds last.
//!
//! How it waits: subscribe to the link and both address multicast groups first, then look, then
//! sleep in poll(2) until the kernel reports a change that can matter and look again. A change
//! made between the subscription and the first look is queued on the socket, so nothing is
//! missed; there is no sleep loop and no polling interval (peers poll every 4 to 25 s).
//!
//! What a condition means, precisely:
//! - "exists": a link whose primary name (`IFLA_IFNAME`) is the configured name. An alternative
//!   name does not count; the upstream CNI names its interfaces by their primary name.
//! - "up": administratively up (`IFF_UP`). Carrier is not required: a bridge such as `cni0` has
//!   no carrier until its first pod is attached, so waiting for carrier could wait forever.
//! - "address in cidr": an address of either family on that link whose IP lies in `cidr`.
//!   IPv6 addresses that are still tentative (duplicate address detection running, and not
//!   optimistic) or whose DAD failed do not count: the kernel refuses to use them as a source
//!   yet, so the interface is not usable either.
//!
//! A link deleted and re-created under the same name gets a new ifindex; a rename moves a name
//! to another ifindex. Both arrive as link notifications carrying either the watched name or a
//! watched ifindex, and every look re-resolves names to ifindexes, so neither is missed. An
//! event queue overrun drops notifications, so it forces a fresh look.

use std::fmt;
use std::time::Instant;

use ipnetwork::IpNetwork;
use netlink_packet_route::address::AddressFlags;

use crate::config::WaitInterface;
use crate::netlink::{
    AddressAttribute, AddressExt, AddressMessage, EventSocket, Group, LinkExt, Netlink, NlError,
    NlResult, RouteNetlinkMessage,
};

/// How many times one look is repeated when an address dump raced with a change. Each repeat
/// is one small dump; a change that keeps interrupting it also keeps producing events.
const INTERRUPTED_LOOK_RETRIES: usize = 5;

/// The first condition that does not hold, and exactly why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub interface: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No link has this name.
    Missing,
    /// The link exists; `down` when it must be up and is not, `address` when it lacks a usable
    /// address in the CIDR. At least one of the two is set.
    Present {
        down: bool,
        address: Option<AddressGap>,
    },
}

/// The CIDR no usable address lies in, and what the link carries instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressGap {
    pub cidr: IpNetwork,
    pub has: Vec<SeenAddress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenAddress {
    pub network: IpNetwork,
    pub state: AddressState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressState {
    Usable,
    /// IPv6 duplicate address detection is still running.
    Tentative,
    /// IPv6 duplicate address detection found another owner; the address is never used.
    DadFailed,
}

/// Why waiting ended without readiness.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed (or, for `check_ready`, the one look found this).
    Unmet(Unmet),
    /// The interfaces could not be read or watched.
    Netlink(NlError),
}

impl From<NlError> for WaitError {
    fn from(err: NlError) -> Self {
        WaitError::Netlink(err)
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Unmet(unmet) => unmet.fmt(f),
            WaitError::Netlink(err) => write!(f, "cannot read the host's interfaces: {err}"),
        }
    }
}

impl std::error::Error for WaitError {}

/// Looks once, without waiting: `Ok` when every condition holds now.
pub fn check_ready(nl: &mut Netlink, conditions: &[WaitInterface]) -> Result<(), WaitError> {
    match look(nl, conditions)?.unmet {
        None => Ok(()),
        Some(unmet) => Err(WaitError::Unmet(unmet)),
    }
}

/// `check_ready` in the caller's namespace, with a socket of its own.
pub fn check_ready_here(conditions: &[WaitInterface]) -> Result<(), WaitError> {
    if conditions.is_empty() {
        return Ok(());
    }
    let mut nl = Netlink::new()?;
    check_ready(&mut nl, conditions)
}

/// Waits until every condition holds or `deadline` passes, whichever comes first; at the
/// deadline the error names the first condition still unmet. `on_unmet` is called whenever the
/// first unmet condition changes (the first call means "starting to wait"), so a caller can log
/// progress. `nl` and this thread must be in the same network namespace: the event socket is
/// opened in the thread's.
pub fn wait_ready(
    nl: &mut Netlink,
    conditions: &[WaitInterface],
    deadline: Instant,
    on_unmet: &mut dyn FnMut(&Unmet),
) -> Result<(), WaitError> {
    if conditions.is_empty() {
        return Ok(());
    }
    // Subscribed before the first look: whatever changes after it is queued for us.
    let mut events = EventSocket::subscribe(&[Group::Link, Group::Ipv4Addr, Group::Ipv6Addr])
        .map_err(|e| e.context("watch the waitFor interfaces"))?;
    let mut last: Option<Unmet> = None;
    loop {
        let current = look(nl, conditions)?;
        let Some(unmet) = current.unmet else {
            return Ok(());
        };
        if last.as_ref() != Some(&unmet) {
            on_unmet(&unmet);
        }
        // Checked here as well as in poll(2): a host that changes links without pause must not
        // keep us past the deadline.
        if Instant::now() >= deadline
            || !next_change(&mut events, deadline, conditions, &current.watched)?
        {
            return Err(WaitError::Unmet(unmet));
        }
        last = Some(unmet);
    }
}

/// Sleeps until a notification that can change the answer arrives (`true`) or the deadline
/// passes (`false`).
fn next_change(
    events: &mut EventSocket,
    deadline: Instant,
    conditions: &[WaitInterface],
    watched: &[u32],
) -> NlResult<bool> {
    loop {
        match events.next_batch(deadline) {
            Ok(None) => return Ok(false),
            Ok(Some(batch)) => {
                if batch.iter().any(|msg| matters(msg, conditions, watched)) {
                    return Ok(true);
                }
            }
            // Notifications were lost: only a fresh look tells what changed.
            Err(err) if err.is_overrun() => return Ok(true),
            Err(err) => return Err(err.context("wait for changes of the waitFor interfaces")),
        }
    }
}

/// "tunl0 up with an address in 10.244.0.0/16", for logs and error details.
pub fn describe(condition: &WaitInterface) -> String {
    let mut text = condition.name.clone();
    match (condition.up, condition.cidr) {
        (true, Some(cidr)) => text.push_str(&format!(" up with an address in {cidr}")),
        (true, None) => text.push_str(" up"),
        (false, Some(cidr)) => text.push_str(&format!(" with an address in {cidr}")),
        (false, None) => text.push_str(" present"),
    }
    text
}

/// What one look found: the first unmet condition, and the ifindexes of the links it examined
/// (whose later notifications can change the answer).
struct Look {
    unmet: Option<Unmet>,
    watched: Vec<u32>,
}

/// Conditions are examined in order and the look stops at the first unmet one: until that one
/// holds the answer cannot change through the others, and when it does hold, its notification
/// triggers a new look that examines them.
fn look(nl: &mut Netlink, conditions: &[WaitInterface]) -> NlResult<Look> {
    let mut watched = Vec::new();
    for condition in conditions {
        let link = nl
            .link_by_name(&condition.name)?
            .filter(|link| link.name() == Some(condition.name.as_str()));
        let Some(link) = link else {
            return Ok(Look {
                unmet: Some(Unmet {
                    interface: condition.name.clone(),
                    problem: Problem::Missing,
                }),
                watched,
            });
        };
        let index = link.header.index;
        watched.push(index);
        let down = condition.up && !link.is_up();
        let address = match condition.cidr {
            Some(cidr) => address_gap(nl, index, cidr)?,
            None => None,
        };
        if down || address.is_some() {
            return Ok(Look {
                unmet: Some(Unmet {
                    interface: condition.name.clone(),
                    problem: Problem::Present { down, address },
                }),
                watched,
            });
        }
    }
    Ok(Look {
        unmet: None,
        watched,
    })
}

/// `None` when link `index` has a usable address in `cidr`; otherwise what it has.
fn address_gap(nl: &mut Netlink, index: u32, cidr: IpNetwork) -> NlResult<Option<AddressGap>> {
    let mut attempt = 0;
    let addresses = loop {
        match nl.addresses(None, Some(index)) {
            Ok(addresses) => break addresses,
            // The link went away after it was found; its deletion is queued as an event and
            // the next look sees the new state.
            Err(err) if err.is_not_found() => break Vec::new(),
            Err(err) if err.is_interrupted() && attempt < INTERRUPTED_LOOK_RETRIES => {
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    };
    let has: Vec<SeenAddress> = addresses
        .iter()
        .filter_map(|msg| {
            Some(SeenAddress {
                network: msg.network()?,
                state: address_state(msg),
            })
        })
        .collect();
    let usable = has
        .iter()
        .any(|seen| seen.state == AddressState::Usable && cidr.contains(seen.network.ip()));
    Ok((!usable).then_some(AddressGap { cidr, has }))
}

/// `IFA_FLAGS` (32 bits) supersedes the header's 8-bit copy when the kernel sends it.
fn address_state(msg: &AddressMessage) -> AddressState {
    let flags = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Flags(flags) => Some(*flags),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits())));
    if flags.contains(AddressFlags::Dadfailed) {
        AddressState::DadFailed
    } else if flags.contains(AddressFlags::Tentative) && !flags.contains(AddressFlags::Optimistic) {
        // Optimistic DAD (RFC 4429) lets the kernel use the address while DAD runs.
        AddressState::Tentative
    } else {
        AddressState::Usable
    }
}

/// Whether a notification can change what a look finds: a link event naming a condition's
/// interface (created, renamed to it, changed) or carrying an ifindex the last look examined
/// (changed, renamed away, deleted), or an address event on such an ifindex. Everything else
/// (other pods' veths, their addresses) is ignored without a look.
fn matters(msg: &RouteNetlinkMessage, conditions: &[WaitInterface], watched: &[u32]) -> bool {
    match msg {
        RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link) => {
            watched.contains(&link.header.index)
                || link
                    .name()
                    .is_some_and(|name| conditions.iter().any(|c| c.name == name))
        }
        RouteNetlinkMessage::NewAddress(addr) | RouteNetlinkMessage::DelAddress(addr) => {
            watched.contains(&addr.header.index)
        }
        _ => false,
    }
}

/// At most this many addresses are listed in a message; a link with hundreds would drown it.
const SHOWN_ADDRESSES: usize = 6;

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.interface;
        let Problem::Present { down, address } = &self.problem else {
            return write!(f, "{name} does not exist");
        };
        write!(f, "{name} exists but ")?;
        if *down {
            write!(f, "is down")?;
            if address.is_some() {
                write!(f, " and ")?;
            }
        }
        let Some(gap) = address else {
            return Ok(());
        };
        let waiting_for_dad = gap
            .has
            .iter()
            .any(|seen| seen.state != AddressState::Usable && gap.cidr.contains(seen.network.ip()));
        let usable = if waiting_for_dad { "usable " } else { "" };
        write!(f, "has no {usable}address in {} (it has ", gap.cidr)?;
        if gap.has.is_empty() {
            write!(f, "none")?;
        }
        for (i, seen) in gap.has.iter().take(SHOWN_ADDRESSES).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", seen.network)?;
            match seen.state {
                AddressState::Usable => {}
                AddressState::Tentative => write!(f, " tentative")?,
                AddressState::DadFailed => write!(f, " dadfailed")?,
            }
        }
        if gap.has.len() > SHOWN_ADDRESSES {
            write!(f, " and {} more", gap.has.len() - SHOWN_ADDRESSES)?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    //! Real-kernel tests. Each moves its own libtest thread into a fresh network namespace
    //! first; threads it spawns and `ip` children inherit that namespace, which `ip` and
    //! `in_private_netns` check before touching anything.

    use std::process::Command;
    use std::sync::mpsc;
    use std::time::Duration;

    use nix::sched::{unshare, CloneFlags};

    use super::*;

    fn in_private_netns() -> bool {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
            != std::fs::read_link("/proc/self/ns/net").unwrap()
    }

    fn private_netns() -> Netlink {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        assert!(
            in_private_netns(),
            "the test thread is still in the host namespace"
        );
        Netlink::new().unwrap()
    }

    /// `ip` in this thread's namespace; refuses to run in the machine's own.
    fn ip(args: &str) {
        assert!(
            in_private_netns(),
            "refusing to run ip in the host namespace"
        );
        let out = Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn cond(name: &str, up: bool, cidr: Option<&str>) -> WaitInterface {
        WaitInterface {
            name: name.into(),
            up,
            cidr: cidr.map(|c| c.parse().unwrap()),
        }
    }

    fn unmet_text(nl: &mut Netlink, conditions: &[WaitInterface]) -> String {
        match check_ready(nl, conditions) {
            Err(WaitError::Unmet(unmet)) => unmet.to_string(),
            other => panic!("expected an unmet condition, got {other:?}"),
        }
    }

    fn seen(net: &str, state: AddressState) -> SeenAddress {
        SeenAddress {
            network: net.parse().unwrap(),
            state,
        }
    }

    #[test]
    fn messages_name_the_interface_and_what_is_wrong() {
        let gap = |has: Vec<SeenAddress>| AddressGap {
            cidr: "10.244.0.0/16".parse().unwrap(),
            has,
        };
        let text = |problem: Problem| {
            Unmet {
                interface: "tunl0".into(),
                problem,
            }
            .to_string()
        };
        assert_eq!(text(Problem::Missing), "tunl0 does not exist");
        assert_eq!(
            text(Problem::Present {
                down: true,
                address: None
            }),
            "tunl0 exists but is down"
        );
        assert_eq!(
            text(Problem::Present {
                down: false,
                address: Some(gap(vec![seen("10.1.2.3/8", AddressState::Usable)]))
            }),
            "tunl0 exists but has no address in 10.244.0.0/16 (it has 10.1.2.3/8)"
        );
        assert_eq!(
            text(Problem::Present {
                down: true,
                address: Some(gap(vec![]))
            }),
            "tunl0 exists but is down and has no address in 10.244.0.0/16 (it has none)"
        );
        let many = (1..=8)
            .map(|i| seen(&format!("10.1.0.{i}/8"), AddressState::Usable))
            .collect();
        let shown = text(Problem::Present {
            down: false,
            address: Some(gap(many)),
        });
        assert!(shown.ends_with("10.1.0.6/8 and 2 more)"), "{shown}");
    }

    #[test]
    fn descriptions_say_what_is_awaited() {
        assert_eq!(
            describe(&cond("tunl0", true, Some("10.244.0.0/16"))),
            "tunl0 up with an address in 10.244.0.0/16"
        );
        assert_eq!(describe(&cond("cni0", false, None)), "cni0 present");
        assert_eq!(describe(&cond("cni0", true, None)), "cni0 up");
    }

    #[test]
    fn one_look_reports_each_unmet_state_and_then_readiness() {
        let mut nl = private_netns();
        let want = [cond("tunl0", true, Some("10.244.0.0/16"))];
        assert_eq!(unmet_text(&mut nl, &want), "tunl0 does not exist");

        nl.create_bridge("tunl0").unwrap();
        assert_eq!(
            unmet_text(&mut nl, &want),
            "tunl0 exists but is down and has no address in 10.244.0.0/16 (it has none)"
        );
        ip("addr add 10.1.2.3/8 dev tunl0");
        assert_eq!(
            unmet_text(&mut nl, &want),
            "tunl0 exists but is down and has no address in 10.244.0.0/16 (it has 10.1.2.3/8)"
        );
        ip("addr add 10.244.7.1/16 dev tunl0");
        assert_eq!(unmet_text(&mut nl, &want), "tunl0 exists but is down");
        ip("link set tunl0 up");
        check_ready(&mut nl, &want).unwrap();
        // Without `up` a down link with the address is ready.
        ip("link set tunl0 down");
        check_ready(&mut nl, &[cond("tunl0", false, Some("10.244.0.0/16"))]).unwrap();
    }

    #[test]
    fn an_address_of_the_other_family_or_outside_the_cidr_does_not_count() {
        let mut nl = private_netns();
        nl.create_bridge("tunl0").unwrap();
        ip("-6 addr add fd00:244::1/64 dev tunl0 nodad");
        ip("addr add 10.245.0.1/16 dev tunl0");
        let text = unmet_text(&mut nl, &[cond("tunl0", false, Some("10.244.0.0/16"))]);
        assert_eq!(
            text,
            "tunl0 exists but has no address in 10.244.0.0/16 (it has 10.245.0.1/16, \
             fd00:244::1/64)"
        );
        // An IPv6 CIDR is met by the IPv6 address.
        check_ready(&mut nl, &[cond("tunl0", false, Some("fd00:244::/48"))]).unwrap();
    }

    #[test]
    fn tentative_ipv6_addresses_do_not_count_until_usable() {
        let mut nl = private_netns();
        // A bridge without ports has no carrier, so duplicate address detection never
        // completes and the address stays tentative.
        nl.create_bridge("tunl0").unwrap();
        ip("link set tunl0 up");
        ip("-6 addr add fd00:244::1/64 dev tunl0");
        let want = [cond("tunl0", true, Some("fd00:244::/48"))];
        let text = unmet_text(&mut nl, &want);
        assert!(
            text.starts_with("tunl0 exists but has no usable address in fd00:244::/48 (it has "),
            "{text}"
        );
        assert!(text.contains("fd00:244::1/64 tentative"), "{text}");
        ip("-6 addr add fd00:244::2/64 dev tunl0 nodad");
        check_ready(&mut nl, &want).unwrap();
    }

    #[test]
    fn the_primary_name_counts_not_an_alternative_name() {
        let mut nl = private_netns();
        nl.create_bridge("br-upstream").unwrap();
        let added = Command::new("ip")
            .args([
                "link",
                "property",
                "add",
                "dev",
                "br-upstream",
                "altname",
                "tunl0",
            ])
            .output()
            .unwrap();
        if !added.status.success() {
            // Kernels before 5.5 have no alternative names; nothing to prove then.
            return;
        }
        assert_eq!(
            unmet_text(&mut nl, &[cond("tunl0", false, None)]),
            "tunl0 does not exist"
        );
    }

    /// Runs `wait_ready` on this thread while a helper thread (in the same namespace) applies
    /// each step once the waiter reports the unmet state the step expects; returns the unmet
    /// states the waiter reported, in order.
    type Step = (&'static str, &'static [&'static str]);

    fn wait_through(
        conditions: &[WaitInterface],
        steps: &'static [Step],
        timeout: Duration,
    ) -> (Result<(), WaitError>, Vec<String>) {
        let mut nl = private_netns();
        let (tx, rx) = mpsc::channel::<String>();
        let helper = std::thread::spawn(move || {
            assert!(in_private_netns(), "helper thread left the test namespace");
            for (expected, commands) in steps {
                loop {
                    let Ok(reported) = rx.recv() else {
                        panic!("the wait ended before step {expected:?}");
                    };
                    if reported == *expected {
                        break;
                    }
                }
                for command in *commands {
                    ip(command);
                }
            }
        });
        let mut reports = Vec::new();
        let outcome = wait_ready(
            &mut nl,
            conditions,
            Instant::now() + timeout,
            &mut |unmet| {
                reports.push(unmet.to_string());
                let _ = tx.send(unmet.to_string());
            },
        );
        drop(tx);
        helper.join().unwrap();
        (outcome, reports)
    }

    #[test]
    fn waits_through_creation_address_and_up() {
        let (outcome, reports) = wait_through(
            &[cond("tunl0", true, Some("10.244.0.0/16"))],
            &[
                ("tunl0 does not exist", &["link add tunl0 type bridge"]),
                (
                    "tunl0 exists but is down and has no address in 10.244.0.0/16 (it has none)",
                    &["addr add 10.244.0.1/16 dev tunl0"],
                ),
                ("tunl0 exists but is down", &["link set tunl0 up"]),
            ],
            Duration::from_secs(20),
        );
        outcome.unwrap();
        assert_eq!(reports.first().unwrap(), "tunl0 does not exist");
        assert_eq!(reports.last().unwrap(), "tunl0 exists but is down");
    }

    #[test]
    fn a_deleted_and_recreated_interface_is_followed_to_its_new_ifindex() {
        let (outcome, reports) = wait_through(
            &[cond("tunl0", true, Some("10.244.0.0/16"))],
            &[
                (
                    "tunl0 does not exist",
                    &[
                        "link add tunl0 type bridge",
                        "addr add 10.244.0.1/16 dev tunl0",
                    ],
                ),
                ("tunl0 exists but is down", &["link del tunl0"]),
                (
                    "tunl0 does not exist",
                    &[
                        "link add tunl0 type bridge",
                        "addr add 10.244.0.2/16 dev tunl0",
                        "link set tunl0 up",
                    ],
                ),
            ],
            Duration::from_secs(20),
        );
        outcome.unwrap();
        let missing = reports
            .iter()
            .filter(|r| *r == "tunl0 does not exist")
            .count();
        assert_eq!(missing, 2, "{reports:?}");
    }

    #[test]
    fn renames_to_and_away_from_the_name_are_followed() {
        let (outcome, reports) = wait_through(
            &[cond("tunl0", true, Some("10.244.0.0/16"))],
            &[
                (
                    "tunl0 does not exist",
                    &[
                        "link add staging type bridge",
                        "addr add 10.244.0.1/16 dev staging",
                        "link set staging name tunl0",
                    ],
                ),
                ("tunl0 exists but is down", &["link set tunl0 name old0"]),
                (
                    "tunl0 does not exist",
                    &["link set old0 name tunl0", "link set tunl0 up"],
                ),
            ],
            Duration::from_secs(20),
        );
        outcome.unwrap();
        assert_eq!(
            reports[..3],
            [
                "tunl0 does not exist",
                "tunl0 exists but is down",
                "tunl0 does not exist"
            ]
        );
    }

    #[test]
    fn every_interface_must_hold() {
        let (outcome, reports) = wait_through(
            &[
                cond("tunl0", true, None),
                cond("cni0", false, Some("10.88.0.0/16")),
            ],
            &[
                (
                    "tunl0 does not exist",
                    &["link add tunl0 type bridge", "link set tunl0 up"],
                ),
                ("cni0 does not exist", &["link add cni0 type bridge"]),
                (
                    "cni0 exists but has no address in 10.88.0.0/16 (it has none)",
                    &["addr add 10.88.0.1/16 dev cni0"],
                ),
            ],
            Duration::from_secs(20),
        );
        outcome.unwrap();
        // The waiter may also catch tunl0 between its creation and `up`; these three it must
        // have seen, in this order.
        let expected = [
            "tunl0 does not exist",
            "cni0 does not exist",
            "cni0 exists but has no address in 10.88.0.0/16 (it has none)",
        ];
        let mut rest = reports.iter();
        for want in expected {
            assert!(rest.any(|r| r == want), "{want:?} missing from {reports:?}");
        }
    }

    #[test]
    fn the_deadline_ends_the_wait_with_the_unmet_condition() {
        let mut nl = private_netns();
        // Unrelated links and addresses come and go while we wait; none of them is tunl0.
        ip("link add other0 type bridge");
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let outcome = wait_ready(
            &mut nl,
            &[cond("tunl0", false, None)],
            started + timeout,
            &mut |_| ip("addr add 10.9.0.1/16 dev other0"),
        );
        match outcome {
            Err(WaitError::Unmet(unmet)) => assert_eq!(unmet.problem, Problem::Missing),
            other => panic!("expected the deadline, got {other:?}"),
        }
        assert!(started.elapsed() >= timeout);
    }

    #[test]
    fn nothing_to_wait_for_is_ready_at_once() {
        let mut nl = private_netns();
        check_ready(&mut nl, &[]).unwrap();
        wait_ready(&mut nl, &[], Instant::now(), &mut |_| {
            panic!("no condition")
        })
        .unwrap();
    }
}
