//! `gridmux`: run a node, run a local cluster, or benchmark one link.

mod bench;
mod bench_files;

mod call;
mod certs;

use gridmux_bench::builtin;
mod cluster;
mod fetch;
mod node;
mod rt;
mod secrets;
mod sign;
mod tls_args;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gridmux",
    version,
    about = "Inter-node RPC over one WebSocket per pair of servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which async runtime drives the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    Tokio,
    Smol,
}

impl From<RuntimeKind> for gridmux_bench::RuntimeKind {
    fn from(kind: RuntimeKind) -> Self {
        match kind {
            RuntimeKind::Tokio => Self::Tokio,
            RuntimeKind::Smol => Self::Smol,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one node with the built-in handlers (1 echo, 2 checksum,
    /// 3 counting stream, 4 spawned echo, 5 typed echo, 6 sink stream)
    /// until Ctrl-C.
    Node {
        /// Address to listen on; also the node's name unless --name is given.
        #[arg(long)]
        listen: SocketAddr,
        /// Every node of the cluster (host:port, comma-separated; this one
        /// may be included).
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<String>,
        /// File holding the cluster's secrets, one per line, current
        /// first (more lines during a change of secret).
        #[arg(long)]
        secret_file: PathBuf,
        /// The node's name as the peers know it (default: --listen).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value = "tokio")]
        runtime: RuntimeKind,
        /// Refuse clients (`gridmux call` and other tools).
        #[arg(long, conflicts_with = "client_secret_file")]
        no_clients: bool,
        /// Let clients in with these secrets (one per line) instead of
        /// the cluster's.
        #[arg(long)]
        client_secret_file: Option<PathBuf>,
        /// Serve this directory on the file plane, under route `files`
        /// (`gridmux fetch`, `gridmux sign`).
        #[arg(long)]
        files: Option<PathBuf>,
        /// How the file plane sends: sendfile (the copy where the file
        /// system refuses it) or always the copy.
        #[arg(long, value_enum, default_value = "sendfile")]
        file_method: node::FileMethod,
        /// Send each file body from a thread of its own (a cold page cache
        /// then never stalls a runtime worker).
        #[arg(long)]
        file_threads: bool,
        /// Serve GET /metrics to anyone (by default a scraper needs the
        /// bearer token that `gridmux prometheus-config` prints).
        #[arg(long)]
        metrics_public: bool,
        #[command(flatten)]
        tls: tls_args::TlsArgs,
    },
    /// Makes a throwaway cluster CA and a certificate for each node (for
    /// trying TLS out: `gridmux node --tls-cert ... --tls-key ...
    /// --tls-ca ...`).
    Certs(certs::Options),
    /// Prints a Prometheus scrape job for a node's /metrics, with the
    /// bearer token of the cluster's secret.
    PrometheusConfig {
        /// The node (host:port); more with commas.
        #[arg(long, value_delimiter = ',', required = true)]
        node: Vec<String>,
        /// File with the cluster's secrets (the first one makes the token).
        #[arg(long)]
        secret_file: PathBuf,
        /// The job's name.
        #[arg(long, default_value = "gridmux")]
        job: String,
        /// How often Prometheus scrapes.
        #[arg(long, default_value = "15s")]
        interval: String,
    },
    /// Downloads a file from a node's file plane (a signed GET; sendfile
    /// on the node, splice into -o FILE here), with a progress bar.
    Fetch(fetch::Options),
    /// Measures the file plane: a file warm in the page cache fetched over
    /// loopback from a node with sendfile, with the copy fallback, from a
    /// plain write from memory, and from nginx (when installed).
    BenchFiles(bench_files::Options),
    /// Prints a ready curl command for a file of a node's file plane,
    /// signed in its URL (or with --header, in a header).
    Sign(sign::Options),
    /// Calls a handler of a node as an authenticated client and prints the
    /// answer (or each stream message); exits non-zero with the error's
    /// name on failure.
    Call(call::Options),
    /// Runs a cluster on loopback in this process, exchanges requests and
    /// streams between all nodes, and prints what happened.
    Cluster {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// How long the nodes talk.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        #[arg(long, value_enum, default_value = "tokio")]
        runtime: RuntimeKind,
    },
    /// The main job: an in-process cluster on loopback runs every plane,
    /// beside raw TCP baselines and peers (yamux, tokio-tungstenite,
    /// fastwebsockets), and prints a table (Ctrl-C prints what was
    /// measured so far).
    Bench(bench::Args),
}

/// A duration such as `500ms`, `10s`, `2m` (a bare number is seconds).
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.');
    let (number, unit) = text.split_at(split.unwrap_or(text.len()));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Prints a scrape job for `nodes` with the token of the secret file.
fn prometheus_config(
    nodes: &[String],
    secret_file: &std::path::Path,
    job: &str,
    interval: &str,
) -> Result<(), String> {
    let keys = gridmux::Keyring::new(secrets::read(secret_file)?).map_err(|e| e.to_string())?;
    let token = gridmux_core::auth::metrics::token(&keys);
    // YAML single-quoted scalars: a quote is doubled.
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let interval_ok = interval.len() > 1
        && interval.ends_with(['s', 'm', 'h'])
        && interval[..interval.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit());
    if !interval_ok {
        return Err(format!(
            "interval {interval:?}: a number and s, m or h (15s)"
        ));
    }
    let targets: Vec<String> = nodes.iter().map(|n| quote(n)).collect();
    let job = quote(job);
    println!(
        "scrape_configs:\n  - job_name: {job}\n    scrape_interval: {interval}\n    \
         metrics_path: /metrics\n    authorization:\n      type: Bearer\n      \
         credentials: '{token}'\n    static_configs:\n      - targets: [{}]",
        targets.join(", ")
    );
    Ok(())
}

/// Whether logs on standard error may carry ANSI colours: it is a terminal
/// and `NO_COLOR` is unset or empty (<https://no-color.org>).
fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A node logs its links; the cluster and bench commands print tables.
    let default_filter = match cli.command {
        Command::Node { .. } => "info",
        Command::Cluster { .. }
        | Command::Bench(_)
        | Command::Call(_)
        | Command::Fetch(_)
        | Command::BenchFiles(_)
        | Command::PrometheusConfig { .. }
        | Command::Certs(_)
        | Command::Sign(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colours_wanted())
        // A log nobody reads any more (a closed terminal, a reader gone)
        // loses lines; reporting that on stderr too would panic the
        // thread that logged.
        .log_internal_errors(false)
        .init();
    let result = match cli.command {
        Command::Node {
            listen,
            peers,
            secret_file,
            name,
            runtime,
            no_clients,
            client_secret_file,
            files,
            file_method,
            file_threads,
            metrics_public,
            tls,
        } => node::run(node::Options {
            metrics_public,
            tls,
            files,
            file_method,
            file_threads,
            listen,
            name: name.unwrap_or_else(|| listen.to_string()),
            peers,
            secret_file,
            runtime,
            clients: match (no_clients, client_secret_file) {
                (true, _) => node::Clients::Refused,
                (false, Some(file)) => node::Clients::Secrets(file),
                (false, None) => node::Clients::ClusterSecret,
            },
        }),
        Command::Call(options) => call::run(options).map_err(|e| e.to_string()),
        Command::Fetch(options) => fetch::run(options),
        Command::Sign(options) => sign::run(&options),
        Command::Certs(options) => certs::run(&options),
        Command::BenchFiles(options) => bench_files::run(&options),
        Command::PrometheusConfig {
            node,
            secret_file,
            job,
            interval,
        } => prometheus_config(&node, &secret_file, &job, &interval),
        Command::Cluster {
            nodes,
            seconds,
            runtime,
        } => cluster::run(nodes, std::time::Duration::from_secs(seconds), runtime),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not `eprintln!`: a stderr nobody reads must not turn the
            // failure into a panic (status 101).
            let _ = writeln!(std::io::stderr(), "gridmux: {e}");
            ExitCode::FAILURE
        }
    }
}
