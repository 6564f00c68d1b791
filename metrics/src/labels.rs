//! The label sets of the node's metric families.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;

/// The label of a plane's name: a handler id (grid) or a route (HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TtfbLabels {
    pub(crate) plane: &'static str,
    pub(crate) handler: Option<u8>,
    pub(crate) route: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct HandlerOutcome {
    pub(crate) handler: u8,
    pub(crate) outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct HandlerDirection {
    pub(crate) handler: u8,
    pub(crate) direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct HandlerLabel {
    pub(crate) handler: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PeerDirection {
    pub(crate) peer: Arc<str>,
    pub(crate) direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PeerLabel {
    pub(crate) peer: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PeerWhat {
    pub(crate) peer: Arc<str>,
    pub(crate) what: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PeerReason {
    pub(crate) peer: Arc<str>,
    pub(crate) reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    pub(crate) route: Arc<str>,
    pub(crate) method: &'static str,
    pub(crate) status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RouteBody {
    pub(crate) route: Arc<str>,
    pub(crate) body: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PathLabel {
    pub(crate) path: &'static str,
}
