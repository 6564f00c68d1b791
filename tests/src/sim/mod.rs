//! Deterministic simulation of a gridmux cluster (DESIGN §9).
//!
//! 2–8 nodes keep a full mesh of [`Link`](gridmux_core::link::Link)s over
//! simulated byte pipes. A fake clock jumps to the next thing that happens;
//! one `u64` seed drives the configuration, the workload and the faults.
//! After every step the invariants of DESIGN §5.6 are checked; at the end
//! every exchange must have ended, every pair must be connected again and
//! no link may hold state. The same seed always gives the same trace.

mod app;
mod check;
mod forgery;
mod net;
mod observed;
mod streams;
mod swarm;
mod workload;
mod world;

pub use app::{
    handler, Action, App, CallerRequest, CallerStream, Consumer, Key, ServedStream, Stats,
    StreamKind,
};
pub use check::Trace;
pub use forgery::{Forgery, RecordedSetup};
pub use net::{Chunk, Conn, Pipe};
pub use observed::{Counts, Records};
pub use swarm::{Faults, Swarm};
pub use world::{Dial, Node, Stage, World};

/// What one seed produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Hash of the whole trace.
    pub trace_hash: u64,
    /// Events in the trace.
    pub events: u64,
    /// Outcome counters.
    pub stats: Stats,
    /// Number of nodes.
    pub nodes: usize,
}

/// A failed seed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The violated invariant.
    pub what: String,
    /// The last events before the violation.
    pub recent: Vec<String>,
}

/// Runs one seed.
pub fn run(seed: u64, nodes: Option<usize>, faults: Faults) -> Result<Outcome, Failure> {
    let mut world = World::new(seed, nodes, faults);
    let result = world.run();
    let recent = || world.trace.recent().cloned().collect();
    match result {
        Ok(()) => Ok(Outcome {
            trace_hash: world.trace.digest(),
            events: world.trace.events,
            stats: world.app.stats,
            nodes: world.nodes.len(),
        }),
        Err(what) => Err(Failure {
            seed,
            what,
            recent: recent(),
        }),
    }
}

/// Runs one seed twice and checks that the traces agree (invariant 6).
pub fn run_checked(seed: u64, nodes: Option<usize>, faults: Faults) -> Result<Outcome, Failure> {
    let first = run(seed, nodes, faults)?;
    let second = run(seed, nodes, faults)?;
    if first.trace_hash != second.trace_hash || first.events != second.events {
        return Err(Failure {
            seed,
            what: format!(
                "nondeterministic: trace {:016x} ({} events) then {:016x} ({} events)",
                first.trace_hash, first.events, second.trace_hash, second.events
            ),
            recent: Vec::new(),
        });
    }
    Ok(first)
}
