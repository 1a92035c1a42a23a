//! The daemon's clocks, as plain values that unit tests drive with made-up instants: when to
//! look after a burst of events (settle), when a restore is being fought (fights and their
//! back-off), and how long a DHCP- or RA-owned route's slot has been empty (grace). None of these
//! decides whether something may be restored; `host` does, and these only say "not yet".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::host::route_guard;
use crate::host::routes::{DefaultRoute, Slot};

/// A deletion this soon after hostguard restored the same route or rule is someone undoing it.
pub const FIGHT_WINDOW: Duration = Duration::from_millis(100);
/// Quick deletions in a row that make a fight.
pub const FIGHT_STREAK: u32 = 3;
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A full look even when nothing was heard: the safety net for a lost notification.
pub const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// A stream of events that never goes quiet (a flapping BGP session, a fighter deleting in a
/// loop) must not postpone a repair for ever: a look comes at most this long after the first
/// event of a burst, or one settle period when that is longer.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(1);

/// Waits for the event stream to be quiet for `quiet`, then says a look is due.
#[derive(Debug)]
pub struct Settle {
    quiet: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Settle {
    pub fn new(quiet: Duration) -> Settle {
        Settle {
            quiet,
            first: None,
            last: None,
        }
    }

    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending burst should be looked at; `None` when nothing is pending.
    pub fn due(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + SETTLE_LIMIT.max(self.quiet)))
    }

    /// The first event of the pending burst: where a repair's latency starts.
    pub fn pending_since(&self) -> Option<Instant> {
        self.first
    }

    pub fn clear(&mut self) {
        self.first = None;
        self.last = None;
    }
}

/// What a fight is about: one route slot or one rule (by its `ip rule` text, which covers every
/// attribute).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    Route(Slot),
    Rule(String),
}

impl Item {
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Route(_) => "route",
            Item::Rule(_) => "rule",
        }
    }
}

#[derive(Debug, Default)]
struct Fight {
    restored_at: Option<Instant>,
    streak: u32,
    level: u32,
    hold_until: Option<Instant>,
}

/// Per item: when hostguard last restored it, how many quick deletions in a row followed, and the
/// back-off step reached.
#[derive(Debug, Default)]
pub struct Fights {
    items: HashMap<Item, Fight>,
}

/// A new back-off step, to be logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub step: u32,
    pub delay: Duration,
}

pub fn backoff_delay(step: u32) -> Duration {
    let doubled = BACKOFF_FIRST.saturating_mul(1u32 << step.saturating_sub(1).min(16));
    doubled.min(BACKOFF_CAP)
}

impl Fights {
    pub fn restored(&mut self, item: Item, now: Instant) {
        let fight = self.items.entry(item).or_default();
        fight.restored_at = Some(now);
        fight.hold_until = None;
    }

    /// A deletion of `item` was seen. A quick one after our restore extends the streak and, from
    /// the third on, starts the next back-off step; a late one is an ordinary loss that ends any
    /// fight, so it is repaired at full speed.
    pub fn deleted(&mut self, item: &Item, now: Instant) -> Option<Backoff> {
        let fight = self.items.get_mut(item)?;
        let restored_at = fight.restored_at.take()?;
        if now.saturating_duration_since(restored_at) > FIGHT_WINDOW {
            self.items.remove(item);
            return None;
        }
        fight.streak += 1;
        if fight.streak < FIGHT_STREAK {
            return None;
        }
        fight.level += 1;
        let delay = backoff_delay(fight.level);
        fight.hold_until = Some(now + delay);
        Some(Backoff {
            step: fight.level,
            delay,
        })
    }

    /// Restores that were not undone within the fight window: the fight (if any) is over.
    pub fn settle_restores(&mut self, now: Instant) {
        self.items.retain(|_, fight| {
            fight
                .restored_at
                .is_none_or(|at| now.saturating_duration_since(at) <= FIGHT_WINDOW)
        });
    }

    pub fn held(&self, item: &Item, now: Instant) -> bool {
        self.items
            .get(item)
            .and_then(|f| f.hold_until)
            .is_some_and(|until| now < until)
    }

    pub fn holds_kind(&self, kind: &str, now: Instant) -> bool {
        self.items
            .iter()
            .any(|(item, f)| item.kind() == kind && f.hold_until.is_some_and(|u| now < u))
    }

    /// The next instant something changes: a hold ends (look then) or a restore leaves the window.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.items
            .values()
            .flat_map(|f| [f.hold_until, f.restored_at.map(|at| at + FIGHT_WINDOW)])
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// Holds that ended in `(after, now]`: a look is due for them.
    pub fn hold_ended(&self, after: Instant, now: Instant) -> bool {
        self.items
            .values()
            .filter_map(|f| f.hold_until)
            .any(|until| until > after && until <= now)
    }

    /// The current back-off step's delay of the hottest fight; zero when nothing is fought.
    pub fn backoff_seconds(&self) -> f64 {
        self.items
            .values()
            .filter(|f| f.level > 0)
            .map(|f| backoff_delay(f.level).as_secs_f64())
            .fold(0.0, f64::max)
    }
}

/// When each default-route slot became empty, and the route that left it: the daemon's half of
/// the grace for routes an address-configuration daemon owns. A slot leaves the table as soon as
/// anything is seen in it again.
#[derive(Debug)]
pub struct Grace {
    period: Duration,
    empty: HashMap<Slot, (Instant, DefaultRoute)>,
}

impl Grace {
    pub fn new(period: Duration) -> Grace {
        Grace {
            period,
            empty: HashMap::new(),
        }
    }

    pub fn set_period(&mut self, period: Duration) {
        self.period = period;
    }

    /// `route` left its slots at `now` (a deletion was heard), or was found missing with no
    /// deletion heard (at start-up, after an overrun): the grace runs from the first notice.
    pub fn emptied(&mut self, route: &DefaultRoute, now: Instant) {
        for slot in route.slots() {
            self.empty.entry(slot).or_insert((now, route.clone()));
        }
    }

    pub fn filled(&mut self, route: &DefaultRoute) {
        for slot in route.slots() {
            self.empty.remove(&slot);
        }
    }

    /// Whether every slot of `route` has stayed empty for the whole grace period. A slot the
    /// table never saw empty has not: the grace starts when the daemon notices. This is the
    /// daemon's answer to the route guard's per-route "may this address-daemon route go back
    /// now?" (`|route| grace.grace_elapsed(route, now)`).
    pub fn grace_elapsed(&self, route: &DefaultRoute, now: Instant) -> bool {
        route.slots().iter().all(|slot| {
            self.empty
                .get(slot)
                .is_some_and(|(since, _)| now.saturating_duration_since(*since) >= self.period)
        })
    }

    /// The next instant a held route's grace ends.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.empty
            .values()
            .filter(|(_, route)| route_guard::daemon_owned(route))
            .map(|(since, _)| *since + self.period)
            .filter(|at| *at > now)
            .min()
    }

    pub fn grace_ended(&self, after: Instant, now: Instant) -> bool {
        self.empty
            .values()
            .filter(|(_, route)| route_guard::daemon_owned(route))
            .map(|(since, _)| *since + self.period)
            .any(|at| at > after && at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::routes::Family;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn settle_waits_for_quiet_but_not_for_ever() {
        let t0 = Instant::now();
        let mut settle = Settle::new(ms(100));
        assert_eq!(settle.due(), None);
        settle.event(t0);
        settle.event(t0 + ms(30));
        assert_eq!(settle.due(), Some(t0 + ms(130)));
        for n in 1..100 {
            settle.event(t0 + ms(20 * n));
        }
        assert_eq!(settle.due(), Some(t0 + SETTLE_LIMIT));
        assert_eq!(settle.pending_since(), Some(t0));
        settle.clear();
        assert_eq!(settle.due(), None);
        let mut zero = Settle::new(Duration::ZERO);
        zero.event(t0);
        assert_eq!(zero.due(), Some(t0));
    }

    fn slot() -> Item {
        Item::Rule("from all lookup 77 pref 100".into())
    }

    #[test]
    fn three_quick_deletions_in_a_row_start_a_backoff_that_doubles_to_the_cap() {
        let t0 = Instant::now();
        let mut fights = Fights::default();
        let mut now = t0;
        let mut steps = Vec::new();
        for _ in 0..12 {
            fights.restored(slot(), now);
            now += ms(20);
            if let Some(b) = fights.deleted(&slot(), now) {
                assert!(fights.held(&slot(), now));
                assert!(fights.holds_kind("rule", now) && !fights.holds_kind("route", now));
                steps.push(b.delay.as_secs());
                now += b.delay;
                assert!(!fights.held(&slot(), now));
            }
        }
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(fights.backoff_seconds(), 60.0);
        // The fight stops: the next restore survives the window, and everything is forgotten.
        fights.restored(slot(), now);
        fights.settle_restores(now + ms(150));
        assert_eq!(fights.backoff_seconds(), 0.0);
        assert!(!fights.held(&slot(), now + ms(150)));
    }

    #[test]
    fn a_late_deletion_is_an_ordinary_loss_and_breaks_the_streak() {
        let t0 = Instant::now();
        let mut fights = Fights::default();
        fights.restored(slot(), t0);
        assert_eq!(fights.deleted(&slot(), t0 + ms(10)), None);
        fights.restored(slot(), t0 + ms(200));
        assert_eq!(fights.deleted(&slot(), t0 + ms(210)), None);
        fights.restored(slot(), t0 + ms(400));
        // 150 ms after the restore: not a fight; the streak starts again from zero.
        assert_eq!(fights.deleted(&slot(), t0 + ms(550)), None);
        for n in 0..2 {
            let at = t0 + ms(1000 + 100 * n);
            fights.restored(slot(), at);
            assert_eq!(fights.deleted(&slot(), at + ms(5)), None);
        }
        // A deletion that hostguard did not follow with a restore is no fight either.
        assert_eq!(fights.deleted(&slot(), t0 + ms(2000)), None);
    }

    fn dhcp_route(protocol: u8) -> DefaultRoute {
        DefaultRoute {
            family: Family::Inet,
            table: 254,
            metric: 100,
            protocol,
            scope: 0,
            kind: 1,
            tos: 0,
            gateway: Some("192.0.2.1".parse().unwrap()),
            dev: Some("eth0".into()),
            onlink: false,
            prefsrc: None,
            metrics: Default::default(),
            congctl: None,
            pref: None,
            nexthops: Vec::new(),
            link: None,
            attrs: Vec::new(),
        }
    }

    #[test]
    fn grace_runs_from_the_first_notice_and_ends_when_the_slot_fills() {
        let t0 = Instant::now();
        let mut grace = Grace::new(ms(2000));
        let dhcp = dhcp_route(16);
        assert!(!grace.grace_elapsed(&dhcp, t0));
        grace.emptied(&dhcp, t0);
        // A second notice does not restart the clock.
        grace.emptied(&dhcp, t0 + ms(500));
        assert!(!grace.grace_elapsed(&dhcp, t0 + ms(1999)));
        assert!(grace.grace_elapsed(&dhcp, t0 + ms(2000)));
        assert_eq!(grace.next_expiry(t0), Some(t0 + ms(2000)));
        assert!(grace.grace_ended(t0 + ms(100), t0 + ms(2000)));
        grace.filled(&dhcp);
        assert!(!grace.grace_elapsed(&dhcp, t0 + ms(5000)));
        // A static route is tracked but no grace ends for it: nothing to wake up for.
        let fixed = dhcp_route(4);
        grace.emptied(&fixed, t0);
        assert_eq!(grace.next_expiry(t0), None);
    }
}
