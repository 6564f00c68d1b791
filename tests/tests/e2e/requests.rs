//! Single requests: round trips, errors, typed handlers, sub-routes,
//! deadlines, cancellation, overload and fail-fast.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gridmux::{Error, ErrorCode, GridBuilder, HandlerError};
use serde::{Deserialize, Serialize};

use crate::harness::{suite_and_tls, DropGuard, Env, Flag};

suite_and_tls!(
    single_round_trip,
    single_round_trip_not_ready,
    typed_round_trip,
    subroutes,
    deadline_reaches_handler,
    dropped_request_cancels_handler,
    overloaded,
    fail_fast_while_disconnected,
    unknown_peer,
    panicking_handlers,
    message_size_limit,
    a_caller_told_disconnected_finds_the_link_gone,
);

const ECHO: u8 = 78;
const FAIL: u8 = 79;
const BLOCK: u8 = 80;

/// Echo, error-with-payload and a handler that never answers.
fn handlers(b: GridBuilder, dropped: &Flag) -> GridBuilder {
    let dropped = dropped.clone();
    b.handler(ECHO, |_, p| async move { Ok(p) })
        .handler(FAIL, |_, p: Bytes| async move {
            Err(HandlerError::new(String::from_utf8_lossy(&p)))
        })
        .handler(BLOCK, move |_, _| {
            let guard = DropGuard(dropped.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Result<Bytes, HandlerError>>().await
            }
        })
}

/// MinIO `TestSingleRoundtrip`.
async fn single_round_trip(env: Env) {
    let flag = Flag::default();
    let c = env.cluster(2, |_, b| handlers(b, &flag)).await;
    let peer = c.peer(0, 1);
    let answer = peer.request(ECHO, "Hello Grid World!").await.unwrap();
    assert_eq!(answer, "Hello Grid World!");

    let err = peer.request(FAIL, "Hello Grid World!").await.unwrap_err();
    assert_eq!(
        err,
        Error::Remote {
            code: ErrorCode::Application,
            message: "Hello Grid World!".into()
        }
    );

    let huge = Bytes::from(vec![b'?'; 1 << 20]);
    assert_eq!(peer.request(ECHO, huge.clone()).await.unwrap(), huge);

    let text = "!".repeat(1024);
    let err = peer.request(FAIL, text.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Remote { message, .. } if message == text));
    c.shutdown().await;
}

/// MinIO `TestSingleRoundtripNotReady`: the remote registered nothing.
async fn single_round_trip_not_ready(env: Env) {
    let c = env.cluster(2, |_, b| b).await;
    let peer = c.peer(0, 1);
    assert_eq!(peer.request(ECHO, "x").await, Err(Error::UnknownHandler));
    let (_tx, mut rx) = peer.open_stream(ECHO, "x").await.unwrap();
    assert_eq!(rx.recv().await, Err(Error::UnknownHandler));
    c.shutdown().await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TestRequest {
    num: i64,
    string: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TestResponse {
    org_num: i64,
    org_string: String,
    embedded: TestRequest,
}

/// MinIO `TestSingleRoundtripGenerics`.
async fn typed_round_trip(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.typed_handler(ECHO, |_, req: TestRequest| async move {
                Ok(TestResponse {
                    org_num: req.num,
                    org_string: req.string.clone(),
                    embedded: req,
                })
            })
            .typed_handler(FAIL, |_, req: TestRequest| async move {
                Err::<TestResponse, _>(HandlerError::new(req.string))
            })
        })
        .await;
    let peer = c.peer(0, 1);
    let req = TestRequest {
        num: 1,
        string: "Hello Grid World!".into(),
    };
    let resp: TestResponse = peer.call(ECHO, &req).await.unwrap();
    assert_eq!(resp.org_num, 1);
    assert_eq!(resp.org_string, req.string);
    assert_eq!(resp.embedded, req);

    let err = peer.call::<TestResponse, _>(FAIL, &req).await.unwrap_err();
    assert!(matches!(err, Error::Remote { message, .. } if message == req.string));

    // An answer of the wrong shape is a codec error, not a wrong answer.
    let err = peer.call::<String, _>(ECHO, &req).await.unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    c.shutdown().await;
}

/// Handlers under static sub-routes are distinct from the bare id.
async fn subroutes(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.handler_at(ECHO, Some("subroute/1"), |ctx, p| async move {
                assert!(ctx.subroute().is_some());
                Ok(Bytes::from([&b"1:"[..], &p].concat()))
            })
            .handler_at(ECHO, Some("subroute/2"), |_, p| async move {
                Ok(Bytes::from([&b"2:"[..], &p].concat()))
            })
        })
        .await;
    let peer = c.peer(1, 0);
    let one = peer.request(ECHO, "x").subroute("subroute/1").await;
    assert_eq!(one.unwrap(), "1:x");
    let two = peer.request(ECHO, "x").subroute("subroute/2").await;
    assert_eq!(two.unwrap(), "2:x");
    assert_eq!(peer.request(ECHO, "x").await, Err(Error::UnknownHandler));
    c.shutdown().await;
}

/// The deadline travels: the caller gets `Timeout`, the handler is
/// cancelled at its side.
async fn deadline_reaches_handler(env: Env) {
    let dropped = Flag::default();
    let c = env.cluster(2, |_, b| handlers(b, &dropped)).await;
    let peer = c.peer(0, 1);
    let err = peer
        .request(BLOCK, "x")
        .timeout(Duration::from_millis(100))
        .await;
    assert_eq!(err, Err(Error::Timeout));
    env.within(Duration::from_secs(5), dropped.wait()).await;
    c.shutdown().await;
}

/// (ext) Dropping the request future cancels the remote handler.
async fn dropped_request_cancels_handler(env: Env) {
    let dropped = Flag::default();
    let c = env.cluster(2, |_, b| handlers(b, &dropped)).await;
    let peer = c.peer(1, 0);
    let gone = env
        .maybe_within(
            Duration::from_millis(200),
            peer.request(BLOCK, "x").into_future(),
        )
        .await;
    assert!(gone.is_none(), "the handler never answers");
    env.within(Duration::from_secs(5), dropped.wait()).await;
    // The link is fine afterwards.
    assert_eq!(peer.request(ECHO, "y").await.unwrap(), "y");
    c.shutdown().await;
}

/// (ext) Past `max_served_requests` callers get `Overloaded` at once.
async fn overloaded(env: Env) {
    let started = Arc::new(AtomicUsize::new(0));
    let release = Flag::default();
    let c = env
        .cluster(2, |_, b| {
            let (started, release) = (started.clone(), release.clone());
            b.configure(|c| c.max_served_requests = 2)
                .handler(BLOCK, move |_, p| {
                    started.fetch_add(1, Ordering::SeqCst);
                    let release = release.clone();
                    async move {
                        release.wait().await;
                        Ok(p)
                    }
                })
        })
        .await;
    let peer = c.peer(0, 1);
    let first = env.spawn(peer.request(BLOCK, "1").into_future());
    let second = env.spawn(peer.request(BLOCK, "2").into_future());
    env.within(Duration::from_secs(5), async {
        while started.load(Ordering::SeqCst) < 2 {
            env.sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(peer.request(BLOCK, "3").await, Err(Error::Overloaded));
    release.set();
    assert_eq!(first.await.unwrap(), "1");
    assert_eq!(second.await.unwrap(), "2");
    c.shutdown().await;
}

/// MinIO's connection state: calls fail at once while a peer is down;
/// `wait_connected` is the opt-in wait.
async fn fail_fast_while_disconnected(env: Env) {
    let c = env
        .cluster(2, |_, b| b.handler(ECHO, |_, p| async move { Ok(p) }))
        .await;
    c.grids[1].shutdown(Duration::from_secs(1)).await;
    let peer = c.peer(0, 1);
    env.within(Duration::from_secs(5), async {
        while peer.is_connected() {
            env.sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let err = env
        .within(
            Duration::from_millis(500),
            peer.request(ECHO, "x").into_future(),
        )
        .await;
    assert_eq!(err, Err(Error::Disconnected));
    let wait = peer.wait_connected(Duration::from_millis(200)).await;
    assert_eq!(wait, Err(Error::Timeout));
    c.shutdown().await;
}

/// Names outside the cluster are refused.
async fn unknown_peer(env: Env) {
    let c = env.cluster(2, |_, b| b).await;
    let err = c.grids[0].peer("127.0.0.1:1").unwrap_err();
    assert_eq!(err, Error::UnknownPeer("127.0.0.1:1".into()));
    assert!(c.grids[0].peer(&c.names[0]).is_err(), "not ourselves");
    c.shutdown().await;
}

/// A handler that panics — while being called or while running — is
/// answered `HandlerPanicked`; the link and the node go on.
async fn panicking_handlers(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.handler(ECHO, |_, p| async move { Ok(p) })
                .handler(
                    FAIL,
                    |_, _| -> std::future::Ready<Result<Bytes, HandlerError>> {
                        panic!("handler panics when called, on purpose")
                    },
                )
                .handler(BLOCK, |_, _| async move {
                    panic!("handler panics while running, on purpose")
                })
        })
        .await;
    let peer = c.peer(0, 1);
    for id in [FAIL, BLOCK] {
        let err = peer.request(id, "x").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Remote {
                    code: ErrorCode::HandlerPanicked,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(peer.request(ECHO, "still").await.unwrap(), "still");
    c.shutdown().await;
}

/// Payloads over `max_message_size` are refused before sending; an answer
/// over it becomes an error answer.
async fn message_size_limit(env: Env) {
    let c = env
        .cluster(2, |i, b| {
            let b = b.configure(|c| c.max_message_size = 64 * 1024);
            if i == 1 {
                b.handler(ECHO, |_, p: Bytes| async move {
                    Ok(Bytes::from(vec![0; p.len() * 2]))
                })
            } else {
                b
            }
        })
        .await;
    let peer = c.peer(0, 1);
    let err = peer
        .request(ECHO, vec![0u8; 64 * 1024 + 1])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::TooLarge {
            size: 64 * 1024 + 1,
            max: 64 * 1024
        }
    );
    let err = peer.request(ECHO, vec![0u8; 40 * 1024]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::Application,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(peer.request(ECHO, "ok").await.unwrap().len(), 4);
    c.shutdown().await;
}

/// A caller whose request ended with `Disconnected` does not find the dead
/// link still in the peer table (it left the table before any caller was
/// woken): `is_connected` is false, and `wait_connected` waits for the
/// next link instead of failing at once.
async fn a_caller_told_disconnected_finds_the_link_gone(env: Env) {
    let flag = Flag::default();
    let mut stale = 0;
    for _round in 0..5 {
        let c = env.cluster(2, |_, b| handlers(b, &flag)).await;
        let peer = c.peer(0, 1);
        let mut calls = Vec::new();
        for _ in 0..64 {
            let p = peer.clone();
            calls.push(env.spawn(async move {
                let r = p.request(BLOCK, "x").await;
                (r, p.is_connected())
            }));
        }
        env.sleep(Duration::from_millis(100)).await;
        c.grids[1].shutdown(Duration::from_secs(1)).await;
        for call in calls {
            let (r, connected) = env.within(Duration::from_secs(5), call).await;
            assert_eq!(r, Err(Error::Disconnected));
            if connected {
                stale += 1;
            }
        }
        c.shutdown().await;
    }
    assert_eq!(
        stale, 0,
        "callers that saw the dead link still in the peer table"
    );
}
