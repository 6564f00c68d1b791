//! `gridmux node`: one node until Ctrl-C.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use gridmux::Grid;
use tracing::info;

use crate::{builtin, rt, RuntimeKind};

/// What `gridmux node` was asked for.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) name: String,
    pub(crate) peers: Vec<String>,
    pub(crate) secret_file: PathBuf,
    pub(crate) runtime: RuntimeKind,
}

pub(crate) fn run(opts: Options) -> Result<(), String> {
    let secret = std::fs::read(&opts.secret_file)
        .map_err(|e| format!("reading {}: {e}", opts.secret_file.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(format!("{} is empty", opts.secret_file.display()));
    }
    let mut peers = opts.peers.clone();
    if !peers.contains(&opts.name) {
        peers.push(opts.name.clone());
    }
    let listener = TcpListener::bind(opts.listen).map_err(|e| format!("listen: {e}"))?;
    let stop = rt::interrupt()?;
    rt::block_on(opts.runtime, |runtime| async move {
        let grid = builtin::register(Grid::builder(opts.name.clone(), peers))
            .secret(secret)
            .listener(listener)
            .start(runtime)
            .map_err(|e| e.to_string())?;
        info!(name = %opts.name, listen = %grid.local_addr(), runtime = ?opts.runtime,
              "node running; Ctrl-C stops it");
        stop.cancelled().await;
        info!("stopping");
        grid.shutdown(Duration::from_secs(2)).await;
        Ok(())
    })
}
