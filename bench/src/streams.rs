//! Streams on one link: one-way (the caller sends, a sink counts) and
//! two-way (the handler echoes every message back), with 512 B and 64 KiB
//! messages, beside raw TCP bulk on one connection. Few streams are
//! opened, so there are no TTFB quantiles here, and no latency columns: a
//! stream operation is a hand-over to or from a buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::lock::Mutex;
use gridmux::CancelSignal;

use crate::builtin::{COUNT, SINK};
use crate::cluster::Cluster;
use crate::measure::closed_loop;
use crate::raw_tcp;
use crate::report::Row;
use crate::Ctx;

/// Message sizes of a run.
fn sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![64 * 1024]
    } else {
        vec![512, 64 * 1024]
    }
}

/// Rows this workload makes.
pub(crate) fn planned(quick: bool) -> usize {
    1 + 2 * sizes(quick).len()
}

/// A row without latency columns.
fn no_latency(mut row: Row) -> Row {
    row.p50_us = None;
    row.p99_us = None;
    row.p999_us = None;
    row
}

pub(crate) async fn run(cx: &mut Ctx<'_>) -> Result<(), String> {
    cx.live.case("raw TCP bulk");
    let m = raw_tcp::bulk(&cx.rt, 64 * 1024, cx.window, &cx.stop, &cx.live).await?;
    let bulk = cx.push(Row::of(
        "stream",
        "64 KiB writes",
        "raw TCP bulk",
        1,
        &m,
        true,
    ));
    let cluster = Cluster::linked(&cx.rt, 2, &cx.stop, |_, b| b).await?;
    let result = measure_streams(cx, &cluster, &bulk).await;
    cluster.shutdown().await;
    result
}

async fn measure_streams(cx: &mut Ctx<'_>, cluster: &Cluster, bulk: &Row) -> Result<(), String> {
    let peer = cluster.peer(0, 1)?;
    for size in sizes(cx.quick) {
        if cx.stopped() {
            break;
        }
        let label = if size >= 1024 {
            format!("{} KiB", size / 1024)
        } else {
            format!("{size} B")
        };
        let message = Bytes::from(vec![0x5a; size]);

        // One-way: each operation is one message handed to the stream
        // (flow control holds the sender to the sink's pace).
        cx.live.case(&format!("one-way {label}"));
        let mut row = one_way(cx, &peer, &message, format!("one-way {label}"), "gridmux").await?;
        if size >= 64 * 1024 {
            row = row.versus(bulk);
        }
        cx.push(row);
        if cx.stopped() {
            break;
        }

        // Two-way: a sender keeps the stream full; each operation is one
        // echoed message received.
        cx.live.case(&format!("two-way {label}"));
        let count = gridmux::codec::to_bytes(&0u32).map_err(|e| e.to_string())?;
        let (mut tx, rx) = peer
            .open_stream(COUNT, count)
            .await
            .map_err(|e| e.to_string())?;
        let sending = CancelSignal::new();
        {
            let (message, sending) = (message.clone(), sending.clone());
            cx.rt.spawn(Box::pin(async move {
                let send = async { while tx.send(message.clone()).await.is_ok() {} };
                sending.run(send).await;
                let _ = tx.finish();
            }));
        }
        let rx = Arc::new(Mutex::new(rx));
        let m = closed_loop(&cx.rt, 1, cx.window, &cx.stop, &cx.live, |_| {
            let rx = rx.clone();
            move || {
                let rx = rx.clone();
                async move {
                    match rx.lock().await.recv().await {
                        Ok(Some(message)) => Ok(message.len() as u64),
                        Ok(None) => Err("the echo stream ended".into()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
        })
        .await;
        sending.cancel();
        let case = format!("two-way {label} (MiB/s each way)");
        cx.push(no_latency(Row::of("stream", case, "gridmux", 1, &m, true)));
    }
    Ok(())
}

/// One stream into a sink: each operation is one message handed to the
/// stream (flow control holds the sender to the sink's pace); the row
/// counts an error if the sink did not take every byte sent.
pub(crate) async fn one_way(
    cx: &Ctx<'_>,
    peer: &gridmux::Peer,
    message: &Bytes,
    case: String,
    system: &str,
) -> Result<Row, String> {
    let (tx, mut rx) = peer
        .open_stream(SINK, Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    // Taken out at the end to finish it: the workers' tasks (and their
    // clones of this) may outlive the measurement for a moment.
    let tx = Arc::new(Mutex::new(Some(tx)));
    // Everything sent, warm-up included: what the sink must count.
    let sent = Arc::new(AtomicU64::new(0));
    let m = closed_loop(&cx.rt, 1, cx.window, &cx.stop, &cx.live, |_| {
        let (tx, message, sent) = (tx.clone(), message.clone(), sent.clone());
        move || {
            let (tx, message, sent) = (tx.clone(), message.clone(), sent.clone());
            async move {
                let len = message.len() as u64;
                let mut tx = tx.lock().await;
                let tx = tx.as_mut().ok_or("the stream was finished")?;
                tx.send(message).await.map_err(|e| e.to_string())?;
                sent.fetch_add(len, Ordering::Relaxed);
                Ok(len)
            }
        }
    })
    .await;
    let Some(tx) = tx.lock().await.take() else {
        return Err("the stream sender is gone".into());
    };
    tx.finish().map_err(|e| e.to_string())?;
    let taken: u64 = rx
        .recv_typed()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the sink ended without its count")?;
    let sent = sent.load(Ordering::Relaxed);
    let mut row = no_latency(Row::of("stream", case, system, 1, &m, true));
    if taken != sent {
        row.errors += 1;
        row.first_error = Some(format!("the sink took {taken} bytes of {sent} sent"));
    }
    Ok(row)
}
