//! Grid messages waiting for the WebSocket layer: control ahead of data,
//! merged into batches when there is a backlog.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::{MergedWriter, Message};

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
    frame: Bytes,
    /// A control message placed behind data ([`Lane::Behind`]).
    control: bool,
}

/// Encoded messages not yet handed to the WebSocket endpoint.
#[derive(Debug)]
pub(crate) struct Outbox {
    control: VecDeque<Bytes>,
    data: VecDeque<Queued>,
    /// Ticket of `data[0]`: data messages handed on (or withdrawn) so far.
    data_taken: Ticket,
    bytes: usize,
    control_bytes: usize,
    /// Encoding buffer; each message is split off it, so consecutive
    /// messages share one allocation.
    scratch: BytesMut,
    merged: MergedWriter,
    crc: bool,
}

impl Outbox {
    pub(crate) fn new(crc: bool) -> Self {
        Self {
            control: VecDeque::new(),
            data: VecDeque::new(),
            data_taken: 0,
            bytes: 0,
            control_bytes: 0,
            scratch: BytesMut::new(),
            merged: MergedWriter::new(),
            crc,
        }
    }

    /// Encodes and queues `msg`. Handshake messages go without CRC. Data
    /// messages get a ticket ([`is_queued`](Self::is_queued),
    /// [`withdraw`](Self::withdraw)).
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
        let ticket = self.data_taken + self.data.len() as Ticket;
        self.data.push_back(Queued {
            frame,
            control: lane == Lane::Behind,
        });
        Some(ticket)
    }

    /// Whether the data message with `ticket` is still queued.
    pub(crate) fn is_queued(&self, ticket: Ticket) -> bool {
        ticket
            .checked_sub(self.data_taken)
            .and_then(|i| self.data.get(usize::try_from(i).ok()?))
            .is_some_and(|q| !q.frame.is_empty())
    }

    /// Takes the data message with `ticket` out of the queue, if it is
    /// still there (it is then never sent); returns whether it was.
    pub(crate) fn withdraw(&mut self, ticket: Ticket) -> bool {
        if !self.is_queued(ticket) {
            return false;
        }
        let i = usize::try_from(ticket - self.data_taken).unwrap_or(usize::MAX);
        let Some(queued) = self.data.get_mut(i) else {
            return false;
        };
        let frame = std::mem::take(&mut queued.frame);
        self.bytes -= frame.len();
        if queued.control {
            self.control_bytes -= frame.len();
        }
        self.skip_withdrawn();
        true
    }

    /// Drops withdrawn messages at the front of the data lane.
    fn skip_withdrawn(&mut self) {
        while self.data.front().is_some_and(|q| q.frame.is_empty()) {
            self.data.pop_front();
            self.data_taken += 1;
        }
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
        self.data_taken += self.data.len() as Ticket;
        self.data.clear();
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
                self.data_taken += 1;
                if queued.control {
                    self.control_bytes -= queued.frame.len();
                }
                self.skip_withdrawn();
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
        Some(self.merged.finish_bytes())
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
