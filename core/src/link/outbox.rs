//! Grid messages waiting for the WebSocket layer: control ahead of data,
//! merged into batches when there is a backlog.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::{MergedWriter, Message, Op};

/// Which queue a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Pongs, credits, cancels, acks, errors: never behind data.
    Control,
    /// Requests, responses and stream messages.
    Data,
    /// A control message about an exchange whose data is still queued: it
    /// goes behind that data (so it cannot change the exchange's outcome by
    /// overtaking it), and counts against the control bound.
    Behind,
}

/// A data-lane message's place in line: data messages are numbered in
/// the order they are queued.
pub(crate) type Ticket = u64;

/// One queued data-lane message; an empty frame is a withdrawn one.
#[derive(Debug)]
struct Queued {
    ticket: Ticket,
    frame: Bytes,
    /// A control message placed behind data ([`Lane::Behind`]).
    control: bool,
    /// The message's mux id and op (to withdraw a stream's messages).
    mux_id: u64,
    op: Op,
}

/// Encoded messages not yet handed to the WebSocket endpoint.
#[derive(Debug)]
pub(crate) struct Outbox {
    control: VecDeque<Bytes>,
    /// In ticket order (tickets grow; withdrawn ones may be compacted
    /// away, so a ticket is found by binary search).
    data: VecDeque<Queued>,
    /// The next data message's ticket.
    next_ticket: Ticket,
    /// Withdrawn messages still in `data`.
    withdrawn: usize,
    bytes: usize,
    control_bytes: usize,
    /// Encoding buffer; each message is split off it, so consecutive
    /// messages share one allocation.
    scratch: BytesMut,
    merged: MergedWriter,
    /// Grid messages in the last WebSocket message given out.
    last_batch: usize,
    crc: bool,
}

impl Outbox {
    pub(crate) fn new(crc: bool) -> Self {
        Self {
            control: VecDeque::new(),
            data: VecDeque::new(),
            next_ticket: 0,
            withdrawn: 0,
            bytes: 0,
            control_bytes: 0,
            scratch: BytesMut::new(),
            merged: MergedWriter::new(),
            last_batch: 0,
            crc,
        }
    }

    /// Encodes and queues `msg`. Handshake messages go without CRC. Data
    /// messages get a ticket ([`is_queued`](Self::is_queued),
    /// [`withdraw`](Self::withdraw)).
    /// Whether messages carry a CRC from now on.
    pub(crate) fn set_crc(&mut self, crc: bool) {
        self.crc = crc;
    }

    pub(crate) fn push(&mut self, lane: Lane, msg: &Message, crc: bool) -> Option<Ticket> {
        if self.scratch.capacity() - self.scratch.len() < msg.max_encoded_len() {
            self.scratch.reserve(msg.max_encoded_len().max(16 * 1024));
        }
        msg.encode(crc && self.crc, &mut self.scratch);
        let frame = self.scratch.split().freeze();
        self.bytes += frame.len();
        if lane != Lane::Data {
            self.control_bytes += frame.len();
        }
        if lane == Lane::Control {
            self.control.push_back(frame);
            return None;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.data.push_back(Queued {
            ticket,
            frame,
            control: lane == Lane::Behind,
            mux_id: msg.mux_id,
            op: msg.op,
        });
        Some(ticket)
    }

    /// Where the data message with `ticket` is, if still queued.
    fn position(&self, ticket: Ticket) -> Option<usize> {
        let i = self.data.binary_search_by_key(&ticket, |q| q.ticket).ok()?;
        (!self.data[i].frame.is_empty()).then_some(i)
    }

    /// Whether the data message with `ticket` is still queued.
    pub(crate) fn is_queued(&self, ticket: Ticket) -> bool {
        self.position(ticket).is_some()
    }

    /// Takes the data message with `ticket` out of the queue, if it is
    /// still there (it is then never sent); returns whether it was.
    pub(crate) fn withdraw(&mut self, ticket: Ticket) -> bool {
        let Some(i) = self.position(ticket) else {
            return false;
        };
        self.take_out(i);
        self.tidy();
        true
    }

    /// Withdraws the message with `first` and every later one of the same
    /// mux with one of `ops` (a stream's open and its data, before any of
    /// it was sent); returns whether `first` was still queued.
    pub(crate) fn withdraw_mux(&mut self, first: Ticket, ops: &[Op]) -> bool {
        let Some(start) = self.position(first) else {
            return false;
        };
        let mux_id = self.data[start].mux_id;
        for i in start..self.data.len() {
            let q = &self.data[i];
            if q.mux_id == mux_id && ops.contains(&q.op) && !q.frame.is_empty() {
                self.take_out(i);
            }
        }
        self.tidy();
        true
    }

    fn take_out(&mut self, i: usize) {
        let queued = &mut self.data[i];
        let frame = std::mem::take(&mut queued.frame);
        self.bytes -= frame.len();
        if queued.control {
            self.control_bytes -= frame.len();
        }
        self.withdrawn += 1;
    }

    /// Drops withdrawn messages at the front, and compacts the lane once
    /// they are most of it (so request-and-cancel bursts behind a stuck
    /// message cannot grow it without bound).
    fn tidy(&mut self) {
        while self.data.front().is_some_and(|q| q.frame.is_empty()) {
            self.data.pop_front();
            self.withdrawn -= 1;
        }
        if self.withdrawn > 64 && self.withdrawn * 2 > self.data.len() {
            self.data.retain(|q| !q.frame.is_empty());
            self.withdrawn = 0;
        }
    }

    /// The ticket of the first data message still queued, if any: every
    /// earlier one was handed over (or withdrawn).
    pub(crate) fn first_queued_ticket(&self) -> Option<Ticket> {
        self.data
            .iter()
            .find(|q| !q.frame.is_empty())
            .map(|q| q.ticket)
    }

    /// Whether the control lane is empty.
    pub(crate) fn control_is_empty(&self) -> bool {
        self.control.is_empty()
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of control messages queued (in either lane).
    pub(crate) fn control_bytes(&self) -> usize {
        self.control_bytes
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty()
    }

    /// Drops everything queued.
    pub(crate) fn clear(&mut self) {
        self.control.clear();
        self.data.clear();
        self.withdrawn = 0;
        self.bytes = 0;
        self.control_bytes = 0;
    }

    fn pop(&mut self) -> Option<Bytes> {
        let frame = match self.control.pop_front() {
            Some(frame) => {
                self.control_bytes -= frame.len();
                frame
            }
            None => {
                let queued = self.data.pop_front()?;
                if queued.control {
                    self.control_bytes -= queued.frame.len();
                }
                self.tidy();
                queued.frame
            }
        };
        self.bytes -= frame.len();
        Some(frame)
    }

    fn peek_len(&self) -> Option<usize> {
        self.control
            .front()
            .or_else(|| self.data.front().map(|q| &q.frame))
            .map(Bytes::len)
    }

    /// The next WebSocket message: a single frame when only one is queued,
    /// otherwise a merged batch of up to `max_messages` frames that stops
    /// before `max_bytes` (a frame larger than that goes alone).
    pub(crate) fn next_ws_message(
        &mut self,
        max_messages: usize,
        max_bytes: usize,
    ) -> Option<Bytes> {
        let first = self.pop()?;
        self.last_batch = 1;
        let next_fits = |len: usize, body: usize| body + len + 5 <= max_bytes;
        match self.peek_len() {
            Some(len) if max_messages > 1 && next_fits(len, first.len() + 5) => {}
            _ => return Some(first),
        }
        self.merged.push(&first);
        while (self.merged.len() as usize) < max_messages {
            match self.peek_len() {
                Some(len) if next_fits(len, self.merged.body_len()) => {}
                _ => break,
            }
            if let Some(frame) = self.pop() {
                self.merged.push(&frame);
            }
        }
        self.last_batch = self.merged.len() as usize;
        Some(self.merged.finish_bytes())
    }

    /// How many grid messages the last [`next_ws_message`](Self::next_ws_message)
    /// carried (more than one: merged).
    pub(crate) fn last_batch(&self) -> usize {
        self.last_batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, Op};

    #[test]
    fn single_frames_go_alone_and_backlog_is_merged_control_first() {
        let mut out = Outbox::new(true);
        out.push(Lane::Data, &Message::new(Op::REQUEST, 1), true);
        let alone = out.next_ws_message(50, 31 * 1024).unwrap();
        assert!(matches!(Frame::decode(alone).unwrap(), Frame::Single(_)));
        for id in 1..=60 {
            out.push(Lane::Data, &Message::new(Op::REQUEST, id), true);
        }
        out.push(Lane::Control, &Message::new(Op::PONG, 0), true);
        let Frame::Merged(batch) =
            Frame::decode(out.next_ws_message(50, 31 * 1024).unwrap()).unwrap()
        else {
            panic!("not merged")
        };
        let ops: Vec<Op> = batch.map(|m| m.unwrap().op).collect();
        assert_eq!(ops.len(), 50);
        assert_eq!(ops[0], Op::PONG);
        let Frame::Merged(rest) =
            Frame::decode(out.next_ws_message(50, 31 * 1024).unwrap()).unwrap()
        else {
            panic!("not merged")
        };
        assert_eq!(rest.count(), 11);
        assert!(out.is_empty());
        assert_eq!(out.bytes(), 0);
    }

    #[test]
    fn withdrawn_messages_are_never_sent_and_tickets_stay_true() {
        let mut out = Outbox::new(false);
        let tickets: Vec<Ticket> = (0..4)
            .map(|id| {
                out.push(Lane::Data, &Message::new(Op::REQUEST, id), true)
                    .unwrap()
            })
            .collect();
        assert_eq!(tickets, [0, 1, 2, 3]);
        assert!(out.withdraw(1));
        assert!(!out.withdraw(1), "once");
        assert!(out.withdraw(0));
        assert!(!out.is_queued(0) && !out.is_queued(1) && out.is_queued(2));
        let Frame::Merged(sent) = Frame::decode(out.next_ws_message(50, 1 << 20).unwrap()).unwrap()
        else {
            panic!("not merged")
        };
        let ids: Vec<u64> = sent.map(|m| m.unwrap().mux_id).collect();
        assert_eq!(ids, [2, 3]);
        assert!(!out.is_queued(3) && out.is_empty() && out.bytes() == 0);
        let next = out
            .push(Lane::Behind, &Message::new(Op::PONG, 9), true)
            .unwrap();
        assert_eq!(next, 4);
        assert!(out.control_bytes() > 0);
        assert!(out.withdraw(next));
        assert_eq!((out.bytes(), out.control_bytes()), (0, 0));
    }

    #[test]
    fn withdrawn_messages_behind_a_stuck_one_are_compacted() {
        let mut out = Outbox::new(false);
        let stuck = out
            .push(Lane::Data, &Message::new(Op::REQUEST, 0), true)
            .unwrap();
        for id in 1..=10_000 {
            let t = out
                .push(Lane::Data, &Message::new(Op::REQUEST, id), true)
                .unwrap();
            assert!(out.withdraw(t));
        }
        assert!(out.data.len() <= 130, "{} entries kept", out.data.len());
        assert!(out.is_queued(stuck));
        let later = out
            .push(Lane::Data, &Message::new(Op::REQUEST, 7), true)
            .unwrap();
        assert!(out.is_queued(later) && !out.is_queued(later - 1));
    }

    #[test]
    fn a_streams_queued_messages_are_withdrawn_together() {
        let mut out = Outbox::new(false);
        let open = out
            .push(Lane::Data, &Message::new(Op::CONNECT_MUX, 5), true)
            .unwrap();
        out.push(Lane::Data, &Message::new(Op::REQUEST, 5), true);
        out.push(Lane::Data, &Message::new(Op::MUX_CLIENT_MSG, 5), true);
        out.push(Lane::Data, &Message::new(Op::MUX_CLIENT_MSG, 6), true);
        assert!(out.withdraw_mux(open, &[Op::CONNECT_MUX, Op::MUX_CLIENT_MSG]));
        let Frame::Merged(left) = Frame::decode(out.next_ws_message(50, 1 << 20).unwrap()).unwrap()
        else {
            panic!("not merged")
        };
        let left: Vec<(Op, u64)> = left.map(|m| m.unwrap()).map(|m| (m.op, m.mux_id)).collect();
        assert_eq!(left, [(Op::REQUEST, 5), (Op::MUX_CLIENT_MSG, 6)]);
    }

    #[test]
    fn merging_stops_at_the_byte_limit() {
        let mut out = Outbox::new(false);
        for id in 0..10 {
            let msg = Message::new(Op::REQUEST, id).payload(Bytes::from(vec![0u8; 1000]));
            out.push(Lane::Data, &msg, true);
        }
        let batch = out.next_ws_message(50, 3100).unwrap();
        assert!(batch.len() <= 3100 + 16);
        let Frame::Merged(frames) = Frame::decode(batch).unwrap() else {
            panic!()
        };
        assert_eq!(frames.count(), 3);
    }
}
