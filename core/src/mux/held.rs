//! Bytes of the peer's messages handed to the application and not yet
//! released: what a link's inbound byte budget counts.

use std::collections::VecDeque;

/// The sizes of one stream's messages delivered and not yet consumed, in
/// order (consumers take messages in order), and their total.
///
/// Bounded by the stream's receive window: a message needs a credit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldMessages {
    sizes: VecDeque<usize>,
    total: usize,
}

impl HeldMessages {
    /// A message of `size` bytes was delivered.
    pub fn push(&mut self, size: usize) {
        self.sizes.push_back(size);
        self.total += size;
    }

    /// The consumer took `n` messages (the oldest): returns their bytes.
    /// Consuming more than was delivered takes what there is.
    pub fn consume(&mut self, n: u32) -> usize {
        let n = (n as usize).min(self.sizes.len());
        let freed: usize = self.sizes.drain(..n).sum();
        self.total -= freed;
        freed
    }

    /// Bytes delivered and not yet consumed.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumption_frees_the_oldest_first() {
        let mut held = HeldMessages::default();
        held.push(10);
        held.push(200);
        held.push(3);
        assert_eq!(held.total(), 213);
        assert_eq!(held.consume(1), 10);
        assert_eq!(held.consume(5), 203, "clamped to what was delivered");
        assert_eq!(held.total(), 0);
        assert_eq!(held.consume(1), 0);
    }
}
