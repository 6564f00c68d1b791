//! One ordered set of per-mux wake-up times.

use std::collections::BTreeSet;
use std::time::Instant;

use super::MuxId;

/// Wake-up times of muxes, earliest first. Each mux holds at most one
/// entry (its earliest pending deadline or ping); the mux remembers the
/// time it registered so the entry can be removed in `O(log n)`.
#[derive(Debug, Default)]
pub struct TimerQueue {
    entries: BTreeSet<(Instant, MuxId)>,
}

impl TimerQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves `mux`'s entry from `old` to `new` (either may be absent) and
    /// stores `new` in `slot`.
    pub fn reschedule(&mut self, mux: MuxId, slot: &mut Option<Instant>, new: Option<Instant>) {
        if *slot == new {
            return;
        }
        if let Some(old) = slot.take() {
            self.entries.remove(&(old, mux));
        }
        if let Some(at) = new {
            self.entries.insert((at, mux));
        }
        *slot = new;
    }

    /// The earliest wake-up time.
    pub fn next(&self) -> Option<Instant> {
        self.entries.first().map(|(at, _)| *at)
    }

    /// Removes and returns one mux due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<MuxId> {
        let (at, _) = self.entries.first()?;
        if *at > now {
            return None;
        }
        self.entries.pop_first().map(|(_, mux)| mux)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
