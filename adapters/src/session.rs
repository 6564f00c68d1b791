//! The driver's session for a grid link: routes the link's events to the
//! exchanges' handles, tells the grid when the link comes and goes, and
//! runs request handlers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Waker};
use std::time::Instant;

use gridmux_core::auth::link::Membership;
use gridmux_core::link::{Link, LinkError};
use tracing::{debug, info, warn};

use crate::dispatch::{route, Notice};
use crate::driver::Session;
use crate::grid::Node;
use crate::listener::Pending;
use crate::shared::{register, LinkState, SharedLink};

/// One grid link as the driver sees it.
#[derive(Debug)]
pub(crate) struct LinkSession {
    link: Arc<SharedLink>,
    node: Arc<Node>,
    /// The peer, once connected.
    remote: Option<String>,
    /// When the link connected.
    connected_at: Option<Instant>,
    /// An accepted connection's place among the pending ones, held until
    /// the set-up is proven.
    pending: Option<Pending>,
}

impl LinkSession {
    pub(crate) fn new(link: Arc<SharedLink>, node: Arc<Node>) -> Self {
        node.live_links.fetch_add(1, Ordering::AcqRel);
        node.register(&link);
        Self {
            link,
            node,
            remote: None,
            connected_at: None,
            pending: None,
        }
    }

    /// Holds `pending` until the link is connected.
    pub(crate) fn pending(mut self, pending: Pending) -> Self {
        self.pending = Some(pending);
        self
    }

    /// How long the link was (or has been) connected, if it ever was
    /// (the dialer resets its back-off after a link that lived long enough).
    pub(crate) fn connected_for(&self) -> Option<std::time::Duration> {
        self.connected_at.map(|t| t.elapsed())
    }

    fn closed(&self, reason: &LinkError) {
        match (&self.remote, reason) {
            (Some(remote), _) => info!(%remote, %reason, "link down"),
            (None, LinkError::Refused(_) | LinkError::Rejected(_)) => {
                info!(%reason, "link refused");
            }
            (None, LinkError::Unauthenticated(_)) => {
                // Anyone who reaches the port can cause this: rate-limited.
                match self.node.auth_log.allow(Instant::now()) {
                    Some(0) => warn!(%reason, "link set-up failed authentication"),
                    Some(suppressed) => warn!(
                        %reason, suppressed,
                        "link set-up failed authentication (and more since the last warning)"
                    ),
                    None => debug!(%reason, "link set-up failed authentication"),
                }
            }
            (None, _) => debug!(%reason, "link failed before connecting"),
        }
    }
}

impl Session for LinkSession {
    type State = LinkState;
    type Conn = Link;
    type Notice = Notice;

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.link.lock()
    }

    fn conn(state: &mut LinkState) -> &mut Link {
        &mut state.link
    }

    fn set_waker(state: &mut LinkState, waker: &Waker) {
        register(&mut state.driver, waker);
    }

    fn on_drained(state: &mut LinkState) {
        state.wake_queue_waiters();
    }

    fn route(&self, state: &mut LinkState, notices: &mut Vec<Notice>) {
        while let Some(event) = state.link.poll_event() {
            notices.extend(route(state, event, &self.link, &self.node));
        }
    }

    fn notify(&mut self, cx: &mut Context<'_>, notices: Vec<Notice>) -> bool {
        let serves = notices.iter().any(|n| matches!(n, Notice::Serve(_)));
        if serves {
            // Handlers answering inline must not wake this very task: the
            // next round writes their answers anyway.
            self.link.lock().driver = None;
        }
        let mut answered = false;
        for notice in notices {
            match notice {
                Notice::Spawn(task) => self.node.runtime.spawn(task),
                Notice::Serve(mut task) => {
                    if task.as_mut().poll(cx).is_ready() {
                        answered = true;
                    } else {
                        self.node.runtime.spawn(task);
                    }
                }
                Notice::Connected(remote, Membership::Member) => {
                    self.pending = None;
                    self.connected_at = Some(Instant::now());
                    info!(%remote, "link up");
                    self.node.link_connected(&remote, &self.link);
                    self.remote = Some(remote);
                }
                Notice::Connected(remote, Membership::Client) => {
                    self.pending = None;
                    if self.node.close_if_revoked(&mut self.link.lock()) {
                        continue;
                    }
                    // Served like a member, but never in the peer table:
                    // nobody calls a client.
                    info!(client = %remote, "client connected");
                    self.remote = Some(remote);
                }
                Notice::Closed(reason) => self.closed(&reason),
            }
        }
        if serves {
            let mut st = self.link.lock();
            register(&mut st.driver, cx.waker());
            answered |= st.link.has_pending_output();
        }
        answered
    }

    fn span(&self) -> tracing::Span {
        self.link.span.clone()
    }

    fn abort(&mut self) {
        let mut st = self.link.lock();
        // Closed by a handle but not driven since: its last events (the
        // callers' `Disconnected`, `Closed`) are still queued, and routed
        // here all the same.
        if !st.link.is_closed() {
            st.link.close(Instant::now());
        }
        let mut notices = Vec::new();
        self.route(&mut st, &mut notices);
        drop(st);
        // No task context here: handlers still to run are dropped (their
        // exchanges just ended with the link).
        for notice in notices {
            if let Notice::Closed(reason) = notice {
                self.closed(&reason);
            }
        }
    }
}

impl Drop for LinkSession {
    fn drop(&mut self) {
        self.node.unregister(&self.link);
        self.node.live_links.fetch_sub(1, Ordering::AcqRel);
        self.node.changes.notify();
    }
}
