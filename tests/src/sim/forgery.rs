//! Forged and replayed link set-ups (faults): an attacker on the network
//! records one pair's set-up and replays it, to the acceptor on a new
//! connection, or to the dialer as an impostor acceptor that answers the
//! WebSocket handshake correctly (that needs no secret). Neither may ever
//! bring a link up, nor disturb the pair's live link.

use bytes::Bytes;
use gridmux_core::link::Link;
use gridmux_core::ws::{accept_key, Transmit};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::net::{Chunk, Conn};
use super::world::World;

/// Bytes kept of each side of a connection for replays.
pub(super) const RECORD_LIMIT: usize = 4096;
/// Recorded set-ups kept for replays.
const KEPT: usize = 8;

/// What an attacker's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// A recorded dialer's bytes sent to the acceptor again (side 0 is
    /// the attacker).
    ReplayToAcceptor,
    /// A recorded acceptor's answers sent to a dialer (side 1 is the
    /// attacker).
    ImpostorAcceptor,
}

/// One pair's recorded set-up.
#[derive(Debug, Clone)]
pub struct RecordedSetup {
    /// Node indices: dialer, acceptor.
    pub nodes: [usize; 2],
    /// What each side wrote, from the start (at most 4 KiB).
    pub bytes: [Bytes; 2],
}

impl World {
    /// Keeps the set-up of connection `id`, whose dialer just connected.
    pub(super) fn record_setup(&mut self, id: u64) {
        let Some(conn) = self.conns.get(&id).filter(|c| c.forged.is_none()) else {
            return;
        };
        let setup = RecordedSetup {
            nodes: conn.nodes,
            bytes: conn.recorded.clone().map(Bytes::from),
        };
        if self.setups.len() == KEPT {
            self.setups.pop_front();
        }
        self.setups.push_back(setup);
    }

    /// Replays a recorded set-up at one of its ends.
    pub(super) fn inject_forgery(&mut self, kind: Forgery) {
        if self.setups.is_empty() {
            return;
        }
        let setup = self.setups[self.rng.random_range(0..self.setups.len())].clone();
        let [d, a] = setup.nodes;
        let victim = match kind {
            Forgery::ReplayToAcceptor => a,
            Forgery::ImpostorAcceptor => d,
        };
        if !self.nodes[victim].alive {
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let (now, wall) = (self.now, self.wall());
        let mut rng = SmallRng::seed_from_u64(self.rng.random());
        let (link, side, answer) = match kind {
            Forgery::ReplayToAcceptor => {
                let config = self.nodes[a].config.clone();
                let link = Link::accept(config, now, wall, &mut rng);
                (link, 1, setup.bytes[0].clone())
            }
            Forgery::ImpostorAcceptor => {
                let config = self.nodes[d].config.clone();
                let remote = self.swarm.nodes[a].clone();
                let mut link = Link::dial(config, remote, now, wall, Box::new(rng));
                let mut out = Transmit::new();
                while link.poll_transmit(now, &mut out) {}
                let Some(answer) = impostor_answer(&out.to_vec(), &setup.bytes[1]) else {
                    return;
                };
                (link, 0, answer)
            }
        };
        let mut conn = Conn::half(id, [d, a], side, link);
        conn.forged = Some(kind);
        let at = now + self.swarm.latency.0;
        conn.pipes[1 - side].push(at, Chunk::Data(answer));
        self.conns.insert(id, Box::new(conn));
        self.trace
            .record(self.ms(), format!("forgery {kind:?} conn {id} {d}->{a}"));
        self.drain(id, side);
    }
}

/// A `101` that answers `request` correctly, with the recorded acceptor's
/// nonce and name, followed by the recorded acceptor's frames.
fn impostor_answer(request: &[u8], recorded: &[u8]) -> Option<Bytes> {
    let request = std::str::from_utf8(request).ok()?;
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))?;
    let head_end = recorded.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&recorded[..head_end]).ok()?;
    let copied: String = head
        .lines()
        .filter(|l| l.starts_with("X-Gridmux-"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{copied}\r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes();
    answer.extend_from_slice(&recorded[head_end..]);
    Some(Bytes::from(answer))
}
