//! A mesh from cold: N nodes in this process connect every pair; the time
//! until every pair is linked, and memory per link endpoint (the RSS the
//! cluster added, divided by the endpoints: an upper bound, since each
//! node's own fixed cost is spread over its endpoints too) idle and under
//! load. A full run takes it first: memory that earlier rows freed would
//! be reused without showing in the RSS.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builtin::ECHO;
use crate::cluster::Cluster;
use crate::measure::closed_loop;
use crate::report::Row;
use crate::sys;
use crate::Ctx;

/// Rows this workload makes.
pub(crate) fn planned() -> usize {
    1
}

pub(crate) async fn run(cx: &mut Ctx<'_>, nodes: usize) -> Result<(), String> {
    // Each link has a socket at both ends in this process, and each node
    // a listener; then room for the runtime and the file plane.
    let needed = (nodes * (nodes - 1) + nodes + 256) as u64;
    sys::ensure_open_files(needed).map_err(|e| format!("a mesh of {nodes} nodes: {e}"))?;
    cx.live.case(&format!("{nodes} nodes from cold"));
    let rss0 = sys::rss_bytes();
    let t0 = Instant::now();
    let cluster = Cluster::start_plain(&cx.rt, nodes, |_, b| b)?;
    if let Err(e) = cluster
        .wait_linked(Duration::from_secs(120), &cx.stop)
        .await
    {
        cluster.shutdown().await;
        return Err(e);
    }
    let linked = t0.elapsed();
    let settle = Instant::now() + Duration::from_millis(300);
    gridmux::runtime::sleep_until(&*cx.rt, settle).await;
    let endpoints = (nodes * (nodes - 1)) as f64;
    let idle = sys::rss_bytes().saturating_sub(rss0) as f64;
    let pairs = cluster.pairs()?;
    let c = pairs.len().min(256);
    let payload = Bytes::from(vec![0x5a; 512]);
    let m = closed_loop(&cx.rt, c, cx.window, &cx.stop, &cx.live, |w| {
        let (peer, payload) = (pairs[w].clone(), payload.clone());
        move || {
            let request = peer.request(ECHO, payload.clone());
            async move {
                let answer = request.await.map_err(|e| e.to_string())?;
                Ok(answer.len() as u64)
            }
        }
    })
    .await;
    let links = nodes * (nodes - 1) / 2;
    let case = format!("{nodes} nodes, {links} links, 512 B requests");
    let mut row = Row::of("mesh", case, "gridmux", c, &m, false);
    // The latency samples are the harness's, not the cluster's.
    drop(m);
    let loaded = sys::rss_bytes().saturating_sub(rss0) as f64;
    let kib = |bytes: f64| bytes / endpoints / 1024.0;
    row.note = Some(format!(
        "linked from cold in {:.0} ms; RSS +{:.1} MiB idle ({:.1} KiB per link endpoint), \
         +{:.1} MiB under load ({:.1} KiB per endpoint); per endpoint includes each \
         node's own share",
        linked.as_secs_f64() * 1e3,
        idle / (1 << 20) as f64,
        kib(idle),
        loaded / (1 << 20) as f64,
        kib(loaded),
    ));
    row.figures = vec![
        ("nodes".to_owned(), nodes as f64),
        ("links".to_owned(), links as f64),
        ("link_up_ms".to_owned(), linked.as_secs_f64() * 1e3),
        ("rss_kib_per_endpoint_idle".to_owned(), kib(idle)),
        ("rss_kib_per_endpoint_loaded".to_owned(), kib(loaded)),
    ];
    cx.push(row);
    cluster.shutdown().await;
    Ok(())
}
