//! Application commands: open exchanges, send, answer, finish, cancel.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{CommandError, Lane, Link, LinkError, Phase, StreamOpts, DRAINING_SWEEP};
use crate::mux::{
    CreditWindow, HeldMessages, InRequest, MuxId, Origin, OutRequest, SendCredits, Sending,
    StreamState,
};
use crate::observe::Outcome;
use crate::wire::{
    encode_count, encode_stream_open, ErrorCode, ErrorPayload, Flags, Message, Op, SubrouteId,
};

/// Answers up to this size (payload or error text) are queued even when
/// the send queue is full.
const ALWAYS_QUEUED_ANSWER: usize = 256;

/// Milliseconds from `now` to `deadline` for the wire, capped at `u32::MAX`;
/// `None` if less than one millisecond remains.
fn deadline_ms(now: Instant, deadline: Instant) -> Option<u32> {
    let ms = deadline.saturating_duration_since(now).as_millis();
    (ms >= 1).then(|| ms.min(u32::MAX.into()) as u32)
}

impl Link {
    /// Checks shared by every command that opens an exchange.
    fn check_open(&self, handler: u8, payload: &Bytes) -> Result<(), CommandError> {
        if self.phase != Phase::Connected {
            return Err(CommandError::NotConnected);
        }
        if handler == 0 {
            return Err(CommandError::InvalidHandler);
        }
        self.check_payload(payload)?;
        if self.muxes.open_local() >= self.config.max_open_muxes {
            return Err(CommandError::TooManyMuxes(self.config.max_open_muxes));
        }
        Ok(())
    }

    fn check_payload(&self, payload: &Bytes) -> Result<(), CommandError> {
        if payload.len() > self.config.max_message_size {
            return Err(CommandError::TooLarge {
                size: payload.len(),
                max: self.config.max_message_size,
            });
        }
        let queued = self.queued_bytes();
        if queued >= self.config.max_queued_bytes {
            return Err(CommandError::QueueFull(queued));
        }
        Ok(())
    }

    /// Sends a single request to `handler`. Without a deadline the default
    /// request timeout applies. The exchange ends with exactly one
    /// [`Event::Response`](super::Event::Response), unless cancelled.
    pub fn request(
        &mut self,
        now: Instant,
        handler: u8,
        subroute: Option<SubrouteId>,
        payload: Bytes,
        deadline: Option<Instant>,
    ) -> Result<MuxId, CommandError> {
        self.check_open(handler, &payload)?;
        let deadline = deadline.unwrap_or(now + self.config.default_request_timeout);
        let ms = deadline_ms(now, deadline).ok_or(CommandError::DeadlinePassed)?;
        let id = self.muxes.allocate_id();
        let mux = MuxId::local(id);
        self.muxes.out_requests.insert(
            id,
            OutRequest {
                deadline,
                timer: None,
                ticket: None,
                handler,
                started: now,
            },
        );
        self.reschedule(mux);
        let msg = Message {
            deadline_ms: ms,
            handler,
            subroute,
            ..Message::new(Op::REQUEST, id)
                .flags(Flags::EOF)
                .payload(payload)
        };
        let ticket = self.send_msg(now, Lane::Data, &msg);
        if let Some(r) = self.muxes.out_requests.get_mut(&id) {
            r.ticket = ticket;
        }
        Ok(mux)
    }

    /// Answers a request we serve. An answer after the deadline or a
    /// cancellation is refused with `UnknownMux` (nobody waits for it). An
    /// answer of more than a few hundred bytes while the send queue is full
    /// is refused with `QueueFull`: try again after output was taken. A
    /// payload over the size limit is refused with `TooLarge`, and the
    /// caller gets an error answer instead: the exchange is over either way.
    pub fn respond(
        &mut self,
        now: Instant,
        mux: MuxId,
        result: Result<Bytes, ErrorPayload>,
    ) -> Result<(), CommandError> {
        if mux.origin != Origin::Remote || !self.muxes.in_requests.contains_key(&mux.id) {
            return Err(CommandError::UnknownMux);
        }
        // Answers are bounded where they are queued, like everything else
        // we send: a large one waits while the queue is full (the request
        // stays served, and its deadline still ends it). Small ones always
        // go, so that ending an exchange never waits; served requests bound
        // their number.
        let size = match &result {
            Ok(p) => p.len(),
            Err(e) => e.message.len(),
        };
        let queued = self.queued_bytes();
        if size > ALWAYS_QUEUED_ANSWER && queued >= self.config.max_queued_bytes {
            return Err(CommandError::QueueFull(queued));
        }
        let request = self
            .muxes
            .remove_in_request(mux.id)
            .ok_or(CommandError::UnknownMux)?;
        self.drop_timer(mux, request.timer);
        let (result, too_large) = match result {
            Ok(p) if p.len() > self.config.max_message_size => {
                let max = self.config.max_message_size;
                let e = ErrorPayload::new(
                    ErrorCode::Application,
                    format!("response of {} bytes exceeds the limit of {max}", p.len()),
                );
                (Err(e), Some(CommandError::TooLarge { size: p.len(), max }))
            }
            other => (other, None),
        };
        let msg = Message::new(Op::RESPONSE, mux.id)
            .seq(request.seq)
            .flags(Flags::EOF);
        let (msg, outcome) = match result {
            Ok(p) => (msg.payload(p), Outcome::Ok),
            Err(e) => (
                msg.flags(Flags::PAYLOAD_IS_ERR).payload(e.encode()),
                Outcome::HandlerError,
            ),
        };
        let bytes_out = msg.payload.as_ref().map_or(0, Bytes::len);
        let ticket = self.send_msg(now, Lane::Data, &msg);
        self.answered(&request, outcome, ticket, bytes_out);
        too_large.map_or(Ok(()), Err)
    }

    /// Opens a stream to `handler`. The server's messages arrive as
    /// [`Event::Message`](super::Event::Message); the stream ends with one
    /// [`Event::Ended`](super::Event::Ended) unless cancelled.
    pub fn open_stream(
        &mut self,
        now: Instant,
        handler: u8,
        subroute: Option<SubrouteId>,
        payload: Bytes,
        opts: StreamOpts,
    ) -> Result<MuxId, CommandError> {
        self.check_open(handler, &payload)?;
        let ms = match opts.deadline {
            Some(d) => deadline_ms(now, d).ok_or(CommandError::DeadlinePassed)?,
            None => 0,
        };
        let id = self.muxes.allocate_id();
        let mux = MuxId::local(id);
        let window = opts.window.max(1);
        let pinged = opts
            .deadline
            .is_none_or(|d| d.saturating_duration_since(now) > self.config.stream_ping_interval);
        let mut state = StreamState {
            send_seq: 0,
            recv_seq: 0,
            send: SendCredits::none(),
            send_window: 0,
            recv: CreditWindow::receiver(window),
            sending: if opts.input {
                Sending::Open
            } else {
                Sending::Done
            },
            receiving: true,
            acked: false,
            deadline: opts.deadline,
            last_seen: now,
            next_tick: pinged.then(|| now + self.config.stream_ping_interval),
            timer: None,
            last_ticket: None,
            released: false,
            open_ticket: None,
            held: HeldMessages::default(),
            held_open: 0,
            observed: None,
        };
        let seq = state.next_seq();
        self.muxes.insert_stream(mux, state);
        self.reschedule(mux);
        let mut msg = Message {
            deadline_ms: ms,
            handler,
            subroute,
            ..Message::new(Op::CONNECT_MUX, id)
                .seq(seq)
                .payload(encode_stream_open(window, &payload))
        };
        if !opts.input {
            msg.flags = Flags::EOF;
        }
        self.send_stream_msg(now, mux, &msg);
        if let Some(stream) = self.muxes.streams.get_mut(&mux) {
            stream.open_ticket = stream.last_ticket;
        }
        Ok(mux)
    }

    /// Sends one stream message. Costs a credit: `NoCredit` means wait for
    /// [`Event::Writable`](super::Event::Writable).
    pub fn send(&mut self, now: Instant, mux: MuxId, payload: Bytes) -> Result<(), CommandError> {
        if self.phase != Phase::Connected {
            return Err(CommandError::NotConnected);
        }
        self.check_payload(&payload)?;
        let stream = self.sending_stream(mux)?;
        if !stream.send.take() {
            return Err(CommandError::NoCredit);
        }
        let seq = stream.next_seq();
        let len = payload.len();
        let msg = Message::new(data_op(mux), mux.id).seq(seq).payload(payload);
        self.send_stream_msg(now, mux, &msg);
        self.stream_output(mux, Some(len));
        Ok(())
    }

    /// A stream whose sending direction is still open.
    fn sending_stream(&mut self, mux: MuxId) -> Result<&mut StreamState, CommandError> {
        let stream = self
            .muxes
            .streams
            .get_mut(&mux)
            .ok_or(CommandError::UnknownMux)?;
        if stream.sending != Sending::Open {
            return Err(CommandError::Finished);
        }
        Ok(stream)
    }

    /// Credits left on a stream (0 when it does not exist).
    pub fn credits(&self, mux: MuxId) -> u32 {
        self.muxes
            .streams
            .get(&mux)
            .filter(|s| s.sending == Sending::Open)
            .map_or(0, |s| s.send.available())
    }

    /// The consumer took `n` messages of a stream: their bytes leave the
    /// inbound budget and credits go back to the sender (batched). Unknown
    /// streams are ignored.
    pub fn consumed(&mut self, now: Instant, mux: MuxId, n: u32) {
        self.muxes.release_messages(mux, n);
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return;
        };
        let Some(grant) = stream.recv.on_consumed(n) else {
            return;
        };
        let seq = stream.send_seq;
        let op = match mux.origin {
            Origin::Local => Op::UNBLOCK_SRV_MUX,
            Origin::Remote => Op::UNBLOCK_CL_MUX,
        };
        let mut msg = Message::new(op, mux.id).seq(seq);
        if grant != 1 {
            msg.payload = Some(encode_count(grant));
        }
        self.send_msg(now, Lane::Control, &msg);
    }

    /// Ends our direction of a stream (EOF; it waits for a credit if
    /// needed). For a stream we serve this ends the stream.
    pub fn finish(&mut self, now: Instant, mux: MuxId) -> Result<(), CommandError> {
        self.sending_stream(mux)?.sending = Sending::EofPending;
        self.try_send_eof(now, mux);
        Ok(())
    }

    /// Sends a pending EOF if a credit allows.
    pub(super) fn try_send_eof(&mut self, now: Instant, mux: MuxId) {
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return;
        };
        if stream.sending != Sending::EofPending || !stream.send.take() {
            return;
        }
        stream.sending = Sending::Done;
        let seq = stream.next_seq();
        let msg = Message::new(data_op(mux), mux.id)
            .seq(seq)
            .flags(Flags::EOF);
        self.send_stream_msg(now, mux, &msg);
        self.stream_output(mux, None);
        if mux.origin == Origin::Remote {
            self.settle_served(now, mux);
        }
    }

    /// The application is done with a stream it serves (its handler
    /// returned): it reads no more input. The stream goes once its EOF is
    /// out (an open output is finished now); a caller still sending is
    /// told to stop. Until then the stream counts against
    /// `max_served_streams`. Unknown streams are ignored.
    pub fn release(&mut self, now: Instant, mux: MuxId) {
        if mux.origin != Origin::Remote {
            return;
        }
        self.muxes.release_open(mux);
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return;
        };
        stream.released = true;
        if stream.sending == Sending::Open {
            stream.sending = Sending::EofPending;
            self.try_send_eof(now, mux);
        } else {
            self.settle_served(now, mux);
        }
    }

    /// Removes a served stream once both directions are done: its EOF is
    /// out, and its input ended or was released (then the caller is told
    /// to stop sending, behind that EOF).
    pub(super) fn settle_served(&mut self, now: Instant, mux: MuxId) {
        let Some(stream) = self.muxes.streams.get(&mux) else {
            return;
        };
        if stream.sending != Sending::Done || (stream.receiving && !stream.released) {
            return;
        }
        let stop_input = stream.receiving;
        self.remove_stream(now, mux, Outcome::Ok);
        if stop_input {
            let lane = self.lane_about(mux);
            self.send_msg(now, lane, &Message::new(Op::DISCONNECT_CLIENT_MUX, mux.id));
        }
    }

    /// Ends a stream we serve with an error (no credit needed).
    pub fn fail_stream(
        &mut self,
        now: Instant,
        mux: MuxId,
        error: ErrorPayload,
    ) -> Result<(), CommandError> {
        if mux.origin != Origin::Remote {
            return Err(CommandError::UnknownMux);
        }
        let stream = match self.sending_stream(mux) {
            Ok(stream) => stream,
            // Its EOF is out or waiting: a second end would break the
            // protocol. The application is done with it either way.
            Err(CommandError::Finished) => {
                self.release(now, mux);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let seq = stream.next_seq();
        let msg = Message::new(Op::MUX_SERVER_MSG, mux.id)
            .seq(seq)
            .flags(Flags::EOF | Flags::PAYLOAD_IS_ERR)
            .payload(error.encode());
        self.send_stream_msg(now, mux, &msg);
        self.stream_output(mux, None);
        self.remove_stream(now, mux, Outcome::HandlerError);
        Ok(())
    }

    /// Abandons an exchange at once; the peer is told (requests we sent:
    /// `CancelRequest`; our streams: `DisconnectServerMux`; a request we
    /// serve: a `Canceled` error; a stream we serve: `DisconnectClientMux`).
    /// No event follows. Unknown exchanges are ignored.
    pub fn cancel(&mut self, now: Instant, mux: MuxId) {
        match mux.origin {
            Origin::Local => self.abandon_local(now, mux, Outcome::Canceled),
            Origin::Remote => {
                if self.muxes.in_requests.contains_key(&mux.id) {
                    let e = ErrorPayload::new(ErrorCode::Canceled, "canceled by the handler");
                    let _ = self.respond(now, mux, Err(e));
                } else if self.remove_stream(now, mux, Outcome::Canceled).is_some() {
                    let msg = Message::new(Op::DISCONNECT_CLIENT_MUX, mux.id);
                    let lane = self.lane_about(mux);
                    self.send_msg(now, lane, &msg);
                }
            }
        }
    }

    /// Closes the link: every exchange ends with `Disconnected`, then
    /// [`Event::Closed`](super::Event::Closed).
    pub fn close(&mut self, now: Instant) {
        self.fail(now, LinkError::Local);
    }

    /// Ends an exchange we opened (cancel, deadline, ping timeout) and
    /// tells the server without overtaking anything: a request or a stream
    /// whose open still waits in the send queue is withdrawn with its data
    /// and never sent; otherwise the cancel follows what was sent.
    pub(super) fn abandon_local(&mut self, now: Instant, mux: MuxId, outcome: Outcome) {
        if let Some(r) = self.muxes.out_requests.remove(&mux.id) {
            self.call_ended(now, &r, outcome);
            self.drop_timer(mux, r.timer);
            if !r.ticket.is_some_and(|t| self.outbox.withdraw(t)) {
                let cancel = Message::new(Op::CANCEL_REQUEST, mux.id);
                self.send_msg(now, Lane::Control, &cancel);
            }
            return;
        }
        let Some(stream) = self.remove_stream(now, mux, outcome) else {
            return;
        };
        let ops = [Op::CONNECT_MUX, Op::MUX_CLIENT_MSG];
        let unsent = stream
            .open_ticket
            .is_some_and(|t| self.outbox.withdraw_mux(t, &ops));
        if !unsent {
            let msg = Message::new(Op::DISCONNECT_SERVER_MUX, mux.id).seq(stream.send_seq);
            let lane = self.lane_about(mux);
            self.send_msg(now, lane, &msg);
        }
    }

    /// Removes a stream and its timer. If its last message still waits in
    /// the send queue, later control messages about it go behind it.
    pub(super) fn remove_stream(
        &mut self,
        now: Instant,
        mux: MuxId,
        outcome: Outcome,
    ) -> Option<StreamState> {
        let mut stream = self.muxes.remove_stream(mux)?;
        if let Some(stats) = stream.observed.take() {
            self.stream_ended(now, mux, stats, outcome);
        }
        self.drop_timer(mux, stream.timer);
        if let Some(ticket) = stream.last_ticket.filter(|t| self.outbox.is_queued(*t)) {
            // Swept of what has left once it doubled since the last sweep:
            // amortised O(1) per removal, however many stay queued.
            if self.draining.len() >= self.draining_sweep_at {
                let outbox = &self.outbox;
                self.draining.retain(|_, t| outbox.is_queued(*t));
                self.draining_sweep_at = (2 * self.draining.len()).max(DRAINING_SWEEP);
            }
            self.draining.insert(mux, ticket);
        }
        Some(stream)
    }

    /// Queues an ordered message of stream `mux` and notes its place.
    pub(super) fn send_stream_msg(&mut self, now: Instant, mux: MuxId, msg: &Message) {
        let ticket = self.send_msg(now, Lane::Data, msg);
        if let Some(stream) = self.muxes.streams.get_mut(&mux) {
            stream.last_ticket = ticket;
        }
    }

    /// The lane of a control message about `mux`: behind the exchange's
    /// data while some of it is still queued (DESIGN §5.5: no control
    /// message may change an exchange's outcome by overtaking its data).
    pub(super) fn lane_about(&mut self, mux: MuxId) -> Lane {
        let queued = |t: Option<u64>| t.is_some_and(|t| self.outbox.is_queued(t));
        if queued(self.muxes.streams.get(&mux).and_then(|s| s.last_ticket)) {
            return Lane::Behind;
        }
        match self.draining.get(&mux).copied() {
            Some(t) if self.outbox.is_queued(t) => Lane::Behind,
            Some(_) => {
                self.draining.remove(&mux);
                Lane::Control
            }
            None => Lane::Control,
        }
    }

    /// Registers a served request whose payload of `held` bytes the
    /// handler holds (used by dispatch).
    pub(super) fn insert_served_request(&mut self, now: Instant, msg: &Message, deadline: Instant) {
        let mux = MuxId::remote(msg.mux_id);
        let held = msg.payload.as_ref().map_or(0, Bytes::len);
        self.muxes.insert_in_request(
            mux.id,
            InRequest {
                deadline,
                seq: msg.seq,
                timer: None,
                held,
                handler: msg.handler,
                subroute: msg.subroute,
                started: now,
            },
        );
        self.reschedule(mux);
    }

    /// Sends the link ping.
    pub(super) fn send_link_ping(&mut self, now: Instant) {
        let ping = crate::wire::PingMsg { t: self.wall(now) };
        let msg = Message {
            deadline_ms: self.config.ping_interval.as_millis().min(u32::MAX.into()) as u32,
            ..Message::new(Op::PING, 0).payload(ping.encode())
        };
        self.send_msg(now, Lane::Control, &msg);
        let peer = self.remote.as_deref().unwrap_or_default();
        self.link_event(&crate::observe::LinkEvent::Load {
            peer,
            open_streams: self.muxes.streams.len(),
            open_requests: self.muxes.in_requests.len() + self.muxes.out_requests.len(),
            queued_bytes: self.queued_bytes(),
            inbound_bytes: self.inbound_bytes(),
        });
    }

    /// Milliseconds of a wire deadline as a local instant (0: none).
    pub(super) fn local_deadline(now: Instant, ms: u32) -> Option<Instant> {
        (ms > 0).then(|| now + Duration::from_millis(ms.into()))
    }
}

/// The data op of our direction of `mux`.
pub(super) fn data_op(mux: MuxId) -> Op {
    match mux.origin {
        Origin::Local => Op::MUX_CLIENT_MSG,
        Origin::Remote => Op::MUX_SERVER_MSG,
    }
}
