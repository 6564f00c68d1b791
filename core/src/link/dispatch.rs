//! Incoming grid messages on a connected link (requests, keepalive; the
//! streams' in `stream_input`), and per-exchange timers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, trace};

use super::observing::outcome_of;
use super::{CallError, Event, Lane, Link};
use crate::mux::{MuxId, Origin};
use crate::observe::{LinkEvent, Outcome};
use crate::wire::{ErrorCode, ErrorPayload, Flags, Message, Op, PingMsg, PongMsg};

/// Held payloads smaller than this are copied out of the buffer they
/// arrived in (see `Link::retain`).
const RETAIN_COPY_BELOW: usize = 64 * 1024;

/// The error carried by a message with `PAYLOAD_IS_ERR`.
pub(super) fn remote_error(msg: &Message) -> CallError {
    match ErrorPayload::decode(&msg.payload.clone().unwrap_or_default()) {
        Ok(e) => e.into(),
        Err(e) => CallError::Protocol(format!("malformed error payload: {e}")),
    }
}

impl Link {
    pub(super) fn on_message(&mut self, now: Instant, msg: Message) {
        trace!(?msg, "received");
        match msg.op {
            Op::PING if msg.mux_id == 0 => self.on_link_ping(now, &msg),
            Op::PONG if msg.mux_id == 0 => self.on_link_pong(now, &msg),
            Op::PING => self.on_stream_ping(now, &msg),
            Op::PONG => self.on_stream_pong(now, &msg),
            Op::REQUEST => self.on_request(now, msg),
            Op::RESPONSE => self.on_response(now, msg),
            Op::CANCEL_REQUEST => self.on_cancel_request(now, msg.mux_id),
            Op::CONNECT_MUX => self.on_connect_mux(now, msg),
            Op::ACK_MUX => self.on_ack(now, &msg),
            Op::MUX_CONNECT_ERROR => self.on_connect_error(now, &msg),
            Op::MUX_SERVER_MSG => self.on_stream_data(now, MuxId::local(msg.mux_id), msg),
            Op::MUX_CLIENT_MSG => self.on_stream_data(now, MuxId::remote(msg.mux_id), msg),
            Op::UNBLOCK_SRV_MUX => self.on_unblock(now, MuxId::remote(msg.mux_id), &msg),
            Op::UNBLOCK_CL_MUX => self.on_unblock(now, MuxId::local(msg.mux_id), &msg),
            Op::DISCONNECT_SERVER_MUX => {
                let mux = MuxId::remote(msg.mux_id);
                if let Some(stream) = self.remove_stream(now, mux, Outcome::Canceled) {
                    if stream.end_is_reported(mux) {
                        self.ended(mux, Err(CallError::Canceled));
                    }
                }
            }
            Op::DISCONNECT_CLIENT_MUX => {
                let mux = MuxId::local(msg.mux_id);
                if self
                    .remove_stream(now, mux, Outcome::Disconnected)
                    .is_some()
                {
                    let error = if msg.flags.contains(Flags::PAYLOAD_IS_ERR) {
                        remote_error(&msg)
                    } else {
                        CallError::Disconnected
                    };
                    self.ended(mux, Err(error));
                }
            }
            op => debug!(?op, "unknown message type ignored"),
        }
    }

    /// A payload the application will hold, in memory of its own when it
    /// is small (below 64 KiB) or a small part of a merged frame: a slice
    /// would keep alive the read buffer or the frame it came in while the
    /// budget counts only its own bytes. A large payload stays a slice:
    /// the WebSocket decoder moves what follows it to a fresh buffer, so
    /// it shares its buffer only with a read's worth of bytes before it.
    pub(super) fn retain(&self, payload: Bytes) -> Bytes {
        let small_part = self
            .merged_frame_len
            .is_some_and(|frame| payload.len() < frame / 2);
        if payload.len() < RETAIN_COPY_BELOW || small_part {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        }
    }

    /// Whether a message of `size` bytes for a stream we serve fits in
    /// twice the inbound budget. Streams admitted under the budget may
    /// together still send more (each up to its window): past the line, the
    /// served stream holding the most is shed (`Overloaded`), and then, if
    /// that was not enough, the stream `mux` itself. The link and every
    /// other exchange go on. Returns whether `mux` was shed.
    pub(super) fn shed_for(&mut self, now: Instant, mux: MuxId, size: usize) -> bool {
        let line = self.config.max_inbound_bytes.saturating_mul(2);
        let over = |link: &Self| {
            let held = link.muxes.served_inbound_bytes();
            held > 0 && held.saturating_add(size) > line
        };
        for round in 0..2 {
            if !over(self) {
                return false;
            }
            let victim = if round == 0 {
                self.muxes
                    .streams
                    .iter()
                    .filter(|(m, _)| m.origin == Origin::Remote)
                    .max_by_key(|(m, s)| (s.held.total() + s.held_open, **m == mux))
                    .map_or(mux, |(m, _)| *m)
            } else {
                mux
            };
            let held = self.muxes.served_inbound_bytes();
            let reason = format!(
                "{held} bytes of input held; a {size}-byte message would pass twice the inbound budget"
            );
            self.kill_stream_with(now, victim, ErrorCode::Overloaded, reason);
            if victim == mux {
                return true;
            }
        }
        false
    }

    pub(super) fn ended(&mut self, mux: MuxId, result: Result<(), CallError>) {
        self.events.push_back(Event::Ended { mux, result });
    }

    // ---- link keepalive -------------------------------------------------

    fn on_link_ping(&mut self, now: Instant, msg: &Message) {
        let t = PingMsg::decode(&msg.payload.clone().unwrap_or_default())
            .ok()
            .map(|p| p.t);
        let pong = PongMsg {
            not_found: false,
            err: None,
            t,
        };
        let reply = Message {
            deadline_ms: msg.deadline_ms,
            ..Message::new(Op::PONG, 0)
                .seq(msg.seq)
                .payload(pong.encode())
        };
        self.send_msg(now, Lane::Control, &reply);
    }

    fn on_link_pong(&mut self, now: Instant, msg: &Message) {
        self.last_pong = now;
        let pong = PongMsg::decode(&msg.payload.clone().unwrap_or_default());
        if let Ok(PongMsg { t: Some(t), .. }) = pong {
            let rtt = self.wall(now).duration_since(t).unwrap_or(Duration::ZERO);
            // The time is the peer's echo of ours: one no real round trip
            // could take (past the pong timeout) is not recorded.
            if rtt <= self.config.pong_timeout {
                let peer = self.remote.as_deref().unwrap_or_default();
                self.link_event(&LinkEvent::PingRtt { peer, rtt });
            }
            self.events.push_back(Event::Pong { rtt });
        }
    }

    // ---- requests -------------------------------------------------------

    fn on_request(&mut self, now: Instant, msg: Message) {
        let mux = MuxId::remote(msg.mux_id);
        if self.muxes.in_requests.contains_key(&mux.id) || self.muxes.streams.contains_key(&mux) {
            debug!(id = mux.id, "duplicate request id ignored");
            return;
        }
        let config = &self.config;
        if msg.handler == 0 || !config.handlers.has_request(msg.handler, msg.subroute) {
            let text = format!("Invalid Handler for type: {}", msg.handler);
            self.connect_error(now, &msg, ErrorCode::UnknownHandler, text);
            self.refused(now, &msg, Outcome::UnknownHandler);
            return;
        }
        let size = msg.payload.as_ref().map_or(0, Bytes::len);
        let busy = if self.muxes.in_requests.len() >= config.max_served_requests {
            Some("too many concurrent requests")
        } else if self.queued_bytes() >= config.max_queued_bytes {
            Some("send queue full")
        } else if !self.within_budget(size) {
            Some("inbound byte budget spent")
        } else {
            None
        };
        if let Some(why) = busy {
            let e = ErrorPayload::new(ErrorCode::Overloaded, why);
            let reply = Message::new(Op::RESPONSE, mux.id)
                .seq(msg.seq)
                .flags(Flags::EOF | Flags::PAYLOAD_IS_ERR)
                .payload(e.encode());
            self.send_msg(now, Lane::Control, &reply);
            self.refused(now, &msg, Outcome::Overloaded);
            return;
        }
        let deadline = Self::local_deadline(now, msg.deadline_ms)
            .unwrap_or(now + config.default_request_timeout);
        self.insert_served_request(now, &msg, deadline);
        let payload = self.retain(msg.payload.unwrap_or_default());
        self.events.push_back(Event::Request {
            mux,
            handler: msg.handler,
            subroute: msg.subroute,
            payload,
            deadline,
        });
    }

    pub(super) fn connect_error(
        &mut self,
        now: Instant,
        msg: &Message,
        code: ErrorCode,
        text: String,
    ) {
        let reply = Message::new(Op::MUX_CONNECT_ERROR, msg.mux_id)
            .seq(msg.seq)
            .payload(ErrorPayload::new(code, text).encode());
        self.send_msg(now, Lane::Control, &reply);
    }

    fn on_response(&mut self, now: Instant, msg: Message) {
        let mux = MuxId::local(msg.mux_id);
        let Some(request) = self.muxes.out_requests.remove(&mux.id) else {
            trace!(id = mux.id, "late response dropped");
            return;
        };
        self.drop_timer(mux, request.timer);
        let result = if msg.seq != 0 {
            Err(CallError::Protocol(format!(
                "response with seq {}",
                msg.seq
            )))
        } else if msg.flags.contains(Flags::PAYLOAD_IS_ERR) {
            Err(remote_error(&msg))
        } else {
            Ok(msg.payload.unwrap_or_default())
        };
        let outcome = result.as_ref().map_or_else(outcome_of, |_| Outcome::Ok);
        self.call_ended(now, &request, outcome);
        self.events.push_back(Event::Response { mux, result });
    }

    fn on_cancel_request(&mut self, now: Instant, id: u64) {
        let mux = MuxId::remote(id);
        if let Some(request) = self.muxes.remove_in_request(id) {
            self.unanswered(now, &request, Outcome::Canceled);
            self.drop_timer(mux, request.timer);
            self.ended(mux, Err(CallError::Canceled));
        }
    }

    fn on_connect_error(&mut self, now: Instant, msg: &Message) {
        let mux = MuxId::local(msg.mux_id);
        let error = remote_error(msg);
        if let Some(request) = self.muxes.out_requests.remove(&mux.id) {
            self.call_ended(now, &request, outcome_of(&error));
            self.drop_timer(mux, request.timer);
            self.events.push_back(Event::Response {
                mux,
                result: Err(error),
            });
        } else if self.remove_stream(now, mux, outcome_of(&error)).is_some() {
            self.ended(mux, Err(error));
        }
    }

    // ---- timers ---------------------------------------------------------

    pub(super) fn on_mux_timer(&mut self, now: Instant, mux: MuxId) {
        match mux.origin {
            Origin::Local => {
                if let Some(r) = self.muxes.out_requests.get_mut(&mux.id) {
                    r.timer = None;
                    if r.deadline <= now {
                        self.abandon_local(now, mux, Outcome::Timeout);
                        self.events.push_back(Event::Response {
                            mux,
                            result: Err(CallError::Timeout),
                        });
                    } else {
                        self.reschedule(mux);
                    }
                    return;
                }
            }
            Origin::Remote => {
                if let Some(r) = self.muxes.in_requests.get_mut(&mux.id) {
                    r.timer = None;
                    if r.deadline <= now {
                        if let Some(request) = self.muxes.remove_in_request(mux.id) {
                            self.unanswered(now, &request, Outcome::Timeout);
                        }
                        self.ended(mux, Err(CallError::Timeout));
                    } else {
                        self.reschedule(mux);
                    }
                    return;
                }
            }
        }
        self.on_stream_timer(now, mux);
    }

    fn on_stream_timer(&mut self, now: Instant, mux: MuxId) {
        let config = self.config.clone();
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return;
        };
        stream.timer = None;
        let (end_op, idle_limit) = match mux.origin {
            Origin::Local => (Op::DISCONNECT_SERVER_MUX, config.stream_ping_timeout),
            Origin::Remote => (Op::DISCONNECT_CLIENT_MUX, config.stream_idle_timeout),
        };
        let outcome = if stream.deadline.is_some_and(|d| d <= now) {
            Some(CallError::Timeout)
        } else if stream.next_tick.is_some_and(|t| t <= now) {
            if now.saturating_duration_since(stream.last_seen) > idle_limit {
                Some(CallError::Disconnected)
            } else {
                stream.next_tick = Some(now + config.stream_ping_interval);
                if mux.origin == Origin::Local {
                    let ping = Message::new(Op::PING, mux.id).seq(stream.send_seq);
                    self.send_msg(now, Lane::Control, &ping);
                }
                None
            }
        } else {
            None
        };
        match outcome {
            Some(error) if mux.origin == Origin::Local => {
                self.abandon_local(now, mux, outcome_of(&error));
                self.ended(mux, Err(error));
            }
            Some(error) => {
                let Some(stream) = self.remove_stream(now, mux, outcome_of(&error)) else {
                    return;
                };
                let mut end = Message::new(end_op, mux.id).seq(stream.send_seq);
                if mux.origin == Origin::Remote && error == CallError::Timeout {
                    // (ext) The caller learns why, even when our deadline
                    // fires before its own.
                    let e = ErrorPayload::new(ErrorCode::Timeout, "deadline exceeded");
                    end = end.flags(Flags::PAYLOAD_IS_ERR).payload(e.encode());
                }
                let lane = self.lane_about(mux);
                self.send_msg(now, lane, &end);
                if stream.end_is_reported(mux) {
                    self.ended(mux, Err(error));
                }
            }
            None => self.reschedule(mux),
        }
    }
}
