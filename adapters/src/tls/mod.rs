//! TLS under every connection of a node (rustls, TLS 1.3 only, the
//! `ring` provider): grid links, the HTTP planes on the same port, and
//! fetches. A [`TlsConfig`] holds the node's certificate and key and the
//! CA its peers' certificates must chain to; [`TlsConfig::reload`] reads
//! the files again (connections already up keep their session, new ones
//! use the new certificate).
//!
//! What is checked, where:
//! - the dialer checks that the acceptor's certificate chains to the CA,
//!   is valid now, and names the host part of the peer's name (a DNS name
//!   or an IP address, as the cluster's names are `host:port`);
//! - with [`ClientAuth::Required`], the acceptor requires a client
//!   certificate that chains to the CA (mutual TLS); every dialer presents
//!   its own certificate when asked;
//! - the grid's own set-up (shared secrets) still runs inside TLS.

mod config;
mod socket;

pub use config::{ClientAuth, TlsConfig, TlsError};
pub(crate) use socket::{accept, connect, server_name};
