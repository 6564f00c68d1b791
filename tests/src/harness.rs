//! Shared pieces of the WebSocket harness binaries (`ws-echo`,
//! `ws-autobahn-client`), which run on the async adapters
//! ([`gridmux::WebSocket`]) on tokio or smol.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use gridmux::runtime::{Runtime, SmolRuntime, TokioRuntime};
use gridmux_core::ws::Config;

/// Parses `ws://HOST:PORT[/...]` into `HOST:PORT`.
pub fn ws_authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("ws://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// Value following `--name` in `args`.
pub fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Installs a `tracing` subscriber reading `RUST_LOG` (default `warn`),
/// with colours only on a terminal and without `NO_COLOR`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colours_wanted())
        .try_init();
}

/// Whether logs on standard error may carry ANSI colours: it is a terminal
/// and `NO_COLOR` is unset or empty (<https://no-color.org>).
pub fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// If `args` ask for help (`--help` or `-h`), prints `usage` (the binary's
/// doc line) and returns `true`: the binary then exits without starting.
pub fn help_requested(args: &[String], usage: &str) -> bool {
    let asked = args.iter().skip(1).any(|a| a == "--help" || a == "-h");
    if asked {
        println!("{usage}");
    }
    asked
}

/// Endpoint limits of the Autobahn harnesses: large enough for group 9,
/// which sends 16 MiB messages.
pub fn harness_config() -> Config {
    Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        max_send_queue: 256 << 20,
        ..Config::default()
    }
}

/// Runs `body` on the runtime named `kind` (`tokio` or `smol`).
pub fn block_on<T, F, Fut>(kind: &str, body: F) -> io::Result<T>
where
    F: FnOnce(Arc<dyn Runtime>) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    match kind {
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let out = rt.block_on(async { body(Arc::new(TokioRuntime::current())).await });
            rt.shutdown_timeout(Duration::from_secs(1));
            out
        }
        "smol" => smol::block_on(body(Arc::new(SmolRuntime::new()))),
        other => Err(io::Error::other(format!(
            "unknown runtime {other:?} (tokio or smol)"
        ))),
    }
}

/// `future`'s output, or `None` once `limit` passed.
pub async fn within<T>(
    rt: &dyn Runtime,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Option<T> {
    gridmux::runtime::timeout(rt, limit, future).await
}
