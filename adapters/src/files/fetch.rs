//! Fetching from a peer's file plane: a signed `GET` on a kept-alive
//! connection, the body read into memory or spliced into a file.

use std::fs::File;
use std::future::poll_fn;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, BytesMut};
use gridmux_core::auth::request::{self, RequestAuthError};
use gridmux_core::http::files::{self, range_header, FileToSign};
use gridmux_core::http::{parse_response, Limits, ResponseHead};
use gridmux_core::ws::Transmit;
use gridmux_sendfile::{writable_at_offsets, write_all_at, ReceiveMethod, Receiver};

use crate::dial::connect;
use crate::grid::Node;
use crate::io::{read_some, write_all};
use crate::runtime::Socket;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No connection to the peer's port.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The peer answered with an error status (`message` is its text).
    #[error("the peer answered {status}: {message}")]
    Status {
        /// The status code (`401`, `403`, `404`, `416`, `503`, …).
        status: u16,
        /// The start of the answer's body.
        message: String,
    },
    /// The body ended before its `Content-Length`: what was received is
    /// not the file.
    #[error("the body ended after {received} of {expected} bytes")]
    ShortBody {
        /// The announced length.
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// Nothing moved on the connection for this long.
    #[error("no progress for {0:?}")]
    Stalled(Duration),
    /// The answer is not a well-formed response to what was asked.
    #[error("bad response: {0}")]
    Protocol(String),
    /// The range is empty or reversed.
    #[error("invalid range {0:?}")]
    InvalidRange(Range<u64>),
    /// The request could not be signed (a key or name not in the form
    /// signatures need).
    #[error("signing: {0}")]
    Sign(#[from] RequestAuthError),
    /// Reading the socket or writing the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How much of an error answer is kept as its message.
const MAX_MESSAGE: u64 = 4096;

/// The body of a fetched file (`200`, or `206` for a range), read from
/// the connection as it arrives: with [`read`](Self::read), as a
/// `futures_io::AsyncRead`, or into a file with
/// [`write_to_file`](Self::write_to_file). Read whole, its connection goes
/// back to the peer's pool; dropped earlier, the connection is closed.
#[derive(Debug)]
pub struct FileBody {
    head: ResponseHead,
    len: u64,
    remaining: u64,
    buffered: BytesMut,
    socket: Option<Box<dyn Socket>>,
    node: Arc<Node>,
    peer: Arc<str>,
    stall: Duration,
}

impl FileBody {
    /// The status: `200`, or `206` for a range.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The length of the body.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A header of the response, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header_str(name)
    }

    /// The file's entity tag.
    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// Reads some of the body into `buf`; `Ok(0)` once it is all read. A
    /// connection that ends early is [`FetchError::ShortBody`]; one that
    /// makes no progress for the stall timeout is [`FetchError::Stalled`].
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, FetchError> {
        let node = self.node.clone();
        let stall = self.stall;
        match node
            .timeout(stall, poll_fn(|cx| self.poll_body(cx, buf)))
            .await
        {
            Some(result) => result,
            None => Err(FetchError::Stalled(stall)),
        }
    }

    /// The whole body.
    pub async fn to_vec(mut self) -> Result<Vec<u8>, FetchError> {
        // The length is the peer's word: grow as bytes arrive past 64 MiB.
        let mut out = Vec::with_capacity(self.len.min(64 << 20) as usize);
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            match self.read(&mut chunk).await? {
                0 => return Ok(out),
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Writes the body into `file` from `offset` (with `splice` on Linux:
    /// socket → pipe → file, no byte in user space; a copy elsewhere, or
    /// where the file system refuses). Returns the bytes written. The file
    /// writes block the task: they go to the page cache.
    pub async fn write_to_file(self, file: &File, offset: u64) -> Result<u64, FetchError> {
        self.write_to_file_reporting(file, offset, &mut |_| {})
            .await
    }

    /// [`write_to_file`](Self::write_to_file), calling `progress` with the
    /// bytes written so far after each step (for a progress bar).
    pub async fn write_to_file_reporting(
        mut self,
        file: &File,
        offset: u64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, FetchError> {
        writable_at_offsets(file)?;
        if self.socket.as_deref().is_some_and(|s| s.is_encrypted()) {
            // TLS: the bytes on the socket are records, not the body; they
            // are decrypted through the socket and copied into the file.
            return self.copy_to_file(file, offset, progress).await;
        }
        let mut at = offset;
        let early = self.buffered.len().min(self.remaining as usize);
        write_all_at(file, &self.buffered[..early], &mut at)?;
        self.buffered.advance(early);
        self.remaining -= early as u64;
        let mut receiver = Receiver::new(ReceiveMethod::Splice);
        while self.remaining > 0 {
            let Some(socket) = self.socket.as_deref() else {
                return Err(self.short());
            };
            let fd = socket.as_fd();
            let remaining = self.remaining;
            let step = socket.try_read_with(&mut || receiver.receive(fd, file, &mut at, remaining));
            match step {
                Ok(0) => return Err(self.short()),
                Ok(n) => {
                    self.remaining -= n as u64;
                    progress(self.len - self.remaining);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let readable = poll_fn(|cx| socket.poll_readable(cx));
                    match self.node.timeout(self.stall, readable).await {
                        Some(r) => r?,
                        None => return Err(FetchError::Stalled(self.stall)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.finish();
        Ok(self.len)
    }

    /// The body read through the socket (decrypted) and written to
    /// `file` from `offset`.
    async fn copy_to_file(
        mut self,
        file: &File,
        offset: u64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, FetchError> {
        let mut at = offset;
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            match self.read(&mut chunk).await? {
                0 => return Ok(self.len),
                n => {
                    write_all_at(file, &chunk[..n], &mut at)?;
                    progress(self.len - self.remaining);
                }
            }
        }
    }

    fn short(&self) -> FetchError {
        FetchError::ShortBody {
            expected: self.len,
            received: self.len - self.remaining,
        }
    }

    /// The body is read: the connection goes back to the pool.
    fn finish(&mut self) {
        if self.remaining == 0 && self.buffered.is_empty() && self.head.keep_alive() {
            if let Some(socket) = self.socket.take() {
                self.node.files.pool.put(&self.peer, socket);
            }
        }
        self.socket = None;
    }

    fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, FetchError>> {
        if self.remaining == 0 || buf.is_empty() {
            if self.remaining == 0 {
                self.finish();
            }
            return Poll::Ready(Ok(0));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if !self.buffered.is_empty() {
            let n = want.min(self.buffered.len());
            buf[..n].copy_from_slice(&self.buffered[..n]);
            self.buffered.advance(n);
            self.remaining -= n as u64;
            return Poll::Ready(Ok(n));
        }
        let Some(socket) = self.socket.as_deref() else {
            return Poll::Ready(Err(self.short()));
        };
        loop {
            match socket.try_read(&mut buf[..want]) {
                Ok(0) => return Poll::Ready(Err(self.short())),
                Ok(n) => {
                    self.remaining -= n as u64;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(socket.poll_readable(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

/// Without the stall timeout of [`FileBody::read`]: bound it yourself.
impl futures_lite::AsyncRead for FileBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_body(cx, buf).map_err(|e| match e {
            FetchError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::UnexpectedEof, e),
        })
    }
}

/// Fetches `range` (or all) of `key` on `route` from `peer`'s file plane.
pub(crate) async fn fetch(
    node: &Arc<Node>,
    peer: &Arc<str>,
    route: &str,
    key: &str,
    range: Option<Range<u64>>,
) -> Result<FileBody, FetchError> {
    if let Some(r) = &range {
        if r.start >= r.end {
            return Err(FetchError::InvalidRange(r.clone()));
        }
    }
    let request = signed_request(node, peer, route, key, range.as_ref())?;
    let stall = node.files.limits.send_timeout;
    // A pooled connection the peer closed meanwhile fails before any
    // answer: the request (a GET) is sent again on a fresh one.
    let (head, socket, buffered) = loop {
        let pooled = node.files.pool.take(peer);
        let reused = pooled.is_some();
        let socket = match pooled {
            Some(socket) => socket,
            None => connect(node, peer).await.map_err(FetchError::Connect)?,
        };
        match exchange(node, &*socket, &request, stall).await {
            Ok((head, buffered)) => break (head, socket, buffered),
            Err(Exchange::NoAnswer(_)) if reused => {}
            Err(Exchange::NoAnswer(e) | Exchange::Failed(e)) => return Err(e),
        }
    };
    let len = head
        .body_len(false)
        .map_err(|e| FetchError::Protocol(e.to_string()))?;
    let body = FileBody {
        head,
        len,
        remaining: len,
        buffered,
        socket: Some(socket),
        node: node.clone(),
        peer: peer.clone(),
        stall,
    };
    match (body.status(), &range) {
        (200, None) => {}
        (206, Some(asked)) => check_content_range(&body, asked)?,
        (200 | 206, _) => {
            return Err(FetchError::Protocol(format!(
                "status {} for {}",
                body.status(),
                if range.is_some() {
                    "a range"
                } else {
                    "a whole file"
                }
            )))
        }
        (status, _) => {
            // Keep the connection if the message is short: read it whole.
            let mut message = Vec::new();
            if body.len <= MAX_MESSAGE {
                message = body.to_vec().await.unwrap_or_default();
            }
            return Err(FetchError::Status {
                status,
                message: String::from_utf8_lossy(&message).trim_end().to_owned(),
            });
        }
    }
    Ok(body)
}

/// A `206` must be the bytes asked for, or fewer only where the file
/// ends: `bytes first-last/total` with `first` the start asked for, the
/// body `last - first + 1` bytes, and `last` the end asked for or the
/// file's last byte.
fn check_content_range(body: &FileBody, asked: &Range<u64>) -> Result<(), FetchError> {
    let bad = || FetchError::Protocol(format!("Content-Range {:?}", body.header("content-range")));
    let value = body.header("content-range").ok_or_else(bad)?;
    let (span, total) = value
        .strip_prefix("bytes ")
        .and_then(|v| v.split_once('/'))
        .ok_or_else(bad)?;
    let (first, last) = span.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (first, last, total) = (number(first)?, number(last)?, number(total)?);
    let fits = first == asked.start
        && last >= first
        && last < total
        && last - first + 1 == body.len
        && (last + 1 == asked.end || (last + 1 == total && total < asked.end));
    if fits {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The request's bytes, signed in an `Authorization` header.
fn signed_request(
    node: &Node,
    peer: &str,
    route: &str,
    key: &str,
    range: Option<&Range<u64>>,
) -> Result<Transmit, FetchError> {
    let range = range.and_then(range_header);
    let limits = &node.files.limits;
    let signed = files::sign(
        &node.config().keys,
        &FileToSign {
            method: "GET",
            route,
            key,
            range: range.as_deref(),
            signer: &node.local,
            expires: request::expires_at(SystemTime::now(), limits.max_signature_validity),
        },
    )?;
    let mut text = format!(
        "GET {} HTTP/1.1\r\nHost: {peer}\r\nAuthorization: {}\r\n",
        signed.target,
        signed.authorization()
    );
    if let Some(range) = range {
        text.push_str(&format!("Range: {range}\r\n"));
    }
    text.push_str("\r\n");
    let mut out = Transmit::new();
    out.push(text.into());
    Ok(out)
}

/// How one request on one connection failed.
enum Exchange {
    /// Nothing of an answer arrived (a stale pooled connection).
    NoAnswer(FetchError),
    /// Anything else.
    Failed(FetchError),
}

/// Sends `request` and reads the response head; returns it and the body
/// bytes that came with it.
async fn exchange(
    node: &Node,
    socket: &dyn Socket,
    request: &Transmit,
    stall: Duration,
) -> Result<(ResponseHead, BytesMut), Exchange> {
    let mut out = request.clone();
    match node.timeout(stall, write_all(socket, &mut out)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(Exchange::NoAnswer(e.into())),
        None => return Err(Exchange::Failed(FetchError::Stalled(stall))),
    }
    // The whole head within the stall timeout: a server trickling it a
    // byte at a time does not hold the fetch for longer.
    match node.timeout(stall, read_head(socket)).await {
        Some(result) => result,
        None => Err(Exchange::Failed(FetchError::Stalled(stall))),
    }
}

/// Most interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;

/// Reads the final response head, skipping interim `1xx` ones (RFC 9110
/// §15.2: a client must accept them); returns it and the bytes after it.
async fn read_head(socket: &dyn Socket) -> Result<(ResponseHead, BytesMut), Exchange> {
    let mut input = BytesMut::with_capacity(4096);
    let mut interim = 0;
    loop {
        match parse_response(&input, Limits::default()) {
            Ok(None) => {}
            Ok(Some((head, len))) if (100..200).contains(&head.status) => {
                interim += 1;
                if head.status == 101 || interim > MAX_INTERIM {
                    let why = format!("interim response {} (#{interim})", head.status);
                    return Err(Exchange::Failed(FetchError::Protocol(why)));
                }
                input.advance(len);
                continue;
            }
            Ok(Some((head, len))) => {
                input.advance(len);
                return Ok((head, input));
            }
            Err(e) => return Err(Exchange::Failed(FetchError::Protocol(e.to_string()))),
        }
        let nothing_yet = input.is_empty() && interim == 0;
        match read_some(socket, &mut input).await {
            Ok(0) if nothing_yet => {
                let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                return Err(Exchange::NoAnswer(eof.into()));
            }
            Ok(0) => {
                return Err(Exchange::Failed(FetchError::Protocol(
                    "connection closed within the response head".into(),
                )))
            }
            Ok(_) => {}
            Err(e) if nothing_yet => return Err(Exchange::NoAnswer(e.into())),
            Err(e) => return Err(Exchange::Failed(e.into())),
        }
    }
}
