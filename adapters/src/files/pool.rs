//! Kept-alive connections to peers' file planes, a few per peer.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

use crate::runtime::Socket;

/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 8;

/// Idle connections by peer name. Bounded: at most [`IDLE_PER_PEER`] per
/// peer, and peers are the cluster's.
#[derive(Debug, Default)]
pub(crate) struct Pool(Mutex<HashMap<String, Vec<Box<dyn Socket>>>>);

impl Pool {
    /// An idle connection to `peer` that the peer has not closed, if any.
    pub(crate) fn take(&self, peer: &str) -> Option<Box<dyn Socket>> {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let sockets = idle.get_mut(peer)?;
        while let Some(socket) = sockets.pop() {
            // An idle connection has nothing to read: end of stream or
            // stray bytes mean it is unusable.
            let mut probe = [0u8; 1];
            if matches!(socket.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            {
                return Some(socket);
            }
        }
        None
    }

    /// Keeps `socket` (its last response read whole) for the next fetch.
    pub(crate) fn put(&self, peer: &str, socket: Box<dyn Socket>) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let sockets = match idle.get_mut(peer) {
            Some(sockets) => sockets,
            None => idle.entry(peer.to_owned()).or_default(),
        };
        if sockets.len() < IDLE_PER_PEER {
            sockets.push(socket);
        }
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
