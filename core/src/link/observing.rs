//! Records for the link's [`Observer`](crate::observe::Observer): served
//! requests (their answers are timed when `poll_transmit` hands them
//! over), calls made, and link events.

use std::time::Instant;

use super::outbox::Ticket;
use super::{CallError, Link, Phase};
use crate::mux::{InRequest, MuxId, OutRequest, StreamStats};
use crate::observe::{
    BodyPath, CallMade, HttpServed, LinkEvent, Outcome, RequestServed, StreamServed,
};
use crate::wire::{Message, SubrouteId};

/// A served request's answer, queued and not yet handed over.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingAnswer {
    /// Its place in the data lane; `None`: in the control lane.
    ticket: Option<Ticket>,
    handler: u8,
    subroute: Option<SubrouteId>,
    outcome: Outcome,
    started: Instant,
    bytes_in: usize,
    bytes_out: usize,
}

impl PendingAnswer {
    /// The answer to `request`.
    fn to(request: &InRequest, outcome: Outcome, ticket: Option<Ticket>, bytes_out: usize) -> Self {
        Self {
            ticket,
            handler: request.handler,
            subroute: request.subroute,
            outcome,
            started: request.started,
            bytes_in: request.held,
            bytes_out,
        }
    }

    /// A refusal before any handler ran (answered in the control lane).
    fn is_refusal(&self) -> bool {
        self.ticket.is_none()
            && matches!(self.outcome, Outcome::Overloaded | Outcome::UnknownHandler)
    }
}

/// The acceptor's HTTP answer to the upgrade request, not yet handed over.
#[derive(Debug, Clone, Copy)]
pub(super) struct UpgradeAnswer {
    method: &'static str,
    status: u16,
    started: Instant,
    body_len: usize,
}

impl Link {
    fn observing(&self) -> bool {
        self.config.observer.enabled()
    }

    /// Queues `response`, the answer (`status`) to an upgrade request
    /// complete at `now`; it is recorded on the `upgrade` route when
    /// `poll_transmit` hands it over.
    pub(super) fn answer_upgrade(
        &mut self,
        now: Instant,
        method: &'static str,
        status: u16,
        response: bytes::Bytes,
    ) {
        let head_len = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |at| at + 4);
        self.upgrade_answer = Some(UpgradeAnswer {
            method,
            status,
            started: now,
            body_len: response.len() - head_len,
        });
        self.raw_out = Some(response);
    }

    /// The upgrade answer was handed over at `now`: its whole answer went
    /// at once, so its TTFB is its duration.
    pub(super) fn upgrade_answer_sent(&mut self, now: Instant) {
        let Some(a) = self.upgrade_answer.take() else {
            return;
        };
        if !self.observing() {
            return;
        }
        let ttfb = now.saturating_duration_since(a.started);
        self.config.observer.http_served(&HttpServed {
            route: "upgrade",
            method: a.method,
            status: a.status,
            ttfb: Some(ttfb),
            duration: ttfb,
            bytes_out: a.body_len as u64,
            body: if a.body_len == 0 {
                BodyPath::None
            } else {
                BodyPath::Memory
            },
        });
    }

    /// `request` was answered with a message of `bytes_out` payload bytes,
    /// queued at `ticket`: its record waits for the answer to go out.
    pub(super) fn answered(
        &mut self,
        request: &InRequest,
        outcome: Outcome,
        ticket: Option<Ticket>,
        bytes_out: usize,
    ) {
        if !self.observing() {
            return;
        }
        let answer = PendingAnswer::to(request, outcome, ticket, bytes_out);
        self.answers.push_back(answer);
    }

    /// A request refused before any handler ran, answered in the control
    /// lane.
    pub(super) fn refused(&mut self, now: Instant, msg: &Message, outcome: Outcome) {
        // Refusing may have overflowed the control lane and closed the
        // link: then the answer never goes, and nothing is recorded.
        if !self.observing() || self.phase == Phase::Closed {
            return;
        }
        self.answers.push_back(PendingAnswer {
            ticket: None,
            handler: msg.handler,
            subroute: msg.subroute,
            outcome,
            started: now,
            bytes_in: msg.payload.as_ref().map_or(0, |p| p.len()),
            bytes_out: 0,
        });
    }

    /// `request` ended without an answer.
    pub(super) fn unanswered(&self, now: Instant, request: &InRequest, outcome: Outcome) {
        if !self.observing() {
            return;
        }
        let answer = PendingAnswer::to(request, outcome, None, 0);
        self.record_answer(&answer, outcome, None, now);
    }

    /// Records `a` with `outcome`; its answer was handed over at `handed`
    /// (`None`: it never was), and it ended at `now`.
    fn record_answer(
        &self,
        a: &PendingAnswer,
        outcome: Outcome,
        handed: Option<Instant>,
        now: Instant,
    ) {
        let ttfb = handed.map(|t| t.saturating_duration_since(a.started));
        self.config.observer.request_served(&RequestServed {
            peer: self.remote.as_deref().unwrap_or_default(),
            handler: a.handler,
            subroute: a.subroute,
            outcome,
            ttfb,
            duration: now.saturating_duration_since(a.started),
            bytes_in: a.bytes_in as u64,
            bytes_out: if handed.is_some() {
                a.bytes_out as u64
            } else {
                0
            },
        });
    }

    /// Records the answers `poll_transmit` handed over by `now`: those
    /// before the first data message still queued (control ones once the
    /// control lane is empty).
    pub(super) fn flush_answers(&mut self, now: Instant) {
        let frontier = self.outbox.first_queued_ticket();
        self.flush_first_outs(now, frontier);
        let control_out = self.outbox.control_is_empty();
        while let Some(a) = self.answers.front().copied() {
            let out = match a.ticket {
                Some(t) => frontier.is_none_or(|f| t < f),
                None => control_out,
            };
            if !out {
                break;
            }
            self.answers.pop_front();
            self.record_answer(&a, a.outcome, Some(now), now);
        }
    }

    /// The link closed: answers still queued never go out. A refusal
    /// keeps its outcome (no handler ran); an answer is `Disconnected`.
    pub(super) fn drop_answers(&mut self, now: Instant) {
        self.drop_first_outs();
        while let Some(a) = self.answers.pop_front() {
            let outcome = if a.is_refusal() {
                a.outcome
            } else {
                Outcome::Disconnected
            };
            self.record_answer(&a, outcome, None, now);
        }
    }

    /// Requests given to the application whose records are not made yet
    /// (being served, or answered and not handed over): what a crash of
    /// the process would leave unrecorded.
    pub fn unrecorded_requests(&self) -> usize {
        let answered = self.answers.iter().filter(|a| !a.is_refusal()).count();
        self.muxes.in_requests.len() + answered
    }

    /// Streams given to the application whose records are not made yet:
    /// what a crash of the process would leave unrecorded.
    pub fn unrecorded_streams(&self) -> usize {
        let live = (self.muxes.streams.iter())
            .filter(|(m, s)| m.origin == crate::mux::Origin::Remote && s.observed.is_some())
            .count();
        live + self.first_outs.iter().filter(|f| f.ended.is_some()).count()
    }

    /// A request we made ended.
    pub(super) fn call_ended(&self, now: Instant, request: &OutRequest, outcome: Outcome) {
        if !self.observing() {
            return;
        }
        self.config.observer.call_made(&CallMade {
            peer: self.remote.as_deref().unwrap_or_default(),
            handler: request.handler,
            outcome,
            latency: now.saturating_duration_since(request.started),
        });
    }

    /// Reports a link event.
    pub(super) fn link_event(&self, event: &LinkEvent<'_>) {
        if self.observing() {
            self.config.observer.link_event(event);
        }
    }
}

/// The outcome of an exchange that ended with `error`.
pub(super) fn outcome_of(error: &CallError) -> Outcome {
    match error {
        CallError::Disconnected => Outcome::Disconnected,
        CallError::Timeout => Outcome::Timeout,
        CallError::Canceled => Outcome::Canceled,
        CallError::Remote { code, .. } => match code {
            crate::wire::ErrorCode::UnknownHandler => Outcome::UnknownHandler,
            crate::wire::ErrorCode::Overloaded => Outcome::Overloaded,
            _ => Outcome::HandlerError,
        },
        CallError::Protocol(_) => Outcome::ProtocolError,
        CallError::Overloaded(_) => Outcome::Overloaded,
    }
}

/// A served stream's first output (a message, or its EOF), queued and not
/// yet handed over; and, if the stream ended meanwhile, its record.
#[derive(Debug)]
pub(super) struct FirstOut {
    ticket: Ticket,
    mux: MuxId,
    ended: Option<Box<EndedStream>>,
}

/// A served stream that ended while its first output was still queued.
#[derive(Debug)]
pub(super) struct EndedStream {
    stats: StreamStats,
    outcome: Outcome,
    at: Instant,
}

impl Link {
    /// Stream `mux` queued a message of `len` payload bytes (`None`: its
    /// EOF) at its `last_ticket`.
    pub(super) fn stream_output(&mut self, mux: MuxId, len: Option<usize>) {
        let Some(stream) = self.muxes.streams.get_mut(&mux) else {
            return;
        };
        let ticket = stream.last_ticket;
        let Some(stats) = stream.observed.as_deref_mut() else {
            return;
        };
        if let Some(len) = len {
            stats.msgs_out += 1;
            stats.bytes_out += len as u64;
        }
        if stats.first_out.is_none() && stats.first_queued.is_none() {
            if let Some(ticket) = ticket {
                stats.first_queued = Some(ticket);
                self.first_outs.push_back(FirstOut {
                    ticket,
                    mux,
                    ended: None,
                });
            }
        }
    }

    /// A served stream ended with `outcome`: recorded now, or once its
    /// first output is handed over if that still waits.
    pub(super) fn stream_ended(
        &mut self,
        now: Instant,
        mux: MuxId,
        stats: Box<StreamStats>,
        outcome: Outcome,
    ) {
        if let (Some(ticket), None) = (stats.first_queued, stats.first_out) {
            // In ticket order: found by binary search, not a scan (many
            // streams may end while the queue is backed up).
            let found = (self.first_outs)
                .binary_search_by_key(&ticket, |f| f.ticket)
                .ok()
                .and_then(|i| self.first_outs.get_mut(i))
                .filter(|f| f.mux == mux && f.ended.is_none());
            if let Some(entry) = found {
                entry.ended = Some(Box::new(EndedStream {
                    stats: *stats,
                    outcome,
                    at: now,
                }));
                return;
            }
        }
        self.record_stream(&stats, outcome, stats.first_out, now);
    }

    fn record_stream(
        &self,
        stats: &StreamStats,
        outcome: Outcome,
        first: Option<Instant>,
        end: Instant,
    ) {
        let end = first.map_or(end, |f| f.max(end));
        self.config.observer.stream_served(&StreamServed {
            peer: self.remote.as_deref().unwrap_or_default(),
            handler: stats.handler,
            subroute: stats.subroute,
            outcome,
            ttfb: first.map(|f| f.saturating_duration_since(stats.started)),
            duration: end.saturating_duration_since(stats.started),
            msgs_in: stats.msgs_in,
            msgs_out: stats.msgs_out,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
        });
    }

    /// Notes the first outputs handed over by `now` (before `frontier`,
    /// the first data message still queued).
    pub(super) fn flush_first_outs(&mut self, now: Instant, frontier: Option<Ticket>) {
        while self
            .first_outs
            .front()
            .is_some_and(|f| frontier.is_none_or(|t| f.ticket < t))
        {
            let Some(first) = self.first_outs.pop_front() else {
                break;
            };
            match first.ended {
                Some(e) => self.record_stream(&e.stats, e.outcome, Some(now), e.at),
                None => {
                    let stats = self.muxes.streams.get_mut(&first.mux);
                    let stats = stats.and_then(|s| s.observed.as_deref_mut());
                    // Only the stream that queued it (a reused id's new
                    // stream has another ticket).
                    if let Some(stats) = stats.filter(|s| s.first_queued == Some(first.ticket)) {
                        stats.first_out = Some(now);
                        stats.first_queued = None;
                    }
                }
            }
        }
    }

    /// The link closed: first outputs still queued never go; the streams
    /// that ended meanwhile are recorded without a TTFB (one that had
    /// ended well did not, after all: `Disconnected`).
    pub(super) fn drop_first_outs(&mut self) {
        while let Some(first) = self.first_outs.pop_front() {
            if let Some(e) = first.ended {
                let outcome = match e.outcome {
                    Outcome::Ok => Outcome::Disconnected,
                    other => other,
                };
                self.record_stream(&e.stats, outcome, None, e.at);
            }
        }
    }
}
