//! A [`Socket`] that is a TLS session over another socket: reads give
//! plaintext, writes take plaintext, and the records go to and from the
//! socket beneath. Records rustls has made but the socket could not take
//! yet are flushed by `poll_flush` (the driver and the HTTP writers call
//! it), by every later read or write, and on readiness.

use std::future::poll_fn;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use rustls_pki_types::ServerName;

use tracing::{debug, warn};

use crate::runtime::{check_spare, Socket};

/// Records a session holds for the socket at most (plaintext taken in
/// past this waits for the socket).
const SEND_BUFFER: usize = 256 * 1024;

/// Bytes read from the socket at once for rustls.
const CIPHER_CHUNK: usize = 64 * 1024;

/// The exporter label the grid's set-up binds to.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-gridmux-link-v1";

/// The socket beneath as `io::Read`/`io::Write` for rustls (non-blocking:
/// `WouldBlock` passes through).
struct Beneath<'a>(&'a dyn Socket);

impl Read for Beneath<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Beneath<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the records rustls holds; `Ok(false)` if the socket is full.
fn flush(conn: &mut Connection, socket: &dyn Socket) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut Beneath(socket)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Processes what `read_tls` took in; a protocol error sends its alert
/// (best effort) and fails the session.
fn process(conn: &mut Connection, socket: &dyn Socket) -> io::Result<()> {
    if let Err(e) = conn.process_new_packets() {
        let _ = flush(conn, socket);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Ok(())
}

/// The error of a session that failed after its handshake, logged. The
/// dialer's side says why at `warn`: under mutual TLS the acceptor checks
/// the dialer's certificate after the dialer's handshake is done, so a
/// refusal (an alert: `UnknownCA`, `CertificateExpired`…) arrives here.
/// The acceptor's side (anyone may complete a handshake when client
/// certificates are not required) logs at `debug`.
fn failed(conn: &Connection, error: rustls::Error) -> io::Error {
    if matches!(conn, Connection::Client(_)) {
        warn!(%error, "TLS session failed (the peer refused us, or sent what TLS refuses)");
    } else {
        debug!(%error, "TLS session failed");
    }
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// The server name a dialer checks the acceptor's certificate against:
/// the host part of a `host:port` peer name (an IP address or a DNS name).
pub(crate) fn server_name(remote: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(super::host_of(remote).to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{remote}: no TLS server name in it: {e}"),
        )
    })
}

/// Runs the handshake of `conn` over `socket` to its end. The caller
/// bounds it in time (a peer that never finishes must not hold us).
async fn handshake(socket: Box<dyn Socket>, mut conn: Connection) -> io::Result<TlsSocket> {
    poll_fn(|cx| loop {
        while conn.wants_write() {
            match conn.write_tls(&mut Beneath(&*socket)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_writable(cx))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if !conn.is_handshaking() {
            return Poll::Ready(Ok(()));
        }
        match conn.read_tls(&mut Beneath(&*socket)) {
            Ok(0) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the TLS handshake",
                )))
            }
            Ok(_) => process(&mut conn, &*socket)?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.poll_readable(cx))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    })
    .await?;
    // Larger writes per system call; still a bound on what a session
    // holds when the socket is full (rustls's default is 64 KiB).
    conn.set_buffer_limit(Some(SEND_BUFFER));
    Ok(TlsSocket {
        socket,
        conn: Mutex::new(conn),
        cipher: Mutex::new(BytesMut::new()),
    })
}

/// The dialer's handshake: checks the acceptor's certificate against
/// `name`.
pub(crate) async fn connect(
    socket: Box<dyn Socket>,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<TlsSocket> {
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    handshake(socket, conn.into()).await
}

/// The acceptor's handshake.
pub(crate) async fn accept(
    socket: Box<dyn Socket>,
    config: Arc<ServerConfig>,
) -> io::Result<TlsSocket> {
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    handshake(socket, conn.into()).await
}

/// An established TLS session over a socket.
#[derive(Debug)]
pub(crate) struct TlsSocket {
    socket: Box<dyn Socket>,
    conn: Mutex<Connection>,
    /// Records read from the socket and not yet taken in by rustls (lock
    /// order: `conn`, then this).
    cipher: Mutex<BytesMut>,
}

impl TlsSocket {
    fn cipher(&self) -> MutexGuard<'_, BytesMut> {
        self.cipher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One non-blocking read of up to `room` plaintext bytes, handed to
    /// `take` in pieces as rustls holds them (no copy of our own in
    /// between); `Ok(0)` is the end of the session (`close_notify`). The
    /// records already received are all taken in before the socket is read
    /// again, and the socket is read only while nothing was taken. What came
    /// before a fault (a bad record, the connection's end) is read first;
    /// the next read reports the fault.
    fn read_plaintext(&self, room: usize, mut take: impl FnMut(&[u8])) -> io::Result<usize> {
        let mut conn = self.conn();
        let mut cipher = self.cipher();
        let mut taken = 0;
        loop {
            let mut reader = conn.reader();
            match reader.fill_buf() {
                // The end (close_notify), after what came before it.
                Ok([]) => return Ok(taken),
                Ok(plain) => {
                    let n = plain.len().min(room - taken);
                    take(&plain[..n]);
                    reader.consume(n);
                    taken += n;
                    if taken == room {
                        return Ok(taken);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The connection ended without close_notify.
                Err(e) if taken > 0 => {
                    debug!(%e, "TLS read ends after the bytes at hand");
                    return Ok(taken);
                }
                Err(e) => return Err(e),
            }
            // No plaintext is held here: rustls takes records in only then
            // (with some held it may refuse them, its buffer "full").
            // rustls keeps a fault: one found earlier shows here again.
            match conn.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    let _ = flush(&mut conn, &*self.socket);
                    if taken > 0 {
                        return Ok(taken);
                    }
                    // Records opened before the bad one: theirs first.
                    if matches!(conn.reader().fill_buf(), Ok(p) if !p.is_empty()) {
                        continue;
                    }
                    return Err(failed(&conn, e));
                }
            }
            if !cipher.is_empty() {
                match conn.read_tls(&mut &cipher[..]) {
                    // After close_notify nothing more is taken in: what the
                    // peer sent after it is dropped, and the session ends.
                    Ok(0) => cipher.clear(),
                    Ok(n) => cipher.advance(n),
                    // The same again on the next read.
                    Err(_) if taken > 0 => return Ok(taken),
                    Err(e) => return Err(e),
                }
                continue;
            }
            if taken > 0 {
                return Ok(taken);
            }
            // Answers the peer may wait for (a key update's) go first; a
            // failed write does not stop reading (see `poll_readable`).
            let _ = flush(&mut conn, &*self.socket);
            // One large read, handed to rustls in as many pieces as it
            // takes (it reads a few KiB at a time itself).
            cipher.reserve(CIPHER_CHUNK);
            match self.socket.try_read_spare(&mut cipher) {
                Ok(0) => {
                    conn.read_tls(&mut io::empty())?;
                }
                Ok(_) => {}
                Err(e) => {
                    // Nothing to read (or the end): an idle session keeps
                    // no buffer.
                    *cipher = BytesMut::new();
                    return Err(e);
                }
            }
        }
    }
}

impl Socket for TlsSocket {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut conn = self.conn();
        // Records still to go: wake when the socket takes them too. A
        // failed write does not stop reading (the peer's last bytes may
        // still be there); the next write reports it.
        if let Ok(false) = flush(&mut conn, &*self.socket) {
            let _ = self.socket.poll_writable(cx);
        }
        let state = conn.process_new_packets().map_err(|e| failed(&conn, e))?;
        let buffered = !self.cipher().is_empty();
        if buffered || state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
            return Poll::Ready(Ok(()));
        }
        drop(conn);
        self.socket.poll_readable(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if flush(&mut self.conn(), &*self.socket)? {
            return Poll::Ready(Ok(()));
        }
        self.socket.poll_writable(cx)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        self.read_plaintext(buf.len(), |chunk| {
            buf[filled..filled + chunk.len()].copy_from_slice(chunk);
            filled += chunk.len();
        })
    }

    fn try_read_spare(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let room = check_spare(buf)?;
        // Straight from rustls's plaintext into the spare room: one copy,
        // none through a chunk of our own, and never a reallocation.
        self.read_plaintext(room, |chunk| buf.extend_from_slice(chunk))
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = self.conn();
        // Older records first: never more than one batch held here.
        if !flush(&mut conn, &*self.socket)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = conn.writer().write_vectored(bufs)?;
        flush(&mut conn, &*self.socket)?;
        Ok(n)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Bounded: a socket that keeps reporting writable but takes nothing
        // gets another wake-up rather than a spin.
        for _ in 0..4 {
            if flush(&mut self.conn(), &*self.socket)? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.socket.poll_writable(cx))?;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    fn is_encrypted(&self) -> bool {
        true
    }

    fn tls_exporter(&self) -> Option<[u8; 32]> {
        // RFC 8446 §7.5; the label is ours (RFC 5705 reserves none).
        self.conn()
            .export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .ok()
    }

    fn shutdown(&self) {
        let mut conn = self.conn();
        conn.send_close_notify();
        // Best effort: a closing peer may not read any more.
        let _ = flush(&mut conn, &*self.socket);
        drop(conn);
        self.socket.shutdown();
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
