//! The table of open exchanges and their per-exchange state.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use rand_core::RngCore;
use std::time::Instant;

use super::{CreditWindow, HeldMessages, MuxId, Origin, SendCredits};

/// How a link hashes mux ids: keyed per link, so that a peer cannot
/// choose ids that land in one bucket (ids of the form `i << 32` all did
/// with the plain multiplicative hash: 200,000 lookups went from 24 ms to
/// 14 s). One folded 64×64→128-bit multiply per word, as foldhash does:
/// every input bit reaches the low bits the table indexes by, and without
/// the key a peer cannot predict where an id lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxHashing {
    seed: u64,
    key: u64,
}

impl MuxHashing {
    /// A fresh key from `rng` (the link's; it must be unpredictable).
    pub fn new(rng: &mut dyn RngCore) -> Self {
        Self {
            seed: rng.next_u64(),
            key: rng.next_u64() | 1,
        }
    }
}

impl Default for MuxHashing {
    /// A fixed key: for tables that never hold peer-chosen ids.
    fn default() -> Self {
        Self {
            seed: 0x243f_6a88_85a3_08d3,
            key: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl BuildHasher for MuxHashing {
    type Hasher = MuxHasher;

    fn build_hasher(&self) -> MuxHasher {
        MuxHasher {
            state: self.seed,
            key: self.key,
        }
    }
}

/// The hasher of [`MuxHashing`].
#[derive(Debug, Clone, Copy)]
pub struct MuxHasher {
    state: u64,
    key: u64,
}

/// The low and high halves of a 128-bit product, xored.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for MuxHasher {
    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.key.rotate_left(32) | 1)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.state = folded_multiply(self.state ^ n, self.key);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n.into());
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by mux id.
pub type MuxMap<K, V> = HashMap<K, V, MuxHashing>;
type Map<K, V> = MuxMap<K, V>;

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
    /// The handler called (for records).
    pub handler: u8,
    /// When it was queued.
    pub started: Instant,
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
    /// Bytes of its payload counted against the inbound budget until the
    /// request ends (the handler holds them).
    pub held: usize,
    /// The handler it asked for, and its sub-route (for records).
    pub handler: u8,
    /// The sub-route.
    pub subroute: Option<crate::wire::SubrouteId>,
    /// When it was complete (TTFB and durations count from here).
    pub started: Instant,
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
    /// Our stream: the send-queue place of its open (while it waits there,
    /// abandoning the stream withdraws it and its data instead of sending a
    /// cancel that would overtake them).
    pub open_ticket: Option<u64>,
    /// The peer's messages delivered and not yet consumed (counted against
    /// the link's inbound budget).
    pub held: HeldMessages,
    /// Bytes of the open's payload counted while a stream we serve lives.
    pub held_open: usize,
    /// A stream we serve, with an observer: what its record needs.
    pub observed: Option<Box<StreamStats>>,
}

/// What the record of a served stream counts while it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// The handler.
    pub handler: u8,
    /// Its sub-route.
    pub subroute: Option<crate::wire::SubrouteId>,
    /// When the open was complete.
    pub started: Instant,
    /// When its first output was handed over.
    pub first_out: Option<Instant>,
    /// Its first output waits in the send queue, at this ticket.
    pub first_queued: Option<u64>,
    /// Messages received after the open.
    pub msgs_in: u64,
    /// Messages sent.
    pub msgs_out: u64,
    /// Payload bytes received, the open's included.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
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
    /// Requests we serve (add and remove them with
    /// [`insert_in_request`](Self::insert_in_request) and
    /// [`remove_in_request`](Self::remove_in_request), which keep the byte
    /// count).
    pub in_requests: Map<u64, InRequest>,
    /// Streams in both roles (add and remove them with
    /// [`insert_stream`](Self::insert_stream) and
    /// [`remove_stream`](Self::remove_stream), which keep counts).
    pub streams: Map<MuxId, StreamState>,
    local_streams: usize,
    /// Bytes held for the application: payloads of requests we serve,
    /// stream messages not yet consumed, open payloads of served streams.
    inbound_bytes: usize,
    /// The part of `inbound_bytes` held for exchanges the peer opened.
    served_bytes: usize,
    next_id: u64,
    /// Ids we open are `counter << id_shift` (0 but in simulations of a
    /// peer that chooses ids a weak hash would put in one bucket).
    id_shift: u32,
    hashing: MuxHashing,
}

impl MuxTable {
    /// An empty table with a fixed hash key (peer-chosen ids need
    /// [`with_hashing`](Self::with_hashing)).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table whose maps hash with `hashing`.
    pub fn with_hashing(hashing: MuxHashing) -> Self {
        Self {
            out_requests: Map::with_hasher(hashing),
            in_requests: Map::with_hasher(hashing),
            streams: Map::with_hasher(hashing),
            local_streams: 0,
            inbound_bytes: 0,
            served_bytes: 0,
            next_id: 0,
            id_shift: 0,
            hashing,
        }
    }

    /// The key its maps hash with.
    pub fn hashing(&self) -> MuxHashing {
        self.hashing
    }

    /// Numbers the muxes we open `counter << shift` from now on (tests
    /// and simulations: a peer choosing ids that a weak hash would put in
    /// one bucket).
    #[cfg(feature = "fuzzing")]
    pub fn shift_ids(&mut self, shift: u32) {
        self.id_shift = shift;
    }

    /// Numbers the next muxes we open from 1 again (tests: a peer that
    /// reuses the ids of exchanges that are over).
    #[cfg(feature = "fuzzing")]
    pub fn rewind_ids(&mut self) {
        self.next_id = 0;
    }

    /// A fresh id for a mux we open: never 0, never one in use.
    pub fn allocate_id(&mut self) -> u64 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id.wrapping_shl(self.id_shift);
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
        self.add_held(mux, state.held.total() + state.held_open);
        match self.streams.insert(mux, state) {
            Some(old) => self.sub_held(mux, old.held.total() + old.held_open),
            None if mux.origin == Origin::Local => self.local_streams += 1,
            None => {}
        }
    }

    /// Removes a stream; what it held is released.
    pub fn remove_stream(&mut self, mux: MuxId) -> Option<StreamState> {
        let state = self.streams.remove(&mux)?;
        if mux.origin == Origin::Local {
            self.local_streams -= 1;
        }
        self.sub_held(mux, state.held.total() + state.held_open);
        Some(state)
    }

    /// Adds a request we serve; its `held` bytes count until it goes.
    pub fn insert_in_request(&mut self, id: u64, request: InRequest) {
        let mux = MuxId::remote(id);
        self.add_held(mux, request.held);
        if let Some(old) = self.in_requests.insert(id, request) {
            self.sub_held(mux, old.held);
        }
    }

    /// Removes a request we serve; its bytes are released.
    pub fn remove_in_request(&mut self, id: u64) -> Option<InRequest> {
        let request = self.in_requests.remove(&id)?;
        self.sub_held(MuxId::remote(id), request.held);
        Some(request)
    }

    /// Counts a message of `size` bytes delivered on stream `mux`.
    pub fn hold_message(&mut self, mux: MuxId, size: usize) {
        if let Some(stream) = self.streams.get_mut(&mux) {
            stream.held.push(size);
            self.add_held(mux, size);
        }
    }

    /// The consumer of stream `mux` took `n` messages: releases their bytes.
    pub fn release_messages(&mut self, mux: MuxId, n: u32) {
        if let Some(stream) = self.streams.get_mut(&mux) {
            let freed = stream.held.consume(n);
            self.sub_held(mux, freed);
        }
    }

    /// Counts the open payload of a stream we serve until it goes.
    pub fn hold_open(&mut self, mux: MuxId, size: usize) {
        if let Some(stream) = self.streams.get_mut(&mux) {
            stream.held_open += size;
            self.add_held(mux, size);
        }
    }

    /// The handler of stream `mux` returned: its open payload is no
    /// longer held.
    pub fn release_open(&mut self, mux: MuxId) {
        if let Some(stream) = self.streams.get_mut(&mux) {
            let n = std::mem::take(&mut stream.held_open);
            self.sub_held(mux, n);
        }
    }

    fn add_held(&mut self, mux: MuxId, n: usize) {
        self.inbound_bytes += n;
        if mux.origin == Origin::Remote {
            self.served_bytes += n;
        }
    }

    fn sub_held(&mut self, mux: MuxId, n: usize) {
        self.inbound_bytes -= n;
        if mux.origin == Origin::Remote {
            self.served_bytes -= n;
        }
    }

    /// Bytes held for the application (see the link's inbound budget).
    pub fn inbound_bytes(&self) -> usize {
        self.inbound_bytes
    }

    /// The part of [`inbound_bytes`](Self::inbound_bytes) held for
    /// exchanges the peer opened (what the peer's choices decide; what we
    /// hold of our own streams is bounded by the windows we chose).
    pub fn served_inbound_bytes(&self) -> usize {
        self.served_bytes
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

#[cfg(test)]
mod hashing_tests {
    use std::collections::BTreeSet;
    use std::hash::BuildHasher;

    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    /// Distinct values of `bits` of the hashes of `ids` under `hash`.
    fn spread(ids: &[MuxId], hash: impl Fn(&MuxId) -> u64, bits: impl Fn(u64) -> u64) -> usize {
        ids.iter()
            .map(|id| bits(hash(id)))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Issue 11, item 18: peer-chosen ids of the form `i << 32` must not
    /// land in one bucket. The table indexes by the low bits of the hash
    /// and tags by the top 7; both must spread. The multiplicative hash
    /// used before gave every such id the same low bits.
    #[test]
    #[expect(clippy::disallowed_methods, reason = "any instant will do")]
    fn peer_chosen_id_patterns_spread_over_buckets() {
        let patterns: [Vec<MuxId>; 3] = [
            (0..4096u64).map(|i| MuxId::remote(i << 32)).collect(),
            (0..4096u64).map(|i| MuxId::remote(i << 52)).collect(),
            (0..4096u64).map(MuxId::remote).collect(),
        ];
        let old = |id: &MuxId| {
            let k = 0x9e37_79b9_7f4a_7c15u64;
            (1u64 ^ id.id).wrapping_mul(k).wrapping_mul(k)
        };
        assert_eq!(spread(&patterns[0], old, |h| h & 0xfff), 1, "the old hash");
        let keyed = MuxHashing::new(&mut SmallRng::seed_from_u64(7));
        for ids in &patterns {
            let hash = |id: &MuxId| keyed.hash_one(id);
            assert!(spread(ids, hash, |h| h & 0xfff) > 2_400, "low bits");
            assert!(spread(ids, hash, |h| h >> 57) > 120, "top bits");
        }
        // A table of such ids stays usable (this took seconds before).
        let mut table = MuxTable::with_hashing(keyed);
        for i in 0..20_000u64 {
            table.insert_in_request(
                i << 32,
                InRequest {
                    deadline: Instant::now(),
                    seq: 0,
                    timer: None,
                    held: 0,
                    handler: 1,
                    subroute: None,
                    started: Instant::now(),
                },
            );
        }
        assert_eq!(table.in_requests.len(), 20_000);
    }

    #[test]
    fn keys_differ_per_link() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (a, b) = (MuxHashing::new(&mut rng), MuxHashing::new(&mut rng));
        let id = MuxId::remote(42);
        assert_ne!(a.hash_one(id), b.hash_one(id));
    }
}
