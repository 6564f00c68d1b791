//! The tokio runtime (feature `tokio`).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::time::Sleep;

use super::{BoxFuture, Listener, Runtime, Socket, Timer};

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
