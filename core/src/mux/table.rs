//! The table of open exchanges and their per-exchange state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::{CreditWindow, MuxId, Origin, SendCredits};

/// A hasher for mux ids: they are counters, so a multiplicative hash
/// spreads them well and costs one multiplication (SipHash costs ~20 ns).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n.into());
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A single request we sent and whose response we await.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutRequest {
    /// When the caller gives up.
    pub deadline: Instant,
    /// The entry in the timer queue.
    pub timer: Option<Instant>,
    /// The request's place in the send queue (while it waits there, a
    /// cancel withdraws it instead of overtaking it).
    pub ticket: Option<u64>,
}

/// A single request the peer sent and we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InRequest {
    /// When the answer is no longer wanted.
    pub deadline: Instant,
    /// The request's sequence number, echoed in the response.
    pub seq: u32,
    /// The entry in the timer queue.
    pub timer: Option<Instant>,
}

/// Our sending direction of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sending {
    /// Messages may be sent (when credits allow).
    Open,
    /// The application finished; the EOF waits for a credit.
    EofPending,
    /// The EOF went out, or this direction never existed.
    Done,
}

/// A stream, in either role.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Sequence number of our next ordered message on this mux.
    pub send_seq: u32,
    /// Sequence number expected of the peer's next ordered message.
    pub recv_seq: u32,
    /// Our credits to send.
    pub send: SendCredits,
    /// The peer's announced window (bounds the credits we hold).
    pub send_window: u32,
    /// What the peer may send us.
    pub recv: CreditWindow,
    /// Our direction.
    pub sending: Sending,
    /// The peer's direction still carries messages.
    pub receiving: bool,
    /// Caller: the server acknowledged the stream.
    pub acked: bool,
    /// When the stream times out.
    pub deadline: Option<Instant>,
    /// Caller: last sign of life from the server (pong or message).
    /// Server: last ping from the caller.
    pub last_seen: Instant,
    /// Caller: next ping. Server: next liveness check.
    pub next_tick: Option<Instant>,
    /// The entry in the timer queue.
    pub timer: Option<Instant>,
    /// The send-queue place of the last ordered message we queued on
    /// this stream (control messages about the stream go behind it while
    /// it waits).
    pub last_ticket: Option<u64>,
    /// Served stream: the application is done with it (it reads no more
    /// input); it goes once its EOF is out.
    pub released: bool,
}

impl StreamState {
    /// The earliest time this stream needs attention.
    pub fn wake(&self) -> Option<Instant> {
        match (self.deadline, self.next_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the application still expects to hear how this stream
    /// ends: always for our streams; for a stream we serve, while it may
    /// still send, or still reads input it has not released.
    pub fn end_is_reported(&self, mux: MuxId) -> bool {
        mux.origin == Origin::Local
            || self.sending == Sending::Open
            || (self.receiving && !self.released)
    }

    /// Takes the next sequence number for an ordered message we send
    /// (open, ack, data, EOF). Control messages (credits, pings,
    /// disconnects) may overtake data, so they carry [`Self::send_seq`]
    /// without taking a number and are not checked.
    pub fn next_seq(&mut self) -> u32 {
        let seq = self.send_seq;
        self.send_seq = self.send_seq.wrapping_add(1);
        seq
    }

    /// Checks and advances the expected sequence number of the peer.
    pub fn check_seq(&mut self, seq: u32) -> Result<(), (u32, u32)> {
        if seq != self.recv_seq {
            return Err((self.recv_seq, seq));
        }
        self.recv_seq = self.recv_seq.wrapping_add(1);
        Ok(())
    }
}

/// Every open exchange of a link.
#[derive(Debug, Default)]
pub struct MuxTable {
    /// Requests we sent.
    pub out_requests: Map<u64, OutRequest>,
    /// Requests we serve.
    pub in_requests: Map<u64, InRequest>,
    /// Streams in both roles (add and remove them with
    /// [`insert_stream`](Self::insert_stream) and
    /// [`remove_stream`](Self::remove_stream), which keep counts).
    pub streams: Map<MuxId, StreamState>,
    local_streams: usize,
    next_id: u64,
}

impl MuxTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh id for a mux we open: never 0, never one in use.
    pub fn allocate_id(&mut self) -> u64 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            if id != 0
                && !self.out_requests.contains_key(&id)
                && !self.streams.contains_key(&MuxId::local(id))
            {
                return id;
            }
        }
    }

    /// Adds a stream.
    pub fn insert_stream(&mut self, mux: MuxId, state: StreamState) {
        if self.streams.insert(mux, state).is_none() && mux.origin == Origin::Local {
            self.local_streams += 1;
        }
    }

    /// Removes a stream.
    pub fn remove_stream(&mut self, mux: MuxId) -> Option<StreamState> {
        let state = self.streams.remove(&mux)?;
        if mux.origin == Origin::Local {
            self.local_streams -= 1;
        }
        Some(state)
    }

    /// Exchanges we opened and that are still open.
    pub fn open_local(&self) -> usize {
        self.out_requests.len() + self.local_streams
    }

    /// Streams the peer opened and that are still open.
    pub fn open_remote_streams(&self) -> usize {
        self.streams.len() - self.local_streams
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.out_requests.is_empty() && self.in_requests.is_empty() && self.streams.is_empty()
    }

    /// Total number of open exchanges.
    pub fn len(&self) -> usize {
        self.out_requests.len() + self.in_requests.len() + self.streams.len()
    }
}
