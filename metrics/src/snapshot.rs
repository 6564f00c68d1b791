//! Reading a histogram back in a program: counts per bucket and quantiles
//! estimated the way Prometheus's `histogram_quantile` does.

use std::time::Duration;

/// A histogram's counts at one moment ([`GridMetrics::grid_ttfb`] and
/// friends); subtract an earlier one with [`since`](Self::since).
///
/// [`GridMetrics::grid_ttfb`]: crate::GridMetrics::grid_ttfb
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Upper bounds in seconds (the last bucket, above them all, is
    /// `counts[bounds.len()]`).
    pub bounds: &'static [f64],
    /// Observations per bucket, not cumulative; one more than `bounds`.
    pub counts: Vec<u64>,
    /// Sum of the observations in seconds.
    pub sum_seconds: f64,
}

impl Snapshot {
    /// An empty snapshot over `bounds`.
    pub fn empty(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum_seconds: 0.0,
        }
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was observed after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            bounds: self.bounds,
            counts: (self.counts.iter().zip(&earlier.counts))
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
            sum_seconds: (self.sum_seconds - earlier.sum_seconds).max(0.0),
        }
    }

    /// The upper bound of the bucket that holds the `q` quantile: the
    /// quantile is at most this. `None` without observations, or when it
    /// lies above every bound.
    pub fn quantile_bound(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            below += n;
            if below as f64 >= rank {
                return self.bounds.get(i).map(|b| Duration::from_secs_f64(*b));
            }
        }
        None
    }

    /// The `q` quantile (0 ≤ q ≤ 1), interpolated linearly inside its
    /// bucket (the first bucket starts at 0); `None` without observations.
    /// An answer in the bucket above every bound is the highest bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().map(|b| Duration::from_secs_f64(*b));
                };
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(Duration::from_secs_f64(lower + (upper - lower) * within));
            }
            below += n;
        }
        self.bounds.last().map(|b| Duration::from_secs_f64(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.002, 0.004];

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let s = Snapshot {
            bounds: BOUNDS,
            counts: vec![0, 10, 0, 0],
            sum_seconds: 0.015,
        };
        assert_eq!(s.quantile(0.5), Some(Duration::from_micros(1500)));
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(2)));
        assert_eq!(s.quantile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Snapshot::empty(BOUNDS).quantile(0.5), None);
        assert_eq!(s.quantile_bound(0.5), Some(Duration::from_millis(2)));
        assert_eq!(Snapshot::empty(BOUNDS).quantile_bound(0.5), None);
    }

    #[test]
    fn past_every_bound_is_the_highest_bound_and_since_subtracts() {
        let later = Snapshot {
            bounds: BOUNDS,
            counts: vec![1, 0, 0, 9],
            sum_seconds: 50.0,
        };
        assert_eq!(later.quantile(0.99), Some(Duration::from_millis(4)));
        assert_eq!(later.quantile_bound(0.05), Some(Duration::from_millis(1)));
        assert_eq!(later.quantile_bound(0.99), None);
        let earlier = Snapshot {
            bounds: BOUNDS,
            counts: vec![1, 0, 0, 0],
            sum_seconds: 0.0005,
        };
        let d = later.since(&earlier);
        assert_eq!(d.counts, vec![0, 0, 0, 9]);
        assert_eq!(d.count(), 9);
    }
}
