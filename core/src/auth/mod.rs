//! Authentication from a secret shared by the cluster: per-purpose keys,
//! the proofs of the link set-up, and signed HTTP requests.
//!
//! Every secret of a [`Keyring`] is turned into one key per [`Purpose`]
//! with HKDF-SHA256 (RFC 5869), so a tag made for one purpose (say, the
//! cheap pre-upgrade filter) is worthless for another (the dialer's proof
//! in `Connect`). Tags are HMAC-SHA256 over length-prefixed parts.
//!
//! A keyring holds a list of secrets, the current one first: it signs with
//! the first and accepts any, so a cluster can change its secret without
//! downtime (add the new secret second everywhere, then first, then drop
//! the old one, one node at a time).
//!
//! What it guarantees: the link set-up ([`link`]) proves to each side that
//! the other holds a secret of the cluster, over fresh randomness it chose
//! itself, bound to the connection; a recorded set-up is worthless. Without
//! TLS it proves who connected, not who sent the frames after the set-up:
//! an attacker on the path can still inject or alter them.
//!
//! ```
//! use gridmux_core::auth::{Keyring, Purpose};
//!
//! let old = Keyring::new(["old secret"]).unwrap();
//! let rotating = Keyring::new(["new secret", "old secret"]).unwrap();
//! let tag = old.sign(Purpose::PeerDialer, &[b"a:1", b"b:1"]);
//! // The rotating node accepts the old secret (index 1)...
//! assert_eq!(rotating.verify(Purpose::PeerDialer, &[b"a:1", b"b:1"], &tag), Ok(1));
//! // ...but a tag is bound to its purpose and its parts.
//! assert!(rotating.verify(Purpose::PeerAcceptor, &[b"a:1", b"b:1"], &tag).is_err());
//! assert!(rotating.verify(Purpose::PeerDialer, &[b"a:1b", b":1"], &tag).is_err());
//! ```

pub mod link;
pub mod metrics;
pub mod request;

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a tag (HMAC-SHA256).
pub const TAG_LEN: usize = 32;

/// A MAC tag.
pub type Tag = [u8; TAG_LEN];

/// A secret's public identifier.
pub type KeyId = [u8; 16];

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No secret of the keyring made this tag for these parts.
    #[error("invalid proof")]
    InvalidTag,
    /// The tag is not in the expected format.
    #[error("malformed proof")]
    Malformed,
    /// A keyring needs at least one secret, and secrets may not be empty.
    #[error("a keyring needs at least one non-empty secret")]
    NoSecret,
}

/// What a key is used for. Each purpose has its own key, derived from the
/// secret with its label as HKDF's `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// The bearer token of the upgrade request: a cheap filter against
    /// unauthenticated load that grants nothing.
    UpgradeFilter,
    /// A member dialer's proof in `Connect`.
    PeerDialer,
    /// The acceptor's proof in `ConnectResponse` to a member.
    PeerAcceptor,
    /// A client's proof in `Connect`.
    ClientDialer,
    /// The acceptor's proof in `ConnectResponse` to a client.
    ClientAcceptor,
    /// Signed HTTP requests (file plane, metrics).
    HttpRequest,
    /// The bearer token of `GET /metrics`.
    MetricsToken,
    /// A secret's public identifier ([`Keyring::key_id`]).
    KeyId,
}

impl Purpose {
    const ALL: [Self; 8] = [
        Self::UpgradeFilter,
        Self::PeerDialer,
        Self::PeerAcceptor,
        Self::ClientDialer,
        Self::ClientAcceptor,
        Self::HttpRequest,
        Self::MetricsToken,
        Self::KeyId,
    ];

    /// The HKDF `info` of this purpose's key.
    pub fn label(self) -> &'static str {
        match self {
            Self::UpgradeFilter => "gridmux/v1 upgrade filter",
            Self::PeerDialer => "gridmux/v1 link proof: member dialer",
            Self::PeerAcceptor => "gridmux/v1 link proof: acceptor to member",
            Self::ClientDialer => "gridmux/v1 link proof: client dialer",
            Self::ClientAcceptor => "gridmux/v1 link proof: acceptor to client",
            Self::HttpRequest => "gridmux/v1 signed http request",
            Self::MetricsToken => "gridmux/v1 metrics bearer token",
            Self::KeyId => "gridmux/v1 key id",
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or_else(|| unreachable!("every purpose is in ALL"))
    }
}

/// HKDF salt: fixed, so that the same secret gives the same keys on every
/// node.
const HKDF_SALT: &[u8] = b"gridmux keyring v1";

/// The keys of one secret, one keyed HMAC state per purpose (cloned per
/// use, so the secret is hashed once).
#[derive(Clone)]
struct DerivedKeys([HmacSha256; Purpose::ALL.len()]);

impl DerivedKeys {
    fn new(secret: &[u8]) -> Self {
        let prk = hmac_over(HKDF_SALT, &[secret]);
        Self(Purpose::ALL.map(|purpose| {
            // HKDF-Expand for one block: T(1) = HMAC(PRK, info || 0x01).
            let okm = hmac_over(&prk, &[purpose.label().as_bytes(), &[1]]);
            new_mac(&okm)
        }))
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn hmac_over(key: &[u8], parts: &[&[u8]]) -> Tag {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The cluster's secrets, current first, as per-purpose keys. Signs with
/// the first secret; verifies against all of them.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<DerivedKeys>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} secrets)", self.keys.len())
    }
}

impl Keyring {
    /// A keyring from secrets, the current one first. Any length works;
    /// 32 random bytes are plenty. Fails if there is none or one is empty.
    pub fn new<S: AsRef<[u8]>>(secrets: impl IntoIterator<Item = S>) -> Result<Self, AuthError> {
        let keys = secrets
            .into_iter()
            .map(|s| {
                let s = s.as_ref();
                (!s.is_empty())
                    .then(|| DerivedKeys::new(s))
                    .ok_or(AuthError::NoSecret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(AuthError::NoSecret);
        }
        Ok(Self { keys })
    }

    /// How many secrets the keyring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring holds at least one secret.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The tag of `parts` for `purpose` under the current secret.
    pub fn sign(&self, purpose: Purpose, parts: &[&[u8]]) -> Tag {
        self.sign_with(0, purpose, parts)
    }

    /// The tag under secret `index` (as returned by [`verify`](Self::verify);
    /// out of range means the current secret).
    pub fn sign_with(&self, index: usize, purpose: Purpose, parts: &[&[u8]]) -> Tag {
        let keys = self.keys.get(index).unwrap_or(&self.keys[0]);
        let mut mac = keys.0[purpose.index()].clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` against every secret, in constant time per secret;
    /// returns the index of the secret that made it.
    pub fn verify(
        &self,
        purpose: Purpose,
        parts: &[&[u8]],
        tag: &[u8],
    ) -> Result<usize, AuthError> {
        if tag.len() != TAG_LEN {
            return Err(AuthError::Malformed);
        }
        let mut found = None;
        for index in 0..self.keys.len() {
            let expected = self.sign_with(index, purpose, parts);
            if constant_time_eq(&expected, tag) && found.is_none() {
                found = Some(index);
            }
        }
        found.ok_or(AuthError::InvalidTag)
    }

    /// A public identifier of secret `index` (it reveals nothing about the
    /// secret): links remember which secret set them up, so that dropping a
    /// secret can close them.
    pub fn key_id(&self, index: usize) -> KeyId {
        let tag = self.sign_with(index, Purpose::KeyId, &[]);
        let mut id = [0; 16];
        id.copy_from_slice(&tag[..16]);
        id
    }

    /// Whether the secret with this identifier is in the keyring.
    pub fn contains(&self, id: &KeyId) -> bool {
        (0..self.keys.len()).any(|i| self.key_id(i) == *id)
    }

    /// Checks a tag given as lowercase or uppercase hex.
    pub fn verify_hex(
        &self,
        purpose: Purpose,
        parts: &[&[u8]],
        hex: &str,
    ) -> Result<usize, AuthError> {
        let tag = decode_hex_tag(hex)?;
        self.verify(purpose, parts, &tag)
    }
}

/// Compares two equal-length byte strings without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A tag as 64 lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Decodes 64 hex digits into a tag.
pub fn decode_hex_tag(hex: &str) -> Result<Tag, AuthError> {
    decode_hex(hex)
}

/// Decodes `2 * N` hex digits.
pub(crate) fn decode_hex<const N: usize>(hex: &str) -> Result<[u8; N], AuthError> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * N {
        return Err(AuthError::Malformed);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(AuthError::Malformed),
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = nibble(digits[2 * i])? << 4 | nibble(digits[2 * i + 1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_hkdf_sha256() {
        // RFC 5869 shape with our salt and info: recompute by hand.
        let prk = hmac_over(HKDF_SALT, &[b"secret"]);
        let okm = hmac_over(&prk, &[Purpose::PeerDialer.label().as_bytes(), &[1]]);
        let mut mac = new_mac(&okm);
        mac.update(&1u64.to_be_bytes());
        mac.update(b"x");
        let expected: Tag = mac.finalize().into_bytes().into();
        let ring = Keyring::new(["secret"]).unwrap();
        assert_eq!(ring.sign(Purpose::PeerDialer, &[b"x"]), expected);
    }

    #[test]
    fn golden_tag() {
        // Fixed vector: changing the derivation breaks every deployed
        // cluster's interoperability, so it must show up here.
        let ring = Keyring::new(["cluster secret"]).unwrap();
        let tag = ring.sign(Purpose::UpgradeFilter, &[b"a:1", b"0"]);
        assert_eq!(hex(&tag), GOLDEN_UPGRADE_TAG);
    }

    const GOLDEN_UPGRADE_TAG: &str =
        "30eea375622f75967192238600d54e6a3088b931d806b1c7a326788ee08c25bc";

    #[test]
    fn purposes_and_parts_and_secrets_bind() {
        let ring = Keyring::new(["s1"]).unwrap();
        let tag = ring.sign(Purpose::PeerDialer, &[b"a", b"bc"]);
        assert_eq!(
            ring.verify(Purpose::PeerDialer, &[b"a", b"bc"], &tag),
            Ok(0)
        );
        let bad = Err(AuthError::InvalidTag);
        for purpose in Purpose::ALL
            .into_iter()
            .filter(|p| *p != Purpose::PeerDialer)
        {
            assert_eq!(ring.verify(purpose, &[b"a", b"bc"], &tag), bad);
        }
        // Length prefixes: ("a", "bc") and ("ab", "c") differ.
        assert_eq!(ring.verify(Purpose::PeerDialer, &[b"ab", b"c"], &tag), bad);
        assert_eq!(
            Keyring::new(["s2"])
                .unwrap()
                .verify(Purpose::PeerDialer, &[b"a", b"bc"], &tag),
            bad
        );
        assert_eq!(
            ring.verify(Purpose::PeerDialer, &[b"a", b"bc"], &tag[..31]),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn rotation_signs_with_the_first_and_accepts_any() {
        let old = Keyring::new(["old"]).unwrap();
        let both = Keyring::new(["new", "old"]).unwrap();
        let new = Keyring::new(["new"]).unwrap();
        let parts: &[&[u8]] = &[b"x"];
        let p = Purpose::PeerDialer;
        assert_eq!(both.verify(p, parts, &old.sign(p, parts)), Ok(1));
        assert_eq!(both.verify(p, parts, &new.sign(p, parts)), Ok(0));
        assert_eq!(new.verify(p, parts, &both.sign(p, parts)), Ok(0));
        assert!(old.verify(p, parts, &both.sign(p, parts)).is_err());
        assert_eq!(old.verify(p, parts, &both.sign_with(1, p, parts)), Ok(0));
    }

    #[test]
    fn key_ids_name_secrets_across_keyrings() {
        let both = Keyring::new(["new", "old"]).unwrap();
        let old = Keyring::new(["old"]).unwrap();
        assert_eq!(both.key_id(1), old.key_id(0));
        assert_ne!(both.key_id(0), both.key_id(1));
        assert!(both.contains(&old.key_id(0)));
        assert!(!Keyring::new(["new"]).unwrap().contains(&old.key_id(0)));
    }

    #[test]
    fn empty_keyrings_and_secrets_are_refused() {
        assert_eq!(
            Keyring::new(Vec::<&[u8]>::new()).unwrap_err(),
            AuthError::NoSecret
        );
        assert_eq!(Keyring::new(["a", ""]).unwrap_err(), AuthError::NoSecret);
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let tag = [0xab; 32];
        assert_eq!(decode_hex_tag(&hex(&tag)), Ok(tag));
        assert_eq!(decode_hex_tag(&hex(&tag).to_uppercase()), Ok(tag));
        assert_eq!(decode_hex_tag("zz"), Err(AuthError::Malformed));
        assert_eq!(decode_hex_tag(&"é".repeat(32)), Err(AuthError::Malformed));
        assert_eq!(decode_hex_tag(&"g".repeat(64)), Err(AuthError::Malformed));
    }
}
