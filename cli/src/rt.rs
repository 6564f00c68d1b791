//! Running an async `main` on the chosen runtime, and Ctrl-C.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridmux::runtime::Runtime;
use gridmux::CancelSignal;

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
/// Kubernetes stop a process); a second one exits at once (status 130).
pub(crate) fn interrupt() -> Result<CancelSignal, String> {
    let signal = CancelSignal::new();
    let fire = signal.clone();
    ctrlc::set_handler(move || {
        if fire.is_cancelled() {
            std::process::exit(130);
        }
        fire.cancel();
    })
    .map_err(|e| format!("signal handler: {e}"))?;
    Ok(signal)
}

/// Sleeps on `rt`'s timer.
pub(crate) async fn sleep(rt: &dyn Runtime, d: Duration) {
    gridmux::runtime::sleep_until(rt, Instant::now() + d).await;
}
