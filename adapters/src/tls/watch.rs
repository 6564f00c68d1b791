//! A node's look at its TLS files every few seconds, reloading them when
//! they changed.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::grid::Node;
use crate::runtime::run_on_thread;

/// Reloads the node's TLS identity whenever its files change, until the
/// node shuts down. A change that does not load (a file half written,
/// a key that does not match) is retried at the next look; the identity
/// in use stays meanwhile.
pub(crate) async fn watch_files(node: Arc<Node>) {
    let Some(tls) = node.tls.clone() else {
        return;
    };
    let Some(every) = tls.watch_interval() else {
        return;
    };
    let mut failed = None;
    loop {
        let pause = node.sleep_until(Instant::now() + every);
        if node.shutdown.run(pause).await.is_none() {
            return;
        }
        // Reading files may block (a FIFO, a hung mount): on a thread of
        // its own, never a worker of the node's runtime. One look at a
        // time: a look that never returns ends the watching, not the node.
        let look = {
            let tls = tls.clone();
            run_on_thread("gridmux-tls-watch", 0, move || {
                let now = tls.files_stamp();
                let changed = now.is_some() && now != tls.loaded_stamp();
                (now, changed.then(|| tls.reload()))
            })
        };
        let Some(looked) = node.shutdown.run(look).await else {
            return;
        };
        let (now, reloaded) = match looked {
            Ok(looked) => looked,
            Err(e) => {
                warn!(%e, "the TLS files could not be looked at");
                continue;
            }
        };
        let Some(reloaded) = reloaded else {
            continue;
        };
        match reloaded {
            Ok(()) => {
                info!("TLS certificate, key and CA reloaded: new connections use them");
                failed = None;
            }
            Err(e) => {
                // Once per state of the files.
                if failed != now {
                    warn!(%e, "changed TLS files do not load: the identity in use stays");
                    failed = now;
                }
            }
        }
    }
}
