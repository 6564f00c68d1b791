//! The file plane: files served on the node's port with `sendfile`
//! (`GET`/`HEAD /gridmux/v1/files/<route>?key=…`, signed), and fetched
//! from peers into memory or straight into a file.
//!
//! A route is served by a [`FileHandler`]; [`DirResolver`] serves a
//! directory. Requests are checked by `gridmux_core::http::files`;
//! [`FileLimits`] bound what one node sends at once.

mod fetch;
mod limits;
mod pool;
pub(crate) mod serve;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gridmux_core::auth::request::DEFAULT_SIGNATURE_VALIDITY;
use gridmux_sendfile::{DirResolver, Options, ResolveError};

pub(crate) use fetch::fetch;
pub use fetch::{FetchError, FileBody};
pub(crate) use limits::Transfers;
pub(crate) use pool::Pool;

/// A region of an open file: what a route serves for a key. Ranges of a
/// request apply within it.
#[derive(Debug)]
pub struct FileRegion {
    /// The file, opened for reading (never `O_DIRECT`).
    pub file: File,
    /// Where the region starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The file's last modification (for `Last-Modified` and `ETag`).
    pub modified: Option<SystemTime>,
}

impl FileRegion {
    /// The whole of `file`, as its metadata says now.
    pub fn whole(file: File) -> io::Result<Self> {
        let meta = file.metadata()?;
        Ok(Self {
            file,
            offset: 0,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Why a route serves nothing for a key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No such file (answered `404`).
    #[error("no such file")]
    NotFound,
    /// The key is not acceptable, e.g. it leaves the root (answered `400`).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The file could not be opened (answered `500`, logged).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Who signed a file request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signer<'a> {
    /// The name in the signature: chosen by whoever holds the secret, so a
    /// label, not an identity (any holder of the cluster's secret can sign
    /// as any name).
    pub name: &'a str,
    /// Signed with a secret of the cluster's; `false`: with one of the
    /// node's separate client secrets, and then `name` is never a
    /// member's.
    pub cluster_secret: bool,
}

/// What serves a file route: a key (and who signed for it) to a region of
/// an open file. It runs on the connection's task, so it should be quick:
/// an open and a `stat`, not a download.
pub trait FileHandler: Send + Sync + 'static {
    /// The region for `key`, asked for by `signer`.
    fn open(&self, key: &str, signer: Signer<'_>) -> Result<FileRegion, FileError>;
}

impl<F> FileHandler for F
where
    F: Fn(&str, Signer<'_>) -> Result<FileRegion, FileError> + Send + Sync + 'static,
{
    fn open(&self, key: &str, signer: Signer<'_>) -> Result<FileRegion, FileError> {
        self(key, signer)
    }
}

/// A directory served as is: the key is a relative path beneath it.
impl FileHandler for DirResolver {
    fn open(&self, key: &str, _signer: Signer<'_>) -> Result<FileRegion, FileError> {
        match Self::open(self, key) {
            Ok(f) => Ok(FileRegion {
                file: f.file,
                offset: 0,
                len: f.len,
                modified: f.modified,
            }),
            Err(ResolveError::NotFound) => Err(FileError::NotFound),
            Err(ResolveError::InvalidKey(why)) => Err(FileError::InvalidKey(why.into())),
            Err(ResolveError::Io(e)) => Err(FileError::Io(e)),
        }
    }
}

/// Limits of the file plane of one node.
#[derive(Debug, Clone)]
pub struct FileLimits {
    /// Transfers at once, node-wide (default 256); past it, `503`.
    pub max_transfers: usize,
    /// Transfers at once for one peer (default 64); past it, `503`. Each
    /// cluster member signing with the cluster's secret has this many;
    /// every other signer (clients, tools) shares one such allowance, so
    /// that inventing names buys no more.
    pub max_transfers_per_peer: usize,
    /// How long a file connection may make no progress (default 30 s):
    /// the socket of a transfer staying full (a peer that stops reading)
    /// ends it, and so does a fetch that receives nothing.
    pub send_timeout: Duration,
    /// The longest a signature may still be valid for (default 60 s); the
    /// validity of the signatures of this node's own fetches.
    pub max_signature_validity: Duration,
    /// How transfers send (sendfile or copy, chunk size, prefetch).
    pub transfer: Options,
    /// Send each body from a thread of its own (default off). A file not
    /// in the page cache then makes that thread wait for the disk (the
    /// prefetch and every `sendfile`), not a runtime worker; it costs a
    /// thread start per transfer. The route's handler still opens the
    /// file on the connection's task.
    pub send_on_thread: bool,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_transfers: 256,
            max_transfers_per_peer: 64,
            send_timeout: Duration::from_secs(30),
            max_signature_validity: DEFAULT_SIGNATURE_VALIDITY,
            transfer: Options::default(),
            send_on_thread: false,
        }
    }
}

/// A served route: its handler and its label in records.
pub(crate) struct Route {
    pub(crate) handler: Arc<dyn FileHandler>,
    /// `files/<route>`.
    pub(crate) label: Arc<str>,
}

/// A node's file routes, limits and fetch pool.
#[derive(Default)]
pub(crate) struct FilePlane {
    pub(crate) routes: HashMap<String, Route>,
    pub(crate) limits: FileLimits,
    pub(crate) transfers: Transfers,
    pub(crate) pool: Pool,
}

impl std::fmt::Debug for FilePlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePlane")
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
