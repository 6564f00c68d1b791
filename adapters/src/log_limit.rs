//! Rate-limited warnings: anyone who can reach the port can make a set-up
//! fail, and must not be able to flood the log with it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one warning through per interval and counts the rest.
#[derive(Debug)]
pub(crate) struct LogLimit {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State {
                next: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` if a warning may be logged now (`n` were suppressed since
    /// the last one), `None` if it must be dropped.
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.next.is_some_and(|next| now < next) {
            state.suppressed += 1;
            return None;
        }
        state.next = Some(now + self.interval);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_and_the_rest_counted() {
        let limit = LogLimit::new(Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(limit.allow(t), Some(0));
        assert_eq!(limit.allow(t + Duration::from_millis(10)), None);
        assert_eq!(limit.allow(t + Duration::from_millis(20)), None);
        assert_eq!(limit.allow(t + Duration::from_secs(1)), Some(2));
        assert_eq!(limit.allow(t + Duration::from_millis(1500)), None);
    }
}
