//! An in-process cluster on loopback: every node in this process, each on
//! a port of its own, keeping metrics, with the built-in handlers.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use gridmux::runtime::Runtime;
use gridmux::{CancelSignal, Grid, GridBuilder, MetricsAccess, Peer};

use crate::builtin;

/// The cluster's secret (loopback only).
const SECRET: &str = "gridmux bench secret";

/// Running nodes.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) grids: Vec<Grid>,
    pub(crate) names: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes keeping metrics, each built by `extra(i, builder)`
    /// after the built-in handlers, without waiting for links.
    pub(crate) fn start(
        rt: &Arc<dyn Runtime>,
        n: usize,
        extra: impl Fn(usize, GridBuilder) -> GridBuilder,
    ) -> Result<Self, String> {
        Self::start_plain(rt, n, |i, b| extra(i, b.metrics(MetricsAccess::Public)))
    }

    /// Starts `n` nodes without metrics unless `extra` adds them.
    pub(crate) fn start_plain(
        rt: &Arc<dyn Runtime>,
        n: usize,
        extra: impl Fn(usize, GridBuilder) -> GridBuilder,
    ) -> Result<Self, String> {
        let listeners = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.to_string()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let mut grids = Vec::with_capacity(n);
        for (i, listener) in listeners.into_iter().enumerate() {
            let builder = builtin::register(Grid::builder(names[i].clone(), names.clone()))
                .secret(SECRET)
                .listener(listener);
            let grid = extra(i, builder)
                .start(rt.clone())
                .map_err(|e| e.to_string())?;
            grids.push(grid);
        }
        Ok(Self { grids, names })
    }

    /// Starts `n` nodes and waits until every pair is linked (or `stop`).
    pub(crate) async fn linked(
        rt: &Arc<dyn Runtime>,
        n: usize,
        stop: &CancelSignal,
        extra: impl Fn(usize, GridBuilder) -> GridBuilder,
    ) -> Result<Self, String> {
        let cluster = Self::start(rt, n, extra)?;
        if let Err(e) = cluster.wait_linked(Duration::from_secs(30), stop).await {
            cluster.shutdown().await;
            return Err(e);
        }
        Ok(cluster)
    }

    /// Waits until every node has a link to every other, for at most
    /// `timeout`; `stop` ends the wait (an error).
    pub(crate) async fn wait_linked(
        &self,
        timeout: Duration,
        stop: &CancelSignal,
    ) -> Result<(), String> {
        for grid in &self.grids {
            match stop.run(grid.wait_all_connected(timeout)).await {
                None => return Err("stopped while the cluster linked up".into()),
                Some(Err(e)) => return Err(format!("{} did not link up: {e}", grid.local())),
                Some(Ok(())) => {}
            }
        }
        Ok(())
    }

    /// Node `from`'s handle on node `to`.
    pub(crate) fn peer(&self, from: usize, to: usize) -> Result<Peer, String> {
        self.grids[from]
            .peer(&self.names[to])
            .map_err(|e| e.to_string())
    }

    /// Every ordered pair of distinct nodes, as peers, in a fixed order
    /// that spreads consecutive picks over all nodes.
    pub(crate) fn pairs(&self) -> Result<Vec<Peer>, String> {
        let n = self.grids.len();
        let mut pairs = Vec::new();
        for step in 1..n {
            for from in 0..n {
                pairs.push(self.peer(from, (from + step) % n)?);
            }
        }
        Ok(pairs)
    }

    /// Stops every node.
    pub(crate) async fn shutdown(self) {
        for grid in &self.grids {
            grid.shutdown(Duration::from_millis(500)).await;
        }
    }
}
