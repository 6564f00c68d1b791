//! `--tls-cert`, `--tls-key`, `--tls-ca`, `--tls-client-auth`: the TLS
//! identity of a node or a client (all three files, or none: plain TCP).

use std::path::PathBuf;

use gridmux::tls::{ClientAuth, TlsConfig};

/// TLS options shared by `node`, `call` and `fetch`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TlsArgs {
    /// Certificate chain (PEM, leaf first) naming this node's host; with
    /// --tls-key and --tls-ca, every connection runs TLS 1.3. Files are
    /// reloaded when they change (by `node` also at once on SIGHUP).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA certificates (PEM) the peers' certificates must chain to.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Require dialers (peers and clients) to present a certificate of
    /// the CA (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_client_auth: bool,
}

impl TlsArgs {
    /// Whether TLS was asked for (all three files given).
    pub(crate) fn wanted(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some() && self.tls_ca.is_some()
    }

    /// The identity, if TLS was asked for.
    pub(crate) fn config(&self) -> Result<Option<TlsConfig>, String> {
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            return Ok(None);
        };
        let auth = if self.tls_client_auth {
            ClientAuth::Required
        } else {
            ClientAuth::None
        };
        TlsConfig::from_files(cert, key, ca, auth)
            .map(Some)
            .map_err(|e| format!("TLS: {e}"))
    }
}
