//! The tokio runtime (feature `tokio`).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::time::Sleep;

use super::{BoxFuture, Listener, Runtime, Socket, Timer};

/// Whether a short read may clear tokio's readiness: not when mio polls
/// with level-triggered `poll(2)` (tokio makes the same exception).
const CLEAR_ON_SHORT_READ: bool = !cfg!(mio_unsupported_force_poll_poll);

/// Runs gridmux on a tokio runtime (multi-thread or current-thread, with
/// IO and time enabled).
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime of the calling context. Panics outside a tokio runtime,
    /// as `Handle::current` does.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// The runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        drop(self.handle.spawn(future));
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        let _guard = self.handle.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Socket>>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Socket>)
        })
    }

    fn adopt_listener(&self, listener: std::net::TcpListener) -> io::Result<Box<dyn Listener>> {
        let _guard = self.handle.enter();
        Ok(Box::new(TcpListener::from_std(listener)?))
    }

    fn resolve(&self, name: String) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        // tokio runs the system resolver on its blocking pool.
        let handle = self.handle.clone();
        Box::pin(async move {
            let lookup = handle.spawn(async move { tokio::net::lookup_host(name).await });
            lookup
                .await
                .map_err(io::Error::other)?
                .map(Iterator::collect)
        })
    }
}

impl Timer for Sleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        Self::reset(self, deadline.into());
    }

    fn poll_fire(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(self, cx)
    }
}

impl Socket for TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Self::try_read(self, buf)
    }

    fn try_read_spare(&self, buf: &mut BytesMut) -> io::Result<usize> {
        // A read that did not fill the spare room took everything the
        // socket had: tokio is told (as its own `poll_read` does, and only
        // where it does: with epoll or kqueue), so the next read answers
        // `WouldBlock` without a system call until the next readiness
        // event. tokio clears only if no event came since the read began,
        // so no wake-up is lost. (As with tokio's own reads, a short read
        // that stopped at TCP urgent data waits for the peer's next
        // segment; gridmux never sends urgent data.)
        let room = buf.capacity() - buf.len();
        let mut short = None;
        let read = self.try_io(
            tokio::io::Interest::READABLE,
            || match super::recv_into_spare(AsFd::as_fd(self), buf) {
                Ok(n) if n > 0 && n < room && CLEAR_ON_SHORT_READ => {
                    short = Some(n);
                    Err(io::ErrorKind::WouldBlock.into())
                }
                other => other,
            },
        );
        short.map_or(read, Ok)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Self::try_write_vectored(self, bufs)
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        AsFd::as_fd(self)
    }

    fn try_write_with(&self, op: &mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize> {
        self.try_io(tokio::io::Interest::WRITABLE, op)
    }

    fn try_read_with(&self, op: &mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize> {
        self.try_io(tokio::io::Interest::READABLE, op)
    }
}

impl Listener for TcpListener {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn Socket>>> {
        Self::poll_accept(self, cx).map(|r| {
            let (stream, _) = r?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Socket>)
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Self::local_addr(self)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::Write as _;
    use std::task::Poll;

    use bytes::BytesMut;
    use tokio::net::TcpStream;

    use super::Socket;

    /// A loopback pair: a tokio stream and the blocking std end feeding it.
    async fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ours = TcpStream::connect(addr).await.unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (ours, theirs)
    }

    /// Waits until `socket` reports readable (bounded by the test's timeout).
    async fn readable(socket: &TcpStream) {
        poll_fn(|cx| Socket::poll_readable(socket, cx))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_short_read_lands_in_spare_room_and_the_next_waits_for_more() {
        let (ours, mut theirs) = pair().await;
        theirs.write_all(b"hello").unwrap();
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b">");
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                readable(&ours).await;
                match ours.try_read_spare(&mut buf) {
                    Ok(n) => break assert_eq!(n, 5),
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
                }
            }
        })
        .await
        .expect("the bytes arrive");
        assert_eq!(&buf[..], b">hello");
        // Everything was taken: readiness is cleared, so the next read
        // waits (no system call) ...
        let e = ours.try_read_spare(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let pending = poll_fn(|cx| Poll::Ready(Socket::poll_readable(&ours, cx).is_pending()));
        assert!(pending.await, "nothing new to read");
        // ... and bytes sent later wake it: no wake-up is lost.
        theirs.write_all(b"!").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), readable(&ours))
            .await
            .expect("readiness comes back when bytes arrive");
        assert_eq!(ours.try_read_spare(&mut buf).unwrap(), 1);
        assert_eq!(&buf[..], b">hello!");
        // End of stream reads as 0.
        drop(theirs);
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                readable(&ours).await;
                match ours.try_read_spare(&mut buf) {
                    Ok(n) => break assert_eq!(n, 0),
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
                }
            }
        })
        .await
        .expect("end of stream");
    }
}
