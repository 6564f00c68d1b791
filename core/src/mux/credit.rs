//! Per-stream flow control: credits to send, and the receive window.

/// Credits for one direction of a stream, seen from both ends.
///
/// The receiving end announces a window: how many messages it accepts
/// before it grants more. It grants credits back as its consumer takes
/// messages, in batches of at least half the window (h2's rule), so a
/// window of 16 costs one `Unblock` per 8 messages instead of one each.
/// Every data message and the final EOF cost one credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditWindow {
    /// The window announced by the receiver.
    window: u32,
    /// Receiver: messages the peer may still send before more credits.
    allowance: u32,
    /// Receiver: delivered to the consumer, not yet consumed.
    unconsumed: u32,
    /// Receiver: consumed, not yet granted back.
    pending_grant: u32,
}

impl CreditWindow {
    /// The receiving end of a window of `window` messages.
    pub fn receiver(window: u32) -> Self {
        Self {
            window,
            allowance: window,
            unconsumed: 0,
            pending_grant: 0,
        }
    }

    /// The announced window.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// A message arrived. `false` if the sender had no credit for it (a
    /// protocol violation: the receiver ends the stream).
    #[must_use]
    pub fn on_receive(&mut self) -> bool {
        if self.allowance == 0 {
            return false;
        }
        self.allowance -= 1;
        self.unconsumed += 1;
        true
    }

    /// The consumer took `n` messages. Returns the credits to grant now, if
    /// the batch is big enough (or the consumer has caught up).
    pub fn on_consumed(&mut self, n: u32) -> Option<u32> {
        let n = n.min(self.unconsumed);
        self.unconsumed -= n;
        self.pending_grant += n;
        let batch = (self.window / 2).max(1);
        if self.pending_grant == 0 {
            return None;
        }
        if self.pending_grant >= batch || self.unconsumed == 0 && self.allowance == 0 {
            let grant = self.pending_grant;
            self.pending_grant = 0;
            self.allowance += grant;
            return Some(grant);
        }
        None
    }

    /// Messages delivered and not yet consumed.
    pub fn unconsumed(&self) -> u32 {
        self.unconsumed
    }
}

/// The sending end's credit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendCredits {
    credits: u32,
}

impl SendCredits {
    /// No credit yet (a caller before `AckMux`).
    pub fn none() -> Self {
        Self { credits: 0 }
    }

    /// `n` credits (a server starts with the caller's window).
    pub fn new(n: u32) -> Self {
        Self { credits: n }
    }

    /// Credits left.
    pub fn available(&self) -> u32 {
        self.credits
    }

    /// Spends one credit; `false` if there is none.
    #[must_use]
    pub fn take(&mut self) -> bool {
        if self.credits == 0 {
            return false;
        }
        self.credits -= 1;
        true
    }

    /// Adds granted credits, bounded by `window` outstanding. Returns
    /// whether sending became possible (0 → more).
    pub fn grant(&mut self, n: u32, window: u32) -> bool {
        let was_blocked = self.credits == 0;
        self.credits = self.credits.saturating_add(n).min(window.max(self.credits));
        was_blocked && self.credits > 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the order of arrivals and consumption, the receiver's
        /// books balance, it never accepts more than the window beyond
        /// what it granted, and a sender mirroring the grants never
        /// exceeds them.
        #[test]
        fn window_books_balance(window in 0u32..40, steps in proptest::collection::vec(any::<(bool, u8)>(), 0..200)) {
            let mut rx = CreditWindow::receiver(window);
            let mut tx = SendCredits::new(window);
            let mut in_flight = 0u32;
            for (send, n) in steps {
                if send {
                    if tx.take() {
                        in_flight += 1;
                    }
                    // Deliver everything in flight.
                    while in_flight > 0 {
                        prop_assert!(rx.on_receive(), "sender exceeded the credits");
                        in_flight -= 1;
                    }
                } else if let Some(grant) = rx.on_consumed(u32::from(n % 8)) {
                    prop_assert!(grant > 0);
                    tx.grant(grant, window);
                }
                let granted_unused = rx.allowance;
                prop_assert_eq!(granted_unused + rx.unconsumed + rx.pending_grant, window);
                prop_assert!(tx.available() <= rx.allowance);
            }
        }
    }

    #[test]
    fn grants_in_batches_of_half_the_window() {
        let mut w = CreditWindow::receiver(8);
        for _ in 0..8 {
            assert!(w.on_receive());
        }
        assert!(!w.on_receive(), "a ninth message has no credit");
        assert_eq!(w.on_consumed(3), None);
        assert_eq!(w.on_consumed(1), Some(4));
        assert_eq!(w.on_consumed(10), Some(4), "clamped to what was delivered");
        assert_eq!(w.unconsumed(), 0);
        for _ in 0..8 {
            assert!(w.on_receive());
        }
    }

    #[test]
    fn window_of_one_grants_each_message() {
        let mut w = CreditWindow::receiver(1);
        assert!(w.on_receive());
        assert!(!w.on_receive());
        assert_eq!(w.on_consumed(1), Some(1));
        assert!(w.on_receive());
    }

    #[test]
    fn zero_window_accepts_nothing() {
        let mut w = CreditWindow::receiver(0);
        assert!(!w.on_receive());
        assert_eq!(w.on_consumed(5), None);
    }

    #[test]
    fn send_credits_report_unblocking() {
        let mut c = SendCredits::none();
        assert!(!c.take());
        assert!(c.grant(2, 4));
        assert!(!c.grant(1, 4));
        assert!(c.take() && c.take() && c.take());
        assert!(!c.take());
        assert!(c.grant(100, 4));
        assert_eq!(c.available(), 4, "bounded by the window");
    }
}
