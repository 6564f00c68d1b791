//! TLS identity rules and hostile input at a TLS port: a link comes up
//! only between nodes whose certificates chain to each other's CA, are
//! valid now and name the peer; plaintext and TLS never meet; a port
//! that speaks TLS closes garbage, silence and giant records cleanly.

use std::io::Write;
use std::time::{Duration, SystemTime};

use gridmux::tls::{ClientAuth, TlsConfig};
use gridmux::Client;
use gridmux_bench::pki::{NodeIdentity, ThrowawayCa};
use gridmux_core::cluster::should_dial;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::harness::{fast_reconnect, suite, Cluster, Env, Flag};
use crate::hostile::{connect, read_to_close};

suite!(
    a_peer_of_another_ca_never_links,
    an_expired_certificate_never_links,
    a_certificate_for_another_name_never_links,
    mutual_tls_refuses_a_client_of_another_ca,
    plaintext_and_tls_never_meet,
    garbage_silence_and_giant_records_at_a_tls_port,
    certificates_rotate_while_traffic_flows,
    a_dialer_refused_under_mutual_tls_learns_why,
    a_look_at_files_that_blocks_holds_no_worker,
);

const ECHO: u8 = 1;
const LOOPBACK: &[&str] = &["127.0.0.1", "localhost"];

/// Two nodes, node `i` running `tls(i)` (plain where `None`), with a
/// short handshake timeout.
fn two_nodes(env: &Env, tls: impl Fn(usize) -> Option<TlsConfig>) -> Cluster {
    env.start(2, |i, b| {
        let b = b
            .handler(ECHO, |_, p| async move { Ok(p) })
            .configure(|c| c.handshake_timeout = Duration::from_millis(500));
        match tls(i) {
            Some(tls) => b.tls(tls),
            None => b,
        }
    })
}

/// Neither node links to the other within a second (dials retry every
/// 50 ms meanwhile).
async fn never_links(c: &Cluster) {
    for grid in &c.grids {
        let linked = grid.wait_all_connected(Duration::from_secs(1)).await;
        assert!(linked.is_err(), "{} linked", grid.local());
    }
}

/// Both nodes link and answer each other.
async fn links(c: &Cluster) {
    for grid in &c.grids {
        grid.wait_all_connected(Duration::from_secs(10))
            .await
            .expect("links");
    }
    for (from, to) in [(0, 1), (1, 0)] {
        assert_eq!(c.peer(from, to).request(ECHO, "hi").await.unwrap(), "hi");
    }
}

async fn a_peer_of_another_ca_never_links(env: Env) {
    let (ours, theirs) = (ThrowawayCa::new("ours"), ThrowawayCa::new("theirs"));
    for auth in [ClientAuth::None, ClientAuth::Required] {
        let c = two_nodes(&env, |i| {
            let ca = if i == 0 { &ours } else { &theirs };
            Some(ca.loopback(auth))
        });
        never_links(&c).await;
        c.shutdown().await;
    }
    // The same nodes with one CA do link.
    let c = two_nodes(&env, |_| Some(ours.loopback(ClientAuth::Required)));
    links(&c).await;
    c.shutdown().await;
}

async fn an_expired_certificate_never_links(env: Env) {
    let ca = ThrowawayCa::new("cluster");
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let expired = ca.issue_valid(LOOPBACK, now - 2 * day, now - day);
    // Expired on either side: as acceptor (the dialer refuses it) or as
    // dialer under mutual TLS (the acceptor refuses it).
    let c = two_nodes(&env, |i| {
        let identity = if i == 0 {
            expired.clone()
        } else {
            ca.issue(LOOPBACK)
        };
        Some(ca.config(&identity, ClientAuth::Required))
    });
    never_links(&c).await;
    c.shutdown().await;
}

async fn a_certificate_for_another_name_never_links(env: Env) {
    let ca = ThrowawayCa::new("cluster");
    // Peers are named 127.0.0.1:port: a certificate for other names does
    // not prove to be one of them.
    let c = two_nodes(&env, |_| {
        Some(ca.config(&ca.issue(&["node.example"]), ClientAuth::None))
    });
    never_links(&c).await;
    c.shutdown().await;
}

async fn mutual_tls_refuses_a_client_of_another_ca(env: Env) {
    let ca = ThrowawayCa::new("cluster");
    let other = ThrowawayCa::new("other");
    let c = env.start(1, |_, b| {
        b.handler(ECHO, |_, p| async move { Ok(p) })
            .tls(ca.loopback(ClientAuth::Required))
    });
    let client_with = |tls: TlsConfig| {
        Client::builder("tool", c.names[0].clone())
            .secret("e2e secret")
            .reconnect(fast_reconnect())
            .tls(tls)
            .start(env.rt.clone())
            .unwrap()
    };
    // A certificate the node's CA did not sign: refused in the handshake
    // (the client itself trusts the node's CA, so only the node refuses).
    let outsider = client_with(other_identity_trusting(&other, &ca));
    assert!(outsider
        .wait_connected(Duration::from_secs(1))
        .await
        .is_err());
    outsider.shutdown(Duration::from_millis(100)).await;
    let member = client_with(ca.loopback(ClientAuth::None));
    member
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(member.peer().request(ECHO, "in").await.unwrap(), "in");
    member.shutdown(Duration::from_millis(100)).await;
    c.shutdown().await;
}

/// A certificate signed by `signer` on a client that trusts `trusted`.
fn other_identity_trusting(signer: &ThrowawayCa, trusted: &ThrowawayCa) -> TlsConfig {
    let identity = signer.issue(LOOPBACK);
    TlsConfig::from_pem(
        identity.cert.as_bytes(),
        identity.key.as_bytes(),
        trusted.pem().as_bytes(),
        ClientAuth::None,
    )
    .expect("loads")
}

async fn plaintext_and_tls_never_meet(env: Env) {
    let ca = ThrowawayCa::new("cluster");
    // Each node in turn is the TLS one: the dialer is plain once and TLS
    // once (which node dials is fixed by the names).
    for tls_node in [1, 0] {
        let c = two_nodes(&env, |i| {
            (i == tls_node).then(|| ca.loopback(ClientAuth::None))
        });
        never_links(&c).await;
        if tls_node == 0 {
            plain_http_gets_no_answer(&c).await;
        }
        c.shutdown().await;
    }
}

async fn plain_http_gets_no_answer(c: &Cluster) {
    // Plain HTTP at the TLS port: the handshake fails, the port closes
    // the connection (no answer in plaintext).
    let mut s = connect(&c.names[0]);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_to_close(s);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

async fn garbage_silence_and_giant_records_at_a_tls_port(env: Env) {
    let ca = ThrowawayCa::new("cluster");
    let c = two_nodes(&env, |_| Some(ca.loopback(ClientAuth::Required)));
    links(&c).await;
    // Garbage.
    let mut s = connect(&c.names[0]);
    let _ = s.write_all(&[0x5a; 4096]);
    let _ = read_to_close(s);
    // A record header announcing more than TLS allows (2^14 + 2048 is
    // the most a ciphertext record may carry).
    let mut s = connect(&c.names[0]);
    let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]);
    let _ = s.write_all(&[0u8; 1024]);
    let _ = read_to_close(s);
    // A handshake that never begins: closed after the handshake timeout.
    let silent = connect(&c.names[1]);
    let started = std::time::Instant::now();
    assert_eq!(read_to_close(silent), b"");
    assert!(started.elapsed() < Duration::from_secs(4));
    // The nodes still serve each other.
    for (from, to) in [(0, 1), (1, 0)] {
        assert_eq!(c.peer(from, to).request(ECHO, "ok").await.unwrap(), "ok");
    }
    c.shutdown().await;
}

/// A directory of this test's own, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gridmux-{what}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Replaces `name` at once (written beside it, then renamed): a
    /// watcher never reads half a file.
    fn put(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let part = self.0.join(format!("{name}.part"));
        std::fs::write(&part, text).unwrap();
        std::fs::rename(&part, &path).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Node `i`'s files: certificate, key, CA bundle.
fn put_identity(dir: &ScratchDir, i: usize, identity: &NodeIdentity) {
    dir.put(&format!("n{i}.key"), &identity.key);
    dir.put(&format!("n{i}.crt"), &identity.cert);
}

fn identity_files(dir: &Path, i: usize) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("n{i}.crt")),
        dir.join(format!("n{i}.key")),
        dir.join(format!("n{i}.ca")),
    )
}

/// Two echo nodes whose identities (issued by `ca`) are files in a
/// scratch directory of their own, looked at every `every`.
fn watched_pair(env: &Env, what: &str, ca: &ThrowawayCa, every: Duration) -> (ScratchDir, Cluster) {
    let dir = ScratchDir::new(what);
    for i in 0..2 {
        put_identity(&dir, i, &ca.issue(LOOPBACK));
        dir.put(&format!("n{i}.ca"), &ca.pem());
    }
    let root = dir.0.clone();
    let c = env.start(2, |i, b| {
        let (cert, key, ca) = identity_files(&root, i);
        let tls = TlsConfig::from_files(cert, key, ca, ClientAuth::None)
            .unwrap()
            .watch(Some(every));
        b.handler(ECHO, |_, p| async move { Ok(p) }).tls(tls)
    });
    (dir, c)
}

/// Files replaced under running nodes: links up keep running (no failed
/// exchange), and the next link is made with the new files. The proof
/// that both reloaded: the acceptor's new certificate is signed by a new
/// CA (a client trusting only that CA gets in), which the dialer's new
/// bundle alone trusts (the nodes link again).
async fn certificates_rotate_while_traffic_flows(env: Env) {
    let (first, second) = (ThrowawayCa::new("first"), ThrowawayCa::new("second"));
    let (dir, c) = watched_pair(&env, "rotate", &first, Duration::from_millis(50));
    links(&c).await;
    let dialer = usize::from(!should_dial(&c.names[0], &c.names[1]));
    let acceptor = 1 - dialer;
    let peer = c.peer(dialer, acceptor);
    // Traffic on the link while the files change.
    let stop = Flag::default();
    let failed = Arc::new(AtomicU64::new(0));
    let traffic = env.spawn({
        let (peer, stop, failed) = (peer.clone(), stop.clone(), failed.clone());
        async move {
            let mut ok = 0u64;
            while !stop.is_set() && ok < 1_000_000 {
                match peer.request(ECHO, "during").await {
                    Ok(_) => ok += 1,
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ok
        }
    });
    env.sleep(Duration::from_millis(100)).await;
    put_identity(&dir, acceptor, &second.issue(LOOPBACK));
    dir.put(&format!("n{dialer}.ca"), &second.pem());
    // Several looks of the watchers.
    env.sleep(Duration::from_millis(400)).await;
    stop.set();
    let ok = traffic.await;
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "exchanges failed ({ok} went through)"
    );
    assert!(ok > 0);
    assert!(dir.path("n0.crt").exists());
    // The acceptor presents its new certificate: a client trusting only
    // the new CA gets in.
    let tool = Client::builder("tool", c.names[acceptor].clone())
        .secret("e2e secret")
        .reconnect(fast_reconnect())
        .tls(second.loopback(ClientAuth::None))
        .start(env.rt.clone())
        .unwrap();
    tool.wait_connected(Duration::from_secs(10)).await.unwrap();
    tool.shutdown(Duration::from_millis(100)).await;
    // A new link between the nodes: the acceptor's new certificate is
    // trusted only by the dialer's new bundle.
    peer.disconnect();
    env.within(Duration::from_secs(5), async {
        while peer.is_connected() {
            env.sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    peer.wait_connected(Duration::from_secs(10)).await.unwrap();
    assert_eq!(peer.request(ECHO, "after").await.unwrap(), "after");
    c.shutdown().await;
}

/// Under mutual TLS the acceptor checks the dialer's certificate after the
/// dialer's side of the handshake is done: the refusal reaches the dialer
/// as its first read, with the alert (which the dialer logs at `warn`).
async fn a_dialer_refused_under_mutual_tls_learns_why(env: Env) {
    use std::future::poll_fn;
    use std::task::{ready, Poll};
    let (ca, other) = (ThrowawayCa::new("cluster"), ThrowawayCa::new("other"));
    let server_tls = ca.loopback(ClientAuth::Required);
    let client_tls = other_identity_trusting(&other, &ca);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = env.rt.adopt_listener(std_listener).unwrap();
    let server = env.spawn(async move {
        let socket = poll_fn(|cx| listener.poll_accept(cx)).await.unwrap();
        gridmux::tls::accept_socket(socket, &server_tls)
            .await
            .map(drop)
    });
    let socket = env.rt.connect(addr).await.unwrap();
    let client = gridmux::tls::connect_socket(socket, &client_tls, "127.0.0.1")
        .await
        .expect("the dialer's side of a TLS 1.3 handshake completes");
    let mut buf = [0u8; 64];
    let read = poll_fn(|cx| loop {
        match client.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ready!(client.poll_readable(cx))?;
            }
            other => return Poll::Ready(other),
        }
    });
    let error = env.within(Duration::from_secs(5), read).await.unwrap_err();
    assert!(error.to_string().contains("alert"), "{error}");
    assert!(server.await.is_err(), "the acceptor refused");
}

/// Review (SIGHUP reload): reading the files may block (a key replaced by
/// a FIFO nobody writes, a hung mount). The watcher's look does that on a
/// thread of its own: with both nodes' looks stuck (each would hold one
/// of the runtime's two workers), the nodes still answer and stop.
async fn a_look_at_files_that_blocks_holds_no_worker(env: Env) {
    let ca = ThrowawayCa::new("fifo");
    let (dir, c) = watched_pair(&env, "fifo", &ca, Duration::from_millis(20));
    links(&c).await;
    let keys: Vec<PathBuf> = (0..2).map(|i| dir.path(&format!("n{i}.key"))).collect();
    for key in &keys {
        std::fs::remove_file(key).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(key)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
    }
    // Each node's next look opens its key and waits for a writer, on a
    // thread of its own (or, before, on one of the runtime's workers).
    env.within(Duration::from_secs(5), async {
        while threads_named("gridmux-tls-wat") < 2 {
            env.sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let peer = c.peer(0, 1);
    let answered = env
        .maybe_within(Duration::from_secs(3), async {
            peer.request(ECHO, "still").await
        })
        .await;
    // The looks' threads go on: a writer that comes and goes ends their
    // wait, and the keys are files again for the next looks.
    let writers: Vec<_> = keys
        .iter()
        .map(|key| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(key)
                .unwrap()
        })
        .collect();
    for i in 0..2 {
        put_identity(&dir, i, &ca.issue(LOOPBACK));
    }
    drop(writers);
    let answer = answered.expect("an answer while the looks wait");
    assert_eq!(&answer.unwrap()[..], b"still");
    env.within(Duration::from_secs(5), c.shutdown()).await;
}

/// Threads of this process named `name` (as Linux keeps it: 15 bytes).
fn threads_named(name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .count()
}
