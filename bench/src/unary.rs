//! Unary requests across the cluster's links (0 B, 512 B and 4 KiB at
//! concurrency 1, 64 and 256; typed requests at 64), beside raw TCP
//! ping-pong, raw TCP pipelined and yamux with the same payload.

use bytes::Bytes;
use gridmux::metrics::{GridMetrics, Snapshot};

use crate::builtin::{Typed, ECHO, TYPED};
use crate::cluster::Cluster;
use crate::measure::{closed_loop_marked, Measured};
use crate::report::Row;
use crate::{raw_tcp, yamux_peer, Ctx};
use gridmux::Peer;

/// In flight for the pipelined and yamux baselines.
const FLOOR_IN_FLIGHT: usize = 256;

/// The cases of a run: payload sizes and concurrencies.
pub(crate) fn cases(quick: bool) -> (Vec<usize>, Vec<usize>) {
    if quick {
        (vec![512], vec![1, 256])
    } else {
        (vec![0, 512, 4096], vec![1, 64, 256])
    }
}

/// Rows this workload makes.
pub(crate) fn planned(quick: bool) -> usize {
    let (sizes, concurrencies) = cases(quick);
    sizes.len() * (4 + concurrencies.len()) + 1
}

pub(crate) async fn run(cx: &mut Ctx<'_>) -> Result<(), String> {
    let cluster = Cluster::linked(&cx.rt, cx.nodes, &cx.stop, |_, b| b).await?;
    let pairs = cluster.pairs()?;
    let (sizes, concurrencies) = cases(cx.quick);
    for size in sizes {
        if cx.stopped() {
            break;
        }
        let raw = size.max(1);
        cx.live.case(&format!("raw TCP ping-pong {size} B"));
        let m = raw_tcp::ping_pong(&cx.rt, raw, 1, cx.window, &cx.stop, &cx.live).await?;
        let ping_pong = cx.push(Row::of(
            "unary",
            format!("{size} B"),
            "raw TCP ping-pong",
            1,
            &m,
            false,
        ));
        cx.live.case(&format!("raw TCP pipelined {size} B"));
        let m =
            raw_tcp::pipelined(&cx.rt, raw, FLOOR_IN_FLIGHT, cx.window, &cx.stop, &cx.live).await?;
        let pipelined = cx.push(Row::of(
            "unary",
            format!("{size} B"),
            "raw TCP pipelined",
            FLOOR_IN_FLIGHT,
            &m,
            false,
        ));
        cx.live.case(&format!("yamux {size} B"));
        let m = yamux_peer::request_response(
            &cx.rt,
            cx.kind,
            size,
            FLOOR_IN_FLIGHT,
            cx.window,
            &cx.stop,
            &cx.live,
        )
        .await?;
        let yamux = cx.push(Row::of(
            "unary",
            format!("{size} B"),
            "yamux",
            FLOOR_IN_FLIGHT,
            &m,
            false,
        ));
        // Across every link at each concurrency; then at 256 over one link,
        // the row that stands beside the one-connection floors.
        for &c in &concurrencies {
            if cx.stopped() {
                break;
            }
            cx.live.case(&format!("gridmux {size} B ×{c}"));
            let (m, t) = echo(cx, &cluster, &pairs, size, c).await;
            let row = Row::of(
                "unary",
                format!("{size} B, across the links"),
                "gridmux",
                c,
                &m,
                false,
            )
            .ttfb(&t);
            cx.push(if c == 1 { row.versus(&ping_pong) } else { row });
        }
        if !cx.stopped() {
            cx.live
                .case(&format!("gridmux {size} B ×{FLOOR_IN_FLIGHT}, one link"));
            let one = &pairs[..1];
            let (m, t) = echo(cx, &cluster, one, size, FLOOR_IN_FLIGHT).await;
            let row = Row::of(
                "unary",
                format!("{size} B, one link"),
                "gridmux",
                FLOOR_IN_FLIGHT,
                &m,
                false,
            )
            .ttfb(&t)
            .versus(&pipelined)
            .versus(&yamux);
            cx.push(row);
        }
    }
    if !cx.stopped() {
        let c = 64;
        cx.live.case(&format!("gridmux typed ×{c}"));
        let mut before = None;
        let mut mark = || before = Some(ttfb(&cluster, |m| m.grid_ttfb(TYPED)));
        let m = closed_loop_marked(&cx.rt, c, cx.window, &cx.stop, &cx.live, &mut mark, |w| {
            let peer = pairs[w % pairs.len()].clone();
            let mut id = w as u64;
            move || {
                id += 1;
                let value = Typed::sample(id);
                let call = peer.call::<Typed, Typed>(TYPED, &value);
                async move {
                    let answer = call.await.map_err(|e| e.to_string())?;
                    if answer != value {
                        return Err("a typed answer differs from its request".into());
                    }
                    Ok(0)
                }
            }
        })
        .await;
        let t = since(ttfb(&cluster, |m| m.grid_ttfb(TYPED)), before);
        let row = Row::of("unary", "typed (MessagePack)", "gridmux", c, &m, false).ttfb(&t);
        cx.push(row);
    }
    cluster.shutdown().await;
    Ok(())
}

/// Echo requests of `size` bytes, `c` in flight, spread over `pairs`;
/// with the TTFB histogram of the counted window.
pub(crate) async fn echo(
    cx: &Ctx<'_>,
    cluster: &Cluster,
    pairs: &[Peer],
    size: usize,
    c: usize,
) -> (Measured, Snapshot) {
    let payload = Bytes::from(vec![0x5a; size]);
    let mut before = None;
    let mut mark = || before = Some(ttfb(cluster, |m| m.grid_ttfb(ECHO)));
    let m = closed_loop_marked(&cx.rt, c, cx.window, &cx.stop, &cx.live, &mut mark, |w| {
        let peer = pairs[w % pairs.len()].clone();
        let payload = payload.clone();
        move || {
            let request = peer.request(ECHO, payload.clone());
            let expected = payload.len();
            async move {
                let answer = request.await.map_err(|e| e.to_string())?;
                if answer.len() != expected {
                    return Err(format!("answer of {} bytes, not {expected}", answer.len()));
                }
                Ok(expected as u64)
            }
        }
    })
    .await;
    let t = since(ttfb(cluster, |m| m.grid_ttfb(ECHO)), before);
    (m, t)
}

/// `now` less `before` (taken when the window started; none: it never
/// started, and nothing counts).
pub(crate) fn since(now: Snapshot, before: Option<Snapshot>) -> Snapshot {
    match before {
        Some(b) => now.since(&b),
        None => Snapshot::empty(now.bounds),
    }
}

/// One histogram summed over every node of the cluster.
pub(crate) fn ttfb(cluster: &Cluster, of: impl Fn(&GridMetrics) -> Snapshot) -> Snapshot {
    let mut sum: Option<Snapshot> = None;
    for grid in &cluster.grids {
        let Some(metrics) = grid.metrics() else {
            continue;
        };
        let s = of(&metrics);
        sum = Some(match sum {
            None => s,
            Some(mut acc) => {
                for (a, b) in acc.counts.iter_mut().zip(&s.counts) {
                    *a += b;
                }
                acc.sum_seconds += s.sum_seconds;
                acc
            }
        });
    }
    sum.unwrap_or_else(|| Snapshot::empty(&gridmux::metrics::BUCKETS))
}
