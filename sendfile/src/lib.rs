//! File regions to a socket with as few copies as the platform allows.
//!
//! A [`Transfer`] sends one region of a file to a non-blocking socket, one
//! system call per [`Transfer::send`]; the caller (an async runtime) waits
//! for writability whenever it returns `WouldBlock`.
//!
//! - **Linux**: `sendfile(2)` through rustix (socket first, file second),
//!   at most [`Options::max_chunk`] bytes per call (4 MiB; never more than
//!   [`MAX_CHUNK`]). The socket's buffers reference page-cache pages: no
//!   byte passes through user space.
//! - **Fallback**: `pread` into one reusable buffer, then `write`. Taken
//!   when asked for ([`Method::Copy`]), when `sendfile` is refused with
//!   `EINVAL`, `ENOSYS` or `EOPNOTSUPP` (a file system that cannot do it:
//!   the transfer goes on from exactly where it was, and later transfers
//!   of files on that file system copy from the start), and on every
//!   platform other than Linux and Android. BSD and macOS `sendfile` (with
//!   header iovecs) and Windows `TransmitFile` are not used: we cannot
//!   test them here, and MinIO backed its Windows path out after lock-ups.
//! - **Cold page cache**: a transfer asks the kernel to read its region
//!   ahead (`posix_fadvise(WILLNEED)`) when it starts. `sendfile` (and the
//!   copy's `pread`) on a page not in the cache blocks on the disk: an
//!   adapter that must never stall its reactor makes the calls on a
//!   blocking thread.
//! - **Head with the body**: [`Sink::write_more`] sends a response head
//!   with `MSG_MORE` on Linux, so it leaves in the body's first packet
//!   (elsewhere it is a plain write).
//! - **SIGPIPE**: writes to a socket use `MSG_NOSIGNAL` on Linux;
//!   `sendfile` cannot, so a host process must ignore SIGPIPE (Rust
//!   programs do by default).
//! - **Truncation**: a file that ends before its region is an error
//!   ([`TransferError::Truncated`]), never a short body passed as complete.
//! - **No `O_DIRECT`**: it would bypass the page cache `sendfile` reads.
//! - **Receiving**: a [`Receiver`] moves bytes from a socket into a file
//!   with `splice` through a pipe on Linux, a read and a positioned write
//!   elsewhere (or where the file system refuses `splice`).
//! - **Counters**: [`counters`] tells how many bytes each path sent and
//!   received.
//! - **Where files come from**: [`DirResolver`] opens keys beneath a root
//!   directory and refuses every way out of it (`..`, absolute paths, NUL
//!   bytes, symbolic links leading out; on Linux the open itself cannot
//!   leave the root).
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use gridmux_sendfile::{Options, Transfer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut file = tempfile::tempfile()?;
//! file.write_all(b"hello, page cache")?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let sender = TcpStream::connect(listener.local_addr()?)?;
//! let (mut receiver, _) = listener.accept()?;
//!
//! // Bytes 7..17 of the file (a blocking socket here; an async adapter
//! // waits for writability when `send` says `WouldBlock`).
//! let mut transfer = Transfer::new(file, 7..17, &Options::default())?;
//! while !transfer.is_done() {
//!     transfer.send(&sender)?;
//! }
//! drop(sender);
//! let mut got = String::new();
//! receiver.read_to_string(&mut got)?;
//! assert_eq!(got, "page cache");
//! # Ok(())
//! # }
//! ```

mod counters;
#[cfg(unix)]
mod receive;
mod refused;
mod resolve;
mod signals;
mod sink;
mod transfer;

pub use counters::{counters, Counters};
#[cfg(unix)]
pub use receive::{writable_at_offsets, write_all_at, ReceiveMethod, Receiver};
pub use resolve::{DirResolver, OpenedFile, ResolveError};
pub use signals::block_sigpipe_on_this_thread;
pub use sink::Sink;
pub use transfer::{Method, Options, Transfer, TransferError, MAX_CHUNK};
