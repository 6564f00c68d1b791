//! File regions to a socket of any runtime, with `gridmux-sendfile`: one
//! API for tokio and smol (the runtime modules only report `WouldBlock`).

use std::future::poll_fn;
use std::io;
use std::time::Duration;

use gridmux_sendfile::{Sink, Transfer, TransferError};

use crate::runtime::{self, Runtime, Socket};

/// Writes `head` (a response's status line and headers; it leaves with
/// the body's first bytes) and then the whole of `transfer` to `socket`,
/// waiting for writability whenever the socket is full. Returns the body
/// bytes sent. A peer that stops reading stops it: bound it with a
/// timeout, or use [`send_file_with_stall_timeout`].
///
/// The system calls run on the calling task: a file whose pages are not
/// in the page cache makes them wait for the disk. Serve files that may be
/// cold from a runtime with worker threads to spare (tokio's
/// multi-threaded runtime, `SmolRuntime::new`).
pub async fn send_file(
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
) -> Result<u64, TransferError> {
    send(socket, head, transfer, None).await
}

/// [`send_file`], failing with `TimedOut` when the socket stays full for
/// `stall` (a peer that stopped reading; nginx's `send_timeout`). A slow
/// but steady reader is not cut off, however long the whole transfer.
pub async fn send_file_with_stall_timeout(
    runtime: &dyn Runtime,
    stall: Duration,
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
) -> Result<u64, TransferError> {
    send(socket, head, transfer, Some((runtime, stall))).await
}

/// A runtime and the longest wait for writability.
type Stall<'a> = Option<(&'a dyn Runtime, Duration)>;

async fn send(
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
    stall: Stall<'_>,
) -> Result<u64, TransferError> {
    let fd = socket.as_fd();
    // Corked, the head and the body leave in full segments; uncorking at
    // the end sends the last partial one at once.
    fd.cork(true)?;
    let sent = send_corked(socket, head, transfer, stall).await;
    fd.cork(false)?;
    sent
}

async fn send_corked(
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
    stall: Stall<'_>,
) -> Result<u64, TransferError> {
    let fd = socket.as_fd();
    let mut written = 0;
    while written < head.len() {
        let more = !transfer.is_done();
        let rest = &head[written..];
        let step = socket.try_write_with(&mut || {
            if more {
                fd.write_more(rest)
            } else {
                fd.write_some(rest)
            }
        });
        match step {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => written += n,
            Err(e) => wait_or_fail(socket, e, stall).await?,
        }
    }
    let mut sent = 0u64;
    while !transfer.is_done() {
        let mut failure = None;
        let step = socket.try_write_with(&mut || match transfer.send(&fd) {
            Ok(n) => Ok(n),
            Err(TransferError::Io(e)) => Err(e),
            // Not a socket error: carried out past the runtime's call.
            Err(other) => {
                failure = Some(other);
                Err(io::ErrorKind::Other.into())
            }
        });
        if let Some(failure) = failure {
            return Err(failure);
        }
        match step {
            Ok(n) => sent += n as u64,
            Err(e) => wait_or_fail(socket, e, stall).await?,
        }
    }
    Ok(sent)
}

/// Waits for writability after `WouldBlock` (at most the stall limit);
/// any other error is returned.
async fn wait_or_fail(socket: &dyn Socket, error: io::Error, stall: Stall<'_>) -> io::Result<()> {
    match error.kind() {
        io::ErrorKind::WouldBlock => {
            let writable = poll_fn(|cx| socket.poll_writable(cx));
            match stall {
                None => writable.await,
                Some((rt, limit)) => runtime::timeout(rt, limit, writable)
                    .await
                    .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into())),
            }
        }
        io::ErrorKind::Interrupted => Ok(()),
        _ => Err(error),
    }
}
