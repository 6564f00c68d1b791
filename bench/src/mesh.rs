//! A mesh from cold: N nodes in this process connect every pair; the time
//! until every pair is linked, and memory per link endpoint (the RSS the
//! cluster added, divided by the endpoints) idle and under load. A full
//! run takes it first: memory that earlier rows freed would be reused
//! without showing in the RSS.

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
    cx.live.case(&format!("{nodes} nodes from cold"));
    let rss0 = sys::rss_bytes();
    let t0 = Instant::now();
    let cluster = Cluster::start_plain(&cx.rt, nodes, |_, b| b)?;
    cluster.wait_linked(Duration::from_secs(120)).await?;
    let linked = t0.elapsed();
    gridmux::runtime::sleep_until(&*cx.rt, Instant::now() + Duration::from_millis(300)).await;
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
    let loaded = sys::rss_bytes().saturating_sub(rss0) as f64;
    let links = nodes * (nodes - 1) / 2;
    let mut row = Row::of(
        "mesh",
        format!("{nodes} nodes, {links} links, 512 B requests"),
        "gridmux",
        c,
        &m,
        false,
    );
    row.note = Some(format!(
        "linked from cold in {:.0} ms; RSS +{:.1} MiB idle ({:.1} KiB per link endpoint), \
         +{:.1} MiB under load ({:.1} KiB per endpoint)",
        linked.as_secs_f64() * 1e3,
        idle / (1 << 20) as f64,
        idle / endpoints / 1024.0,
        loaded / (1 << 20) as f64,
        loaded / endpoints / 1024.0,
    ));
    cx.push(row);
    cluster.shutdown().await;
    Ok(())
}
