//! TLS against plaintext, same run: the same rows on a cluster whose
//! links run TLS 1.3 (mutual, with a throwaway CA) and on a plain one.
//! Unary 512 B at 1 and 256 in flight over one link, a 64 KiB stream one
//! way, and a whole-file fetch (TLS takes the copy path; the plain node
//! sends with `sendfile`).

use bytes::Bytes;
use gridmux::sendfile::DirResolver;
use gridmux::tls::ClientAuth;
use gridmux::GridBuilder;

use crate::cluster::Cluster;
use crate::files::{fetches, file_len, Receive, ServedBlob, ROUTE};
use crate::pki::ThrowawayCa;
use crate::report::Row;
use crate::{streams, unary, Ctx};

/// Rows this workload makes: four cases, plain and TLS.
pub(crate) fn planned() -> usize {
    8
}

/// The label of a row's system.
fn system(tls: bool) -> &'static str {
    if tls {
        "gridmux over TLS"
    } else {
        "gridmux"
    }
}

pub(crate) async fn run(cx: &mut Ctx<'_>) -> Result<(), String> {
    let len = file_len(cx.quick);
    let blob = ServedBlob::new(len)?;
    let ca = ThrowawayCa::new("gridmux bench CA");
    let identity = ca.loopback(ClientAuth::Required);
    let serve = |b: GridBuilder| match DirResolver::new(&blob.served) {
        Ok(resolver) => b.files(ROUTE, resolver),
        Err(_) => b,
    };
    let plain = Cluster::linked(&cx.rt, 2, &cx.stop, |_, b| serve(b)).await?;
    let secure =
        match Cluster::linked(&cx.rt, 2, &cx.stop, |_, b| serve(b).tls(identity.clone())).await {
            Ok(c) => c,
            Err(e) => {
                plain.shutdown().await;
                return Err(e);
            }
        };
    let result = measure(cx, [&plain, &secure], &blob, len).await;
    plain.shutdown().await;
    secure.shutdown().await;
    result
}

async fn measure(
    cx: &mut Ctx<'_>,
    clusters: [&Cluster; 2],
    blob: &ServedBlob,
    len: u64,
) -> Result<(), String> {
    // Unary 512 B over one link.
    for c in [1, 256] {
        let mut plain_row: Option<Row> = None;
        for (tls, cluster) in [false, true].into_iter().zip(clusters) {
            if cx.stopped() {
                return Ok(());
            }
            cx.live.case(&format!("{} 512 B ×{c}", system(tls)));
            let one = [cluster.peer(0, 1)?];
            let (m, t) = unary::echo(cx, cluster, &one, 512, c).await;
            let row = Row::of("tls", "512 B, one link", system(tls), c, &m, false).ttfb(&t);
            plain_row = Some(push_beside(cx, row, plain_row.as_ref()));
        }
    }
    // A stream one way, 64 KiB messages.
    let message = Bytes::from(vec![0x5a; 64 * 1024]);
    let mut plain_row: Option<Row> = None;
    for (tls, cluster) in [false, true].into_iter().zip(clusters) {
        if cx.stopped() {
            return Ok(());
        }
        cx.live.case(&format!("{} stream 64 KiB", system(tls)));
        let peer = cluster.peer(0, 1)?;
        let case = "stream one-way 64 KiB".to_owned();
        let mut row = streams::one_way(cx, &peer, &message, case, system(tls)).await?;
        row.workload = "tls";
        plain_row = Some(push_beside(cx, row, plain_row.as_ref()));
    }
    // The whole file into memory.
    let mib = len >> 20;
    let mut plain_row: Option<Row> = None;
    for (tls, cluster) in [false, true].into_iter().zip(clusters) {
        if cx.stopped() {
            return Ok(());
        }
        let how = if tls { "copy" } else { "sendfile" };
        cx.live.case(&format!("{} file {how}", system(tls)));
        let peer = cluster.peer(0, 1)?;
        let target = blob.dir.join("received");
        let (window, stop, live) = (cx.window.duration, &cx.stop, &cx.live);
        let m = fetches(&peer, Receive::Memory, len, &target, window, stop, live).await;
        let case = format!("file {mib} MiB ({how})");
        let row = Row::of("tls", case, system(tls), 1, &m, true);
        plain_row = Some(push_beside(cx, row, plain_row.as_ref()));
    }
    Ok(())
}

/// Pushes `row` (beside the plaintext row, for a TLS row); returns it.
fn push_beside(cx: &mut Ctx<'_>, row: Row, plain: Option<&Row>) -> Row {
    let row = match plain {
        Some(p) => row.versus(p),
        None => row,
    };
    cx.push(row)
}
