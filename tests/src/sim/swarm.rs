//! Per-seed configuration ("swarm testing"): every seed draws its own
//! cluster size, limits, timings and network behaviour, so that different
//! seeds stress different corners.

use std::sync::Arc;
use std::time::Duration;

use gridmux_core::auth::Keyring;
use gridmux_core::link::{HandlerKind, LinkConfig};
use rand::rngs::SmallRng;
use rand::Rng;

use super::app::handler;

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// A perfect network.
    None,
    /// Kills, restarts, partitions, stalls, delays, corruption.
    All,
}

/// Everything drawn from the seed before the run starts.
#[derive(Debug, Clone)]
pub struct Swarm {
    /// Node names.
    pub nodes: Vec<String>,
    /// Template of every node's link configuration (`local` is replaced).
    pub link: LinkConfig,
    /// Window of the streams callers open.
    pub caller_window: u32,
    /// Largest payload the workload generates.
    pub max_payload: usize,
    /// One-way latency range of a pipe.
    pub latency: (Duration, Duration),
    /// Largest chunk a pipe delivers at once.
    pub max_chunk: usize,
    /// Mean time between workload operations.
    pub op_interval: Duration,
    /// How long the workload runs.
    pub workload: Duration,
    /// Faults to inject.
    pub faults: Faults,
    /// Every node numbers the muxes it opens `counter << shift`: the ids
    /// a peer would choose to put them in one bucket of a weak hash.
    pub id_shift: Option<u32>,
}

impl Swarm {
    /// Draws a configuration.
    pub fn draw(rng: &mut SmallRng, nodes: Option<usize>, faults: Faults) -> Self {
        let n = nodes.unwrap_or_else(|| rng.random_range(2..=8));
        let names: Vec<String> = (0..n).map(|i| format!("10.0.0.{}:9000", i + 1)).collect();
        let auth = Arc::new(Keyring::new(["simulated cluster secret"]).expect("a secret"));
        let mut link = LinkConfig::new("", names.clone(), [0; 16], auth);
        let in_capacity = rng.random_range(0..=8);
        let table = &mut link.handlers;
        for id in [
            handler::ECHO,
            handler::FAIL,
            handler::HANG,
            handler::PANIC,
            handler::BLOB,
        ] {
            table.register(id, None, HandlerKind::Request).unwrap_or(());
        }
        table
            .register(handler::ECHO, Some("sub/route"), HandlerKind::Request)
            .unwrap_or(());
        table
            .register(
                handler::STREAM_ECHO,
                None,
                HandlerKind::Stream {
                    in_capacity: in_capacity.max(1),
                },
            )
            .unwrap_or(());
        table
            .register(
                handler::PRODUCER,
                None,
                HandlerKind::Stream { in_capacity: 0 },
            )
            .unwrap_or(());
        table
            .register(handler::SINK, None, HandlerKind::Stream { in_capacity })
            .unwrap_or(());
        let scale = |rng: &mut SmallRng, base: u64| {
            Duration::from_millis(rng.random_range(base / 4..=base))
        };
        link.ping_interval = scale(rng, 10_000);
        link.pong_timeout = link.ping_interval * 2;
        // Sometimes pings come often enough to arrive while a serving
        // side's socket is briefly unwritable (the `StallServer` fault).
        link.stream_ping_interval = if rng.random_bool(0.25) {
            Duration::from_millis(rng.random_range(1_000..=2_000))
        } else {
            scale(rng, 15_000)
        };
        link.stream_ping_timeout = link.stream_ping_interval * 2;
        link.stream_idle_timeout = link.stream_ping_interval * 4;
        link.default_request_timeout = scale(rng, 60_000);
        link.max_message_size = [1 << 10, 16 << 10, 256 << 10][rng.random_range(0..3)];
        link.sync_ws_limits();
        link.max_served_requests = [2, 16, 10_000][rng.random_range(0..3)];
        link.max_served_streams = [2, 16, 10_000][rng.random_range(0..3)];
        link.max_open_muxes = [4, 64, 100_000][rng.random_range(0..3)];
        link.max_queued_bytes = [64 << 10, 1 << 20, 64 << 20][rng.random_range(0..3)];
        link.max_inbound_bytes = [64 << 10, 1 << 20, 64 << 20][rng.random_range(0..3)];
        link.merge_max_messages = if rng.random_bool(0.2) { 1 } else { 50 };
        let max_payload = (link.max_message_size * 5 / 4).min(300 << 10);
        let lat_lo = Duration::from_micros(rng.random_range(0..2_000));
        let lat_hi = lat_lo + Duration::from_micros(rng.random_range(0..30_000));
        Self {
            nodes: names,
            link,
            caller_window: rng.random_range(1..=16),
            max_payload,
            latency: (lat_lo, lat_hi),
            max_chunk: [7, 1500, 64 << 10][rng.random_range(0..3)],
            op_interval: Duration::from_millis(rng.random_range(5..=200)),
            workload: Duration::from_secs(rng.random_range(5..=40)),
            faults,
            id_shift: rng
                .random_bool(0.3)
                .then(|| [32, 40, 52][rng.random_range(0..3)]),
        }
    }
}
