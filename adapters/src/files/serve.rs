//! Serving one file request on a connection of the node's port.

use std::time::{Instant, SystemTime};

use gridmux_core::auth::request::RequestAuthError;
use gridmux_core::http::files::{self, FileMeta, FileRefusal, FileRequest};
use gridmux_core::http::{RequestHead, ServerConnection};
use gridmux_core::link::ClientAccess;
use gridmux_core::ws::Transmit;
use gridmux_sendfile::Transfer;
use tracing::{debug, warn};

use super::limits::Permit;
use super::{FileError, FileRegion, Signer};
use crate::grid::Node;
use crate::runtime::Socket;
use crate::send_file::{send_file_on_thread, send_file_with_stall_timeout};

/// What to send for an accepted request.
struct Accepted {
    transfer: Option<Transfer>,
    permit: Option<Permit>,
}

/// Answers `head` (a request under the files prefix) on `http`, sending
/// the body itself. Returns `false` when the connection must close at
/// once (a body that could not be sent whole).
pub(crate) async fn serve(
    node: &Node,
    head: &RequestHead,
    socket: &dyn Socket,
    http: &mut ServerConnection,
) -> bool {
    let accepted = match accept(node, head, http) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            debug!(%refusal, target = %head.target, "file request refused");
            http.respond(Instant::now(), &refusal.response());
            return true;
        }
    };
    let (Some(transfer), permit) = (accepted.transfer, accepted.permit) else {
        return true;
    };
    let mut out = Transmit::new();
    http.poll_transmit(&mut out);
    let response_head = out.to_vec();
    let limits = &node.files.limits;
    let (rt, stall) = (&*node.runtime, limits.send_timeout);
    let sent = if limits.send_on_thread {
        // The place is the thread's until it ends.
        send_file_on_thread(rt, stall, socket, &response_head, transfer, permit).await
    } else {
        let mut transfer = transfer;
        let sent =
            send_file_with_stall_timeout(rt, stall, socket, &response_head, &mut transfer).await;
        drop(permit);
        sent
    };
    match sent {
        Ok(_) => {
            http.body_sent(Instant::now());
            true
        }
        Err(e) => {
            debug!(%e, target = %head.target, "file transfer ended early");
            http.body_aborted();
            false
        }
    }
}

/// Checks the request, opens the file and answers the head; the transfer
/// is returned when a body must follow.
fn accept(
    node: &Node,
    head: &RequestHead,
    http: &mut ServerConnection,
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
    let handler = plane.routes.get(route).ok_or(FileRefusal::NotFound)?;
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
        options.prefetch &= !limits.send_on_thread;
        let transfer = Transfer::new(file, range, &options).map_err(|e| {
            warn!(%e, %route, "file region not sendable");
            FileRefusal::Internal
        })?;
        Some(transfer)
    } else {
        None
    };
    let must_send = http.respond_with_body(Instant::now(), &answer.response, body_len);
    debug_assert_eq!(must_send, transfer.is_some());
    Ok(Accepted {
        transfer: transfer.filter(|_| must_send),
        permit,
    })
}
