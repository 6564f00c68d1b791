//! The file plane: a file warm in the page cache fetched whole over
//! loopback, from a node sending with `sendfile`, from one sending by
//! copy, and received with `splice` into a file; beside raw TCP bulk.
//! CPU is the whole process's (client and server both run here).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gridmux::sendfile::{DirResolver, Method, Options as TransferOptions};
use gridmux::{CancelSignal, FileLimits, Peer};

use crate::cluster::Cluster;
use crate::measure::Measured;
use crate::progress::Live;
use crate::raw_tcp;
use crate::report::Row;
use crate::sys;
use crate::Ctx;

/// The file route.
pub(crate) const ROUTE: &str = "bench";

/// Rows this workload makes.
pub(crate) fn planned() -> usize {
    4
}

/// Removes the benchmark's directory when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The scratch directories' names: this prefix and the process id.
const SCRATCH_PREFIX: &str = "gridmux-bench-";

/// Removes scratch directories of benchmark processes that are gone (a
/// second Ctrl-C exits at once, without cleaning up).
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && Path::new("/proc/self").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The size of the file fetched.
pub(crate) fn file_len(quick: bool) -> u64 {
    if quick {
        64 << 20
    } else {
        256 << 20
    }
}

/// This process's scratch directory with `served/blob`, a file of `len`
/// bytes (warm in the page cache); removed when dropped.
pub(crate) struct ServedBlob {
    /// The scratch directory.
    pub(crate) dir: PathBuf,
    /// The directory a node serves (holding `blob`).
    pub(crate) served: PathBuf,
    _scratch: Scratch,
}

impl ServedBlob {
    pub(crate) fn new(len: u64) -> Result<Self, String> {
        remove_stale_scratch();
        let dir = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        let scratch = Scratch(dir.clone());
        let served = dir.join("served");
        std::fs::create_dir_all(&served).map_err(|e| format!("{}: {e}", served.display()))?;
        make_file(&served.join("blob"), len)?;
        Ok(Self {
            dir,
            served,
            _scratch: scratch,
        })
    }
}

/// How a fetch is taken.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Receive {
    /// Read into memory and dropped.
    Memory,
    /// Written into a file with `splice`.
    File,
}

pub(crate) async fn run(cx: &mut Ctx<'_>) -> Result<(), String> {
    let len = file_len(cx.quick);
    let blob = ServedBlob::new(len)?;
    let (dir, served) = (blob.dir.clone(), blob.served.clone());
    let limits = |method| FileLimits {
        transfer: TransferOptions {
            method,
            ..TransferOptions::default()
        },
        ..FileLimits::default()
    };
    let cluster = Cluster::linked(&cx.rt, 3, &cx.stop, |i, b: gridmux::GridBuilder| {
        let method = match i {
            1 => Method::Sendfile,
            2 => Method::Copy,
            _ => return b,
        };
        match DirResolver::new(&served) {
            Ok(resolver) => b.files(ROUTE, resolver).file_limits(limits(method)),
            Err(_) => b,
        }
    })
    .await?;
    cx.live.case("raw TCP bulk");
    let m = raw_tcp::bulk(&cx.rt, 64 * 1024, cx.window, &cx.stop, &cx.live).await?;
    let bulk = cx.push(Row::of(
        "file",
        "64 KiB writes",
        "raw TCP bulk",
        1,
        &m,
        true,
    ));
    let mib = len >> 20;
    let cases = [
        (
            1,
            Receive::Memory,
            format!("{mib} MiB, sendfile"),
            "gridmux",
        ),
        (2, Receive::Memory, format!("{mib} MiB, copy"), "gridmux"),
        (
            1,
            Receive::File,
            format!("{mib} MiB, sendfile → splice into a file"),
            "gridmux",
        ),
    ];
    let mut sendfile_row: Option<Row> = None;
    let mut copy_cpu = None;
    for (node, receive, case, system) in cases {
        if cx.stopped() {
            break;
        }
        cx.live.case(&case);
        let peer = cluster.peer(0, node)?;
        let target = dir.join("received");
        let (window, stop, live) = (cx.window.duration, &cx.stop, &cx.live);
        let m = fetches(&peer, receive, len, &target, window, stop, live).await;
        // A handful of fetches: too few for TTFB quantiles.
        let mut row = Row::of("file", case, system, 1, &m, true);
        if matches!(receive, Receive::Memory) {
            // Writing into a file is other work than the bulk reader's.
            row = row.versus(&bulk);
        }
        match (node, receive) {
            (2, _) => copy_cpu = row.cpu_s_per_gib,
            (1, Receive::Memory) => sendfile_row = Some(row.clone()),
            _ => {}
        }
        cx.push(row);
    }
    if let (Some(row), Some(copy)) = (sendfile_row, copy_cpu) {
        let copy_row = cx.rows.iter_mut().rev().find(|r| r.case.ends_with("copy"));
        if let (Some(cpu), Some(last)) = (row.cpu_s_per_gib, copy_row) {
            let ratio = cpu / copy.max(1e-9);
            last.note = Some(format!(
                "CPU-s/GiB, sendfile ÷ copy: {ratio:.2}× (both ends in this process)"
            ));
            last.figures
                .push(("sendfile_over_copy_cpu".to_owned(), ratio));
        }
    }
    cluster.shutdown().await;
    Ok(())
}

/// Fetches the file once to warm up, then again until `duration` has
/// passed (at least once).
pub(crate) async fn fetches(
    peer: &Peer,
    receive: Receive,
    len: u64,
    target: &Path,
    duration: Duration,
    stop: &CancelSignal,
    live: &Live,
) -> Measured {
    let mut m = Measured::default();
    if let Err(e) = fetch_once(peer, receive, len, target).await {
        m.errors += 1;
        m.first_error = Some(e);
        return m;
    }
    let (start, cpu0) = (Instant::now(), sys::cpu_seconds());
    while !stop.is_cancelled() && (m.ops == 0 || start.elapsed() < duration) {
        let t0 = Instant::now();
        match fetch_once(peer, receive, len, target).await {
            Ok(()) => {
                m.ops += 1;
                m.bytes += len;
                let nanos = t0.elapsed().as_nanos();
                m.latencies.push(u32::try_from(nanos).unwrap_or(u32::MAX));
                live.rate(m.bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64());
            }
            Err(e) => {
                m.errors += 1;
                m.first_error = Some(e);
                break;
            }
        }
    }
    m.elapsed = start.elapsed();
    m.cpu_seconds = sys::cpu_seconds() - cpu0;
    m.latencies.sort_unstable();
    m
}

/// One whole fetch, checked for its length.
async fn fetch_once(peer: &Peer, receive: Receive, len: u64, target: &Path) -> Result<(), String> {
    let got = match receive {
        Receive::Memory => {
            let mut body = peer
                .fetch(ROUTE, "blob", None)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0; 1 << 20];
            let mut got = 0u64;
            loop {
                match body.read(&mut buf).await.map_err(|e| e.to_string())? {
                    0 => break got,
                    n => got += n as u64,
                }
            }
        }
        Receive::File => {
            let file = std::fs::File::create(target).map_err(|e| e.to_string())?;
            peer.fetch_to_file(ROUTE, "blob", None, &file, 0)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    if got == len {
        Ok(())
    } else {
        Err(format!("fetched {got} bytes of {len}"))
    }
}

/// Writes `len` bytes of a pattern to `path` (so they are in the page
/// cache).
fn make_file(path: &Path, len: u64) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    Ok(())
}
