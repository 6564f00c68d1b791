//! Streams on one link: one-way (the caller sends, a sink counts) and
//! two-way (the handler echoes every message back), with 512 B and 64 KiB
//! messages, beside raw TCP bulk on one connection.

use bytes::Bytes;
use gridmux::CancelSignal;

use crate::builtin::{COUNT, SINK};
use crate::cluster::Cluster;
use crate::measure::closed_loop;
use crate::raw_tcp;
use crate::report::Row;
use crate::unary::ttfb;
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
    let cluster = Cluster::linked(&cx.rt, 2, |_, b| b).await?;
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
        // One-way: each operation is one message handed to the stream
        // (flow control holds the sender to the sink's pace).
        cx.live.case(&format!("one-way {label}"));
        let (tx, mut rx) = peer
            .open_stream(SINK, Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        let tx = std::sync::Arc::new(futures::lock::Mutex::new(tx));
        let message = Bytes::from(vec![0x5a; size]);
        let m = closed_loop(&cx.rt, 1, cx.window, &cx.stop, &cx.live, |_| {
            let (tx, message) = (tx.clone(), message.clone());
            move || {
                let (tx, message) = (tx.clone(), message.clone());
                async move {
                    let len = message.len() as u64;
                    tx.lock()
                        .await
                        .send(message)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(len)
                }
            }
        })
        .await;
        let Ok(tx) = std::sync::Arc::try_unwrap(tx) else {
            return Err("the stream sender is still shared".into());
        };
        tx.into_inner().finish().map_err(|e| e.to_string())?;
        let taken: u64 = rx
            .recv_typed()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the sink ended without its count")?;
        let mut row = Row::of("stream", format!("one-way {label}"), "gridmux", 1, &m, true);
        if taken < m.bytes {
            row.errors += 1;
            row.first_error = Some(format!("the sink took {taken} bytes of {}", m.bytes));
        }
        if size >= 64 * 1024 {
            row = row.versus(&bulk);
        }
        cx.push(row);

        // Two-way: a sender keeps the stream full; each operation is one
        // echoed message received.
        cx.live.case(&format!("two-way {label}"));
        let before = ttfb(&cluster, |m| m.stream_ttfb(COUNT));
        let (mut tx, rx) = peer
            .open_stream(
                COUNT,
                gridmux::codec::to_bytes(&0u32).map_err(|e| e.to_string())?,
            )
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
        let rx = std::sync::Arc::new(futures::lock::Mutex::new(rx));
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
        // A stream's TTFB is recorded when it ends.
        drop(rx);
        let row = Row::of("stream", format!("two-way {label}"), "gridmux", 1, &m, true);
        let mut t = ttfb(&cluster, |m| m.stream_ttfb(COUNT)).since(&before);
        for _ in 0..40 {
            if t.count() > 0 {
                break;
            }
            let pause = std::time::Instant::now() + std::time::Duration::from_millis(25);
            gridmux::runtime::sleep_until(&*cx.rt, pause).await;
            t = ttfb(&cluster, |m| m.stream_ttfb(COUNT)).since(&before);
        }
        cx.push(row.ttfb(t.quantile(0.5), t.quantile(0.99)));
    }
    cluster.shutdown().await;
    Ok(())
}
