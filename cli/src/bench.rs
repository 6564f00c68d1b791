//! `gridmux bench`: the benchmark of `gridmux-bench`, with Ctrl-C, a
//! table on standard output and `--json`.

use std::io::IsTerminal;
use std::path::PathBuf;

use gridmux_bench::{Options, Workload};

use crate::{rt, RuntimeKind};

/// What `gridmux bench` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The runtime the cluster runs on.
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: RuntimeKind,
    /// Nodes in the cluster (default 3; with `--only mesh`, the mesh's
    /// nodes, default 32).
    #[arg(long)]
    nodes: Option<usize>,
    /// Counted time per row, after a warm-up (`500ms`, `2s`).
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    duration: std::time::Duration,
    /// Run one workload only: unary, streams, files, websocket, tls, mesh,
    /// or metrics (the metrics' cost, not part of a full run).
    #[arg(long, value_parser = parse_workload)]
    only: Option<Workload>,
    /// Run the TLS rows only (TLS against plaintext, same run; as
    /// `--only tls`).
    #[arg(long, conflicts_with = "only")]
    tls: bool,
    /// A short run (about 20 s): fewer rows, shorter windows.
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_workload(name: &str) -> Result<Workload, String> {
    Workload::from_name(name).ok_or_else(|| {
        format!("no workload {name:?} (unary, streams, files, websocket, tls, mesh, metrics)")
    })
}

pub(crate) fn run(args: &Args) -> Result<(), String> {
    if args.nodes.is_some_and(|n| n < 2) {
        return Err("--nodes: at least 2".into());
    }
    if args.duration < std::time::Duration::from_millis(100) {
        return Err("--duration: at least 100ms".into());
    }
    // A path that cannot be written fails now, not after the run.
    if let Some(path) = &args.json {
        std::fs::write(path, "").map_err(|e| format!("--json {}: {e}", path.display()))?;
    }
    let only = if args.tls {
        Some(Workload::Tls)
    } else {
        args.only
    };
    let mesh_only = only == Some(Workload::Mesh);
    let stop = rt::interrupt()?;
    let options = Options {
        runtime: args.runtime.into(),
        nodes: if mesh_only {
            3
        } else {
            args.nodes.unwrap_or(3)
        },
        mesh_nodes: if mesh_only { args.nodes } else { None },
        duration: args.duration,
        only,
        quick: args.quick,
        stop,
        progress: std::io::stderr().is_terminal(),
    };
    let report = gridmux_bench::run(&options);
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let empty = report.empty_rows();
    match report.errors() {
        0 if empty == 0 => Ok(()),
        0 => Err(format!("{empty} row(s) measured nothing")),
        1 => Err("1 operation failed (see the first error under the table)".into()),
        n => Err(format!(
            "{n} operations failed (see the first errors under the table)"
        )),
    }
}
