//! File systems that refused `sendfile`: transfers of their files copy
//! from the start instead of failing over again each time.

use std::sync::Mutex;

/// Devices remembered at most (the oldest is forgotten first).
const REMEMBERED: usize = 64;

static DEVICES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Whether `device` refused before.
pub(crate) fn refused(device: u64) -> bool {
    DEVICES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&device)
}

/// Remembers that `device` refused.
pub(crate) fn remember(device: u64) {
    let mut devices = DEVICES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if devices.contains(&device) {
        return;
    }
    if devices.len() == REMEMBERED {
        devices.remove(0);
    }
    devices.push(device);
}
