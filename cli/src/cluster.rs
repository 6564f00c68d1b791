//! `gridmux cluster`: several nodes in one process on loopback, talking
//! to each other for a while.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gridmux::runtime::Runtime;
use gridmux::{CancelSignal, Grid, Peer};

use crate::{builtin, rt, RuntimeKind};

/// What one caller achieved with one peer.
#[derive(Debug, Default)]
struct Tally {
    requests: AtomicU64,
    streams: AtomicU64,
    stream_messages: AtomicU64,
    errors: AtomicU64,
}

pub(crate) fn run(nodes: usize, duration: Duration, runtime: RuntimeKind) -> Result<(), String> {
    if nodes < 2 {
        return Err("a cluster needs at least 2 nodes".into());
    }
    let listeners = (0..nodes)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("listen: {e}"))?;
    let names: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let stop = rt::interrupt()?;
    rt::block_on(runtime, |rt| async move {
        // From the first node's start until every pair is linked.
        let started = Instant::now();
        let mut grids = Vec::new();
        for (name, listener) in names.iter().zip(listeners) {
            let grid = builtin::register(Grid::builder(name.clone(), names.clone()))
                .secret("gridmux cluster demo")
                .listener(listener)
                .start(rt.clone())
                .map_err(|e| e.to_string())?;
            grids.push(grid);
        }
        for grid in &grids {
            grid.wait_all_connected(Duration::from_secs(10))
                .await
                .map_err(|e| format!("{} did not connect: {e}", grid.local()))?;
        }
        println!(
            "{nodes} nodes on {runtime:?} connected in {:?}; talking for {duration:?}",
            started.elapsed()
        );
        let done = CancelSignal::new();
        let mut tallies = Vec::new();
        let mut workers = Vec::new();
        for (from, grid) in grids.iter().enumerate() {
            for (to, name) in names.iter().enumerate().filter(|(to, _)| *to != from) {
                let tally = Arc::new(Tally::default());
                tallies.push((from, to, tally.clone()));
                let peer = grid.peer(name).map_err(|e| e.to_string())?;
                let finished = CancelSignal::new();
                workers.push(finished.clone());
                let done = done.clone();
                rt.spawn(Box::pin(async move {
                    done.run(talk(peer, &tally)).await;
                    finished.cancel();
                }));
            }
        }
        futures_lite::future::or(rt::sleep(&*rt, duration), stop.cancelled()).await;
        done.cancel();
        for worker in &workers {
            worker.cancelled().await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{:<24} {:<24} {:>10} {:>8} {:>10} {:>7}",
            "from", "to", "requests", "streams", "messages", "errors"
        );
        for (from, to, t) in &tallies {
            println!(
                "{:<24} {:<24} {:>10} {:>8} {:>10} {:>7}",
                names[*from],
                names[*to],
                t.requests.load(Ordering::Relaxed),
                t.streams.load(Ordering::Relaxed),
                t.stream_messages.load(Ordering::Relaxed),
                t.errors.load(Ordering::Relaxed),
            );
        }
        let total: u64 = tallies
            .iter()
            .map(|(_, _, t)| t.requests.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = tallies
            .iter()
            .map(|(_, _, t)| t.errors.load(Ordering::Relaxed))
            .sum();
        println!(
            "{total} requests answered ({:.0}/s), {errors} errors",
            total as f64 / elapsed
        );
        for grid in &grids {
            grid.shutdown(Duration::from_secs(2)).await;
        }
        if errors > 0 {
            return Err(format!("{errors} exchanges failed"));
        }
        Ok(())
    })
}

/// Calls `peer` in a loop: an echo, a checksum, a counting stream.
async fn talk(peer: Peer, tally: &Tally) {
    let payload = Bytes::from(vec![7u8; 64]);
    let expected = xxhash_rust::xxh3::xxh3_64(&payload);
    loop {
        let echo = peer.request(builtin::ECHO, payload.clone()).await;
        let sum = peer.request(builtin::CHECKSUM, payload.clone()).await;
        let sum = sum.and_then(|s| gridmux::codec::from_bytes::<u64>(&s));
        let ok = echo.as_ref() == Ok(&payload) && sum == Ok(expected);
        count(&tally.requests, &tally.errors, ok, 2);
        match stream_once(&peer).await {
            Ok(n) => {
                tally.streams.fetch_add(1, Ordering::Relaxed);
                tally.stream_messages.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn count(ok_counter: &AtomicU64, errors: &AtomicU64, ok: bool, n: u64) {
    if ok {
        ok_counter.fetch_add(n, Ordering::Relaxed);
    } else {
        errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// One counting stream of 10 messages, checked.
async fn stream_once(peer: &Peer) -> Result<u64, String> {
    let first = gridmux::codec::to_bytes(&10u32).map_err(|e| e.to_string())?;
    let (tx, mut rx) = peer
        .open_stream(builtin::COUNT, first)
        .await
        .map_err(|e| e.to_string())?;
    tx.finish().map_err(|e| e.to_string())?;
    let mut n = 0u32;
    while let Some(i) = rx.recv_typed::<u32>().await.map_err(|e| e.to_string())? {
        if i != n {
            return Err(format!("expected {n}, got {i}"));
        }
        n += 1;
    }
    if n != 10 {
        return Err(format!("stream ended after {n} messages"));
    }
    Ok(u64::from(n))
}
