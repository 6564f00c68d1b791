//! State of the exchanges multiplexed over one link.
//!
//! A mux is named by the `u64` its opener chose and by who opened it
//! ([`Origin`]): each side numbers its own muxes, so mux 5 opened by us and
//! mux 5 opened by the peer are different exchanges. [`MuxTable`] holds
//! every open exchange; [`CreditWindow`] and [`SendCredits`] do the flow
//! control of streams; [`TimerQueue`] orders their deadlines and pings.
//! The [`Link`](crate::link::Link) drives them.

mod credit;
mod held;
mod table;
mod timers;

pub use credit::{CreditWindow, SendCredits};
pub use held::HeldMessages;
pub use table::{
    InRequest, MuxHasher, MuxHashing, MuxMap, MuxTable, OutRequest, Sending, StreamState,
    StreamStats,
};
pub use timers::TimerQueue;

/// Who opened a mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// We opened it: we are the caller (the client of the exchange).
    Local,
    /// The peer opened it: we serve it.
    Remote,
}

/// One exchange on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MuxId {
    /// Who opened it.
    pub origin: Origin,
    /// The number its opener gave it (the envelope's `mux_id`).
    pub id: u64,
}

impl MuxId {
    /// A mux we opened.
    pub fn local(id: u64) -> Self {
        Self {
            origin: Origin::Local,
            id,
        }
    }

    /// A mux the peer opened.
    pub fn remote(id: u64) -> Self {
        Self {
            origin: Origin::Remote,
            id,
        }
    }
}
