//! `gridmux bench`: request latency and rate on one loopback link, beside
//! a raw TCP ping-pong on the same runtime, in the same run.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::task::{ready, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gridmux::runtime::{Runtime, Socket};
use gridmux::{CancelSignal, Grid};

use crate::{builtin, rt, RuntimeKind};

/// What `gridmux bench` was asked for.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) payload: usize,
    pub(crate) concurrency: Vec<usize>,
    pub(crate) duration: Duration,
    pub(crate) runtimes: Vec<RuntimeKind>,
    /// Also measure the raw TCP ping-pong.
    pub(crate) baseline: bool,
    /// Also measure the inline handler with metrics on (both nodes keep
    /// `gridmux-metrics`), beside the same case with them off.
    pub(crate) metrics: bool,
}

/// Time before samples count.
const WARM_UP: Duration = Duration::from_millis(500);

/// One measurement.
#[derive(Debug)]
struct Outcome {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

pub(crate) fn run(opts: &Options) -> Result<(), String> {
    println!(
        "payload {} B, {:?} per case after {WARM_UP:?} warm-up",
        opts.payload, opts.duration
    );
    println!("| runtime | case | concurrency | requests/s | p50 | p99 | vs raw TCP |");
    println!("|---|---|---|---|---|---|---|");
    for &kind in &opts.runtimes {
        rt::block_on(kind, |rt| async move {
            for &c in &opts.concurrency {
                let raw = if opts.baseline {
                    let raw = raw_ping_pong(&rt, c, opts).await?;
                    print_row(kind, "raw TCP ping-pong", c, &raw, None);
                    Some(raw.rate)
                } else {
                    None
                };
                let grid = grid_requests(&rt, c, opts, builtin::ECHO, false).await?;
                print_row(kind, "grid request, inline handler", c, &grid, raw);
                if opts.metrics {
                    metrics_overhead(&rt, kind, c, opts, raw).await?;
                }
                let spawned = grid_requests(&rt, c, opts, builtin::ECHO_SPAWNED, false).await?;
                print_row(kind, "grid request, spawned handler", c, &spawned, raw);
            }
            Ok::<(), String>(())
        })?;
    }
    Ok(())
}

/// Rounds of metrics off and on, in the order off-on, on-off, off-on,
/// on-off: the machine's drift falls on both sides alike, and the ratio
/// is of the sums.
const METRICS_ROUNDS: usize = 4;

/// The inline handler with metrics off and on, alternating, and the ratio
/// of the rates (the observer's cost).
async fn metrics_overhead(
    rt: &Arc<dyn Runtime>,
    kind: RuntimeKind,
    c: usize,
    opts: &Options,
    raw: Option<f64>,
) -> Result<(), String> {
    let (mut off, mut on) = (0.0, 0.0);
    let mut ratios = Vec::new();
    for round in 0..METRICS_ROUNDS {
        let mut rates = [0.0; 2];
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for metrics in order {
            let o = grid_requests(rt, c, opts, builtin::ECHO, metrics).await?;
            let case = if metrics { "on" } else { "off" };
            let case = format!("inline handler, metrics {case}, round {}", round + 1);
            print_row(kind, &case, c, &o, raw);
            rates[usize::from(metrics)] = o.rate;
        }
        off += rates[0];
        on += rates[1];
        ratios.push(rates[1] / rates[0]);
    }
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    println!(
        "| {kind:?} | metrics on / off, {METRICS_ROUNDS} rounds | {c} | {:.3}× (rounds {low:.3}–{high:.3}×) | | | |",
        on / off
    );
    Ok(())
}

fn print_row(kind: RuntimeKind, case: &str, c: usize, o: &Outcome, baseline: Option<f64>) {
    let ratio = baseline.map_or("—".to_owned(), |b| format!("{:.2}×", o.rate / b));
    println!(
        "| {kind:?} | {case} | {c} | {:.0} | {:.1} µs | {:.1} µs | {ratio} |",
        o.rate,
        o.p50.as_secs_f64() * 1e6,
        o.p99.as_secs_f64() * 1e6,
    );
}

/// Runs `concurrency` workers, each repeating `op` until the time is up,
/// and summarizes their latencies.
async fn measure<F, Fut>(
    rt: &Arc<dyn Runtime>,
    concurrency: usize,
    duration: Duration,
    mut make_op: impl FnMut(usize) -> F,
) -> Result<Outcome, String>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let (counted_from, end) = (start + WARM_UP, start + WARM_UP + duration);
    let samples: Arc<Mutex<Vec<u32>>> = Arc::default();
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let mut done = Vec::new();
    for w in 0..concurrency {
        let mut op = make_op(w);
        let (samples, failure) = (samples.clone(), failure.clone());
        let finished = CancelSignal::new();
        done.push(finished.clone());
        rt.spawn(Box::pin(async move {
            let mut mine = Vec::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                if let Err(e) = op().await {
                    *failure.lock().unwrap() = Some(e);
                    break;
                }
                if t0 >= counted_from {
                    let nanos = t0.elapsed().as_nanos();
                    mine.push(u32::try_from(nanos).unwrap_or(u32::MAX));
                }
            }
            samples.lock().unwrap().extend(mine);
            finished.cancel();
        }));
    }
    for d in done {
        d.cancelled().await;
    }
    if let Some(e) = failure.lock().unwrap().take() {
        return Err(e);
    }
    let mut samples = std::mem::take(&mut *samples.lock().unwrap());
    if samples.is_empty() {
        return Err("no samples".into());
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        Duration::from_nanos(u64::from(samples[i]))
    };
    Ok(Outcome {
        rate: samples.len() as f64 / duration.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// Two nodes on loopback; node 0 calls node 1's echo handler.
async fn grid_requests(
    rt: &Arc<dyn Runtime>,
    concurrency: usize,
    opts: &Options,
    handler: u8,
    metrics: bool,
) -> Result<Outcome, String> {
    let listeners = [bind()?, bind()?];
    let names: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let mut grids = Vec::new();
    for (name, listener) in names.iter().zip(listeners) {
        let mut builder = builtin::register(Grid::builder(name.clone(), names.clone()))
            .secret("gridmux bench")
            .listener(listener);
        if metrics {
            builder = builder.metrics(gridmux::MetricsAccess::Public);
        }
        let grid = builder.start(rt.clone()).map_err(|e| e.to_string())?;
        grids.push(grid);
    }
    let peer = grids[0].peer(&names[1]).map_err(|e| e.to_string())?;
    peer.wait_connected(Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let payload = Bytes::from(vec![0x5a; opts.payload]);
    let outcome = measure(rt, concurrency, opts.duration, |_| {
        let (peer, payload) = (peer.clone(), payload.clone());
        move || {
            let request = peer.request(handler, payload.clone());
            let expected = payload.len();
            async move {
                let answer = request.await.map_err(|e| e.to_string())?;
                if answer.len() == expected {
                    Ok(())
                } else {
                    Err("short answer".into())
                }
            }
        }
    })
    .await;
    for grid in &grids {
        grid.shutdown(Duration::from_secs(1)).await;
    }
    outcome
}

/// `concurrency` connections, each writing `payload` bytes and reading
/// them back, served by an echo task per connection.
async fn raw_ping_pong(
    rt: &Arc<dyn Runtime>,
    concurrency: usize,
    opts: &Options,
) -> Result<Outcome, String> {
    let std_listener = bind()?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
    let listener = rt.adopt_listener(std_listener).map_err(|e| e.to_string())?;
    let size = opts.payload;
    let stop = CancelSignal::new();
    {
        let (rt2, stop) = (rt.clone(), stop.clone());
        rt.spawn(Box::pin(async move {
            let accept = async {
                loop {
                    let Ok(socket) = poll_fn(|cx| listener.poll_accept(cx)).await else {
                        return;
                    };
                    let stop = stop.clone();
                    rt2.spawn(Box::pin(async move {
                        let mut buf = vec![0; size];
                        let echo = async {
                            while read_exact(&*socket, &mut buf).await.is_ok() {
                                if write_all(&*socket, &buf).await.is_err() {
                                    break;
                                }
                            }
                        };
                        stop.run(echo).await;
                    }));
                }
            };
            stop.run(accept).await;
        }));
    }
    let mut sockets = Vec::new();
    for _ in 0..concurrency {
        sockets.push(Arc::new(rt.connect(addr).await.map_err(|e| e.to_string())?));
    }
    let payload = vec![0x5a; size];
    let outcome = measure(rt, concurrency, opts.duration, |w| {
        let socket = sockets[w].clone();
        let payload = payload.clone();
        let buf = Arc::new(Mutex::new(vec![0; size]));
        move || {
            let (socket, payload, buf) = (socket.clone(), payload.clone(), buf.clone());
            async move {
                write_all(&**socket, &payload)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut mine = std::mem::take(&mut *buf.lock().unwrap());
                let read = read_exact(&**socket, &mut mine).await;
                *buf.lock().unwrap() = mine;
                read.map_err(|e| e.to_string())
            }
        }
    })
    .await;
    stop.cancel();
    outcome
}

fn bind() -> Result<TcpListener, String> {
    TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))
}

async fn read_exact(socket: &dyn Socket, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    poll_fn(|cx| {
        while filled < buf.len() {
            match socket.try_read(&mut buf[filled..]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_readable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

async fn write_all(socket: &dyn Socket, buf: &[u8]) -> io::Result<()> {
    let mut written = 0;
    poll_fn(|cx| {
        while written < buf.len() {
            match socket.try_write_vectored(&[IoSlice::new(&buf[written..])]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_writable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}
