//! (ext) The mutual, connection-bound link set-up, against recorded and
//! forged flights: MinIO's grid proves only the dialer, with a token that
//! can be replayed within the skew window, and never proves the acceptor.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use gridmux_core::auth::link::Membership;
use gridmux_core::auth::Keyring;
use gridmux_core::fuzzing::{CountingRng, LinkPair};
use gridmux_core::link::{ClientAccess, Event, Link, LinkConfig, LinkError};
use gridmux_core::ws::{accept_key, Transmit};

use crate::origin;

/// A link's output so far.
fn output(link: &mut Link, now: Instant) -> Vec<u8> {
    let mut out = Transmit::new();
    while link.poll_transmit(now, &mut out) {}
    out.to_vec()
}

fn events(link: &mut Link) -> Vec<Event> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn connected(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Connected { .. }))
}

fn closed_unauthenticated(events: &[Event]) -> bool {
    matches!(
        events.last(),
        Some(Event::Closed(LinkError::Unauthenticated(_)))
    )
}

/// A set-up between two fresh links, with every byte each side sent.
struct Recorded {
    dialer_bytes: Vec<u8>,
    acceptor_bytes: Vec<u8>,
    events: [Vec<Event>; 2],
}

fn set_up(d: &Arc<LinkConfig>, a: &Arc<LinkConfig>, seed: u64, now: Instant) -> Recorded {
    set_up_over(d, a, seed, now, [None, None])
}

/// [`set_up`] with each side's link bound to a secure channel (its TLS
/// exporter), where given.
fn set_up_over(
    d: &Arc<LinkConfig>,
    a: &Arc<LinkConfig>,
    seed: u64,
    now: Instant,
    channels: [Option<&[u8]>; 2],
) -> Recorded {
    let wall = SystemTime::now();
    let mut dialer = Link::dial(
        d.clone(),
        a.local.clone(),
        now,
        wall,
        Box::new(CountingRng(seed)),
    );
    let mut acceptor = Link::accept(a.clone(), now, wall, &mut CountingRng(seed + 1_000));
    if let Some(binding) = channels[0] {
        dialer.secure_channel(binding);
    }
    if let Some(binding) = channels[1] {
        acceptor.secure_channel(binding);
    }
    let mut rec = Recorded {
        dialer_bytes: Vec::new(),
        acceptor_bytes: Vec::new(),
        events: [Vec::new(), Vec::new()],
    };
    for _ in 0..4 {
        let out = output(&mut dialer, now);
        acceptor.handle_input(now, &mut BytesMut::from(&out[..]));
        rec.dialer_bytes.extend_from_slice(&out);
        let back = output(&mut acceptor, now);
        dialer.handle_input(now, &mut BytesMut::from(&back[..]));
        rec.acceptor_bytes.extend_from_slice(&back);
    }
    rec.events = [events(&mut dialer), events(&mut acceptor)];
    rec
}

#[test]
fn ext_a_recorded_set_up_replayed_to_the_acceptor_never_connects() {
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let rec = set_up(&d, &a, 1, now);
    assert!(connected(&rec.events[0]) && connected(&rec.events[1]));
    // The same bytes on new connections, at the same time or much later
    // (the upgrade filter still passes within its window; it grants
    // nothing): every acceptor draws a new nonce.
    for (i, later) in [0, 60, 600].into_iter().enumerate() {
        let now = now + Duration::from_secs(later);
        let wall = SystemTime::now() + Duration::from_secs(later);
        let mut acceptor = Link::accept(a.clone(), now, wall, &mut CountingRng(50 + i as u64));
        acceptor.handle_input(now, &mut BytesMut::from(&rec.dialer_bytes[..]));
        let answer = output(&mut acceptor, now);
        let events = events(&mut acceptor);
        assert!(!connected(&events), "{events:?}");
        assert!(closed_unauthenticated(&events), "{events:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        // After the 101: only a Close frame (1008, "unauthorized"), no
        // ConnectResponse.
        let head_end = text.find("\r\n\r\n").unwrap() + 4;
        let frames = &answer[head_end..];
        assert_eq!(frames[0], 0x88, "a Close frame: {frames:?}");
        assert_eq!(&frames[4..], b"unauthorized");
        assert_eq!(u16::from_be_bytes([frames[2], frames[3]]), 1008);
    }
}

#[test]
fn ext_an_acceptors_recorded_answers_never_bring_a_dialer_up() {
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let rec = set_up(&d, &a, 1, now);
    let text = String::from_utf8_lossy(&rec.acceptor_bytes).into_owned();
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let header = |name: &str| {
        text[..head_end]
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let (nonce, node) = (header("X-Gridmux-Nonce"), header("X-Gridmux-Node"));
    // An impostor without the secret answers a new dialer's upgrade
    // correctly (the WebSocket accept key needs no secret) and replays the
    // recorded nonce and ConnectResponse.
    let rng = Box::new(CountingRng(2));
    let mut dialer = Link::dial(d, a.local.clone(), now, SystemTime::now(), rng);
    let request = String::from_utf8_lossy(&output(&mut dialer, now)).into_owned();
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let mut forged = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nX-Gridmux-Nonce: {nonce}\r\nX-Gridmux-Node: {node}\r\n\r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes();
    forged.extend_from_slice(&rec.acceptor_bytes[head_end..]);
    dialer.handle_input(now, &mut BytesMut::from(&forged[..]));
    let _ = output(&mut dialer, now);
    let events = events(&mut dialer);
    assert!(!connected(&events), "{events:?}");
    assert!(closed_unauthenticated(&events), "{events:?}");
}

#[test]
fn ext_an_acceptor_without_the_secret_cannot_prove_itself() {
    // The impostor runs our own code but with another secret: the dialer
    // gets no valid proof back and closes (the acceptor refuses it too,
    // but the dialer does not rely on that).
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let mut impostor = (*a).clone();
    impostor.keys = Arc::new(Keyring::new(["guess"]).unwrap());
    let rec = set_up(&d, &Arc::new(impostor), 3, origin());
    assert!(!connected(&rec.events[0]), "{:?}", rec.events[0]);
    assert!(!connected(&rec.events[1]), "{:?}", rec.events[1]);
}

#[test]
fn ext_a_set_up_relayed_between_two_tls_sessions_never_connects() {
    // A proxy that terminates TLS on both sides holds two sessions, and
    // each end derives its own session's exporter: the proofs, bound to
    // them, do not verify across. Both sides refuse.
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let (dialer_side, acceptor_side) = ([1u8; 32], [2u8; 32]);
    let relayed = set_up_over(
        &d,
        &a,
        5,
        origin(),
        [Some(&dialer_side), Some(&acceptor_side)],
    );
    assert!(!connected(&relayed.events[0]), "{:?}", relayed.events[0]);
    assert!(!connected(&relayed.events[1]), "{:?}", relayed.events[1]);
    assert!(
        closed_unauthenticated(&relayed.events[1]),
        "{:?}",
        relayed.events[1]
    );
    // Bound on one side only (TLS to the proxy, plain TCP behind it).
    let half = set_up_over(&d, &a, 6, origin(), [Some(&dialer_side), None]);
    assert!(!connected(&half.events[1]), "{:?}", half.events[1]);
    // One session end to end: the same exporter on both sides connects.
    let direct = set_up_over(
        &d,
        &a,
        7,
        origin(),
        [Some(&dialer_side), Some(&dialer_side)],
    );
    assert!(connected(&direct.events[0]) && connected(&direct.events[1]));
}

fn with_keys(config: &Arc<LinkConfig>, secrets: &[&str]) -> Arc<LinkConfig> {
    let mut c = (**config).clone();
    c.keys = Arc::new(Keyring::new(secrets).unwrap());
    Arc::new(c)
}

#[test]
fn ext_rotation_signs_with_the_first_secret_and_accepts_any() {
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let cases: [(&[&str], &[&str], bool); 7] = [
        (&["old"], &["old"], true),
        (&["old"], &["old", "new"], true),
        (&["old", "new"], &["old"], true),
        (&["new", "old"], &["old", "new"], true),
        (&["old", "new"], &["new", "old"], true),
        (&["new"], &["new", "old"], true),
        (&["new"], &["old"], false),
    ];
    for (i, (dk, ak, ok)) in cases.into_iter().enumerate() {
        let rec = set_up(&with_keys(&d, dk), &with_keys(&a, ak), i as u64, now);
        assert_eq!(connected(&rec.events[0]), ok, "{dk:?} -> {ak:?}");
        assert_eq!(connected(&rec.events[1]), ok, "{dk:?} -> {ak:?}");
    }
}

fn client_config(name: &str, secrets: &[&str]) -> Arc<LinkConfig> {
    let keys = Arc::new(Keyring::new(secrets).unwrap());
    let mut c = LinkConfig::new(name, vec![name.to_owned()], [5; 16], keys);
    c.membership = Membership::Client;
    Arc::new(c)
}

#[test]
fn ext_clients_prove_with_their_own_keys_and_can_be_refused() {
    let [_, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let client = client_config("tool", &["pair secret"]);
    let rec = set_up(&client, &a, 1, now);
    assert!(connected(&rec.events[0]), "{:?}", rec.events[0]);
    let Some(Event::Connected { membership, .. }) = rec.events[1].first() else {
        panic!("{:?}", rec.events[1]);
    };
    assert_eq!(*membership, Membership::Client);
    // Refused by configuration.
    let mut refusing = (*a).clone();
    refusing.clients = ClientAccess::Refused;
    let rec = set_up(&client, &Arc::new(refusing), 2, now);
    assert!(!connected(&rec.events[0]) && !connected(&rec.events[1]));
    // A separate client keyring: the cluster secret no longer lets a
    // client in, and a client secret never makes a member.
    let mut separate = (*a).clone();
    separate.clients = ClientAccess::Keyring(Arc::new(Keyring::new(["tool secret"]).unwrap()));
    let separate = Arc::new(separate);
    assert!(!connected(&set_up(&client, &separate, 3, now).events[1]));
    let tool = client_config("tool", &["tool secret"]);
    assert!(connected(&set_up(&tool, &separate, 4, now).events[1]));
    let [d, _] = LinkPair::configs("a:1", "b:1", |_| {});
    let member_with_client_secret = with_keys(&d, &["tool secret"]);
    assert!(!connected(
        &set_up(&member_with_client_secret, &separate, 5, now).events[1]
    ));
    // A client may not take a member's name.
    let impersonating = client_config(&d.local, &["pair secret"]);
    assert!(!connected(&set_up(&impersonating, &a, 6, now).events[1]));
}

#[test]
fn ext_a_member_proof_is_not_a_client_proof() {
    // The role is bound into the transcript and the key: a member's
    // Connect relabelled as a client's (or the reverse) fails.
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let rec = set_up(&d, &a, 1, now);
    let text = String::from_utf8_lossy(&rec.dialer_bytes).into_owned();
    assert!(!text.contains("X-Gridmux-Role"));
    let as_client = text.replacen("\r\n\r\n", "\r\nX-Gridmux-Role: client\r\n\r\n", 1);
    let mut acceptor = Link::accept(a, now, SystemTime::now(), &mut CountingRng(77));
    acceptor.handle_input(now, &mut BytesMut::from(as_client.as_bytes()));
    let _ = output(&mut acceptor, now);
    let events = events(&mut acceptor);
    assert!(
        !connected(&events) && closed_unauthenticated(&events),
        "{events:?}"
    );
}

#[test]
fn ext_the_acceptor_must_be_the_node_dialed() {
    // Members and clients alike check the name the acceptor announces
    // (and proves): a node answering as another is refused before any
    // Connect is sent. (A holder of shared client secrets can still lie
    // about its name: with separate client secrets, a client knows only
    // that it talks to a holder of them; see the README's threat table.)
    let [d, _] = LinkPair::configs("a:1", "b:1", |_| {});
    for dialer_config in [d, client_config("tool", &["pair secret"])] {
        let now = origin();
        let mut dialer = Link::dial(dialer_config, "b:1", now, SystemTime::now(), {
            Box::new(CountingRng(4))
        });
        let request = String::from_utf8_lossy(&output(&mut dialer, now)).into_owned();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nX-Gridmux-Nonce: {}\r\nX-Gridmux-Node: evil:1\r\n\r\n",
            accept_key(key.as_bytes()),
            "ab".repeat(32)
        );
        dialer.handle_input(now, &mut BytesMut::from(answer.as_bytes()));
        let sent = output(&mut dialer, now);
        let events = events(&mut dialer);
        assert!(
            !connected(&events) && closed_unauthenticated(&events),
            "{events:?}"
        );
        // Nothing but a Close frame went out: no Connect.
        assert_eq!(sent.first(), Some(&0x88), "{sent:?}");
    }
}

#[test]
fn ext_before_the_proof_only_small_messages_are_read() {
    // A stranger with a replayed (still valid) filter token announces a
    // 1 MiB first message: the acceptor closes at the frame header
    // instead of buffering it.
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let rec = set_up(&d, &a, 1, now);
    let text = String::from_utf8_lossy(&rec.dialer_bytes).into_owned();
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let mut input = rec.dialer_bytes[..head_end].to_vec();
    input.extend_from_slice(&[0x82, 0xFF]);
    input.extend_from_slice(&(1u64 << 20).to_be_bytes());
    input.extend_from_slice(&[1, 2, 3, 4]);
    let mut acceptor = Link::accept(a, now, SystemTime::now(), &mut CountingRng(60));
    acceptor.handle_input(now, &mut BytesMut::from(&input[..]));
    let _ = output(&mut acceptor, now);
    let events = events(&mut acceptor);
    assert!(acceptor.is_closed(), "{events:?}");
    assert!(!connected(&events));
}

#[test]
fn ext_a_large_message_right_behind_the_proof_is_read_once_proven() {
    // The acceptor is up once it has checked `Connect`, and may send at
    // once: its first request (over the 4 KiB set-up limit) arrives in the
    // same read as its `ConnectResponse`. The bench found the dialer
    // refusing it (1009) before it had read the proof that lifts the limit.
    let configs = LinkPair::configs("a:1", "b:1", |_| {});
    let mut p = LinkPair::new(configs, origin(), 1);
    p.transfer(0); // upgrade
    p.transfer(1); // 101
    p.transfer(0); // Connect: the acceptor is up
    let now = p.now;
    let big = bytes::Bytes::from(vec![7u8; 20_000]);
    p.links[1].request(now, 1, None, big, None).unwrap();
    p.transfer(1); // ConnectResponse and the request, in one read
    let events = p.take_events(0);
    assert!(connected(&events), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Request { payload, .. } if payload.len() == 20_000)),
        "{events:?}"
    );
}
