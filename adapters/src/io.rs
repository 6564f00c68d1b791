//! Small async IO helpers on a [`Socket`] for the HTTP phase of a
//! connection (the link driver has its own loop).

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::task::{ready, Poll};

use bytes::BytesMut;
use gridmux_core::ws::Transmit;

use crate::runtime::Socket;

/// Reads once into `buf`; `Ok(0)` is end of stream.
pub(crate) async fn read_some(socket: &dyn Socket, buf: &mut BytesMut) -> io::Result<usize> {
    poll_fn(|cx| loop {
        let mut chunk = [0u8; 4096];
        match socket.try_read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Poll::Ready(Ok(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.poll_readable(cx))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    })
    .await
}

/// Writes all of `out`.
pub(crate) async fn write_all(socket: &dyn Socket, out: &mut Transmit) -> io::Result<()> {
    poll_fn(|cx| loop {
        if out.is_empty() {
            return socket.poll_flush(cx);
        }
        let mut slices = [IoSlice::new(&[]); 16];
        let n = out.io_slices(&mut slices);
        match socket.try_write_vectored(&slices[..n]) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.poll_writable(cx))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    })
    .await
}

/// Shuts the socket down both ways (errors mean it already is).
pub(crate) fn shutdown(socket: &dyn Socket) {
    socket.shutdown();
}
