//! Seeded generators of fuzz inputs, so the cargo-fuzz bodies also run on
//! stable over a bounded, reproducible corpus.

use bytes::{BufMut, BytesMut};
use gridmux_core::ws::{apply_mask, ClientRequest};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which fuzz body an input is shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `ws_frame_decode`: selector, chunk sizes, then a frame stream.
    FrameDecode,
    /// `ws_handshake`: HTTP-like heads.
    Handshake,
    /// `ws_endpoint`: selector, then a program of op bytes and input chunks.
    Endpoint,
    /// `wire_decode`: encoded grid messages, merged batches and payload maps.
    WireDecode,
    /// `link_input`: selector (state and mode), then op bytes and chunks.
    LinkInput,
    /// `mux_ops`: raw bytes that `arbitrary` shapes into a program.
    MuxOps,
    /// `http_server`: a program of op bytes and chunks of request text.
    HttpServer,
    /// `link_setup`: selector (which flight, which nonce), then edit pairs.
    LinkSetup,
}

/// The `index`-th input of the corpus for `seed`: a mix of raw random bytes,
/// streams of plausible frames, and handshake-like text, with corruption.
pub fn input(target: Target, seed: u64, index: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let selector: u8 = rng.random();
    let mut out = vec![selector];
    match (target, index % 4) {
        (_, 0) => random_bytes(&mut rng, &mut out),
        (Target::Handshake, _) => handshake_like(&mut rng, &mut out),
        (Target::FrameDecode, _) => {
            out.extend((0..selector >> 4).map(|_| rng.random_range(1..40u8)));
            out.extend_from_slice(&frames(&mut rng));
        }
        (Target::Endpoint, 3) => handshake_like(&mut rng, &mut out),
        (Target::Endpoint, _) => {
            let stream = frames(&mut rng);
            program(&mut rng, &stream, &mut out);
        }
        (Target::WireDecode, _) => {
            out.clear();
            out.extend_from_slice(&grid_frames(&mut rng));
        }
        (Target::LinkInput, _) => {
            let stream: Vec<u8> = (0..rng.random_range(0..600))
                .map(|_| rng.random())
                .collect();
            program(&mut rng, &stream, &mut out);
        }
        (Target::HttpServer, _) => {
            out.clear();
            http_program(&mut rng, &mut out);
        }
        (Target::LinkSetup, _) => {
            // Edit pairs, often none or one (so that the genuine flight,
            // and flights with a single changed field, are common).
            let pairs = [0, 0, 1, 1, 2, 8][rng.random_range(0..6)];
            out.extend((0..2 * pairs).map(|_| rng.random::<u8>()));
        }
        (Target::MuxOps, _) => {
            let len = rng.random_range(0..2048);
            out.extend((0..len).map(|_| rng.random::<u8>()));
        }
    }
    corrupt(&mut rng, &mut out);
    out
}

fn random_bytes(rng: &mut SmallRng, out: &mut Vec<u8>) {
    let len = rng.random_range(0..512);
    out.extend((0..len).map(|_| rng.random::<u8>()));
}

/// A plausible frame stream: mostly valid opcodes and lengths, sometimes masked.
fn frames(rng: &mut SmallRng) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for _ in 0..rng.random_range(1..12) {
        let opcode = *[0u8, 1, 2, 8, 9, 10, 1, 2, 3, 0xB]
            .get(rng.random_range(0..10))
            .unwrap_or(&2);
        let fin = rng.random_bool(0.7);
        let len = match rng.random_range(0..10) {
            0 => rng.random_range(126..400),
            1 => 0,
            _ => rng.random_range(0..126),
        };
        let masked = rng.random_bool(0.8);
        buf.put_u8(u8::from(fin) << 7 | opcode);
        let mask_bit = if masked { 0x80 } else { 0 };
        if len < 126 {
            buf.put_u8(mask_bit | len as u8);
        } else {
            buf.put_u8(mask_bit | 126);
            buf.put_u16(len as u16);
        }
        let key: [u8; 4] = rng.random();
        if masked {
            buf.put_slice(&key);
        }
        let start = buf.len();
        if opcode == 8 && len >= 2 {
            buf.put_u16(
                *[1000u16, 1001, 1005, 3000, 999, 1007]
                    .get(rng.random_range(0..6))
                    .unwrap_or(&1000),
            );
            buf.extend((2..len).map(|_| rng.random_range(b'a'..=b'z')));
        } else if opcode == 1 || rng.random_bool(0.5) {
            let text = "aé€𝄞".repeat(len / 10 + 1);
            buf.put_slice(&text.as_bytes()[..len]);
        } else {
            buf.extend((0..len).map(|_| rng.random::<u8>()));
        }
        if masked {
            apply_mask(&mut buf[start..], key, 0);
        }
    }
    buf.to_vec()
}

/// Op bytes for the endpoint body: reads of `stream` interleaved with the
/// other actions (sends, pings, closes, timeouts, EOF).
fn program(rng: &mut SmallRng, stream: &[u8], out: &mut Vec<u8>) {
    let mut pos = 0;
    while pos < stream.len() {
        let op: u8 = rng.random();
        // Mostly reads; EOF (7) rarely, so the stream gets through.
        let op = if op & 7 == 7 && rng.random_bool(0.9) {
            op & !7
        } else {
            op
        };
        out.push(op);
        if op & 7 <= 2 {
            let take = (usize::from(op >> 3) + 1).min(stream.len() - pos);
            out.extend_from_slice(&stream[pos..pos + take]);
            pos += take;
        }
    }
}

fn handshake_like(rng: &mut SmallRng, out: &mut Vec<u8>) {
    let (req, _) = ClientRequest::new("host:1", "/path?q=1").encode(rng.random());
    let mut text = req.to_vec();
    if rng.random_bool(0.5) {
        let cut = rng.random_range(0..text.len());
        text.truncate(cut);
    }
    out.extend_from_slice(&text);
}

/// Flips, inserts or drops a few bytes.
fn corrupt(rng: &mut SmallRng, out: &mut Vec<u8>) {
    for _ in 0..rng.random_range(0..3) {
        if out.len() < 2 {
            break;
        }
        let at = rng.random_range(1..out.len());
        match rng.random_range(0..3) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out.insert(at, rng.random()),
            _ => {
                out.remove(at);
            }
        }
    }
}

/// A grid message, a merged batch, or a payload map, validly encoded.
fn grid_frames(rng: &mut SmallRng) -> Vec<u8> {
    use bytes::Bytes;
    use gridmux_core::wire::{
        Connect, ConnectResponse, ErrorCode, ErrorPayload, Flags, MergedWriter, Message, Op,
        PongMsg, SubrouteId,
    };
    use std::time::{Duration, UNIX_EPOCH};

    let message = |rng: &mut SmallRng| {
        let payload = match rng.random_range(0..5) {
            0 => None,
            1 => Some(ErrorPayload::new(ErrorCode::from_u32(rng.random_range(0..9)), "e").encode()),
            2 => Some(
                PongMsg {
                    not_found: rng.random(),
                    err: None,
                    t: Some(UNIX_EPOCH + Duration::from_secs(rng.random_range(0..1 << 40))),
                }
                .encode(),
            ),
            _ => Some(Bytes::from(
                (0..rng.random_range(0..300))
                    .map(|_| rng.random::<u8>())
                    .collect::<Vec<_>>(),
            )),
        };
        let bits = rng.random_range(1..64);
        let msg = Message {
            mux_id: rng.random_range(0..1u64 << bits),
            seq: rng.random(),
            deadline_ms: rng.random(),
            handler: rng.random(),
            op: Op::from_u8(rng.random_range(0..20)),
            flags: Flags::from_bits(rng.random()),
            payload,
            subroute: rng
                .random_bool(0.2)
                .then(|| SubrouteId::new(rng.random(), "r")),
        };
        let mut out = BytesMut::new();
        msg.encode(rng.random(), &mut out);
        out
    };
    match rng.random_range(0..5) {
        0 => {
            let mut w = MergedWriter::new();
            for _ in 0..rng.random_range(0..8) {
                w.push(&message(rng));
            }
            let mut out = BytesMut::new();
            w.finish(&mut out);
            out.to_vec()
        }
        1 => Connect {
            id: rng.random(),
            host: "h".repeat(rng.random_range(0..40)),
            time: UNIX_EPOCH + Duration::from_nanos(rng.random()),
            nonce: rng.random(),
            proof: rng.random(),
            client: rng.random(),
        }
        .encode()
        .to_vec(),
        2 => ConnectResponse {
            id: rng.random(),
            accepted: rng.random(),
            rejected_reason: "r".repeat(rng.random_range(0..40)),
            proof: rng.random::<bool>().then(|| rng.random()),
        }
        .encode()
        .to_vec(),
        _ => message(rng).to_vec(),
    }
}

/// `http_server` programs: pipelined requests (plain, keep-alive, HEAD,
/// bodies, upgrades) in chunks of up to 63 bytes, with clock steps and a
/// rare EOF. Op byte: low 2 bits 0 = chunk of `op >> 2` bytes, 2 = time.
fn http_program(rng: &mut SmallRng, out: &mut Vec<u8>) {
    let mut text = Vec::new();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..6) {
            0 => handshake_like(rng, &mut text),
            1 => text.extend_from_slice(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"),
            2 => text.extend_from_slice(b"GET /c HTTP/1.0\r\n\r\n"),
            3 => text.extend_from_slice(b"GET /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
            _ => text.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"),
        }
    }
    let mut pos = 0;
    while pos < text.len() {
        if rng.random_bool(0.1) {
            out.push(2 | (rng.random_range(0..64u8) << 2));
            continue;
        }
        let take = rng.random_range(1..64usize).min(text.len() - pos);
        out.push((take as u8) << 2);
        out.extend_from_slice(&text[pos..pos + take]);
        pos += take;
    }
    if rng.random_bool(0.1) {
        out.push(3);
    }
}
