//! Noticing that another writer keeps changing our output, and spacing our repairs out instead of
//! fighting it in a loop (Cilium and Istio installers have done that for hours on real clusters).
//! A plain value driven by the caller's clock, so its rules are tested without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// This many foreign changes within `WINDOW` is a fight, not an accident.
pub const THRESHOLD: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(10);
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// After this long without a foreign change the fight is over and backoff starts again from scratch.
pub const CALM: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restore our output now.
    Repair,
    /// Restore it no earlier than this; the duration is the backoff just chosen.
    HoldUntil(Instant, Duration),
}

#[derive(Debug, Default)]
pub struct Fight {
    recent: VecDeque<Instant>,
    last: Option<Instant>,
    backoff: Option<Duration>,
}

impl Fight {
    /// Records that our output was found changed by someone else at `now`.
    pub fn foreign_change(&mut self, now: Instant) -> Verdict {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= CALM)
        {
            self.recent.clear();
            self.backoff = None;
        }
        self.last = Some(now);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) > WINDOW)
        {
            self.recent.pop_front();
        }
        if self.backoff.is_none() && self.recent.len() < THRESHOLD {
            return Verdict::Repair;
        }
        let backoff = self
            .backoff
            .map(|backoff| (backoff * 2).min(MAX_BACKOFF))
            .unwrap_or(FIRST_BACKOFF);
        self.backoff = Some(backoff);
        Verdict::HoldUntil(now + backoff, backoff)
    }

    /// Foreign changes counted within the window, for the log line.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_and_forgets_after_calm() {
        let start = Instant::now();
        let mut fight = Fight::default();
        let at = |ms: u64| start + Duration::from_millis(ms);
        for n in 0..THRESHOLD as u64 - 1 {
            assert_eq!(fight.foreign_change(at(n * 10)), Verdict::Repair);
        }
        assert_eq!(
            fight.foreign_change(at(50)),
            Verdict::HoldUntil(at(1050), FIRST_BACKOFF)
        );
        assert_eq!(
            fight.foreign_change(at(1100)),
            Verdict::HoldUntil(at(3100), Duration::from_secs(2))
        );
        assert_eq!(
            fight.foreign_change(at(3200)),
            Verdict::HoldUntil(at(7200), Duration::from_secs(4))
        );
        let mut now = 7300;
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            if let Verdict::HoldUntil(_, backoff) = fight.foreign_change(at(now)) {
                last = backoff;
            }
            now += 100;
        }
        assert_eq!(last, MAX_BACKOFF);
        let calm = now + CALM.as_millis() as u64;
        assert_eq!(fight.foreign_change(at(calm)), Verdict::Repair);
        assert_eq!(fight.recent(), 1);
    }

    #[test]
    fn occasional_changes_are_always_repaired() {
        let start = Instant::now();
        let mut fight = Fight::default();
        for n in 0..20u64 {
            let now = start + Duration::from_secs(n * 3);
            assert_eq!(fight.foreign_change(now), Verdict::Repair, "change {n}");
        }
    }
}
