//! Counting transfers in flight, node-wide and per allowance (a member's
//! own, or the one shared by every other signer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Transfers in flight. The map holds only signers with a transfer, so it
/// is never larger than the node-wide limit.
#[derive(Debug, Default, Clone)]
pub(crate) struct Transfers(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_signer: HashMap<String, usize>,
}

impl Transfers {
    /// A place for a transfer for `signer`, if both limits allow.
    pub(crate) fn admit(&self, signer: &str, max: usize, per_signer: usize) -> Option<Permit> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mine = counts.by_signer.get(signer).copied().unwrap_or(0);
        if counts.total >= max || mine >= per_signer {
            return None;
        }
        counts.total += 1;
        *counts.by_signer.entry(signer.to_owned()).or_default() += 1;
        Some(Permit {
            transfers: self.clone(),
            signer: signer.to_owned(),
        })
    }

    /// Transfers in flight.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// A transfer's place; dropping it frees it.
#[derive(Debug)]
pub(crate) struct Permit {
    transfers: Transfers,
    signer: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.transfers.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.by_signer.get_mut(&self.signer) {
            *n -= 1;
            if *n == 0 {
                counts.by_signer.remove(&self.signer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_node_wide_and_per_signer_and_freed_on_drop() {
        let t = Transfers::default();
        let a1 = t.admit("a", 3, 2).unwrap();
        let _a2 = t.admit("a", 3, 2).unwrap();
        assert!(t.admit("a", 3, 2).is_none());
        let _b1 = t.admit("b", 3, 2).unwrap();
        assert!(t.admit("c", 3, 2).is_none());
        drop(a1);
        assert!(t.admit("c", 3, 2).is_some());
        assert_eq!(t.total(), 2);
    }
}
