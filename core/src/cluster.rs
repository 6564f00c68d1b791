//! Pure cluster logic: which side of a pair dials, and when to retry.

use std::time::Duration;

use rand_core::RngCore;
use xxhash_rust::xxh3::xxh3_64;

/// Whether `local` dials `remote` (MinIO's rule): with
/// `h0 = xxh3(local ‖ remote)` and `h1 = xxh3(remote ‖ local)`, dial iff
/// `h0 < h1`, and on a tie iff `local < remote`. For two distinct names
/// exactly one side dials. A node never dials itself.
pub fn should_dial(local: &str, remote: &str) -> bool {
    if local == remote {
        return false;
    }
    let h0 = concat_hash(local, remote);
    let h1 = concat_hash(remote, local);
    if h0 == h1 {
        local < remote
    } else {
        h0 < h1
    }
}

fn concat_hash(a: &str, b: &str) -> u64 {
    let mut joined = Vec::with_capacity(a.len() + b.len());
    joined.extend_from_slice(a.as_bytes());
    joined.extend_from_slice(b.as_bytes());
    xxh3_64(&joined)
}

/// When to start the next dial attempt after failures.
///
/// The default is MinIO's: the next attempt starts a uniformly random
/// 1–2 s after the previous attempt *started*. With `growth` above 1 the
/// base interval grows by that factor per consecutive failure up to `cap`
/// (an extension; off by default). A lost link is re-dialled at once; this
/// schedule applies only to failed attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectSchedule {
    /// Smallest delay between attempt starts (jitter adds up to as much again).
    pub base: Duration,
    /// Factor applied to the base per consecutive failure (1.0: none).
    pub growth: f64,
    /// Upper bound of the grown base.
    pub cap: Duration,
}

impl Default for ReconnectSchedule {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            growth: 1.0,
            cap: Duration::from_secs(1),
        }
    }
}

impl ReconnectSchedule {
    /// Capped exponential growth: `base`, `base·growth`, … up to `cap`.
    pub fn exponential(base: Duration, growth: f64, cap: Duration) -> Self {
        Self { base, growth, cap }
    }

    /// Delay from the start of the failed attempt to the start of the next,
    /// after `failures` consecutive failures (1 for the first).
    pub fn delay(&self, failures: u32, rng: &mut dyn RngCore) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let grown = self.base.as_secs_f64() * self.growth.max(1.0).powi(exponent);
        let base = grown.min(self.cap.as_secs_f64().max(self.base.as_secs_f64()));
        // Uniform in [base, 2·base) at nanosecond resolution.
        let jitter = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // A huge cap must not overflow: the longest delay is `Duration::MAX`.
        Duration::try_from_secs_f64(base * (1.0 + jitter)).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn an_uncapped_schedule_saturates_instead_of_panicking() {
        let mut rng = SmallRng::seed_from_u64(1);
        let huge = ReconnectSchedule::exponential(Duration::from_secs(1), 1e9, Duration::MAX);
        assert_eq!(huge.delay(1_000, &mut rng), Duration::MAX);
        let max = ReconnectSchedule::exponential(Duration::MAX, 2.0, Duration::MAX);
        assert_eq!(max.delay(1, &mut rng), Duration::MAX);
    }

    #[test]
    fn reference_example_a_dials_b() {
        assert!(should_dial("http://a", "http://b"));
        assert!(!should_dial("http://b", "http://a"));
        assert!(!should_dial("x", "x"));
    }

    /// Checklist 10: over 35 one-character hosts, every pair has exactly
    /// one dialer and each host dials at least 10 of its 34 peers.
    #[test]
    fn checklist_10_exactly_one_dialer_per_pair_and_balanced() {
        let hosts: Vec<String> = ('a'..='z')
            .filter(|c| *c != 'w')
            .chain('0'..='9')
            .map(String::from)
            .collect();
        assert_eq!(hosts.len(), 35);
        for x in &hosts {
            let mut dials = 0;
            for y in hosts.iter().filter(|y| *y != x) {
                assert_ne!(should_dial(x, y), should_dial(y, x), "{x} / {y}");
                dials += usize::from(should_dial(x, y));
            }
            assert!(dials >= 10, "{x} dials only {dials}");
        }
    }

    /// Checklist 15: retries start 1–2 s after the previous start.
    #[test]
    fn checklist_15_default_jitter_is_one_to_two_seconds() {
        let mut rng = SmallRng::seed_from_u64(7);
        let s = ReconnectSchedule::default();
        let delays: Vec<Duration> = (1..=1000).map(|n| s.delay(n, &mut rng)).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_secs(1) && *d < Duration::from_secs(2)));
        let below = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(1500))
            .count();
        assert!(
            (400..600).contains(&below),
            "not uniform: {below}/1000 below 1.5 s"
        );
    }

    #[test]
    fn exponential_growth_is_capped() {
        let mut rng = SmallRng::seed_from_u64(1);
        let s =
            ReconnectSchedule::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(30));
        let d1 = s.delay(1, &mut rng);
        let d3 = s.delay(3, &mut rng);
        let d50 = s.delay(50, &mut rng);
        assert!(d1 >= Duration::from_secs(1) && d1 < Duration::from_secs(2));
        assert!(d3 >= Duration::from_secs(4) && d3 < Duration::from_secs(8));
        assert!(d50 >= Duration::from_secs(30) && d50 < Duration::from_secs(60));
        assert!(s.delay(u32::MAX, &mut rng) < Duration::from_secs(60));
    }
}
