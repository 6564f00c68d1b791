//! The handler registry: raw handlers on `Bytes`, typed ones on serde
//! types (MessagePack via rmp-serde), and stream handlers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gridmux_core::link::{HandlerKind, HandlerTable, RegisterError};
use gridmux_core::wire::SubrouteId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::runtime::BoxFuture;
use crate::signal::CancelSignal;
use crate::stream::{StreamReceiver, StreamSender};
use crate::HandlerError;

/// What a handler knows about the exchange it serves.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) caller: Arc<str>,
    pub(crate) client: bool,
    pub(crate) handler: u8,
    pub(crate) subroute: Option<SubrouteId>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: CancelSignal,
}

impl Context {
    /// The caller's name: a cluster member's, or the name a client chose
    /// for itself (a label, not an identity: see [`is_client`](Self::is_client)).
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// Whether the caller is a client (a tool holding a client secret)
    /// rather than a cluster member. Handlers that grant what only members
    /// may have (locks, replication) should refuse clients.
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// The handler id the caller asked for.
    pub fn handler(&self) -> u8 {
        self.handler
    }

    /// The sub-route's id, if the caller named one.
    pub fn subroute(&self) -> Option<SubrouteId> {
        self.subroute
    }

    /// When the caller stops waiting, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Fires on cancellation, deadline, link loss or shutdown. The
    /// handler's future is dropped at that moment too; the signal is for
    /// work it handed to other tasks.
    pub fn cancel_signal(&self) -> &CancelSignal {
        &self.cancel
    }
}

/// A request handler, type-erased.
pub(crate) type RequestFn =
    Arc<dyn Fn(Context, Bytes) -> BoxFuture<Result<Bytes, HandlerError>> + Send + Sync>;
/// A stream handler, type-erased.
pub(crate) type StreamFn = Arc<
    dyn Fn(Context, Bytes, StreamReceiver, StreamSender) -> BoxFuture<Result<(), HandlerError>>
        + Send
        + Sync,
>;

type Key = (u8, Option<SubrouteId>);

/// Where a request handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A task of its own: a handler may block without holding up its link.
    Spawned,
    /// First polled by the link's own task (its answer joins the same
    /// write, with no task switch); only for handlers that never block.
    Inline,
}

/// The handlers a node serves.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    requests: HashMap<Key, (RequestFn, Placement)>,
    streams: HashMap<Key, StreamFn>,
    /// The protocol's view: ids and stream windows.
    pub(crate) table: HandlerTable,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("requests", &self.requests.len())
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl Handlers {
    pub(crate) fn add_request(
        &mut self,
        id: u8,
        subroute: Option<&str>,
        f: RequestFn,
        placement: Placement,
    ) -> Result<(), RegisterError> {
        self.table.register(id, subroute, HandlerKind::Request)?;
        self.requests.insert(key(id, subroute), (f, placement));
        Ok(())
    }

    pub(crate) fn add_stream(
        &mut self,
        id: u8,
        subroute: Option<&str>,
        in_capacity: u32,
        f: StreamFn,
    ) -> Result<(), RegisterError> {
        self.table
            .register(id, subroute, HandlerKind::Stream { in_capacity })?;
        self.streams.insert(key(id, subroute), f);
        Ok(())
    }

    pub(crate) fn request(
        &self,
        id: u8,
        subroute: Option<SubrouteId>,
    ) -> Option<&(RequestFn, Placement)> {
        self.requests.get(&(id, subroute))
    }

    pub(crate) fn stream(&self, id: u8, subroute: Option<SubrouteId>) -> Option<&StreamFn> {
        self.streams.get(&(id, subroute))
    }
}

fn key(id: u8, subroute: Option<&str>) -> Key {
    (id, subroute.map(|s| SubrouteId::new(id, s)))
}

/// Wraps a raw request handler.
pub(crate) fn raw<F, Fut>(f: F) -> RequestFn
where
    F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, HandlerError>> + Send + 'static,
{
    Arc::new(move |ctx, payload| Box::pin(f(ctx, payload)))
}

/// Wraps a typed request handler: decodes the request, encodes the answer.
pub(crate) fn typed<Req, Resp, F, Fut>(f: F) -> RequestFn
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx, payload: Bytes| {
        let f = f.clone();
        Box::pin(async move {
            let request: Req =
                decode(&payload).map_err(|e| HandlerError::new(format!("bad request: {e}")))?;
            let response = f(ctx, request).await?;
            encode(&response).map_err(|e| HandlerError::new(format!("bad response: {e}")))
        })
    })
}

/// Wraps a stream handler.
pub(crate) fn stream<F, Fut>(f: F) -> StreamFn
where
    F: Fn(Context, Bytes, StreamReceiver, StreamSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(move |ctx, payload, rx, tx| Box::pin(f(ctx, payload, rx, tx)))
}

/// MessagePack with field names (maps), as MinIO's msgp writes structs.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Decodes MessagePack.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}
