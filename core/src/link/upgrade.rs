//! The acceptor's pre-upgrade filter (DESIGN §5.2): the headers a dialer
//! sends with its upgrade request, the checks made on them before any
//! WebSocket exists, and the refusal's answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::LinkConfig;
use crate::auth::link::{verify_upgrade_filter, Membership};
use crate::auth::{decode_hex_tag, Keyring};
use crate::ws::handshake::UpgradeRequest;

/// Header naming the dialing node.
pub(crate) const HOST_HEADER: &str = "X-Gridmux-Host";
/// Header with the dialer's clock, in nanoseconds since the Unix epoch.
pub(crate) const TIME_HEADER: &str = "X-Gridmux-Time";
/// Header with the dialer's standing: absent for a member, [`CLIENT_ROLE`]
/// for a client.
pub(crate) const ROLE_HEADER: &str = "X-Gridmux-Role";
/// The value of the role header for a client.
pub const CLIENT_ROLE: &str = "client";
/// Header of the `101` answer with the acceptor's nonce (64 hex digits).
pub const NONCE_HEADER: &str = "X-Gridmux-Nonce";
/// Header of the `101` answer with the acceptor's name.
pub const NODE_HEADER: &str = "X-Gridmux-Node";

/// Largest WebSocket message before the other side has proven itself
/// (`Connect` and `ConnectResponse` are a few hundred bytes).
pub(super) const SETUP_MAX_MESSAGE: usize = 4096;

/// Why an upgrade request was refused, as an HTTP answer. The answer says
/// only "unauthorized" (or "not found" for a wrong path); `reason` is for
/// the acceptor's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct UpgradeRejection {
    /// 401 (any failed check) or 404 (wrong path).
    pub status: u16,
    /// What failed, for the logs only.
    pub reason: String,
}

impl UpgradeRejection {
    fn unauthorized(reason: String) -> Self {
        Self {
            status: 401,
            reason,
        }
    }

    /// The complete HTTP response: the same for every failed check.
    pub fn response(&self) -> Bytes {
        let (phrase, body, auth) = match self.status {
            404 => ("Not Found", "not found\n", ""),
            _ => (
                "Unauthorized",
                "unauthorized\n",
                "WWW-Authenticate: Bearer\r\n",
            ),
        };
        let status = if self.status == 404 { 404 } else { 401 };
        Bytes::from(format!(
            "HTTP/1.1 {status} {phrase}\r\n{auth}Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }
}

/// The pre-upgrade filter: the path, then the claimed sender, its clock
/// and its filter token. Returns the claimed sender and its standing.
/// Passing it grants nothing: the link still needs the `Connect` proof
/// over the acceptor's fresh nonce.
pub fn authorize_upgrade(
    config: &LinkConfig,
    request: &UpgradeRequest,
    wall: SystemTime,
) -> Result<(String, Membership), UpgradeRejection> {
    let path = request.path.split('?').next().unwrap_or_default();
    if path != config.path {
        return Err(UpgradeRejection {
            status: 404,
            reason: format!("no grid at {path}"),
        });
    }
    let text = |name| {
        request
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    };
    let unauthorized = UpgradeRejection::unauthorized;
    let token = text("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("missing bearer token".into()))?;
    let host = text(HOST_HEADER).ok_or_else(|| unauthorized("missing host header".into()))?;
    let nanos: u64 = text(TIME_HEADER)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unauthorized("missing or malformed time header".into()))?;
    let membership = match text(ROLE_HEADER) {
        None => Membership::Member,
        Some(CLIENT_ROLE) => Membership::Client,
        Some(other) => return Err(unauthorized(format!("unknown role {other:?}"))),
    };
    let ws_key = request
        .header("sec-websocket-key")
        .unwrap_or_default()
        .trim_ascii();
    let keys = dialer_keys(config, membership, host).map_err(unauthorized)?;
    let tag = decode_hex_tag(token).map_err(|_| unauthorized("malformed bearer token".into()))?;
    verify_upgrade_filter(keys, membership, host, &config.local, nanos, ws_key, &tag)
        .map_err(|_| unauthorized(format!("bad filter token for {host}")))?;
    let time = UNIX_EPOCH + Duration::from_nanos(nanos);
    let skew = skew(wall, time);
    if skew > config.max_upgrade_skew {
        return Err(unauthorized(format!(
            "clock skew {skew:?} with {host} exceeds {:?}",
            config.max_upgrade_skew
        )));
    }
    Ok((host.to_owned(), membership))
}

/// The keyring that checks a dialer named `host` with this standing.
pub(super) fn dialer_keys<'a>(
    config: &'a LinkConfig,
    membership: Membership,
    host: &str,
) -> Result<&'a Keyring, String> {
    match membership {
        Membership::Member if is_peer(config, host) => Ok(&config.keys),
        Membership::Member => Err(format!("unknown member {host:?}")),
        Membership::Client if config.peers.iter().any(|p| p == host) => {
            Err(format!("client uses a member's name {host:?}"))
        }
        Membership::Client => config
            .clients
            .keys(&config.keys)
            .map(|k| &**k)
            .ok_or_else(|| format!("clients are refused (client {host:?})")),
    }
}

pub(super) fn is_peer(config: &LinkConfig, host: &str) -> bool {
    host != config.local && config.peers.iter().any(|p| p == host)
}

pub(super) fn skew(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or(Duration::MAX)
}

pub(super) fn nanos_since_epoch(t: SystemTime) -> u64 {
    let nanos = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}
