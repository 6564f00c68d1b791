//! Interoperability with a third-party WebSocket implementation
//! (tungstenite): our client (`gridmux::WebSocket`) against its server, its
//! client against our server, and its client against a node's
//! authenticated grid upgrade.

use std::future::poll_fn;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use gridmux::runtime::{Runtime, TokioRuntime};
use gridmux::tls::ClientAuth;
use gridmux::WebSocket;
use gridmux_bench::pki::ThrowawayCa;
use gridmux_core::auth::link::{upgrade_filter, Membership};
use gridmux_core::auth::{hex, Keyring};
use gridmux_core::ws::{ClientRequest, CloseCause, CloseCode, Event, Message};
use gridmux_tests::harness::harness_config;
use gridmux_tests::peer_tls::peer_tls;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Messages both sides exchange: text, binary, empty, and one large
/// enough to need the 64-bit length form.
fn messages() -> Vec<Message> {
    vec![
        Message::text("hello"),
        Message::binary(Bytes::from_static(b"\x00\x01\x02")),
        Message::binary(Bytes::new()),
        Message::text("ü".repeat(1000)),
        Message::binary(Bytes::from(vec![7; 200_000])),
    ]
}

/// Our client's side against an echo server: every message comes back
/// as sent, then a clean close.
async fn expect_echoes_then_close(ws: &WebSocket) {
    assert!(matches!(ws.recv().await, Some(Event::Open(_))));
    for m in messages() {
        ws.send(m).unwrap();
    }
    let mut echoed = Vec::new();
    while echoed.len() < messages().len() {
        match ws.recv().await.unwrap() {
            Event::Message(m) => echoed.push(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, messages());
    ws.close(CloseCode::NORMAL, "done").unwrap();
    let Some(Event::Closed(cause)) = ws.recv().await else {
        panic!("no close")
    };
    assert!(matches!(cause, CloseCause::Clean { .. }), "{cause:?}");
}

#[test]
fn our_client_against_tungstenite_server() {
    let rt = tokio_rt();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    ws.send(msg).await.unwrap();
                }
            }
        });
        let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
        let request = ClientRequest::new(addr.to_string(), "/");
        let ws = WebSocket::connect(runtime, addr, &request, harness_config())
            .await
            .unwrap();
        expect_echoes_then_close(&ws).await;
    });
}

#[test]
fn tungstenite_client_against_our_server() {
    let rt = tokio_rt();
    rt.block_on(async {
        let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = runtime.adopt_listener(std_listener).unwrap();
        let server = {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let socket = poll_fn(|cx| listener.poll_accept(cx)).await.unwrap();
                echo_until_closed(WebSocket::accept(runtime, socket, harness_config())).await
            })
        };
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
            .await
            .unwrap();
        let sent = vec![
            tungstenite::Message::text("hello"),
            tungstenite::Message::binary(vec![1u8, 2, 3]),
            tungstenite::Message::text("ü".repeat(1000)),
            tungstenite::Message::binary(vec![9u8; 200_000]),
        ];
        for m in &sent {
            ws.send(m.clone()).await.unwrap();
        }
        ws.send(tungstenite::Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut pong = false;
        while got.len() < sent.len() || !pong {
            match ws.next().await.unwrap().unwrap() {
                tungstenite::Message::Pong(p) => {
                    assert_eq!(&p[..], b"p");
                    pong = true;
                }
                m => got.push(m),
            }
        }
        assert_eq!(got, sent);
        close_cleanly(ws, server).await;
    });
}

/// tungstenite accepts a node's answer to an authenticated upgrade (the
/// `Sec-WebSocket-Accept` and headers are right); a peer that then sends
/// no grid `Connect` gets a Close frame.
#[test]
fn tungstenite_client_against_a_node() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listeners = [
            TcpListener::bind("127.0.0.1:0").unwrap(),
            TcpListener::bind("127.0.0.1:0").unwrap(),
        ];
        let names: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        let [l0, _l1] = listeners;
        let grid = gridmux::Grid::builder(names[0].clone(), names.clone())
            .secret("interop")
            .listener(l0)
            .configure(|c| c.handshake_timeout = Duration::from_millis(500))
            .start(TokioRuntime::current())
            .unwrap();
        let now = SystemTime::now();
        let nanos = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut request = format!("ws://{}/gridmux/v1", names[0])
            .into_client_request()
            .unwrap();
        let ws_key = request.headers()["sec-websocket-key"].as_bytes().to_vec();
        let keys = Keyring::new(["interop"]).unwrap();
        let filter = upgrade_filter(
            &keys,
            Membership::Member,
            &names[1],
            &names[0],
            nanos as u64,
            &ws_key,
        );
        let token = hex(&filter);
        let headers = request.headers_mut();
        headers.insert("Authorization", format!("Bearer {token}").parse().unwrap());
        headers.insert("X-Gridmux-Host", names[1].parse().unwrap());
        headers.insert("X-Gridmux-Time", nanos.to_string().parse().unwrap());
        let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.status(), 101);
        // The filter passed: the node answers with its set-up nonce, and
        // waits for a Connect proven over it.
        assert_eq!(response.headers()["x-gridmux-nonce"].len(), 64);
        ws.send(tungstenite::Message::binary(vec![0xc1u8; 8]))
            .await
            .unwrap();
        let mut closed = false;
        while let Some(Ok(m)) = ws.next().await {
            if let tungstenite::Message::Close(frame) = m {
                let frame = frame.expect("a close code");
                assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
                assert_eq!(frame.reason.as_str(), "unauthorized", "one generic reason");
                closed = true;
            }
        }
        assert!(closed, "the node sent a Close frame");
        grid.shutdown(Duration::from_secs(1)).await;
    });
}

/// Closes tungstenite's side, reads it to its end, and checks that our
/// server saw a clean close.
async fn close_cleanly<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    server: tokio::task::JoinHandle<Option<CloseCause>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let cause = server.await.unwrap().expect("closed");
    assert!(matches!(cause, CloseCause::Clean { .. }), "{cause:?}");
}

/// Echoes every data message on `ws` until it closes; the close cause.
async fn echo_until_closed(ws: WebSocket) -> Option<CloseCause> {
    let mut last = None;
    while let Some(event) = ws.recv().await {
        match event {
            Event::Message(m) => ws.send(m).unwrap(),
            Event::Closed(cause) => last = Some(cause),
            _ => {}
        }
    }
    last
}

#[test]
fn tungstenite_over_rustls_against_our_wss_server() {
    let rt = tokio_rt();
    rt.block_on(async {
        let ca = ThrowawayCa::new("interop CA");
        let ours = ca.loopback(ClientAuth::None);
        let (_, client_config) = peer_tls(&ca);
        let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = runtime.adopt_listener(std_listener).unwrap();
        let server = {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let socket = poll_fn(|cx| listener.poll_accept(cx)).await.unwrap();
                let socket = gridmux::tls::accept_socket(socket, &ours).await.unwrap();
                echo_until_closed(WebSocket::accept(runtime, socket, harness_config())).await
            })
        };
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client_config)
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}/echo"), tls)
            .await
            .unwrap();
        let sent = vec![
            tungstenite::Message::text("hello over TLS"),
            tungstenite::Message::binary(vec![9u8; 200_000]),
        ];
        for m in &sent {
            ws.send(m.clone()).await.unwrap();
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            got.push(ws.next().await.unwrap().unwrap());
        }
        assert_eq!(got, sent);
        close_cleanly(ws, server).await;
    });
}

#[test]
fn our_wss_client_against_tungstenite_over_rustls() {
    let rt = tokio_rt();
    rt.block_on(async {
        let ca = ThrowawayCa::new("interop CA");
        let (server_config, _) = peer_tls(&ca);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let tls = tokio_rustls::TlsAcceptor::from(server_config)
                .accept(stream)
                .await
                .unwrap();
            let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    ws.send(msg).await.unwrap();
                }
            }
        });
        let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
        let request = ClientRequest::new(addr.to_string(), "/");
        let ours = ca.loopback(ClientAuth::None);
        let ws = WebSocket::connect_tls(
            runtime,
            addr,
            "127.0.0.1",
            &ours,
            &request,
            harness_config(),
        )
        .await
        .unwrap();
        expect_echoes_then_close(&ws).await;
    });
}
