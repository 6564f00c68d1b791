//! Streams: MinIO's `TestStreamSuite` twins and our extensions.

use std::time::Duration;

use bytes::Bytes;
use gridmux::{Error, GridBuilder, HandlerError};
use serde::{Deserialize, Serialize};

use crate::harness::{fast_reconnect, suite_and_tls, DropGuard, Env, Flag};
use crate::proxy::Proxy;

suite_and_tls!(
    stream_round_trip,
    stream_cancel_unbuffered,
    stream_cancel_buffered,
    stream_deadline,
    server_out_congestion,
    server_in_congestion,
    typed_stream_round_trip_subroute,
    server_stream_response_blocked,
    stream_ping_running,
    stream_without_local_registration,
    stream_handler_error,
    stream_without_pongs,
);

const ECHO: u8 = 10;
const ECHO_HANDLER: u8 = 11;
const OUT: u8 = 12;

/// MinIO `testStreamRoundtrip`: InCap 1, OutCap 1, echo prefixed with the
/// initial payload, one message in flight at a time.
async fn stream_round_trip(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.stream_handler(ECHO, 1, |_, first, mut rx, mut tx| async move {
                while let Some(m) = rx.recv().await.map_err(|e| e.to_string())? {
                    let answer = [&first[..], &m[..]].concat();
                    tx.send(answer).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .await;
    let (mut tx, mut rx) = c
        .peer(0, 1)
        .open_stream(ECHO, "pre-")
        .window(1)
        .await
        .unwrap();
    for n in 0..=10 {
        tx.send(n.to_string()).await.unwrap();
        let answer = rx.recv().await.unwrap().unwrap();
        assert_eq!(answer, format!("pre-{n}"));
    }
    tx.finish().unwrap();
    assert_eq!(rx.recv().await, Ok(None));
    c.shutdown().await;
}

/// A handler that waits until it is cancelled (dropped).
fn waiting_handler(b: GridBuilder, in_capacity: u32, dropped: &Flag) -> GridBuilder {
    waiting_handler_started(b, in_capacity, dropped, &Flag::default())
}

/// [`waiting_handler`], setting `started` when it is called.
fn waiting_handler_started(
    b: GridBuilder,
    in_capacity: u32,
    dropped: &Flag,
    started: &Flag,
) -> GridBuilder {
    let (dropped, started) = (dropped.clone(), started.clone());
    b.stream_handler(ECHO_HANDLER, in_capacity, move |ctx, _, rx, tx| {
        started.set();
        let guard = DropGuard(dropped.clone());
        async move {
            // Holds its input unread, so the caller's window fills.
            let _held = (guard, rx, tx);
            ctx.cancel_signal().cancelled().await;
            Ok(())
        }
    })
}

/// MinIO `testStreamCancel`: the caller drops the stream; the handler is
/// cancelled. (A stream dropped before its open was even written is never
/// opened at the server: the test waits for the handler to start.)
async fn stream_cancel(env: Env, in_capacity: u32, fill: bool) {
    let (dropped, started) = (Flag::default(), Flag::default());
    let c = env
        .cluster(2, |_, b| {
            waiting_handler_started(b, in_capacity, &dropped, &started)
        })
        .await;
    let (mut tx, rx) = c.peer(0, 1).open_stream(ECHO_HANDLER, "x").await.unwrap();
    env.within(Duration::from_secs(5), started.wait()).await;
    if fill {
        // Send until the window is full (the handler reads nothing).
        while env
            .maybe_within(Duration::from_millis(100), tx.send("m"))
            .await
            .is_some()
        {}
    }
    drop((tx, rx));
    env.within(Duration::from_secs(5), dropped.wait()).await;
    c.shutdown().await;
}

async fn stream_cancel_unbuffered(env: Env) {
    stream_cancel(env, 0, false).await;
}

async fn stream_cancel_buffered(env: Env) {
    stream_cancel(env.clone(), 1, false).await;
    stream_cancel(env, 1, true).await;
}

/// MinIO `testStreamDeadline`: the caller gets `Timeout`, the handler is
/// cancelled.
async fn stream_deadline(env: Env) {
    for in_capacity in [0, 1] {
        let dropped = Flag::default();
        let c = env
            .cluster(2, |_, b| waiting_handler(b, in_capacity, &dropped))
            .await;
        let (_tx, mut rx) = c
            .peer(0, 1)
            .open_stream(ECHO_HANDLER, "x")
            .timeout(Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(rx.recv().await, Err(Error::Timeout));
        env.within(Duration::from_secs(5), dropped.wait()).await;
        c.shutdown().await;
    }
}

/// Sends `n` one-byte messages (0, 1, …) and returns.
fn counting_handler(b: GridBuilder, n: u8) -> GridBuilder {
    b.stream_handler(OUT, 0, move |_, _, _, mut tx| async move {
        for i in 0..n {
            tx.send(vec![i]).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .handler(ECHO, |_, p| async move { Ok(p) })
}

/// MinIO `testServerOutCongestion`: a stream blocked on our consumer does
/// not block requests on the same link.
async fn server_out_congestion(env: Env) {
    let c = env.cluster(2, |_, b| counting_handler(b, 100)).await;
    let peer = c.peer(0, 1);
    let (_tx, mut rx) = peer
        .open_stream(OUT, "")
        .window(1)
        .no_input()
        .await
        .unwrap();
    for i in 0..100 {
        let payload = format!("request {i}");
        assert_eq!(peer.request(ECHO, payload.clone()).await.unwrap(), payload);
    }
    for i in 0..100u8 {
        assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from(vec![i]));
    }
    assert_eq!(rx.recv().await, Ok(None));
    c.shutdown().await;
}

/// MinIO `testServerInCongestion`: a handler that does not read yet does
/// not block requests; after it is released every message arrives in
/// order.
async fn server_in_congestion(env: Env) {
    let release = Flag::default();
    let c = env
        .cluster(2, |_, b| {
            let release = release.clone();
            b.handler(ECHO, |_, p| async move { Ok(p) }).stream_handler(
                ECHO_HANDLER,
                5,
                move |_, _, mut rx, mut tx| {
                    let release = release.clone();
                    async move {
                        release.wait().await;
                        while let Some(m) = rx.recv().await.map_err(|e| e.to_string())? {
                            tx.send(m).await.map_err(|e| e.to_string())?;
                        }
                        Ok(())
                    }
                },
            )
        })
        .await;
    let peer = c.peer(0, 1);
    let (mut tx, mut rx) = peer.open_stream(ECHO_HANDLER, "").window(5).await.unwrap();
    let pusher = env.spawn(async move {
        for i in 0..100u8 {
            tx.send(vec![i]).await.unwrap();
        }
        tx.finish().unwrap();
    });
    for i in 0..100 {
        let payload = format!("request {i}");
        assert_eq!(peer.request(ECHO, payload.clone()).await.unwrap(), payload);
    }
    release.set();
    for i in 0..100u8 {
        assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from(vec![i]));
    }
    assert_eq!(rx.recv().await, Ok(None));
    pusher.await;
    c.shutdown().await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    num: i64,
    text: String,
}

/// MinIO `testGenericsStreamRoundtrip(Subroute)`: typed messages on a
/// stream under a sub-route.
async fn typed_stream_round_trip_subroute(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.stream_handler_at(
                ECHO,
                Some("subroute/1"),
                1,
                |ctx, first, mut rx, mut tx| async move {
                    if ctx.subroute().is_none() {
                        return Err(HandlerError::new("no sub-route"));
                    }
                    let first: Item =
                        gridmux::codec::from_bytes(&first).map_err(|e| e.to_string())?;
                    while let Some(item) =
                        rx.recv_typed::<Item>().await.map_err(|e| e.to_string())?
                    {
                        let answer = Item {
                            num: item.num + first.num,
                            text: first.text.clone() + &item.text,
                        };
                        tx.send_typed(&answer).await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                },
            )
        })
        .await;
    let first = Item {
        num: 100,
        text: "pre-".into(),
    };
    let (mut tx, mut rx) = c
        .peer(1, 0)
        .open_stream(ECHO, gridmux::codec::to_bytes(&first).unwrap())
        .subroute("subroute/1")
        .await
        .unwrap();
    for i in 0..10 {
        let item = Item {
            num: i,
            text: i.to_string(),
        };
        tx.send_typed(&item).await.unwrap();
        let answer: Item = rx.recv_typed().await.unwrap().unwrap();
        assert_eq!(answer.num, 100 + i);
        assert_eq!(answer.text, format!("pre-{i}"));
    }
    tx.finish().unwrap();
    assert_eq!(rx.recv_typed::<Item>().await, Ok(None));
    c.shutdown().await;
}

/// MinIO `testServerStreamResponseBlocked`: our consumer stops reading,
/// the handler blocks on credit; cancelling then reaches the handler.
async fn server_stream_response_blocked(env: Env) {
    let dropped = Flag::default();
    let c = env
        .cluster(2, |_, b| {
            let dropped = dropped.clone();
            b.stream_handler(OUT, 0, move |_, _, _, mut tx| {
                let guard = DropGuard(dropped.clone());
                async move {
                    let _guard = guard;
                    for i in 0..100u8 {
                        tx.send(vec![i]).await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
            })
        })
        .await;
    let (tx, mut rx) = c
        .peer(0, 1)
        .open_stream(OUT, "")
        .window(1)
        .no_input()
        .await
        .unwrap();
    assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from(vec![0]));
    env.sleep(Duration::from_millis(100)).await; // the handler is blocked now
    assert!(!dropped.is_set());
    drop((tx, rx));
    env.within(Duration::from_secs(5), dropped.wait()).await;
    c.shutdown().await;
}

/// MinIO `testServerStreamPingRunning`: with fast stream pings, a stream
/// whose consumer blocks for many ping periods stays alive; after the
/// consumer resumes every message arrives.
async fn stream_ping_running(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            counting_handler(b, 20).configure(|c| {
                // Timeouts of 5 and 10 ping periods: room for a loaded
                // machine, and still far shorter than the blocked time.
                c.stream_ping_interval = Duration::from_millis(100);
                c.stream_ping_timeout = Duration::from_millis(500);
                c.stream_idle_timeout = Duration::from_millis(1000);
            })
        })
        .await;
    let (_tx, mut rx) = c
        .peer(0, 1)
        .open_stream(OUT, "")
        .window(1)
        .no_input()
        .await
        .unwrap();
    env.sleep(Duration::from_millis(1500)).await;
    for i in 0..20u8 {
        assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from(vec![i]));
    }
    assert_eq!(rx.recv().await, Ok(None));
    c.shutdown().await;
}

/// (ext) The caller needs no local registration: the window is announced
/// by the serving side.
async fn stream_without_local_registration(env: Env) {
    let c = env
        .cluster(2, |i, b| if i == 1 { counting_handler(b, 3) } else { b })
        .await;
    let (_tx, mut rx) = c.peer(0, 1).open_stream(OUT, "").await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = rx.recv().await.unwrap() {
        got.push(m[0]);
    }
    assert_eq!(got, [0, 1, 2]);
    c.shutdown().await;
}

/// A handler's error ends the stream with `Remote` after the messages it
/// sent; a panicking handler is reported, not fatal.
async fn stream_handler_error(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.stream_handler(OUT, 0, |_, _, _, mut tx| async move {
                tx.send("one").await.map_err(|e| e.to_string())?;
                Err(HandlerError::new("broken"))
            })
            .stream_handler(ECHO, 0, |_, _, _, _| async move {
                panic!("handler panics on purpose");
            })
        })
        .await;
    let peer = c.peer(0, 1);
    let (_tx, mut rx) = peer.open_stream(OUT, "").await.unwrap();
    assert_eq!(rx.recv().await.unwrap().unwrap(), "one");
    assert!(matches!(rx.recv().await, Err(Error::Remote { message, .. }) if message == "broken"));
    let (_tx, mut rx) = peer.open_stream(ECHO, "").await.unwrap();
    let err = rx.recv().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: gridmux::ErrorCode::HandlerPanicked,
                ..
            }
        ),
        "{err:?}"
    );
    c.shutdown().await;
}

/// MinIO `testServerStreamOnewayNoPing` / `TwowayNoPing`: nothing the
/// serving node sends reaches the caller any more (a proxy holds it), so
/// the caller's stream fails after its ping timeout, and its disconnect
/// still reaches the handler, which is cancelled.
async fn stream_without_pongs(env: Env) {
    for in_capacity in [0, 1] {
        let dropped = Flag::default();
        // Node 1 is named by the proxy's address and listens behind it;
        // node 0 must be the side that dials.
        let (l0, proxy_listener) = loop {
            let l0 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let p = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let (a, b) = (l0.local_addr().unwrap(), p.local_addr().unwrap());
            if gridmux_core::cluster::should_dial(&a.to_string(), &b.to_string()) {
                break (l0, p);
            }
        };
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let names = vec![
            l0.local_addr().unwrap().to_string(),
            proxy_listener.local_addr().unwrap().to_string(),
        ];
        let proxy = Proxy::start(proxy_listener, l1.local_addr().unwrap());
        let start = |listener: std::net::TcpListener, b: GridBuilder| {
            b.secret("e2e secret")
                .listener(listener)
                .reconnect(fast_reconnect())
                .configure(|c| {
                    c.stream_ping_interval = Duration::from_millis(100);
                    c.stream_ping_timeout = Duration::from_millis(400);
                })
                .start(env.rt.clone())
                .unwrap()
        };
        let caller = start(l0, gridmux::Grid::builder(names[0].clone(), names.clone()));
        let server = start(
            l1,
            waiting_handler(
                gridmux::Grid::builder(names[1].clone(), names.clone()),
                in_capacity,
                &dropped,
            ),
        );
        let peer = caller.peer(&names[1]).unwrap();
        peer.wait_connected(Duration::from_secs(5)).await.unwrap();
        let open = peer.open_stream(ECHO_HANDLER, "").window(1);
        let open = if in_capacity == 0 {
            open.no_input()
        } else {
            open
        };
        let (_tx, mut rx) = open.await.unwrap();
        env.sleep(Duration::from_millis(100)).await; // the ack is through
        proxy
            .freeze_back
            .store(true, std::sync::atomic::Ordering::Release);
        let failed = env.within(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(failed, Err(Error::Disconnected));
        env.within(Duration::from_secs(5), dropped.wait()).await;
        proxy
            .freeze_back
            .store(false, std::sync::atomic::Ordering::Release);
        caller.shutdown(Duration::from_secs(1)).await;
        server.shutdown(Duration::from_secs(1)).await;
    }
}
