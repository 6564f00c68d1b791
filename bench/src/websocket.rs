//! WebSocket echo: `gridmux::WebSocket` on the benchmark's runtime beside
//! tokio-tungstenite and fastwebsockets on tokio, each implementation's
//! own client against its own server; 64 B and 64 KiB messages over 1 and
//! 64 connections, one message in flight per connection.

use std::future::poll_fn;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use bytes::Bytes;
use futures::lock::Mutex;
use futures::{SinkExt, StreamExt};
use gridmux::runtime::{Runtime, TokioRuntime};
use gridmux::{CancelSignal, WebSocket};
use gridmux_core::ws::{self, ClientRequest, Event, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::measure::{closed_loop, Measured, Window};
use crate::peers::on_tokio;
use crate::progress::Live;
use crate::report::Row;
use crate::{Ctx, RuntimeKind};

/// The cases of a run: message sizes and connections.
pub(crate) fn cases(quick: bool) -> (Vec<usize>, Vec<usize>) {
    if quick {
        (vec![64], vec![1])
    } else {
        (vec![64, 64 * 1024], vec![1, 64])
    }
}

/// Rows this workload makes.
pub(crate) fn planned(quick: bool) -> usize {
    let (sizes, conns) = cases(quick);
    sizes.len() * conns.len() * 3
}

pub(crate) async fn run(cx: &mut Ctx<'_>) -> Result<(), String> {
    let (sizes, conns) = cases(cx.quick);
    for &size in &sizes {
        for &n in &conns {
            if cx.stopped() {
                return Ok(());
            }
            let case = format!("{} ×{n}", size_label(size));
            cx.live.case(&format!("gridmux {case}"));
            let m = gridmux_echo(&cx.rt, size, n, cx.window, &cx.stop, &cx.live).await?;
            let ours = Row::of("websocket", case.clone(), "gridmux", n, &m, true);
            let (window, stop, live) = (cx.window, cx.stop.clone(), cx.live.clone());
            cx.live.case(&format!("tokio-tungstenite {case}"));
            let m = on_tokio(async move { tungstenite_echo(size, n, window, &stop, &live).await })
                .await??;
            let tungstenite = Row::of("websocket", case.clone(), "tokio-tungstenite", n, &m, true);
            let (stop, live) = (cx.stop.clone(), cx.live.clone());
            cx.live.case(&format!("fastwebsockets {case}"));
            let m =
                on_tokio(async move { fastws_echo(size, n, window, &stop, &live).await }).await??;
            let fast = Row::of("websocket", case.clone(), "fastwebsockets", n, &m, true);
            // The peers run on tokio: beside gridmux on smol, a ratio
            // would compare the runtimes, not the WebSocket layers.
            let mut ours = if cx.kind == RuntimeKind::Tokio {
                ours.versus(&fast).versus(&tungstenite)
            } else {
                ours
            };
            let (mut fast, mut tungstenite) = (fast, tungstenite);
            if cx.kind != RuntimeKind::Tokio {
                for row in [&mut fast, &mut tungstenite] {
                    row.system.push_str(" (on tokio)");
                }
            }
            if size < 64 * 1024 {
                // CPU per GiB says little about small messages.
                for row in [&mut ours, &mut fast, &mut tungstenite] {
                    row.cpu_s_per_gib = None;
                }
            }
            cx.push(tungstenite);
            cx.push(fast);
            cx.push(ours);
        }
    }
    Ok(())
}

fn size_label(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Echo through `gridmux::WebSocket`, server and client.
async fn gridmux_echo(
    rt: &Arc<dyn Runtime>,
    size: usize,
    conns: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = rt.adopt_listener(listener).map_err(|e| e.to_string())?;
    let done = CancelSignal::new();
    {
        let (rt2, done2) = (rt.clone(), done.clone());
        rt.spawn(Box::pin(async move {
            let accept = async {
                while let Ok(socket) = poll_fn(|cx| listener.poll_accept(cx)).await {
                    let ws = WebSocket::accept(rt2.clone(), socket, ws::Config::default());
                    let done = done2.clone();
                    rt2.spawn(Box::pin(async move {
                        let echo = async {
                            while let Some(event) = ws.recv().await {
                                if let Event::Message(m) = event {
                                    if ws.send(m).is_err() {
                                        return;
                                    }
                                }
                            }
                        };
                        done.run(echo).await;
                    }));
                }
            };
            done2.run(accept).await;
        }));
    }
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        let request = ClientRequest::new(addr.to_string(), "/");
        let ws = WebSocket::connect(rt.clone(), addr, &request, ws::Config::default())
            .await
            .map_err(|e| e.to_string())?;
        match ws.recv().await {
            Some(Event::Open(_)) => {}
            other => return Err(format!("websocket did not open: {other:?}")),
        }
        clients.push(Arc::new(ws));
    }
    let payload = Bytes::from(vec![0x5a; size]);
    let m = closed_loop(rt, conns, window, stop, live, |w| {
        let (ws, payload) = (clients[w].clone(), payload.clone());
        move || {
            let (ws, payload) = (ws.clone(), payload.clone());
            async move {
                ws.send(Message::binary(payload.clone()))
                    .map_err(|e| e.to_string())?;
                loop {
                    match ws.recv().await {
                        Some(Event::Message(m)) if m.payload().len() == payload.len() => {
                            return Ok(payload.len() as u64)
                        }
                        Some(Event::Message(_)) => return Err("echo of another size".into()),
                        Some(Event::Ping(_) | Event::Pong(_)) => {}
                        other => return Err(format!("echo ended: {other:?}")),
                    }
                }
            }
        }
    })
    .await;
    done.cancel();
    Ok(m)
}

/// Echo through tokio-tungstenite, server and client; runs on tokio.
async fn tungstenite_echo(
    size: usize,
    conns: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    use tokio_tungstenite::tungstenite::Message as TMessage;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
            .await
            .map_err(|e| e.to_string())?;
        clients.push(Arc::new(Mutex::new(ws)));
    }
    let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
    let payload = Bytes::from(vec![0x5a; size]);
    let m = closed_loop(&rt, conns, window, stop, live, |w| {
        let (ws, payload) = (clients[w].clone(), payload.clone());
        move || {
            let (ws, payload) = (ws.clone(), payload.clone());
            async move {
                let mut ws = ws.lock().await;
                ws.send(TMessage::Binary(payload.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
                match ws.next().await {
                    Some(Ok(TMessage::Binary(b))) if b.len() == payload.len() => Ok(b.len() as u64),
                    other => Err(format!("tungstenite echo: {other:?}")),
                }
            }
        }
    })
    .await;
    server.abort();
    Ok(m)
}

/// Echo through fastwebsockets, server and client (the handshake by
/// hand: fastwebsockets leaves it to hyper); runs on tokio.
async fn fastws_echo(
    size: usize,
    conns: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket as FastWs};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                if accept_handshake(&mut stream).await.is_err() {
                    return;
                }
                let mut ws = FastWs::after_handshake(stream, Role::Server);
                while let Ok(frame) = ws.read_frame().await {
                    let echo = matches!(frame.opcode, OpCode::Binary | OpCode::Text);
                    if frame.opcode == OpCode::Close
                        || (echo && ws.write_frame(frame).await.is_err())
                    {
                        return;
                    }
                }
            });
        }
    });
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        client_handshake(&mut stream, addr).await?;
        let ws = FastWs::after_handshake(stream, Role::Client);
        clients.push(Arc::new(Mutex::new((ws, vec![0u8; size]))));
    }
    let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
    let payload = Arc::new(vec![0x5a; size]);
    let m = closed_loop(&rt, conns, window, stop, live, |w| {
        let (slot, payload) = (clients[w].clone(), payload.clone());
        move || {
            let (slot, payload) = (slot.clone(), payload.clone());
            async move {
                let mut guard = slot.lock().await;
                let (ws, scratch) = &mut *guard;
                // The client masks in place: a fresh copy of the payload.
                scratch.copy_from_slice(&payload);
                ws.write_frame(Frame::binary(Payload::BorrowedMut(scratch)))
                    .await
                    .map_err(|e| e.to_string())?;
                let frame = ws.read_frame().await.map_err(|e| e.to_string())?;
                if frame.opcode != OpCode::Binary || frame.payload.len() != payload.len() {
                    return Err("fastwebsockets echo of another kind or size".into());
                }
                Ok(payload.len() as u64)
            }
        }
    })
    .await;
    server.abort();
    Ok(m)
}

/// Reads an HTTP head (up to 8 KiB) from `stream`.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 512];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err("handshake head too large".into());
        }
        // One byte at a time would be slow; heads here are small and
        // nothing follows them before the handshake completes.
        let n = stream.read(&mut byte).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        head.extend_from_slice(&byte[..n]);
    }
    String::from_utf8(head).map_err(|e| e.to_string())
}

/// The server side of the opening handshake.
async fn accept_handshake(stream: &mut tokio::net::TcpStream) -> Result<(), String> {
    let head = read_head(stream).await?;
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .ok_or("no Sec-WebSocket-Key")?;
    let accept = ws::handshake::accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream
        .write_all(answer.as_bytes())
        .await
        .map_err(|e| e.to_string())
}

/// The client side of the opening handshake.
async fn client_handshake(
    stream: &mut tokio::net::TcpStream,
    addr: SocketAddr,
) -> Result<(), String> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let head = read_head(stream).await?;
    if head.starts_with("HTTP/1.1 101") {
        Ok(())
    } else {
        Err(format!(
            "handshake refused: {}",
            head.lines().next().unwrap_or("")
        ))
    }
}
