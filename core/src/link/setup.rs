//! Link set-up: the authenticated WebSocket upgrade and the `Connect`
//! exchange (DESIGN §5.2).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rand_core::RngCore;
use tracing::debug;

use super::{Event, Lane, Link, LinkConfig, LinkError, Phase};
use crate::cluster::should_dial;
use crate::http::RequestHead;
use crate::wire::{Connect, ConnectResponse, Frame, Message, Op};
use crate::ws::handshake::{self, UpgradeRequest};
use crate::ws::{self, ClientRequest, Role};

/// Header naming the dialing node.
pub(crate) const HOST_HEADER: &str = "X-Gridmux-Host";
/// Header with the dialer's clock, in nanoseconds since the Unix epoch.
pub(crate) const TIME_HEADER: &str = "X-Gridmux-Time";

/// Why an upgrade request was refused, as an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct UpgradeRejection {
    /// 401 (no credentials), 403 (bad credentials) or 404 (wrong path).
    pub status: u16,
    /// Why, for the body and the logs.
    pub reason: String,
}

impl UpgradeRejection {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// The complete HTTP response.
    pub fn response(&self) -> Bytes {
        let phrase = match self.status {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Bad Request",
        };
        let body = format!("{}\n", self.reason);
        let auth = if self.status == 401 {
            "WWW-Authenticate: Bearer\r\n"
        } else {
            ""
        };
        Bytes::from(format!(
            "HTTP/1.1 {} {phrase}\r\n{auth}Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.status,
            body.len()
        ))
    }
}

/// Checks an upgrade request before the acceptor upgrades: the path, the
/// bearer token of the claimed sender and its clock. Returns the claimed
/// sender. An HTTP router that upgrades by itself calls this and then
/// [`Link::accept_upgraded`].
pub fn authorize_upgrade(
    config: &LinkConfig,
    request: &UpgradeRequest,
    wall: SystemTime,
) -> Result<String, UpgradeRejection> {
    let path = request.path.split('?').next().unwrap_or_default();
    if path != config.path {
        return Err(UpgradeRejection::new(404, format!("no grid at {path}")));
    }
    let text = |name| {
        request
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    };
    let token = text("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| UpgradeRejection::new(401, "missing bearer token"))?;
    let host =
        text(HOST_HEADER).ok_or_else(|| UpgradeRejection::new(401, "missing host header"))?;
    let nanos: u64 = text(TIME_HEADER)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| UpgradeRejection::new(401, "missing or malformed time header"))?;
    let time = UNIX_EPOCH + Duration::from_nanos(nanos);
    if !is_peer(config, host) {
        return Err(UpgradeRejection::new(
            403,
            format!("unknown incoming host: {host}"),
        ));
    }
    if skew(wall, time) > config.max_upgrade_skew {
        return Err(UpgradeRejection::new(403, "time difference too large"));
    }
    config
        .authenticator
        .verify(host, &config.local, time, token)
        .map_err(|e| UpgradeRejection::new(403, format!("auth token: {e}")))?;
    Ok(host.to_owned())
}

fn is_peer(config: &LinkConfig, host: &str) -> bool {
    host != config.local && config.peers.iter().any(|p| p == host)
}

fn skew(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or(Duration::MAX)
}

impl Link {
    /// The dialing side of the link to `remote`: sends the upgrade request
    /// at once. `rng` supplies the WebSocket nonce and masking keys.
    pub fn dial(
        config: Arc<LinkConfig>,
        remote: impl Into<String>,
        now: Instant,
        wall: SystemTime,
        rng: Box<dyn RngCore + Send>,
    ) -> Self {
        let remote = remote.into();
        let mut request = ClientRequest::new(remote.clone(), config.path.clone());
        let token = config.authenticator.token(&config.local, &remote, wall);
        let nanos = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        request.headers = vec![
            ("Authorization".into(), format!("Bearer {token}")),
            (HOST_HEADER.into(), config.local.clone()),
            (TIME_HEADER.into(), nanos.to_string()),
        ];
        let endpoint = ws::Endpoint::client(config.ws.clone(), &request, rng, now);
        let mut link = Self::new(config, Phase::Upgrading, now, wall);
        link.ws = Some(endpoint);
        link.remote = Some(remote);
        link
    }

    /// The accepting side: reads and checks the upgrade request itself.
    pub fn accept(config: Arc<LinkConfig>, now: Instant, wall: SystemTime) -> Self {
        Self::new(config, Phase::AwaitUpgrade, now, wall)
    }

    /// The accepting side on a connection that an HTTP router already
    /// upgraded after [`authorize_upgrade`] named `claimed` as the sender.
    pub fn accept_upgraded(
        config: Arc<LinkConfig>,
        claimed: String,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let endpoint = ws::Endpoint::upgraded(config.ws.clone(), Role::Server, None);
        let mut link = Self::new(config, Phase::AwaitConnect { claimed }, now, wall);
        link.ws = Some(endpoint);
        link.pump_ws(now);
        link
    }

    /// The accepting side of a connection whose upgrade request an HTTP
    /// router already parsed (`head`; the bytes after it are the link's
    /// first input). Checks the WebSocket handshake and the credentials:
    /// the link then answers 101 and waits for `Connect`, or, refused, has
    /// the error answer queued and is closed.
    pub fn accept_head(
        config: Arc<LinkConfig>,
        head: &RequestHead,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let mut link = Self::new(config, Phase::AwaitUpgrade, now, wall);
        let valid = handshake::validate_request(
            &head.method,
            head.minor_version,
            &head.target,
            head.headers.clone(),
        );
        match valid {
            Ok(request) => link.upgrade(now, &request),
            Err(e) => {
                link.raw_out = Some(handshake::reject_response(&e));
                link.fail(now, LinkError::Refused(e.to_string()));
            }
        }
        link
    }

    pub(super) fn read_upgrade(&mut self, now: Instant, buf: &mut BytesMut) {
        let parsed = handshake::parse_request(buf, self.config.ws.max_handshake_size);
        let request = match parsed {
            Ok(None) => return,
            Ok(Some((request, len))) => {
                let _ = buf.split_to(len);
                request
            }
            Err(e) => {
                buf.clear();
                self.raw_out = Some(handshake::reject_response(&e));
                self.fail(now, LinkError::Refused(e.to_string()));
                return;
            }
        };
        self.upgrade(now, &request);
    }

    /// Answers a valid upgrade request: 101 and `AwaitConnect` when it is
    /// authorized, the rejection and `Closed` otherwise.
    fn upgrade(&mut self, now: Instant, request: &UpgradeRequest) {
        match authorize_upgrade(&self.config, request, self.wall(now)) {
            Ok(claimed) => {
                self.raw_out = Some(handshake::accept_response(request));
                self.ws = Some(ws::Endpoint::upgraded(
                    self.config.ws.clone(),
                    Role::Server,
                    None,
                ));
                self.phase = Phase::AwaitConnect { claimed };
            }
            Err(rejection) => {
                self.raw_out = Some(rejection.response());
                self.fail(now, LinkError::Refused(rejection.to_string()));
            }
        }
    }

    /// The WebSocket is open: the dialer sends `Connect`.
    pub(super) fn on_ws_open(&mut self, now: Instant) {
        if self.phase != Phase::Upgrading {
            return;
        }
        let remote = self.remote.clone().unwrap_or_default();
        let time = self.wall(now);
        let connect = Connect {
            id: self.config.node_id,
            host: self.config.local.clone(),
            time,
            token: self
                .config
                .authenticator
                .token(&self.config.local, &remote, time),
        };
        let msg = Message::new(Op::CONNECT, 0).payload(connect.encode());
        self.outbox.push(Lane::Control, &msg, false);
        self.phase = Phase::AwaitConnectResponse;
    }

    /// A WebSocket message arrived.
    pub(super) fn on_ws_message(&mut self, now: Instant, data: Bytes) {
        match &self.phase {
            Phase::Connected => self.on_frame(now, data),
            Phase::AwaitConnect { claimed } => {
                let claimed = claimed.clone();
                self.on_connect(now, data, &claimed);
            }
            Phase::AwaitConnectResponse => self.on_connect_response(now, data),
            _ => debug!(phase = ?self.phase, "message outside the connected phase ignored"),
        }
    }

    fn on_frame(&mut self, now: Instant, data: Bytes) {
        match Frame::decode(data) {
            Ok(Frame::Single(msg)) => self.on_message(now, msg),
            Ok(Frame::Merged(frames)) => {
                for msg in frames {
                    match msg {
                        Ok(msg) => self.on_message(now, msg),
                        Err(e) => return self.fail(now, LinkError::Malformed(e.to_string())),
                    }
                    if self.phase != Phase::Connected {
                        return;
                    }
                }
            }
            Err(e) => self.fail(now, LinkError::Malformed(e.to_string())),
        }
    }

    fn on_connect(&mut self, now: Instant, data: Bytes, claimed: &str) {
        let verdict = self.check_connect(now, &data, claimed);
        let (accepted, reason) = match &verdict {
            Ok(_) => (true, String::new()),
            Err(reason) => (false, reason.clone()),
        };
        let response = ConnectResponse {
            id: self.config.node_id,
            accepted,
            rejected_reason: reason,
        };
        let msg = Message::new(Op::CONNECT_RESPONSE, 0).payload(response.encode());
        self.outbox.push(Lane::Control, &msg, false);
        match verdict {
            Ok(connect) => {
                self.remote = Some(connect.host);
                self.on_connected(now, connect.id);
            }
            Err(reason) => self.fail(now, LinkError::Refused(reason)),
        }
    }

    fn check_connect(&self, now: Instant, data: &Bytes, claimed: &str) -> Result<Connect, String> {
        let msg = Message::decode(data).map_err(|e| format!("malformed first message: {e}"))?;
        if msg.op != Op::CONNECT {
            return Err(format!("first message is {:?}, not Connect", msg.op));
        }
        let connect = Connect::decode(&msg.payload.unwrap_or_default())
            .map_err(|e| format!("malformed Connect: {e}"))?;
        let config = &self.config;
        if !is_peer(config, &connect.host) || connect.host != claimed {
            return Err(format!("unknown incoming host: {}", connect.host));
        }
        if skew(self.wall(now), connect.time) > config.max_clock_skew {
            return Err("time difference too large between servers".into());
        }
        config
            .authenticator
            .verify(&connect.host, &config.local, connect.time, &connect.token)
            .map_err(|e| format!("auth token: {e}"))?;
        if !should_dial(&connect.host, &config.local) {
            return Err("grid: expected to be client side, not server side".into());
        }
        Ok(connect)
    }

    fn on_connect_response(&mut self, now: Instant, data: Bytes) {
        let response = Message::decode(&data)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.op == Op::CONNECT_RESPONSE {
                    ConnectResponse::decode(&m.payload.unwrap_or_default())
                        .map_err(|e| e.to_string())
                } else {
                    Err(format!("expected ConnectResponse, got {:?}", m.op))
                }
            });
        match response {
            Ok(r) if r.accepted => self.on_connected(now, r.id),
            Ok(r) => self.fail(now, LinkError::Rejected(r.rejected_reason)),
            Err(e) => self.fail(now, LinkError::Malformed(e)),
        }
    }

    fn on_connected(&mut self, now: Instant, remote_id: [u8; 16]) {
        self.phase = Phase::Connected;
        self.handshake_deadline = None;
        self.last_pong = now;
        self.next_ping = Some(now + self.config.ping_interval);
        let remote = self.remote.clone().unwrap_or_default();
        debug!(%remote, "link connected");
        self.events
            .push_back(Event::Connected { remote, remote_id });
    }
}
