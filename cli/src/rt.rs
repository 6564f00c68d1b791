//! Running an async `main` on the chosen runtime, Ctrl-C, and SIGHUP.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridmux::runtime::Runtime;
use gridmux::CancelSignal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::RuntimeKind;

/// Runs `body` to completion on `kind`, giving it the runtime (the
/// benchmark's runtimes: tokio multi-threaded, smol a thread per core).
pub(crate) fn block_on<T, F, Fut>(kind: RuntimeKind, body: F) -> T
where
    F: FnOnce(Arc<dyn Runtime>) -> Fut,
    Fut: Future<Output = T>,
{
    gridmux_bench::block_on(kind.into(), body)
}

/// A signal that fires on Ctrl-C (SIGINT) or SIGTERM (how systemd and
/// Kubernetes stop a process), or SIGHUP; a second one exits at once
/// (status 130).
pub(crate) fn interrupt() -> Result<CancelSignal, String> {
    on_signals(None)
}

/// As [`interrupt`], except that SIGHUP (how `systemctl reload` and
/// `kill -HUP` ask a daemon to read its files again) calls `reload`
/// instead, if given. The signals are handled on a thread of their own
/// for the rest of the process (signals that come while `reload` runs
/// are merged into one more call).
pub(crate) fn on_signals(reload: Option<Box<dyn Fn() + Send>>) -> Result<CancelSignal, String> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("signal handler: {e}"))?;
    let stop = CancelSignal::new();
    let fire = stop.clone();
    std::thread::Builder::new()
        .name("gridmux-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match &reload {
                    Some(reload) if signal == SIGHUP => reload(),
                    _ if fire.is_cancelled() => std::process::exit(130),
                    _ => fire.cancel(),
                }
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(stop)
}

/// Sleeps on `rt`'s timer.
pub(crate) async fn sleep(rt: &dyn Runtime, d: Duration) {
    gridmux::runtime::sleep_until(rt, Instant::now() + d).await;
}
