//! The trace (hash for determinism, recent events for reports) and the
//! invariants checked after every step and at quiescence (DESIGN §5.6).

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;

use gridmux_core::mux::MuxId;

use xxhash_rust::xxh3::Xxh3;

use super::world::World;

/// How many recent events a failure report shows.
const RECENT: usize = 40;

/// The run's trace: a running hash of every event and the last few.
pub struct Trace {
    hash: Xxh3,
    recent: VecDeque<String>,
    /// Events recorded.
    pub events: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            hash: Xxh3::new(),
            recent: VecDeque::with_capacity(RECENT),
            events: 0,
        }
    }
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("events", &self.events)
            .finish()
    }
}

impl Trace {
    /// Records an event at `ms` milliseconds of simulated time.
    pub fn record(&mut self, ms: u128, line: String) {
        self.hash.update(&ms.to_le_bytes());
        self.hash.update(line.as_bytes());
        self.events += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(format!("{ms:>8} ms  {line}"));
    }

    /// The hash of everything recorded.
    pub fn digest(&self) -> u64 {
        self.hash.digest()
    }

    /// The last events, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }
}

impl World {
    /// Invariants that hold after every step. The scan for exchanges
    /// past their deadline is linear, so it runs only when `full`; an
    /// exchange that ends late is caught when it ends in any case.
    pub(super) fn check_step(&mut self, full: bool) {
        let now = self.now;
        // 1. Nothing outlives its deadline (the link's timer fires exactly
        // at it and the clock never jumps past a timer).
        let late = full
            .then(|| {
                self.app
                    .requests
                    .iter()
                    .find(|(_, r)| r.deadline < now)
                    .map(|(k, _)| *k)
                    .or_else(|| {
                        self.app
                            .streams
                            .iter()
                            .find(|(_, s)| s.deadline.is_some_and(|d| d < now))
                            .map(|(k, _)| *k)
                    })
                    .or_else(|| {
                        self.app
                            .served_requests
                            .iter()
                            .find(|(_, d)| **d < now)
                            .map(|(k, _)| *k)
                    })
            })
            .flatten();
        if let Some(key) = late {
            return self.violate(format!("exchange {key:?} still open past its deadline"));
        }
        // 5. The ids a peer chose spread over the buckets of the link's
        // tables (a hash the peer can steer degrades them to lists).
        if full {
            if let Some(report) = self.crowded_buckets() {
                return self.violate(report);
            }
        }
        // 4. Memory held by a link is bounded by its configuration.
        let config = &self.swarm.link;
        // Commands stop at max_queued_bytes (plus the message that crossed
        // it); served requests answer at most max_served_requests
        // responses beyond it; control stays under max_queued_bytes.
        // Answers over 256 bytes wait while the queue is full; smaller
        // ones (and the envelope) go, at most one per served request.
        let message = config.max_message_size + 64 * 1024;
        let queue_bound =
            2 * config.max_queued_bytes + message + config.max_served_requests.min(100_000) * 1024;
        let input_bound = config.ws.max_frame_size + 64 * 1024;
        // Served streams are shed before the application holds twice the
        // inbound budget for the peer's exchanges (requests stop at it); a
        // budget below the message size still admits one message.
        let held_bound = (2 * config.max_inbound_bytes).max(config.max_message_size);
        for conn in self.conns.values() {
            for s in 0..2 {
                let Some(link) = &conn.links[s] else {
                    continue;
                };
                if link.queued_bytes() > queue_bound {
                    let q = link.queued_bytes();
                    return self.violate(format!(
                        "c{}/{s} queues {q} bytes (bound {queue_bound})",
                        conn.id
                    ));
                }
                if link.served_inbound_bytes() > held_bound {
                    let held = link.served_inbound_bytes();
                    return self.violate(format!(
                        "c{}/{s} holds {held} inbound bytes (bound {held_bound})",
                        conn.id
                    ));
                }
                if conn.inbuf[s].len() > input_bound {
                    let n = conn.inbuf[s].len();
                    return self.violate(format!("c{}/{s} holds {n} unparsed bytes", conn.id));
                }
                if link.pending_timers() > link.open_exchanges() {
                    return self.violate(format!(
                        "c{}/{s}: {} timers for {} exchanges",
                        conn.id,
                        link.pending_timers(),
                        link.open_exchanges()
                    ));
                }
            }
        }
    }

    /// A link whose served exchanges crowd into few buckets of its tables
    /// (the low 12 bits of the hash index them), if any.
    fn crowded_buckets(&self) -> Option<String> {
        let mut ids: BTreeMap<(u64, usize), Vec<MuxId>> = BTreeMap::new();
        let served = self.app.served_requests.keys();
        for key in served.chain(self.app.served_streams.keys()) {
            ids.entry((key.0, key.1)).or_default().push(key.2);
        }
        for ((conn, side), muxes) in ids.into_iter().filter(|(_, m)| m.len() >= 64) {
            let link = self.conns.get(&conn)?.links[side].as_ref()?;
            let hashing = link.mux_hashing();
            let mut buckets: BTreeMap<u64, usize> = BTreeMap::new();
            for mux in &muxes {
                *buckets.entry(hashing.hash_one(mux.id) & 0xfff).or_default() += 1;
            }
            let fullest = buckets.values().copied().max().unwrap_or(0);
            if fullest > 16 + muxes.len() / 256 {
                return Some(format!(
                    "c{conn}/{side}: {fullest} of {} served ids share a bucket",
                    muxes.len()
                ));
            }
        }
        None
    }

    /// Invariant 3: once idle, no exchange state remains anywhere; every
    /// request a handler was given has exactly one record.
    pub(super) fn check_quiescence(&self) -> Result<(), String> {
        let records = self.records.counts();
        if let Some(problem) = records.problem {
            return Err(problem);
        }
        if records.streams != self.delivered_streams {
            return Err(format!(
                "{} streams reached a handler, {} were recorded",
                self.delivered_streams, records.streams
            ));
        }
        if records.served != self.delivered_requests {
            return Err(format!(
                "{} requests reached a handler, {} were recorded",
                self.delivered_requests, records.served
            ));
        }
        for conn in self.conns.values() {
            for link in conn.links.iter().flatten() {
                if link.open_exchanges() != 0
                    || link.pending_timers() != 0
                    || link.inbound_bytes() != 0
                    || link.pending_records() != 0
                {
                    return Err(format!("idle link c{} still holds {link:?}", conn.id));
                }
            }
        }
        let stats = self.app.stats;
        if stats.responses_ok + stats.responses_err + stats.streams_ok + stats.streams_err == 0
            && self.swarm.workload.as_secs() >= 10
            && self.trace.events > 0
            && self.violation.is_none()
        {
            // A run that did nothing proves nothing.
            return Err("the workload completed no exchange".into());
        }
        Ok(())
    }
}
