//! A minimal blocking driver for an [`Endpoint`] over a [`TcpStream`].
//!
//! It exists for the conformance harnesses (`ws-echo`, `ws-autobahn-client`)
//! until the async adapters land; it reads, feeds the endpoint, writes what
//! the endpoint yields with vectored writes, and honours `poll_timeout`.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gridmux_core::ws::{CloseCause, Config, Endpoint, Event, Transmit};

/// Read granularity.
const READ_CHUNK: usize = 64 << 10;
/// Most slices passed to one `write_vectored`.
const MAX_IOV: usize = 64;

/// Runs `endpoint` over `stream` until the connection is closed, calling
/// `on_event` for every event but the last; returns how the connection ended.
///
/// `idle_limit` bounds how long the loop waits for the peer when the endpoint
/// has no timer of its own, so the process always stops by itself.
pub fn run(
    mut stream: TcpStream,
    mut endpoint: Endpoint,
    idle_limit: Duration,
    mut on_event: impl FnMut(&mut Endpoint, Event),
) -> io::Result<CloseCause> {
    stream.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Transmit::new();
    loop {
        let now = Instant::now();
        while endpoint.poll_transmit(now, &mut out) {
            write_out(&mut stream, &mut out)?;
        }
        // Events can queue output (a Close answer, an echo): loop back to
        // poll_transmit after any event.
        let mut acted = false;
        while let Some(event) = endpoint.poll_event() {
            acted = true;
            if let Event::Closed(cause) = event {
                while endpoint.poll_transmit(now, &mut out) {}
                // The peer may already be gone; the outcome is decided.
                let _ = write_out(&mut stream, &mut out);
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(cause);
            }
            on_event(&mut endpoint, event);
        }
        if acted || endpoint.has_pending_transmit() {
            continue;
        }
        let wait = match endpoint.poll_timeout() {
            Some(at) if at <= now => {
                endpoint.handle_timeout(now);
                continue;
            }
            Some(at) => at - now,
            None => idle_limit,
        };
        stream.set_read_timeout(Some(wait))?;
        let filled = input.len();
        input.resize(filled + READ_CHUNK, 0);
        let read = stream.read(&mut input[filled..]);
        input.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => endpoint.handle_eof(Instant::now()),
            Ok(_) => endpoint.handle_input(Instant::now(), &mut input),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if endpoint.poll_timeout().is_none() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer idle too long",
                    ));
                }
                endpoint.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                endpoint.handle_eof(Instant::now());
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `out` with vectored writes.
fn write_out(stream: &mut TcpStream, out: &mut Transmit) -> io::Result<()> {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let n = out.io_slices(&mut slices);
        let written = match stream.write_vectored(&slices[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        out.advance(written);
    }
    Ok(())
}

/// Parses `ws://HOST:PORT[/...]` into `HOST:PORT`.
pub fn ws_authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("ws://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// Value following `--name` in `args`.
pub fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Installs a `tracing` subscriber reading `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

/// Endpoint limits of the Autobahn harnesses: large enough for group 9,
/// which sends 16 MiB messages.
pub fn harness_config() -> Config {
    Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        max_send_queue: 256 << 20,
        ..Config::default()
    }
}
