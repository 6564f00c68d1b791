//! `ws-echo --listen 127.0.0.1:PORT [--idle-secs N]`: a WebSocket echo server
//! on `gridmux_core::ws::Endpoint`, for the Autobahn TestSuite (server role).
//! Exits after `--idle-secs` (default 120) without a new connection.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use gridmux_core::ws::{Endpoint, Event};
use gridmux_tests::ws_loop::{arg_value, harness_config, init_tracing, run};

fn main() -> std::io::Result<()> {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    let listen = arg_value(&args, "--listen").unwrap_or_else(|| "127.0.0.1:9002".into());
    let idle = Duration::from_secs(
        arg_value(&args, "--idle-secs")
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let listener = TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    eprintln!("ws-echo listening on {}", listener.local_addr()?);
    let mut last_activity = Instant::now();
    while last_activity.elapsed() < idle {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        last_activity = Instant::now();
        stream.set_nonblocking(false)?;
        std::thread::spawn(move || {
            let endpoint = Endpoint::server(harness_config(), Instant::now());
            let result = run(stream, endpoint, Duration::from_secs(60), |ep, event| {
                if let Event::Message(msg) = event {
                    // Fails only once the connection is closing.
                    let _ = ep.send(msg);
                }
            });
            tracing::debug!(?result, "connection ended");
        });
    }
    eprintln!("ws-echo: idle for {idle:?}, exiting");
    Ok(())
}
