//! Records for the link's [`Observer`](crate::observe::Observer): served
//! requests (their answers are timed when `poll_transmit` hands them
//! over), calls made, and link events.

use std::time::Instant;

use super::outbox::Ticket;
use super::{CallError, Link, Phase};
use crate::mux::{InRequest, OutRequest};
use crate::observe::{CallMade, LinkEvent, Outcome, RequestServed};
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

impl Link {
    fn observing(&self) -> bool {
        self.config.observer.enabled()
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
        self.answers.push_back(PendingAnswer {
            ticket,
            handler: request.handler,
            subroute: request.subroute,
            outcome,
            started: request.started,
            bytes_in: request.held,
            bytes_out,
        });
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
        self.config.observer.request_served(&RequestServed {
            peer: self.remote.as_deref().unwrap_or_default(),
            handler: request.handler,
            subroute: request.subroute,
            outcome,
            ttfb: None,
            duration: now.saturating_duration_since(request.started),
            bytes_in: request.held as u64,
            bytes_out: 0,
        });
    }

    /// Records the answers `poll_transmit` handed over by `now`: those
    /// before the first data message still queued (control ones once the
    /// control lane is empty).
    pub(super) fn flush_answers(&mut self, now: Instant) {
        let frontier = self.outbox.first_queued_ticket();
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
            let elapsed = now.saturating_duration_since(a.started);
            self.config.observer.request_served(&RequestServed {
                peer: self.remote.as_deref().unwrap_or_default(),
                handler: a.handler,
                subroute: a.subroute,
                outcome: a.outcome,
                ttfb: Some(elapsed),
                duration: elapsed,
                bytes_in: a.bytes_in as u64,
                bytes_out: a.bytes_out as u64,
            });
        }
    }

    /// The link closed: answers still queued never go out. A refusal
    /// keeps its outcome (no handler ran); an answer is `Disconnected`.
    pub(super) fn drop_answers(&mut self, now: Instant) {
        while let Some(a) = self.answers.pop_front() {
            let outcome = match a.outcome {
                refused @ (Outcome::Overloaded | Outcome::UnknownHandler) if a.ticket.is_none() => {
                    refused
                }
                _ => Outcome::Disconnected,
            };
            self.config.observer.request_served(&RequestServed {
                peer: self.remote.as_deref().unwrap_or_default(),
                handler: a.handler,
                subroute: a.subroute,
                outcome,
                ttfb: None,
                duration: now.saturating_duration_since(a.started),
                bytes_in: a.bytes_in as u64,
                bytes_out: 0,
            });
        }
    }

    /// Requests given to the application whose records are not made yet
    /// (being served, or answered and not handed over): what a crash of
    /// the process would leave unrecorded.
    pub fn unrecorded_requests(&self) -> usize {
        let refusal = |a: &&PendingAnswer| {
            a.ticket.is_none() && matches!(a.outcome, Outcome::Overloaded | Outcome::UnknownHandler)
        };
        let answered = self.answers.iter().filter(|a| !refusal(a)).count();
        self.muxes.in_requests.len() + answered
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
