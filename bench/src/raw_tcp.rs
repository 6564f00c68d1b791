//! Raw TCP on the same runtime: the floors gridmux is measured against.
//! Ping-pong (one message in flight per connection), pipelined (many in
//! flight on one connection: the floor for a multiplexed link) and bulk
//! (one connection writing as fast as it can: the loopback limit).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::task::{ready, Poll};
use std::time::Instant;

use futures::channel::mpsc;
use futures::StreamExt;
use gridmux::runtime::{Runtime, Socket};
use gridmux::CancelSignal;

use crate::measure::{closed_loop, Measured, Window};
use crate::progress::Live;

/// An echo server on loopback: every connection gets back what it sends.
/// It stops with `stop`.
pub(crate) fn echo_server(
    rt: &Arc<dyn Runtime>,
    stop: &CancelSignal,
) -> Result<SocketAddr, String> {
    serve(rt, stop, |socket| async move {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match read_some(&*socket, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if write_all(&*socket, &buf[..n]).await.is_err() {
                return;
            }
        }
    })
}

/// A server that reads and drops everything.
pub(crate) fn discard_server(
    rt: &Arc<dyn Runtime>,
    stop: &CancelSignal,
) -> Result<SocketAddr, String> {
    serve(rt, stop, |socket| async move {
        let mut buf = vec![0; 256 * 1024];
        while let Ok(n) = read_some(&*socket, &mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
}

/// Accepts on loopback and runs `handle` per connection until `stop`.
fn serve<F, Fut>(
    rt: &Arc<dyn Runtime>,
    stop: &CancelSignal,
    handle: F,
) -> Result<SocketAddr, String>
where
    F: Fn(Arc<dyn Socket>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = rt.adopt_listener(listener).map_err(|e| e.to_string())?;
    let (rt2, stop2) = (rt.clone(), stop.clone());
    rt.spawn(Box::pin(async move {
        let accept = async {
            loop {
                let Ok(socket) = poll_fn(|cx| listener.poll_accept(cx)).await else {
                    return;
                };
                let socket: Arc<dyn Socket> = Arc::from(socket);
                let stop = stop2.clone();
                let served = handle(socket);
                rt2.spawn(Box::pin(async move {
                    stop.run(served).await;
                }));
            }
        };
        stop2.run(accept).await;
    }));
    Ok(addr)
}

/// `concurrency` connections, each with one message of `size` bytes in
/// flight.
pub(crate) async fn ping_pong(
    rt: &Arc<dyn Runtime>,
    size: usize,
    concurrency: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    let server_stop = CancelSignal::new();
    let addr = echo_server(rt, &server_stop)?;
    let mut sockets = Vec::new();
    for _ in 0..concurrency {
        let socket = rt.connect(addr).await.map_err(|e| e.to_string())?;
        sockets.push(Arc::<dyn Socket>::from(socket));
    }
    let payload = Arc::new(vec![0x5a; size]);
    let m = closed_loop(rt, concurrency, window, stop, live, |w| {
        let socket = sockets[w].clone();
        let payload = payload.clone();
        let buf = Arc::new(Mutex::new(vec![0; size]));
        move || {
            let (socket, payload, buf) = (socket.clone(), payload.clone(), buf.clone());
            async move {
                write_all(&*socket, &payload)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut mine = std::mem::take(&mut *buf.lock().unwrap());
                let read = read_exact(&*socket, &mut mine).await;
                *buf.lock().unwrap() = mine;
                read.map_err(|e| e.to_string())?;
                Ok(size as u64)
            }
        }
    })
    .await;
    server_stop.cancel();
    Ok(m)
}

/// One connection with `in_flight` messages of `size` bytes outstanding:
/// a writer sends one whenever an answer comes back.
pub(crate) async fn pipelined(
    rt: &Arc<dyn Runtime>,
    size: usize,
    in_flight: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    let server_stop = CancelSignal::new();
    let addr = echo_server(rt, &server_stop)?;
    let socket: Arc<dyn Socket> = Arc::from(rt.connect(addr).await.map_err(|e| e.to_string())?);
    let sent: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let (credit_tx, mut credits) = mpsc::unbounded::<()>();
    let done = CancelSignal::new();
    // The writer: one message per credit, as many as are available at once.
    {
        let (socket, sent, done) = (socket.clone(), sent.clone(), done.clone());
        let batch = vec![0x5a; size * in_flight];
        rt.spawn(Box::pin(async move {
            let write = async {
                let mut n = in_flight;
                loop {
                    {
                        let now = Instant::now();
                        let mut sent = sent.lock().unwrap();
                        sent.extend(std::iter::repeat_n(now, n));
                    }
                    if write_all(&*socket, &batch[..n * size]).await.is_err() {
                        return;
                    }
                    if credits.next().await.is_none() {
                        return;
                    }
                    n = 1;
                    while n < in_flight {
                        match credits.try_recv() {
                            Ok(()) => n += 1,
                            _ => break,
                        }
                    }
                }
            };
            done.run(write).await;
        }));
    }
    // The reader, timed: this task.
    let start = Instant::now();
    let counted_from = start + window.warm_up;
    let end = counted_from + window.duration;
    let mut m = Measured::default();
    let mut buf = vec![0; size];
    let cpu0_at = std::cell::Cell::new(None);
    while Instant::now() < end && !stop.is_cancelled() {
        if read_exact(&*socket, &mut buf).await.is_err() {
            m.errors += 1;
            m.first_error = Some("the echo connection closed".into());
            break;
        }
        let now = Instant::now();
        let Some(t0) = sent.lock().unwrap().pop_front() else {
            m.errors += 1;
            m.first_error = Some("an answer nobody sent".into());
            break;
        };
        if now >= counted_from && now <= end {
            if cpu0_at.get().is_none() {
                cpu0_at.set(Some(crate::sys::cpu_seconds()));
            }
            m.ops += 1;
            m.bytes += size as u64;
            let nanos = now.saturating_duration_since(t0).as_nanos();
            m.latencies.push(u32::try_from(nanos).unwrap_or(u32::MAX));
            if m.ops % 4096 == 0 {
                live.rate(m.ops as f64 / now.duration_since(counted_from).as_secs_f64().max(1e-9));
            }
        }
        let _ = credit_tx.unbounded_send(());
    }
    m.elapsed = Instant::now()
        .min(end)
        .saturating_duration_since(counted_from);
    m.cpu_seconds =
        crate::sys::cpu_seconds() - cpu0_at.get().unwrap_or_else(crate::sys::cpu_seconds);
    m.latencies.sort_unstable();
    done.cancel();
    server_stop.cancel();
    Ok(m)
}

/// One connection writing `chunk`-byte writes for the window: MiB/s at
/// the reading side.
pub(crate) async fn bulk(
    rt: &Arc<dyn Runtime>,
    chunk: usize,
    window: Window,
    stop: &CancelSignal,
    live: &Live,
) -> Result<Measured, String> {
    let server_stop = CancelSignal::new();
    let addr = discard_server(rt, &server_stop)?;
    let socket: Arc<dyn Socket> = Arc::from(rt.connect(addr).await.map_err(|e| e.to_string())?);
    let data = Arc::new(vec![0x5a; chunk]);
    let m = closed_loop(rt, 1, window, stop, live, |_| {
        let (socket, data) = (socket.clone(), data.clone());
        move || {
            let (socket, data) = (socket.clone(), data.clone());
            async move {
                write_all(&*socket, &data)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(data.len() as u64)
            }
        }
    })
    .await;
    server_stop.cancel();
    Ok(m)
}

/// Reads what is there (at least one byte, or 0 at the end).
pub(crate) async fn read_some(socket: &dyn Socket, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| loop {
        match socket.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.poll_readable(cx))?;
            }
            other => return Poll::Ready(other),
        }
    })
    .await
}

/// Fills `buf`.
pub(crate) async fn read_exact(socket: &dyn Socket, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_some(socket, &mut buf[filled..]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(())
}

/// Writes all of `buf`.
pub(crate) async fn write_all(socket: &dyn Socket, buf: &[u8]) -> io::Result<()> {
    let mut written = 0;
    poll_fn(|cx| {
        while written < buf.len() {
            match socket.try_write_vectored(&[IoSlice::new(&buf[written..])]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_writable(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}
