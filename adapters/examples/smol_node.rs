//! Two nodes on smol in one process: one calls the other's handler.
use std::time::Duration;

use gridmux::{runtime::SmolRuntime, Grid};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let cluster = ["127.0.0.1:7201", "127.0.0.1:7202"];
        let mut nodes = Vec::new();
        for me in cluster {
            let node = Grid::builder(me, cluster)
                .secret("change me")
                .handler(1, |ctx, payload| async move {
                    Ok(format!("{} sent {payload:?}", ctx.caller()).into())
                })
                .start(SmolRuntime::new())?;
            nodes.push(node);
        }
        let peer = nodes[0].peer(cluster[1])?;
        peer.wait_connected(Duration::from_secs(5)).await?;
        let answer = peer
            .request(1, "hello")
            .timeout(Duration::from_secs(1))
            .await?;
        println!("{}", String::from_utf8_lossy(&answer));
        for node in &nodes {
            node.shutdown(Duration::from_secs(1)).await;
        }
        Ok(())
    })
}
