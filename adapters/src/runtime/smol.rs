//! The smol runtime (feature `smol`): smol's global executor and async-io.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use smol::future::Future;
use smol::{Async, Timer as AsyncTimer};

use super::{BoxFuture, Listener, Runtime, Socket, Timer};

/// Runs gridmux on smol: tasks on its global executor, sockets and
/// timers on async-io's reactor.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        smol::spawn(future).detach();
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
