//! The simulated cluster: nodes, connections, a fake clock that jumps to
//! the next thing that happens, and the main loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gridmux_core::cluster::{should_dial, ReconnectSchedule};
use gridmux_core::link::{Link, LinkConfig};
use gridmux_core::ws::Transmit;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::app::{Action, App};
use super::check::Trace;
use super::net::{Chunk, Conn};
use super::swarm::{Faults, Swarm};

/// Most loop iterations of one run (a livelock is a failure).
const MAX_STEPS: u64 = 2_000_000;
/// Simulated time allowed after the workload for everything to settle.
const SETTLE: Duration = Duration::from_secs(900);

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    /// Its link configuration (`local` is its name).
    pub config: Arc<LinkConfig>,
    /// The process runs.
    pub alive: bool,
    /// When a stopped process comes back.
    pub restart_at: Option<Instant>,
    /// Dial state towards each peer this node dials.
    pub dials: BTreeMap<usize, Dial>,
}

/// The dialer's view of one pair.
#[derive(Debug, Clone, Default)]
pub struct Dial {
    /// The current connection.
    pub conn: Option<u64>,
    /// When to start the next attempt.
    pub next_attempt: Option<Instant>,
    /// When the current or last attempt started.
    pub started: Option<Instant>,
    /// Consecutive failed attempts.
    pub failures: u32,
}

/// Whether the workload still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Operations and faults are generated.
    Workload,
    /// No new work; wait for every exchange to end and every pair to be
    /// connected.
    Settle,
}

/// The whole simulated world of one seed.
#[derive(Debug)]
pub struct World {
    /// Drawn configuration.
    pub swarm: Swarm,
    /// The only source of randomness.
    pub rng: SmallRng,
    /// Time zero.
    pub base: Instant,
    /// The fake clock.
    pub now: Instant,
    /// Nodes by index.
    pub nodes: Vec<Node>,
    /// Live connections by id.
    pub conns: BTreeMap<u64, Box<Conn>>,
    pub(super) next_conn: u64,
    /// Recent set-ups an attacker recorded.
    pub(super) setups: std::collections::VecDeque<super::forgery::RecordedSetup>,
    /// The application model.
    pub app: App,
    /// Scheduled application actions.
    pub actions: BTreeMap<(Instant, u64), Action>,
    next_action: u64,
    /// Trace hash and recent events.
    pub trace: Trace,
    /// The first invariant violation.
    pub violation: Option<String>,
    /// Current stage.
    pub stage: Stage,
    pub(super) next_op: Instant,
    pub(super) next_fault: Option<Instant>,
    generation: u64,
    schedule: ReconnectSchedule,
    /// Every node's timing records.
    pub records: Arc<super::Records>,
    /// Requests handed to a handler (`Event::Request`), over all nodes.
    pub delivered_requests: u64,
    /// Streams handed to a handler (`Event::StreamOpened`), over all nodes.
    pub delivered_streams: u64,
}

impl World {
    /// A world for `seed`.
    pub fn new(seed: u64, nodes: Option<usize>, faults: Faults) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let swarm = Swarm::draw(&mut rng, nodes, faults);
        // The one place the simulation reads the real clock: time zero.
        let base = Instant::now();
        let mut world = Self {
            nodes: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            setups: std::collections::VecDeque::new(),
            app: App::default(),
            actions: BTreeMap::new(),
            next_action: 0,
            trace: Trace::default(),
            violation: None,
            stage: Stage::Workload,
            next_op: base,
            next_fault: (faults == Faults::All).then(|| base + Duration::from_secs(2)),
            generation: 0,
            schedule: ReconnectSchedule::default(),
            records: Arc::default(),
            delivered_requests: 0,
            delivered_streams: 0,
            base,
            now: base,
            rng,
            swarm,
        };
        for i in 0..world.swarm.nodes.len() {
            let config = world.node_config(i);
            let dials = (0..world.swarm.nodes.len())
                .filter(|j| should_dial(&world.swarm.nodes[i], &world.swarm.nodes[*j]))
                .map(|j| {
                    let d = Dial {
                        next_attempt: Some(base),
                        ..Dial::default()
                    };
                    (j, d)
                })
                .collect();
            world.nodes.push(Node {
                config,
                alive: true,
                restart_at: None,
                dials,
            });
        }
        world
    }

    fn node_config(&mut self, i: usize) -> Arc<LinkConfig> {
        self.generation += 1;
        let mut config = self.swarm.link.clone();
        config.local = self.swarm.nodes[i].clone();
        config.node_id = [0; 16];
        config.node_id[..8].copy_from_slice(&self.generation.to_be_bytes());
        config.observer = self.records.clone();
        Arc::new(config)
    }

    /// Wall-clock time at `now` (the same on every node).
    pub fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + (self.now - self.base)
    }

    /// Milliseconds since time zero, for the trace.
    pub fn ms(&self) -> u128 {
        (self.now - self.base).as_millis()
    }

    /// Records a violation (the first one wins).
    pub fn violate(&mut self, what: impl Into<String>) {
        if self.violation.is_none() {
            let what = what.into();
            self.trace.record(self.ms(), format!("VIOLATION: {what}"));
            self.violation = Some(what);
        }
    }

    /// Schedules an application action.
    pub fn schedule(&mut self, at: Instant, action: Action) {
        self.next_action += 1;
        self.actions.insert((at, self.next_action), action);
    }

    /// Runs to quiescence or to the first violation.
    pub fn run(&mut self) -> Result<(), String> {
        let workload_end = self.base + self.swarm.workload;
        let hard_end = workload_end + SETTLE;
        for step in 0.. {
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
            if step >= MAX_STEPS {
                return Err(format!("no quiescence after {MAX_STEPS} steps"));
            }
            if self.stage == Stage::Workload && self.now >= workload_end {
                self.begin_settle();
            }
            if self.stage == Stage::Settle && self.quiescent() {
                return self.check_quiescence();
            }
            if self.now > hard_end {
                return Err(format!(
                    "not quiescent {SETTLE:?} after the workload: {}",
                    self.pending_summary()
                ));
            }
            let next = self
                .next_time()
                .unwrap_or(self.now + Duration::from_secs(1));
            self.now = self.now.max(next);
            self.process_due();
            self.check_step(step % 64 == 0);
        }
        Ok(())
    }

    fn begin_settle(&mut self) {
        self.stage = Stage::Settle;
        self.trace.record(self.ms(), "settle".into());
        for conn in self.conns.values_mut() {
            conn.blocked_until = None;
            conn.stalled_until = [None; 2];
        }
        self.release_stopped_consumers();
    }

    /// The earliest time something happens.
    fn next_time(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for conn in self.conns.values() {
            for s in 0..2 {
                let due = conn.pipes[s].next_at();
                consider(due.map(|t| conn.blocked_until.map_or(t, |b| t.max(b))));
                if let Some(link) = &conn.links[s] {
                    consider(link.poll_timeout());
                    consider(conn.stalled_until[s]);
                }
            }
        }
        for node in &self.nodes {
            consider(node.restart_at);
            for dial in node.dials.values() {
                consider(dial.next_attempt);
            }
        }
        consider(self.actions.keys().next().map(|(t, _)| *t));
        if self.stage == Stage::Workload {
            consider(Some(self.next_op));
            consider(self.next_fault);
            consider(Some(self.base + self.swarm.workload));
        }
        next
    }

    fn process_due(&mut self) {
        let now = self.now;
        for n in 0..self.nodes.len() {
            if self.nodes[n].restart_at.is_some_and(|t| t <= now) {
                self.restart_node(n);
            }
        }
        for n in 0..self.nodes.len() {
            let due: Vec<usize> = self.nodes[n]
                .dials
                .iter()
                .filter(|(_, d)| d.next_attempt.is_some_and(|t| t <= now))
                .map(|(p, _)| *p)
                .collect();
            for peer in due {
                self.dial(n, peer);
            }
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in &ids {
            for s in 0..2 {
                self.deliver_due(*id, s);
            }
        }
        for id in &ids {
            for s in 0..2 {
                let Some(conn) = self.conns.get_mut(id) else {
                    continue;
                };
                let mut touched = false;
                if conn.stalled_until[s].is_some_and(|t| t <= now) {
                    conn.stalled_until[s] = None;
                    touched = true;
                }
                if let Some(link) = conn.links[s].as_mut() {
                    if link.poll_timeout().is_some_and(|t| t <= now) {
                        link.handle_timeout(now);
                        touched = true;
                    }
                }
                if touched {
                    self.drain(*id, s);
                }
            }
        }
        while let Some(entry) = self.actions.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let action = entry.remove();
            let (Action::Respond((conn, side, _), _)
            | Action::Consume((conn, side, _))
            | Action::Pump((conn, side, _))) = action;
            self.perform(action);
            self.drain(conn, side);
        }
        if self.stage == Stage::Workload {
            if self.next_op <= now {
                self.workload_op();
                let mean = self.swarm.op_interval.as_secs_f64();
                let gap = -mean * (1.0 - self.rng.random::<f64>()).ln();
                self.next_op = now + Duration::from_secs_f64(gap.min(mean * 20.0));
            }
            if self.next_fault.is_some_and(|t| t <= now) {
                self.inject_fault();
            }
        }
        self.conns.retain(|_, c| !c.is_done());
    }

    /// Starts a dial attempt from `n` to `peer`.
    fn dial(&mut self, n: usize, peer: usize) {
        let now = self.now;
        let dial = self.nodes[n].dials.entry(peer).or_default();
        dial.next_attempt = None;
        dial.started = Some(now);
        if !self.nodes[n].alive {
            return;
        }
        if !self.nodes[peer].alive {
            // Connection refused.
            self.dial_failed(n, peer);
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let wall = self.wall();
        let rng = Box::new(SmallRng::seed_from_u64(self.rng.random()));
        let remote = self.swarm.nodes[peer].clone();
        let mut dialer = Link::dial(self.nodes[n].config.clone(), remote, now, wall, rng);
        let mut acceptor = Link::accept(self.nodes[peer].config.clone(), now, wall, &mut self.rng);
        if let Some(shift) = self.swarm.id_shift {
            dialer.shift_mux_ids(shift);
            acceptor.shift_mux_ids(shift);
        }
        self.conns
            .insert(id, Box::new(Conn::new(id, [n, peer], [dialer, acceptor])));
        self.nodes[n].dials.entry(peer).or_default().conn = Some(id);
        self.trace
            .record(self.ms(), format!("dial {n}->{peer} conn {id}"));
        self.drain(id, 0);
        self.drain(id, 1);
    }

    /// Schedules the next attempt after a failure (1–2 s after the last
    /// attempt started).
    pub(super) fn dial_failed(&mut self, n: usize, peer: usize) {
        let now = self.now;
        let dial = self.nodes[n].dials.entry(peer).or_default();
        dial.conn = None;
        dial.failures += 1;
        let started = dial.started.unwrap_or(now);
        let failures = dial.failures;
        let delay = self.schedule.delay(failures, &mut self.rng);
        let dial = self.nodes[n].dials.entry(peer).or_default();
        dial.next_attempt = Some((started + delay).max(now));
    }

    /// Delivers what is due on the pipe into side `to`, chunk by chunk
    /// (as separate reads), then drains the link once.
    fn deliver_due(&mut self, id: u64, to: usize) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.blocked_until.is_some_and(|b| b > now) {
            return;
        }
        let from = 1 - to;
        let mut delivered = false;
        while conn.pipes[from].next_at().is_some_and(|t| t <= now) {
            let Some((_, chunk)) = conn.pipes[from].chunks.pop_front() else {
                break;
            };
            let Some(link) = conn.links[to].as_mut() else {
                continue;
            };
            delivered = true;
            match chunk {
                Chunk::Data(bytes) => {
                    conn.inbuf[to].extend_from_slice(&bytes);
                    link.handle_input(now, &mut conn.inbuf[to]);
                }
                Chunk::Eof => link.handle_eof(now),
            }
        }
        if delivered {
            self.drain(id, to);
        }
    }

    /// Moves everything a link has to say: output into its pipe, events
    /// into the application, until it is quiet.
    pub(super) fn drain(&mut self, id: u64, side: usize) {
        for _ in 0..10_000 {
            let mut progressed = false;
            let mut events = Vec::new();
            {
                let Some(conn) = self.conns.get_mut(&id) else {
                    return;
                };
                let Some(link) = conn.links[side].as_mut() else {
                    return;
                };
                while let Some(ev) = link.poll_event() {
                    events.push(ev);
                }
            }
            for ev in events {
                progressed = true;
                self.on_event(id, side, ev);
            }
            progressed |= self.write_out(id, side);
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.closed[side] && !conn.eof_sent[side] && conn.stalled_until[side].is_none() {
                conn.eof_sent[side] = true;
                let at = self.now + self.swarm.latency.0;
                conn.pipes[side].push(at, Chunk::Eof);
            }
            if !progressed {
                let stuck = conn.stalled_until[side].is_none()
                    && conn.links[side]
                        .as_ref()
                        .is_some_and(Link::has_pending_output);
                if stuck {
                    self.violate(format!(
                        "c{id}/{side} keeps output that poll_transmit does not yield"
                    ));
                }
                return;
            }
        }
        self.violate(format!("conn {id} side {side} never goes quiet"));
    }

    /// Writes the link's output into its pipe in random chunks.
    fn write_out(&mut self, id: u64, side: usize) -> bool {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        if conn.stalled_until[side].is_some() {
            return false;
        }
        let Some(link) = conn.links[side].as_mut() else {
            return false;
        };
        let mut out = Transmit::new();
        while link.poll_transmit(now, &mut out) {}
        if out.is_empty() {
            return false;
        }
        let bytes = Bytes::from(out.to_vec());
        let record = &mut conn.recorded[side];
        let room = super::forgery::RECORD_LIMIT.saturating_sub(record.len());
        record.extend_from_slice(&bytes[..room.min(bytes.len())]);
        // One latency per write; the reader gets it in random pieces.
        let (lo, hi) = self.swarm.latency;
        let at = now + lo + (hi - lo).mul_f64(self.rng.random::<f64>());
        let mut offset = 0;
        while offset < bytes.len() {
            let len = self
                .rng
                .random_range(1..=self.swarm.max_chunk)
                .min(bytes.len() - offset);
            conn.pipes[side].push(at, Chunk::Data(bytes.slice(offset..offset + len)));
            offset += len;
        }
        true
    }

    /// Stops node `n` abruptly; it restarts later with a new process id.
    pub(super) fn stop_node(&mut self, n: usize, down_for: Duration) {
        self.trace
            .record(self.ms(), format!("stop node {n} for {down_for:?}"));
        let now = self.now;
        self.nodes[n].alive = false;
        self.nodes[n].restart_at = Some(now + down_for);
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(side) = self.conns[&id].side_of(n) else {
                continue;
            };
            self.app.forget(id, side);
            let conn = self.conns.get_mut(&id).unwrap_or_else(|| unreachable!());
            // The crashed process's records of what it was serving die
            // with it.
            if let Some(link) = &conn.links[side] {
                self.delivered_requests -= link.unrecorded_requests() as u64;
                self.delivered_streams -= link.unrecorded_streams() as u64;
            }
            conn.links[side] = None;
            conn.pipes[1 - side].chunks.clear();
            if !conn.eof_sent[side] {
                conn.eof_sent[side] = true;
                conn.closed[side] = true;
                conn.pipes[side].push(now, Chunk::Eof);
            }
        }
        self.actions.retain(|_, a| !a.concerns_node(&self.conns, n));
        for dial in self.nodes[n].dials.values_mut() {
            *dial = Dial::default();
        }
    }

    fn restart_node(&mut self, n: usize) {
        self.trace.record(self.ms(), format!("restart node {n}"));
        let config = self.node_config(n);
        let node = &mut self.nodes[n];
        node.config = config;
        node.alive = true;
        node.restart_at = None;
        for dial in node.dials.values_mut() {
            *dial = Dial {
                next_attempt: Some(self.now),
                ..Dial::default()
            };
        }
    }

    /// Kills connection `id` at once: both sides see EOF, data in flight
    /// is lost.
    pub(super) fn kill_conn(&mut self, id: u64) {
        self.trace.record(self.ms(), format!("kill conn {id}"));
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.blocked_until = None;
        conn.stalled_until = [None; 2];
        for s in 0..2 {
            conn.pipes[s].chunks.clear();
            conn.pipes[s].push(now, Chunk::Eof);
            conn.eof_sent[s] = true;
        }
    }

    /// Whether every exchange has ended and every pair is connected.
    fn quiescent(&self) -> bool {
        if !self.app.is_empty() || !self.actions.is_empty() {
            return false;
        }
        if self.nodes.iter().any(|n| !n.alive) {
            return false;
        }
        let connected_pairs = self
            .conns
            .values()
            .filter(|c| c.connected == [true, true] && !c.closed[0] && !c.closed[1])
            .count();
        let n = self.nodes.len();
        connected_pairs == n * (n - 1) / 2
            && self
                .conns
                .values()
                .flat_map(|c| c.links.iter().flatten())
                .all(|l| l.open_exchanges() == 0)
    }

    fn pending_summary(&self) -> String {
        let connected = self
            .conns
            .values()
            .filter(|c| c.connected == [true, true] && !c.closed[0] && !c.closed[1])
            .count();
        let first = self.app.streams.iter().next().map(|(k, s)| {
            format!(
                " first stream {k:?}: {:?} consumer {:?} window {} sent {} planned {} received {} unconsumed {} finished {}",
                s.kind, s.consumer, s.window, s.sent.len(), s.plan.len(), s.received.len(), s.unconsumed, s.finished
            )
        });
        format!(
            "{}{}; {} actions; {connected} connected links; nodes alive {:?}",
            self.app.summary(),
            first.unwrap_or_default(),
            self.actions.len(),
            self.nodes.iter().map(|n| n.alive).collect::<Vec<_>>()
        )
    }
}
