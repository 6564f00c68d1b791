//! Closing a link: tearing every exchange down with `Disconnected`, the
//! `Closed` event, and the `Lost` record.

use std::time::Instant;

use tracing::debug;

use super::{truncate_utf8, CallError, Event, Link, LinkError, Phase};
use crate::mux::{MuxId, MuxTable, Origin};
use crate::observe::{LinkEvent, Outcome};
use crate::ws::{self, CloseCode};

impl Link {
    pub(super) fn on_ws_closed(&mut self, now: Instant, cause: ws::CloseCause) {
        if self.phase == Phase::Closed {
            return;
        }
        self.end_all(now);
        let reason = LinkError::WebSocket(cause);
        debug!(remote = ?self.remote, %reason, "link closed by the websocket layer");
        self.finish_close(reason);
    }

    pub(super) fn finish_close(&mut self, reason: LinkError) {
        if self.phase == Phase::Connected {
            let peer = self.remote.as_deref().unwrap_or_default();
            self.link_event(&LinkEvent::Lost {
                peer,
                reason: reason.label(),
            });
        }
        self.phase = Phase::Closed;
        self.handshake_deadline = None;
        self.next_ping = None;
        self.outbox.clear();
        self.events.push_back(Event::Closed(reason));
    }

    /// Tears the link down at once: every exchange ends with
    /// `Disconnected`, a WebSocket Close frame is queued (the adapter writes
    /// what `poll_transmit` still yields, then closes the socket), and
    /// `Event::Closed(reason)` follows. Waiting for the peer's Close would
    /// only delay the redial: the peer may be the reason we close.
    pub(super) fn fail(&mut self, now: Instant, reason: LinkError) {
        if self.phase == Phase::Closed {
            return;
        }
        debug!(remote = ?self.remote, %reason, "closing link");
        self.end_all(now);
        self.handshake_deadline = None;
        self.next_ping = None;
        let code = match &reason {
            LinkError::Local => CloseCode::NORMAL,
            LinkError::Malformed(_) => CloseCode::PROTOCOL_ERROR,
            LinkError::Refused(_) | LinkError::Rejected(_) | LinkError::Unauthenticated(_) => {
                CloseCode::POLICY_VIOLATION
            }
            _ => CloseCode::GOING_AWAY,
        };
        if let Some(ws) = self.ws.as_mut().filter(|ws| ws.is_open()) {
            if matches!(reason, LinkError::Refused(_)) {
                // The peer must learn why: the rejecting ConnectResponse
                // goes out before the Close frame.
                while let Some(m) = self.outbox.next_ws_message(1, usize::MAX) {
                    let _ = ws.send(ws::Message::binary(m));
                }
            }
            // An unauthenticated peer learns nothing of what failed; the
            // reason stays in our log.
            let text = match &reason {
                LinkError::Unauthenticated(_) => "unauthorized".to_owned(),
                _ => reason.to_string(),
            };
            // Only fails for codes that may not be sent; ours may.
            let _ = ws.close(now, code, truncate_utf8(&text, 120));
        }
        self.finish_close(reason);
    }

    /// Ends every exchange with `Disconnected`, in mux order.
    pub(super) fn end_all(&mut self, now: Instant) {
        for request in self.muxes.in_requests.values() {
            self.unanswered(now, request, Outcome::Disconnected);
        }
        for request in self.muxes.out_requests.values() {
            self.call_ended(now, request, Outcome::Disconnected);
        }
        self.drop_answers(now);
        let mut ended: Vec<(MuxId, bool)> = self
            .muxes
            .out_requests
            .keys()
            .map(|id| (MuxId::local(*id), true))
            .chain(
                self.muxes
                    .in_requests
                    .keys()
                    .map(|id| (MuxId::remote(*id), false)),
            )
            .chain(
                self.muxes
                    .streams
                    .iter()
                    .filter(|(m, s)| s.end_is_reported(**m))
                    .map(|(m, _)| (*m, false)),
            )
            .collect();
        ended.sort_unstable();
        for (mux, is_out_request) in ended {
            self.events.push_back(if is_out_request {
                Event::Response {
                    mux,
                    result: Err(CallError::Disconnected),
                }
            } else {
                Event::Ended {
                    mux,
                    result: Err(CallError::Disconnected),
                }
            });
        }
        let served: Vec<MuxId> = (self.muxes.streams.iter())
            .filter(|(m, s)| m.origin == Origin::Remote && s.observed.is_some())
            .map(|(m, _)| *m)
            .collect();
        for mux in served {
            let stats = self.muxes.remove_stream(mux).and_then(|s| s.observed);
            if let Some(stats) = stats {
                self.stream_ended(now, mux, stats, Outcome::Disconnected);
            }
        }
        self.muxes = MuxTable::with_hashing(self.muxes.hashing());
        self.draining.clear();
        self.timers.clear();
    }
}
