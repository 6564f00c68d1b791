//! Process-wide counters of the bytes each path sent and received (the metrics crate
//! exports them).

use std::sync::atomic::{AtomicU64, Ordering};

static SENDFILE_BYTES: AtomicU64 = AtomicU64::new(0);
static COPY_BYTES: AtomicU64 = AtomicU64::new(0);
static FALLBACKS: AtomicU64 = AtomicU64::new(0);
static SPLICED_BYTES: AtomicU64 = AtomicU64::new(0);
static RECEIVED_BY_COPY: AtomicU64 = AtomicU64::new(0);

/// What every transfer of this process sent, by path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes sent by `sendfile`.
    pub sendfile_bytes: u64,
    /// Bytes sent by the `pread` + `write` copy.
    pub copy_bytes: u64,
    /// Transfers that fell back from `sendfile` to the copy when it was
    /// refused.
    pub fallbacks: u64,
    /// Bytes received into files by `splice`.
    pub spliced_bytes: u64,
    /// Bytes received into files by a read and a positioned write.
    pub received_by_copy: u64,
}

/// The counters now.
pub fn counters() -> Counters {
    Counters {
        sendfile_bytes: SENDFILE_BYTES.load(Ordering::Relaxed),
        copy_bytes: COPY_BYTES.load(Ordering::Relaxed),
        fallbacks: FALLBACKS.load(Ordering::Relaxed),
        spliced_bytes: SPLICED_BYTES.load(Ordering::Relaxed),
        received_by_copy: RECEIVED_BY_COPY.load(Ordering::Relaxed),
    }
}

pub(crate) fn add_sendfile(n: usize) {
    SENDFILE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

pub(crate) fn add_copy(n: usize) {
    COPY_BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

pub(crate) fn add_fallback() {
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add_spliced(n: usize) {
    SPLICED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

pub(crate) fn add_received_by_copy(n: usize) {
    RECEIVED_BY_COPY.fetch_add(n as u64, Ordering::Relaxed);
}
