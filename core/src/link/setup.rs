//! Link set-up: the authenticated WebSocket upgrade and the `Connect`
//! exchange (DESIGN §5.2).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rand_core::RngCore;
use tracing::debug;

use super::upgrade::{
    dialer_keys, nanos_since_epoch, skew, CLIENT_ROLE, HOST_HEADER, NODE_HEADER, NONCE_HEADER,
    ROLE_HEADER, SETUP_MAX_MESSAGE, TIME_HEADER,
};
use super::{authorize_upgrade, Event, Link, LinkConfig, LinkError, Phase};
use crate::auth::link::{upgrade_filter, Membership, Nonce, Transcript, NONCE_LEN};
use crate::auth::{decode_hex, hex};
use crate::cluster::should_dial;
use crate::http::RequestHead;
use crate::mux::MuxHashing;
use crate::observe;
use crate::wire::{Connect, ConnectResponse, Frame, MergedFrames, Message, Op};
use crate::ws::handshake::{self, UpgradeRequest};
use crate::ws::{self, ClientRequest, Role};

/// The acceptor's state between its `101` and the dialer's `Connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AcceptorSetup {
    /// The sender named in the upgrade request.
    claimed: String,
    membership: Membership,
    /// `Sec-WebSocket-Key`, as received.
    ws_key: String,
    /// Our nonce, sent in the `101`.
    nonce: Nonce,
}

impl AcceptorSetup {
    /// The set-up as `Connect` (whose standing matched the upgrade's)
    /// states it, seen from the acceptor named `local`.
    fn transcript<'a>(
        &'a self,
        local: &'a str,
        connect: &'a Connect,
        channel: &'a [u8],
    ) -> Transcript<'a> {
        Transcript {
            membership: self.membership,
            dialer: &connect.host,
            acceptor: local,
            ws_key: self.ws_key.as_bytes(),
            acceptor_nonce: &self.nonce,
            dialer_nonce: &connect.nonce,
            dialer_id: &connect.id,
            time_nanos: nanos_since_epoch(connect.time),
            channel,
        }
    }
}

/// The dialer's state from its upgrade request to the acceptor's proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DialerSetup {
    /// `Sec-WebSocket-Key`, as sent.
    ws_key: String,
    /// Our nonce, sent in `Connect`.
    nonce: Nonce,
    /// The acceptor's name and nonce, from its `101`.
    acceptor: String,
    acceptor_nonce: Nonce,
    /// Our clock in `Connect`, ns since the Unix epoch.
    time_nanos: u64,
}

impl DialerSetup {
    fn transcript<'a>(&'a self, config: &'a LinkConfig, channel: &'a [u8]) -> Transcript<'a> {
        Transcript {
            membership: config.membership,
            dialer: &config.local,
            acceptor: &self.acceptor,
            ws_key: self.ws_key.as_bytes(),
            acceptor_nonce: &self.acceptor_nonce,
            dialer_nonce: &self.nonce,
            dialer_id: &config.node_id,
            time_nanos: self.time_nanos,
            channel,
        }
    }
}

impl Link {
    /// Runs this link's set-up over a secure channel (TLS): both proofs
    /// cover `binding`, what both ends derived from the session (its
    /// exporter, RFC 8446 §7.5), so a set-up relayed through another
    /// session fails; and the per-message CRC is not sent (TLS protects
    /// the bytes already; MinIO does the same). Call right after
    /// [`dial`](Self::dial) or [`accept`](Self::accept) /
    /// [`accept_head`](Self::accept_head), before input or output.
    pub fn secure_channel(&mut self, binding: &[u8]) {
        self.channel = binding.to_vec();
        self.outbox.set_crc(false);
    }

    /// The dialing side of the link to `remote`: sends the upgrade request
    /// at once. `rng` supplies the WebSocket key, the set-up nonce and the
    /// masking keys; it must be unpredictable (an OS-seeded CSPRNG).
    pub fn dial(
        config: Arc<LinkConfig>,
        remote: impl Into<String>,
        now: Instant,
        wall: SystemTime,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Self {
        let remote = remote.into();
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let hashing = MuxHashing::new(&mut *rng);
        let ws_key = handshake::client_key(key);
        let nanos = nanos_since_epoch(wall);
        let token = upgrade_filter(
            &config.keys,
            config.membership,
            &config.local,
            &remote,
            nanos,
            ws_key.as_bytes(),
        );
        let mut request = ClientRequest::new(remote.clone(), config.path.clone());
        request.headers = vec![
            ("Authorization".into(), format!("Bearer {}", hex(&token))),
            (HOST_HEADER.into(), config.local.clone()),
            (TIME_HEADER.into(), nanos.to_string()),
        ];
        if config.membership == Membership::Client {
            request
                .headers
                .push((ROLE_HEADER.into(), CLIENT_ROLE.into()));
        }
        let mut endpoint =
            ws::Endpoint::client_with_nonce(config.ws.clone(), &request, key, rng, now);
        // Until the acceptor has proven itself, its messages stay small
        // (checked one at a time: the proof lifts the limit).
        endpoint.set_limits(SETUP_MAX_MESSAGE, SETUP_MAX_MESSAGE);
        endpoint.set_one_at_a_time(true);
        let setup = DialerSetup {
            ws_key,
            nonce,
            acceptor: String::new(),
            acceptor_nonce: [0; NONCE_LEN],
            time_nanos: 0,
        };
        let mut link = Self::new(config, Phase::Upgrading(Box::new(setup)), now, wall);
        link.set_hashing(hashing);
        link.ws = Some(endpoint);
        link.remote = Some(remote);
        link
    }

    /// The accepting side: reads and checks the upgrade request itself.
    /// `rng` supplies the acceptor's set-up nonce; it must be unpredictable.
    pub fn accept(
        config: Arc<LinkConfig>,
        now: Instant,
        wall: SystemTime,
        rng: &mut dyn RngCore,
    ) -> Self {
        let mut link = Self::new(config, Phase::AwaitUpgrade, now, wall);
        rng.fill_bytes(&mut link.accept_nonce);
        link.set_hashing(MuxHashing::new(rng));
        link
    }

    /// The accepting side of a connection whose upgrade request an HTTP
    /// router already parsed (`head`; the bytes after it are the link's
    /// first input). Checks the WebSocket handshake and the filter token:
    /// the link then answers 101 with its nonce and waits for `Connect`,
    /// or, refused, has the error answer queued and is closed.
    pub fn accept_head(
        config: Arc<LinkConfig>,
        head: &RequestHead,
        now: Instant,
        wall: SystemTime,
        rng: &mut dyn RngCore,
    ) -> Self {
        let mut link = Self::accept(config, now, wall, rng);
        let valid = handshake::validate_request(
            &head.method,
            head.minor_version,
            &head.target,
            head.headers.clone(),
        );
        match valid {
            Ok(request) => link.upgrade(now, &request),
            Err(e) => {
                let method = observe::method_label(&head.method);
                link.answer_upgrade(now, method, e.status(), handshake::reject_response(&e));
                link.fail(now, LinkError::Refused(e.to_string()));
            }
        }
        link
    }

    pub(super) fn read_upgrade(&mut self, now: Instant, buf: &mut BytesMut) {
        let max = self.config.ws.max_handshake_size;
        if !self.head_scan.worth_parsing(buf) && buf.len() <= max {
            return;
        }
        let parsed = handshake::parse_request(buf, self.config.ws.max_handshake_size);
        let request = match parsed {
            Ok(None) => return,
            Ok(Some((request, len))) => {
                let _ = buf.split_to(len);
                request
            }
            Err(e) => {
                let method = method_label_of(buf);
                buf.clear();
                let response = handshake::reject_response(&e);
                self.answer_upgrade(now, method, e.status(), response);
                self.fail(now, LinkError::Refused(e.to_string()));
                return;
            }
        };
        self.upgrade(now, &request);
    }

    /// Answers a valid upgrade request: 101 with our nonce and
    /// `AwaitConnect` when the filter passes, 401 and `Closed` otherwise.
    fn upgrade(&mut self, now: Instant, request: &UpgradeRequest) {
        match authorize_upgrade(&self.config, request, self.wall(now)) {
            Ok((claimed, membership)) => {
                let nonce = self.accept_nonce;
                let nonce_hex = hex(&nonce);
                let response = handshake::accept_response_with(
                    request,
                    &[
                        (NONCE_HEADER, &nonce_hex),
                        (NODE_HEADER, &self.config.local),
                    ],
                );
                self.answer_upgrade(now, "GET", 101, response);
                let mut endpoint =
                    ws::Endpoint::upgraded(self.config.ws.clone(), Role::Server, None);
                // Until the dialer has proven itself, its messages stay
                // small: a stranger with a replayed filter token cannot
                // make us buffer a 16 MiB first message.
                endpoint.set_limits(SETUP_MAX_MESSAGE, SETUP_MAX_MESSAGE);
                endpoint.set_one_at_a_time(true);
                self.ws = Some(endpoint);
                let ws_key = request.header("sec-websocket-key").unwrap_or_default();
                let setup = AcceptorSetup {
                    claimed,
                    membership,
                    ws_key: String::from_utf8_lossy(ws_key.trim_ascii()).into_owned(),
                    nonce,
                };
                self.phase = Phase::AwaitConnect(Box::new(setup));
            }
            Err(rejection) => {
                self.answer_upgrade(now, "GET", rejection.status, rejection.response());
                let reason = rejection.reason;
                self.fail(
                    now,
                    LinkError::Unauthenticated(format!("upgrade: {reason}")),
                );
            }
        }
    }

    /// The WebSocket is open: the dialer reads the acceptor's nonce and
    /// sends `Connect` with its proof.
    pub(super) fn on_ws_open(&mut self, now: Instant, opened: &ws::Handshake) {
        let Phase::Upgrading(setup) = &self.phase else {
            return;
        };
        let mut setup = setup.clone();
        let ws::Handshake::Client(response) = opened else {
            return self.fail(now, LinkError::Malformed("no upgrade answer".into()));
        };
        let text = |name| {
            response
                .header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::trim)
        };
        let Some(nonce) = text(NONCE_HEADER).and_then(|h| decode_hex::<NONCE_LEN>(h).ok()) else {
            let e = LinkError::Unauthenticated("the acceptor sent no valid nonce".into());
            return self.fail(now, e);
        };
        let acceptor = text(NODE_HEADER).unwrap_or_default().to_owned();
        let remote = self.remote.clone().unwrap_or_default();
        // Members and clients alike: the proof binds the name the acceptor
        // announced, and it must be the node we meant to reach.
        if acceptor != remote {
            let e = LinkError::Unauthenticated(format!("dialed {remote}, {acceptor:?} answered"));
            return self.fail(now, e);
        }
        let time = self.wall(now);
        setup.acceptor = acceptor;
        setup.acceptor_nonce = nonce;
        setup.time_nanos = nanos_since_epoch(time);
        let connect = Connect {
            id: self.config.node_id,
            host: self.config.local.clone(),
            time: UNIX_EPOCH + Duration::from_nanos(setup.time_nanos),
            nonce: setup.nonce,
            proof: setup
                .transcript(&self.config, &self.channel)
                .dialer_proof(&self.config.keys),
            client: self.config.membership == Membership::Client,
        };
        let msg = Message::new(Op::CONNECT, 0).payload(connect.encode());
        self.send_setup_message(&msg);
        self.phase = Phase::AwaitConnectResponse(setup);
    }

    /// Sends a set-up message as a WebSocket message of its own, straight to
    /// the endpoint: never merged with what follows it (its receiver reads
    /// only small messages until it has checked this one).
    fn send_setup_message(&mut self, msg: &Message) {
        let mut encoded = BytesMut::new();
        msg.encode(false, &mut encoded);
        if let Some(ws) = &mut self.ws {
            if let Err(e) = ws.send(ws::Message::binary(encoded.freeze())) {
                debug!(error = %e, "websocket refused a set-up message");
            }
        }
    }

    /// A WebSocket message arrived.
    pub(super) fn on_ws_message(&mut self, now: Instant, data: Bytes) {
        match &self.phase {
            Phase::Connected => self.on_frame(now, data),
            Phase::AwaitConnect(setup) => {
                let setup = setup.clone();
                self.on_connect(now, data, &setup);
            }
            Phase::AwaitConnectResponse(setup) => {
                let setup = setup.clone();
                self.on_connect_response(now, data, &setup);
            }
            _ => debug!(phase = ?self.phase, "message outside the connected phase ignored"),
        }
    }

    fn on_frame(&mut self, now: Instant, data: Bytes) {
        let len = data.len();
        match Frame::decode(data) {
            Ok(Frame::Single(msg)) => self.on_message(now, msg),
            Ok(Frame::Merged(frames)) => {
                self.merged_frame_len = Some(len);
                self.on_merged(now, frames);
                self.merged_frame_len = None;
            }
            Err(e) => self.fail(now, LinkError::Malformed(e.to_string())),
        }
    }

    fn on_merged(&mut self, now: Instant, frames: MergedFrames) {
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

    fn on_connect(&mut self, now: Instant, data: Bytes, setup: &AcceptorSetup) {
        let connect = match self.check_connect(&data, setup) {
            Ok(checked) => checked,
            // No answer beyond a Close frame that says "unauthorized".
            Err(reason) => return self.fail(now, LinkError::Unauthenticated(reason)),
        };
        let (connect, key_index) = connect;
        // The dialer proved itself: from here on it may learn why we refuse.
        let verdict = self.admit(now, &connect, setup.membership);
        let reason = verdict.as_ref().err().cloned().unwrap_or_default();
        let config = self.config.clone();
        let transcript = setup.transcript(&config.local, &connect, &self.channel);
        let keys = dialer_keys(&config, setup.membership, &connect.host).unwrap_or(&config.keys);
        let proof =
            transcript.acceptor_proof(keys, key_index, &config.node_id, verdict.is_ok(), &reason);
        let response = ConnectResponse {
            id: config.node_id,
            accepted: verdict.is_ok(),
            rejected_reason: reason,
            proof: Some(proof),
        };
        let msg = Message::new(Op::CONNECT_RESPONSE, 0).payload(response.encode());
        self.send_setup_message(&msg);
        match verdict {
            Ok(()) => {
                self.remote = Some(connect.host);
                self.key_id = Some(keys.key_id(key_index));
                self.on_connected(now, connect.id, setup.membership);
            }
            Err(reason) => self.fail(now, LinkError::Refused(reason)),
        }
    }

    /// Checks `Connect` up to and including the dialer's proof; returns it
    /// with the index of the secret it proved with. Errors are for the log.
    fn check_connect(
        &self,
        data: &Bytes,
        setup: &AcceptorSetup,
    ) -> Result<(Connect, usize), String> {
        let msg = Message::decode(data).map_err(|e| format!("malformed first message: {e}"))?;
        if msg.op != Op::CONNECT {
            return Err(format!("first message is {:?}, not Connect", msg.op));
        }
        let connect = Connect::decode(&msg.payload.unwrap_or_default())
            .map_err(|e| format!("malformed Connect: {e}"))?;
        let membership = if connect.client {
            Membership::Client
        } else {
            Membership::Member
        };
        if connect.host != setup.claimed || membership != setup.membership {
            return Err(format!(
                "Connect from {:?} ({membership:?}) after an upgrade as {:?} ({:?})",
                connect.host, setup.claimed, setup.membership
            ));
        }
        let keys = dialer_keys(&self.config, membership, &connect.host)?;
        let index = setup
            .transcript(&self.config.local, &connect, &self.channel)
            .verify_dialer(keys, &connect.proof)
            .map_err(|e| format!("{} from {}", e, connect.host))?;
        Ok((connect, index))
    }

    /// Whether an authenticated dialer may have a link: its clock, and the
    /// dialer rule for members.
    fn admit(&self, now: Instant, connect: &Connect, membership: Membership) -> Result<(), String> {
        let skew = skew(self.wall(now), connect.time);
        if skew > self.config.max_clock_skew {
            return Err(format!(
                "clock skew {skew:?} between {} and {} exceeds {:?}",
                connect.host, self.config.local, self.config.max_clock_skew
            ));
        }
        if membership == Membership::Member && !should_dial(&connect.host, &self.config.local) {
            return Err("grid: expected to be client side, not server side".into());
        }
        Ok(())
    }

    fn on_connect_response(&mut self, now: Instant, data: Bytes, setup: &DialerSetup) {
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
        let r = match response {
            Ok(r) => r,
            Err(e) => return self.fail(now, LinkError::Malformed(e)),
        };
        let proven = r.proof.and_then(|proof| {
            setup
                .transcript(&self.config, &self.channel)
                .verify_acceptor(
                    &self.config.keys,
                    &r.id,
                    r.accepted,
                    &r.rejected_reason,
                    &proof,
                )
                .ok()
        });
        match (proven, r.accepted) {
            (Some(index), true) => {
                self.key_id = Some(self.config.keys.key_id(index));
                self.on_connected(now, r.id, Membership::Member);
            }
            (Some(_), false) => self.fail(now, LinkError::Rejected(r.rejected_reason)),
            (None, _) => {
                let e = format!(
                    "the acceptor did not prove that it holds the secret (said accepted: {}, {:?})",
                    r.accepted, r.rejected_reason
                );
                self.fail(now, LinkError::Unauthenticated(e));
            }
        }
    }

    fn on_connected(&mut self, now: Instant, remote_id: [u8; 16], membership: Membership) {
        self.phase = Phase::Connected;
        if let Some(ws) = &mut self.ws {
            ws.set_limits(
                self.config.ws.max_frame_size,
                self.config.ws.max_message_size,
            );
            ws.set_one_at_a_time(false);
        }
        self.handshake_deadline = None;
        self.last_pong = now;
        self.next_ping = Some(now + self.config.ping_interval);
        let remote = self.remote.clone().unwrap_or_default();
        debug!(%remote, "link connected");
        self.link_event(&observe::LinkEvent::Connected { peer: &remote });
        self.events.push_back(Event::Connected {
            remote,
            remote_id,
            membership,
        });
    }
}

/// The method label of a request head that did not parse: its first
/// token (`GET`, `HEAD`, or `other`).
fn method_label_of(head: &[u8]) -> &'static str {
    let start = &head[..head.len().min(8)];
    let token = start.split(|b| *b == b' ').next().unwrap_or_default();
    observe::method_label(std::str::from_utf8(token).unwrap_or_default())
}
