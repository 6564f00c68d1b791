//! gridmux: inter-node RPC for a cluster of servers, over exactly one
//! WebSocket connection per pair of nodes, on tokio or smol.
//!
//! A [`Grid`] is one node. It listens on one port (`GET /health`, the
//! authenticated upgrade at `GET /gridmux/v1`, and the file plane), dials
//! the peers the cluster rule says it dials, and re-dials lost links. Over
//! each link any number of requests and streams run at once; see [`Peer`].
//!
//! Bulk data goes over the file plane instead: a node serves file routes
//! ([`GridBuilder::files`], a [`FileHandler`] or a
//! [`DirResolver`](sendfile::DirResolver)) with `sendfile`, to signed
//! `GET`/`HEAD` requests with ranges, and peers fetch with
//! [`Peer::fetch`] and [`Peer::fetch_to_file`] (spliced into the file on
//! Linux).
//!
//! The protocol lives in the sans-IO crate `gridmux_core`; this crate
//! drives it over sockets ([`runtime`] holds the two runtime modules).
//!
//! **Security.** Every link is set up with mutual, connection-bound
//! authentication: each side proves that it holds a secret of the cluster
//! over a nonce the other side chose for this connection, so a recorded
//! set-up, replayed to either side, never brings a link up (see
//! `gridmux_core::auth`). Unauthenticated callers get one uniform answer;
//! the reason is logged with their address. A [`Client`] (a tool that is not
//! a member) authenticates the same way with keys of its own purpose and is
//! never called. Without TLS this proves who connected, not that later
//! frames are theirs: an attacker on the network path can still inject or
//! alter frames after the set-up.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use gridmux::{runtime::TokioRuntime, Grid};
//!
//! // Two nodes in one process, on ports the OS picks.
//! let listeners = [std::net::TcpListener::bind("127.0.0.1:0")?, std::net::TcpListener::bind("127.0.0.1:0")?];
//! let names: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
//! let mut grids = Vec::new();
//! for (name, listener) in names.iter().zip(listeners) {
//!     let grid = Grid::builder(name.as_str(), names.clone())
//!         .secret("cluster secret")
//!         .listener(listener)
//!         .handler(1, |_ctx, payload| async move { Ok(payload) }) // echo
//!         .start(TokioRuntime::current())?;
//!     grids.push(grid);
//! }
//! let peer = grids[0].peer(&names[1])?;
//! peer.wait_connected(Duration::from_secs(5)).await?;
//! let answer = peer.request(1, "hello").timeout(Duration::from_secs(1)).await?;
//! assert_eq!(answer, "hello");
//! for grid in &grids {
//!     grid.shutdown(Duration::from_secs(1)).await;
//! }
//! # Ok(()) }
//! ```

mod builder;
mod client;
mod dial;
mod dispatch;
mod driver;
mod error;
mod files;
mod grid;
mod handler;
mod http_record;
mod io;
mod listener;
mod log_limit;
mod peer;
pub mod runtime;
mod send_file;
mod session;
mod shared;
mod signal;
mod stream;
pub mod tls;
mod websocket;

pub use builder::{GridBuilder, MetricsAccess, StartError};
pub use client::{Client, ClientBuilder};
pub use error::{Error, HandlerError};
pub use files::{FetchError, FileBody, FileError, FileHandler, FileLimits, FileRegion, Signer};
pub use grid::Grid;
pub use handler::Context;
pub use peer::{Call, OpenStream, Peer, Request, RequestFuture};
pub use send_file::{send_file, send_file_with_stall_timeout};
pub use signal::CancelSignal;
pub use stream::{StreamReceiver, StreamSender};
pub use websocket::WebSocket;

pub use gridmux_core::auth::{AuthError, Keyring};
pub use gridmux_core::cluster::ReconnectSchedule;
pub use gridmux_core::link::{ClientAccess, LinkConfig};
pub use gridmux_core::wire::{ErrorCode, SubrouteId};
/// Prometheus metrics of the timing records ([`GridBuilder::metrics`]).
pub use gridmux_metrics as metrics;
/// File regions to sockets: `sendfile` on Linux, a copy elsewhere.
pub use gridmux_sendfile as sendfile;

/// MessagePack encoding as typed handlers and calls use it (rmp-serde,
/// structs as maps).
pub mod codec {
    use bytes::Bytes;
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::Error;

    /// Encodes `value`.
    pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, Error> {
        crate::handler::encode(value).map_err(Error::Codec)
    }

    /// Decodes a `T`.
    pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
        crate::handler::decode(bytes).map_err(Error::Codec)
    }
}
