//! Body of the `link_setup` target: forged and mutated set-up flights.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use super::link::ws_frame;
use super::pair::LinkPair;
use super::CountingRng;
use crate::link::{Event, Link, LinkConfig};
use crate::wire::{Connect, ConnectResponse, Message, Op};
use crate::ws::{accept_key, Transmit};

/// `link_setup`: a genuine set-up is recorded, then flight 3 (`Connect`)
/// or flight 4 (`ConnectResponse`) is mutated by the fuzzer, field by
/// field or byte by byte, and delivered on a new connection: to an
/// acceptor whose nonce is the recorded one (so only the mutation decides)
/// or a fresh one, or to a dialer behind an impostor's correct `101`.
/// Invariants: no panic; a fresh nonce never connects; with the recorded
/// nonce the acceptor connects only if every proven field is unchanged;
/// a dialer never accepts an answer recorded for another connection;
/// every link not connected is closed by its handshake timeout.
pub fn link_setup(data: &[u8], origin: Instant) {
    let Some((&selector, mutation)) = data.split_first() else {
        return;
    };
    let configs = LinkPair::configs("a:1", "b:1", |_| {});
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let recorded = record(&configs, origin, wall);
    match selector % 3 {
        0 | 1 => {
            let same_nonce = selector % 3 == 0;
            replay_connect(&configs[1], &recorded, same_nonce, mutation, origin, wall);
        }
        _ => replay_answer(&configs[0], &recorded, mutation, origin, wall),
    }
}

/// A genuine set-up: the dialer's head and `Connect`, the acceptor's head
/// and `ConnectResponse`.
struct Recorded {
    upgrade: Vec<u8>,
    connect: Connect,
    answer_head: String,
    response: ConnectResponse,
}

const ACCEPTOR_SEED: u64 = 0xacce;

fn record(configs: &[Arc<LinkConfig>; 2], now: Instant, wall: SystemTime) -> Recorded {
    let [d, a] = configs;
    let mut dialer = Link::dial(
        d.clone(),
        a.local.clone(),
        now,
        wall,
        Box::new(CountingRng(7)),
    );
    let mut acceptor = Link::accept(a.clone(), now, wall, &mut CountingRng(ACCEPTOR_SEED));
    let upgrade = output(&mut dialer, now);
    acceptor.handle_input(now, &mut BytesMut::from(&upgrade[..]));
    let answer = output(&mut acceptor, now);
    dialer.handle_input(now, &mut BytesMut::from(&answer[..]));
    let connect_frame = output(&mut dialer, now);
    acceptor.handle_input(now, &mut BytesMut::from(&connect_frame[..]));
    let response_frame = output(&mut acceptor, now);
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    Recorded {
        upgrade,
        connect: Connect::decode(&first_payload(&connect_frame, true)).expect("a genuine Connect"),
        answer_head: String::from_utf8_lossy(&answer[..head_end]).into_owned(),
        response: ConnectResponse::decode(&first_payload(&response_frame, false))
            .expect("a genuine ConnectResponse"),
    }
}

fn output(link: &mut Link, now: Instant) -> Vec<u8> {
    let mut out = Transmit::new();
    while link.poll_transmit(now, &mut out) {}
    out.to_vec()
}

/// The grid payload of the first WebSocket frame in `bytes` (no
/// fragmentation; lengths < 64 KiB), unmasked.
fn first_payload(bytes: &[u8], masked: bool) -> Bytes {
    let mut at = 2;
    let mut len = usize::from(bytes[1] & 0x7f);
    if len == 126 {
        len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        at = 4;
    }
    let mut body = if masked {
        let key = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        at += 4;
        let mut body = bytes[at..at + len].to_vec();
        crate::ws::apply_mask(&mut body, key, 0);
        body
    } else {
        bytes[at..at + len].to_vec()
    };
    let msg = Message::decode(&Bytes::from(std::mem::take(&mut body))).expect("a grid message");
    msg.payload.unwrap_or_default()
}

/// Applies the fuzzer's edits to an encoded payload: field edits first
/// (through the decoded struct), then raw byte flips.
fn mutate(encoded: Bytes, edits: &[u8], field_edit: impl Fn(u8, u8) -> Option<Bytes>) -> Bytes {
    let mut out = encoded.to_vec();
    for pair in edits.chunks(2) {
        let (op, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        if let Some(edited) = field_edit(op, arg) {
            out = edited.to_vec();
        } else if !out.is_empty() {
            let i = usize::from(op) % out.len();
            out[i] ^= arg | 1;
        }
    }
    Bytes::from(out)
}

fn replay_connect(
    config: &Arc<LinkConfig>,
    rec: &Recorded,
    same_nonce: bool,
    edits: &[u8],
    now: Instant,
    wall: SystemTime,
) -> bool {
    let seed = if same_nonce { ACCEPTOR_SEED } else { 0xf00d };
    let mut acceptor = Link::accept(config.clone(), now, wall, &mut CountingRng(seed));
    let genuine = &rec.connect;
    let payload = mutate(genuine.encode(), edits, |op, arg| {
        let mut c = genuine.clone();
        match op % 16 {
            0 => c.proof[usize::from(arg) % 32] ^= 1,
            1 => c.nonce[usize::from(arg) % 32] ^= 1,
            2 => c.id[usize::from(arg) % 16] ^= 1,
            3 => c.time += Duration::from_nanos(u64::from(arg) + 1),
            4 => c.host.push(char::from(b'a' + arg % 26)),
            5 => c.client = !c.client,
            _ => return None,
        }
        Some(c.encode())
    });
    let msg = Message::new(Op::CONNECT, 0).payload(payload.clone());
    let mut wire = BytesMut::new();
    msg.encode(false, &mut wire);
    let mut input = BytesMut::from(&rec.upgrade[..]);
    input.extend_from_slice(&ws_frame(&wire, true));
    acceptor.handle_input(now, &mut input);
    let _ = output(&mut acceptor, now);
    let connected = events_connect(&mut acceptor);
    if connected {
        assert!(same_nonce, "a Connect recorded for another nonce connected");
        let decoded = Connect::decode(&payload).expect("what connected decodes");
        assert_eq!(&decoded, genuine, "a mutated Connect connected");
    }
    finish(acceptor, connected, now);
    connected
}

fn replay_answer(
    config: &Arc<LinkConfig>,
    rec: &Recorded,
    edits: &[u8],
    now: Instant,
    wall: SystemTime,
) {
    // A new dialer (new key and nonce) behind an impostor that answers
    // the WebSocket handshake correctly.
    let mut dialer = Link::dial(
        config.clone(),
        "b:1",
        now,
        wall,
        Box::new(CountingRng(
            u64::from(edits.first().copied().unwrap_or(0)) + 100,
        )),
    );
    let request = String::from_utf8_lossy(&output(&mut dialer, now)).into_owned();
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or_default();
    let copied: String = rec
        .answer_head
        .lines()
        .filter(|l| l.starts_with("X-Gridmux-"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{copied}\r\n",
        accept_key(key.as_bytes())
    );
    let genuine = &rec.response;
    let payload = mutate(genuine.encode(), edits, |op, arg| {
        let mut r = genuine.clone();
        match op % 8 {
            0 => r.proof = None,
            1 => r.accepted = !r.accepted,
            2 => r.rejected_reason.push(char::from(b'a' + arg % 26)),
            _ => return None,
        }
        Some(r.encode())
    });
    let msg = Message::new(Op::CONNECT_RESPONSE, 0).payload(payload);
    let mut wire = BytesMut::new();
    msg.encode(false, &mut wire);
    let mut input = BytesMut::from(head.as_bytes());
    input.extend_from_slice(&ws_frame(&wire, false));
    dialer.handle_input(now, &mut input);
    let _ = output(&mut dialer, now);
    let connected = events_connect(&mut dialer);
    assert!(
        !connected,
        "a dialer accepted an answer recorded for another connection"
    );
    finish(dialer, connected, now);
}

fn events_connect(link: &mut Link) -> bool {
    let mut connected = false;
    while let Some(e) = link.poll_event() {
        connected |= matches!(e, Event::Connected { .. });
    }
    connected
}

/// A link that did not connect is closed by its handshake timeout.
fn finish(mut link: Link, connected: bool, now: Instant) {
    if connected {
        return;
    }
    if !link.is_closed() {
        let due = link
            .poll_timeout()
            .expect("a set-up in progress has a timeout");
        assert!(
            due <= now + Duration::from_secs(5),
            "timeout beyond the handshake's"
        );
        link.handle_timeout(due);
        while link.poll_event().is_some() {}
    }
    assert!(
        link.is_closed(),
        "an unauthenticated set-up outlived its timeout"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body is not vacuous: the genuine flight does connect an
    /// acceptor with the recorded nonce, and one changed field does not.
    #[test]
    #[expect(clippy::disallowed_methods, reason = "the test's clock origin")]
    fn only_the_genuine_connect_connects() {
        let now = Instant::now();
        let configs = LinkPair::configs("a:1", "b:1", |_| {});
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let rec = record(&configs, now, wall);
        assert!(replay_connect(&configs[1], &rec, true, &[], now, wall));
        assert!(!replay_connect(&configs[1], &rec, false, &[], now, wall));
        for field in 0..6 {
            assert!(!replay_connect(
                &configs[1],
                &rec,
                true,
                &[field, 3],
                now,
                wall
            ));
        }
    }
}
