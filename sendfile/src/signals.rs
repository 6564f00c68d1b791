//! SIGPIPE on threads that send files.

use std::io;

/// Blocks SIGPIPE for the calling thread (Unix). `sendfile` cannot pass
/// `MSG_NOSIGNAL`, so a peer that is gone raises SIGPIPE at the thread
/// that sends; blocked, it stays pending on that thread (and goes with
/// it) while the call fails with `EPIPE`, even in a host process that has
/// not ignored SIGPIPE. Meant for threads of their own that send files.
#[cfg_attr(
    unix,
    expect(unsafe_code, reason = "pthread_sigmask has no safe wrapper in rustix")
)]
pub fn block_sigpipe_on_this_thread() -> io::Result<()> {
    #[cfg(unix)]
    {
        // SAFETY: `set` is a local signal set, initialised by
        // `sigemptyset` before use; `pthread_sigmask` only changes the
        // calling thread's mask and may pass a null old set.
        let code = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if code != 0 {
            return Err(io::Error::from_raw_os_error(code));
        }
    }
    Ok(())
}
