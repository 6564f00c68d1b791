//! A histogram of durations with atomic buckets: an observation is three
//! relaxed atomic additions and a binary search, no lock (prometheus-client's
//! own `Histogram` takes a write lock per observation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::MetricConstructor;
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::BUCKETS;

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

/// The most one observation adds to the sum: an hour.
const MAX_NS: u64 = 3_600_000_000_000;

/// A histogram of durations over [`BUCKETS`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Timing(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Per bucket (not cumulative); the last is above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Timing {
    /// Counts `d`.
    pub(crate) fn observe(&self, d: Duration) {
        // Anything past the last bound counts as one hour in the sum, so
        // that the sum cannot wrap (2^64 ns is 584 years of observations).
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).min(MAX_NS);
        let bucket = BOUNDS_NS.partition_point(|b| *b < ns);
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl TypedMetric for Timing {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Timing {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut buckets = [(f64::MAX, 0u64); BUCKETS.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            let upper = BUCKETS.get(i).copied().unwrap_or(f64::MAX);
            *slot = (upper, self.0.counts[i].load(Ordering::Relaxed));
        }
        // The count is the buckets' total, so that `_count` always equals
        // the `+Inf` bucket, as OpenMetrics requires.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Makes [`Timing`]s for families.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewTiming;

impl MetricConstructor<Timing> for NewTiming {
    fn new_metric(&self) -> Timing {
        Timing::default()
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

    #[test]
    fn durations_land_in_the_first_bucket_whose_bound_they_do_not_pass() {
        let t = Timing::default();
        t.observe(Duration::from_micros(25)); // on the first bound
        t.observe(Duration::from_micros(26));
        t.observe(Duration::from_secs(11)); // past every bound
        let counts: Vec<u64> =
            t.0.counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
        assert_eq!((counts[0], counts[1], counts[BUCKETS.len()]), (1, 1, 1));
        assert_eq!(t.0.sum_ns.load(Ordering::Relaxed), 11_000_051_000);
        t.observe(Duration::MAX);
        assert_eq!(t.0.sum_ns.load(Ordering::Relaxed), 11_000_051_000 + MAX_NS);
    }
}
