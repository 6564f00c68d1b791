//! (ext) Attacks on the link set-up over real sockets: a recorded set-up
//! replayed to the acceptor, an impostor answering the dialer with a
//! recorded acceptor's flights, a rolling change of the cluster secret,
//! and clients (tools that call nodes and are never called).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gridmux::{Client, ClientAccess, Error, Grid, GridBuilder, Peer, StreamReceiver, StreamSender};
use gridmux_core::cluster::should_dial;
use gridmux_core::wire::{self, Op};
use gridmux_core::ws::{
    accept_key, parse_close_payload, CloseCode, Frame, FrameDecoder, OpCode, Role,
};

use crate::harness::{fast_reconnect, suite, Cluster, Env};
use crate::proxy::{Proxy, Recording};

suite!(
    replay_to_acceptor,
    impostor_at_dialer,
    secret_rotation_rolling,
    clients_call_and_are_never_called,
);

const ECHO: u8 = 1;
const ECHO_STREAM: u8 = 2;
const SECRET: &str = "e2e secret";
/// The handshake timeout of the nodes behind the proxy and of clients.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a refused party is watched for never connecting.
const NEVER: Duration = Duration::from_secs(1);

/// An echo request handler, and an echo stream handler that counts the
/// messages it got in `seen`.
fn serving(b: GridBuilder, seen: &Arc<AtomicUsize>) -> GridBuilder {
    let seen = seen.clone();
    b.handler(ECHO, |_, p| async move { Ok(p) }).stream_handler(
        ECHO_STREAM,
        1,
        move |_, _, mut rx, mut tx| {
            let seen = seen.clone();
            async move {
                while let Some(m) = rx.recv().await.map_err(|e| e.to_string())? {
                    seen.fetch_add(1, Ordering::AcqRel);
                    tx.send(m).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        },
    )
}

/// Sends `text` on an echo stream and checks it comes back.
async fn echo_on(env: &Env, tx: &mut StreamSender, rx: &mut StreamReceiver, text: &str) {
    tx.send(text.to_owned()).await.unwrap();
    let back = env.within(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(back, Ok(Some(Bytes::from(text.to_owned()))));
}

/// An echo request from `peer` succeeds.
async fn echo(peer: &Peer, text: &str) {
    let answer = peer
        .request(ECHO, text.to_owned())
        .timeout(Duration::from_secs(5))
        .await;
    assert_eq!(
        answer,
        Ok(Bytes::from(text.to_owned())),
        "to {}",
        peer.name()
    );
}

/// The ops of the grid messages in one WebSocket message, merged batches
/// included (`None`: undecodable).
fn grid_ops(payload: &Bytes) -> Vec<Option<Op>> {
    match wire::Frame::decode(payload.clone()) {
        Ok(wire::Frame::Single(m)) => vec![Some(m.op)],
        Ok(wire::Frame::Merged(batch)) => batch.map(|m| m.ok().map(|m| m.op)).collect(),
        Err(_) => vec![None],
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` (any case) in an HTTP head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Node D dials node A; A is named by a recording proxy's address and
/// listens behind it.
struct ProxiedPair {
    dialer: Grid,
    acceptor: Grid,
    /// D's and A's names (A's is the proxy's address).
    names: [String; 2],
    /// A's real listener.
    acceptor_addr: SocketAddr,
    proxy_addr: SocketAddr,
    proxy: Proxy,
}

impl ProxiedPair {
    /// Both nodes, connected.
    async fn start(env: &Env) -> Self {
        let (dialer_listener, proxy_listener) = loop {
            let d = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = TcpListener::bind("127.0.0.1:0").unwrap();
            let (a, b) = (d.local_addr().unwrap(), p.local_addr().unwrap());
            if should_dial(&a.to_string(), &b.to_string()) {
                break (d, p);
            }
        };
        let acceptor_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let acceptor_addr = acceptor_listener.local_addr().unwrap();
        let proxy_addr = proxy_listener.local_addr().unwrap();
        let names = [
            dialer_listener.local_addr().unwrap().to_string(),
            proxy_addr.to_string(),
        ];
        let proxy = Proxy::start(proxy_listener, acceptor_addr);
        let seen = Arc::default();
        let start = |name: &str, listener: TcpListener| {
            serving(Grid::builder(name, names.clone()), &seen)
                .secret(SECRET)
                .listener(listener)
                .reconnect(fast_reconnect())
                .configure(|c| c.handshake_timeout = HANDSHAKE_TIMEOUT)
                .start(env.rt.clone())
                .unwrap()
        };
        let acceptor = start(&names[1], acceptor_listener);
        let dialer = start(&names[0], dialer_listener);
        for grid in [&dialer, &acceptor] {
            grid.wait_all_connected(Duration::from_secs(5))
                .await
                .expect("the pair connects through the proxy");
        }
        Self {
            dialer,
            acceptor,
            names,
            acceptor_addr,
            proxy_addr,
            proxy,
        }
    }

    /// D's handle on A.
    fn to_acceptor(&self) -> Peer {
        self.dialer.peer(&self.names[1]).unwrap()
    }

    /// A's handle on D.
    fn to_dialer(&self) -> Peer {
        self.acceptor.peer(&self.names[0]).unwrap()
    }

    /// What the connection of the live link carried: the last one the
    /// acceptor upgraded.
    fn live_recording(&self) -> Recording {
        let all = self.proxy.recordings();
        let upgraded = all
            .iter()
            .rev()
            .find(|r| r.from_target.starts_with(b"HTTP/1.1 101"));
        upgraded
            .unwrap_or_else(|| panic!("no upgraded connection among {}", all.len()))
            .clone()
    }

    async fn shutdown(self) {
        self.dialer.shutdown(Duration::from_secs(1)).await;
        self.acceptor.shutdown(Duration::from_secs(1)).await;
    }
}

/// What an acceptor answered to replayed bytes.
#[derive(Debug, Default)]
struct Answer {
    /// The HTTP head of the answer.
    head: String,
    /// The WebSocket frames after it.
    frames: Vec<Frame>,
    /// When the first Close frame was in, from the end of the write.
    close_after: Option<Duration>,
    /// When the acceptor ended the connection (EOF or reset).
    ended_after: Option<Duration>,
}

/// Plays `bytes` on a new connection to `to` and reads the answer until
/// the connection ends (at most 5 s).
fn replay(to: SocketAddr, bytes: &[u8]) -> Answer {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    // The acceptor may close before it has read everything.
    let _ = s.write_all(bytes);
    let sent = Instant::now();
    let mut answer = Answer::default();
    let mut input = BytesMut::new();
    let mut decoder = FrameDecoder::new(Role::Client, 1 << 20);
    let mut head_done = false;
    let mut buf = [0; 4096];
    while sent.elapsed() < Duration::from_secs(5) {
        match s.read(&mut buf) {
            Ok(0) => {
                answer.ended_after = Some(sent.elapsed());
                break;
            }
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                answer.ended_after = Some(sent.elapsed());
                break;
            }
        }
        if !head_done {
            let Some(end) = find(&input, b"\r\n\r\n") else {
                continue;
            };
            answer.head = String::from_utf8_lossy(&input.split_to(end + 4)).into_owned();
            head_done = true;
        }
        while let Ok(Some(frame)) = decoder.decode(&mut input) {
            if frame.opcode == OpCode::Close && answer.close_after.is_none() {
                answer.close_after = Some(sent.elapsed());
            }
            answer.frames.push(frame);
        }
    }
    answer
}

/// The acceptor upgraded (the filter token is still in its window) and
/// then, within the handshake timeout, closed with 1008 "unauthorized"
/// without a `ConnectResponse` or any other grid message.
fn assert_refused_after_upgrade(answer: &Answer, what: &str) {
    assert!(
        answer.head.starts_with("HTTP/1.1 101"),
        "{what}: {answer:?}"
    );
    let close = answer
        .frames
        .iter()
        .position(|f| f.opcode == OpCode::Close)
        .unwrap_or_else(|| panic!("{what}: no Close frame: {answer:?}"));
    let ops: Vec<Option<Op>> = answer.frames[..close]
        .iter()
        .filter(|f| !f.opcode.is_control())
        .flat_map(|f| grid_ops(&f.payload))
        .collect();
    assert!(
        !ops.contains(&Some(Op::CONNECT_RESPONSE)),
        "{what}: a ConnectResponse before the Close: {ops:?}"
    );
    assert!(
        ops.is_empty(),
        "{what}: grid messages before the Close: {ops:?}"
    );
    let (code, reason) = parse_close_payload(&answer.frames[close].payload).unwrap();
    assert_eq!(code, Some(CloseCode::POLICY_VIOLATION), "{what}");
    assert_eq!(reason, "unauthorized", "{what}");
    let close_after = answer.close_after.unwrap();
    assert!(
        close_after < HANDSHAKE_TIMEOUT,
        "{what}: Close after {close_after:?}"
    );
    let ended = answer.ended_after;
    assert!(
        ended.is_some_and(|t| t < HANDSHAKE_TIMEOUT + Duration::from_secs(1)),
        "{what}: the connection stayed open ({ended:?})"
    );
}

/// A recorded set-up (upgrade, `Connect` and the traffic after it),
/// replayed unchanged on new connections to the acceptor and through the
/// proxy: each is upgraded (the filter grants nothing), then closed with
/// 1008 "unauthorized" and no `ConnectResponse`. The live link does not
/// notice.
async fn replay_to_acceptor(env: Env) {
    let pair = ProxiedPair::start(&env).await;
    let peer = pair.to_acceptor();
    echo(&peer, "before").await;
    echo(&pair.to_dialer(), "before, back").await;
    let (mut tx, mut rx) = peer.open_stream(ECHO_STREAM, "").await.unwrap();
    echo_on(&env, &mut tx, &mut rx, "first").await;
    let live = pair.live_recording();
    let connections = pair.proxy.recordings().len();
    let head_end = find(&live.to_target, b"\r\n\r\n").expect("an upgrade request") + 4;
    assert!(live.to_target.starts_with(b"GET /gridmux/v1 "));
    assert!(
        live.to_target.len() > head_end,
        "Connect followed the upgrade"
    );

    for i in 0..3 {
        let answer = replay(pair.acceptor_addr, &live.to_target);
        assert_refused_after_upgrade(&answer, &format!("replay {i} to the acceptor"));
    }
    let answer = replay(pair.proxy_addr, &live.to_target);
    assert_refused_after_upgrade(&answer, "replay through the proxy");

    // The live link was never disturbed: the same stream, requests both
    // ways, and no new connection but the replay through the proxy.
    echo_on(&env, &mut tx, &mut rx, "after").await;
    echo(&peer, "after").await;
    echo(&pair.to_dialer(), "after, back").await;
    assert_eq!(pair.acceptor.connected_peers(), vec![pair.names[0].clone()]);
    assert_eq!(pair.dialer.connected_peers(), vec![pair.names[1].clone()]);
    assert_eq!(pair.proxy.recordings().len(), connections + 1);
    drop((tx, rx));
    pair.shutdown().await;
}

/// What the impostor saw of one dialer connection.
#[derive(Debug, Default, Clone)]
struct Visit {
    /// The dialer's upgrade request head.
    request: String,
    /// The ops of the grid messages the dialer sent after the upgrade
    /// (`None`: undecodable).
    ops: Vec<Option<Op>>,
    /// The dialer's Close frame: code and reason.
    close: Option<(Option<CloseCode>, String)>,
    /// From our forged answer to the dialer ending the connection.
    closed_after: Option<Duration>,
}

/// Every impostor thread stops after this, whatever happens.
const IMPOSTOR_LIFETIME: Duration = Duration::from_secs(20);

/// A listener that answers dialers with a forged 101 (a correct
/// `Sec-WebSocket-Accept`, the recorded nonce and node name) and the
/// recorded acceptor's bytes after it (its `ConnectResponse` and so on).
struct Impostor {
    addr: SocketAddr,
    visits: Arc<Mutex<Vec<Visit>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Impostor {
    fn start(recorded_head: String, recorded_rest: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let visits: Arc<Mutex<Vec<Visit>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (visits.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let started = Instant::now();
            while !stopped.load(Ordering::Acquire) && started.elapsed() < IMPOSTOR_LIFETIME {
                match listener.accept() {
                    Ok((s, _)) => {
                        let visit = impersonate(s, &recorded_head, &recorded_rest);
                        seen.lock().unwrap().push(visit);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            addr,
            visits,
            stop,
            thread: Some(thread),
        }
    }

    /// The connections handled so far.
    fn visits(&self) -> Vec<Visit> {
        self.visits.lock().unwrap().clone()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one dialer connection and watches it until it ends (bounded).
fn impersonate(mut s: TcpStream, recorded_head: &str, recorded_rest: &[u8]) -> Visit {
    let mut visit = Visit::default();
    let _ = s.set_nonblocking(false);
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut input = BytesMut::new();
    let mut buf = [0; 4096];
    let arrived = Instant::now();
    let head_end = loop {
        if let Some(end) = find(&input, b"\r\n\r\n") {
            break end + 4;
        }
        if arrived.elapsed() > Duration::from_secs(2) {
            return visit;
        }
        match s.read(&mut buf) {
            Ok(0) => return visit,
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return visit,
        }
    };
    visit.request = String::from_utf8_lossy(&input.split_to(head_end)).into_owned();
    let key = header(&visit.request, "Sec-WebSocket-Key").unwrap_or_default();
    let accept = accept_key(key.as_bytes());
    // The recorded 101, with the accept key of this request.
    let mut forged: Vec<u8> = recorded_head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, _)) if name.eq_ignore_ascii_case("Sec-WebSocket-Accept") => {
                format!("{name}: {accept}")
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    forged.extend_from_slice(recorded_rest);
    let _ = s.write_all(&forged);
    let answered = Instant::now();
    let mut decoder = FrameDecoder::new(Role::Server, 1 << 20);
    while answered.elapsed() < HANDSHAKE_TIMEOUT + Duration::from_secs(2) {
        match s.read(&mut buf) {
            Ok(0) => {
                visit.closed_after = Some(answered.elapsed());
                break;
            }
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                visit.closed_after = Some(answered.elapsed());
                break;
            }
        }
        while let Ok(Some(frame)) = decoder.decode(&mut input) {
            match frame.opcode {
                OpCode::Close => {
                    let parsed = parse_close_payload(&frame.payload);
                    visit.close = Some(parsed.unwrap_or((None, "malformed".into())));
                }
                op if !op.is_control() => visit.ops.extend(grid_ops(&frame.payload)),
                _ => {}
            }
        }
    }
    visit
}

/// An impostor on the dialer's path (the proxy now forwards to it)
/// answers each new upgrade correctly and replays the real acceptor's
/// recorded nonce and `ConnectResponse`: the dialer never reports the
/// link up, closes each connection at once, and keeps retrying; back on
/// the real acceptor it reconnects.
async fn impostor_at_dialer(env: Env) {
    let pair = ProxiedPair::start(&env).await;
    let peer = pair.to_acceptor();
    echo(&peer, "before").await;
    let live = pair.live_recording();
    let head_end = find(&live.from_target, b"\r\n\r\n").expect("a 101 head") + 4;
    let recorded_head = String::from_utf8_lossy(&live.from_target[..head_end]).into_owned();
    assert_eq!(
        header(&recorded_head, "X-Gridmux-Node"),
        Some(pair.names[1].as_str())
    );
    assert!(header(&recorded_head, "X-Gridmux-Nonce").is_some());
    assert!(header(&recorded_head, "Sec-WebSocket-Accept").is_some());
    let recorded_rest = live.from_target[head_end..].to_vec();
    assert!(
        !recorded_rest.is_empty(),
        "the ConnectResponse was recorded"
    );

    // A stream on the live link: its end shows the link has left D's
    // peer table.
    let (tx, mut rx) = peer.open_stream(ECHO_STREAM, "").await.unwrap();
    let impostor = Impostor::start(recorded_head, recorded_rest);
    pair.proxy.retarget(impostor.addr);
    peer.disconnect();
    let end = env.within(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(end, Err(Error::Disconnected));
    drop(tx);
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_millis(1500) {
        assert!(!peer.is_connected(), "the dialer took the impostor for A");
        let answer = peer.request(ECHO, "to whom?").await;
        assert_eq!(answer, Err(Error::Disconnected));
        env.sleep(Duration::from_millis(50)).await;
    }
    assert!(pair.dialer.connected_peers().is_empty());

    let visits = impostor.visits();
    assert!(!visits.is_empty(), "the dialer never reached the impostor");
    for (i, visit) in visits.iter().enumerate() {
        assert!(
            visit.request.starts_with("GET /gridmux/v1 "),
            "visit {i}: {visit:?}"
        );
        // At most its own Connect (queued before it read the forged
        // answer), then a Close that says only "unauthorized".
        assert!(
            visit.ops.iter().all(|op| *op == Some(Op::CONNECT)),
            "visit {i}: {visit:?}"
        );
        assert_eq!(
            visit.close,
            Some((Some(CloseCode::POLICY_VIOLATION), "unauthorized".to_owned())),
            "visit {i}: {visit:?}"
        );
        let closed = visit.closed_after;
        assert!(
            closed.is_some_and(|t| t < HANDSHAKE_TIMEOUT + Duration::from_millis(500)),
            "visit {i}: the dialer kept the connection open: {visit:?}"
        );
    }
    eprintln!("the impostor was visited {} times", visits.len());

    // Back to the real acceptor: the dialer reconnects.
    pair.proxy.retarget(pair.acceptor_addr);
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    echo(&peer, "after").await;
    pair.acceptor
        .wait_all_connected(Duration::from_secs(5))
        .await
        .unwrap();
    echo(&pair.to_dialer(), "after, back").await;
    drop(impostor);
    pair.shutdown().await;
}

/// The pairs of `c` as (dialer, acceptor).
fn links(c: &Cluster) -> Vec<(usize, usize)> {
    let n = c.names.len();
    let mut pairs = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i != j && should_dial(&c.names[i], &c.names[j]) {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// Closes every link that `involves` selects, from the dialing side, and
/// waits until both sides saw it go: a stream opened before on each side
/// ends with `Disconnected` (once it has, the old link has left that
/// side's peer table).
async fn drop_links(env: &Env, c: &Cluster, involves: impl Fn(usize, usize) -> bool) {
    let mut streams = Vec::new();
    for (d, a) in links(c).into_iter().filter(|&(d, a)| involves(d, a)) {
        for (from, to) in [(d, a), (a, d)] {
            let (tx, rx) = c.peer(from, to).open_stream(ECHO_STREAM, "").await.unwrap();
            streams.push((from, to, tx, rx));
        }
    }
    for (d, a) in links(c).into_iter().filter(|&(d, a)| involves(d, a)) {
        c.peer(d, a).disconnect();
    }
    for (from, to, tx, mut rx) in streams {
        let end = env.within(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(end, Err(Error::Disconnected), "stream {from} -> {to}");
        drop(tx);
    }
}

/// Every node reconnects to every other, and serves every other.
async fn all_serving(c: &Cluster, when: &str) {
    for (i, grid) in c.grids.iter().enumerate() {
        let up = grid.wait_all_connected(Duration::from_secs(5)).await;
        assert_eq!(
            up,
            Ok(()),
            "{when}: node {i} has {:?}",
            grid.connected_peers()
        );
    }
    for i in 0..c.names.len() {
        for j in (0..c.names.len()).filter(|j| *j != i) {
            echo(&c.peer(i, j), &format!("{when}: {i} -> {j}")).await;
        }
    }
}

/// The documented rolling change, one node at a time: add the new secret
/// second, make it first, drop the old one. After every single change
/// every link is set up again, and every pair connects. A node on a
/// secret nobody else holds is then cut off, and the others are not.
async fn secret_rotation_rolling(env: Env) {
    let seen = Arc::default();
    let c = env.cluster(3, |_, b| serving(b, &seen).secret("s1")).await;
    all_serving(&c, "at start").await;
    let passes: [&[&str]; 3] = [&["s1", "s2"], &["s2", "s1"], &["s2"]];
    for (pass, secrets) in passes.into_iter().enumerate() {
        for node in 0..c.grids.len() {
            c.grids[node].set_secrets(secrets).unwrap();
            let when = format!("pass {pass}, node {node} on {secrets:?}");
            // Links set up with a secret the node dropped were closed by
            // `set_secrets`; they come back at once with a listed one.
            all_serving(&c, &format!("{when}, after set_secrets")).await;
            drop_links(&env, &c, |_, _| true).await;
            all_serving(&c, &when).await;
        }
    }

    // Negative control: node 2 alone on "s3".
    let (left, a, b) = (2, 0, 1);
    let (mut tx, mut rx) = c.peer(a, b).open_stream(ECHO_STREAM, "").await.unwrap();
    echo_on(&env, &mut tx, &mut rx, "before s3").await;
    // Every link of node 2 was set up with s1 or s2, which it no longer
    // accepts: `set_secrets` closes them at once.
    c.grids[left].set_secrets(["s3"]).unwrap();
    let cut_off = || {
        c.grids[left].connected_peers().is_empty()
            && c.grids[a].connected_peers() == vec![c.names[b].clone()]
            && c.grids[b].connected_peers() == vec![c.names[a].clone()]
    };
    let started = Instant::now();
    while !cut_off() && started.elapsed() < Duration::from_secs(5) {
        env.sleep(Duration::from_millis(10)).await;
    }
    let watching = Instant::now();
    while watching.elapsed() < NEVER {
        let cut = c.grids[left].connected_peers();
        assert!(cut.is_empty(), "node {left} on s3 connected to {cut:?}");
        assert_eq!(c.grids[a].connected_peers(), vec![c.names[b].clone()]);
        assert_eq!(c.grids[b].connected_peers(), vec![c.names[a].clone()]);
        env.sleep(Duration::from_millis(50)).await;
    }
    echo_on(&env, &mut tx, &mut rx, "after s3").await;
    echo(&c.peer(a, b), "a -> b").await;
    echo(&c.peer(b, a), "b -> a").await;
    let refused = c.peer(a, left).request(ECHO, "x").await;
    assert_eq!(refused, Err(Error::Disconnected));
    drop((tx, rx));
    c.shutdown().await;
}

/// A client of a node: it calls (requests, streams) and is never a peer.
/// Refused: a wrong secret, a member's name, a node that refuses clients,
/// and the cluster secret at a node with separate client secrets.
async fn clients_call_and_are_never_called(env: Env) {
    let seen = Arc::new(AtomicUsize::new(0));
    let c = env.cluster(2, |_, b| serving(b, &seen)).await;
    let refusing = env
        .cluster(1, |_, b| serving(b, &seen).clients(ClientAccess::Refused))
        .await;
    let separate = env
        .cluster(1, |_, b| serving(b, &seen).client_secrets(["tool secret"]))
        .await;
    let client = |name: &str, node: &str, secret: &str| {
        Client::builder(name, node)
            .secret(secret)
            .reconnect(fast_reconnect())
            .configure(|c| c.handshake_timeout = HANDSHAKE_TIMEOUT)
            .start(env.rt.clone())
            .unwrap()
    };

    let tool = client("tool-1", &c.names[0], SECRET);
    tool.wait_connected(Duration::from_secs(5)).await.unwrap();
    echo(tool.peer(), "from a tool").await;
    let (mut tx, mut rx) = tool.peer().open_stream(ECHO_STREAM, "").await.unwrap();
    for i in 0..3 {
        echo_on(&env, &mut tx, &mut rx, &format!("tool message {i}")).await;
    }
    assert_eq!(seen.load(Ordering::Acquire), 3);
    tx.finish().unwrap();
    let end = env.within(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(end, Ok(None));
    // Served, never called: not a peer of the node.
    assert_eq!(c.grids[0].connected_peers(), vec![c.names[1].clone()]);
    assert!(matches!(
        c.grids[0].peer("tool-1"),
        Err(Error::UnknownPeer(_))
    ));

    let tool_secret = client("tool-2", &separate.names[0], "tool secret");
    tool_secret
        .wait_connected(Duration::from_secs(5))
        .await
        .unwrap();
    echo(tool_secret.peer(), "with the tool secret").await;
    assert!(separate.grids[0].connected_peers().is_empty());

    let refused = [
        (
            "a wrong secret",
            client("tool-3", &c.names[0], "not the secret"),
        ),
        (
            "another member's name",
            client(&c.names[1], &c.names[0], SECRET),
        ),
        (
            "the node's own name",
            client(&c.names[0], &c.names[0], SECRET),
        ),
        (
            "clients refused",
            client("tool-4", &refusing.names[0], SECRET),
        ),
        (
            "the cluster secret where clients have their own",
            client("tool-5", &separate.names[0], SECRET),
        ),
    ];
    let watching = Instant::now();
    while watching.elapsed() < NEVER {
        for (why, refused) in &refused {
            assert!(!refused.peer().is_connected(), "{why}: connected");
        }
        env.sleep(Duration::from_millis(50)).await;
    }
    for (why, refused) in &refused {
        let answer = refused.peer().request(ECHO, "x").await;
        assert_eq!(answer, Err(Error::Disconnected), "{why}");
    }

    // The good clients and the nodes' own link were not disturbed.
    echo(tool.peer(), "still a tool").await;
    echo(tool_secret.peer(), "still with the tool secret").await;
    echo(&c.peer(0, 1), "0 -> 1").await;
    echo(&c.peer(1, 0), "1 -> 0").await;
    assert_eq!(c.grids[0].connected_peers(), vec![c.names[1].clone()]);
    assert_eq!(c.grids[1].connected_peers(), vec![c.names[0].clone()]);

    for (_, refused) in refused {
        refused.shutdown(Duration::from_secs(1)).await;
    }
    tool.shutdown(Duration::from_secs(1)).await;
    tool_secret.shutdown(Duration::from_secs(1)).await;
    c.shutdown().await;
    refusing.shutdown().await;
    separate.shutdown().await;
}
