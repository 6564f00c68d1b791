//! Serving one file request on a connection of the node's port.

use std::time::{Instant, SystemTime};

use gridmux_core::auth::request::RequestAuthError;
use gridmux_core::http::files::{self, FileMeta, FileRefusal, FileRequest, FILES_PREFIX};
use gridmux_core::http::{RequestHead, ServerConnection};
use gridmux_core::link::ClientAccess;
use gridmux_core::observe::BodyPath;
use gridmux_core::ws::Transmit;
use gridmux_sendfile::{Method, Transfer};
use tracing::{debug, warn};

use super::limits::Permit;
use super::{FileError, FileRegion, Signer};
use crate::grid::Node;
use crate::http_record::{HttpAnswer, RouteLabel};
use crate::runtime::Socket;
use crate::send_file::{send_file_on_thread, send_file_with_stall_timeout};

/// What to send for an accepted request.
struct Accepted {
    transfer: Option<Transfer>,
    permit: Option<Permit>,
    /// The record of the answer.
    answer: HttpAnswer,
}

/// How a file request went.
pub(crate) enum Served {
    /// Answered in `http`'s output (no body of ours): the caller writes
    /// it, then records `answer`.
    Queued(HttpAnswer),
    /// The body went out whole and was recorded; the connection goes on.
    Sent,
    /// The body could not be sent whole (recorded): close at once.
    Aborted,
}

/// Answers `head` (a request under the files prefix, received at
/// `started`) on `http`, sending a body itself.
pub(crate) async fn serve(
    node: &Node,
    head: &RequestHead,
    started: Instant,
    socket: &dyn Socket,
    http: &mut ServerConnection,
) -> Served {
    let route = route_label(node, head);
    let encrypted = socket.is_encrypted();
    let accepted = match accept(node, head, http, started, route.clone(), encrypted) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            debug!(%refusal, target = %head.target, "file request refused");
            let response = refusal.response();
            http.respond(Instant::now(), &response);
            let answer = HttpAnswer::new(started, head, route, response.status);
            let len = response.body.len() as u64;
            return Served::Queued(answer.body(len, BodyPath::Memory, head.method == "HEAD"));
        }
    };
    let Accepted {
        transfer,
        permit,
        answer,
    } = accepted;
    let Some(transfer) = transfer else {
        return Served::Queued(answer);
    };
    let mut out = Transmit::new();
    http.poll_transmit(&mut out);
    let response_head = out.to_vec();
    let limits = &node.files.limits;
    let (rt, stall) = (&*node.runtime, limits.send_timeout);
    let first = Instant::now();
    // Under TLS the body goes through the socket on this task (the thread
    // path writes to the descriptor).
    let sent = if limits.send_on_thread && !encrypted {
        // The place is the thread's until it ends.
        send_file_on_thread(rt, stall, socket, &response_head, transfer, permit).await
    } else {
        let mut transfer = transfer;
        let sent =
            send_file_with_stall_timeout(rt, stall, socket, &response_head, &mut transfer).await;
        drop(permit);
        sent
    };
    let done = Instant::now();
    match sent {
        Ok(_) => {
            answer.record(node, Some(first), done);
            http.body_sent(done);
            Served::Sent
        }
        Err(e) => {
            debug!(%e, target = %head.target, "file transfer ended early");
            // How much of the body left is not known: none is counted.
            let answer = HttpAnswer {
                bytes_out: 0,
                ..answer
            };
            answer.record(node, Some(first), done);
            http.body_aborted();
            Served::Aborted
        }
    }
}

/// `files/<route>` for a registered route, `files` for any other.
fn route_label(node: &Node, head: &RequestHead) -> RouteLabel {
    let route = head.path().strip_prefix(FILES_PREFIX).unwrap_or_default();
    match node.files.routes.get(route) {
        Some(r) => RouteLabel::Shared(r.label.clone()),
        None => RouteLabel::Fixed("files"),
    }
}

/// Checks the request, opens the file and answers the head; the transfer
/// is returned when a body must follow.
fn accept(
    node: &Node,
    head: &RequestHead,
    http: &mut ServerConnection,
    started: Instant,
    route_label: RouteLabel,
    encrypted: bool,
) -> Result<Accepted, FileRefusal> {
    let plane = &node.files;
    let config = node.config();
    let limits = &plane.limits;
    let now = SystemTime::now();
    let check = |keys| files::check(head, keys, now, limits.max_signature_validity);
    // Members sign with the cluster's secrets; clients with theirs, where
    // the node has separate ones (and then they may not sign as a member).
    let (request, cluster_secret) = match (check(&config.keys), &config.clients) {
        (Err(FileRefusal::Forbidden(RequestAuthError::BadSignature)), ClientAccess::Keyring(k)) => {
            let request = check(k)?;
            if config.peers.contains(&request.signer) {
                return Err(FileRefusal::Forbidden(RequestAuthError::BadSignature));
            }
            (request, false)
        }
        (checked, _) => (checked?, true),
    };
    let FileRequest {
        route, key, signer, ..
    } = &request;
    let signer = Signer {
        name: signer,
        cluster_secret,
    };
    // The per-peer allowance: a member's own, or the one all others share.
    let member = cluster_secret && config.peers.contains(&request.signer);
    let allowance = if member { signer.name } else { "" };
    let handler = &plane
        .routes
        .get(route)
        .ok_or(FileRefusal::NotFound)?
        .handler;
    let region = handler.open(key, signer).map_err(|e| match e {
        FileError::NotFound => FileRefusal::NotFound,
        FileError::InvalidKey(_) => FileRefusal::BadRequest("key"),
        FileError::Io(e) => {
            warn!(%e, %route, "file handler failed");
            FileRefusal::Internal
        }
    })?;
    let FileRegion {
        file,
        offset,
        len,
        modified,
    } = region;
    let answer = files::answer(head.header("range"), &FileMeta { len, modified });
    let body_len = answer.body.end - answer.body.start;
    let wants_body = !request.head_only && body_len > 0;
    let permit = if wants_body {
        let permit = plane.transfers.admit(
            allowance,
            limits.max_transfers,
            limits.max_transfers_per_peer,
        );
        Some(permit.ok_or(FileRefusal::Busy)?)
    } else {
        None
    };
    let range = offset.saturating_add(answer.body.start)..offset.saturating_add(answer.body.end);
    let transfer = if wants_body {
        // On a thread of its own, the transfer prefetches there.
        let mut options = limits.transfer.clone();
        // The thread prefetches where it runs (never under TLS).
        options.prefetch &= !limits.send_on_thread || encrypted;
        if encrypted {
            // sendfile cannot encrypt: TLS connections take the copy path.
            options.method = Method::Copy;
        }
        let transfer = Transfer::new(file, range, &options).map_err(|e| {
            warn!(%e, %route, "file region not sendable");
            FileRefusal::Internal
        })?;
        Some(transfer)
    } else {
        None
    };
    let body = match transfer.as_ref().map(Transfer::method) {
        Some(Method::Sendfile) => BodyPath::Sendfile,
        Some(Method::Copy) => BodyPath::Copy,
        None => BodyPath::None,
    };
    let record = HttpAnswer::new(started, head, route_label, answer.response.status);
    let record = record.body(body_len, body, request.head_only);
    let must_send = http.respond_with_body(Instant::now(), &answer.response, body_len);
    debug_assert_eq!(must_send, transfer.is_some());
    Ok(Accepted {
        transfer: transfer.filter(|_| must_send),
        permit,
        answer: record,
    })
}
