//! False suspicions (PFAILs of nodes that were up and reachable): how many,
//! and when and among whom they came, so that a storm in one trial can be
//! placed on its timeline (issue 13: one 5,000-node trial of four had one).

use std::collections::HashSet;

use gossip_core::Instant;

use crate::observe::SuspicionTimes;

/// Seconds of the per-second counts kept: a trial longer than this counts
/// its later suspicions in the last second (the totals stay exact).
const MAX_SECONDS: usize = 3_600;

/// A trial's false suspicions as they come.
#[derive(Debug, Default)]
pub(super) struct Suspicions {
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    suspected: HashSet<usize>,
    suspecters: HashSet<usize>,
    /// Per second of the trial, counted from `origin`.
    per_second: Vec<u32>,
}

impl Suspicions {
    /// Node `by` suspected node `of` at `at`, wrongly; `origin` is the trial's start.
    pub(super) fn record(&mut self, origin: Instant, at: Instant, by: usize, of: usize) {
        self.count += 1;
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        self.suspected.insert(of);
        self.suspecters.insert(by);
        let s = ((at - origin).as_secs() as usize).min(MAX_SECONDS - 1);
        if self.per_second.len() <= s {
            self.per_second.resize(s + 1, 0);
        }
        self.per_second[s] = self.per_second[s].saturating_add(1);
    }

    /// How many.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// When they came, in seconds after `warmup_end` (negative: during the
    /// warm-up); `None` when there were none.
    pub(super) fn times(&self, origin: Instant, warmup_end: Instant) -> Option<SuspicionTimes> {
        let t = |at: Instant| (at.as_micros() as f64 - warmup_end.as_micros() as f64) / 1e6;
        Some(SuspicionTimes {
            first_s: t(self.first?),
            last_s: t(self.last?),
            suspected: self.suspected.len(),
            suspecters: self.suspecters.len(),
            start_s: t(origin),
            per_second: self.per_second.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_say_when_and_among_whom_and_count_each_second() {
        let mut s = Suspicions::default();
        let ms = Instant::from_millis;
        assert_eq!(s.times(ms(0), ms(10_000)), None);
        s.record(ms(0), ms(12_500), 3, 7);
        s.record(ms(0), ms(12_900), 4, 7);
        s.record(ms(0), ms(14_100), 3, 8);
        assert_eq!(s.count(), 3);
        let t = s.times(ms(0), ms(10_000)).expect("some");
        assert_eq!((t.first_s, t.last_s), (2.5, 4.1));
        assert_eq!((t.suspected, t.suspecters), (2, 2));
        assert_eq!(t.start_s, -10.0);
        assert_eq!(
            t.per_second,
            vec![0; 12].into_iter().chain([2, 0, 1]).collect::<Vec<_>>()
        );
    }
}
