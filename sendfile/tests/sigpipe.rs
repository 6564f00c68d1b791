//! A thread that sends a file to a peer that is gone, in a process whose
//! SIGPIPE is back to its default (terminate): with SIGPIPE blocked on the
//! thread, the send fails with `EPIPE` and the process lives on. (A test
//! binary of its own: the signal disposition is process-wide.)

#![cfg(unix)]

mod common;

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use common::patterned;
use gridmux_sendfile::{block_sigpipe_on_this_thread, Options, Transfer, TransferError};

#[test]
#[expect(unsafe_code, reason = "restoring SIGPIPE's default disposition")]
fn a_gone_peer_is_epipe_not_a_dead_process() {
    // SAFETY: sets a process-wide disposition to its default, with no
    // handler; this binary's only test runs here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let (file, _) = patterned(8 << 20);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (receiver, _) = listener.accept().unwrap();
    // Our side shut down for writing (as `ShutdownOnDrop` does): every
    // write now fails with EPIPE and raises SIGPIPE.
    sender.shutdown(Shutdown::Write).unwrap();
    let outcome = std::thread::spawn(move || {
        block_sigpipe_on_this_thread().unwrap();
        let mut t = Transfer::new(file, 0..8 << 20, &Options::default()).unwrap();
        t.send_all_polling(&sender, Duration::from_secs(5))
    })
    .join()
    .unwrap();
    drop(receiver);
    match outcome {
        Err(TransferError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}"),
        other => panic!("{other:?}"),
    }
}
