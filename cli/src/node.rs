//! `gridmux node`: one node until Ctrl-C (SIGHUP reloads its TLS files).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gridmux::sendfile::{DirResolver, Method};
use gridmux::tls::TlsConfig;
use gridmux::{ClientAccess, FileLimits, Grid, MetricsAccess};
use tracing::{info, warn};

use crate::{builtin, rt, secrets, RuntimeKind};

/// What `gridmux node` was asked for.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) name: String,
    pub(crate) peers: Vec<String>,
    pub(crate) secret_file: PathBuf,
    pub(crate) runtime: RuntimeKind,
    pub(crate) clients: Clients,
    /// A directory served under file route `files`.
    pub(crate) files: Option<PathBuf>,
    pub(crate) file_method: FileMethod,
    pub(crate) file_threads: bool,
    /// `/metrics` without a token.
    pub(crate) metrics_public: bool,
    /// The node's TLS identity, if any.
    pub(crate) tls: crate::tls_args::TlsArgs,
}

/// How the file plane sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FileMethod {
    /// `sendfile`, falling back to the copy where it is refused.
    Sendfile,
    /// Always `pread` + `write`.
    Copy,
}

/// Which clients the node lets in.
#[derive(Debug)]
pub(crate) enum Clients {
    /// Those with a cluster secret.
    ClusterSecret,
    /// Those with a secret of this file.
    Secrets(PathBuf),
    /// None.
    Refused,
}

pub(crate) fn run(opts: Options) -> Result<(), String> {
    // SIGHUP reloads the TLS files at once (they are also looked at every
    // few seconds); without TLS it stops the node, as SIGTERM does. The
    // handlers come first: a SIGHUP before the files are read is for
    // files about to be read anyway.
    let loaded = Arc::new(OnceLock::<TlsConfig>::new());
    let reload_tls = opts.tls.wanted().then(|| {
        let loaded = Arc::clone(&loaded);
        Box::new(move || loaded.get().map_or((), reload)) as rt::Reload
    });
    let signals = rt::on_signals(reload_tls)?;
    let secrets = secrets::read(&opts.secret_file)?;
    let client_secrets = match &opts.clients {
        Clients::Secrets(file) => Some(secrets::read(file)?),
        _ => None,
    };
    let mut peers = opts.peers.clone();
    if !peers.contains(&opts.name) {
        peers.push(opts.name.clone());
    }
    let listener = TcpListener::bind(opts.listen).map_err(|e| format!("listen: {e}"))?;
    let tls = opts.tls.config()?;
    if let Some(tls) = &tls {
        let _ = loaded.set(tls.clone());
    }
    rt::block_on(opts.runtime, |runtime| async move {
        let mut builder = builtin::register(Grid::builder(opts.name.clone(), peers))
            .secrets(secrets)
            .listener(listener);
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        builder = match (client_secrets, &opts.clients) {
            (Some(client_secrets), _) => builder.client_secrets(client_secrets),
            (None, Clients::Refused) => builder.clients(ClientAccess::Refused),
            (None, _) => builder,
        };
        if let Some(dir) = &opts.files {
            let resolver = DirResolver::new(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut limits = FileLimits {
                send_on_thread: opts.file_threads,
                ..FileLimits::default()
            };
            if opts.file_method == FileMethod::Copy {
                limits.transfer.method = Method::Copy;
            }
            builder = builder.files("files", resolver).file_limits(limits);
        }
        let access = if opts.metrics_public {
            MetricsAccess::Public
        } else {
            MetricsAccess::Token
        };
        builder = builder.metrics(access);
        let grid = builder.start(runtime).map_err(|e| e.to_string())?;
        info!(name = %opts.name, listen = %grid.local_addr(), runtime = ?opts.runtime,
              "node running; Ctrl-C stops it");
        // From here on a stop signal stops the node gracefully.
        signals.started();
        signals.stop.cancelled().await;
        info!("stopping");
        grid.shutdown(Duration::from_secs(2)).await;
        Ok(())
    })
}

/// Reads the TLS files again (on SIGHUP): new connections use what they
/// hold, links up keep their sessions; files that do not load leave the
/// identity in use as it is.
fn reload(tls: &TlsConfig) {
    match tls.reload() {
        Ok(()) => info!("SIGHUP: TLS certificate, key and CA reloaded"),
        Err(error) => warn!(%error, "SIGHUP: TLS files not reloaded; the identity in use stays"),
    }
}
