//! The closed-loop load generator every row uses: `concurrency` workers,
//! each repeating one operation until the time is up, with a warm-up that
//! is not counted, latencies per operation, and the process's CPU time
//! over the counted window.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridmux::runtime::{sleep_until, Runtime};
use gridmux::CancelSignal;

use crate::progress::Live;
use crate::sys;

/// How long a row runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Not counted: connections and caches settle.
    pub(crate) warm_up: Duration,
    /// Counted.
    pub(crate) duration: Duration,
}

/// What one row measured.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    /// Operations completed in the counted window.
    pub(crate) ops: u64,
    /// Payload bytes they moved (as the operation reports them).
    pub(crate) bytes: u64,
    /// Operations that failed (anywhere in the run).
    pub(crate) errors: u64,
    /// The first failure's text.
    pub(crate) first_error: Option<String>,
    /// The counted window as it was (shorter when stopped).
    pub(crate) elapsed: Duration,
    /// Latencies of the counted operations in nanoseconds, sorted.
    pub(crate) latencies: Vec<u32>,
    /// CPU seconds the process spent in the counted window.
    pub(crate) cpu_seconds: f64,
}

impl Measured {
    /// Operations per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// MiB per second of the bytes moved.
    pub(crate) fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU seconds per GiB moved, if any bytes were.
    pub(crate) fn cpu_per_gib(&self) -> Option<f64> {
        (self.bytes > 0).then(|| self.cpu_seconds / (self.bytes as f64 / (1u64 << 30) as f64))
    }

    /// The `q` quantile of the latencies.
    pub(crate) fn latency(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1);
        Some(Duration::from_nanos(u64::from(self.latencies[i])))
    }
}

/// The counts the workers share.
#[derive(Debug, Default)]
struct Shared {
    /// Every operation done, warm-up included (the live rate).
    seen: AtomicU64,
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latencies: Mutex<Vec<u32>>,
}

/// Runs `concurrency` workers over `window`; `make_op(w)` gives worker
/// `w` its operation, which returns the bytes it moved. An operation counts
/// if it starts after the warm-up and ends within the window. A worker
/// whose operation fails counts the error and stops. `stop` ends the row
/// early.
pub(crate) async fn closed_loop<F, Fut>(
    rt: &Arc<dyn Runtime>,
    concurrency: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
    make_op: impl FnMut(usize) -> F,
) -> Measured
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    closed_loop_marked(rt, concurrency, window, stop, live, &mut || {}, make_op).await
}

/// [`closed_loop`], calling `at_count` when the counted window starts
/// (to snapshot histograms at the same moment).
pub(crate) async fn closed_loop_marked<F, Fut>(
    rt: &Arc<dyn Runtime>,
    concurrency: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
    at_count: &mut (dyn FnMut() + Send),
    mut make_op: impl FnMut(usize) -> F,
) -> Measured
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    let start = Instant::now();
    let counted_from = start + window.warm_up;
    let end = counted_from + window.duration;
    let shared = Arc::new(Shared::default());
    let mut done = Vec::new();
    for w in 0..concurrency {
        let mut op = make_op(w);
        let shared = shared.clone();
        let stop = stop.clone();
        let finished = CancelSignal::new();
        done.push(finished.clone());
        rt.spawn(Box::pin(async move {
            let mut mine = Vec::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end || stop.is_cancelled() {
                    break;
                }
                let result = op().await;
                if result.is_ok() {
                    shared.seen.fetch_add(1, Ordering::Relaxed);
                }
                let t1 = Instant::now();
                match result {
                    Ok(bytes) if t0 >= counted_from && t1 <= end => {
                        let nanos = t1.duration_since(t0).as_nanos();
                        mine.push(u32::try_from(nanos).unwrap_or(u32::MAX));
                        shared.ops.fetch_add(1, Ordering::Relaxed);
                        shared.bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        let mut first = shared.first_error.lock().unwrap();
                        first.get_or_insert(e);
                        break;
                    }
                }
            }
            shared.latencies.lock().unwrap().extend(mine);
            finished.cancel();
        }));
    }
    let (cpu0, counted) = watch(rt, counted_from, end, stop, live, &shared.seen, at_count).await;
    let cpu = sys::cpu_seconds() - cpu0;
    for d in done {
        d.cancelled().await;
    }
    let mut latencies = std::mem::take(&mut *shared.latencies.lock().unwrap());
    latencies.sort_unstable();
    let first_error = shared.first_error.lock().unwrap().take();
    Measured {
        ops: shared.ops.load(Ordering::Relaxed),
        bytes: shared.bytes.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        elapsed: counted,
        latencies,
        cpu_seconds: cpu,
    }
}

/// Waits out the window, showing the live rate of `seen` operations;
/// returns the CPU time at the start of the counted window and how long
/// that window was.
pub(crate) async fn watch(
    rt: &Arc<dyn Runtime>,
    counted_from: Instant,
    end: Instant,
    stop: &CancelSignal,
    live: &Live,
    seen: &AtomicU64,
    at_count: &mut (dyn FnMut() + Send),
) -> (f64, Duration) {
    let tick = Duration::from_millis(250);
    let mut cpu0 = None;
    let mut last = (Instant::now(), seen.load(Ordering::Relaxed));
    loop {
        let now = Instant::now();
        if now >= counted_from && cpu0.is_none() {
            at_count();
            cpu0 = Some(sys::cpu_seconds());
        }
        if now >= end || stop.is_cancelled() {
            break;
        }
        let next = (now + tick)
            .min(end)
            .min(if cpu0.is_none() { counted_from } else { end });
        if stop.run(sleep_until(&**rt, next)).await.is_none() {
            break;
        }
        let (then, before) = last;
        let count = seen.load(Ordering::Relaxed);
        let rate = (count - before) as f64 / then.elapsed().as_secs_f64().max(1e-9);
        live.rate(rate);
        last = (Instant::now(), count);
    }
    let counted = Instant::now()
        .min(end)
        .saturating_duration_since(counted_from);
    (cpu0.unwrap_or_else(sys::cpu_seconds), counted)
}
