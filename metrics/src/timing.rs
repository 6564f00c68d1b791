//! Histograms with atomic buckets: an observation is two relaxed atomic
//! additions and a binary search over constant bounds, no lock
//! (prometheus-client's own `Histogram` takes a write lock per
//! observation). [`Timing`] counts durations; [`Sizes`] counts how many
//! things something carried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::MetricConstructor;
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::{Snapshot, BATCH_BUCKETS, BUCKETS};

/// The bucket bounds in nanoseconds (checked against [`BUCKETS`] in the
/// tests).
const BOUNDS_NS: [u64; BUCKETS.len()] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The most one duration adds to the sum: a day (a longer one, a stream
/// open for days, counts as one day in `_sum`, and in the `+Inf` bucket as
/// itself). The sum of nanoseconds wraps only after 213,000 of those.
const MAX_NS: u64 = 86_400_000_000_000;

/// Integer buckets: `bounds` in the unit observed, shown divided by `unit`.
#[derive(Debug)]
struct Buckets<const N: usize> {
    /// Per bucket (not cumulative).
    counts: [AtomicU64; N],
    /// Above every bound.
    above: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            above: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Buckets<N> {
    fn observe(&self, bounds: &[u64; N], value: u64) {
        let bucket = bounds.partition_point(|b| *b < value);
        self.counts
            .get(bucket)
            .unwrap_or(&self.above)
            .fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    fn snapshot(&self, upper: &'static [f64], unit: f64) -> Snapshot {
        let counts = (self.counts.iter().chain([&self.above]))
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        Snapshot {
            bounds: upper,
            counts,
            sum_seconds: self.sum.load(Ordering::Relaxed) as f64 / unit,
        }
    }

    fn encode(
        &self,
        upper: &[f64; N],
        unit: f64,
        mut encoder: MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(N + 1);
        for (bound, count) in upper.iter().zip(&self.counts) {
            buckets.push((*bound, count.load(Ordering::Relaxed)));
        }
        buckets.push((f64::MAX, self.above.load(Ordering::Relaxed)));
        // The count is the buckets' total, so that `_count` always equals
        // the `+Inf` bucket, as OpenMetrics requires.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum.load(Ordering::Relaxed) as f64 / unit;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// A histogram of durations over [`BUCKETS`] (seconds).
#[derive(Debug, Clone, Default)]
pub(crate) struct Timing(Arc<Buckets<{ BUCKETS.len() }>>);

impl Timing {
    /// Counts `d`.
    pub(crate) fn observe(&self, d: Duration) {
        // Capped at MAX_NS in the sum, so that the sum cannot wrap early
        // (2^64 ns is 584 years of observations).
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).min(MAX_NS);
        self.0.observe(&BOUNDS_NS, ns);
    }

    /// Its counts now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.0.snapshot(&BUCKETS, 1e9)
    }
}

impl TypedMetric for Timing {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Timing {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(&BUCKETS, 1e9, encoder)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A histogram of counts over [`BATCH_BUCKETS`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Sizes(Arc<Buckets<{ BATCH_BUCKETS.len() }>>);

impl Sizes {
    /// Counts `n`.
    pub(crate) fn observe(&self, n: usize) {
        let n = u64::try_from(n)
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX));
        self.0.observe(&BATCH_BUCKETS, n);
    }
}

impl TypedMetric for Sizes {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Sizes {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0
            .encode(&BATCH_BUCKETS.map(|b| b as f64), 1.0, encoder)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Makes [`Timing`]s and [`Sizes`] for families.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewHistogram;

impl MetricConstructor<Timing> for NewHistogram {
    fn new_metric(&self) -> Timing {
        Timing::default()
    }
}

impl MetricConstructor<Sizes> for NewHistogram {
    fn new_metric(&self) -> Sizes {
        Sizes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_the_buckets_in_nanoseconds() {
        let from_seconds = BUCKETS.map(|s| (s * 1e9).round() as u64);
        assert_eq!(BOUNDS_NS, from_seconds);
    }

    fn counts<const N: usize>(b: &Buckets<N>) -> Vec<u64> {
        (b.counts.iter().chain([&b.above]))
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    #[test]
    fn durations_land_in_the_first_bucket_whose_bound_they_do_not_pass() {
        let t = Timing::default();
        t.observe(Duration::from_micros(25)); // on the first bound
        t.observe(Duration::from_micros(26));
        t.observe(Duration::from_secs(11)); // past every bound
        let c = counts(&t.0);
        assert_eq!((c[0], c[1], c[BUCKETS.len()]), (1, 1, 1));
        assert_eq!(t.0.sum.load(Ordering::Relaxed), 11_000_051_000);
        t.observe(Duration::MAX);
        assert_eq!(t.0.sum.load(Ordering::Relaxed), 11_000_051_000 + MAX_NS);
    }

    #[test]
    fn sizes_land_in_their_buckets() {
        let s = Sizes::default();
        for n in [1, 2, 3, 50, 1000] {
            s.observe(n);
        }
        let c = counts(&s.0);
        assert_eq!(c.iter().sum::<u64>(), 5);
        assert_eq!((c[0], c[1], c[2]), (1, 1, 1)); // 1, 2, 3 ≤ 4
        assert_eq!(c[BATCH_BUCKETS.len()], 1); // 1000 above every bound
        assert_eq!(s.0.sum.load(Ordering::Relaxed), 1056);
    }
}
