//! `gridmux bench`, the main job: an in-process cluster on loopback runs
//! every plane of gridmux (unary and typed requests, streams, the file
//! plane, WebSocket echo, a cold mesh) beside same-run baselines (raw TCP
//! ping-pong, pipelined and bulk) and the peers a user would otherwise
//! pick (yamux, tokio-tungstenite, fastwebsockets), and reports each row
//! with its throughput, latency quantiles, TTFB from the nodes' own
//! metrics, CPU per GiB and errors.
//!
//! ```no_run
//! use gridmux_bench::{run, Options, RuntimeKind, Workload};
//!
//! let options = Options {
//!     only: Some(Workload::Unary),
//!     quick: true,
//!     ..Options::new(RuntimeKind::Tokio)
//! };
//! let report = run(&options);
//! println!("{}", report.table());
//! assert_eq!(report.errors(), 0);
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gridmux::runtime::{Runtime, SmolRuntime, TokioRuntime};
use gridmux::CancelSignal;

pub mod builtin;
mod cluster;
mod files;
mod measure;
mod mesh;
mod overhead;
mod peers;
pub mod pki;
mod progress;
mod raw_tcp;
mod report;
mod streams;
mod sys;
mod tls;
mod unary;
mod websocket;
mod yamux_peer;

pub use report::{Report, Row};

use measure::Window;
use progress::{Live, Progress};

/// The async runtime the cluster runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// tokio, multi-threaded.
    Tokio,
    /// smol, an executor thread per core.
    Smol,
}

impl RuntimeKind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tokio => "tokio",
            Self::Smol => "smol",
        }
    }
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Unary and typed requests, with raw TCP and yamux.
    Unary,
    /// Streams one-way and two-way, with raw TCP bulk.
    Streams,
    /// The file plane (sendfile, copy, splice), with raw TCP bulk.
    Files,
    /// WebSocket echo, with tokio-tungstenite and fastwebsockets.
    Websocket,
    /// A mesh linking up from cold, and its memory per link.
    Mesh,
    /// The metrics' cost (not in a full run): off and on, alternating.
    Metrics,
    /// TLS against plaintext: unary, a stream, a file fetch.
    Tls,
}

impl Workload {
    /// Every workload of a full run, in its order.
    /// The mesh goes first: its memory is measured as the RSS the cluster
    /// adds, which memory freed by earlier rows would hide.
    pub const ALL: [Self; 6] = [
        Self::Mesh,
        Self::Unary,
        Self::Streams,
        Self::Files,
        Self::Websocket,
        Self::Tls,
    ];

    /// The workload named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::Metrics])
            .find(|w| w.as_str() == name)
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::Streams => "streams",
            Self::Files => "files",
            Self::Websocket => "websocket",
            Self::Mesh => "mesh",
            Self::Metrics => "metrics",
            Self::Tls => "tls",
        }
    }

    fn planned(self, options: &Options) -> usize {
        match self {
            Self::Unary => unary::planned(options.quick),
            Self::Streams => streams::planned(options.quick),
            Self::Files => files::planned(),
            Self::Websocket => websocket::planned(options.quick),
            Self::Mesh => mesh::planned(),
            Self::Metrics => overhead::planned(),
            Self::Tls => tls::planned(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The runtime.
    pub runtime: RuntimeKind,
    /// Nodes in the cluster (at least 2).
    pub nodes: usize,
    /// Counted time per row (after a warm-up).
    pub duration: Duration,
    /// One workload only.
    pub only: Option<Workload>,
    /// Nodes of the mesh workload (default 32; 8 with `quick`).
    pub mesh_nodes: Option<usize>,
    /// A short run (fewer rows, shorter windows).
    pub quick: bool,
    /// Ends the run early; the rows measured so far are reported.
    pub stop: CancelSignal,
    /// Draw progress bars (on standard error, when it is a terminal).
    pub progress: bool,
}

impl Options {
    /// The defaults: 3 nodes, 1 s per row, every workload.
    pub fn new(runtime: RuntimeKind) -> Self {
        Self {
            runtime,
            nodes: 3,
            duration: Duration::from_secs(1),
            only: None,
            mesh_nodes: None,
            quick: false,
            stop: CancelSignal::new(),
            progress: false,
        }
    }

    fn mesh_nodes(&self) -> usize {
        let default = if self.quick { 8 } else { 32 };
        self.mesh_nodes.unwrap_or(default).max(2)
    }

    fn window(&self) -> Window {
        if self.quick {
            Window {
                warm_up: Duration::from_millis(150),
                duration: self.duration.min(Duration::from_millis(400)),
            }
        } else {
            Window {
                warm_up: Duration::from_millis(300),
                duration: self.duration,
            }
        }
    }
}

/// What a workload runs with.
pub(crate) struct Ctx<'a> {
    pub(crate) rt: Arc<dyn Runtime>,
    pub(crate) kind: RuntimeKind,
    pub(crate) nodes: usize,
    pub(crate) quick: bool,
    pub(crate) window: Window,
    pub(crate) stop: CancelSignal,
    pub(crate) live: Live,
    pub(crate) rows: &'a mut Vec<Row>,
}

impl Ctx<'_> {
    /// Whether the run was stopped.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Adds a row; returns a copy to compare later rows with. A row cut
    /// short by a stop is marked so; one that measured nothing before the
    /// stop is left out.
    pub(crate) fn push(&mut self, mut row: Row) -> Row {
        self.live.row_done();
        if self.stopped() {
            row.partial = true;
            if row.ops_per_s <= 0.0 && row.errors == 0 {
                return row;
            }
        }
        self.rows.push(row.clone());
        row
    }
}

/// Runs the benchmark and reports what it measured (all of it, or what
/// was measured before `stop` or a failure; a failure ends its workload
/// and is reported as a row with an error).
pub fn run(options: &Options) -> Report {
    let workloads: Vec<Workload> = match options.only {
        Some(w) => vec![w],
        None => Workload::ALL.to_vec(),
    };
    let progress = Progress::new(options.progress);
    let mut rows = Vec::new();
    let rows_ref = &mut rows;
    let progress = &progress;
    block_on(options.runtime, |rt| async move {
        for workload in workloads {
            if options.stop.is_cancelled() {
                break;
            }
            let live = progress.workload(workload.as_str(), workload.planned(options));
            let mut cx = Ctx {
                rt: rt.clone(),
                kind: options.runtime,
                nodes: options.nodes.max(2),
                quick: options.quick,
                window: options.window(),
                stop: options.stop.clone(),
                live,
                rows: &mut *rows_ref,
            };
            let result = match workload {
                Workload::Unary => unary::run(&mut cx).await,
                Workload::Streams => streams::run(&mut cx).await,
                Workload::Files => files::run(&mut cx).await,
                Workload::Websocket => websocket::run(&mut cx).await,
                Workload::Mesh => mesh::run(&mut cx, options.mesh_nodes()).await,
                Workload::Metrics => overhead::run(&mut cx).await,
                Workload::Tls => tls::run(&mut cx).await,
            };
            cx.live.finish();
            if let Err(e) = result {
                rows_ref.push(failed(workload, e));
            }
        }
    });
    Report {
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        runtime: options.runtime.as_str().to_owned(),
        nodes: if options.only == Some(Workload::Mesh) {
            options.mesh_nodes()
        } else {
            options.nodes.max(2)
        },
        machine: machine(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        duration_s: options.window().duration.as_secs_f64(),
        quick: options.quick,
        rows,
        interrupted: options.stop.is_cancelled(),
    }
}

/// A row for a workload that failed.
fn failed(workload: Workload, error: String) -> Row {
    let mut row = Row::blank(workload.as_str(), "failed");
    row.errors = 1;
    row.first_error = Some(error);
    row
}

/// The CPU model and the number of cores.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cores} cores")
}

/// Runs `body` to completion on `kind`, giving it the runtime.
pub fn block_on<T, F, Fut>(kind: RuntimeKind, body: F) -> T
where
    F: FnOnce(Arc<dyn Runtime>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    match kind {
        RuntimeKind::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let out = rt.block_on(async { body(Arc::new(TokioRuntime::current())).await });
            rt.shutdown_timeout(Duration::from_secs(1));
            out
        }
        RuntimeKind::Smol => {
            // An executor on one thread per core, as tokio's.
            smol::block_on(body(Arc::new(SmolRuntime::new())))
        }
    }
}
