//! Runs one test body on tokio and on smol, with a cluster of real nodes
//! on loopback.

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use gridmux::runtime::{Runtime, SmolRuntime, TokioRuntime};
use gridmux::tls::{ClientAuth, TlsConfig};
use gridmux::{Grid, GridBuilder, Peer, ReconnectSchedule};
use gridmux_bench::pki::ThrowawayCa;

/// Every test body ends within this.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Generates `on_tokio::NAME` and `on_smol::NAME` for each body `NAME`
/// (an `async fn(Env)` in the calling module).
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_tokio {
            $(#[test]
            fn $name() {
                $crate::harness::run_tokio(super::$name);
            })*
        }
        mod on_smol {
            $(#[test]
            fn $name() {
                $crate::harness::run_smol(super::$name);
            })*
        }
    };
}
pub(crate) use suite;

/// [`suite!`], and each body again over TLS (see [`tls_suite!`]).
macro_rules! suite_and_tls {
    ($($name:ident),* $(,)?) => {
        $crate::harness::suite!($($name),*);
        $crate::harness::tls_suite!($($name),*);
    };
}
pub(crate) use suite_and_tls;

/// `on_tokio_tls::NAME` and `on_smol_tls::NAME` for each body: every node
/// of its clusters runs TLS 1.3 (mutual) with a certificate from a
/// throwaway CA.
macro_rules! tls_suite {
    ($($name:ident),* $(,)?) => {
        mod on_tokio_tls {
            $(#[test]
            fn $name() {
                $crate::harness::run_tokio_tls(super::$name);
            })*
        }
        mod on_smol_tls {
            $(#[test]
            fn $name() {
                $crate::harness::run_smol_tls(super::$name);
            })*
        }
    };
}
pub(crate) use tls_suite;

/// Runs `body` on a two-worker tokio runtime.
pub(crate) fn run_tokio<F, Fut>(body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    on_tokio(None, body);
}

/// [`run_tokio`], every node over TLS.
pub(crate) fn run_tokio_tls<F, Fut>(body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    on_tokio(Some(loopback_tls()), body);
}

/// Runs `body` on smol, with a two-thread executor (as on tokio: one
/// link's tasks must not all share one thread).
pub(crate) fn run_smol<F, Fut>(body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    on_smol(None, body);
}

/// [`run_smol`], every node over TLS.
pub(crate) fn run_smol_tls<F, Fut>(body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    on_smol(Some(loopback_tls()), body);
}

/// One identity for every loopback node (its certificate names
/// 127.0.0.1), from a CA of this test alone.
fn loopback_tls() -> TlsConfig {
    ThrowawayCa::new("e2e cluster CA").loopback(ClientAuth::Required)
}

fn on_tokio<F, Fut>(tls: Option<TlsConfig>, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let env = Env {
            rt: Arc::new(TokioRuntime::current()),
            tls,
        };
        env.clone().within(TEST_LIMIT, body(env)).await;
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn on_smol<F, Fut>(tls: Option<TlsConfig>, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    init_tracing();
    smol::block_on(async {
        let env = Env {
            rt: Arc::new(SmolRuntime::with_threads(2)),
            tls,
        };
        env.clone().within(TEST_LIMIT, body(env)).await;
    });
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// What a test body gets: the runtime, and helpers on it.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub(crate) rt: Arc<dyn Runtime>,
    /// Every node's TLS identity, when the body runs over TLS.
    pub(crate) tls: Option<TlsConfig>,
}

impl Env {
    /// Sleeps on the runtime's timer.
    pub(crate) async fn sleep(&self, d: Duration) {
        gridmux::runtime::sleep_until(&*self.rt, Instant::now() + d).await;
    }

    /// `future`'s output; panics if it takes longer than `limit`.
    pub(crate) async fn within<T>(&self, limit: Duration, future: impl Future<Output = T>) -> T {
        self.maybe_within(limit, future)
            .await
            .unwrap_or_else(|| panic!("did not complete within {limit:?}"))
    }

    /// `future`'s output, or `None` after `limit`.
    pub(crate) async fn maybe_within<T>(
        &self,
        limit: Duration,
        future: impl Future<Output = T>,
    ) -> Option<T> {
        gridmux::runtime::timeout(&*self.rt, limit, future).await
    }

    /// Runs `future` as a task; await the handle for its output.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        let slot: Arc<Mutex<TaskSlot<T>>> = Arc::default();
        let done = slot.clone();
        self.rt.spawn(Box::pin(async move {
            let value = future.await;
            let mut slot = done.lock().unwrap();
            slot.value = Some(value);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }));
        Task { slot }
    }

    /// `n` nodes on loopback, all connected. `setup` adds handlers and
    /// settings to node `i`'s builder.
    pub(crate) async fn cluster(
        &self,
        n: usize,
        setup: impl Fn(usize, GridBuilder) -> GridBuilder,
    ) -> Cluster {
        let cluster = self.start(n, setup);
        for grid in &cluster.grids {
            grid.wait_all_connected(Duration::from_secs(10))
                .await
                .expect("cluster connects");
        }
        cluster
    }

    /// `n` nodes on loopback, started but not waited for.
    pub(crate) fn start(
        &self,
        n: usize,
        setup: impl Fn(usize, GridBuilder) -> GridBuilder,
    ) -> Cluster {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let names: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        let grids = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                let mut builder = Grid::builder(names[i].clone(), names.clone())
                    .secret("e2e secret")
                    .listener(listener)
                    .reconnect(fast_reconnect());
                if let Some(tls) = &self.tls {
                    builder = builder.tls(tls.clone());
                }
                setup(i, builder)
                    .start(self.rt.clone())
                    .expect("grid starts")
            })
            .collect();
        Cluster { grids, names }
    }
}

/// Retries failed dials every 50–100 ms.
pub(crate) fn fast_reconnect() -> ReconnectSchedule {
    ReconnectSchedule {
        base: Duration::from_millis(50),
        growth: 1.0,
        cap: Duration::from_millis(50),
    }
}

/// Nodes of one test.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) grids: Vec<Grid>,
    pub(crate) names: Vec<String>,
}

impl Cluster {
    /// Node `from`'s handle on node `to`.
    pub(crate) fn peer(&self, from: usize, to: usize) -> Peer {
        self.grids[from].peer(&self.names[to]).expect("a peer")
    }

    /// Stops every node.
    pub(crate) async fn shutdown(self) {
        for grid in &self.grids {
            grid.shutdown(Duration::from_secs(1)).await;
        }
    }
}

#[derive(Debug)]
struct TaskSlot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Default for TaskSlot<T> {
    fn default() -> Self {
        Self {
            value: None,
            waker: None,
        }
    }
}

/// The output of a spawned task.
#[derive(Debug)]
pub(crate) struct Task<T> {
    slot: Arc<Mutex<TaskSlot<T>>>,
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        let mut slot = self.slot.lock().unwrap();
        match slot.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A flag a handler sets when it is dropped or cancelled, for tests to
/// wait on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flag(Arc<gridmux::CancelSignal>);

impl Flag {
    pub(crate) fn set(&self) {
        self.0.cancel();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.is_cancelled()
    }

    pub(crate) async fn wait(&self) {
        self.0.cancelled().await;
    }
}

/// Sets its flag when dropped (a handler future being dropped on cancel).
#[derive(Debug)]
pub(crate) struct DropGuard(pub(crate) Flag);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set();
    }
}
