//! Reads from a TLS session against a peer that is rustls on a blocking
//! socket (so that it can also write what TLS refuses): a read fills the
//! spare room it is given across records and never grows the buffer, and
//! the bytes that came before a fault are read before the fault is;
//! records of any sizes mix (rustls refuses records while it holds 16 KiB
//! of plaintext: they wait until it is taken); what follows close_notify is
//! dropped.

use std::future::poll_fn;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::task::{ready, Poll};
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use gridmux::runtime::Socket;
use gridmux::tls::ClientAuth;
use gridmux_bench::pki::ThrowawayCa;
use gridmux_tests::peer_tls::peer_tls;

use crate::harness::{suite, Env};

suite!(
    a_tls_read_fills_the_spare_room_and_never_grows_it,
    bytes_before_a_bad_record_are_read_before_the_fault,
    records_of_mixed_sizes_come_whole_in_one_read,
    what_follows_close_notify_is_dropped_and_the_session_ends,
);

/// What the peer does once its handshake is done.
type Script = Box<dyn FnOnce(&mut rustls::ServerConnection, &mut TcpStream) + Send>;

/// A rustls server on a blocking socket that runs `script` after its
/// handshake and then waits (bounded) for the client to close; the
/// gridmux session that dialed it.
async fn session_with(env: &Env, script: Script) -> (Box<dyn Socket>, thread::JoinHandle<()>) {
    let ca = ThrowawayCa::new("session CA");
    let (server_config, _) = peer_tls(&ca);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut conn = rustls::ServerConnection::new(server_config).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        script(&mut conn, &mut tcp);
        // Until the client is done (its end, or the timeout).
        let _ = io::copy(&mut tcp, &mut io::sink());
    });
    let socket = env.rt.connect(addr).await.unwrap();
    let session = gridmux::tls::connect_socket(socket, &ca.loopback(ClientAuth::None), "127.0.0.1")
        .await
        .expect("handshake");
    (session, peer)
}

/// One read into `buf`'s spare room, waiting for readiness.
async fn read_spare(env: &Env, session: &dyn Socket, buf: &mut BytesMut) -> io::Result<usize> {
    let read = poll_fn(|cx| loop {
        match session.try_read_spare(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(session.poll_readable(cx))?;
            }
            other => return Poll::Ready(other),
        }
    });
    env.within(Duration::from_secs(5), read).await
}

/// The peer's script: each of `records` as a record of its own, then the
/// session's end (`close_notify`).
fn records_then_close(records: Vec<Vec<u8>>) -> Script {
    Box::new(move |conn, tcp| {
        for record in &records {
            conn.writer().write_all(record).unwrap();
            flush_all(conn, tcp);
        }
        conn.send_close_notify();
        flush_all(conn, tcp);
    })
}

/// Writes every record the peer's session holds.
fn flush_all(conn: &mut rustls::ServerConnection, tcp: &mut TcpStream) {
    while conn.wants_write() {
        conn.write_tls(tcp).unwrap();
    }
}

async fn a_tls_read_fills_the_spare_room_and_never_grows_it(env: Env) {
    let sent: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expected = sent.clone();
    // 16 records of 16 KiB, then the session's end.
    let records = sent.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    let (session, peer) = session_with(&env, records_then_close(records)).await;
    // All of it is there before the first read.
    env.sleep(Duration::from_millis(200)).await;
    let mut received = Vec::new();
    let mut largest = 0;
    for _ in 0..1000 {
        let mut buf = BytesMut::with_capacity(40_000);
        let room = buf.capacity();
        let n = read_spare(&env, &*session, &mut buf).await.unwrap();
        assert_eq!(buf.capacity(), room, "the read grew the buffer");
        assert_eq!(buf.len(), n);
        if n == 0 {
            break;
        }
        largest = largest.max(n);
        received.extend_from_slice(&buf);
    }
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the bytes differ");
    assert_eq!(largest, 40_000, "a read takes in more than one record");
    drop(session);
    peer.join().unwrap();
}

async fn bytes_before_a_bad_record_are_read_before_the_fault(env: Env) {
    let (session, peer) = session_with(
        &env,
        Box::new(|conn, tcp| {
            conn.writer().write_all(b"hello").unwrap();
            flush_all(conn, tcp);
            // An application-data record no key opens.
            let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
            forged.extend_from_slice(&[0xaa; 32]);
            tcp.write_all(&forged).unwrap();
        }),
    )
    .await;
    // Both records arrive before the first read: one receive takes both.
    env.sleep(Duration::from_millis(200)).await;
    let mut buf = BytesMut::with_capacity(1024);
    let n = read_spare(&env, &*session, &mut buf).await;
    assert_eq!(n.unwrap(), 5, "the record before the forged one");
    assert_eq!(&buf[..], b"hello");
    let mut buf = BytesMut::with_capacity(1024);
    let fault = read_spare(&env, &*session, &mut buf).await.unwrap_err();
    assert_eq!(fault.kind(), io::ErrorKind::InvalidData, "{fault}");
    assert!(buf.is_empty());
    drop(session);
    peer.join().unwrap();
}

async fn records_of_mixed_sizes_come_whole_in_one_read(env: Env) {
    // A full record then a small one fit rustls's record buffer together
    // and open to more than the 16 KiB of plaintext it holds at most.
    let records: Vec<Vec<u8>> = [(1u8, 16384), (2, 100), (3, 16384), (4, 7)]
        .iter()
        .map(|&(byte, len)| vec![byte; len])
        .collect();
    let expected = records.concat();
    let (session, peer) = session_with(&env, records_then_close(records)).await;
    env.sleep(Duration::from_millis(200)).await;
    let mut buf = BytesMut::with_capacity(40_000);
    let n = read_spare(&env, &*session, &mut buf).await.unwrap();
    assert_eq!(n, expected.len(), "one read takes every record at hand");
    assert!(buf[..] == expected[..], "the bytes differ");
    let mut buf = BytesMut::with_capacity(1024);
    assert_eq!(read_spare(&env, &*session, &mut buf).await.unwrap(), 0);
    drop(session);
    peer.join().unwrap();
}

async fn what_follows_close_notify_is_dropped_and_the_session_ends(env: Env) {
    let (session, peer) = session_with(
        &env,
        Box::new(|conn, tcp| {
            conn.writer().write_all(b"hello").unwrap();
            conn.send_close_notify();
            flush_all(conn, tcp);
            tcp.write_all(&[0x17; 5000]).unwrap();
        }),
    )
    .await;
    env.sleep(Duration::from_millis(200)).await;
    let mut buf = BytesMut::with_capacity(1024);
    assert_eq!(read_spare(&env, &*session, &mut buf).await.unwrap(), 5);
    assert_eq!(&buf[..], b"hello");
    for _ in 0..2 {
        let mut buf = BytesMut::with_capacity(1024);
        assert_eq!(read_spare(&env, &*session, &mut buf).await.unwrap(), 0);
    }
    drop(session);
    peer.join().unwrap();
}
