//! The fetching side against servers that answer wrongly: interim
//! responses, ranges other than asked, short bodies, unframed bodies, a
//! head trickled forever, and a file that cannot take writes at offsets.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use gridmux::{Client, FetchError, FileLimits};

use crate::harness::Env;

/// What the fake server does for one request.
#[derive(Clone)]
pub(crate) enum Script {
    /// Writes these bytes, keeps the connection.
    Answer(&'static str),
    /// Writes these bytes and closes.
    AnswerAndClose(&'static str),
    /// Writes one byte of the head every 100 ms, for 5 s.
    Trickle,
}

/// A server on loopback that answers the n-th request it reads with the
/// n-th script, on whatever connection it comes. Stops after the scripts
/// or 20 s.
pub(crate) fn fake_server(scripts: Vec<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut scripts = scripts.into_iter();
        'accept: while Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            loop {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => continue 'accept,
                    }
                }
                match scripts.next() {
                    None => return,
                    Some(Script::Answer(text)) => {
                        let _ = s.write_all(text.as_bytes());
                    }
                    Some(Script::AnswerAndClose(text)) => {
                        let _ = s.write_all(text.as_bytes());
                        continue 'accept;
                    }
                    Some(Script::Trickle) => {
                        for b in b"HTTP/1.1 200 OK\r\nX-Slow: ".iter().cycle().take(50) {
                            if s.write_all(&[*b]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue 'accept;
                    }
                }
            }
        }
    });
    addr
}

pub(crate) async fn a_fetch_accepts_no_wrong_answer(env: Env) {
    use Script::*;
    let addr = fake_server(vec![
        // Interim responses are skipped.
        Answer("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        // A 206 shorter than asked where the file does not end there.
        AnswerAndClose("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/1000000\r\nContent-Length: 10\r\n\r\n0123456789"),
        // A 206 of other bytes.
        AnswerAndClose("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-14/1000\r\nContent-Length: 10\r\n\r\n0123456789"),
        // A 206 shorter because the file ends: fine.
        Answer("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/4\r\nContent-Length: 4\r\n\r\nabcd"),
        // A body cut short.
        AnswerAndClose("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"),
        // No framing but the connection's end.
        AnswerAndClose("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        // A protocol switch, and endless interim responses.
        AnswerAndClose("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        AnswerAndClose("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"),
        // A head that never ends, one byte at a time.
        Trickle,
    ]);
    let limits = FileLimits {
        send_timeout: Duration::from_millis(700),
        ..FileLimits::default()
    };
    let client = Client::builder("fetcher", addr)
        .secret("e2e secret")
        .link(false)
        .file_limits(limits)
        .start(env.rt.clone())
        .unwrap();
    let peer = client.peer();
    let body = peer.fetch("r", "k", None).await.unwrap();
    assert_eq!(body.to_vec().await.unwrap(), b"hello");
    let protocol = |r: Result<_, FetchError>, what: &str| match r {
        Err(FetchError::Protocol(_)) => {}
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: accepted"),
    };
    protocol(
        peer.fetch("r", "k", Some(0..1000)).await.map(drop),
        "short 206",
    );
    protocol(
        peer.fetch("r", "k", Some(0..10)).await.map(drop),
        "other bytes",
    );
    let end = peer.fetch("r", "k", Some(0..1000)).await.unwrap();
    assert_eq!(end.to_vec().await.unwrap(), b"abcd");
    let short = peer.fetch("r", "k", None).await.unwrap().to_vec().await;
    assert!(matches!(
        short,
        Err(FetchError::ShortBody {
            expected: 100,
            received: 9
        })
    ));
    protocol(peer.fetch("r", "k", None).await.map(drop), "chunked");
    protocol(peer.fetch("r", "k", None).await.map(drop), "101");
    protocol(peer.fetch("r", "k", None).await.map(drop), "endless 100s");
    let started = Instant::now();
    let trickled = peer.fetch("r", "k", None).await;
    assert!(
        matches!(trickled, Err(FetchError::Stalled(_))),
        "{trickled:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    client.shutdown(Duration::from_millis(100)).await;
}

pub(crate) async fn a_fetch_writes_only_where_offsets_hold(env: Env) {
    let addr = fake_server(vec![Script::Answer(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    )]);
    let client = Client::builder("fetcher", addr)
        .secret("e2e secret")
        .link(false)
        .start(env.rt.clone())
        .unwrap();
    let path = std::env::temp_dir().join(format!("gridmux-append-{:x}", rand::random::<u64>()));
    std::fs::write(&path, b"0123456789").unwrap();
    let append = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let err = client
        .peer()
        .fetch_to_file("r", "k", None, &append, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
    std::fs::remove_file(&path).unwrap();
    client.shutdown(Duration::from_millis(100)).await;
}
