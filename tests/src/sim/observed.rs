//! The timing records every node's links make (`core::observe`), checked:
//! one record per request a handler was given, a TTFB only for answers,
//! and never past the duration. At quiescence the counts must match and
//! no answer may wait for its record.

use std::sync::Mutex;

use gridmux_core::observe::{Observer, Outcome, RequestServed, StreamServed};

/// What the links recorded, over all nodes.
#[derive(Debug, Default)]
pub struct Records(Mutex<Counts>);

/// Record counts, and the first wrong record.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Records of requests a handler was given.
    pub served: u64,
    /// Records of requests refused before any handler.
    pub refused: u64,
    /// Records of streams served.
    pub streams: u64,
    /// The first record that broke a rule.
    pub problem: Option<String>,
}

impl Records {
    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Observer for Records {
    fn stream_served(&self, r: &StreamServed<'_>) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.streams += 1;
        if counts.problem.is_none() {
            counts.problem = match r.ttfb {
                Some(t) if t > r.duration => Some(format!("stream TTFB past its duration: {r:?}")),
                None if r.msgs_out > 0 && r.outcome == Outcome::Ok => Some(format!(
                    "a stream sent messages and ended well without a TTFB: {r:?}"
                )),
                _ => None,
            };
        }
    }

    fn request_served(&self, r: &RequestServed<'_>) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let answered = matches!(r.outcome, Outcome::Ok | Outcome::HandlerError);
        let ended = matches!(
            r.outcome,
            Outcome::Canceled | Outcome::Timeout | Outcome::Disconnected
        );
        let problem = match r.ttfb {
            Some(t) if t > r.duration => Some(format!("TTFB {t:?} past the duration: {r:?}")),
            Some(_) if ended => Some(format!("a TTFB without an answer: {r:?}")),
            None if answered => Some(format!("an answer without a TTFB: {r:?}")),
            _ => None,
        };
        if counts.problem.is_none() {
            counts.problem = problem;
        }
        match r.outcome {
            Outcome::Overloaded | Outcome::UnknownHandler => counts.refused += 1,
            _ => counts.served += 1,
        }
    }
}
