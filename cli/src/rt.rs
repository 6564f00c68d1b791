//! Running an async `main` on the chosen runtime, Ctrl-C, and SIGHUP.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridmux::runtime::Runtime;
use gridmux::CancelSignal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
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

/// What SIGHUP does for a node with TLS: read its files again.
pub(crate) type Reload = Box<dyn Fn() + Send>;

/// As [`interrupt`], except that SIGHUP (how `kill -HUP`, or a service
/// manager's reload, asks a daemon to read its files again) calls
/// `reload` instead, if given. The signals are handled on a thread of
/// their own for the rest of the process; `reload` runs on another, so
/// that a reload that blocks (a file on a hung mount) or panics never
/// stands in the way of stopping. SIGHUPs that come while a reload runs
/// are merged into one more.
pub(crate) fn on_signals(reload: Option<Reload>) -> Result<CancelSignal, String> {
    let fail = |e: std::io::Error| format!("signal handler: {e}");
    let reloads = reload.map(reload_thread).transpose()?;
    let stops: &[i32] = if reloads.is_some() {
        &[SIGINT, SIGTERM]
    } else {
        &[SIGINT, SIGTERM, SIGHUP]
    };
    // A second stop signal exits at once, from the handler itself: it
    // cannot be merged with the first or wait for a busy thread.
    let armed = Arc::new(AtomicBool::new(false));
    for &signal in stops {
        flag::register_conditional_shutdown(signal, 130, Arc::clone(&armed)).map_err(fail)?;
        flag::register(signal, Arc::clone(&armed)).map_err(fail)?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(fail)?;
    let stop = CancelSignal::new();
    let fire = stop.clone();
    std::thread::Builder::new()
        .name("gridmux-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match &reloads {
                    // Full: a reload is already due, this one merges.
                    Some(reloads) if signal == SIGHUP => drop(reloads.try_send(())),
                    _ => fire.cancel(),
                }
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(stop)
}

/// A thread that runs `reload` once per message, surviving its panics.
fn reload_thread(reload: Reload) -> Result<SyncSender<()>, String> {
    let (due, reloads) = sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("gridmux-reload".into())
        .spawn(move || {
            for () in reloads {
                let _ = std::panic::catch_unwind(AssertUnwindSafe(&reload));
            }
        })
        .map_err(|e| format!("reload thread: {e}"))?;
    Ok(due)
}

/// Sleeps on `rt`'s timer.
pub(crate) async fn sleep(rt: &dyn Runtime, d: Duration) {
    gridmux::runtime::sleep_until(rt, Instant::now() + d).await;
}
