//! Bodies of the WebSocket targets.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand_core::{impls, RngCore};

use crate::ws::handshake::{self, ClientRequest};
use crate::ws::{
    Config, Endpoint, Event, FrameDecoder, FrameEncoder, Message, MessageKind, Role, Transmit,
    MAX_HEADER_LEN,
};

/// Splits `data` into chunks whose sizes come from `sizes` (cycled; 0 → 1).
pub(crate) fn chunks<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = data;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |&s| usize::from(s.max(1)));
        i += 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// Decodes `input` fed in `sizes`-sized pieces; returns the frames and the
/// error, if any.
fn decode_chunked(
    role: Role,
    max: usize,
    input: &[u8],
    sizes: &[u8],
) -> (Vec<crate::ws::Frame>, Option<crate::ws::FrameError>) {
    let mut dec = FrameDecoder::new(role, max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in chunks(input, sizes) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= max, "frame over the limit");
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
        assert!(
            buf.len() < max + MAX_HEADER_LEN + piece.len() + 1,
            "decoder buffer unbounded"
        );
    }
    (frames, None)
}

/// `ws_frame_decode`: any chunking yields the same frames and error as the
/// whole input; decoded frames re-encode to bytes that decode to themselves.
pub fn ws_frame_decode(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let role = if selector & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let max = 1 << (4 + (selector >> 1) % 12);
    let split = rest.len().min(usize::from(selector >> 4));
    let (sizes, input) = rest.split_at(split);
    let whole = decode_chunked(role, max, input, &[]);
    let pieces = decode_chunked(role, max, input, sizes);
    assert_eq!(whole, pieces, "chunking changed the decoded frames");

    // Round trip: encode what was decoded, as the peer of `role` would.
    let mask = (role == Role::Server).then_some([1, 2, 3, 4]);
    let mut enc = FrameEncoder::new();
    let mut out = Transmit::new();
    for f in &whole.0 {
        enc.encode(f, mask, &mut out);
    }
    enc.flush(&mut out);
    let again = decode_chunked(role, max, &out.to_vec(), sizes);
    assert_eq!(
        again,
        (whole.0, None),
        "re-encoded frames decode differently"
    );
}

/// `ws_handshake`: parsing never panics, answers are well-formed HTTP, and a
/// complete head parses the same when followed by more bytes.
pub fn ws_handshake(data: &[u8]) {
    const MAX: usize = 4096;
    match handshake::parse_request(data, MAX) {
        Ok(Some((request, len))) => {
            assert!(len <= data.len() && len <= MAX);
            assert_eq!(
                handshake::parse_request(&data[..len], MAX),
                Ok(Some((request.clone(), len)))
            );
            let answer = handshake::accept_response(&request);
            assert_eq!(http_status(&answer), Some(101));
        }
        Ok(None) => assert!(data.len() <= MAX),
        Err(e) => {
            let answer = handshake::reject_response(&e);
            assert_eq!(http_status(&answer), Some(e.status()));
        }
    }
    let (_, client) = ClientRequest::new("h", "/").encode([0; 16]);
    if let Ok(Some((_, len))) = client.parse_response(data, MAX) {
        assert!(len <= data.len());
    }
}

fn http_status(bytes: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => res.code,
        _ => None,
    }
}

/// A deterministic RNG for masking keys (fuzzing needs reproducibility, not
/// unpredictability).
#[derive(Debug)]
pub struct CountingRng(pub u64);

impl RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        impls::fill_bytes_via_next(self, dst);
    }
}

/// Limits small enough that fuzz inputs reach them.
fn small_config() -> Config {
    Config {
        max_frame_size: 300,
        max_message_size: 1000,
        max_handshake_size: 1024,
        max_send_queue: 2000,
        handshake_timeout: Duration::from_secs(5),
        close_timeout: Duration::from_secs(2),
    }
}

/// Checks the invariants of a running endpoint after each step.
#[derive(Debug, Default)]
struct Watch {
    closed: bool,
}

impl Watch {
    fn drain(&mut self, ep: &mut Endpoint, now: Instant, cfg: &Config) {
        let mut out = Transmit::new();
        for _ in 0..1000 {
            if !ep.poll_transmit(now, &mut out) {
                break;
            }
        }
        while let Some(event) = ep.poll_event() {
            assert!(!self.closed, "event after Closed: {event:?}");
            match event {
                Event::Closed(_) => self.closed = true,
                Event::Message(m) => {
                    assert!(m.payload().len() <= cfg.max_message_size);
                    if m.kind() == MessageKind::Text {
                        assert!(m.as_text().is_some(), "text message with invalid UTF-8");
                    }
                }
                _ => {}
            }
        }
        assert!(ep.reassembly_bytes() <= cfg.max_message_size);
        assert!(ep.queued_bytes() <= cfg.max_send_queue);
        if self.closed {
            assert!(ep.is_closed());
            assert_eq!(ep.poll_timeout(), None);
        }
    }
}

/// `ws_endpoint`: an endpoint fed fuzzer bytes in fuzzer-chosen chunks,
/// interleaved with sends, pings, closes, timeouts and EOF. Invariants: no
/// panic, bounded memory, valid UTF-8 in text messages, `Closed` exactly last.
///
/// `origin` is the fake clock's start (the caller reads the real clock once;
/// core never does). Byte 0 picks the role and whether a valid handshake precedes the input;
/// then each step reads an op byte: its low 3 bits choose the action and the
/// high bits the chunk length or time step.
pub fn ws_endpoint(data: &[u8], origin: Instant) {
    let Some((&selector, mut program)) = data.split_first() else {
        return;
    };
    let cfg = small_config();
    let mut now = origin;
    let role = if selector & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let mut ep = match role {
        Role::Server => Endpoint::server(cfg.clone(), now),
        Role::Client => {
            let rng = Box::new(CountingRng(u64::from(selector)));
            Endpoint::client(cfg.clone(), &ClientRequest::new("h", "/"), rng, now)
        }
    };
    let mut watch = Watch::default();
    let mut buf = BytesMut::new();
    if selector & 2 != 0 {
        // Complete the opening handshake so the input reaches the frame layer.
        let preamble = match role {
            Role::Server => ClientRequest::new("h", "/")
                .encode([selector; 16])
                .0
                .to_vec(),
            Role::Client => {
                let mut out = Transmit::new();
                while ep.poll_transmit(now, &mut out) {}
                match handshake::parse_request(&out.to_vec(), 4096) {
                    Ok(Some((req, _))) => handshake::accept_response(&req).to_vec(),
                    other => panic!("client request does not parse: {other:?}"),
                }
            }
        };
        buf.extend_from_slice(&preamble);
        ep.handle_input(now, &mut buf);
        watch.drain(&mut ep, now, &cfg);
        assert!(ep.is_open(), "valid handshake did not open the endpoint");
    }
    let unconsumed_max = cfg
        .max_handshake_size
        .max(cfg.max_frame_size + MAX_HEADER_LEN);
    while let Some((&op, rest)) = program.split_first() {
        program = rest;
        let arg = usize::from(op >> 3);
        match op & 7 {
            0..=2 => {
                let (piece, rest) = program.split_at((arg + 1).min(program.len()));
                program = rest;
                buf.extend_from_slice(piece);
                ep.handle_input(now, &mut buf);
                assert!(
                    buf.len() <= unconsumed_max + piece.len(),
                    "input buffer unbounded"
                );
            }
            3 => {
                now += Duration::from_millis(1 << (arg % 16));
                ep.handle_timeout(now);
            }
            4 => {
                let msg = if arg & 1 == 0 {
                    Message::binary(vec![op; arg * 7])
                } else {
                    Message::text("é".repeat(arg))
                };
                let _ = ep.send(msg);
            }
            5 => {
                let _ = ep.ping(bytes::Bytes::from(vec![op; arg * 5]));
            }
            6 => {
                let _ = ep.close(now, crate::ws::CloseCode(1000 + arg as u16 * 100), "fuzz");
            }
            _ => ep.handle_eof(now),
        }
        watch.drain(&mut ep, now, &cfg);
    }
    // Every endpoint ends once time runs out or the transport ends.
    now += Duration::from_secs(3600);
    ep.handle_timeout(now);
    ep.handle_eof(now);
    watch.drain(&mut ep, now, &cfg);
    assert!(watch.closed, "endpoint never reported Closed");
}
