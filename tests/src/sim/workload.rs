//! Random operations and faults.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gridmux_core::link::StreamOpts;
use gridmux_core::wire::SubrouteId;
use rand::Rng;

use super::app::{handler, CallerRequest, CallerStream, Consumer, Key, StreamKind};
use super::world::World;

impl World {
    /// A random payload, mostly small.
    fn payload(&mut self) -> Bytes {
        let len = match self.rng.random_range(0..20) {
            0 => 0,
            1 => self.rng.random_range(0..=self.swarm.max_payload),
            _ => self.rng.random_range(0..=512.min(self.swarm.max_payload)),
        };
        let byte: u8 = self.rng.random();
        Bytes::from(vec![byte; len])
    }

    /// A random connected link of a live node: `(conn, side)`.
    fn pick_link(&mut self) -> Option<(u64, usize)> {
        let candidates: Vec<(u64, usize)> = self
            .conns
            .iter()
            .flat_map(|(id, c)| (0..2).map(move |s| (*id, s, c)))
            .filter(|(_, s, c)| c.links[*s].as_ref().is_some_and(|l| l.is_connected()))
            .map(|(id, s, _)| (id, s))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())])
    }

    /// One workload operation.
    pub(super) fn workload_op(&mut self) {
        let Some((conn, side)) = self.pick_link() else {
            return;
        };
        match self.rng.random_range(0..100) {
            0..=54 => self.op_request(conn, side),
            55..=59 => self.op_request_and_cancel(conn, side),
            60..=88 => self.op_stream(conn, side),
            89 => self.op_flood(conn, side),
            _ => self.op_cancel(conn, side),
        }
        self.drain(conn, side);
    }

    fn op_request(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let handler = match self.rng.random_range(0..20) {
            0..=11 => handler::ECHO,
            12..=13 => handler::FAIL,
            14..=15 => handler::HANG,
            16 => handler::PANIC,
            17 => handler::UNKNOWN,
            _ => 100 + handler::ECHO, // marker: echo through the sub-route
        };
        let (handler, subroute) = if handler > 100 {
            (
                handler::ECHO,
                Some(SubrouteId::new(handler::ECHO, "sub/route")),
            )
        } else {
            (handler, None)
        };
        let deadline = match self.rng.random_range(0..3) {
            0 => None,
            _ => Some(now + Duration::from_millis(self.rng.random_range(1..20_000))),
        };
        let payload = self.payload();
        self.send_request((conn, side), handler, subroute, payload, deadline);
    }

    /// Sends a request on `(conn, side)` and records it in the model;
    /// `false` if the link refused it.
    fn send_request(
        &mut self,
        (conn, side): (u64, usize),
        handler: u8,
        subroute: Option<SubrouteId>,
        payload: Bytes,
        deadline: Option<Instant>,
    ) -> bool {
        let now = self.now;
        let default = self.swarm.link.default_request_timeout;
        let Some(link) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.links[side].as_mut())
        else {
            return false;
        };
        let Ok(mux) = link.request(now, handler, subroute, payload.clone(), deadline) else {
            return false;
        };
        let req = CallerRequest {
            handler,
            payload,
            deadline: deadline.unwrap_or(now + default),
        };
        self.app.requests.insert((conn, side, mux), req);
        true
    }

    /// A flood against the peer's byte budgets: a burst of the largest
    /// requests to a handler that holds them until their deadline, or of
    /// small requests whose answers are as large as a message may be.
    fn op_flood(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let count = self.rng.random_range(10..=200);
        let len = self.swarm.max_payload.min(self.swarm.link.max_message_size);
        let deadline = now + Duration::from_millis(self.rng.random_range(100..20_000));
        let (handler, payload) = if self.rng.random_bool(0.5) {
            (handler::HANG, Bytes::from(vec![0xf1; len]))
        } else {
            let answer = len as u32;
            (handler::BLOB, Bytes::copy_from_slice(&answer.to_le_bytes()))
        };
        self.trace.record(
            self.ms(),
            format!("flood c{conn}/{side}: {count} x h{handler} {len}B"),
        );
        for _ in 0..count {
            // Stops where the send queue is full.
            if !self.send_request((conn, side), handler, None, payload.clone(), Some(deadline)) {
                return;
            }
        }
    }

    /// A request and its cancel in one batch (nothing is written between
    /// them): the request must never be served.
    fn op_request_and_cancel(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let payload = self.payload();
        let Some(link) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.links[side].as_mut())
        else {
            return;
        };
        if let Ok(mux) = link.request(now, handler::ECHO, None, payload, None) {
            link.cancel(now, mux);
            self.app.cancelled_unsent.insert((conn, 1 - side, mux.id));
            self.trace
                .record(self.ms(), format!("request+cancel c{conn}/{side} {mux:?}"));
        }
    }

    fn op_stream(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let (handler, kind) = match self.rng.random_range(0..3) {
            0 => (handler::STREAM_ECHO, StreamKind::Echo),
            1 => (
                handler::PRODUCER,
                StreamKind::Producer(self.rng.random_range(0..40)),
            ),
            _ => (handler::SINK, StreamKind::Sink),
        };
        let messages = match kind {
            StreamKind::Producer(_) => 0,
            _ => self.rng.random_range(0..30),
        };
        let plan: VecDeque<Bytes> = (0..messages).map(|_| self.payload()).collect();
        let payload = match kind {
            StreamKind::Producer(n) => Bytes::copy_from_slice(&n.to_le_bytes()),
            _ => self.payload(),
        };
        let deadline = match self.rng.random_range(0..3) {
            0 => Some(now + Duration::from_millis(self.rng.random_range(1..30_000))),
            _ => None,
        };
        let consumer = match self.rng.random_range(0..10) {
            0..=5 => Consumer::Fast,
            6..=8 => Consumer::Slow,
            _ => Consumer::Stopped,
        };
        let opts = StreamOpts {
            deadline,
            window: self.swarm.caller_window,
            input: !matches!(kind, StreamKind::Producer(_)),
        };
        let Some(link) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.links[side].as_mut())
        else {
            return;
        };
        let Ok(mux) = link.open_stream(now, handler, None, payload, opts) else {
            return;
        };
        let stream = CallerStream {
            kind,
            plan,
            sent: Vec::new(),
            received: Vec::new(),
            consumer,
            unconsumed: 0,
            window: opts.window,
            deadline,
            finished: false,
        };
        let key: Key = (conn, side, mux);
        self.app.streams.insert(key, stream);
        self.pump_caller(key);
    }

    fn op_cancel(&mut self, conn: u64, side: usize) {
        let now = self.now;
        let on = |k: &&Key| k.0 == conn && k.1 == side;
        let mut open: Vec<Key> = self.app.requests.keys().filter(on).copied().collect();
        open.extend(self.app.streams.keys().filter(on).copied());
        open.extend(self.app.served_requests.keys().filter(on).copied());
        if open.is_empty() {
            return;
        }
        let key = open[self.rng.random_range(0..open.len())];
        self.app.requests.remove(&key);
        self.app.streams.remove(&key);
        self.app.served_requests.remove(&key);
        if let Some(link) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.links[side].as_mut())
        {
            link.cancel(now, key.2);
        }
        self.trace.record(self.ms(), format!("cancel {key:?}"));
    }

    /// One fault, and when the next comes.
    pub(super) fn inject_fault(&mut self) {
        let now = self.now;
        let gap = Duration::from_millis(self.rng.random_range(500..8_000));
        self.next_fault = Some(now + gap);
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.random_range(0..ids.len())];
        let pong_timeout = self.swarm.link.pong_timeout;
        match self.rng.random_range(0..100) {
            0..=17 => self.kill_conn(id),
            20..=29 => {
                let n = self.rng.random_range(0..self.nodes.len());
                if self.nodes[n].alive {
                    let down = Duration::from_millis(self.rng.random_range(100..5_000));
                    self.stop_node(n, down);
                }
            }
            30..=44 => {
                // Partitions shorter and longer than the pong timeout.
                let len = pong_timeout.mul_f64(self.rng.random_range(0.05..1.5));
                self.trace
                    .record(self.ms(), format!("partition conn {id} for {len:?}"));
                if let Some(c) = self.conns.get_mut(&id) {
                    c.blocked_until = Some(now + len);
                    c.disturbed = true;
                }
            }
            45..=49 => self.stall_server(),
            50..=69 => {
                let side = self.rng.random_range(0..2);
                let len = Duration::from_millis(self.rng.random_range(100..8_000));
                self.trace.record(
                    self.ms(),
                    format!("stall conn {id} side {side} for {len:?}"),
                );
                if let Some(c) = self.conns.get_mut(&id) {
                    c.stalled_until[side] = Some(now + len);
                    c.disturbed = true;
                }
            }
            70..=84 => {
                let side = self.rng.random_range(0..2);
                let extra = Duration::from_millis(self.rng.random_range(1..2_000));
                self.trace.record(
                    self.ms(),
                    format!("delay conn {id} side {side} by {extra:?}"),
                );
                if let Some(c) = self.conns.get_mut(&id) {
                    for (at, _) in c.pipes[side].chunks.iter_mut() {
                        *at += extra;
                    }
                    c.disturbed = true;
                }
            }
            85..=94 => self.corrupt(id),
            95..=97 => self.inject_forgery(super::forgery::Forgery::ReplayToAcceptor),
            _ => self.inject_forgery(super::forgery::Forgery::ImpostorAcceptor),
        }
    }

    /// Stalls the socket of a side that serves a stream for most of a
    /// stream ping interval: streams end and pings arrive while its output
    /// waits. Short enough that no stream ping can time out (the silence a
    /// caller sees is at most a ping interval before the stall, the stall,
    /// and the round trip: under the 2-interval timeout), and shorter than
    /// the write-stall timeout.
    fn stall_server(&mut self) {
        let serving: Vec<(u64, usize)> =
            self.app.served_streams.keys().map(|k| (k.0, k.1)).collect();
        if serving.is_empty() {
            return;
        }
        let (id, side) = serving[self.rng.random_range(0..serving.len())];
        let link = &self.swarm.link;
        let round_trip = self.swarm.latency.1 * 2;
        let len = link
            .stream_ping_interval
            .mul_f64(0.8)
            .saturating_sub(round_trip)
            .min(link.write_stall_timeout.mul_f64(0.9));
        self.trace.record(
            self.ms(),
            format!("stall serving conn {id} side {side} for {len:?}"),
        );
        if let Some(c) = self.conns.get_mut(&id) {
            let until = self.now + len;
            if c.stalled_until[side].is_some() {
                // Already stalled by another fault: leave it be.
                return;
            }
            c.stalled_until[side] = Some(until);
        }
    }

    /// Flips one bit of a chunk in flight.
    fn corrupt(&mut self, id: u64) {
        let side = self.rng.random_range(0..2);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let data: Vec<usize> = conn.pipes[side]
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| matches!(c, super::net::Chunk::Data(b) if !b.is_empty()))
            .map(|(i, _)| i)
            .collect();
        if data.is_empty() {
            return;
        }
        let index = data[self.rng.random_range(0..data.len())];
        if let (_, super::net::Chunk::Data(bytes)) = &mut conn.pipes[side].chunks[index] {
            let mut copy = bytes.to_vec();
            let at = self.rng.random_range(0..copy.len());
            copy[at] ^= 1 << self.rng.random_range(0..8);
            *bytes = Bytes::from(copy);
        }
        self.trace
            .record(self.ms(), format!("corrupt conn {id} side {side}"));
    }
}
