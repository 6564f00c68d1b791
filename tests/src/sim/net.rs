//! Simulated TCP connections: two links joined by a pipe each way.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gridmux_core::link::Link;

use super::forgery::Forgery;

/// What travels through a pipe.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes, delivered in order.
    Data(Bytes),
    /// The writer closed the connection.
    Eof,
}

/// One direction of a connection: chunks with their delivery times.
#[derive(Debug, Default)]
pub struct Pipe {
    /// In order of delivery (times never decrease).
    pub chunks: VecDeque<(Instant, Chunk)>,
}

impl Pipe {
    /// Queues a chunk no earlier than the one before it.
    pub fn push(&mut self, at: Instant, chunk: Chunk) {
        let at = self.chunks.back().map_or(at, |(last, _)| at.max(*last));
        self.chunks.push_back((at, chunk));
    }

    /// When the next chunk is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.chunks.front().map(|(at, _)| *at)
    }
}

/// A TCP connection between a dialer (side 0) and an acceptor (side 1).
#[derive(Debug)]
pub struct Conn {
    /// Unique in a run.
    pub id: u64,
    /// Node index of each side.
    pub nodes: [usize; 2],
    /// The links; `None` once that side's process died.
    pub links: [Option<Link>; 2],
    /// `pipes[s]` carries what side `s` writes.
    pub pipes: [Pipe; 2],
    /// Bytes read by each side and not consumed yet.
    pub inbuf: [BytesMut; 2],
    /// The side's link reported `Closed` (its socket closes after the
    /// last write).
    pub closed: [bool; 2],
    /// The side wrote its EOF.
    pub eof_sent: [bool; 2],
    /// The side reported `Connected`.
    pub connected: [bool; 2],
    /// The side cannot write until then.
    pub stalled_until: [Option<Instant>; 2],
    /// Nothing is delivered either way until then (a partition).
    pub blocked_until: Option<Instant>,
    /// What each side wrote first (at most `RECORD_LIMIT` bytes), for
    /// replays.
    pub recorded: [Vec<u8>; 2],
    /// Set when one side is an attacker replaying a recorded set-up.
    pub forged: Option<Forgery>,
    /// A partition, a long stall or a delay hit the connection: a stream
    /// ping may then time out legitimately.
    pub disturbed: bool,
}

impl Conn {
    /// A fresh connection.
    pub fn new(id: u64, nodes: [usize; 2], links: [Link; 2]) -> Self {
        let [a, b] = links;
        Self {
            links: [Some(a), Some(b)],
            ..Self::new_empty(id, nodes)
        }
    }

    /// A connection with a link on `side` only (the other end is an
    /// attacker that writes into the pipe directly).
    pub fn half(id: u64, nodes: [usize; 2], side: usize, link: Link) -> Self {
        let mut links = [None, None];
        links[side] = Some(link);
        Self {
            links,
            ..Self::new_empty(id, nodes)
        }
    }

    fn new_empty(id: u64, nodes: [usize; 2]) -> Self {
        Self {
            id,
            nodes,
            links: [None, None],
            pipes: [Pipe::default(), Pipe::default()],
            inbuf: [BytesMut::new(), BytesMut::new()],
            closed: [false; 2],
            eof_sent: [false; 2],
            connected: [false; 2],
            stalled_until: [None; 2],
            blocked_until: None,
            recorded: [Vec::new(), Vec::new()],
            forged: None,
            disturbed: false,
        }
    }

    /// Whether both sides are finished with this connection.
    pub fn is_done(&self) -> bool {
        (0..2).all(|s| self.links[s].is_none() || self.closed[s] && self.eof_sent[s])
            && self.pipes.iter().all(|p| p.chunks.is_empty())
    }

    /// The side of node `n`, if it is an end of this connection.
    pub fn side_of(&self, n: usize) -> Option<usize> {
        self.nodes.iter().position(|x| *x == n)
    }
}
