//! A TCP proxy that can freeze one direction: a node named by the proxy's
//! address is reached through it, so a test can stop what that node sends
//! from arriving (MinIO's "block inbound messages" hook, from outside).
//! It also records what passes through each connection (the first
//! [`RECORD_LIMIT`] bytes each way), and can send new connections to
//! another target (an impostor) and back.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Every proxy thread stops after this, whatever happens.
const LIFETIME: Duration = Duration::from_secs(30);

/// Bytes recorded per connection and direction; the rest is forwarded
/// but not kept.
pub(crate) const RECORD_LIMIT: usize = 64 * 1024;

/// What one proxied connection carried so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recording {
    /// From the connecting side to the target (the dialer's bytes).
    pub(crate) to_target: Vec<u8>,
    /// From the target back (the acceptor's bytes).
    pub(crate) from_target: Vec<u8>,
}

type SharedRecording = Arc<Mutex<Recording>>;

/// A running proxy; dropping it stops its threads.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// While set, bytes from the target back to the client are held.
    pub(crate) freeze_back: Arc<AtomicBool>,
    /// Where new connections go (connections already made stay).
    target: Arc<Mutex<SocketAddr>>,
    /// One recording per accepted connection, in accept order.
    recordings: Arc<Mutex<Vec<SharedRecording>>>,
    /// Per accepted connection: while set, nothing more is read from the
    /// connecting side (its writes back up, as to a peer that stopped
    /// reading).
    stalls: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards every connection made to `listener` to `target`.
    pub(crate) fn start(listener: TcpListener, target: SocketAddr) -> Self {
        let freeze_back = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let target = Arc::new(Mutex::new(target));
        let recordings: Arc<Mutex<Vec<SharedRecording>>> = Arc::default();
        let stalls: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        listener.set_nonblocking(true).unwrap();
        let (frozen, stopped) = (freeze_back.clone(), stop.clone());
        let (to, recorded) = (target.clone(), recordings.clone());
        let stall_flags = stalls.clone();
        thread::spawn(move || {
            let started = Instant::now();
            while !stopped.load(Ordering::Acquire) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((client, _)) => {
                        // The accepted socket may inherit non-blocking mode.
                        let _ = client.set_nonblocking(false);
                        let target = *to.lock().unwrap();
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let recording = SharedRecording::default();
                        recorded.lock().unwrap().push(recording.clone());
                        let stall = Arc::new(AtomicBool::new(false));
                        stall_flags.lock().unwrap().push(stall.clone());
                        pump(
                            &client,
                            &server,
                            stall,
                            stopped.clone(),
                            Tap(recording.clone(), Direction::ToTarget),
                        );
                        pump(
                            &server,
                            &client,
                            frozen.clone(),
                            stopped.clone(),
                            Tap(recording, Direction::FromTarget),
                        );
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            freeze_back,
            target,
            recordings,
            stalls,
            stop,
        }
    }

    /// Stops reading from the connecting side of every connection made so
    /// far, for good (new connections are not affected).
    pub(crate) fn stall_existing(&self) {
        for stall in self.stalls.lock().unwrap().iter() {
            stall.store(true, Ordering::Release);
        }
    }

    /// Sends connections accepted from now on to `target`.
    pub(crate) fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// What every connection so far carried, in accept order.
    pub(crate) fn recordings(&self) -> Vec<Recording> {
        let all = self.recordings.lock().unwrap();
        all.iter().map(|r| r.lock().unwrap().clone()).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToTarget,
    FromTarget,
}

/// Where a pump records what it forwards.
#[derive(Debug)]
struct Tap(SharedRecording, Direction);

impl Tap {
    /// Records `bytes` (up to the limit) before they are forwarded.
    fn record(&self, bytes: &[u8]) {
        let mut rec = self.0.lock().unwrap();
        let kept = match self.1 {
            Direction::ToTarget => &mut rec.to_target,
            Direction::FromTarget => &mut rec.from_target,
        };
        let room = RECORD_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Copies `from` → `to` on a thread, holding bytes while `frozen`.
fn pump(
    from: &TcpStream,
    to: &TcpStream,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    tap: Tap,
) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = vec![0; 64 * 1024];
        while !stop.load(Ordering::Acquire) && started.elapsed() < LIFETIME {
            if frozen.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    tap.record(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}
