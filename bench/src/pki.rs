//! Throwaway certificates: a cluster CA and node certificates made fresh
//! (rcgen, ECDSA P-256), for trying TLS out (`gridmux certs`), for the
//! benchmark's TLS rows and for tests. Not for production: real clusters
//! take their certificates from their own CA.

use gridmux::tls::{ClientAuth, TlsConfig};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::time::{Duration, SystemTime};

/// A certificate authority that signs node certificates.
pub struct ThrowawayCa {
    cert: Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for ThrowawayCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrowawayCa").finish_non_exhaustive()
    }
}

/// A node's certificate chain and key, as PEM.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The leaf certificate (PEM).
    pub cert: String,
    /// Its private key (PKCS#8 PEM).
    pub key: String,
}

impl ThrowawayCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        Self { cert, key }
    }

    /// The CA certificate (PEM), what nodes trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A node certificate for `names` (DNS names or IP addresses), valid
    /// for a day from an hour ago, for both server and client use.
    pub fn issue(&self, names: &[&str]) -> NodeIdentity {
        let now = SystemTime::now();
        self.issue_valid(
            names,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(86_400),
        )
    }

    /// A node certificate for `names`, valid from `not_before` to
    /// `not_after` (an expired one for tests of refusals).
    pub fn issue_valid(
        &self,
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> NodeIdentity {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("valid names");
        params
            .distinguished_name
            .push(DnType::CommonName, "gridmux node");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a node certificate");
        NodeIdentity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// The TLS identity of a node holding `identity`, trusting this CA.
    pub fn config(&self, identity: &NodeIdentity, client_auth: ClientAuth) -> TlsConfig {
        TlsConfig::from_pem(
            identity.cert.as_bytes(),
            identity.key.as_bytes(),
            self.pem().as_bytes(),
            client_auth,
        )
        .expect("the test identity loads")
    }

    /// A loopback node's TLS identity (certificate for `127.0.0.1` and
    /// `localhost`) trusting this CA.
    pub fn loopback(&self, client_auth: ClientAuth) -> TlsConfig {
        self.config(&self.issue(&["127.0.0.1", "localhost"]), client_auth)
    }
}
