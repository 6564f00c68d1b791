//! `ws-echo --listen 127.0.0.1:PORT [--idle-secs N] [--runtime tokio|smol]`:
//! a WebSocket echo server on `gridmux::WebSocket`, for the Autobahn
//! TestSuite (server role). Exits after `--idle-secs` (default 120) without
//! a new connection.

use std::future::poll_fn;
use std::net::TcpListener;
use std::time::Duration;

use gridmux::WebSocket;
use gridmux_core::ws::Event;
use gridmux_tests::harness::{
    arg_value, block_on, harness_config, help_requested, init_tracing, within,
};

/// What `--help` prints: the usage above.
const USAGE: &str = "`ws-echo --listen 127.0.0.1:PORT [--idle-secs N] [--runtime tokio|smol]`: a WebSocket echo server on `gridmux::WebSocket`, for the Autobahn TestSuite (server role). Exits after `--idle-secs` (default 120) without a new connection.";

fn main() -> std::io::Result<()> {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    if help_requested(&args, USAGE) {
        return Ok(());
    }
    let listen = arg_value(&args, "--listen").unwrap_or_else(|| "127.0.0.1:9002".into());
    let runtime = arg_value(&args, "--runtime").unwrap_or_else(|| "tokio".into());
    let idle = Duration::from_secs(
        arg_value(&args, "--idle-secs")
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let listener = TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    eprintln!(
        "ws-echo listening on {} ({runtime})",
        listener.local_addr()?
    );
    block_on(&runtime, |rt| async move {
        let listener = rt.adopt_listener(listener)?;
        loop {
            let accept = poll_fn(|cx| listener.poll_accept(cx));
            let Some(socket) = within(&*rt, idle, accept).await else {
                eprintln!("ws-echo: idle for {idle:?}, exiting");
                return Ok(());
            };
            let ws = WebSocket::accept(rt.clone(), socket?, harness_config());
            rt.spawn(Box::pin(async move {
                while let Some(event) = ws.recv().await {
                    if let Event::Message(msg) = event {
                        // Fails only once the connection is closing.
                        let _ = ws.send(msg);
                    }
                }
            }));
        }
    })
}
