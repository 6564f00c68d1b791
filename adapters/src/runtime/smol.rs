//! The smol runtime (feature `smol`): an executor of the application's
//! choice (by default a pool of one thread per core) and async-io.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use bytes::BytesMut;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use smol::channel::{Receiver, Sender};
use smol::future::Future;
use smol::{Async, Executor, Timer as AsyncTimer};

use super::{BoxFuture, Listener, Runtime, Socket, Timer};

/// Runs gridmux on smol: tasks on an executor, sockets and timers on
/// async-io's reactor. One link carries all traffic between two nodes, so
/// tasks need more than one thread: [`SmolRuntime::new`] runs its own
/// executor on one thread per core; [`with_threads`](Self::with_threads)
/// picks the count; [`with_executor`](Self::with_executor) uses an
/// executor the application runs; [`global`](Self::global) uses smol's
/// global executor (`SMOL_THREADS` threads, 1 by default).
#[derive(Debug, Clone)]
pub struct SmolRuntime {
    spawner: Spawner,
}

#[derive(Debug, Clone)]
enum Spawner {
    Global,
    Executor(Arc<Executor<'static>>),
    Pool(Arc<Pool>),
}

/// Threads running an executor until the last runtime handle is dropped.
#[derive(Debug)]
struct Pool {
    executor: Arc<Executor<'static>>,
    /// Closed on drop: every thread's `run` returns.
    _stop: Sender<()>,
}

impl Default for SmolRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl SmolRuntime {
    /// An executor of its own on one thread per core.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_threads(cores)
    }

    /// An executor of its own on `threads` threads (at least 1). They stop
    /// when the last clone of the runtime is dropped.
    pub fn with_threads(threads: usize) -> Self {
        let executor = Arc::new(Executor::new());
        let (stop, stopped): (Sender<()>, Receiver<()>) = smol::channel::bounded(1);
        for i in 0..threads.max(1) {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("gridmux-smol-{i}"))
                .spawn(move || {
                    smol::block_on(executor.run(async move {
                        let _ = stopped.recv().await;
                    }));
                });
            if let Err(e) = spawned {
                tracing::warn!(%e, "could not start an executor thread");
            }
        }
        Self {
            spawner: Spawner::Pool(Arc::new(Pool {
                executor,
                _stop: stop,
            })),
        }
    }

    /// Tasks go to `executor`, which the application runs.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        Self {
            spawner: Spawner::Executor(executor),
        }
    }

    /// Tasks go to smol's global executor.
    pub fn global() -> Self {
        Self {
            spawner: Spawner::Global,
        }
    }
}

impl Runtime for SmolRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        match &self.spawner {
            Spawner::Global => smol::spawn(future).detach(),
            Spawner::Executor(executor) => executor.spawn(future).detach(),
            Spawner::Pool(pool) => pool.executor.spawn(future).detach(),
        }
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(SmolTimer(AsyncTimer::at(deadline)))
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Socket>>> {
        Box::pin(async move {
            let stream = Async::<TcpStream>::connect(addr).await?;
            stream.get_ref().set_nodelay(true)?;
            Ok(Box::new(SmolSocket(stream)) as Box<dyn Socket>)
        })
    }

    fn adopt_listener(&self, listener: TcpListener) -> io::Result<Box<dyn Listener>> {
        Ok(Box::new(SmolListener(Async::new(listener)?)))
    }

    fn resolve(&self, name: String) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        use std::net::ToSocketAddrs as _;
        // smol's blocking pool.
        Box::pin(smol::unblock(move || {
            name.to_socket_addrs().map(Iterator::collect)
        }))
    }
}

#[derive(Debug)]
struct SmolTimer(AsyncTimer);

impl Timer for SmolTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.set_at(deadline);
    }

    fn poll_fire(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

#[derive(Debug)]
struct SmolSocket(Async<TcpStream>);

impl Socket for SmolSocket {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut stream = self.0.get_ref();
        stream.read(buf)
    }

    fn try_read_spare(&self, buf: &mut BytesMut) -> io::Result<usize> {
        // async-io caches no readiness: a direct receive is what its own
        // reads do.
        super::recv_into_spare(self.0.get_ref().as_fd(), buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut stream = self.0.get_ref();
        stream.write_vectored(bufs)
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[derive(Debug)]
struct SmolListener(Async<TcpListener>);

impl Listener for SmolListener {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn Socket>>> {
        loop {
            match self.0.get_ref().accept() {
                Ok((stream, _)) => {
                    stream.set_nodelay(true)?;
                    let socket = SmolSocket(Async::new(stream)?);
                    return Poll::Ready(Ok(Box::new(socket)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::task::ready!(self.0.poll_readable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
