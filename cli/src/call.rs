//! `gridmux call`: one request (or stream) to a node, as an authenticated
//! client.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use gridmux::{Client, Error};

use crate::{builtin, rt, secrets, RuntimeKind};

/// What `gridmux call` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The node's name (host:port, as the cluster knows it; also the
    /// address dialled): the node must prove it is that node.
    #[arg(long)]
    pub(crate) node: String,
    /// File with the client secrets, one per line: the first proves, any
    /// verifies the node.
    #[arg(long)]
    pub(crate) secret_file: PathBuf,
    /// Handler id (1-255), or echo, checksum, count.
    pub(crate) handler: String,
    /// The payload: text, @FILE, or - for standard input.
    pub(crate) payload: Option<String>,
    #[arg(long)]
    pub(crate) subroute: Option<String>,
    /// How long to wait for the link and for the answer.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    pub(crate) timeout: Duration,
    /// Open a stream and print every message (one per line).
    #[arg(long)]
    pub(crate) stream: bool,
    /// The payload is JSON, sent as MessagePack; answers are printed as
    /// JSON.
    #[arg(long)]
    pub(crate) typed: bool,
    /// This client's name in the node's log.
    #[arg(long, default_value = "gridmux-call")]
    pub(crate) name: String,
    #[arg(long, value_enum, default_value = "tokio")]
    pub(crate) runtime: RuntimeKind,
    #[command(flatten)]
    pub(crate) tls: crate::tls_args::TlsArgs,
}

/// Why a call failed: the error's name goes to stderr and the exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad arguments or files.
    Usage(String),
    /// No link to the node within the timeout.
    NotConnected(String, Duration),
    /// The call itself failed.
    Call(Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(m) => f.write_str(m),
            Self::NotConnected(node, timeout) => write!(
                f,
                "Disconnected: no link to {node} within {timeout:?} (is it running, is that \
                 its name, is the secret right? its log says which)"
            ),
            Self::Call(e) => write!(f, "{}: {e}", e.name()),
        }
    }
}

/// A handler id: a number, or a built-in handler's name.
fn handler_id(text: &str) -> Result<u8, String> {
    match text {
        "echo" => Ok(builtin::ECHO),
        "checksum" => Ok(builtin::CHECKSUM),
        "count" => Ok(builtin::COUNT),
        _ => text
            .parse()
            .map_err(|_| format!("handler {text:?}: a number 1-255 or echo, checksum, count")),
    }
}

/// The payload: text, `@file`, `-` (standard input), or nothing. With
/// `typed`, the text is JSON and is sent as MessagePack.
fn payload(arg: Option<&str>, typed: bool) -> Result<Bytes, String> {
    let raw = match arg {
        None => Vec::new(),
        Some("-") => {
            let mut all = Vec::new();
            std::io::stdin()
                .read_to_end(&mut all)
                .map_err(|e| format!("reading standard input: {e}"))?;
            all
        }
        Some(arg) => match arg.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?,
            None => arg.as_bytes().to_vec(),
        },
    };
    if !typed {
        return Ok(Bytes::from(raw));
    }
    let text = if raw.is_empty() { &b"null"[..] } else { &raw };
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("payload is not JSON: {e}"))?;
    gridmux::codec::to_bytes(&value).map_err(|e| e.to_string())
}

/// Writes one answer or stream message to standard output.
fn print(out: &mut impl std::io::Write, bytes: &[u8], typed: bool) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Usage(format!("writing the answer: {e}"));
    if typed {
        let value: serde_json::Value = gridmux::codec::from_bytes(bytes).map_err(Failure::Call)?;
        writeln!(out, "{value}").map_err(io)
    } else {
        out.write_all(bytes).map_err(io)?;
        out.write_all(b"\n").map_err(io)
    }
}

pub(crate) fn run(opts: Options) -> Result<(), Failure> {
    let handler = handler_id(&opts.handler).map_err(Failure::Usage)?;
    let first = payload(opts.payload.as_deref(), opts.typed).map_err(Failure::Usage)?;
    let secrets = secrets::read(&opts.secret_file).map_err(Failure::Usage)?;
    let tls = opts.tls.config().map_err(Failure::Usage)?;
    rt::block_on(opts.runtime, |runtime| async move {
        let mut client = Client::builder(opts.name.clone(), opts.node.clone()).secrets(secrets);
        if let Some(tls) = tls {
            client = client.tls(tls);
        }
        let client = client
            .start(runtime)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let result = exchange(&client, handler, first, &opts).await;
        client.shutdown(Duration::from_millis(500)).await;
        result
    })
}

async fn exchange(
    client: &Client,
    handler: u8,
    first: Bytes,
    opts: &Options,
) -> Result<(), Failure> {
    // Not connected within the timeout: a wrong address, name or secret
    // (the node tells an unauthenticated client nothing more; its log says
    // which).
    if client.wait_connected(opts.timeout).await.is_err() {
        return Err(Failure::NotConnected(opts.node.clone(), opts.timeout));
    }
    let peer = client.peer();
    let mut out = std::io::stdout().lock();
    if !opts.stream {
        let mut request = peer.request(handler, first).timeout(opts.timeout);
        if let Some(subroute) = &opts.subroute {
            request = request.subroute(subroute);
        }
        let answer = request.await.map_err(Failure::Call)?;
        return print(&mut out, &answer, opts.typed);
    }
    let mut open = peer
        .open_stream(handler, first)
        .timeout(opts.timeout)
        .no_input();
    if let Some(subroute) = &opts.subroute {
        open = open.subroute(subroute);
    }
    let (_tx, mut rx) = open.await.map_err(Failure::Call)?;
    while let Some(message) = rx.recv().await.map_err(Failure::Call)? {
        print(&mut out, &message, opts.typed)?;
    }
    Ok(())
}
