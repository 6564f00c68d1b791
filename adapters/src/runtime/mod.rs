//! What gridmux needs from an async runtime, and the two it ships with.
//!
//! A runtime gives tasks, timers, TCP connect/listen and readiness for
//! non-blocking socket IO; the shared driver does everything else, so a
//! runtime module is small. Socket IO follows one pattern: try the
//! non-blocking call first, and only when it reports `WouldBlock` wait
//! for readiness with `poll_readable`/`poll_writable`.

#[cfg(feature = "smol")]
mod smol;
#[cfg(feature = "tokio")]
mod tokio;

use std::fmt::Debug;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;

#[cfg(feature = "smol")]
pub use self::smol::SmolRuntime;
#[cfg(feature = "tokio")]
pub use self::tokio::TokioRuntime;

/// A boxed future that can move between threads.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An async runtime: tasks, timers and TCP.
pub trait Runtime: Send + Sync + Debug + 'static {
    /// Runs `future` to completion in the background.
    fn spawn(&self, future: BoxFuture<()>);
    /// A timer that fires at `deadline`.
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>>;
    /// Opens a TCP connection (with `TCP_NODELAY`).
    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Socket>>>;
    /// Takes over a bound, non-blocking listener.
    fn adopt_listener(&self, listener: std::net::TcpListener) -> io::Result<Box<dyn Listener>>;
    /// Resolves `host:port` without blocking a task thread: the system
    /// resolver blocks, so it runs on the runtime's blocking pool (by
    /// default, on a thread of its own).
    fn resolve(&self, name: String) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        resolve_on_thread(name)
    }
}

/// Resolves `name` on a short-lived thread of its own.
pub fn resolve_on_thread(name: String) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
    use std::net::ToSocketAddrs as _;
    let resolved = run_on_thread("gridmux-resolve", 0, move || {
        name.to_socket_addrs().map(Iterator::collect)
    });
    Box::pin(async move { resolved.await? })
}

/// A result on its way from a thread, whether the thread is gone, and the
/// waker of the task waiting.
type Handoff<T> = (Option<T>, bool, Option<std::task::Waker>);

/// Runs `f` on a short-lived thread of its own (named `name`, with a
/// stack of `stack` bytes, or the default for 0); the future is its
/// result, or an error if the thread could not start or `f` panicked.
pub(crate) fn run_on_thread<T: Send + 'static>(
    name: &str,
    stack: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> BoxFuture<io::Result<T>> {
    let slot: Arc<Mutex<Handoff<T>>> = Arc::new(Mutex::new((None, false, None)));
    let done = Finished(slot.clone());
    let mut builder = std::thread::Builder::new().name(name.into());
    if stack > 0 {
        builder = builder.stack_size(stack);
    }
    let spawned = builder.spawn(move || {
        let result = f();
        done.0.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(result);
        // `done` drops here (or during a panic's unwinding): the task wakes.
    });
    if let Err(e) = spawned {
        return Box::pin(std::future::ready(Err(e)));
    }
    Box::pin(std::future::poll_fn(move |cx| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        match (slot.0.take(), slot.1) {
            (Some(result), _) => Poll::Ready(Ok(result)),
            (None, true) => Poll::Ready(Err(io::Error::other("the thread panicked"))),
            (None, false) => {
                slot.2 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }))
}

/// Marks the thread gone and wakes the task, however the thread ends.
struct Finished<T>(Arc<Mutex<Handoff<T>>>);

impl<T> Drop for Finished<T> {
    fn drop(&mut self) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.1 = true;
        if let Some(waker) = slot.2.take() {
            waker.wake();
        }
    }
}

/// Completes at `deadline`, on `runtime`'s timer.
pub async fn sleep_until(runtime: &dyn Runtime, deadline: Instant) {
    let mut timer = runtime.timer(deadline);
    std::future::poll_fn(|cx| timer.as_mut().poll_fire(cx)).await;
}

/// The longest timeout honoured: the wire's deadline limit (`u32`
/// milliseconds, about 49.7 days). Longer ones, `Duration::MAX` included,
/// are clamped to it instead of overflowing `Instant`.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// The instant `limit` from now, with `limit` clamped to [`MAX_TIMEOUT`].
pub fn deadline_in(limit: Duration) -> Instant {
    Instant::now() + limit.min(MAX_TIMEOUT)
}

/// `future`'s output, or `None` once `limit` has passed (the future is
/// then dropped). `limit` is clamped to [`MAX_TIMEOUT`].
pub async fn timeout<T>(
    runtime: &dyn Runtime,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Option<T> {
    let deadline = deadline_in(limit);
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep_until(runtime, deadline).await;
        None
    })
    .await
}

/// A resettable timer.
pub trait Timer: Send + Sync + Debug {
    /// Moves the deadline.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
    /// Ready once the deadline has passed.
    fn poll_fire(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A connected, non-blocking TCP socket.
pub trait Socket: Send + Sync + Debug {
    /// Ready when a read may make progress; call after `try_read` gave
    /// `WouldBlock`.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may make progress; call after a write gave
    /// `WouldBlock`.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// One non-blocking read; `Ok(0)` is end of stream.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// One non-blocking read into `buf`'s spare capacity, appended to
    /// `buf`; `Ok(0)` is end of stream. `buf` must have spare capacity
    /// (else `InvalidInput`). The default goes through
    /// [`try_read`](Self::try_read) with a copy; the built-in runtimes
    /// read into the spare room directly (nothing zeroed or copied).
    fn try_read_spare(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let room = check_spare(buf)?;
        let mut chunk = [0u8; 16 * 1024];
        let n = self.try_read(&mut chunk[..room.min(16 * 1024)])?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
    /// One non-blocking vectored write.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// The socket's descriptor, for calls the runtime need not wrap
    /// (shutdown, addresses, sendfile).
    fn as_fd(&self) -> BorrowedFd<'_>;
    /// Runs `op`, one non-blocking write made on [`as_fd`](Self::as_fd)
    /// (a `sendfile`), so that the runtime learns of a `WouldBlock` (tokio
    /// caches readiness: without this, `poll_writable` would keep
    /// answering at once).
    fn try_write_with(&self, op: &mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize> {
        op()
    }
    /// Runs `op`, one non-blocking read made on [`as_fd`](Self::as_fd) (a
    /// `splice`), so that the runtime learns of a `WouldBlock`.
    fn try_read_with(&self, op: &mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize> {
        op()
    }
    /// Ready once everything the writes took is on its way to the socket
    /// (a layer that holds bytes back, TLS, writes them out here). Plain
    /// sockets hold nothing.
    fn poll_flush(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    /// Whether bytes pass through a layer above the descriptor (TLS):
    /// then nothing may be written to or read from
    /// [`as_fd`](Self::as_fd) directly (no `sendfile`, no `splice`).
    fn is_encrypted(&self) -> bool {
        false
    }
    /// What both ends of a secure session derive for binding the grid's
    /// set-up to it (a TLS exporter); `None` over plain TCP.
    fn tls_exporter(&self) -> Option<[u8; 32]> {
        None
    }
    /// Ends the connection both ways (errors mean it already is); TLS
    /// sends its close_notify first.
    fn shutdown(&self) {
        let _ = socket2::SockRef::from(&self.as_fd()).shutdown(std::net::Shutdown::Both);
    }
}

/// The spare room of `buf`: an error if none (a read into no room would
/// answer 0, which means end of stream).
pub(crate) fn check_spare(buf: &BytesMut) -> io::Result<usize> {
    match buf.capacity() - buf.len() {
        0 => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no spare capacity to read into",
        )),
        room => Ok(room),
    }
}

/// Receives once on `fd` into `buf`'s spare capacity and appends what
/// came.
pub(crate) fn recv_into_spare(fd: BorrowedFd<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    check_spare(buf)?;
    let spare = buf.spare_capacity_mut();
    let n = socket2::SockRef::from(&fd).recv(spare)?;
    debug_assert!(n <= spare.len());
    let n = n.min(spare.len());
    #[expect(
        unsafe_code,
        reason = "BytesMut has no safe way to extend over received bytes"
    )]
    // SAFETY: `recv` wrote (initialised) the first `n` bytes of the spare
    // capacity, and `n` is within it.
    unsafe {
        buf.set_len(buf.len() + n);
    }
    Ok(n)
}

/// A bound TCP listener.
pub trait Listener: Send + Sync + Debug {
    /// Accepts the next connection (with `TCP_NODELAY`).
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn Socket>>>;
    /// The bound address (useful after binding port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl<R: Runtime + ?Sized> Runtime for Arc<R> {
    fn spawn(&self, future: BoxFuture<()>) {
        (**self).spawn(future);
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        (**self).timer(deadline)
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Socket>>> {
        (**self).connect(addr)
    }

    fn adopt_listener(&self, listener: std::net::TcpListener) -> io::Result<Box<dyn Listener>> {
        (**self).adopt_listener(listener)
    }

    fn resolve(&self, name: String) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        (**self).resolve(name)
    }
}

#[cfg(test)]
mod tests {
    use super::run_on_thread;

    #[test]
    fn a_thread_that_panics_wakes_its_task_with_an_error() {
        let result = futures_lite::future::block_on(run_on_thread("t", 0, || -> u8 {
            panic!("boom");
        }));
        assert!(result.is_err());
        let ok = futures_lite::future::block_on(run_on_thread("t", 64 << 10, || 7u8));
        assert_eq!(ok.unwrap(), 7);
    }
}
