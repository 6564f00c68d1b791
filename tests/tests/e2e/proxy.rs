//! A TCP proxy that can freeze one direction: a node named by the proxy's
//! address is reached through it, so a test can stop what that node sends
//! from arriving (MinIO's "block inbound messages" hook, from outside).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Every proxy thread stops after this, whatever happens.
const LIFETIME: Duration = Duration::from_secs(30);

/// A running proxy; dropping it stops its threads.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// While set, bytes from the target back to the client are held.
    pub(crate) freeze_back: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards every connection made to `listener` to `target`.
    pub(crate) fn start(listener: TcpListener, target: SocketAddr) -> Self {
        let freeze_back = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (frozen, stopped) = (freeze_back.clone(), stop.clone());
        thread::spawn(move || {
            let started = Instant::now();
            while !stopped.load(Ordering::Acquire) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let never = Arc::new(AtomicBool::new(false));
                        pump(&client, &server, never, stopped.clone());
                        pump(&server, &client, frozen.clone(), stopped.clone());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        Self { freeze_back, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Copies `from` → `to` on a thread, holding bytes while `frozen`.
fn pump(from: &TcpStream, to: &TcpStream, frozen: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
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
