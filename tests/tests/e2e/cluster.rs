//! Links and clusters: disconnects, the dialer rule, restarts, three nodes.

use std::future::IntoFuture;
use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use gridmux::{Error, Grid, GridBuilder, HandlerError};
use gridmux_core::cluster::should_dial;

use crate::harness::{fast_reconnect, suite_and_tls, DropGuard, Env, Flag};

suite_and_tls!(
    disconnect_mid_request_and_stream,
    dialer_rule,
    restarted_peer_reconnects,
    three_node_cluster,
);

const ECHO: u8 = 1;
const BLOCK: u8 = 2;
const WAIT_STREAM: u8 = 3;
const COUNT: u8 = 4;

fn handlers(b: GridBuilder, request_dropped: &Flag, stream_dropped: &Flag) -> GridBuilder {
    let (request_dropped, stream_dropped) = (request_dropped.clone(), stream_dropped.clone());
    b.handler(ECHO, |_, p| async move { Ok(p) })
        .handler(BLOCK, move |_, _| {
            let guard = DropGuard(request_dropped.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Result<Bytes, HandlerError>>().await
            }
        })
        .stream_handler(WAIT_STREAM, 1, move |ctx, _, rx, tx| {
            let guard = DropGuard(stream_dropped.clone());
            async move {
                let _held = (guard, rx, tx);
                ctx.cancel_signal().cancelled().await;
                Ok(())
            }
        })
}

/// MinIO `TestDisconnect`: killing the link ends a request and a stream in
/// flight with `Disconnected`, cancels their handlers, and the link comes
/// back.
async fn disconnect_mid_request_and_stream(env: Env) {
    let (request_dropped, stream_dropped) = (Flag::default(), Flag::default());
    let c = env
        .cluster(2, |_, b| handlers(b, &request_dropped, &stream_dropped))
        .await;
    let peer = c.peer(0, 1);
    let pending = env.spawn(peer.request(BLOCK, "x").into_future());
    env.sleep(Duration::from_millis(50)).await;
    peer.disconnect();
    assert_eq!(pending.await, Err(Error::Disconnected));
    env.within(Duration::from_secs(5), request_dropped.wait())
        .await;
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    assert_eq!(peer.request(ECHO, "back").await.unwrap(), "back");

    let (_tx, mut rx) = peer.open_stream(WAIT_STREAM, "").await.unwrap();
    env.sleep(Duration::from_millis(50)).await;
    c.peer(1, 0).disconnect(); // this time from the serving side
    assert_eq!(rx.recv().await, Err(Error::Disconnected));
    env.within(Duration::from_secs(5), stream_dropped.wait())
        .await;
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    assert_eq!(peer.request(ECHO, "again").await.unwrap(), "again");
    c.shutdown().await;
}

/// MinIO `TestShouldConnect` at the socket: of a pair, only the node the
/// rule names dials; the other only waits.
async fn dialer_rule(env: Env) {
    let listeners = [bind(), bind()];
    let names: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let dialer = usize::from(!should_dial(&names[0], &names[1]));
    let acceptor = 1 - dialer;
    let [l0, l1] = listeners;
    let (mut dialer_listener, mut acceptor_listener) = (Some(l0), Some(l1));
    if dialer == 1 {
        std::mem::swap(&mut dialer_listener, &mut acceptor_listener);
    }
    let start = |me: usize, listener: TcpListener| {
        Grid::builder(names[me].clone(), names.clone())
            .secret("e2e secret")
            .listener(listener)
            .reconnect(fast_reconnect())
            .start(env.rt.clone())
            .unwrap()
    };
    // The acceptor alone never knocks on the dialer's (raw) port.
    let raw = dialer_listener.take().unwrap();
    raw.set_nonblocking(true).unwrap();
    let grid = start(acceptor, acceptor_listener.take().unwrap());
    env.sleep(Duration::from_millis(500)).await;
    assert!(raw.accept().is_err(), "the acceptor dialed");
    grid.shutdown(Duration::from_secs(1)).await;
    // The dialer alone knocks on the acceptor's port with its upgrade.
    let raw_acceptor = rebind(&env, &names[acceptor]).await;
    raw_acceptor.set_nonblocking(true).unwrap();
    let grid = start(dialer, raw);
    let stream = env
        .within(Duration::from_secs(5), async {
            loop {
                if let Ok((s, _)) = raw_acceptor.accept() {
                    return s;
                }
                env.sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    let head = crate::hostile::read_head(stream);
    assert!(head.starts_with("GET /gridmux/v1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("X-Gridmux-Host: {}", names[dialer])),
        "{head}"
    );
    grid.shutdown(Duration::from_secs(1)).await;
}

fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Binds `name` again once its previous owner let go of it.
async fn rebind(env: &Env, name: &str) -> TcpListener {
    env.within(Duration::from_secs(5), async {
        loop {
            if let Ok(l) = TcpListener::bind(name) {
                return l;
            }
            env.sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// A node that restarts (a new process id) is linked again; calls made
/// while it was away failed fast.
async fn restarted_peer_reconnects(env: Env) {
    let c = env
        .cluster(2, |_, b| b.handler(ECHO, |_, p| async move { Ok(p) }))
        .await;
    let peer = c.peer(0, 1);
    c.grids[1].shutdown(Duration::from_secs(1)).await;
    env.within(Duration::from_secs(5), async {
        while peer.is_connected() {
            env.sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(peer.request(ECHO, "x").await, Err(Error::Disconnected));
    let listener = rebind(&env, &c.names[1]).await;
    let mut restarted = Grid::builder(c.names[1].clone(), c.names.clone())
        .secret("e2e secret")
        .listener(listener)
        .reconnect(fast_reconnect())
        .handler(ECHO, |_, p| async move { Ok(p) });
    if let Some(tls) = &env.tls {
        restarted = restarted.tls(tls.clone());
    }
    let restarted = restarted.start(env.rt.clone()).unwrap();
    peer.wait_connected(Duration::from_secs(10)).await.unwrap();
    assert_eq!(peer.request(ECHO, "again").await.unwrap(), "again");
    restarted.shutdown(Duration::from_secs(1)).await;
    c.shutdown().await;
}

/// Three nodes: every node calls every other, with requests and streams,
/// over the three links of the mesh.
async fn three_node_cluster(env: Env) {
    let c = env
        .cluster(3, |_, b| {
            b.handler(ECHO, |ctx, p| async move {
                Ok(Bytes::from(format!(
                    "{} says {}",
                    ctx.caller(),
                    String::from_utf8_lossy(&p)
                )))
            })
            .stream_handler(COUNT, 0, |_, first, _, mut tx| async move {
                for i in 0..first[0] {
                    tx.send(vec![i]).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .await;
    for grid in &c.grids {
        assert_eq!(grid.connected_peers().len(), 2);
    }
    for from in 0..3 {
        for to in (0..3).filter(|t| *t != from) {
            let peer = c.peer(from, to);
            let answer = peer.request(ECHO, "hi").await.unwrap();
            assert_eq!(answer, format!("{} says hi", c.names[from]));
            let (_tx, mut rx) = peer.open_stream(COUNT, vec![5]).no_input().await.unwrap();
            let mut got = Vec::new();
            while let Some(m) = rx.recv().await.unwrap() {
                got.push(m[0]);
            }
            assert_eq!(got, [0, 1, 2, 3, 4]);
        }
    }
    c.shutdown().await;
}
