//! The proofs of a link set-up (DESIGN §5.2).
//!
//! Flights, each side proving over randomness the *other* side chose:
//!
//! 1. dialer → `GET /gridmux/v1` upgrade with `Sec-WebSocket-Key` (random),
//!    and a pre-upgrade filter token ([`upgrade_filter`]; grants nothing);
//! 2. acceptor → `101` with `X-Gridmux-Nonce` (32 random bytes, hex) and
//!    `X-Gridmux-Node` (its name);
//! 3. dialer → `Connect{ID, Host, Time, Nonce, Proof, Client}`, where
//!    `Proof` = [`Transcript::dialer_proof`] over both names, the WebSocket
//!    key, both nonces, the dialer's id and time;
//! 4. acceptor → `ConnectResponse{ID, Accepted, RejectedReason, Proof}`,
//!    `Proof` = [`Transcript::acceptor_proof`] over the same transcript plus
//!    its own id and verdict, with the secret the dialer used.
//!
//! A recorded flight 3 fails on a new connection (the acceptor's nonce
//! differs); a recorded flight 4 fails for a new dialer (its nonce
//! differs). Members and clients prove with different keys, so a client
//! secret never makes a member.

use super::{AuthError, Keyring, Purpose, Tag};

/// Length of a set-up nonce.
pub const NONCE_LEN: usize = 32;

/// A set-up nonce: fresh randomness from the side that checks the proof.
pub type Nonce = [u8; NONCE_LEN];

/// What the dialer claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Membership {
    /// A node of the cluster: it serves and is called.
    #[default]
    Member,
    /// A tool that calls nodes; never dialed, never called.
    Client,
}

impl Membership {
    fn byte(self) -> u8 {
        match self {
            Self::Member => b'm',
            Self::Client => b'c',
        }
    }

    fn purposes(self) -> (Purpose, Purpose) {
        match self {
            Self::Member => (Purpose::PeerDialer, Purpose::PeerAcceptor),
            Self::Client => (Purpose::ClientDialer, Purpose::ClientAcceptor),
        }
    }
}

/// The pre-upgrade filter token: a tag over the claimed sender, its
/// standing, the receiver, the sender's clock (ns since the Unix epoch) and
/// the WebSocket key. It can be replayed to the same receiver within the
/// skew window; it only spares the acceptor from upgrading for callers
/// that never held the secret.
pub fn upgrade_filter(
    keys: &Keyring,
    membership: Membership,
    sender: &str,
    receiver: &str,
    time_nanos: u64,
    ws_key: &[u8],
) -> Tag {
    let time = time_nanos.to_be_bytes();
    keys.sign(
        Purpose::UpgradeFilter,
        &filter_parts(membership, sender, receiver, &time, ws_key),
    )
}

/// Checks a filter token; returns the index of the secret that made it.
pub fn verify_upgrade_filter(
    keys: &Keyring,
    membership: Membership,
    sender: &str,
    receiver: &str,
    time_nanos: u64,
    ws_key: &[u8],
    tag: &[u8],
) -> Result<usize, AuthError> {
    let time = time_nanos.to_be_bytes();
    keys.verify(
        Purpose::UpgradeFilter,
        &filter_parts(membership, sender, receiver, &time, ws_key),
        tag,
    )
}

fn filter_parts<'a>(
    membership: Membership,
    sender: &'a str,
    receiver: &'a str,
    time: &'a [u8; 8],
    ws_key: &'a [u8],
) -> [&'a [u8]; 5] {
    let standing: &'static [u8] = match membership {
        Membership::Member => b"m",
        Membership::Client => b"c",
    };
    [
        standing,
        sender.as_bytes(),
        receiver.as_bytes(),
        time,
        ws_key,
    ]
}

/// Everything both proofs of one set-up cover.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    /// What the dialer claims to be.
    pub membership: Membership,
    /// The dialer's name.
    pub dialer: &'a str,
    /// The acceptor's name, as it announced it in the `101`.
    pub acceptor: &'a str,
    /// The `Sec-WebSocket-Key` of the upgrade, as sent.
    pub ws_key: &'a [u8],
    /// The acceptor's nonce (from the `101`).
    pub acceptor_nonce: &'a Nonce,
    /// The dialer's nonce (from `Connect`).
    pub dialer_nonce: &'a Nonce,
    /// The dialer's process id.
    pub dialer_id: &'a [u8; 16],
    /// The dialer's clock, ns since the Unix epoch.
    pub time_nanos: u64,
    /// What both ends derived from the session the set-up runs in (a TLS
    /// exporter, RFC 8446 §7.5), empty over plain TCP: a proof made over
    /// one TLS session does not verify over another, so whoever
    /// terminates TLS in between (a proxy) cannot relay a set-up.
    pub channel: &'a [u8],
}

impl Transcript<'_> {
    fn with<R>(&self, extra: &[&[u8]], f: impl FnOnce(&[&[u8]]) -> R) -> R {
        let time = self.time_nanos.to_be_bytes();
        let standing = [self.membership.byte()];
        let mut parts: Vec<&[u8]> = vec![
            &standing,
            self.dialer.as_bytes(),
            self.acceptor.as_bytes(),
            self.ws_key,
            self.acceptor_nonce,
            self.dialer_nonce,
            self.dialer_id,
            &time,
            self.channel,
        ];
        parts.extend_from_slice(extra);
        f(&parts)
    }

    /// The dialer's proof (in `Connect`), under its current secret.
    pub fn dialer_proof(&self, keys: &Keyring) -> Tag {
        let purpose = self.membership.purposes().0;
        self.with(&[], |parts| keys.sign(purpose, parts))
    }

    /// Checks the dialer's proof; returns the index of the secret it used.
    pub fn verify_dialer(&self, keys: &Keyring, proof: &[u8]) -> Result<usize, AuthError> {
        let purpose = self.membership.purposes().0;
        self.with(&[], |parts| keys.verify(purpose, parts, proof))
    }

    /// The acceptor's proof (in `ConnectResponse`) under secret `index`
    /// (the one the dialer's proof used), over the transcript, its own id
    /// and its verdict.
    pub fn acceptor_proof(
        &self,
        keys: &Keyring,
        index: usize,
        acceptor_id: &[u8; 16],
        accepted: bool,
        reason: &str,
    ) -> Tag {
        let purpose = self.membership.purposes().1;
        let verdict = [u8::from(accepted)];
        self.with(&[acceptor_id, &verdict, reason.as_bytes()], |parts| {
            keys.sign_with(index, purpose, parts)
        })
    }

    /// Checks the acceptor's proof.
    pub fn verify_acceptor(
        &self,
        keys: &Keyring,
        acceptor_id: &[u8; 16],
        accepted: bool,
        reason: &str,
        proof: &[u8],
    ) -> Result<usize, AuthError> {
        let purpose = self.membership.purposes().1;
        let verdict = [u8::from(accepted)];
        self.with(&[acceptor_id, &verdict, reason.as_bytes()], |parts| {
            keys.verify(purpose, parts, proof)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript<'a>(an: &'a Nonce, dn: &'a Nonce) -> Transcript<'a> {
        Transcript {
            membership: Membership::Member,
            dialer: "a:1",
            acceptor: "b:1",
            ws_key: b"dGhlIHNhbXBsZSBub25jZQ==",
            acceptor_nonce: an,
            dialer_nonce: dn,
            dialer_id: &[7; 16],
            time_nanos: 1_700_000_000_000_000_000,
            channel: b"",
        }
    }

    #[test]
    fn a_proof_holds_only_for_its_own_connection() {
        let keys = Keyring::new(["secret"]).unwrap();
        let t = transcript(&[1; 32], &[2; 32]);
        let proof = t.dialer_proof(&keys);
        assert_eq!(t.verify_dialer(&keys, &proof), Ok(0));
        // Another acceptor nonce (a replay on a new connection).
        assert!(transcript(&[3; 32], &[2; 32])
            .verify_dialer(&keys, &proof)
            .is_err());
        let other_key = Transcript {
            ws_key: b"other",
            ..t
        };
        assert!(other_key.verify_dialer(&keys, &proof).is_err());
        let as_client = Transcript {
            membership: Membership::Client,
            ..t
        };
        assert!(as_client.verify_dialer(&keys, &proof).is_err());
        // The dialer's proof is not an acceptor's proof.
        assert!(t
            .verify_acceptor(&keys, &[7; 16], true, "", &proof)
            .is_err());
    }

    #[test]
    fn the_acceptor_proves_its_verdict() {
        let keys = Keyring::new(["new", "old"]).unwrap();
        let t = transcript(&[1; 32], &[2; 32]);
        let proof = t.acceptor_proof(&keys, 1, &[9; 16], true, "");
        let old = Keyring::new(["old"]).unwrap();
        assert_eq!(t.verify_acceptor(&old, &[9; 16], true, "", &proof), Ok(0));
        assert!(t
            .verify_acceptor(&old, &[9; 16], false, "", &proof)
            .is_err());
        assert!(t.verify_acceptor(&old, &[8; 16], true, "", &proof).is_err());
        // A recorded answer for another dialer nonce.
        let replayed = transcript(&[1; 32], &[4; 32]);
        assert!(replayed
            .verify_acceptor(&old, &[9; 16], true, "", &proof)
            .is_err());
    }

    #[test]
    fn the_filter_binds_sender_receiver_time_key_and_standing() {
        let keys = Keyring::new(["secret"]).unwrap();
        let tag = upgrade_filter(&keys, Membership::Member, "a:1", "b:1", 5, b"k");
        let ok = |m, s, r, t, k: &[u8]| verify_upgrade_filter(&keys, m, s, r, t, k, &tag).is_ok();
        assert!(ok(Membership::Member, "a:1", "b:1", 5, b"k"));
        assert!(!ok(Membership::Client, "a:1", "b:1", 5, b"k"));
        assert!(!ok(Membership::Member, "a:2", "b:1", 5, b"k"));
        assert!(!ok(Membership::Member, "a:1", "c:1", 5, b"k"));
        assert!(!ok(Membership::Member, "a:1", "b:1", 6, b"k"));
        assert!(!ok(Membership::Member, "a:1", "b:1", 5, b"j"));
    }
}
