//! A throwaway identity for the TLS layer's own tests.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA's certificate, and a certificate for 127.0.0.1 it signed with
/// its key (PEM).
pub(super) struct Identity {
    pub(super) cert: String,
    pub(super) key: String,
    pub(super) ca: String,
}

/// A new CA and a certificate for 127.0.0.1 from it.
pub(super) fn identity() -> Identity {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
        ca: ca.pem(),
    }
}
