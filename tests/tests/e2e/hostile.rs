//! Hostile input at the node's port. After each attack the nodes still
//! serve each other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gridmux::Keyring;
use gridmux_core::auth::hex;
use gridmux_core::auth::link::{upgrade_filter, Membership};
use gridmux_core::cluster::should_dial;
use gridmux_core::link::{Event, LinkConfig, LinkError};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::harness::{suite, Cluster, Env};

suite!(
    random_bytes,
    handshake_never_finishes,
    upgrade_without_valid_token,
    connect_from_wrong_dialer,
    frame_announcing_huge_length,
    health_endpoint,
    pending_connections_are_capped,
);

const ECHO: u8 = 1;
const SECRET: &str = "e2e secret";

async fn two_nodes(env: &Env) -> Cluster {
    env.cluster(2, |_, b| {
        b.handler(ECHO, |_, p| async move { Ok(p) })
            .configure(|c| c.handshake_timeout = Duration::from_millis(300))
    })
    .await
}

/// The nodes still answer each other.
async fn still_serving(c: &Cluster) {
    for (from, to) in [(0, 1), (1, 0)] {
        let answer = c.peer(from, to).request(ECHO, "still here").await;
        assert_eq!(answer.unwrap(), "still here");
    }
    for grid in &c.grids {
        assert_eq!(grid.connected_peers().len(), 1);
    }
}

pub(crate) fn connect(name: &str) -> TcpStream {
    let s = TcpStream::connect(name).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Everything the server sends until it closes (bounded by the read
/// timeout and 1 MiB).
pub(crate) fn read_to_close(mut s: TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0; 4096];
    while all.len() < 1 << 20 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    all
}

/// Reads an HTTP head (up to the blank line).
pub(crate) fn read_head(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Random bytes get a 400 and a close.
async fn random_bytes(env: Env) {
    let c = two_nodes(&env).await;
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..5 {
        let mut junk = vec![0; 4096];
        rng.fill_bytes(&mut junk);
        let mut s = connect(&c.names[0]);
        let _ = s.write_all(&junk);
        let answer = read_to_close(s);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    still_serving(&c).await;
    c.shutdown().await;
}

/// A head that never completes is answered 408 and closed after the
/// handshake timeout; a silent connection is closed too.
async fn handshake_never_finishes(env: Env) {
    let c = two_nodes(&env).await;
    let mut s = connect(&c.names[0]);
    s.write_all(b"GET /gridmux/v1 HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let answer = read_to_close(s);
    assert!(answer.starts_with(b"HTTP/1.1 408"), "{answer:?}");
    let silent = connect(&c.names[1]);
    assert_eq!(read_to_close(silent), b"");
    still_serving(&c).await;
    c.shutdown().await;
}

/// Upgrade request headers for the grid, claiming to be `from`.
fn upgrade_request(to: &str, from: &str, token: Option<&str>, time: SystemTime) -> String {
    let nanos = time.duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "GET /gridmux/v1 HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         {auth}X-Gridmux-Host: {from}\r\nX-Gridmux-Time: {nanos}\r\n\r\n"
    )
}

/// The pre-upgrade filter token of `from` for the fixed WebSocket key of
/// [`upgrade_request`].
fn token(from: &str, to: &str, time: SystemTime) -> String {
    let nanos = time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let keys = Keyring::new([SECRET]).unwrap();
    let key = b"dGhlIHNhbXBsZSBub25jZQ==";
    hex(&upgrade_filter(
        &keys,
        Membership::Member,
        from,
        to,
        nanos,
        key,
    ))
}

/// Whatever fails (no token, a wrong one, an unknown host, a clock far
/// off, a wrong secret), the answer is the same 401, byte for byte. No
/// link results.
async fn upgrade_without_valid_token(env: Env) {
    let c = two_nodes(&env).await;
    let (me, them) = (&c.names[1], &c.names[0]);
    let now = SystemTime::now();
    let stranger = "10.9.9.9:1";
    let hour_ago = now - Duration::from_secs(3600);
    let wrong_secret = {
        let nanos = now.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let keys = Keyring::new(["not the secret"]).unwrap();
        let key = b"dGhlIHNhbXBsZSBub25jZQ==";
        hex(&upgrade_filter(
            &keys,
            Membership::Member,
            me,
            them,
            nanos,
            key,
        ))
    };
    let cases = [
        upgrade_request(them, me, None, now),
        upgrade_request(them, me, Some("00ff"), now),
        upgrade_request(them, stranger, Some(&token(stranger, them, now)), now),
        upgrade_request(them, me, Some(&token(me, them, hour_ago)), hour_ago),
        upgrade_request(them, me, Some(&wrong_secret), now),
    ];
    let mut answers = Vec::new();
    for request in cases {
        let mut s = connect(them);
        s.write_all(request.as_bytes()).unwrap();
        let answer = String::from_utf8_lossy(&read_to_close(s)).into_owned();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nunauthorized\n"), "{answer}");
        answers.push(answer);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    still_serving(&c).await;
    c.shutdown().await;
}

/// Runs a core link over a blocking socket until it closes; returns why.
fn run_core_link(mut link: gridmux_core::link::Link, mut s: TcpStream) -> LinkError {
    use bytes::BytesMut;
    use gridmux_core::ws::Transmit;
    use std::time::Instant;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = Instant::now();
    let mut input = BytesMut::new();
    while started.elapsed() < Duration::from_secs(5) {
        let now = Instant::now();
        let mut out = Transmit::new();
        while link.poll_transmit(now, &mut out) {}
        let _ = s.write_all(&out.to_vec());
        while let Some(event) = link.poll_event() {
            if let Event::Closed(reason) = event {
                return reason;
            }
        }
        let mut buf = [0; 4096];
        match s.read(&mut buf) {
            Ok(0) => link.handle_eof(now),
            Ok(n) => {
                input.extend_from_slice(&buf[..n]);
                link.handle_input(now, &mut input);
            }
            Err(_) => link.handle_timeout(now),
        }
    }
    panic!("the link did not close within 5 s");
}

/// A `Connect` from the node that should not dial is refused with a
/// reason the dialer can read.
async fn connect_from_wrong_dialer(env: Env) {
    let c = two_nodes(&env).await;
    // `wrong` is the node that should accept from `target`, not dial it.
    let (wrong, target) = if should_dial(&c.names[0], &c.names[1]) {
        (1, 0)
    } else {
        (0, 1)
    };
    let auth = std::sync::Arc::new(Keyring::new([SECRET]).unwrap());
    let config = LinkConfig::new(c.names[wrong].clone(), c.names.clone(), [9; 16], auth);
    let link = gridmux_core::link::Link::dial(
        std::sync::Arc::new(config),
        c.names[target].clone(),
        std::time::Instant::now(),
        SystemTime::now(),
        Box::new(StdRng::seed_from_u64(1)),
    );
    let reason = run_core_link(link, connect(&c.names[target]));
    match reason {
        LinkError::Rejected(why) => assert!(why.contains("client side"), "{why}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    still_serving(&c).await;
    c.shutdown().await;
}

/// A frame header announcing 2^63 - 1 bytes: closed with 1009 (message
/// too big) without allocating it.
async fn frame_announcing_huge_length(env: Env) {
    let c = two_nodes(&env).await;
    let (me, them) = (&c.names[1], &c.names[0]);
    let mut s = connect(them);
    let now = SystemTime::now();
    let request = upgrade_request(them, me, Some(&token(me, them, now)), now);
    s.write_all(request.as_bytes()).unwrap();
    let head = read_head(s.try_clone().unwrap());
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut frame = vec![0x82, 0xFF];
    frame.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]); // mask
    s.write_all(&frame).unwrap();
    let answer = read_to_close(s);
    assert!(answer.len() >= 4, "{answer:?}");
    assert_eq!(answer[0], 0x88, "a close frame: {answer:?}");
    assert_eq!(u16::from_be_bytes([answer[2], answer[3]]), 1009);
    still_serving(&c).await;
    c.shutdown().await;
}

/// `GET /health` answers 200 `ok`; other paths 404; the grid path without
/// an upgrade 426.
async fn health_endpoint(env: Env) {
    let c = two_nodes(&env).await;
    let mut s = connect(&c.names[0]);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(s)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    for (path, status) in [("/nope", "404"), ("/gridmux/v1", "426")] {
        let mut s = connect(&c.names[0]);
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        let answer = String::from_utf8_lossy(&read_to_close(s)).into_owned();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
    }
    still_serving(&c).await;
    c.shutdown().await;
}

/// Connections that are not links yet are capped: past the cap a new one
/// is closed at once, links are not affected, and places free up.
async fn pending_connections_are_capped(env: Env) {
    let c = env
        .cluster(2, |_, b| {
            b.handler(ECHO, |_, p| async move { Ok(p) })
                .max_pending_connections(2)
        })
        .await;
    let idle = [connect(&c.names[0]), connect(&c.names[0])];
    env.sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let refused = read_to_close(connect(&c.names[0]));
    assert!(refused.is_empty(), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
    still_serving(&c).await;
    drop(idle);
    env.sleep(Duration::from_millis(100)).await;
    let mut s = connect(&c.names[0]);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_to_close(s);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    c.shutdown().await;
}
