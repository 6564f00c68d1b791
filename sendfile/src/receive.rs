//! Bytes from a socket into a file region: `splice` through a pipe on
//! Linux (socket → pipe → file, no byte in user space), a read into one
//! reusable buffer and a positioned write elsewhere.

use std::fs::File;
use std::io;

use tracing::debug;

use crate::counters;

/// How a [`Receiver`] moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMethod {
    /// `splice` socket → pipe → file (Linux).
    Splice,
    /// `read` into a buffer, then `pwrite`.
    Copy,
}

/// Moves bytes from a non-blocking socket into a file at given offsets,
/// one socket read per [`receive`](Self::receive): the caller waits for
/// readability when it returns `WouldBlock`. The file writes block (a
/// file is always "ready").
///
/// On Linux it splices through a pipe of its own. If the file's file
/// system refuses `splice` (`EINVAL`), what is already in the pipe is
/// read out and written, and the receiver copies from then on.
#[derive(Debug)]
pub struct Receiver {
    method: ReceiveMethod,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pipe: Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
    buf: Vec<u8>,
}

/// Most bytes moved per call.
const CHUNK: usize = 1 << 20;

impl Receiver {
    /// A receiver that splices where it can (`method` says where to start).
    pub fn new(method: ReceiveMethod) -> Self {
        let method = if cfg!(any(target_os = "linux", target_os = "android")) {
            method
        } else {
            ReceiveMethod::Copy
        };
        Self {
            method,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            pipe: None,
            buf: Vec::new(),
        }
    }

    /// How it moves bytes now.
    pub fn method(&self) -> ReceiveMethod {
        self.method
    }

    /// One read of at most `max` bytes from `socket`, all of it written to
    /// `file` at `*offset` (advanced). `Ok(0)` is the end of the socket's
    /// stream (or `max` 0); `WouldBlock` means nothing is there yet.
    pub fn receive(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        file: &File,
        offset: &mut u64,
        max: u64,
    ) -> io::Result<usize> {
        let max = usize::try_from(max).unwrap_or(usize::MAX).min(CHUNK);
        if max == 0 {
            return Ok(0);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.method == ReceiveMethod::Splice {
            return self.splice(socket, file, offset, max);
        }
        self.copy(socket, file, offset, max)
    }

    fn copy(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        file: &File,
        offset: &mut u64,
        max: usize,
    ) -> io::Result<usize> {
        if self.buf.len() < max.min(256 << 10) {
            self.buf.resize(max.min(256 << 10), 0);
        }
        let want = max.min(self.buf.len());
        let n = rustix::io::read(socket, &mut self.buf[..want])?;
        write_all_at(file, &self.buf[..n], offset)?;
        counters::add_received_by_copy(n);
        Ok(n)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn splice(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        file: &File,
        offset: &mut u64,
        max: usize,
    ) -> io::Result<usize> {
        use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
        let (read_end, write_end) = match self.pipe.take() {
            Some(pipe) => pipe,
            None => pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?,
        };
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        // The pipe is empty between calls: this takes what it can hold.
        let n = match splice(socket, None, &write_end, None, max, flags) {
            Ok(n) => n,
            Err(e) => {
                // Nothing entered the pipe: it stays for the next call.
                self.pipe = Some((read_end, write_end));
                return Err(e.into());
            }
        };
        let mut left = n;
        while left > 0 {
            let mut at = *offset;
            match splice(&read_end, None, file, Some(&mut at), left, flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    left -= m;
                    *offset = at;
                    counters::add_spliced(m);
                }
                Err(rustix::io::Errno::INTR) => {}
                // The file system cannot take spliced pages: drain the
                // pipe by copying, and copy from now on.
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                    debug!("splice to the file refused: copying");
                    self.method = ReceiveMethod::Copy;
                    self.buf.resize(left.max(64 << 10), 0);
                    while left > 0 {
                        let m = rustix::io::read(&read_end, &mut self.buf[..left])?;
                        write_all_at(file, &self.buf[..m], offset)?;
                        counters::add_received_by_copy(m);
                        left -= m;
                    }
                    return Ok(n);
                }
                // The pipe may hold bytes: it goes with the error.
                Err(e) => return Err(e.into()),
            }
        }
        self.pipe = Some((read_end, write_end));
        Ok(n)
    }
}

/// Writes all of `buf` to `file` at `*offset` (advanced).
pub fn write_all_at(file: &File, buf: &[u8], offset: &mut u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    file.write_all_at(buf, *offset)?;
    *offset += buf.len() as u64;
    Ok(())
}

/// Checks that `file` takes writes at given offsets: a regular file not
/// opened for appending (Linux turns a positioned write to an appending
/// file into an append, and a pipe or terminal has no offsets).
pub fn writable_at_offsets(file: &File) -> io::Result<()> {
    let refuse = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
    if !file.metadata()?.is_file() {
        return refuse("not a regular file: write the body as it is read instead");
    }
    let flags = rustix::fs::fcntl_getfl(file)?;
    if flags.contains(rustix::fs::OFlags::APPEND) {
        return refuse("the file is open for appending: writes would not land at their offsets");
    }
    Ok(())
}
