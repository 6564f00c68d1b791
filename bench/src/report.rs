//! The results: one [`Row`] per case, a table for people and JSON for
//! scripts.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::measure::Measured;
use crate::progress::si;

/// One measured case.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `unary`, `stream`, `file`, `websocket`, `mesh`.
    pub workload: &'static str,
    /// What was measured, e.g. `512 B ×64`.
    pub case: String,
    /// `gridmux`, or the baseline or peer measured beside it.
    pub system: String,
    /// Operations in flight.
    pub concurrency: usize,
    /// Operations per second (requests, messages, fetches).
    pub ops_per_s: f64,
    /// Payload MiB per second, where bytes matter.
    pub mib_per_s: Option<f64>,
    /// Latency quantiles in microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency, µs.
    pub p999_us: Option<f64>,
    /// Median TTFB from the serving nodes' metrics histograms, µs: the
    /// upper bound of its bucket (the median is at most this).
    pub ttfb_p50_le_us: Option<f64>,
    /// 99th percentile TTFB, µs: the upper bound of its bucket.
    pub ttfb_p99_le_us: Option<f64>,
    /// CPU seconds of the whole process per GiB moved.
    pub cpu_s_per_gib: Option<f64>,
    /// Failed operations (must be 0).
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// The rows this one is compared with, and the ratio of throughputs
    /// (this ÷ that).
    pub versus: Vec<(String, f64)>,
    /// Anything else, in words.
    pub note: Option<String>,
    /// Named figures beyond the columns (mesh times and memory, CPU
    /// ratios), for scripts.
    pub figures: Vec<(String, f64)>,
    /// Stopped (Ctrl-C) before its window ended: a shorter measurement.
    pub partial: bool,
}

impl Row {
    /// A row of `measured`; `bytes` say whether MiB/s and CPU/GiB apply.
    pub(crate) fn of(
        workload: &'static str,
        case: impl Into<String>,
        system: impl Into<String>,
        concurrency: usize,
        m: &Measured,
        bytes: bool,
    ) -> Self {
        let us = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
        Self {
            workload,
            case: case.into(),
            system: system.into(),
            concurrency,
            ops_per_s: m.rate(),
            mib_per_s: bytes.then(|| m.mib_per_s()),
            p50_us: us(m.latency(0.5)),
            p99_us: us(m.latency(0.99)),
            p999_us: us(m.latency(0.999)),
            ttfb_p50_le_us: None,
            ttfb_p99_le_us: None,
            cpu_s_per_gib: if bytes { m.cpu_per_gib() } else { None },
            errors: m.errors,
            first_error: m.first_error.clone(),
            versus: Vec::new(),
            note: None,
            figures: Vec::new(),
            partial: false,
        }
    }

    /// An empty row of `workload`, to fill in.
    pub(crate) fn blank(workload: &'static str, case: impl Into<String>) -> Self {
        Self::of(workload, case, "gridmux", 0, &Measured::default(), false)
    }

    /// With the TTFB quantiles of `t` (observations of this row only), if
    /// it has enough of them to mean something.
    pub(crate) fn ttfb(mut self, t: &gridmux::metrics::Snapshot) -> Self {
        if t.count() >= MIN_TTFB_SAMPLES {
            let us = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
            self.ttfb_p50_le_us = us(t.quantile_bound(0.5));
            self.ttfb_p99_le_us = us(t.quantile_bound(0.99));
        }
        self
    }

    /// Compared with `other` (by throughput: MiB/s where both have it);
    /// nothing when either measured nothing.
    pub(crate) fn versus(mut self, other: &Self) -> Self {
        if self.ops_per_s <= 0.0 || other.ops_per_s <= 0.0 {
            return self;
        }
        let ratio = match (self.mib_per_s, other.mib_per_s) {
            (Some(a), Some(b)) if b > 0.0 => a / b,
            _ => self.ops_per_s / other.ops_per_s,
        };
        self.versus.push((other.system.clone(), ratio));
        self
    }
}

/// TTFB quantiles need at least this many observations.
const MIN_TTFB_SAMPLES: u64 = 100;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it ran (seconds since the Unix epoch).
    pub unix_time: u64,
    /// The runtime (`tokio` or `smol`).
    pub runtime: String,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// The CPU model and cores.
    pub machine: String,
    /// gridmux's version.
    pub version: String,
    /// Counted time per row, seconds.
    pub duration_s: f64,
    /// A `--quick` run.
    pub quick: bool,
    /// The rows, in the order they ran.
    pub rows: Vec<Row>,
    /// Whether it was stopped before the end.
    pub interrupted: bool,
}

impl Report {
    /// Failed operations in all rows.
    pub fn errors(&self) -> u64 {
        self.rows.iter().map(|r| r.errors).sum()
    }

    /// Rows that measured nothing though the run was not stopped in them.
    pub fn empty_rows(&self) -> usize {
        (self.rows.iter())
            .filter(|r| r.ops_per_s <= 0.0 && r.errors == 0 && !r.partial)
            .count()
    }

    /// The table, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "gridmux bench: {} nodes, {}, {}{}",
            self.nodes,
            self.runtime,
            self.machine,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        out.push_str(
            "\n| workload | case | system | in flight | ops/s | MiB/s | p50 | p99 | p99.9 | TTFB p50 ≤ | TTFB p99 ≤ | CPU-s/GiB | errors | vs |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let us = |v: Option<f64>| v.map_or("—".to_owned(), fmt_us);
        let num =
            |v: Option<f64>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
        for r in &self.rows {
            let versus = if r.versus.is_empty() {
                "—".to_owned()
            } else {
                let parts: Vec<String> = (r.versus.iter())
                    .map(|(what, ratio)| format!("{ratio:.2}× {what}"))
                    .collect();
                parts.join(", ")
            };
            let case = if r.partial {
                format!("{} (stopped early)", r.case)
            } else {
                r.case.clone()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.workload,
                case,
                r.system,
                r.concurrency,
                si(r.ops_per_s),
                num(r.mib_per_s, 0),
                us(r.p50_us),
                us(r.p99_us),
                us(r.p999_us),
                us(r.ttfb_p50_le_us),
                us(r.ttfb_p99_le_us),
                num(r.cpu_s_per_gib, 2),
                r.errors,
                versus,
            );
        }
        for r in &self.rows {
            if let Some(note) = &r.note {
                let _ = writeln!(out, "\n{} {}: {note}", r.workload, r.case);
            }
            if let Some(e) = &r.first_error {
                let _ = writeln!(
                    out,
                    "\n{} {} {}: first error: {e}",
                    r.workload, r.case, r.system
                );
            }
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// Microseconds, or milliseconds past 10 ms.
fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, ops: f64, mib: Option<f64>) -> Row {
        let m = Measured {
            ops: 10,
            elapsed: Duration::from_secs(1),
            latencies: vec![1_000, 2_000, 3_000],
            ..Measured::default()
        };
        let mut r = Row::of("unary", "512 B", system, 1, &m, mib.is_some());
        r.ops_per_s = ops;
        r.mib_per_s = mib;
        r
    }

    #[test]
    fn ratios_use_bytes_where_both_rows_have_them_and_the_json_parses() {
        let base = row("raw TCP", 100.0, None);
        let r = row("gridmux", 90.0, None).versus(&base);
        assert_eq!(r.versus[0].1, 0.9);
        let bulk = row("raw TCP", 1.0, Some(1000.0));
        let b = row("gridmux", 5.0, Some(800.0)).versus(&bulk);
        assert_eq!(b.versus[0].1, 0.8);
        assert_eq!(r.p50_us, Some(2.0));
        let report = Report {
            unix_time: 0,
            runtime: "tokio".into(),
            nodes: 3,
            machine: "test".into(),
            version: "0".into(),
            duration_s: 1.0,
            quick: false,
            rows: vec![base, r],
            interrupted: false,
        };
        let v: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(v["rows"].as_array().unwrap().len(), 2);
        assert!(report.table().contains("| unary | 512 B | gridmux |"));
        assert_eq!(report.errors(), 0);
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn rows_that_measured_nothing_have_no_ratio_and_few_ttfb_samples_show_none() {
        let empty = Row::blank("unary", "x");
        let mut some = Row::blank("unary", "x");
        some.ops_per_s = 10.0;
        assert!(some.clone().versus(&empty).versus.is_empty());
        assert!(empty.versus(&some).versus.is_empty());
        let mut t = gridmux::metrics::Snapshot::empty(&gridmux::metrics::BUCKETS);
        t.counts[1] = 5;
        assert_eq!(some.clone().ttfb(&t).ttfb_p50_le_us, None);
        t.counts[1] = 500;
        assert_eq!(some.ttfb(&t).ttfb_p50_le_us, Some(50.0));
    }
}
