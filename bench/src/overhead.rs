//! The metrics' cost: requests/s on one link at concurrency 256 with the
//! observer off and on, alternating in ABBA rounds (off-on, on-off, …) so
//! that the machine's drift falls on both sides alike; the ratio is of the
//! summed rates.

use bytes::Bytes;
use gridmux::MetricsAccess;

use crate::builtin::ECHO;
use crate::cluster::Cluster;
use crate::measure::closed_loop;
use crate::report::Row;
use crate::Ctx;

/// Rounds of off and on.
const ROUNDS: usize = 4;

/// Requests in flight.
const CONCURRENCY: usize = 256;

/// Rows this workload makes.
pub(crate) fn planned() -> usize {
    2 * ROUNDS + 1
}

pub(crate) async fn run(cx: &mut Ctx<'_>) -> Result<(), String> {
    let (mut off, mut on) = (0.0, 0.0);
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut rates = [0.0; 2];
        for metrics in order {
            if cx.stopped() {
                return Ok(());
            }
            let label = if metrics { "on" } else { "off" };
            cx.live
                .case(&format!("metrics {label}, round {}", round + 1));
            let cluster = Cluster::start_plain(&cx.rt, 2, |_, b| {
                if metrics {
                    b.metrics(MetricsAccess::Public)
                } else {
                    b
                }
            })?;
            cluster
                .wait_linked(std::time::Duration::from_secs(10), &cx.stop)
                .await?;
            let peer = cluster.peer(0, 1)?;
            let payload = Bytes::from(vec![0x5a; 512]);
            let m = closed_loop(&cx.rt, CONCURRENCY, cx.window, &cx.stop, &cx.live, |_| {
                let (peer, payload) = (peer.clone(), payload.clone());
                move || {
                    let request = peer.request(ECHO, payload.clone());
                    async move {
                        let answer = request.await.map_err(|e| e.to_string())?;
                        Ok(answer.len() as u64)
                    }
                }
            })
            .await;
            cluster.shutdown().await;
            rates[usize::from(metrics)] = m.rate();
            let case = format!("512 B, metrics {label}, round {}", round + 1);
            cx.push(Row::of("metrics", case, "gridmux", CONCURRENCY, &m, false));
        }
        off += rates[0];
        on += rates[1];
        ratios.push(rates[1] / rates[0].max(1e-9));
    }
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    let mut row = Row::blank("metrics", "on ÷ off");
    row.concurrency = CONCURRENCY;
    row.figures
        .push(("on_over_off".to_owned(), on / off.max(1e-9)));
    row.ops_per_s = on / ROUNDS as f64;
    row.versus
        .push(("metrics off".to_owned(), on / off.max(1e-9)));
    row.note = Some(format!(
        "metrics on ÷ off over {ROUNDS} ABBA rounds: {:.3}× (rounds {low:.3}–{high:.3}×)",
        on / off.max(1e-9)
    ));
    cx.push(row);
    Ok(())
}
