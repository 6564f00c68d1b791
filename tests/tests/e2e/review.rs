//! Defects found in review (issues 10 and 11, adapter items), each test
//! failing on the code before its fix.

use std::future::IntoFuture as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use gridmux::{Client, ClientAccess, Error, Grid, Keyring};
use gridmux_core::cluster::should_dial;
use gridmux_core::link::{Event, Link, LinkConfig};
use gridmux_core::ws::Transmit;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::harness::{fast_reconnect, suite, Env};
use crate::proxy::Proxy;

suite!(
    dropping_a_secret_closes_what_it_let_in,
    huge_timeouts_do_not_panic,
    a_link_that_fails_as_it_connects_is_never_installed,
    pipelined_http_requests_are_all_answered,
    a_link_that_dies_at_once_is_redialled_with_back_off,
    a_runtime_that_drops_spawned_tasks_does_not_deadlock_a_link,
    a_closed_link_that_cannot_write_still_lets_the_dialer_redial,
    shutdown_is_cancel_safe_idempotent_and_closes_set_ups,
    dropping_the_last_grid_handle_stops_the_node,
    a_stream_handler_reads_its_input_after_finishing_its_output,
    a_connect_that_hangs_times_out_on_its_own_timeout,
    host_names_resolve_through_the_runtime,
    a_blocking_handler_does_not_stall_its_link,
    a_sender_waiting_for_a_full_queue_keeps_one_waker,
    a_flood_is_held_within_the_inbound_budget,
    a_stream_id_reused_by_the_peer_is_not_ended_by_the_old_handler,
);

const ECHO: u8 = 1;

fn node(env: &Env, secrets: &[&str]) -> Grid {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let name = listener.local_addr().unwrap().to_string();
    Grid::builder(name.clone(), [name])
        .secrets(secrets)
        .listener(listener)
        .handler(ECHO, |_, p| async move { Ok(p) })
        .start(env.rt.clone())
        .unwrap()
}

fn client(env: &Env, grid: &Grid, secret: &str) -> Client {
    Client::builder("tool", grid.local())
        .secret(secret)
        .reconnect(fast_reconnect())
        .start(env.rt.clone())
        .unwrap()
}

/// Waits until `client` is disconnected (at most `limit`).
async fn until_disconnected(env: &Env, client: &Client, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !client.peer().is_connected() {
            return true;
        }
        env.sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A dropped secret may have leaked: `set_secrets` closes the links it let
/// in, and they cannot come back; links set up with a kept secret stay.
/// `set_client_access` does the same for clients.
async fn dropping_a_secret_closes_what_it_let_in(env: Env) {
    let grid = node(&env, &["leaked secret", "kept secret"]);
    let leaked = client(&env, &grid, "leaked secret");
    let kept = client(&env, &grid, "kept secret");
    for c in [&leaked, &kept] {
        c.wait_connected(Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.peer().request(ECHO, "x").await.unwrap(), "x");
    }
    grid.set_secrets(["kept secret"]).unwrap();
    assert!(until_disconnected(&env, &leaked, Duration::from_secs(2)).await);
    env.sleep(Duration::from_millis(300)).await;
    assert!(
        !leaked.peer().is_connected(),
        "a dropped secret let it back in"
    );
    assert_eq!(kept.peer().request(ECHO, "y").await.unwrap(), "y");
    grid.set_client_access(ClientAccess::Refused);
    assert!(until_disconnected(&env, &kept, Duration::from_secs(2)).await);
    for c in [&leaked, &kept] {
        c.shutdown(Duration::from_secs(1)).await;
    }
    grid.shutdown(Duration::from_secs(1)).await;
}

/// `Duration::MAX` (or any timeout that overflows `Instant`) means "the
/// longest there is", never a panic (issue 11, item 6).
async fn huge_timeouts_do_not_panic(env: Env) {
    let grid = node(&env, &["huge timeouts secret"]);
    let tool = client(&env, &grid, "huge timeouts secret");
    tool.wait_connected(Duration::MAX).await.unwrap();
    let peer = tool.peer();
    let answer = peer.request(ECHO, "max").timeout(Duration::MAX).await;
    assert_eq!(answer.unwrap(), "max");
    let typed: Result<String, Error> = peer.call(ECHO, &"t".to_owned()).await;
    assert!(typed.is_ok(), "{typed:?}");
    let (_tx, mut rx) = peer
        .open_stream(ECHO, "s")
        .timeout(Duration::MAX)
        .await
        .unwrap();
    // ECHO is a request handler: the stream is refused, not a panic.
    assert_eq!(rx.recv().await, Err(Error::UnknownHandler));
    let started = Instant::now();
    tool.shutdown(Duration::MAX).await;
    grid.shutdown(Duration::MAX).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A link whose `ConnectResponse` and a malformed message arrive in one read
/// connects and fails in the same driver round: it must not be installed
/// as connected (issue 11, item 3: `is_connected()` was true and every call
/// failed with `Disconnected`).
async fn a_link_that_fails_as_it_connects_is_never_installed(env: Env) {
    let (grid, peer, acceptor) = grid_and_fake_acceptor(&env, Some(fast_reconnect()));
    let started = Instant::now();
    let mut seen_connected = false;
    while started.elapsed() < Duration::from_secs(1) {
        seen_connected |= peer.is_connected();
        env.sleep(Duration::from_millis(5)).await;
    }
    let set_ups = acceptor.stop();
    assert!(set_ups >= 1, "the grid dialled the fake acceptor");
    assert!(
        !seen_connected,
        "a link that had already failed was installed"
    );
    grid.shutdown(Duration::from_secs(1)).await;
}

/// A link that dies right after connecting counts as a failed attempt:
/// the default schedule (1–2 s) spaces the re-dials instead of a tight
/// loop (issue 11, item 10).
async fn a_link_that_dies_at_once_is_redialled_with_back_off(env: Env) {
    let (grid, _peer, acceptor) = grid_and_fake_acceptor(&env, None);
    env.sleep(Duration::from_millis(2_200)).await;
    let set_ups = acceptor.stop();
    assert!((1..=3).contains(&set_ups), "{set_ups} set-ups in 2.2 s");
    grid.shutdown(Duration::from_secs(1)).await;
}

/// A running fake acceptor.
struct FakeAcceptor {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl FakeAcceptor {
    /// Stops it; returns how many set-ups completed.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// A grid dialling a fake acceptor (the grid is the dialing side) that
/// completes every set-up and then breaks the protocol in the same write.
fn grid_and_fake_acceptor(
    env: &Env,
    reconnect: Option<gridmux::ReconnectSchedule>,
) -> (Grid, gridmux::Peer, FakeAcceptor) {
    let ([listener, fake], names) = dialing_pair();
    let secret = "fails as it connects";
    let mut builder = Grid::builder(names[0].clone(), names.clone())
        .secret(secret)
        .listener(listener);
    if let Some(schedule) = reconnect {
        builder = builder.reconnect(schedule);
    }
    let grid = builder.start(env.rt.clone()).unwrap();
    let keys = Arc::new(Keyring::new([secret]).unwrap());
    let config = Arc::new(LinkConfig::new(&names[1], names.clone(), [3; 16], keys));
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || fake_acceptor(fake, config, &stopped));
    let peer = grid.peer(&names[1]).unwrap();
    (grid, peer, FakeAcceptor { stop, thread })
}

/// Accepts connections until `stop` (at most 5 s); each completes the
/// set-up and, in the same write as the `ConnectResponse`, breaks the
/// protocol. Returns
/// how many connected.
fn fake_acceptor(listener: TcpListener, config: Arc<LinkConfig>, stop: &AtomicBool) -> usize {
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let mut connected = 0;
    while !stop.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(5) {
        let Ok((mut socket, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        socket.set_nonblocking(false).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(connected as u64);
        let mut link = Link::accept(config.clone(), now, SystemTime::now(), &mut rng);
        let mut input = BytesMut::new();
        for _ in 0..20 {
            let mut buf = [0; 4096];
            match socket.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => input.extend_from_slice(&buf[..n]),
            }
            link.handle_input(now, &mut input);
            let mut out = Transmit::new();
            while link.poll_transmit(now, &mut out) {}
            let mut bytes = out.to_vec();
            let up = std::iter::from_fn(|| link.poll_event())
                .any(|e| matches!(e, Event::Connected { .. }));
            if up {
                connected += 1;
                // A malformed grid message right behind the
                // ConnectResponse: the dialer fails as it connects.
                bytes.extend_from_slice(&[0x82, 0x01, 0xc1]);
            }
            let _ = socket.write_all(&bytes);
            if up {
                break;
            }
        }
    }
    connected
}

/// Two requests in one write get two answers, in order (issue 11, item 7:
/// the second waited for bytes that never came).
async fn pipelined_http_requests_are_all_answered(env: Env) {
    let grid = node(&env, &["pipelining secret"]);
    let mut s = std::net::TcpStream::connect(grid.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let one = "GET /health HTTP/1.1\r\nHost: n\r\n\r\n";
    let last = "GET /nope HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n";
    s.write_all(format!("{one}{one}{last}").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(text.matches("HTTP/1.1 404").count(), 1, "{text}");
    assert!(text.find("404").unwrap() > text.rfind("200 OK").unwrap());
    grid.shutdown(Duration::from_secs(1)).await;
}

/// A stream handler's task dropped inside `spawn` (the runtime is shutting
/// down) must not deadlock its link: it used to be spawned under the
/// link's lock, and dropping it locks the link (issue 11, item 11).
async fn a_runtime_that_drops_spawned_tasks_does_not_deadlock_a_link(env: Env) {
    let listeners = [
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    ];
    let names: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let dropping = Arc::new(AtomicBool::new(false));
    let mut grids = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let builder = Grid::builder(names[i].clone(), names.clone())
            .secret("dropping spawns")
            .listener(listener)
            // Inline: answered by the link's own task, which must live on.
            .inline_handler(ECHO, |_, p| async move { Ok(p) })
            .stream_handler(2, 4, |_, _, _, _| async move { Ok(()) });
        let grid = if i == 1 {
            let runtime = TestRuntime {
                drop_spawns: Some(dropping.clone()),
                ..TestRuntime::over(&env)
            };
            builder.start(runtime).unwrap()
        } else {
            builder.start(env.rt.clone()).unwrap()
        };
        grids.push(grid);
    }
    let peer = grids[0].peer(&names[1]).unwrap();
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    dropping.store(true, Ordering::Release);
    let (_tx, mut rx) = peer.open_stream(2, "x").await.unwrap();
    // The handler never runs; the stream ends one way or another...
    let end = env.within(Duration::from_secs(5), rx.recv()).await;
    assert!(end.is_err() || end == Ok(None), "{end:?}");
    // ...and the link still serves (its driver is not deadlocked).
    let answer = env
        .within(
            Duration::from_secs(5),
            peer.request(ECHO, "alive").into_future(),
        )
        .await;
    assert_eq!(answer.unwrap(), "alive");
    dropping.store(false, Ordering::Release);
    for grid in &grids {
        grid.shutdown(Duration::from_secs(1)).await;
    }
}

/// The peer stops reading a link for good; the dialer's core closes it
/// for a write stall with bytes it can never write. Its socket is dropped
/// after the close timeout, and the dialer re-dials the peer, which is
/// reachable on a new connection (issue 11, item 1: the driver waited for
/// writability with no timer, and the dial loop stayed parked).
async fn a_closed_link_that_cannot_write_still_lets_the_dialer_redial(env: Env) {
    // Node 1 is named by the proxy's address and listens behind it; node 0
    // dials it.
    let (l0, proxy_listener) = loop {
        let l0 = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = TcpListener::bind("127.0.0.1:0").unwrap();
        let (a, b) = (l0.local_addr().unwrap(), p.local_addr().unwrap());
        if should_dial(&a.to_string(), &b.to_string()) {
            break (l0, p);
        }
    };
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let names = vec![
        l0.local_addr().unwrap().to_string(),
        proxy_listener.local_addr().unwrap().to_string(),
    ];
    let proxy = Proxy::start(proxy_listener, l1.local_addr().unwrap());
    let start = |listener: TcpListener, name: &str| {
        Grid::builder(name, names.clone())
            .secret("lingering secret")
            .listener(listener)
            .reconnect(fast_reconnect())
            .handler(ECHO, |_, p| async move { Ok(p) })
            .configure(|c| {
                c.write_stall_timeout = Duration::from_millis(300);
                c.ws.close_timeout = Duration::from_millis(500);
            })
            .start(env.rt.clone())
            .unwrap()
    };
    let dialer = start(l0, &names[0]);
    let server = start(l1, &names[1]);
    let peer = dialer.peer(&names[1]).unwrap();
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    proxy.stall_existing();
    // More than the socket buffers hold: the link's output backs up.
    let big = bytes::Bytes::from(vec![7u8; 12 << 20]);
    let mut calls = Vec::new();
    for _ in 0..3 {
        let call = peer
            .request(ECHO, big.clone())
            .timeout(Duration::from_secs(20))
            .into_future();
        calls.push(env.spawn(call));
    }
    for call in calls {
        let failed = env.within(Duration::from_secs(5), call).await;
        assert_eq!(failed, Err(Error::Disconnected));
    }
    // The peer is reachable on a new connection: the dialer gets there.
    peer.wait_connected(Duration::from_secs(3)).await.unwrap();
    assert_eq!(peer.request(ECHO, "back").await.unwrap(), "back");
    drop(proxy);
    for grid in [&dialer, &server] {
        grid.shutdown(Duration::from_secs(1)).await;
    }
}

/// `Grid::shutdown` dropped half-way (a timeout around it) leaves nothing
/// for a later call to wait on; links still in their set-up are closed by
/// it too, not left to their handshake timeout (issue 11, item 2).
async fn shutdown_is_cancel_safe_idempotent_and_closes_set_ups(env: Env) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let name = listener.local_addr().unwrap().to_string();
    let other = "127.0.0.1:1".to_owned();
    let grid = Grid::builder(name.clone(), [name.clone(), other.clone()])
        .secret("shutdown secret")
        .listener(listener)
        .configure(|c| c.handshake_timeout = Duration::from_secs(30))
        .start(env.rt.clone())
        .unwrap();
    // A set-up that stops after its upgrade: the acceptor waits for a
    // `Connect` that never comes (its handshake timeout is 30 s).
    let keys = Arc::new(Keyring::new(["shutdown secret"]).unwrap());
    let config = Arc::new(LinkConfig::new(
        &other,
        vec![name.clone(), other.clone()],
        [1; 16],
        keys,
    ));
    let mut dialer = Link::dial(
        config,
        name.clone(),
        Instant::now(),
        SystemTime::now(),
        Box::new(StdRng::seed_from_u64(1)),
    );
    let mut out = Transmit::new();
    while dialer.poll_transmit(Instant::now(), &mut out) {}
    let mut half = std::net::TcpStream::connect(&name).unwrap();
    half.write_all(&out.to_vec()).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 12];
    half.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    // A first call, dropped before it finishes.
    let first = env.maybe_within(
        Duration::from_micros(1),
        grid.shutdown(Duration::from_secs(20)),
    );
    let _ = first.await;
    // A second call completes, and promptly: the set-up was closed.
    let started = Instant::now();
    env.within(
        Duration::from_secs(5),
        grid.shutdown(Duration::from_secs(20)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Again: idempotent.
    env.within(
        Duration::from_secs(1),
        grid.shutdown(Duration::from_secs(1)),
    )
    .await;
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
}

/// Dropping the last handle of a running grid without `shutdown` stops it:
/// its links close and its port is freed (issue 11, item 2).
async fn dropping_the_last_grid_handle_stops_the_node(env: Env) {
    let c = env
        .cluster(2, |_, b| b.handler(ECHO, |_, p| async move { Ok(p) }))
        .await;
    let names = c.names.clone();
    let mut grids = c.grids;
    let survivor = grids.remove(0);
    let addr: std::net::SocketAddr = names[1].parse().unwrap();
    drop(grids); // the last handle of node 1
    let peer = survivor.peer(&names[1]).unwrap();
    let started = Instant::now();
    while peer.is_connected() && started.elapsed() < Duration::from_secs(5) {
        env.sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !peer.is_connected(),
        "node 1's link outlived its last handle"
    );
    // Its port is free again.
    let mut rebound = None;
    while rebound.is_none() && started.elapsed() < Duration::from_secs(5) {
        rebound = TcpListener::bind(addr).ok();
        env.sleep(Duration::from_millis(10)).await;
    }
    assert!(rebound.is_some(), "node 1's port is still taken");
    survivor.shutdown(Duration::from_secs(1)).await;
}

/// A stream handler that finishes its output and then reads its input
/// sees that input and its end: the caller's EOF, or the caller going
/// away (issue 11, item 4: it hung forever).
async fn a_stream_handler_reads_its_input_after_finishing_its_output(env: Env) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    let c = env
        .cluster(2, move |_, b| {
            let seen = seen.clone();
            b.stream_handler(5, 4, move |_, first, mut rx, mut tx| {
                let seen = seen.clone();
                async move {
                    // Wait for `first` messages, answer once and finish,
                    // then keep reading the input to its end.
                    let wanted = usize::from(first.first().copied().unwrap_or(0));
                    let mut count = 0;
                    while count < wanted {
                        match rx.recv().await {
                            Ok(Some(_)) => count += 1,
                            _ => break,
                        }
                    }
                    tx.send(bytes::Bytes::from_static(b"only"))
                        .await
                        .map_err(|e| e.to_string())?;
                    tx.finish().map_err(|e| e.to_string())?;
                    let end = loop {
                        match rx.recv().await {
                            Ok(Some(_)) => count += 1,
                            Ok(None) => break "eof".to_owned(),
                            Err(e) => break format!("{e:?}"),
                        }
                    };
                    seen.lock().unwrap().push((count, end));
                    Ok(())
                }
            })
        })
        .await;
    let peer = c.peer(0, 1);
    // The caller sends 3 messages and ends its input at once; the handler
    // answers after the 3 and then reads the end.
    let (mut tx, mut rx) = peer.open_stream(5, vec![3u8]).await.unwrap();
    for _ in 0..3 {
        tx.send(bytes::Bytes::from_static(b"in")).await.unwrap();
    }
    tx.finish().unwrap();
    assert_eq!(
        rx.recv().await,
        Ok(Some(bytes::Bytes::from_static(b"only")))
    );
    assert_eq!(rx.recv().await, Ok(None));
    // The caller only reads: when the server's EOF ends its stream, its
    // input ends too, and the handler hears it.
    let (_tx, mut rx) = peer.open_stream(5, vec![0u8]).await.unwrap();
    assert_eq!(
        rx.recv().await,
        Ok(Some(bytes::Bytes::from_static(b"only")))
    );
    assert_eq!(rx.recv().await, Ok(None));
    let started = Instant::now();
    while got.lock().unwrap().len() < 2 && started.elapsed() < Duration::from_secs(5) {
        env.sleep(Duration::from_millis(10)).await;
    }
    let mut got = got.lock().unwrap().clone();
    got.sort();
    assert_eq!(got.len(), 2, "a handler never returned: {got:?}");
    // The first read all 3 messages, then the end: the caller's EOF, or
    // (if the server's EOF reached the caller before it finished) the
    // caller's input ending with its stream.
    assert!(got.iter().any(|(n, _)| *n == 3), "{got:?}");
    assert!(
        got.iter().any(|(n, end)| *n == 0 && end != "eof"),
        "{got:?}"
    );
    c.shutdown().await;
}

/// The dial timeout is its own setting, not the handshake timeout
/// (issue 11, item 13; DESIGN §5.5: 2 s and 5 s): a connect that hangs is
/// given up after `connect_timeout` and retried.
async fn a_connect_that_hangs_times_out_on_its_own_timeout(env: Env) {
    let ([listener, far], names) = dialing_pair();
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let runtime = TestRuntime {
        hang_connects: Some(attempts.clone()),
        ..TestRuntime::over(&env)
    };
    let grid = Grid::builder(names[0].clone(), names.clone())
        .secret("hanging connects")
        .listener(listener)
        .reconnect(fast_reconnect())
        .configure(|c| {
            c.connect_timeout = Duration::from_millis(100);
            c.handshake_timeout = Duration::from_secs(30);
        })
        .start(runtime)
        .unwrap();
    env.sleep(Duration::from_millis(1_000)).await;
    let made = attempts.load(Ordering::Acquire);
    assert!(made >= 3, "{made} connect attempts in 1 s");
    grid.shutdown(Duration::from_secs(1)).await;
    drop(far);
}

/// `SmolRuntime` runs tasks on several threads (issue 11, item 9: the
/// global executor ran everything on one, so one blocking handler stalled
/// every link): two tasks that block at once run side by side.
#[test]
fn smol_runtime_runs_tasks_on_several_threads() {
    use gridmux::runtime::{Runtime as _, SmolRuntime};
    let runtime = SmolRuntime::with_threads(2);
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..2 {
        let tx = tx.clone();
        runtime.spawn(Box::pin(async move {
            std::thread::sleep(Duration::from_millis(300)); // blocks its thread
            let _ = tx.send(std::thread::current().id());
        }));
    }
    let a = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let b = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(a, b, "both tasks ran on one thread");
}

/// Peers named by host name are resolved through the runtime (its
/// blocking pool), not on a task thread (issue 11, item 8); the nodes
/// connect.
async fn host_names_resolve_through_the_runtime(env: Env) {
    let listeners = [
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    ];
    let names: Vec<String> = listeners
        .iter()
        .map(|l| format!("localhost:{}", l.local_addr().unwrap().port()))
        .collect();
    let resolved = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut grids = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = TestRuntime {
            count_resolves: Some(resolved.clone()),
            ..TestRuntime::over(&env)
        };
        let grid = Grid::builder(names[i].clone(), names.clone())
            .secret("resolving secret")
            .listener(listener)
            .handler(ECHO, |_, p| async move { Ok(p) })
            .start(runtime)
            .unwrap();
        grids.push(grid);
    }
    let peer = grids[0].peer(&names[1]).unwrap();
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    assert_eq!(peer.request(ECHO, "by name").await.unwrap(), "by name");
    assert!(resolved.load(Ordering::Acquire) >= 1);
    for grid in &grids {
        grid.shutdown(Duration::from_secs(1)).await;
    }
}

/// A request handler that blocks its thread (a synchronous file read, say)
/// must not hold up an unrelated request on the same link: handlers run
/// as tasks of their own unless registered inline (issue 11, item 5: its
/// first poll ran inside the link's task, delaying the other by as long).
async fn a_blocking_handler_does_not_stall_its_link(env: Env) {
    const BLOCKING: u8 = 2;
    let c = env
        .cluster(2, |_, b| {
            b.handler(ECHO, |_, p| async move { Ok(p) })
                .handler(BLOCKING, |_, p| async move {
                    std::thread::sleep(Duration::from_millis(1_500));
                    Ok(p)
                })
        })
        .await;
    let peer = c.peer(0, 1);
    let slow = env.spawn(peer.request(BLOCKING, "slow").into_future());
    env.sleep(Duration::from_millis(100)).await; // the handler is blocking
    let started = Instant::now();
    let quick = env
        .within(
            Duration::from_secs(5),
            peer.request(ECHO, "quick").into_future(),
        )
        .await;
    assert_eq!(quick.unwrap(), "quick");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(700),
        "the echo waited {waited:?}"
    );
    assert_eq!(slow.await.unwrap(), "slow");
    c.shutdown().await;
}

/// The test's runtime with faults to order: spawned futures dropped while
/// a flag is set (as tokio does while it shuts down), TCP connects that
/// never complete (counted), name resolutions counted.
#[derive(Debug)]
struct TestRuntime {
    inner: Arc<dyn gridmux::runtime::Runtime>,
    drop_spawns: Option<Arc<AtomicBool>>,
    hang_connects: Option<Arc<std::sync::atomic::AtomicUsize>>,
    count_resolves: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

impl TestRuntime {
    /// The environment's runtime, unchanged.
    fn over(env: &Env) -> Self {
        Self {
            inner: env.rt.clone(),
            drop_spawns: None,
            hang_connects: None,
            count_resolves: None,
        }
    }
}

impl gridmux::runtime::Runtime for TestRuntime {
    fn spawn(&self, future: gridmux::runtime::BoxFuture<()>) {
        if self
            .drop_spawns
            .as_ref()
            .is_some_and(|d| d.load(Ordering::Acquire))
        {
            drop(future);
        } else {
            self.inner.spawn(future);
        }
    }
    fn timer(&self, deadline: Instant) -> std::pin::Pin<Box<dyn gridmux::runtime::Timer>> {
        self.inner.timer(deadline)
    }
    fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> gridmux::runtime::BoxFuture<std::io::Result<Box<dyn gridmux::runtime::Socket>>> {
        match &self.hang_connects {
            Some(attempts) => {
                attempts.fetch_add(1, Ordering::AcqRel);
                Box::pin(std::future::pending())
            }
            None => self.inner.connect(addr),
        }
    }
    fn adopt_listener(
        &self,
        listener: TcpListener,
    ) -> std::io::Result<Box<dyn gridmux::runtime::Listener>> {
        self.inner.adopt_listener(listener)
    }
    fn resolve(
        &self,
        name: String,
    ) -> gridmux::runtime::BoxFuture<std::io::Result<Vec<std::net::SocketAddr>>> {
        if let Some(count) = &self.count_resolves {
            count.fetch_add(1, Ordering::AcqRel);
        }
        self.inner.resolve(name)
    }
}

/// Two bound listeners, the first of which dials the second (the xxh3
/// rule), and their names.
fn dialing_pair() -> ([TcpListener; 2], Vec<String>) {
    loop {
        let pair = [
            TcpListener::bind("127.0.0.1:0").unwrap(),
            TcpListener::bind("127.0.0.1:0").unwrap(),
        ];
        let names: Vec<String> = pair
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        if should_dial(&names[0], &names[1]) {
            return (pair, names);
        }
    }
}

/// Counts how many clones of a waker are alive.
struct CountedWake;

impl std::task::Wake for CountedWake {
    fn wake(self: Arc<Self>) {}
}

/// A stream sender polled again and again while the link's send queue is
/// full keeps one waker, not one per poll (issue 11, item 12).
async fn a_sender_waiting_for_a_full_queue_keeps_one_waker(env: Env) {
    let ([l0, proxy_listener], names) = dialing_pair();
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = Proxy::start(proxy_listener, l1.local_addr().unwrap());
    let start = |listener: TcpListener, name: &str| {
        Grid::builder(name, names.clone())
            .secret("full queue secret")
            .listener(listener)
            .reconnect(fast_reconnect())
            // Holds its input unread.
            .stream_handler(6, 64, |ctx, _, rx, _| async move {
                let _held = rx;
                ctx.cancel_signal().cancelled().await;
                Ok(())
            })
            .configure(|c| c.max_queued_bytes = 256 << 10)
            .start(env.rt.clone())
            .unwrap()
    };
    let caller = start(l0, &names[0]);
    let server = start(l1, &names[1]);
    let peer = caller.peer(&names[1]).unwrap();
    peer.wait_connected(Duration::from_secs(5)).await.unwrap();
    let (mut tx, _rx) = peer.open_stream(6, "").await.unwrap();
    env.sleep(Duration::from_millis(100)).await; // the ack is through
    proxy.stall_existing();
    // Fill the socket buffers and then the link's queue.
    let chunk = bytes::Bytes::from(vec![1u8; 1 << 20]);
    let mut full = false;
    for _ in 0..64 {
        let sent = env
            .maybe_within(Duration::from_millis(300), tx.send(chunk.clone()))
            .await;
        if sent.is_none() {
            full = true;
            break;
        }
    }
    assert!(full, "the queue never filled");
    let wake = Arc::new(CountedWake);
    let waker = std::task::Waker::from(wake.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    // Poll while the queue is full (a send that got through on a moment of
    // room is replaced by the next one), 1,000 times pending in all.
    let mut pending = 0;
    for _ in 0..10_000 {
        let mut send = Box::pin(tx.send(chunk.clone()));
        while pending < 1_000 && std::future::Future::poll(send.as_mut(), &mut cx).is_pending() {
            pending += 1;
        }
        if pending == 1_000 {
            break;
        }
    }
    assert_eq!(pending, 1_000, "the queue never stayed full");
    // This test's two handles, and the one the link keeps.
    assert!(
        Arc::strong_count(&wake) <= 3,
        "{} wakers kept",
        Arc::strong_count(&wake)
    );
    drop(proxy);
    for grid in [&caller, &server] {
        grid.shutdown(Duration::from_secs(1)).await;
    }
}

/// Counts the payload bytes of the handlers running at once, and the peak.
#[derive(Debug, Default)]
struct HeldBytes {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// One running handler's payload, counted while it lives.
struct Holding(Arc<HeldBytes>, usize);

impl Holding {
    fn new(held: &Arc<HeldBytes>, n: usize) -> Self {
        let now = held.now.fetch_add(n, Ordering::AcqRel) + n;
        held.peak.fetch_max(now, Ordering::AcqRel);
        Self(held.clone(), n)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.now.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// Issue 11, item 19: a peer floods a handler that holds its requests
/// until their deadline. The serving node hands its handlers at most its
/// inbound budget (measured by the handlers: the payload bytes alive at
/// once; before the budget all 64 × 32 KiB were), the rest are refused
/// with `Overloaded`, and the link serves on.
async fn a_flood_is_held_within_the_inbound_budget(env: Env) {
    const HOLD: u8 = 3;
    const BUDGET: usize = 256 * 1024;
    let held = Arc::new(HeldBytes::default());
    let in_handlers = held.clone();
    let c = env
        .cluster(2, move |_, b| {
            let held = in_handlers.clone();
            b.configure(|c| c.max_inbound_bytes = BUDGET)
                .handler(ECHO, |_, p| async move { Ok(p) })
                .handler(HOLD, move |_, p| {
                    let holding = Holding::new(&held, p.len());
                    async move {
                        std::future::pending::<()>().await;
                        drop(holding);
                        Ok(p)
                    }
                })
        })
        .await;
    let peer = c.peer(0, 1);
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let request = peer
                .request(HOLD, vec![7u8; 32 * 1024])
                .timeout(Duration::from_secs(3));
            env.spawn(request.into_future())
        })
        .collect();
    let mut overloaded = 0;
    for r in flood {
        match r.await {
            Err(Error::Overloaded) => overloaded += 1,
            Err(Error::Timeout) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let peak = held.peak.load(Ordering::Acquire);
    assert!(peak <= BUDGET, "the handlers held {peak} bytes at once");
    assert!(peak >= BUDGET / 2, "the budget was used: {peak}");
    assert!(
        overloaded >= 64 - BUDGET / (32 * 1024),
        "{overloaded} refused"
    );
    let echo = env
        .within(
            Duration::from_secs(5),
            peer.request(ECHO, "after").into_future(),
        )
        .await;
    assert_eq!(echo.unwrap(), "after");
    c.shutdown().await;
}

/// What the fake caller saw of its second stream.
#[derive(Debug, Default)]
struct SecondStream {
    messages: Vec<bytes::Bytes>,
    end: Option<String>,
}

/// Review of issue 11 (second): once a served stream is over in the core,
/// the peer may open a new stream with the same id while the old handler
/// is still running. The old handler's return must not end or forget the
/// new stream (it removed its slot, so the new handler could not send, and
/// ended its output at once).
async fn a_stream_id_reused_by_the_peer_is_not_ended_by_the_old_handler(env: Env) {
    const STREAM: u8 = 6;
    let ([listener, fake], names) = dialing_pair();
    let secret = "a stream id reused";
    let grid = Grid::builder(names[0].clone(), names.clone())
        .secret(secret)
        .listener(listener)
        .stream_handler(STREAM, 4, |_, first, mut rx, mut tx| async move {
            if &first[..] == b"first" {
                tx.finish().map_err(|e| e.to_string())?;
                while rx.recv().await.map_err(|e| e.to_string())?.is_some() {}
                // Still running when the peer reuses the id.
                std::thread::sleep(Duration::from_millis(400));
            } else {
                std::thread::sleep(Duration::from_millis(800));
                tx.send("hello-2").await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .start(env.rt.clone())
        .unwrap();
    let keys = Arc::new(Keyring::new([secret]).unwrap());
    let mut config = LinkConfig::new(&names[1], names.clone(), [4; 16], keys);
    gridmux_core::fuzzing::LinkPair::handlers(&mut config);
    let config = Arc::new(config);
    let seen = std::thread::spawn(move || reusing_caller(fake, config, STREAM));
    let seen = env
        .within(Duration::from_secs(10), async {
            loop {
                if seen.is_finished() {
                    return seen.join().unwrap();
                }
                env.sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    assert_eq!(seen.messages, ["hello-2"], "{seen:?}");
    assert_eq!(seen.end.as_deref(), Some("Ok"), "{seen:?}");
    grid.shutdown(Duration::from_secs(1)).await;
}

/// A peer (the acceptor of `listener`) that opens a stream to `handler`
/// with its input finished at once, waits for its clean end, then opens a
/// second one-way stream with the same id; returns what it saw of that one
/// (bounded: 6 s).
fn reusing_caller(listener: TcpListener, config: Arc<LinkConfig>, handler: u8) -> SecondStream {
    use gridmux_core::link::StreamOpts;
    let (mut socket, _) = listener.accept().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut link = Link::accept(config, Instant::now(), SystemTime::now(), &mut rng);
    let mut input = BytesMut::new();
    let mut first = None;
    let mut second = None;
    let mut seen = SecondStream::default();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) && seen.end.is_none() {
        let mut buf = [0; 16384];
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        let now = Instant::now();
        link.handle_input(now, &mut input);
        link.handle_timeout(now);
        while let Some(event) = link.poll_event() {
            match event {
                Event::Connected { .. } => {
                    let mux = link
                        .open_stream(now, handler, None, "first".into(), StreamOpts::default())
                        .unwrap();
                    link.finish(now, mux).unwrap();
                    first = Some(mux);
                }
                Event::Ended { mux, .. } if Some(mux) == first && second.is_none() => {
                    link.rewind_mux_ids();
                    let one_way = StreamOpts {
                        input: false,
                        ..StreamOpts::default()
                    };
                    let mux = link
                        .open_stream(now, handler, None, "second".into(), one_way)
                        .unwrap();
                    assert_eq!(Some(mux), first, "the id is reused");
                    second = Some(mux);
                }
                Event::Message { mux, payload } if Some(mux) == second => {
                    seen.messages.push(payload);
                    link.consumed(now, mux, 1);
                }
                Event::Ended { mux, result } if Some(mux) == second => {
                    seen.end = Some(match result {
                        Ok(()) => "Ok".into(),
                        Err(e) => e.to_string(),
                    });
                }
                _ => {}
            }
        }
        let mut out = Transmit::new();
        while link.poll_transmit(now, &mut out) {}
        let _ = socket.write_all(&out.to_vec());
    }
    seen
}
