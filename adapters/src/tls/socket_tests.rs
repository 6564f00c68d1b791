//! The session's own buffers, which only a test inside the crate sees.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::task::{ready, Poll};
use std::time::Duration;

use bytes::BytesMut;

use super::{accept, connect, server_name, TlsSocket};
use crate::runtime::Socket;
use crate::tls::test_identity::identity;
use crate::tls::{ClientAuth, TlsConfig};

/// A CA and a certificate for 127.0.0.1 it signed, as one identity.
fn loopback_identity() -> TlsConfig {
    let id = identity();
    let (cert, key, ca) = (id.cert.as_bytes(), id.key.as_bytes(), id.ca.as_bytes());
    TlsConfig::from_pem(cert, key, ca, ClientAuth::None).unwrap()
}

/// A dialer's and an acceptor's session over loopback TCP.
async fn pair() -> (TlsSocket, TlsSocket) {
    let tls = loopback_identity();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dial = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = server_name("127.0.0.1:1").unwrap();
        connect(Box::new(tcp), tls.client(), name).await.unwrap()
    };
    let answer = async {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(Box::new(tcp), tls.server()).await.unwrap()
    };
    tokio::join!(dial, answer)
}

/// Writes all of `bytes` through `session`, then flushes it.
async fn write_all(session: &TlsSocket, mut bytes: &[u8]) {
    poll_fn(|cx| {
        while !bytes.is_empty() {
            match session.try_write_vectored(&[IoSlice::new(bytes)]) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(session.poll_writable(cx)).unwrap();
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        session.poll_flush(cx)
    })
    .await
    .unwrap();
}

/// Review of 6f33dbb (no test then): a session that read everything and
/// finds nothing more keeps no receive buffer (1,000 idle sessions kept
/// 64 KiB each before); one with records still to take in keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_keeps_no_receive_buffer() {
    let (dialer, acceptor) = pair().await;
    let sent = vec![7u8; 300_000];
    let reading = async {
        let mut got = 0;
        let mut buf = BytesMut::with_capacity(32 * 1024);
        poll_fn(|cx| loop {
            buf.clear();
            match dialer.try_read_spare(&mut buf) {
                Ok(0) => panic!("the session ended"),
                Ok(n) => {
                    assert!(buf.iter().all(|&b| b == 7));
                    got += n;
                    if got < sent.len() {
                        // Records are still coming or held: a buffer may be.
                        continue;
                    }
                    return Poll::Ready(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(dialer.poll_readable(cx)).unwrap();
                }
                Err(e) => panic!("read: {e}"),
            }
        })
        .await;
        got
    };
    let (got, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(reading, write_all(&acceptor, &sent))
    })
    .await
    .expect("every byte arrives");
    assert_eq!(got, sent.len());
    // Nothing more: the read that finds so lets the buffer go.
    let mut buf = BytesMut::with_capacity(1024);
    let e = dialer.try_read_spare(&mut buf).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(
        dialer.cipher().capacity(),
        0,
        "an idle session keeps a buffer"
    );
}
