//! A cancellation signal: set once, awaited by any number of tasks.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// Fires when an exchange is cancelled (by the caller, its deadline, the
/// loss of its link or shutdown). Clones share one signal.
#[derive(Clone, Default)]
pub struct CancelSignal {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    set: AtomicBool,
    event: Event,
}

impl fmt::Debug for CancelSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelSignal")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelSignal {
    /// A signal not yet fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal (idempotent).
    pub fn cancel(&self) {
        if !self.inner.set.swap(true, Ordering::AcqRel) {
            self.inner.event.notify(usize::MAX);
        }
    }

    /// Whether `other` is this signal (a clone of it).
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether it fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.set.load(Ordering::Acquire)
    }

    /// Completes once the signal fires.
    pub async fn cancelled(&self) {
        loop {
            if self.is_cancelled() {
                return;
            }
            let listener = self.inner.event.listen();
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }

    /// Runs `future` until it completes or the signal fires (then the
    /// future is dropped and `None` returned).
    pub async fn run<F: Future>(&self, future: F) -> Option<F::Output> {
        let future = pin!(future);
        let cancelled = pin!(self.cancelled());
        futures_lite::future::or(async { Some(future.await) }, async {
            cancelled.await;
            None
        })
        .await
    }
}

/// Fires a change notification that tasks wait on (link state changes).
#[derive(Debug, Default)]
pub(crate) struct Changes {
    event: Event,
}

impl Changes {
    /// Wakes every waiter.
    pub(crate) fn notify(&self) {
        self.event.notify(usize::MAX);
    }

    /// Waits until `ready()` holds, re-checking on every notification.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        loop {
            if ready() {
                return;
            }
            let listener = self.event.listen();
            if ready() {
                return;
            }
            listener.await;
        }
    }
}
