//! Incoming stream messages on a connected link: opening, data, credits
//! and keepalive, and killing a stream.

use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use super::dispatch::remote_error;
use super::{CallError, Event, Lane, Link};
use crate::mux::{
    CreditWindow, HeldMessages, MuxId, Origin, SendCredits, Sending, StreamState, StreamStats,
};
use crate::observe::Outcome;
use crate::wire::{
    decode_count, decode_stream_open, ErrorCode, ErrorPayload, Flags, Message, Op, PongMsg,
};

impl Link {
    // ---- streams: opening -----------------------------------------------

    pub(super) fn on_connect_mux(&mut self, now: Instant, msg: Message) {
        let mux = MuxId::remote(msg.mux_id);
        if self.muxes.streams.contains_key(&mux) || self.muxes.in_requests.contains_key(&mux.id) {
            debug!(id = mux.id, "duplicate stream id ignored");
            return;
        }
        let config = &self.config;
        if msg.flags.contains(Flags::STATELESS) {
            let text = "Stateless streams not supported".to_owned();
            return self.connect_error(now, &msg, ErrorCode::Protocol, text);
        }
        let registered = config.handlers.stream_window(msg.handler, msg.subroute);
        let Some(in_capacity) = registered.filter(|_| msg.handler != 0) else {
            let text = format!("Invalid Handler for type: {}", msg.handler);
            return self.connect_error(now, &msg, ErrorCode::UnknownHandler, text);
        };
        if self.muxes.open_remote_streams() >= config.max_served_streams {
            let text = "too many open streams".to_owned();
            return self.connect_error(now, &msg, ErrorCode::Overloaded, text);
        }
        if self.queued_bytes() >= config.max_queued_bytes {
            let text = "send queue full".to_owned();
            return self.connect_error(now, &msg, ErrorCode::Overloaded, text);
        }
        let (client_window, payload) = match decode_stream_open(msg.payload.as_ref()) {
            Ok(open) => open,
            Err(e) => return self.connect_error(now, &msg, ErrorCode::Protocol, e.to_string()),
        };
        if !self.within_budget(payload.len()) {
            let text = "inbound byte budget spent".to_owned();
            return self.connect_error(now, &msg, ErrorCode::Overloaded, text);
        }
        let has_input = !msg.flags.contains(Flags::EOF) && in_capacity > 0;
        let window = if has_input { in_capacity } else { 0 };
        let deadline = Self::local_deadline(now, msg.deadline_ms);
        let checked =
            deadline.is_none_or(|d| d.saturating_duration_since(now) > config.stream_idle_timeout);
        let mut state = StreamState {
            send_seq: msg.seq,
            recv_seq: msg.seq.wrapping_add(1),
            send: SendCredits::new(client_window),
            send_window: client_window,
            recv: CreditWindow::receiver(window),
            sending: Sending::Open,
            receiving: has_input,
            acked: true,
            deadline,
            last_seen: now,
            next_tick: checked.then(|| now + config.stream_ping_interval),
            timer: None,
            last_ticket: None,
            released: false,
            open_ticket: None,
            held: HeldMessages::default(),
            held_open: 0,
            observed: None,
        };
        let seq = state.next_seq();
        if self.config.observer.enabled() {
            state.observed = Some(Box::new(StreamStats {
                handler: msg.handler,
                subroute: msg.subroute,
                started: now,
                first_out: None,
                first_queued: None,
                msgs_in: 0,
                msgs_out: 0,
                bytes_in: payload.len() as u64,
                bytes_out: 0,
            }));
        }
        self.muxes.insert_stream(mux, state);
        self.muxes.hold_open(mux, payload.len());
        let payload = self.retain(payload);
        self.reschedule(mux);
        let mut ack = Message::new(Op::ACK_MUX, mux.id).seq(seq);
        ack.payload = Some(crate::wire::encode_count(window));
        self.send_msg(now, Lane::Control, &ack);
        self.events.push_back(Event::StreamOpened {
            mux,
            handler: msg.handler,
            subroute: msg.subroute,
            payload,
            deadline,
            has_input,
        });
    }

    pub(super) fn on_ack(&mut self, now: Instant, msg: &Message) {
        let mux = MuxId::local(msg.mux_id);
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            if !msg.flags.contains(Flags::EOF) {
                self.tell_unknown(now, mux);
            }
            return;
        };
        if let Err((want, got)) = stream.check_seq(msg.seq) {
            return self.kill_stream(now, mux, sequence_error(want, got));
        }
        let window = match decode_count(msg.payload.as_ref(), 0) {
            Ok(w) if !stream.acked => w,
            Ok(_) => return self.kill_stream(now, mux, "second AckMux".into()),
            Err(e) => return self.kill_stream(now, mux, format!("malformed AckMux: {e}")),
        };
        stream.acked = true;
        stream.last_seen = now;
        stream.send_window = window;
        stream.send.grant(window, window);
        let was_open = stream.sending == Sending::Open;
        if window == 0 {
            // The handler takes no input: sends now fail with `Finished`.
            stream.sending = Sending::Done;
        }
        match stream.sending {
            Sending::Open if stream.send.available() > 0 => {
                self.events.push_back(Event::Writable { mux });
            }
            Sending::Done if was_open => self.events.push_back(Event::Writable { mux }),
            Sending::EofPending => self.try_send_eof(now, mux),
            _ => {}
        }
    }

    // ---- streams: data and credits --------------------------------------

    pub(super) fn on_stream_data(&mut self, now: Instant, mux: MuxId, msg: Message) {
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            if mux.origin == Origin::Remote || !msg.flags.contains(Flags::EOF) {
                self.tell_unknown(now, mux);
            }
            return;
        };
        if mux.origin == Origin::Local && !stream.acked {
            // DESIGN §5.4: `AckMux` is always the first message back.
            return self.kill_stream(now, mux, "server data before AckMux".into());
        }
        if let Err((want, got)) = stream.check_seq(msg.seq) {
            return self.kill_stream(now, mux, sequence_error(want, got));
        }
        stream.last_seen = now;
        if msg.flags.contains(Flags::PAYLOAD_IS_ERR) && mux.origin == Origin::Local {
            self.remove_stream(now, mux, Outcome::HandlerError);
            return self.ended(mux, Err(remote_error(&msg)));
        }
        if !stream.receiving {
            return self.kill_stream(now, mux, "did not expect inbound message".into());
        }
        if !stream.recv.on_receive() {
            return self.kill_stream(now, mux, "message without credit".into());
        }
        if let Some(stats) = stream.observed.as_deref_mut() {
            // An EOF without a payload is the end, not a message.
            let len = msg.payload.as_ref().map_or(0, |p| p.len() as u64);
            if len > 0 || !msg.flags.contains(Flags::EOF) {
                stats.msgs_in += 1;
                stats.bytes_in += len;
            }
        }
        let eof = msg.flags.contains(Flags::EOF);
        if !stream.end_is_reported(mux) {
            // The handler already finished: nobody reads its input any more.
            // Drop it, and hand the credit back so the caller is not stuck
            // before our EOF reaches it.
            if eof {
                stream.receiving = false;
            }
            if let Some(grant) = stream.recv.on_consumed(1) {
                let seq = stream.send_seq;
                let mut unblock = Message::new(Op::UNBLOCK_CL_MUX, mux.id).seq(seq);
                unblock.payload = (grant != 1).then(|| crate::wire::encode_count(grant));
                self.send_msg(now, Lane::Control, &unblock);
            }
            if eof {
                self.settle_served(now, mux);
            }
            return;
        }
        let input_open = stream.sending != Sending::Done;
        let seq = stream.send_seq;
        let payload = msg.payload.filter(|p| !eof || !p.is_empty());
        let size = payload.as_ref().map_or(0, Bytes::len);
        if mux.origin == Origin::Remote && self.shed_for(now, mux, size) {
            return;
        }
        if eof && mux.origin == Origin::Remote {
            if let Some(stream) = self.muxes.streams.get_mut(&mux) {
                stream.receiving = false;
            }
        }
        if let Some(payload) = payload {
            self.muxes.hold_message(mux, size);
            let payload = self.retain(payload);
            self.events.push_back(Event::Message { mux, payload });
        }
        if !eof {
            return;
        }
        match mux.origin {
            Origin::Local => {
                self.remove_stream(now, mux, Outcome::Ok);
                self.ended(mux, Ok(()));
                if input_open {
                    // The server finished first: our input ends here (a
                    // handler still reading it must hear so), behind
                    // whatever of it is still queued.
                    let stop = Message::new(Op::DISCONNECT_SERVER_MUX, mux.id).seq(seq);
                    let lane = self.lane_about(mux);
                    self.send_msg(now, lane, &stop);
                }
            }
            Origin::Remote => {
                self.events.push_back(Event::InputEnded { mux });
                self.settle_served(now, mux);
            }
        }
    }

    pub(super) fn on_unblock(&mut self, now: Instant, mux: MuxId, msg: &Message) {
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return; // credits for a closed stream are expected
        };
        let n = match decode_count(msg.payload.as_ref(), 1) {
            Ok(n) => n,
            Err(e) => return self.kill_stream(now, mux, format!("malformed credit count: {e}")),
        };
        if mux.origin == Origin::Local {
            stream.last_seen = now;
        }
        let unblocked = stream.send.grant(n, stream.send_window);
        match stream.sending {
            Sending::EofPending => self.try_send_eof(now, mux),
            Sending::Open if unblocked => self.events.push_back(Event::Writable { mux }),
            _ => {}
        }
    }

    // ---- streams: keepalive ---------------------------------------------

    pub(super) fn on_stream_ping(&mut self, now: Instant, msg: &Message) {
        let mux = MuxId::remote(msg.mux_id);
        let mut pong = PongMsg {
            not_found: false,
            err: None,
            t: None,
        };
        match self.muxes.streams.get_mut(&mux) {
            None => pong.not_found = true,
            Some(stream) => stream.last_seen = now,
        }
        let reply = Message::new(Op::PONG, mux.id)
            .seq(msg.seq)
            .payload(pong.encode());
        // A live stream's pong changes nothing and must not wait behind a
        // backlog; "not found" would end the stream, so it waits behind
        // the stream's own queued data.
        let lane = if pong.not_found {
            self.lane_about(mux)
        } else {
            Lane::Control
        };
        self.send_msg(now, lane, &reply);
    }

    pub(super) fn on_stream_pong(&mut self, now: Instant, msg: &Message) {
        let mux = MuxId::local(msg.mux_id);
        if !self.muxes.streams.contains_key(&mux) {
            return self.tell_unknown(now, mux);
        }
        match PongMsg::decode(&msg.payload.clone().unwrap_or_default()) {
            Ok(p) if p.not_found => {
                self.remove_stream(now, mux, Outcome::Disconnected);
                self.ended(mux, Err(CallError::Disconnected));
            }
            Ok(PongMsg { err: Some(e), .. }) => {
                self.remove_stream(now, mux, Outcome::ProtocolError);
                self.ended(
                    mux,
                    Err(CallError::Protocol(format!("remote pong failed: {e}"))),
                );
            }
            Ok(_) => {
                if let Some(stream) = self.muxes.streams.get_mut(&mux) {
                    stream.last_seen = now;
                }
            }
            Err(e) => self.kill_stream(now, mux, format!("malformed pong: {e}")),
        }
    }

    /// Tells the peer that a mux it addressed does not exist here.
    fn tell_unknown(&mut self, now: Instant, mux: MuxId) {
        let op = match mux.origin {
            Origin::Local => Op::DISCONNECT_SERVER_MUX,
            Origin::Remote => Op::DISCONNECT_CLIENT_MUX,
        };
        let lane = self.lane_about(mux);
        self.send_msg(now, lane, &Message::new(op, mux.id));
    }

    /// Ends one stream after a protocol violation; the link stays up.
    fn kill_stream(&mut self, now: Instant, mux: MuxId, reason: String) {
        self.kill_stream_with(now, mux, ErrorCode::Protocol, reason);
    }

    /// Ends one stream (a protocol violation, or shed for overload); the
    /// link stays up.
    pub(super) fn kill_stream_with(
        &mut self,
        now: Instant,
        mux: MuxId,
        code: ErrorCode,
        reason: String,
    ) {
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return;
        };
        debug!(?mux, ?code, %reason, "stream ended");
        let reported = stream.end_is_reported(mux);
        // The server is told with a control message; a served stream's
        // caller gets an ordered error EOF behind the data already queued.
        match mux.origin {
            Origin::Local => {
                let msg = Message::new(Op::DISCONNECT_SERVER_MUX, mux.id).seq(stream.send_seq);
                self.send_msg(now, Lane::Control, &msg);
            }
            // Our EOF already went: the caller is told to stop sending,
            // behind it (a second end would break the protocol).
            Origin::Remote if stream.sending == Sending::Done => {
                let lane = self.lane_about(mux);
                self.send_msg(now, lane, &Message::new(Op::DISCONNECT_CLIENT_MUX, mux.id));
            }
            Origin::Remote => {
                let error = ErrorPayload::new(code, reason.clone());
                let msg = Message::new(Op::MUX_SERVER_MSG, mux.id)
                    .seq(stream.next_seq())
                    .flags(Flags::EOF | Flags::PAYLOAD_IS_ERR)
                    .payload(error.encode());
                self.send_stream_msg(now, mux, &msg);
            }
        }
        let outcome = match code {
            ErrorCode::Overloaded => Outcome::Overloaded,
            _ => Outcome::ProtocolError,
        };
        self.remove_stream(now, mux, outcome);
        if reported {
            let error = match code {
                ErrorCode::Overloaded => CallError::Overloaded(reason),
                _ => CallError::Protocol(reason),
            };
            self.ended(mux, Err(error));
        }
    }
}

fn sequence_error(want: u32, got: u32) -> String {
    format!("receive sequence number mismatch. want {want}, got {got}")
}
