//! One file region on its way to a socket.

use std::fs::File;
use std::io;
use std::ops::Range;

use tracing::debug;

use crate::sink::{refuses_sendfile, Sink};
use crate::{counters, refused};

/// Linux sends at most this much per call (`MAX_RW_COUNT`).
pub const MAX_CHUNK: usize = 0x7fff_f000;

/// How a transfer moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `sendfile` straight from the page cache (Linux); the copy where the
    /// platform or the file system cannot.
    Sendfile,
    /// `pread` into one reusable buffer, then `write`.
    Copy,
}

/// How transfers are made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The method to try first (default [`Method::Sendfile`]).
    pub method: Method,
    /// Most bytes per system call (default 4 MiB, as Go does: one transfer
    /// does not hold a thread for long; never more than [`MAX_CHUNK`]).
    pub max_chunk: usize,
    /// Size of the copy path's buffer (default 128 KiB).
    pub copy_buffer: usize,
    /// Ask the kernel to read the region ahead when the transfer starts
    /// (`posix_fadvise(WILLNEED)`; default on; the kernel may read only
    /// the start of a large region), so that a cold page cache stalls the
    /// sender less.
    pub prefetch: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            method: Method::Sendfile,
            max_chunk: 4 << 20,
            copy_buffer: 128 << 10,
            prefetch: true,
        }
    }
}

/// A transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The range starts after it ends, or ends past `i64::MAX`.
    #[error("invalid range {start}..{end}")]
    InvalidRange {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// The file ended before the range did (truncated while it was sent):
    /// what was sent is not the region asked for.
    #[error("the file ended at byte {at}, before the end of the range at {end}")]
    Truncated {
        /// Where the file ended.
        at: u64,
        /// Where the range ends.
        end: u64,
    },
    /// The socket or the file failed (`WouldBlock` is not an error of the
    /// transfer: wait for the socket to be writable and call again).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl TransferError {
    /// Whether the socket just cannot take more now.
    pub fn is_would_block(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl From<TransferError> for io::Error {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Io(e) => e,
            TransferError::InvalidRange { .. } => Self::new(io::ErrorKind::InvalidInput, e),
            TransferError::Truncated { .. } => Self::new(io::ErrorKind::UnexpectedEof, e),
        }
    }
}

/// A file region being sent to a non-blocking socket, one system call per
/// [`send`](Self::send): the caller waits for writability on
/// `WouldBlock` and calls again until [`is_done`](Self::is_done).
///
/// Linux sends with `sendfile` (the socket's pages reference the page
/// cache; no byte passes through user space). Where `sendfile` is refused
/// (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`: a file system that cannot), the
/// transfer continues with the copy from exactly where it was, and later
/// transfers of files on that file system copy from the start. Other
/// platforms copy.
#[derive(Debug)]
pub struct Transfer {
    file: File,
    /// Next byte of the file to send (sendfile) or to read (copy).
    offset: u64,
    end: u64,
    method: Method,
    max_chunk: usize,
    copy_buffer: usize,
    /// The copy path's buffer: `buf[pos..len]` was read and not yet sent.
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    by_sendfile: u64,
    by_copy: u64,
}

impl Transfer {
    /// A transfer of `range` of `file`.
    pub fn new(file: File, range: Range<u64>, options: &Options) -> Result<Self, TransferError> {
        // Offsets are signed on the system side (`off_t`): past it, every
        // call would fail, and sendfile's EINVAL would look like a refusal.
        if range.start > range.end || range.end > i64::MAX as u64 {
            return Err(TransferError::InvalidRange {
                start: range.start,
                end: range.end,
            });
        }
        let mut method = options.method;
        if method == Method::Sendfile && device_of(&file).is_some_and(refused::refused) {
            method = Method::Copy;
        }
        if options.prefetch && range.end > range.start {
            prefetch(&file, range.start, range.end - range.start);
        }
        Ok(Self {
            file,
            offset: range.start,
            end: range.end,
            method,
            max_chunk: options.max_chunk.clamp(1, MAX_CHUNK),
            copy_buffer: options.copy_buffer.max(1),
            buf: Vec::new(),
            pos: 0,
            len: 0,
            by_sendfile: 0,
            by_copy: 0,
        })
    }

    /// Sends what the socket takes in one system call (the copy path: one
    /// `pread` when its buffer is empty, and one `write`). Returns the bytes
    /// sent; 0 only once done. `WouldBlock` means: wait until the socket
    /// is writable.
    pub fn send(&mut self, sink: &impl Sink) -> Result<usize, TransferError> {
        if self.is_done() {
            return Ok(0);
        }
        if self.method == Method::Sendfile {
            match self.send_file(sink) {
                Err(TransferError::Io(e)) if refuses_sendfile(&e) => {
                    debug!(error = %e, "sendfile refused: copying");
                    counters::add_fallback();
                    // Blamed on the file system only when the destination is
                    // a socket (a file opened for appending refuses too) and
                    // the offset is inside the file.
                    let inside = self.file.metadata().is_ok_and(|m| self.offset < m.len());
                    if sink.is_socket() && inside {
                        if let Some(device) = device_of(&self.file) {
                            refused::remember(device);
                        }
                    }
                    self.method = Method::Copy;
                }
                other => return other,
            }
        }
        self.copy(sink)
    }

    fn send_file(&mut self, sink: &impl Sink) -> Result<usize, TransferError> {
        let count = self.chunk();
        let n = retry_interrupted(|| sink.send_file(&self.file, &mut self.offset, count))?;
        if n == 0 {
            return Err(TransferError::Truncated {
                at: self.offset,
                end: self.end,
            });
        }
        self.by_sendfile += n as u64;
        counters::add_sendfile(n);
        Ok(n)
    }

    fn copy(&mut self, sink: &impl Sink) -> Result<usize, TransferError> {
        if self.pos == self.len {
            let want = self.chunk().min(self.copy_buffer);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let n = retry_interrupted(|| read_at(&self.file, &mut self.buf[..want], self.offset))?;
            if n == 0 {
                return Err(TransferError::Truncated {
                    at: self.offset,
                    end: self.end,
                });
            }
            self.offset += n as u64;
            self.pos = 0;
            self.len = n;
        }
        let n = retry_interrupted(|| sink.write_some(&self.buf[self.pos..self.len]))?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero).into());
        }
        self.pos += n;
        self.by_copy += n as u64;
        counters::add_copy(n);
        Ok(n)
    }

    /// Asks the kernel to read the rest of the region ahead
    /// (`posix_fadvise(WILLNEED)`; what [`Options::prefetch`] does at the
    /// start). It may read file metadata from the disk: call it where
    /// blocking is fine.
    pub fn prefetch(&self) {
        if self.end > self.offset {
            prefetch(&self.file, self.offset, self.end - self.offset);
        }
    }

    /// Sends the whole rest to a non-blocking socket from the calling
    /// thread, waiting for writability with `poll(2)` whenever it is full;
    /// fails with `TimedOut` when it stays full for `stall`. For a thread
    /// of its own (a cold page cache then stalls only this thread). Returns
    /// the bytes sent.
    #[cfg(unix)]
    pub fn send_all_polling(
        &mut self,
        socket: &impl std::os::fd::AsFd,
        stall: std::time::Duration,
    ) -> Result<u64, TransferError> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut sent = 0u64;
        let timeout = Timespec::try_from(stall).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        while !self.is_done() {
            match self.send(socket) {
                Ok(n) => sent += n as u64,
                Err(e) if e.is_would_block() => {
                    let mut fds = [PollFd::new(socket, PollFlags::OUT)];
                    let ready = retry_interrupted(|| Ok(poll(&mut fds, Some(&timeout))?))?;
                    if ready == 0 {
                        return Err(io::Error::from(io::ErrorKind::TimedOut).into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Bytes for the next call: what is left, at most a chunk.
    fn chunk(&self) -> usize {
        let left = self.end - self.offset;
        usize::try_from(left).map_or(self.max_chunk, |l| l.min(self.max_chunk))
    }

    /// Bytes of the region not yet sent.
    pub fn remaining(&self) -> u64 {
        self.end - self.offset + (self.len - self.pos) as u64
    }

    /// Whether the whole region was sent.
    pub fn is_done(&self) -> bool {
        self.remaining() == 0
    }

    /// The method it uses now.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Bytes this transfer sent with `sendfile` and with the copy.
    pub fn sent_by(&self) -> (u64, u64) {
        (self.by_sendfile, self.by_copy)
    }

    /// The file, given back.
    pub fn into_file(self) -> File {
        self.file
    }
}

fn retry_interrupted<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(unix)]
fn device_of(file: &File) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| m.dev())
}

#[cfg(not(unix))]
fn device_of(_: &File) -> Option<u64> {
    None
}

/// Asks the kernel to read `len` bytes from `offset` ahead (best effort).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn prefetch(file: &File, offset: u64, len: u64) {
    let len = std::num::NonZeroU64::new(len);
    if let Err(e) = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::WillNeed) {
        debug!(error = %e, "fadvise(WILLNEED) failed");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn prefetch(_: &File, _: u64, _: u64) {}
