//! The node's TLS identity: its certificate chain and key, the CA its
//! peers must chain to, and the rustls configurations built from them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Whether the acceptor asks dialers for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Dialers are not asked (the grid's shared secret still proves them).
    #[default]
    None,
    /// Mutual TLS: a dialer without a certificate chaining to the CA is
    /// refused in the handshake.
    Required,
}

/// Why a TLS identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// PEM that does not parse.
    #[error("{what}: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A certificate chain or CA bundle with no certificate.
    #[error("{0}: no certificate in it")]
    NoCertificate(&'static str),
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA cannot verify client certificates.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// A node's TLS identity, cheap to clone. Links, the HTTP planes and
/// fetches of a node built with it run over TLS 1.3.
///
/// ```no_run
/// use gridmux::tls::{ClientAuth, TlsConfig};
///
/// let tls = TlsConfig::from_files("node1.crt", "node1.key", "ca.crt", ClientAuth::Required)
///     .expect("the files load");
/// // ... later, after the files were replaced:
/// tls.reload().expect("the new files load");
/// ```
#[derive(Clone)]
pub struct TlsConfig(Arc<Inner>);

struct Inner {
    /// Built from the sources; swapped by `reload`.
    current: RwLock<Sides>,
    files: Option<Files>,
    client_auth: ClientAuth,
    /// How often a node looks for changed files.
    watch: RwLock<Option<Duration>>,
    /// Reloads begun so far.
    reloads: AtomicU64,
}

#[derive(Clone)]
struct Sides {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// A hash of the files' bytes these were built from.
    stamp: Option<u64>,
    /// The reload that built these (0: the first load).
    reload: u64,
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_auth", &self.0.client_auth)
            .field("cert", &self.0.files.as_ref().map(|f| &f.cert))
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// An identity from PEM text: the node's certificate chain (leaf
    /// first), its private key, and the CA certificates peers must chain to.
    pub fn from_pem(
        cert_chain: &[u8],
        key: &[u8],
        ca: &[u8],
        client_auth: ClientAuth,
    ) -> Result<Self, TlsError> {
        let sides = build(cert_chain, key, ca, client_auth)?;
        Ok(Self(Arc::new(Inner {
            current: RwLock::new(sides),
            files: None,
            client_auth,
            watch: RwLock::new(None),
            reloads: AtomicU64::new(0),
        })))
    }

    /// An identity from PEM files, remembered for [`reload`](Self::reload).
    pub fn from_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
        client_auth: ClientAuth,
    ) -> Result<Self, TlsError> {
        let files = Files {
            cert: cert_chain.as_ref().to_owned(),
            key: key.as_ref().to_owned(),
            ca: ca.as_ref().to_owned(),
        };
        let sides = files.build(client_auth)?;
        Ok(Self(Arc::new(Inner {
            current: RwLock::new(sides),
            files: Some(files),
            client_auth,
            watch: RwLock::new(Some(DEFAULT_WATCH)),
            reloads: AtomicU64::new(0),
        })))
    }

    /// Reads the files again; connections made from now on use what they
    /// hold, connections already up keep their session. On an error the
    /// identity in use stays. An identity made from PEM text has nothing
    /// to reload (`Ok`). The files are read on the calling thread, and a
    /// file may block (a FIFO, a hung mount): from async code, call it
    /// on a thread of its own. A reload that blocks holds up no other.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(files) = &self.0.files else {
            return Ok(());
        };
        // Reloads may overlap (a signal's and the watcher's) and one may
        // block on its files: none waits for another, and of those that
        // finish, the one that began reading last is the one that stays.
        let began = self.0.reloads.fetch_add(1, Ordering::Relaxed) + 1;
        let mut sides = files.build(self.0.client_auth)?;
        sides.reload = began;
        let mut current = self
            .0
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.reload < began {
            *current = sides;
        }
        Ok(())
    }

    /// How often a node running this identity looks at its files and
    /// reloads them when any changed (default 5 s for an identity from
    /// files; `None`: only [`reload`](Self::reload)). Nothing to watch for
    /// one from PEM text.
    pub fn watch(self, every: Option<Duration>) -> Self {
        let every = every.filter(|_| self.0.files.is_some());
        *self
            .0
            .watch
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = every;
        self
    }

    /// The watch interval, for an identity from files.
    pub(crate) fn watch_interval(&self) -> Option<Duration> {
        *self
            .0
            .watch
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A hash of what the files hold now (`None` for an identity from PEM
    /// text, or if one cannot be read): the watcher reloads when it
    /// differs from the loaded identity's. Contents, not times: a renewed
    /// certificate copied with its time kept is still a change.
    pub(crate) fn files_stamp(&self) -> Option<u64> {
        let files = self.0.files.as_ref()?;
        let bytes = files.read().ok()?;
        Some(stamp(&bytes))
    }

    /// The hash of the files the identity in use was built from.
    pub(crate) fn loaded_stamp(&self) -> Option<u64> {
        self.sides().stamp
    }

    /// Whether dialers must present a certificate.
    pub fn client_auth(&self) -> ClientAuth {
        self.0.client_auth
    }

    fn sides(&self) -> Sides {
        self.0
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The configuration for connections this node accepts.
    pub(crate) fn server(&self) -> Arc<ServerConfig> {
        self.sides().server
    }

    /// The configuration for connections this node makes.
    pub(crate) fn client(&self) -> Arc<ClientConfig> {
        self.sides().client
    }
}

impl Files {
    /// The certificate chain, key and CA bundle, as they are now.
    fn read(&self) -> Result<[Vec<u8>; 3], TlsError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })
        };
        Ok([read(&self.cert)?, read(&self.key)?, read(&self.ca)?])
    }

    fn build(&self, client_auth: ClientAuth) -> Result<Sides, TlsError> {
        let bytes = self.read()?;
        let [cert, key, ca] = &bytes;
        let mut sides = build(cert, key, ca, client_auth)?;
        sides.stamp = Some(stamp(&bytes));
        Ok(sides)
    }
}

/// A hash of the three files' bytes (to tell a change, not a secret).
fn stamp(bytes: &[Vec<u8>; 3]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// How often files are looked at by default.
const DEFAULT_WATCH: Duration = Duration::from_secs(5);

/// The provider: `ring` (builds with this toolchain's C compiler alone;
/// aws-lc-rs would also need its larger C build).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what));
    }
    Ok(certs)
}

fn build(
    cert_chain: &[u8],
    key: &[u8],
    ca: &[u8],
    client_auth: ClientAuth,
) -> Result<Sides, TlsError> {
    let chain = certificates(cert_chain, "certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
        what: "private key",
        detail: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(ca, "CA bundle")? {
        roots.add(ca)?;
    }
    let roots = Arc::new(roots);
    let provider = provider();
    let tls13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

    let server =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(tls13)?;
    let server = match client_auth {
        ClientAuth::None => server.with_no_client_auth(),
        ClientAuth::Required => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
            server.with_client_cert_verifier(verifier)
        }
    };
    let mut server = server.with_single_cert(chain.clone(), key.clone_key())?;
    // No resumption: links are long-lived, and a fresh handshake is what
    // the exporter binds the grid's set-up to.
    server.send_tls13_tickets = 0;

    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(tls13)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    client.resumption = Resumption::disabled();
    Ok(Sides {
        server: Arc::new(server),
        client: Arc::new(client),
        stamp: None,
        reload: 0,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
