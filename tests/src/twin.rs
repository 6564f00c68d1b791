//! Helpers for the twin tests of MinIO's grid behaviour (`tests/twins.rs`):
//! watching what a link writes, and injecting messages no real peer sends.

use bytes::{Bytes, BytesMut};
use gridmux_core::fuzzing::{ws_frame, LinkPair};
use gridmux_core::wire::{Frame, Message};
use gridmux_core::ws::{FrameDecoder, OpCode, Role, Transmit};

/// A grid message as seen on the wire, and whether it travelled inside a
/// merged batch.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The message.
    pub msg: Message,
    /// It was part of a `Merged` frame.
    pub merged: bool,
    /// Index of the WebSocket message that carried it.
    pub ws_message: usize,
}

/// Decodes the grid messages in WebSocket bytes written by `from` (the
/// dialer, side 0, masks its frames).
pub fn decode_written(bytes: &[u8], from: usize) -> Vec<Seen> {
    let role = if from == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let mut decoder = FrameDecoder::new(role, 64 << 20);
    let mut buf = BytesMut::from(bytes);
    let mut seen = Vec::new();
    let mut index = 0;
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        if frame.opcode != OpCode::Binary {
            continue;
        }
        match Frame::decode(frame.payload) {
            Ok(Frame::Single(msg)) => seen.push(Seen {
                msg,
                merged: false,
                ws_message: index,
            }),
            Ok(Frame::Merged(frames)) => {
                for msg in frames.flatten() {
                    seen.push(Seen {
                        msg,
                        merged: true,
                        ws_message: index,
                    });
                }
            }
            Err(_) => {}
        }
        index += 1;
    }
    seen
}

/// Moves what `from` writes to the other side, like
/// [`LinkPair::transfer`], and returns the grid messages it carried.
pub fn deliver_observed(pair: &mut LinkPair, from: usize) -> Vec<Seen> {
    let mut out = Transmit::new();
    while pair.links[from].poll_transmit(pair.now, &mut out) {}
    pair.poll_events(from);
    let bytes = out.to_vec();
    let to = 1 - from;
    pair.links[to].handle_input(pair.now, &mut BytesMut::from(&bytes[..]));
    pair.poll_events(to);
    decode_written(&bytes, from)
}

/// Takes what `from` writes without delivering it (a silent network).
pub fn swallow(pair: &mut LinkPair, from: usize) -> Vec<Seen> {
    let mut out = Transmit::new();
    while pair.links[from].poll_transmit(pair.now, &mut out) {}
    pair.poll_events(from);
    decode_written(&out.to_vec(), from)
}

/// Delivers `msg` to side `to` as if its peer had sent it (with CRC).
pub fn inject(pair: &mut LinkPair, to: usize, msg: &Message) {
    let mut grid = BytesMut::new();
    msg.encode(true, &mut grid);
    let frame = ws_frame(&grid, to == 1);
    pair.links[to].handle_input(pair.now, &mut BytesMut::from(&frame[..]));
    pair.poll_events(to);
}

/// A payload of `len` bytes of `byte`.
pub fn bytes_of(len: usize, byte: u8) -> Bytes {
    Bytes::from(vec![byte; len])
}

/// Moves the clock in `step`s, at most `steps` times, while only what
/// `from` writes arrives (the other direction is lost), firing due timers
/// on both sides. Stops at the first event of side `watch` that `stop`
/// accepts and returns it with the pair's age at that moment.
pub fn run_one_way(
    pair: &mut LinkPair,
    from: usize,
    step: std::time::Duration,
    steps: usize,
    watch: usize,
    stop: impl Fn(&gridmux_core::link::Event) -> bool,
) -> Option<(std::time::Duration, gridmux_core::link::Event)> {
    for _ in 0..steps {
        pair.now += step;
        for side in 0..2 {
            if pair.links[side]
                .poll_timeout()
                .is_some_and(|t| t <= pair.now)
            {
                let now = pair.now;
                pair.links[side].handle_timeout(now);
            }
        }
        pair.transfer(from);
        swallow(pair, 1 - from);
        if let Some(e) = pair.take_events(watch).into_iter().find(&stop) {
            return Some((pair.elapsed(), e));
        }
    }
    None
}
