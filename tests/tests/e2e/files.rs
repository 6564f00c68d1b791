//! File regions sent with `gridmux::send_file` on each runtime's sockets
//! (the file plane's sending half; `gridmux-sendfile` has the rest).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use gridmux::sendfile::{Options, Transfer};

use crate::harness::{suite_and_tls, Env};

suite_and_tls!(
    a_region_goes_out_whole_after_its_head,
    a_peer_that_stops_reading_is_ended_by_a_timeout,
);

/// A listener whose first connection is read to its end (at most
/// `limit` bytes) on a thread; `read` false: it is accepted and never read.
fn receiver(limit: usize, read: bool) -> (std::net::SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        if !read {
            std::thread::sleep(Duration::from_secs(3));
            return got;
        }
        let mut buf = vec![0u8; 256 * 1024];
        while got.len() < limit {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    (addr, reader)
}

fn patterned(len: usize) -> (std::fs::File, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    let mut file = tempfile_in_target();
    file.write_all(&data).unwrap();
    (file, data)
}

/// An unnamed temporary file (removed on close).
fn tempfile_in_target() -> std::fs::File {
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "gridmux-e2e-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

async fn a_region_goes_out_whole_after_its_head(env: Env) {
    let len = (4 << 20) + 1;
    let (file, data) = patterned(len);
    let head = b"HTTP/1.1 206 Partial Content\r\n\r\n";
    let (start, end) = (1000, len - 7);
    let (addr, reader) = receiver(head.len() + end - start, true);
    let socket = env.rt.connect(addr).await.unwrap();
    let mut transfer = Transfer::new(file, start as u64..end as u64, &Options::default()).unwrap();
    let sent = env
        .within(
            Duration::from_secs(20),
            gridmux::send_file(&*socket, head, &mut transfer),
        )
        .await
        .unwrap();
    assert_eq!(sent as usize, end - start);
    if cfg!(target_os = "linux") {
        assert_eq!(
            transfer.sent_by(),
            (sent, 0),
            "the Linux path uses sendfile"
        );
    }
    drop(socket);
    let got = reader.join().unwrap();
    assert_eq!(&got[..head.len()], head);
    assert!(got[head.len()..] == data[start..end]);
}

/// Nobody reads: the socket fills and the transfer waits for writability
/// (no busy loop: the runtime learns of every `WouldBlock`) until the
/// caller's timeout drops it; the runtime goes on.
async fn a_peer_that_stops_reading_is_ended_by_a_timeout(env: Env) {
    let (file, _) = patterned(64 << 20);
    let (addr, reader) = receiver(0, false);
    let socket = env.rt.connect(addr).await.unwrap();
    let mut transfer = Transfer::new(file, 0..64 << 20, &Options::default()).unwrap();
    let outcome = env
        .maybe_within(
            Duration::from_millis(500),
            gridmux::send_file(&*socket, b"", &mut transfer),
        )
        .await;
    assert!(
        outcome.is_none(),
        "a peer that reads nothing cannot take 64 MiB"
    );
    assert!(transfer.remaining() > 0);
    env.sleep(Duration::from_millis(10)).await;
    drop(socket);
    reader.join().unwrap();
}
