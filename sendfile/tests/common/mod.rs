//! Helpers of the transfer tests: a loopback pair, a receiver thread, and
//! a bounded driver that waits for writability.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gridmux_sendfile::{Sink, Transfer, TransferError};

/// A non-blocking sending socket and a thread that reads everything the
/// other end receives (until EOF or `limit` bytes) and returns it.
pub fn loopback(limit: usize) -> (TcpStream, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut receiver, _) = listener.accept().unwrap();
    sender.set_nonblocking(true).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        while got.len() < limit {
            match receiver.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    (sender, reader)
}

/// Waits (at most 100 ms) until `socket` is writable.
pub fn wait_writable(socket: &impl AsFd) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(socket, PollFlags::OUT)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    let _ = poll(&mut fds, Some(&timeout));
}

/// Runs `transfer` to its end on a non-blocking socket (bounded: 30 s).
pub fn drive(
    transfer: &mut Transfer,
    sink: &impl Sink,
    socket: &impl AsFd,
) -> Result<u64, TransferError> {
    let started = Instant::now();
    let mut sent = 0u64;
    while !transfer.is_done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "transfer stuck"
        );
        match transfer.send(sink) {
            Ok(n) => sent += n as u64,
            Err(e) if e.is_would_block() => wait_writable(socket),
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// A file holding `len` bytes of a pattern that shows misplaced bytes.
pub fn patterned(len: usize) -> (File, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&data).unwrap();
    (file, data)
}
