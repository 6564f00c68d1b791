//! Where a transfer writes: a non-blocking socket, through the system
//! calls its platform has.

use std::fs::File;
use std::io;

/// A non-blocking destination of file bytes (a socket). Each method is one
/// system call: `WouldBlock` when the socket's buffer is full.
///
/// Implemented for every [`AsFd`](std::os::fd::AsFd) on Unix (tokio's and
/// async-io's sockets, `std::net::TcpStream`), and for anything that `&T`
/// writes to elsewhere.
pub trait Sink {
    /// Writes some of `buf`.
    fn write_some(&self, buf: &[u8]) -> io::Result<usize>;

    /// Writes some of `buf`, telling the kernel more follows at once (Linux
    /// `MSG_MORE`: a response head leaves with its body, not as a small
    /// packet of its own; elsewhere a plain write).
    fn write_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_some(buf)
    }

    /// Sends at most `count` bytes of `file` from `*offset` without copying
    /// them through user space, advancing `*offset` by what was sent.
    /// `Unsupported` where the platform has no such call.
    fn send_file(&self, file: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
        let _ = (file, offset, count);
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether it is a socket (a refusal to send a file to a socket says
    /// something of the file's file system; to anything else, of the sink).
    fn is_socket(&self) -> bool {
        false
    }

    /// Corks a TCP socket (Linux `TCP_CORK`): only full segments leave
    /// until it is uncorked, which sends the rest at once. A response head
    /// and its body then leave in full-sized segments whatever the
    /// socket's `TCP_NODELAY`. Elsewhere, and on other sinks, nothing.
    fn cork(&self, on: bool) -> io::Result<()> {
        let _ = on;
        Ok(())
    }
}

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsFd;

    use super::Sink;

    impl<T: AsFd> Sink for T {
        /// On a socket, `send` with `MSG_NOSIGNAL` where the platform has
        /// it (a peer gone is an error, not a SIGPIPE in a host that does
        /// not ignore it); `write` otherwise.
        fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                use rustix::net::SendFlags;
                match rustix::net::send(self, buf, SendFlags::NOSIGNAL) {
                    Err(rustix::io::Errno::NOTSOCK) => {}
                    other => return Ok(other?),
                }
            }
            Ok(rustix::io::write(self, buf)?)
        }

        #[cfg(any(target_os = "linux", target_os = "android"))]
        fn write_more(&self, buf: &[u8]) -> io::Result<usize> {
            use rustix::net::SendFlags;
            match rustix::net::send(self, buf, SendFlags::MORE | SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::NOTSOCK) => self.write_some(buf),
                other => Ok(other?),
            }
        }

        #[cfg(any(target_os = "linux", target_os = "android"))]
        fn send_file(&self, file: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
            Ok(rustix::fs::sendfile(self, file, Some(offset), count)?)
        }

        #[cfg(any(target_os = "linux", target_os = "android"))]
        fn cork(&self, on: bool) -> io::Result<()> {
            match rustix::net::sockopt::set_tcp_cork(self, on) {
                // Not a TCP socket: nothing to cork.
                Err(rustix::io::Errno::NOTSOCK | rustix::io::Errno::NOPROTOOPT) => Ok(()),
                other => Ok(other?),
            }
        }

        fn is_socket(&self) -> bool {
            rustix::fs::fstat(self)
                .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_socket())
        }
    }

    // Keeps `File` used on Unix platforms without sendfile.
    #[allow(dead_code)]
    fn _uses(_: &File) {}
}

#[cfg(not(unix))]
impl<T> Sink for T
where
    for<'a> &'a T: io::Write,
{
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        let mut w: &T = self;
        io::Write::write(&mut w, buf)
    }
}

/// Whether a failed sendfile means "not here" (the file system, or the
/// platform, cannot do it) rather than a failure of the transfer.
pub(crate) fn refuses_sendfile(error: &io::Error) -> bool {
    if error.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let refusals = [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP];
        if let Some(code) = error.raw_os_error() {
            return refusals.iter().any(|e| e.raw_os_error() == code);
        }
    }
    false
}
