//! `sim --seeds N --start S [--nodes K] [--faults none|all] [--threads T] [--once]`:
//! runs N seeds of the deterministic cluster simulation from seed S, each
//! twice to check determinism (`--once`: a single run, for long soaks), and
//! prints `sim: N passed, M failed`.
//! A failure prints its seed, the violated invariant, the last events and
//! the command that replays it. Exits non-zero on any failure.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use gridmux_tests::harness::{arg_value, help_requested, init_tracing};
use gridmux_tests::sim::{self, Failure, Faults};

/// What `--help` prints: the usage above.
const USAGE: &str = "`sim --seeds N --start S [--nodes K] [--faults none|all] [--threads T] [--once]`: runs N seeds of the deterministic cluster simulation from seed S, each twice to check determinism (`--once`: a single run, for long soaks), and prints `sim: N passed, M failed`. A failure prints its seed, the violated invariant, the last events and the command that replays it. Exits non-zero on any failure.";

fn main() -> ExitCode {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    if help_requested(&args, USAGE) {
        return ExitCode::SUCCESS;
    }
    let number = |name: &str, default: u64| -> Result<u64, String> {
        arg_value(&args, name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} wants a number, got {v:?}"))
        })
    };
    let parsed = (|| -> Result<_, String> {
        let seeds = number("--seeds", 100)?;
        let start = number("--start", 0)?;
        let nodes = arg_value(&args, "--nodes")
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("--nodes wants a number, got {v:?}"))
            })
            .transpose()?;
        if nodes.is_some_and(|n| !(2..=8).contains(&n)) {
            return Err("--nodes must be between 2 and 8".into());
        }
        let faults = match arg_value(&args, "--faults").as_deref() {
            None | Some("all") => Faults::All,
            Some("none") => Faults::None,
            Some(other) => return Err(format!("--faults is none or all, got {other:?}")),
        };
        let threads = number(
            "--threads",
            std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        )?;
        let once = args.iter().any(|a| a == "--once");
        Ok((seeds, start, nodes, faults, threads.max(1), once))
    })();
    let (seeds, start, nodes, faults, threads, once) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
    let began = Instant::now();
    let next = AtomicU64::new(start);
    let end = start.saturating_add(seeds);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let events = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let totals = Mutex::new(sim::Stats::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let outcome = if once {
                    sim::run(seed, nodes, faults)
                } else {
                    sim::run_checked(seed, nodes, faults)
                };
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished.is_multiple_of(5000) {
                    eprintln!(
                        "sim: {finished}/{seeds} seeds run, {:.0} s",
                        began.elapsed().as_secs_f64()
                    );
                }
                match outcome {
                    Ok(outcome) => {
                        events.fetch_add(outcome.events, Ordering::Relaxed);
                        let mut t = totals.lock().unwrap_or_else(|e| e.into_inner());
                        t.add(&outcome.stats);
                    }
                    Err(f) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(f),
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|f| f.seed);
    let faults_arg = if faults == Faults::None {
        "none"
    } else {
        "all"
    };
    let nodes_arg = nodes.map(|n| format!(" --nodes {n}")).unwrap_or_default();
    for f in &failures {
        println!("seed {} FAILED: {}", f.seed, f.what);
        for line in &f.recent {
            println!("    {line}");
        }
        println!(
            "    replay: cargo run --release -p gridmux-tests --bin sim -- --seeds 1 --start {}{nodes_arg} --faults {faults_arg}",
            f.seed
        );
    }
    let t = totals.into_inner().unwrap_or_else(|e| e.into_inner());
    println!(
        "exchanges: {} requests ok, {} requests failed, {} streams ok, {} streams failed; {} link closures",
        t.responses_ok, t.responses_err, t.streams_ok, t.streams_err, t.links_closed
    );
    println!(
        "sim: {} passed, {} failed ({} events, {:.1} s)",
        seeds - failures.len() as u64,
        failures.len(),
        events.load(Ordering::Relaxed),
        began.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
