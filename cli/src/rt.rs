//! Running an async `main` on the chosen runtime, Ctrl-C, and SIGHUP.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridmux::runtime::Runtime;
use gridmux::CancelSignal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;
use tracing::warn;

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
    let signals = on_signals(None)?;
    signals.started();
    Ok(signals.stop)
}

/// What SIGHUP does for a node with TLS: read its files again.
pub(crate) type Reload = Box<dyn Fn() + Send>;

/// The process's signals, handled from [`on_signals`] on.
pub(crate) struct ProcessSignals {
    /// Fires on the first SIGINT or SIGTERM (or SIGHUP, without a reload).
    pub(crate) stop: CancelSignal,
    started: Arc<AtomicBool>,
}

impl ProcessSignals {
    /// Whoever waits for `stop` does from now on; until then, a stop
    /// signal ends the process at once (status 128 + the signal's number,
    /// as its default action would), so that a start that blocks (a file
    /// on a hung mount) can still be stopped.
    pub(crate) fn started(&self) {
        self.started.store(true, Ordering::Release);
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP from now on, on a thread of their
/// own for the rest of the process: a first stop signal fires `stop` once
/// [`started`](ProcessSignals::started), a second exits at once (status
/// 130). SIGHUP (how `kill -HUP`, or a service manager's reload, asks a
/// daemon to read its files again) calls `reload` if given, on another
/// thread, so that a reload that blocks (a file on a hung mount) or
/// panics never stands in the way of stopping; SIGHUPs that come while a
/// reload runs are merged into one more. Without `reload`, SIGHUP stops.
pub(crate) fn on_signals(reload: Option<Reload>) -> Result<ProcessSignals, String> {
    let fail = |e: std::io::Error| format!("signal handler: {e}");
    // Delivered from here on; the handlers below only come before it.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(fail)?;
    let reloads = reload.map(Reloads::start).transpose()?;
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
    let stop = CancelSignal::new();
    let started = Arc::new(AtomicBool::new(false));
    let (fire, running) = (stop.clone(), Arc::clone(&started));
    std::thread::Builder::new()
        .name("gridmux-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match &reloads {
                    Some(reloads) if signal == SIGHUP => reloads.ask(),
                    _ if !running.load(Ordering::Acquire) => std::process::exit(128 + signal),
                    _ => fire.cancel(),
                }
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(ProcessSignals { stop, started })
}

/// A thread that runs a reload once per request, surviving its panics.
struct Reloads {
    due: SyncSender<()>,
    /// A reload is running (it may be stuck on its files).
    running: Arc<AtomicBool>,
}

impl Reloads {
    fn start(reload: Reload) -> Result<Self, String> {
        let (due, requests) = sync_channel::<()>(1);
        let running = Arc::new(AtomicBool::new(false));
        let busy = Arc::clone(&running);
        std::thread::Builder::new()
            .name("gridmux-reload".into())
            .spawn(move || {
                for () in requests {
                    busy.store(true, Ordering::Release);
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(&reload));
                    busy.store(false, Ordering::Release);
                }
            })
            .map_err(|e| format!("reload thread: {e}"))?;
        Ok(Self { due, running })
    }

    /// One more reload (merged with one already waiting).
    fn ask(&self) {
        if self.running.load(Ordering::Acquire) {
            warn!("SIGHUP: the last reload has not ended (its files may block); this one waits");
        }
        let _ = self.due.try_send(());
    }
}

/// Sleeps on `rt`'s timer.
pub(crate) async fn sleep(rt: &dyn Runtime, d: Duration) {
    gridmux::runtime::sleep_until(rt, Instant::now() + d).await;
}
