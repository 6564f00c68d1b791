//! rustls configurations for a peer that is not gridmux (interop and
//! session tests): a throwaway CA's loopback server and a client trusting
//! the CA.

use std::sync::Arc;

use gridmux_bench::pki::ThrowawayCa;

/// The rustls configurations of a throwaway CA's loopback server, for
/// the peer's side: (its server config, a client config trusting the CA).
pub fn peer_tls(ca: &ThrowawayCa) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let identity = ca.issue(&["127.0.0.1"]);
    let chain = CertificateDer::pem_slice_iter(identity.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}
