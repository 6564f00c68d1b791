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
#[cfg(test)]
mod test_identity;
mod watch;

pub use config::{ClientAuth, TlsConfig, TlsError};

use crate::runtime::Socket;
pub(crate) use socket::{accept, connect, server_name};
pub(crate) use watch::watch_files;

/// Runs the dialer's TLS handshake over `socket` with `tls`'s identity,
/// checking the acceptor's certificate against `server_name` (a DNS name
/// or an IP address; a `host:port` name gives its host); the socket
/// returned speaks plaintext over the session. Bound it in time: a peer
/// that never answers holds it.
pub async fn connect_socket(
    socket: Box<dyn Socket>,
    tls: &TlsConfig,
    server_name: &str,
) -> std::io::Result<Box<dyn Socket>> {
    let name = server_name_of(server_name)?;
    let session = Box::pin(connect(socket, tls.client(), name)).await?;
    Ok(Box::new(session))
}

/// Runs the acceptor's TLS handshake over `socket` with `tls`'s identity
/// (asking for a client certificate under mutual TLS). Bound it in time.
pub async fn accept_socket(
    socket: Box<dyn Socket>,
    tls: &TlsConfig,
) -> std::io::Result<Box<dyn Socket>> {
    let session = Box::pin(accept(socket, tls.server())).await?;
    Ok(Box::new(session))
}

/// The host part of a cluster name, what its certificate must name: a
/// `host:port`'s host (brackets of an IPv6 address removed), or the name
/// itself when it has no port.
///
/// ```
/// use gridmux::tls::host_of;
/// assert_eq!(host_of("127.0.0.1:9001"), "127.0.0.1");
/// assert_eq!(host_of("[::1]:9001"), "::1");
/// assert_eq!(host_of("node-a.example:9000"), "node-a.example");
/// assert_eq!(host_of("node-a.example"), "node-a.example");
/// ```
pub fn host_of(name: &str) -> &str {
    let host = match name.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => name,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `name`'s server name: a bare host, or a `host:port`'s host.
fn server_name_of(name: &str) -> std::io::Result<rustls_pki_types::ServerName<'static>> {
    match rustls_pki_types::ServerName::try_from(name.to_owned()) {
        Ok(n) => Ok(n),
        Err(_) => server_name(name),
    }
}
