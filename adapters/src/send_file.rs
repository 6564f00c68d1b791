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
/// The socket is corked (`TCP_CORK` on Linux) while the head and body go
/// out, so that they leave in full-sized segments.
///
/// The system calls run on the calling task: a file whose pages are not
/// in the page cache makes them wait for the disk. Serve files that may be
/// cold from a runtime with worker threads to spare (tokio's
/// multi-threaded runtime, `SmolRuntime::new`), or, on the file plane,
/// with `FileLimits::send_on_thread`.
pub async fn send_file(
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
) -> Result<u64, TransferError> {
    corked(socket, send_on_task(socket, head, transfer, None)).await
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
    let stall = Some((runtime, stall));
    corked(socket, send_on_task(socket, head, transfer, stall)).await
}

/// [`send_file_with_stall_timeout`] with the body sent from a thread of
/// its own (waiting for writability there with `poll(2)`; SIGPIPE blocked
/// on it), so that a file not in the page cache stalls that thread, never
/// a runtime worker: the prefetch (`posix_fadvise`) runs there too. `hold`
/// (a transfer's permit) is dropped when the thread ends. If the future is
/// dropped first, the socket is shut down, which ends the thread's
/// transfer at its next call.
pub(crate) async fn send_file_on_thread(
    runtime: &dyn Runtime,
    stall: Duration,
    socket: &dyn Socket,
    head: &[u8],
    mut transfer: Transfer,
    hold: impl Send + 'static,
) -> Result<u64, TransferError> {
    if socket.is_encrypted() {
        // The thread writes to the descriptor, which TLS must not see.
        let sent = send_file_with_stall_timeout(runtime, stall, socket, head, &mut transfer).await;
        drop(hold);
        return sent;
    }
    let body = async {
        let more = !transfer.is_done();
        write_head(socket, head, more, Some((runtime, stall))).await?;
        if !more {
            return Ok(0);
        }
        let owned = socket.as_fd().try_clone_to_owned()?;
        let guard = ShutdownOnDrop(socket);
        let sent = runtime::run_on_thread("gridmux-sendfile", 256 << 10, move || {
            let _hold = hold;
            gridmux_sendfile::block_sigpipe_on_this_thread()?;
            transfer.prefetch();
            transfer.send_all_polling(&owned, stall)
        })
        .await;
        guard.disarm();
        sent?
    };
    corked(socket, body).await
}

/// Runs `send` with `socket` corked; uncorking sends what is left.
async fn corked(
    socket: &dyn Socket,
    send: impl std::future::Future<Output = Result<u64, TransferError>>,
) -> Result<u64, TransferError> {
    if socket.is_encrypted() {
        return send.await;
    }
    let fd = socket.as_fd();
    fd.cork(true)?;
    let sent = send.await?;
    fd.cork(false)?;
    Ok(sent)
}

/// A runtime and the longest wait for writability.
type Stall<'a> = Option<(&'a dyn Runtime, Duration)>;

/// Writes through a [`Socket`]'s own writes (TLS), never its descriptor.
struct Through<'a>(&'a dyn Socket);

impl Sink for Through<'_> {
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write_vectored(&[io::IoSlice::new(buf)])
    }
}

/// The head, then the body (copied: the transfer's method is `Copy`),
/// through the socket's own writes, then what the socket holds back.
async fn send_through(
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
    stall: Stall<'_>,
) -> Result<u64, TransferError> {
    let sink = Through(socket);
    write_all_with(socket, head, stall, |rest| sink.write_some(rest)).await?;
    let mut sent = 0u64;
    while !transfer.is_done() {
        match transfer.send(&sink) {
            Ok(n) => sent += n as u64,
            Err(TransferError::Io(e)) => wait_or_fail(socket, e, stall).await?,
            Err(other) => return Err(other),
        }
    }
    let flushed = poll_fn(|cx| socket.poll_flush(cx));
    within_stall(stall, flushed).await?;
    Ok(sent)
}

/// The head, then the body, from the calling task.
async fn send_on_task(
    socket: &dyn Socket,
    head: &[u8],
    transfer: &mut Transfer,
    stall: Stall<'_>,
) -> Result<u64, TransferError> {
    if socket.is_encrypted() {
        return send_through(socket, head, transfer, stall).await;
    }
    write_head(socket, head, !transfer.is_done(), stall).await?;
    let fd = socket.as_fd();
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

/// Writes `head`, with `MSG_MORE` when a body follows.
async fn write_head(
    socket: &dyn Socket,
    head: &[u8],
    more: bool,
    stall: Stall<'_>,
) -> io::Result<()> {
    let fd = socket.as_fd();
    write_all_with(socket, head, stall, |rest| {
        socket.try_write_with(&mut || {
            if more {
                fd.write_more(rest)
            } else {
                fd.write_some(rest)
            }
        })
    })
    .await
}

/// Writes all of `bytes`, `write` making one non-blocking write of what is
/// left; waits for writability between (at most the stall limit).
async fn write_all_with(
    socket: &dyn Socket,
    bytes: &[u8],
    stall: Stall<'_>,
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        match write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) => wait_or_fail(socket, e, stall).await?,
        }
    }
    Ok(())
}

/// Waits for writability after `WouldBlock` (at most the stall limit);
/// any other error is returned.
async fn wait_or_fail(socket: &dyn Socket, error: io::Error, stall: Stall<'_>) -> io::Result<()> {
    match error.kind() {
        io::ErrorKind::WouldBlock => {
            let writable = poll_fn(|cx| socket.poll_writable(cx));
            within_stall(stall, writable).await
        }
        io::ErrorKind::Interrupted => Ok(()),
        _ => Err(error),
    }
}

/// `wait`'s outcome, or `TimedOut` once the stall limit passes (no limit:
/// as long as it takes).
async fn within_stall(
    stall: Stall<'_>,
    wait: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    match stall {
        None => wait.await,
        Some((rt, limit)) => runtime::timeout(rt, limit, wait)
            .await
            .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into())),
    }
}

/// Shuts the socket down if dropped armed: a transfer on another thread
/// then fails at its next call instead of running on.
struct ShutdownOnDrop<'a>(&'a dyn Socket);

impl ShutdownOnDrop<'_> {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for ShutdownOnDrop<'_> {
    fn drop(&mut self) {
        crate::io::shutdown(self.0);
    }
}
