//! Two links joined in memory, on a fake clock.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;

use super::CountingRng;
use crate::auth::Keyring;
use crate::cluster::should_dial;
use crate::link::{Event, HandlerKind, Link, LinkConfig};
use crate::ws::Transmit;

/// A dialer (`links[0]`) and an acceptor (`links[1]`) joined by perfect
/// in-memory pipes, with a fake clock. Events are collected per side.
/// Model: quinn-proto's test `Pair`.
#[derive(Debug)]
pub struct LinkPair {
    /// The fake clock.
    pub now: Instant,
    /// Wall-clock time at `origin`.
    pub wall: SystemTime,
    origin: Instant,
    /// `[dialer, acceptor]`.
    pub links: [Link; 2],
    /// Events polled from each side, oldest first.
    pub events: [Vec<Event>; 2],
    inbuf: [BytesMut; 2],
    /// Bytes moved from each side to the other.
    pub moved: [u64; 2],
}

impl LinkPair {
    /// Configurations for the two nodes `a` and `b`: the test handlers of
    /// [`LinkPair::handlers`], then `tweak`. Returned as `[dialer, acceptor]`.
    pub fn configs(a: &str, b: &str, tweak: impl Fn(&mut LinkConfig)) -> [Arc<LinkConfig>; 2] {
        let (d, acc) = if should_dial(a, b) { (a, b) } else { (b, a) };
        let peers = vec![d.to_owned(), acc.to_owned()];
        let auth = Arc::new(Keyring::new(["pair secret"]).expect("a non-empty secret"));
        [d, acc].map(|me| {
            let mut c = LinkConfig::new(me, peers.clone(), [me.len() as u8; 16], auth.clone());
            Self::handlers(&mut c);
            tweak(&mut c);
            Arc::new(c)
        })
    }

    /// Registers the handlers used by pair tests: requests 1–4 and 78,
    /// streams 10 (input window 4), 11 (no input), 12 (window 1), and
    /// request 78 under sub-route `"subroute/1"`.
    pub fn handlers(c: &mut LinkConfig) {
        let t = &mut c.handlers;
        for id in [1, 2, 3, 4, 78] {
            let _ = t.register(id, None, HandlerKind::Request);
        }
        let _ = t.register(78, Some("subroute/1"), HandlerKind::Request);
        let _ = t.register(10, None, HandlerKind::Stream { in_capacity: 4 });
        let _ = t.register(11, None, HandlerKind::Stream { in_capacity: 0 });
        let _ = t.register(12, None, HandlerKind::Stream { in_capacity: 1 });
        let _ = t.register(
            78,
            Some("subroute/1"),
            HandlerKind::Stream { in_capacity: 1 },
        );
    }

    /// A pair whose handshake has not started; `origin` is time zero.
    pub fn new(configs: [Arc<LinkConfig>; 2], origin: Instant, seed: u64) -> Self {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let [d, a] = configs;
        let remote = a.local.clone();
        let dialer = Link::dial(d, remote, origin, wall, Box::new(CountingRng(seed)));
        let acceptor = Link::accept(a, origin, wall, &mut CountingRng(seed ^ 0x5eed));
        Self {
            now: origin,
            wall,
            origin,
            links: [dialer, acceptor],
            events: [Vec::new(), Vec::new()],
            inbuf: [BytesMut::new(), BytesMut::new()],
            moved: [0; 2],
        }
    }

    /// A pair of nodes `"a:1"` and `"b:1"` with `tweak`ed configurations,
    /// connected; the `Connected` events are consumed.
    pub fn connected(origin: Instant, tweak: impl Fn(&mut LinkConfig)) -> Self {
        let mut pair = Self::new(Self::configs("a:1", "b:1", tweak), origin, 1);
        pair.drive();
        for side in 0..2 {
            let first = pair.events[side].first();
            assert!(
                matches!(first, Some(Event::Connected { .. })),
                "side {side} did not connect: {first:?}"
            );
            pair.events[side].remove(0);
        }
        pair
    }

    /// Time since the pair was created.
    pub fn elapsed(&self) -> Duration {
        self.now - self.origin
    }

    /// Polls side `side`'s events into `events[side]`.
    pub fn poll_events(&mut self, side: usize) {
        while let Some(e) = self.links[side].poll_event() {
            self.events[side].push(e);
        }
    }

    /// Takes the events of `side` collected so far.
    pub fn take_events(&mut self, side: usize) -> Vec<Event> {
        self.poll_events(side);
        std::mem::take(&mut self.events[side])
    }

    /// Moves everything `from` has to write into the other side in one
    /// read. Returns the bytes moved.
    pub fn transfer(&mut self, from: usize) -> usize {
        let to = 1 - from;
        let mut out = Transmit::new();
        while self.links[from].poll_transmit(self.now, &mut out) {}
        self.poll_events(from);
        if out.is_empty() {
            return 0;
        }
        for chunk in out.chunks() {
            self.inbuf[to].extend_from_slice(chunk);
        }
        self.links[to].handle_input(self.now, &mut self.inbuf[to]);
        self.poll_events(to);
        self.moved[from] += out.len() as u64;
        out.len()
    }

    /// Moves bytes both ways until neither side has anything to send.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            if self.transfer(0) + self.transfer(1) == 0 {
                return;
            }
        }
        panic!("the pair never goes quiet");
    }

    /// Delivers what each side wrote, but only up to `from`'s writes: the
    /// other direction holds its bytes (a stalled or silent peer).
    pub fn drive_one_way(&mut self, from: usize) {
        for _ in 0..10_000 {
            if self.transfer(from) == 0 {
                return;
            }
        }
    }

    /// Advances the clock by `by`, running every timer that falls in the
    /// interval at its time and driving the pair after each.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..100_000 {
            let next = self
                .links
                .iter()
                .filter_map(Link::poll_timeout)
                .filter(|t| *t <= until)
                .min();
            let Some(next) = next else {
                break;
            };
            self.now = self.now.max(next);
            for side in 0..2 {
                if self.links[side]
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.links[side].handle_timeout(self.now);
                }
            }
            self.drive();
        }
        self.now = until;
        self.drive();
    }

    /// Closes the connection under both links (TCP reset): each sees EOF.
    pub fn kill(&mut self) {
        for side in 0..2 {
            self.links[side].handle_eof(self.now);
            let mut out = Transmit::new();
            while self.links[side].poll_transmit(self.now, &mut out) {}
            self.poll_events(side);
        }
    }
}
