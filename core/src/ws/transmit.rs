//! [`Transmit`]: bytes ready for one vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Chunks of output for one vectored write, in order.
///
/// Small frames arrive coalesced into one chunk; large payloads are chunks of
/// their own, shared with the caller's [`Bytes`] rather than copied. After a
/// partial write, [`advance`](Self::advance) drops what was written.
#[derive(Debug, Default, Clone)]
pub struct Transmit {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Transmit {
    /// An empty transmit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> + '_ {
        self.chunks.iter()
    }

    /// Number of chunks held.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Fills `dst` with up to `dst.len()` slices for `write_vectored`;
    /// returns how many were filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Appends a chunk (empty chunks are dropped).
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Drops the first `n` bytes, after they were written.
    pub fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len, "advance past the end of a Transmit");
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// All bytes in one vector (for tests and simple writers).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_across_chunks() {
        let mut t = Transmit::new();
        t.push(Bytes::from_static(b"abc"));
        t.push(Bytes::new());
        t.push(Bytes::from_static(b"defg"));
        assert_eq!((t.len(), t.chunk_count()), (7, 2));
        t.advance(4);
        assert_eq!(t.to_vec(), b"efg");
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(t.io_slices(&mut slices), 1);
        t.advance(3);
        assert!(t.is_empty());
    }
}
